#include "io/report.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"

graft_status graft_write_metrics_csv(const char *path, const graft_epoch_metrics *h, int n) {
  size_t cap = 128 + (size_t)n * 160, len = 0;
  char *buf = malloc(cap);
  if (!buf) return graft__fail(GRAFT_ENOMEM, "out of memory");
  len += (size_t)snprintf(buf, cap, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n");
  for (int i = 0; i < n && len < cap; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%d,%.6f,%.6f,%.6f,%.6f,%.9g,%.3f\n",
                            h[i].epoch, h[i].train_loss, h[i].train_acc, h[i].val_loss,
                            h[i].val_acc, h[i].lr, h[i].seconds);
  graft_status s = graft_write_file_atomic(path, buf, len < cap ? len : cap - 1);
  free(buf);
  return s;
}

/* ---- curves.png ---- */

static const double PI = 3.14159265358979323846;

enum { W = 1220, H = 470, PANEL_W = 500, PANEL_H = 360, LEFT = 80, TOP = 60, GAP = 110 };

typedef struct series {
  const char *name;
  double r, g, b;
  size_t field; /* offset of the value in graft_epoch_metrics */
} series;

static double value(const graft_epoch_metrics *m, size_t field) {
  return *(const double *)((const char *)m + field);
}

/* A "nice" step for about 5 ticks over span. */
static double nice_step(double span) {
  double raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/* The panel's value range: the series' finite values padded by a tenth (not
 * below zero), or [0, 1] for accuracies. */
static void value_range(const graft_epoch_metrics *h, int n, const series *s, int ns,
                        bool unit_range, double *lo_out, double *hi_out) {
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < ns; k++) {
      double v = value(&h[i], s[k].field);
      if (isfinite(v)) {
        lo = fmin(lo, v);
        hi = fmax(hi, v);
      }
    }
  if (unit_range) {
    lo = 0;
    hi = 1;
  } else {
    if (!isfinite(lo)) lo = 0, hi = 1;
    double pad = (hi - lo) * 0.1 + 1e-6;
    lo = fmax(0, lo - pad);
    hi += pad;
  }
  *lo_out = lo;
  *hi_out = hi;
}

/* The frame, the title, the ticks and the axis labels of a panel. */
static void axes(cairo_t *cr, double x0, double y0, const char *title, const char *ylabel,
                 double lo, double hi, int xmax) {
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, x0, y0, PANEL_W, PANEL_H);
  cairo_stroke(cr);
  cairo_set_font_size(cr, 15);
  cairo_move_to(cr, x0 + PANEL_W / 2.0 - 40, y0 - 12);
  cairo_show_text(cr, title);
  cairo_set_font_size(cr, 11);
  /* y ticks */
  double step = nice_step(hi - lo);
  int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  for (double t = ceil(lo / step) * step; t <= hi + 1e-12; t += step) {
    double y = y0 + PANEL_H - (t - lo) / (hi - lo) * PANEL_H;
    char lab[32];
    snprintf(lab, sizeof lab, "%.*f", decimals, t);
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    cairo_move_to(cr, x0, y);
    cairo_line_to(cr, x0 + PANEL_W, y);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_move_to(cr, x0 - 8 - 6.5 * (double)strlen(lab), y + 4);
    cairo_show_text(cr, lab);
  }
  /* x ticks: epochs */
  int xs = (int)fmax(1, nice_step(xmax - 1));
  for (int e = 1; e <= xmax; e += xs) {
    double x = x0 + (double)(e - 1) / (xmax - 1) * PANEL_W;
    char lab[16];
    snprintf(lab, sizeof lab, "%d", e);
    cairo_move_to(cr, x - 4, y0 + PANEL_H + 16);
    cairo_show_text(cr, lab);
  }
  cairo_move_to(cr, x0 + PANEL_W / 2.0 - 15, y0 + PANEL_H + 34);
  cairo_show_text(cr, "epoch");
  cairo_save(cr);
  cairo_move_to(cr, x0 - 66, y0 + PANEL_H / 2.0 + 60);
  cairo_rotate(cr, -PI / 2);
  cairo_show_text(cr, ylabel);
  cairo_restore(cr);
}

