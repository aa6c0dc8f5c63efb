/* The frozen trunk's output per image, computed once and reused every epoch.
 * Rows live in memory, or in an unlinked temporary file in the run's folder
 * when they would take more than the memory budget. */
#ifndef GRAFT_FEATURE_CACHE_H
#define GRAFT_FEATURE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

typedef struct graft_feature_cache graft_feature_cache;

/* Bytes a cache may keep in memory: memory_mb MiB, or a quarter of physical
 * memory when memory_mb < 0. */
size_t graft_cache_budget_bytes(int64_t memory_mb);

/* n rows of dim floats. memory_mb: the budget in MiB, < 0 for a quarter of
 * physical memory (0 keeps every row on disk, in spill_dir). */
graft_status graft_feature_cache_create(int n, int dim, int64_t memory_mb, const char *spill_dir,
                                        graft_feature_cache **out);
void graft_feature_cache_destroy(graft_feature_cache *c);
bool graft_feature_cache_has(const graft_feature_cache *c, int i);
/* Row i (which must be present) into row[dim]. */
graft_status graft_feature_cache_get(const graft_feature_cache *c, int i, float *row);
graft_status graft_feature_cache_put(graft_feature_cache *c, int i, const float *row);

#endif
