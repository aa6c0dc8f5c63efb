/* libFuzzer harness for image decoding and preprocessing: what classify and
 * finetune do with every file they are given. Each input is decoded as
 * JPEG or PNG (by its bytes), strictly and leniently; an image that
 * decodes leniently (as classify and finetune decode) goes through the eval
 * transform and the train transform (its random draws seeded from the
 * input's size). The pixel limit is lower
 * than the default so that one input costs milliseconds; the limit's own
 * check is exercised all the same. */
#include <stdint.h>
#include <stdlib.h>

#include "io/image.h"
#include "io/preprocess.h"

#define MAX_PIXELS (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static float out[3 * 224 * 224];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  graft_preproc p;
  graft_preproc_default(&p);
  for (int strict = 1; strict >= 0; strict--) {
    graft_decode_opts o = {.max_pixels = MAX_PIXELS, .max_scans = 0, .strict = strict};
    graft_image img = {0};
    if (graft_image_decode(data, size, &o, &img) != GRAFT_OK) {
      if (img.px) abort(); /* a failure leaves the image empty */
      continue;
    }
    if (img.w < 1 || img.h < 1 || (uint64_t)img.w * (uint64_t)img.h > MAX_PIXELS) abort();
    if (strict) {
      graft_image_free(&img);
      continue;
    }
    if (graft_preprocess_eval(&img, &p, out) != GRAFT_OK) abort();
    graft_rng rng = {.seed = size, .counter = 0};
    if (graft_preprocess_train(&img, &p, &rng, out) != GRAFT_OK) abort();
    graft_image_free(&img);
  }
  return 0;
}
