#include "io/feature_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct graft_feature_cache {
  int n, dim;
  uint8_t *have;
  float *rows; /* in memory, or NULL */
  int fd;      /* on disk, or -1 */
};

size_t graft_cache_budget_bytes(int64_t memory_mb) {
  if (memory_mb >= 0) return (size_t)memory_mb << 20;
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || size <= 0) return (size_t)1 << 30;
  return (size_t)pages * (size_t)size / 4;
}

graft_status graft_feature_cache_create(int n, int dim, int64_t memory_mb, const char *spill_dir,
                                        graft_feature_cache **out) {
  *out = NULL;
  graft_feature_cache *c = calloc(1, sizeof *c);
  if (!c) return graft__fail(GRAFT_ENOMEM, "out of memory");
  c->n = n;
  c->dim = dim;
  c->fd = -1;
  c->have = calloc((size_t)(n ? n : 1), 1);
  size_t bytes = (size_t)n * dim * sizeof(float);
  if (c->have && bytes <= graft_cache_budget_bytes(memory_mb)) c->rows = malloc(bytes ? bytes : 1);
  if (c->have && !c->rows) {
    char path[4200];
    snprintf(path, sizeof path, "%s/.graft-features-XXXXXX", spill_dir);
    c->fd = mkstemp(path);
    if (c->fd >= 0) unlink(path); /* nothing is left behind, whatever happens */
    /* Rows that cannot all be written are an error now, not after an epoch
     * of trunk passes. */
    struct statvfs fs;
    if (c->fd >= 0 && fstatvfs(c->fd, &fs) == 0 &&
        (double)bytes > (double)fs.f_bavail * (double)fs.f_frsize) {
      graft_status s = graft__fail(
          GRAFT_ELIMIT, "the feature cache needs %.1f MB on disk in %s, which has %.1f MB free",
          (double)bytes / 1e6, spill_dir, (double)fs.f_bavail * (double)fs.f_frsize / 1e6);
      graft_feature_cache_destroy(c);
      return s;
    }
  }
  if (!c->have || (!c->rows && c->fd < 0)) {
    graft_status s = graft__fail(GRAFT_ENOMEM, "no room for the feature cache (%zu bytes)", bytes);
    graft_feature_cache_destroy(c);
    return s;
  }
  *out = c;
  return GRAFT_OK;
}

void graft_feature_cache_destroy(graft_feature_cache *c) {
  if (!c) return;
  if (c->fd >= 0) close(c->fd);
  free(c->rows);
  free(c->have);
  free(c);
}

bool graft_feature_cache_has(const graft_feature_cache *c, int i) { return c->have[i] != 0; }

graft_status graft_feature_cache_get(const graft_feature_cache *c, int i, float *row) {
  size_t bytes = (size_t)c->dim * sizeof(float);
  if (c->rows) {
    memcpy(row, c->rows + (size_t)i * c->dim, bytes);
    return GRAFT_OK;
  }
  ssize_t got = pread(c->fd, row, bytes, (off_t)((size_t)i * bytes));
  if (got != (ssize_t)bytes)
    return graft__fail(GRAFT_EIO, "feature cache file: %s",
                       got < 0 ? strerror(errno) : "short read");
  return GRAFT_OK;
}

graft_status graft_feature_cache_put(graft_feature_cache *c, int i, const float *row) {
  size_t bytes = (size_t)c->dim * sizeof(float);
  if (c->rows) {
    memcpy(c->rows + (size_t)i * c->dim, row, bytes);
  } else {
    ssize_t put = pwrite(c->fd, row, bytes, (off_t)((size_t)i * bytes));
    if (put != (ssize_t)bytes)
      return graft__fail(GRAFT_EIO, "feature cache file: %s",
                         put < 0 ? strerror(errno) : "short write");
  }
  c->have[i] = 1;
  return GRAFT_OK;
}
