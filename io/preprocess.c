/* torchvision 0.14's eval and train transforms on a PIL RGB image, to the bit
 * for eval (the train draws come from graft_rng, not torch's generator).
 *
 * ToTensor then Normalize compute ((float)v / 255.0f - mean) / std in float32,
 * in that order (torch: .to(float32).div(255), then .sub_(mean).div_(std));
 * as v is one of 256 bytes per channel, a 3x256 table holds every result. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "io/preprocess.h"
#include "io/resize.h"

void graft_preproc_default(graft_preproc *p) {
  static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  p->resize = 256;
  p->crop = 224;
  memcpy(p->mean, mean, sizeof mean);
  memcpy(p->std, std, sizeof std);
}

static graft_status check_args(const graft_image *img, const graft_preproc *p, const float *out) {
  if (!img || !p || !out) return graft__fail(GRAFT_EINVAL, "preprocess: NULL argument");
  if (!img->px || img->w < 1 || img->h < 1)
    return graft__fail(GRAFT_EINVAL, "preprocess: empty image");
  if (p->resize < 1 || p->crop < 1 || p->crop > 16384 || p->resize > 65536)
    return graft__fail(GRAFT_EINVAL, "preprocess: resize %d / crop %d out of range", p->resize,
                       p->crop);
  for (int c = 0; c < 3; c++)
    if (!(p->std[c] != 0.0f) || !isfinite(p->std[c]) || !isfinite(p->mean[c]))
      return graft__fail(GRAFT_EINVAL, "preprocess: channel %d has mean %g, std %g", c,
                         (double)p->mean[c], (double)p->std[c]);
  return GRAFT_OK;
}

static void make_lut(const graft_preproc *p, float lut[3][256]) {
  for (int c = 0; c < 3; c++)
    for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - p->mean[c]) / p->std[c];
}

/* Python's int(round(d / 2.0)) for an integer d >= 0: halves go to even. */
static int half_round_even(int d) {
  int q = d / 2;
  return (d % 2 == 0 || q % 2 == 0) ? q : q + 1;
}

/* The common end of both transforms: resize the view (as a whole) to
 * nw x nh, take the crop x crop square whose top-left corner is (left, top)
 * in the resized image (where it leaves the image the pixels are zero, as
 * torchvision's padding), mirror it when flip, and normalise into CHW. */
static graft_status resized_square(const graft__rgb_view *v, int nw, int nh, int left, int top,
                                   int crop, bool flip, const graft_preproc *p, float *out) {
  /* the part of the square that lies on the resized image */
  int x0 = left > 0 ? left : 0, y0 = top > 0 ? top : 0;
  int x1 = left + crop < nw ? left + crop : nw, y1 = top + crop < nh ? top + crop : nh;
  int ww = x1 - x0, wh = y1 - y0;
  uint8_t *px = malloc(3 * (size_t)ww * (size_t)wh);
  if (!px) return graft__fail(GRAFT_ENOMEM, "out of memory for a %dx%d crop", ww, wh);
  /* (same size and whole box: no pass runs, as torchvision returns the image) */
  const double box[4] = {0, 0, v->w, v->h};
  graft_status s = graft__resize_window(v, box, nw, nh, x0, y0, ww, wh, px);
  if (s != GRAFT_OK) {
    free(px);
    return s;
  }
  float lut[3][256];
  make_lut(p, lut);
  const size_t plane = (size_t)crop * (size_t)crop;
  const int xa = x0 - left, xb = x1 - left; /* square columns that hit the image */
  /* output columns that hit it: [xa, xb), or mirrored [crop - xb, crop - xa) */
  const int oa = flip ? crop - xb : xa, ob = flip ? crop - xa : xb;
  for (int c = 0; c < 3; c++) {
    const float *l = lut[c];
    for (int y = 0; y < crop; y++) {
      int sy = top + y;
      float *orow = out + c * plane + (size_t)y * (size_t)crop;
      if (sy < y0 || sy >= y1) {
        for (int x = 0; x < crop; x++) orow[x] = l[0];
        continue;
      }
      const uint8_t *prow = px + 3 * (size_t)(sy - y0) * (size_t)ww + c;
      for (int x = 0; x < oa; x++) orow[x] = l[0];
      if (flip)
        for (int x = oa; x < ob; x++) orow[x] = l[prow[3 * (crop - 1 - x - xa)]];
      else
        for (int x = oa; x < ob; x++) orow[x] = l[prow[3 * (x - xa)]];
      for (int x = ob; x < crop; x++) orow[x] = l[0];
    }
  }
  free(px);
  return GRAFT_OK;
}

