/* torchvision's transforms on 8-bit RGB images, reproduced to the bit:
 *  - resize: PIL's Image.resize(BILINEAR) with antialias, integer path
 *    (horizontal pass then vertical, 8-bit intermediate, PRECISION_BITS 22);
 *  - eval: Resize(resize) of the short side, CenterCrop(crop), ToTensor, Normalize;
 *  - train: RandomResizedCrop(crop) + RandomHorizontalFlip, drawn from graft_rng. */
#ifndef GRAFT_PREPROCESS_H
#define GRAFT_PREPROCESS_H

#include "engine/base/rng.h"
#include "engine/base/status.h"
#include "io/image.h"

typedef struct graft_preproc {
  int resize; /* short side after Resize, default 256 */
  int crop;   /* square crop, default 224 */
  float mean[3], std[3];
} graft_preproc;

/* ImageNet's defaults: 256, 224, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225). */
void graft_preproc_default(graft_preproc *p);

/* PIL Image.resize((out_w, out_h), BILINEAR, box=(x0, y0, x1, y1)) of src,
 * bit-exact (0 <= x0 < x1 <= w, 0 <= y0 < y1 <= h; the whole image is
 * 0,0,w,h). As in PIL, the filter may read pixels just outside the box;
 * img.crop(box).resize(...) (torchvision's resized_crop) does not, and is
 * what graft_preprocess_train reproduces. *out is malloc'd (graft_image_free). */
graft_status graft_image_resize(const graft_image *src, int x0, int y0, int x1, int y1,
                                int out_w, int out_h, graft_image *out);

/* Eval transform into out[3*crop*crop] (CHW, float32), identical to the bit
 * to torchvision 0.14 on the PIL image (zero padding when crop exceeds the
 * resized image, as CenterCrop pads). */
graft_status graft_preprocess_eval(const graft_image *img, const graft_preproc *p, float *out);

/* Train transform (RandomResizedCrop scale 0.08-1, ratio 3/4-4/3, 10 tries,
 * centre fallback; then horizontal flip with probability 0.5) into out[3*crop*crop].
 * Same distribution as torchvision's, drawn from rng (which advances); the
 * crop-then-resize of the drawn rectangle is bit-exact to F.resized_crop. */
graft_status graft_preprocess_train(const graft_image *img, const graft_preproc *p,
                                    graft_rng *rng, float *out);

#endif