/* Each series' line, markers and legend entry. */
static void plot_series(cairo_t *cr, double x0, double y0, const graft_epoch_metrics *h, int n,
                        const series *s, int ns, double lo, double hi, int xmax) {
  for (int k = 0; k < ns; k++) {
    cairo_set_source_rgb(cr, s[k].r, s[k].g, s[k].b);
    cairo_set_line_width(cr, 2);
    for (int i = 0; i < n; i++) {
      double x = x0 + (double)(h[i].epoch - 1) / (xmax - 1) * PANEL_W;
      double y = y0 + PANEL_H - (value(&h[i], s[k].field) - lo) / (hi - lo) * PANEL_H;
      if (i == 0)
        cairo_move_to(cr, x, y);
      else
        cairo_line_to(cr, x, y);
    }
    cairo_stroke(cr);
    for (int i = 0; i < n; i++) {
      double x = x0 + (double)(h[i].epoch - 1) / (xmax - 1) * PANEL_W;
      double y = y0 + PANEL_H - (value(&h[i], s[k].field) - lo) / (hi - lo) * PANEL_H;
      cairo_arc(cr, x, y, 3, 0, 2 * PI);
      cairo_fill(cr);
    }
    cairo_rectangle(cr, x0 + PANEL_W - 90, y0 + 12 + 18 * k, 14, 4);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_move_to(cr, x0 + PANEL_W - 70, y0 + 18 + 18 * k);
    cairo_show_text(cr, s[k].name);
  }
}

static void panel(cairo_t *cr, double x0, double y0, const char *title, const char *ylabel,
                  const graft_epoch_metrics *h, int n, const series *s, int ns, bool unit_range) {
  double lo, hi;
  value_range(h, n, s, ns, unit_range, &lo, &hi);
  int xmax = n > 1 ? n : 2;
  axes(cr, x0, y0, title, ylabel, lo, hi, xmax);
  plot_series(cr, x0, y0, h, n, s, ns, lo, hi, xmax);
}

typedef struct png_out {
  FILE *f;
  int error; /* the first write's errno */
} png_out;

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int len) {
  png_out *o = closure;
  if (o->error) return CAIRO_STATUS_WRITE_ERROR;
  errno = 0;
  if (fwrite(data, 1, len, o->f) != len) {
    o->error = errno ? errno : EIO;
    return CAIRO_STATUS_WRITE_ERROR;
  }
  return CAIRO_STATUS_SUCCESS;
}

/* The surface as a PNG at path, through a temporary beside it renamed over
 * it; cs: the drawing's status (a failed drawing writes nothing). */
static graft_status save_png(cairo_surface_t *surf, cairo_status_t cs, const char *path) {
  graft_status s = GRAFT_OK;
  char *tmp = graft_temp_path_for(path);
  if (!tmp) s = graft__fail(GRAFT_ENOMEM, "out of memory");
  if (s == GRAFT_OK && cs != CAIRO_STATUS_SUCCESS)
    s = graft__fail(GRAFT_EIO, "drawing failed: %s", cairo_status_to_string(cs));
  if (s == GRAFT_OK) {
    /* Our own writer: cairo's says "error while writing", errno says why. */
    png_out out = {fopen(tmp, "wb"), 0};
    if (!out.f) {
      s = graft__fail(GRAFT_EIO, "cannot create a temporary file beside it: %s",
                      strerror(errno));
    } else {
      cs = cairo_surface_write_to_png_stream(surf, png_write, &out);
      if (fclose(out.f) != 0 && !out.error) out.error = errno ? errno : EIO;
      if (cs != CAIRO_STATUS_SUCCESS || out.error) {
        remove(tmp);
        s = graft__fail(GRAFT_EIO, "write failed: %s",
                        out.error ? strerror(out.error) : cairo_status_to_string(cs));
      }
    }
  }
  if (s == GRAFT_OK) s = graft_commit_file(tmp, path);
  free(tmp);
  return s;
}

/* A white canvas with the sans-serif face, or NULL (out of memory). */
static cairo_surface_t *canvas(int w, int h, cairo_t **cr) {
  cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
  if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy(surf);
    return NULL;
  }
  *cr = cairo_create(surf);
  cairo_set_source_rgb(*cr, 1, 1, 1);
  cairo_paint(*cr);
  cairo_select_font_face(*cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  return surf;
}

graft_status graft_plot_curves(const char *path, const graft_epoch_metrics *h, int n,
                               const char *title) {
  cairo_t *cr;
  cairo_surface_t *surf = canvas(W, H, &cr);
  if (!surf) return graft__fail(GRAFT_ENOMEM, "cairo_image_surface_create failed");
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, 13);
  cairo_move_to(cr, LEFT, 22);
  cairo_show_text(cr, title);
  const series loss[] = {
      {"train", 0.12, 0.47, 0.71, offsetof(graft_epoch_metrics, train_loss)},
      {"val", 1.0, 0.5, 0.05, offsetof(graft_epoch_metrics, val_loss)}};
  const series acc[] = {
      {"train", 0.12, 0.47, 0.71, offsetof(graft_epoch_metrics, train_acc)},
      {"val", 1.0, 0.5, 0.05, offsetof(graft_epoch_metrics, val_acc)}};
  panel(cr, LEFT, TOP, "loss", "cross-entropy per image", h, n, loss, 2, false);
  panel(cr, LEFT + PANEL_W + GAP, TOP, "accuracy", "accuracy", h, n, acc, 2, true);
  cairo_status_t cs = cairo_status(cr);
  cairo_destroy(cr);
  graft_status s = save_png(surf, cs, path);
  cairo_surface_destroy(surf);
  return s;
}

