/* The frozen trunk's output per image, computed once and reused every epoch.
 * Rows live in memory, or in an unlinked temporary file in the run's folder
 * when they would take more than the memory budget (GRAFT_CACHE_MEMORY_MB,
 * default a quarter of physical memory). */
#ifndef GRAFT_FEATURE_CACHE_H
#define GRAFT_FEATURE_CACHE_H

#include <stdbool.h>

#include "engine/base/status.h"

typedef struct graft_feature_cache graft_feature_cache;

graft_status graft_feature_cache_create(int n, int dim, const char *spill_dir,
                                        graft_feature_cache **out);
void graft_feature_cache_destroy(graft_feature_cache *c);
bool graft_feature_cache_has(const graft_feature_cache *c, int i);
/* Row i (which must be present) into row[dim]. */
graft_status graft_feature_cache_get(const graft_feature_cache *c, int i, float *row);
graft_status graft_feature_cache_put(graft_feature_cache *c, int i, const float *row);
/* True when the rows live on disk. */
bool graft_feature_cache_on_disk(const graft_feature_cache *c);

#endif
