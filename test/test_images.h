/* Test-only helpers for the image tests: patterned pixels, JPEGs written
 * with libjpeg's compressor (colour spaces and scan scripts PIL cannot
 * write), and whole-file reads and writes. libjpeg's default error handler
 * exits on failure, which is acceptable in a test program. */
#ifndef GRAFT_TEST_IMAGES_H
#define GRAFT_TEST_IMAGES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

/* Gradients with some noise, n channels: smooth areas and edges. */
static inline uint8_t *testimg_pattern(int w, int h, int n, uint32_t seed) {
  uint8_t *px = malloc((size_t)w * h * n);
  if (!px) abort();
  uint32_t s = seed * 2654435761u + 1;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < n; c++) {
        s = s * 1664525u + 1013904223u;
        int v = (x * 255 / (w > 1 ? w - 1 : 1) + y * 3 + 61 * c) & 255;
        if ((s >> 24) < 40) v = (int)(s >> 16) & 255;
        px[((size_t)y * w + x) * n + c] = (uint8_t)v;
      }
  return px;
}

typedef struct testimg_jpeg {
  int w, h, comps;
  J_COLOR_SPACE in_cs, jpeg_cs;
  int quality;
  int progressive;          /* jpeg_simple_progression */
  int arith;                /* arithmetic coding */
  int restart_rows;         /* restart interval in MCU rows */
  int no_adobe;             /* suppress the Adobe APP14 marker */
  const jpeg_scan_info *scans; /* a custom scan script */
  int nscans;
  uint32_t seed;
} testimg_jpeg;

/* The JPEG bytes (malloc'd) of a patterned image. */
static inline uint8_t *testimg_jpeg_bytes(const testimg_jpeg *o, size_t *len) {
  struct jpeg_compress_struct ci;
  struct jpeg_error_mgr err;
  unsigned char *mem = NULL;
  unsigned long size = 0;
  ci.err = jpeg_std_error(&err);
  jpeg_create_compress(&ci);
  jpeg_mem_dest(&ci, &mem, &size);
  ci.image_width = (JDIMENSION)o->w;
  ci.image_height = (JDIMENSION)o->h;
  ci.input_components = o->comps;
  ci.in_color_space = o->in_cs;
  jpeg_set_defaults(&ci);
  jpeg_set_colorspace(&ci, o->jpeg_cs);
  jpeg_set_quality(&ci, o->quality ? o->quality : 85, TRUE);
  if (o->progressive) jpeg_simple_progression(&ci);
  if (o->arith) ci.arith_code = TRUE;
  if (o->restart_rows) ci.restart_in_rows = o->restart_rows;
  if (o->no_adobe) ci.write_Adobe_marker = FALSE;
  if (o->scans) {
    ci.scan_info = o->scans;
    ci.num_scans = o->nscans;
  }
  jpeg_start_compress(&ci, TRUE);
  uint8_t *px = testimg_pattern(o->w, o->h, o->comps, o->seed);
  while (ci.next_scanline < ci.image_height) {
    JSAMPROW row = px + (size_t)ci.next_scanline * o->w * o->comps;
    jpeg_write_scanlines(&ci, &row, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  free(px);
  *len = size;
  return mem;
}

static inline int testimg_write(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t n = len ? fwrite(data, 1, len, f) : 0;
  int rc = fclose(f);
  return n == len && rc == 0 ? 0 : -1;
}

static inline uint8_t *testimg_read(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  uint8_t *b = malloc(cap);
  for (;;) {
    if (!b) break;
    n += fread(b + n, 1, cap - n, f);
    if (n < cap) break;
    uint8_t *nb = realloc(b, cap *= 2);
    if (!nb) {
      free(b);
      b = NULL;
    } else {
      b = nb;
    }
  }
  fclose(f);
  *len = n;
  return b;
}

#endif
