/* Decoding and eval preprocessing of a batch of image files on all cores:
 * what classify (and its benchmark) run before each forward pass. */
#ifndef GRAFT_BATCH_H
#define GRAFT_BATCH_H

#include "engine/base/status.h"
#include "io/image.h"
#include "io/preprocess.h"

typedef struct graft_file_result {
  graft_status status;
  char error[256]; /* the detail when status != GRAFT_OK */
} graft_file_result;

/* Image i of paths[0..n) goes to out + i * 3 * crop * crop (CHW float32);
 * result[i] says whether it could be read. */
void graft_preprocess_files(char *const *paths, int n, const graft_preproc *pre,
                            const graft_decode_opts *opts, float *out, graft_file_result *result);

#endif