graft_status graft_preprocess_eval(const graft_image *img, const graft_preproc *p, float *out) {
  GRAFT_TRY(check_args(img, p, out));
  const int w = img->w, h = img->h, crop = p->crop;

  /* Resize(resize): short side to `resize`, the long side int(resize * long
   * / short) — the product is an exact integer, the quotient a double. */
  int nw = p->resize, nh = p->resize;
  if (w <= h)
    nh = (int)((double)p->resize * (double)h / (double)w);
  else
    nw = (int)((double)p->resize * (double)w / (double)h);
  if (nw < 1 || nh < 1)
    return graft__fail(GRAFT_EINVAL, "preprocess: %dx%d resizes to %dx%d", w, h, nw, nh);

  /* CenterCrop(crop): pad with zeros to at least crop x crop first (left/top
   * get the floor half), then offsets int(round((size - crop) / 2.0)). The
   * crop is then the rectangle at (left - pad_left, top - pad_top) of the
   * resized image; outside it the pixels are the zero padding. */
  int pl = crop > nw ? (crop - nw) / 2 : 0, pr = crop > nw ? (crop - nw + 1) / 2 : 0;
  int pt = crop > nh ? (crop - nh) / 2 : 0, pb = crop > nh ? (crop - nh + 1) / 2 : 0;
  int pw = nw + pl + pr, ph = nh + pt + pb;
  int left = half_round_even(pw - crop) - pl, top = half_round_even(ph - crop) - pt;
  graft__rgb_view v = {img->px, 3 * (size_t)w, w, h};
  return resized_square(&v, nw, nh, left, top, crop, false, p, out);
}

/* Python's int(round(x)) for x >= 0: halves to even. */
static int py_round(double x) {
  double f = floor(x), d = x - f;
  if (d > 0.5 || (d == 0.5 && fmod(f, 2.0) != 0.0)) f += 1.0;
  return (int)f;
}

void graft__random_resized_crop_params(int w, int h, graft_rng *rng, int *i, int *j, int *ch,
                                       int *cw) {
  const double scale0 = 0.08, scale1 = 1.0, ratio0 = 3.0 / 4.0, ratio1 = 4.0 / 3.0;
  const double lr0 = log(ratio0), lr1 = log(ratio1);
  const double area = (double)w * (double)h;
  for (int attempt = 0; attempt < 10; attempt++) {
    double target = area * (scale0 + (scale1 - scale0) * graft_rng_double(rng));
    double aspect = exp(lr0 + (lr1 - lr0) * graft_rng_double(rng));
    int tw = py_round(sqrt(target * aspect));
    int th = py_round(sqrt(target / aspect));
    if (tw > 0 && tw <= w && th > 0 && th <= h) {
      *i = (int)graft_rng_below(rng, (uint64_t)(h - th + 1));
      *j = (int)graft_rng_below(rng, (uint64_t)(w - tw + 1));
      *ch = th;
      *cw = tw;
      return;
    }
  }
  /* fallback: the centre, with the aspect ratio clamped into range */
  double in_ratio = (double)w / (double)h;
  int tw = w, th = h;
  if (in_ratio < ratio0) {
    th = py_round(tw / ratio0);
  } else if (in_ratio > ratio1) {
    tw = py_round(th * ratio1);
  }
  *i = (h - th) / 2;
  *j = (w - tw) / 2;
  *ch = th;
  *cw = tw;
}

graft_status graft_preprocess_train(const graft_image *img, const graft_preproc *p,
                                    graft_rng *rng, float *out) {
  GRAFT_TRY(check_args(img, p, out));
  if (!rng) return graft__fail(GRAFT_EINVAL, "preprocess: NULL rng");
  const int crop = p->crop;
  int i, j, ch, cw;
  graft__random_resized_crop_params(img->w, img->h, rng, &i, &j, &ch, &cw);
  bool flip = graft_rng_double(rng) < 0.5;

  /* F.resized_crop: crop first (so the filter never reaches outside the
   * crop), then resize the crop as a whole image */
  graft__rgb_view v = {img->px + 3 * ((size_t)i * (size_t)img->w + (size_t)j), 3 * (size_t)img->w,
                       cw, ch};
  return resized_square(&v, crop, crop, 0, 0, crop, flip, p, out);
}
