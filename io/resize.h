/* Internals of io/resize.c and io/preprocess.c (tests use them too). Not a
 * public header: graft_image_resize in io/preprocess.h is the public face. */
#ifndef GRAFT_RESIZE_H
#define GRAFT_RESIZE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/rng.h"
#include "engine/base/status.h"

/* An RGB8 rectangle inside a larger image: a crop without a copy. */
typedef struct graft__rgb_view {
  const uint8_t *px; /* first pixel of the rectangle */
  size_t stride;     /* bytes from one row to the next */
  int w, h;
} graft__rgb_view;

/* PIL's Image.resize((out_w, out_h), BILINEAR, box) of the image `src`
 * (box x0, y0, x1, y1 in src pixels, 0 <= x0 < x1 <= w, same for y), but
 * only the output window of ww x wh pixels at (wx, wy) is produced, into dst
 * (rows of ww*3 bytes). Every produced pixel equals PIL's to the bit: each
 * output pixel depends only on its own column and row coefficients. */
graft_status graft__resize_window(const graft__rgb_view *src, const double box[4], int out_w,
                                  int out_h, int wx, int wy, int ww, int wh, uint8_t *dst);

/* torchvision 0.14's RandomResizedCrop.get_params(scale (0.08, 1), ratio
 * (3/4, 4/3)) for a w x h image, drawn from rng: top i, left j, height ch,
 * width cw. */
void graft__random_resized_crop_params(int w, int h, graft_rng *rng, int *i, int *j, int *ch,
                                       int *cw);

#endif
