#include "io/batch.h"

#include <stdio.h>

void graft_preprocess_files(char *const *paths, int n, const graft_preproc *pre,
                            const graft_decode_opts *opts, float *out, graft_file_result *result) {
  const size_t per = (size_t)3 * pre->crop * pre->crop;
  /* One image per iteration: decode times vary a lot with image size. */
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < n; i++) {
    graft_image img = {0};
    graft_file_result *r = &result[i];
    r->status = graft_image_load(paths[i], opts, &img);
    if (r->status == GRAFT_OK) r->status = graft_preprocess_eval(&img, pre, out + (size_t)i * per);
    if (r->status != GRAFT_OK)
      snprintf(r->error, sizeof r->error, "%s",
               graft_detail()[0] ? graft_detail() : graft_strerror(r->status));
    graft_image_free(&img);
  }
}