/* ---- predictions.png ---- */

enum { TILE = 224, PAD = 12, CELL_W = TILE + 2 * PAD, LABELS_H = 46, CELL_H = TILE + LABELS_H + PAD,
       COLS = 4, HEAD = 44 };

/* text shortened to fit width, with an ellipsis ("..." in the toy font's
 * glyphs); never cuts a UTF-8 sequence. */
static void show_fitted(cairo_t *cr, const char *text, double width) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, text, &e);
  if (e.x_advance <= width) {
    cairo_show_text(cr, text);
    return;
  }
  size_t len = strlen(text);
  char *buf = malloc(len + 4);
  if (!buf) return;
  memcpy(buf, text, len + 1);
  while (len > 0) {
    do len--;
    while (len > 0 && ((unsigned char)buf[len] & 0xC0) == 0x80);
    memcpy(buf + len, "...", 4);
    cairo_text_extents(cr, buf, &e);
    if (e.x_advance <= width) break;
  }
  cairo_show_text(cr, buf);
  free(buf);
}

/* img scaled to fit a TILE square centred at (x, y)-(x + TILE, y + TILE),
 * framed in (r, g, b). */
static void draw_image(cairo_t *cr, const graft_image *img, double x, double y, double r,
                       double g, double b) {
  int stride = cairo_format_stride_for_width(CAIRO_FORMAT_RGB24, img->w);
  unsigned char *data = malloc((size_t)stride * (size_t)img->h);
  if (!data) return;
  for (int j = 0; j < img->h; j++) {
    uint32_t *row = (uint32_t *)(data + (size_t)j * (size_t)stride);
    const uint8_t *p = img->px + (size_t)j * (size_t)img->w * 3;
    for (int i = 0; i < img->w; i++, p += 3)
      row[i] = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
  }
  cairo_surface_t *pic =
      cairo_image_surface_create_for_data(data, CAIRO_FORMAT_RGB24, img->w, img->h, stride);
  double scale = (double)TILE / (img->w > img->h ? img->w : img->h);
  double w = img->w * scale, h = img->h * scale;
  double x0 = x + (TILE - w) / 2, y0 = y + (TILE - h) / 2;
  cairo_save(cr);
  cairo_translate(cr, x0, y0);
  cairo_scale(cr, scale, scale);
  cairo_set_source_surface(cr, pic, 0, 0);
  cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
  cairo_paint(cr);
  cairo_restore(cr);
  cairo_surface_destroy(pic);
  free(data);
  cairo_set_source_rgb(cr, r, g, b);
  cairo_set_line_width(cr, 4);
  cairo_rectangle(cr, x0 - 2, y0 - 2, w + 4, h + 4);
  cairo_stroke(cr);
}

graft_status graft_plot_predictions(const char *path, const graft_prediction *p, int n,
                                    const char *title) {
  int cols = n < COLS ? (n > 0 ? n : 1) : COLS, rows = (n + cols - 1) / cols;
  int w = cols * CELL_W + 2 * PAD, h = HEAD + (rows > 0 ? rows : 1) * CELL_H;
  if (w < 560) w = 560; /* room for the title */
  cairo_t *cr;
  cairo_surface_t *surf = canvas(w, h, &cr);
  if (!surf) return graft__fail(GRAFT_ENOMEM, "cairo_image_surface_create failed");
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, 15);
  cairo_move_to(cr, PAD + PAD, 28);
  show_fitted(cr, title, w - 4 * PAD);
  for (int i = 0; i < n; i++) {
    double x = PAD + (i % cols) * CELL_W + PAD, y = HEAD + (i / cols) * CELL_H;
    bool right = p[i].right;
    double r = right ? 0.10 : 0.80, g = right ? 0.55 : 0.10, b = right ? 0.20 : 0.10;
    draw_image(cr, &p[i].img, x, y, r, g, b);
    char line[512];
    cairo_set_font_size(cr, 14);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_source_rgb(cr, r, g, b);
    snprintf(line, sizeof line, "predicted: %s", p[i].predicted);
    cairo_move_to(cr, x, y + TILE + 22);
    show_fitted(cr, line, TILE);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    snprintf(line, sizeof line, "true: %s", p[i].truth);
    cairo_move_to(cr, x, y + TILE + 41);
    show_fitted(cr, line, TILE);
  }
  cairo_status_t cs = cairo_status(cr);
  cairo_destroy(cr);
  graft_status s = save_png(surf, cs, path);
  cairo_surface_destroy(surf);
  return s;
}
