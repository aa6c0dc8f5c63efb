/* PIL 9.4's Image.resize(size, BILINEAR, box) for RGB8, to the bit.
 *
 * The arithmetic is Pillow's Resample.c (ImagingResampleInner with the 8-bit
 * passes), written afresh:
 *  - per output index xx: center = in0 + (xx + 0.5) * scale, support =
 *    1.0 * max(scale, 1), taps from (int)(center - support + 0.5) to
 *    (int)(center + support + 0.5) clamped to the image, weights
 *    bilinear((x + xmin - center + 0.5) / filterscale) normalised by their
 *    sum — all in double, in that order (-ffp-contract=off keeps it so);
 *  - weights to fixed point with 22 fraction bits (32 - 8 - 2), rounded half
 *    away from zero; sums start at 1 << 21 and are clipped to 0..255 after
 *    >> 22;
 *  - the horizontal pass first, into 8-bit rows, then the vertical pass; a
 *    pass is skipped when its size is unchanged and its box is the whole side
 *    (PIL tests box[2] against the output size, an oddity kept here);
 *  - the horizontal pass only produces the rows the vertical pass reads.
 * We also let the caller ask for a window of the output (a centre crop needs
 * 224 of 256 rows and columns): each output pixel depends only on its own
 * row's and column's coefficients, so a window is exact too. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "io/preprocess.h"
#include "io/resize.h"

enum { PRECISION_BITS = 32 - 8 - 2 };

/* The coefficients of one axis, for the output indices of the window. */
typedef struct axis {
  int ksize;   /* weights per output in k */
  bool fixed;  /* every output has ksize taps (see axis_init) */
  int *bounds; /* per output: first input index, number of taps */
  int32_t *k;  /* per output: ksize weights, fixed point */
} axis;

static void axis_free(axis *a) {
  free(a->bounds);
  free(a->k);
  a->bounds = NULL;
  a->k = NULL;
}

static double bilinear(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* fixed: give every output the same number of taps, the largest any output
 * has (when the input is that wide): the real taps shifted inside and the
 * rest zero, reading from a start moved left at the right edge. Zero weights
 * add nothing, so the sums are unchanged, and a loop of constant length
 * (2 or 3 taps for a downscale of up to 2x) runs faster than a varying one. */
static graft_status axis_init(axis *a, int in_size, double in0, double in1, int out_size,
                              int first, int n, bool fixed) {
  double scale = (in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 1.0 * filterscale;
  double ss = 1.0 / filterscale;
  double ksize_d = ceil(support) * 2 + 1;
  if (ksize_d > (double)(INT32_MAX / 8) || ksize_d * n > (double)(SIZE_MAX / 16))
    return graft__fail(GRAFT_ELIMIT, "resize from %d to %d: filter too large", in_size, out_size);
  int ksize = (int)ksize_d;
  a->bounds = malloc(sizeof *a->bounds * 2 * (size_t)n);
  a->k = calloc((size_t)n * (size_t)ksize, sizeof *a->k);
  double *w = malloc(sizeof *w * (size_t)ksize);
  if (!a->bounds || !a->k || !w) {
    free(w);
    axis_free(a);
    return graft__fail(GRAFT_ENOMEM, "out of memory for resize coefficients");
  }
  /* the taps of each output: first input index and count */
  int most = 0;
  for (int i = 0; i < n; i++) {
    double center = in0 + (first + i + 0.5) * scale;
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    if (xmax < 0) xmax = 0;
    a->bounds[2 * i] = xmin;
    a->bounds[2 * i + 1] = xmax;
    if (xmax > most) most = xmax;
  }
  a->fixed = fixed && most >= 1 && in_size >= most;
  a->ksize = a->fixed ? most : ksize; /* stride of k; most <= ksize */
  for (int i = 0; i < n; i++) {
    double center = in0 + (first + i + 0.5) * scale;
    int xmin = a->bounds[2 * i], xmax = a->bounds[2 * i + 1];
    double ww = 0.0;
    for (int x = 0; x < xmax; x++) {
      w[x] = bilinear((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    int start = xmin;
    if (a->fixed) {
      start = xmin + most > in_size ? in_size - most : xmin;
      a->bounds[2 * i] = start;
      a->bounds[2 * i + 1] = most;
    }
    int32_t *k = a->k + (size_t)i * (size_t)a->ksize + (xmin - start);
    for (int x = 0; x < xmax; x++) {
      double v = ww != 0.0 ? w[x] / ww : w[x];
      k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                   : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
    }
  }
  free(w);
  return GRAFT_OK;
}

static inline uint8_t clip8(int32_t s) {
  int32_t v = s >> PRECISION_BITS;
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One row: ww output pixels from the taps in a. Inlined with a constant
 * ntaps for the common filter sizes, so the tap loop unrolls. */
static inline void h_row_taps(const uint8_t *in, uint8_t *out, const axis *a, int ww, int ntaps) {
  const int ksize = a->ksize;
  for (int xx = 0; xx < ww; xx++) {
    const uint8_t *p = in + 3 * (size_t)a->bounds[2 * xx];
    const int32_t *k = a->k + (size_t)xx * (size_t)ksize;
    const int n = ntaps ? ntaps : a->bounds[2 * xx + 1];
    int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
    for (int x = 0; x < n; x++) {
      s0 += p[3 * x] * k[x];
      s1 += p[3 * x + 1] * k[x];
      s2 += p[3 * x + 2] * k[x];
    }
    out[3 * xx] = clip8(s0);
    out[3 * xx + 1] = clip8(s1);
    out[3 * xx + 2] = clip8(s2);
  }
}

static void h_row(const uint8_t *in, uint8_t *out, const axis *a, int ww) {
  if (a->fixed) {
    switch (a->ksize) { /* up: 2 or 3; down up to 2x: 3; to 3x: 4 or 5 */
      case 2: h_row_taps(in, out, a, ww, 2); return;
      case 3: h_row_taps(in, out, a, ww, 3); return;
      case 4: h_row_taps(in, out, a, ww, 4); return;
      case 5: h_row_taps(in, out, a, ww, 5); return;
      default: break;
    }
  }
  h_row_taps(in, out, a, ww, 0);
}

/* The vertical pass over rows of `bytes` bytes; row r of the source is at
 * in + (r - row0) * stride. Integer sums: the order of taps does not matter,
 * so the loop runs along the row, where it vectorises. */
static void v_pass(const uint8_t *in, size_t stride, int row0, const axis *a, int wh,
                   size_t bytes, int32_t *acc, uint8_t *dst) {
  for (int yy = 0; yy < wh; yy++) {
    const int32_t *k = a->k + (size_t)yy * (size_t)a->ksize;
    const int ymin = a->bounds[2 * yy], n = a->bounds[2 * yy + 1];
    for (size_t i = 0; i < bytes; i++) acc[i] = 1 << (PRECISION_BITS - 1);
    for (int y = 0; y < n; y++) {
      const uint8_t *row = in + (size_t)(ymin + y - row0) * stride;
      const int32_t kv = k[y];
      for (size_t i = 0; i < bytes; i++) acc[i] += row[i] * kv;
    }
    uint8_t *o = dst + (size_t)yy * bytes;
    for (size_t i = 0; i < bytes; i++) o[i] = clip8(acc[i]);
  }
}

graft_status graft__resize_window(const graft__rgb_view *src, const double box[4], int out_w,
                                  int out_h, int wx, int wy, int ww, int wh, uint8_t *dst) {
  if (!src || !src->px || src->w < 1 || src->h < 1 || !dst)
    return graft__fail(GRAFT_EINVAL, "resize: empty source or no destination");
  if (out_w < 1 || out_h < 1)
    return graft__fail(GRAFT_EINVAL, "resize to %dx%d: sizes must be positive", out_w, out_h);
  if (!(box[0] >= 0 && box[1] >= 0 && box[2] <= src->w && box[3] <= src->h && box[0] < box[2] &&
        box[1] < box[3]))
    return graft__fail(GRAFT_EINVAL, "resize box (%g, %g, %g, %g) is not inside the %dx%d image",
                       box[0], box[1], box[2], box[3], src->w, src->h);
  if (wx < 0 || wy < 0 || ww < 1 || wh < 1 || wx > out_w - ww || wy > out_h - wh)
    return graft__fail(GRAFT_EINVAL, "resize window %dx%d at (%d, %d) is outside %dx%d", ww, wh,
                       wx, wy, out_w, out_h);

  /* PIL's conditions for each pass, quirks included */
  bool need_h = out_w != src->w || box[0] != 0 || box[2] != out_w;
  bool need_v = out_h != src->h || box[1] != 0 || box[3] != out_h;
  const size_t bytes = 3 * (size_t)ww;
  graft_status s = GRAFT_OK;
  axis ax = {0}, ay = {0};
  uint8_t *tmp = NULL;
  int32_t *acc = NULL;

  if (need_v && (s = axis_init(&ay, src->h, box[1], box[3], out_h, wy, wh, false)) != GRAFT_OK)
    goto done;
  const uint8_t *vin = src->px + 3 * (size_t)wx; /* the vertical pass's input */
  size_t vstride = src->stride;
  int row0 = 0;
  if (need_h) {
    if ((s = axis_init(&ax, src->w, box[0], box[2], out_w, wx, ww, true)) != GRAFT_OK) goto done;
    /* rows the vertical pass reads (or the window's rows if there is none) */
    int y0 = wy, y1 = wy + wh;
    if (need_v) {
      y0 = ay.bounds[0];
      y1 = ay.bounds[2 * (wh - 1)] + ay.bounds[2 * (wh - 1) + 1];
    }
    uint8_t *hout = dst;
    if (need_v) {
      tmp = malloc(bytes * (size_t)(y1 > y0 ? y1 - y0 : 1));
      if (!tmp) {
        s = graft__fail(GRAFT_ENOMEM, "out of memory for a %dx%d resize", ww, y1 - y0);
        goto done;
      }
      hout = tmp;
    }
    for (int y = y0; y < y1; y++)
      h_row(src->px + (size_t)y * src->stride, hout + (size_t)(y - y0) * bytes, &ax, ww);
    vin = tmp;
    vstride = bytes;
    row0 = y0;
  }
  if (need_v) {
    acc = malloc(sizeof *acc * bytes);
    if (!acc) {
      s = graft__fail(GRAFT_ENOMEM, "out of memory for a %d-pixel row", ww);
      goto done;
    }
    v_pass(vin, vstride, row0, &ay, wh, bytes, acc, dst);
  } else if (!need_h) {
    for (int y = 0; y < wh; y++)
      memcpy(dst + (size_t)y * bytes, vin + (size_t)(wy + y) * vstride, bytes);
  }
done:
  free(acc);
  free(tmp);
  axis_free(&ax);
  axis_free(&ay);
  return s;
}

graft_status graft_image_resize(const graft_image *src, int x0, int y0, int x1, int y1,
                                int out_w, int out_h, graft_image *out) {
  if (!src || !out) return graft__fail(GRAFT_EINVAL, "graft_image_resize: NULL argument");
  out->w = out->h = 0;
  out->px = NULL;
  if (!src->px || src->w < 1 || src->h < 1)
    return graft__fail(GRAFT_EINVAL, "graft_image_resize: empty source image");
  if (out_w < 1 || out_h < 1 || (uint64_t)out_w * (uint64_t)out_h > INT32_MAX)
    return graft__fail(GRAFT_EINVAL, "graft_image_resize: bad output size %dx%d", out_w, out_h);
  graft__rgb_view v = {src->px, 3 * (size_t)src->w, src->w, src->h};
  const double box[4] = {x0, y0, x1, y1};
  uint8_t *px = malloc(3 * (size_t)out_w * (size_t)out_h);
  if (!px) return graft__fail(GRAFT_ENOMEM, "cannot allocate a %dx%d image", out_w, out_h);
  graft_status s = graft__resize_window(&v, box, out_w, out_h, 0, 0, out_w, out_h, px);
  if (s != GRAFT_OK) {
    free(px);
    return s;
  }
  out->w = out_w;
  out->h = out_h;
  out->px = px;
  return GRAFT_OK;
}
