/* Shared by io/image.c, io/jpeg.c and io/png.c: the decoders behind
 * graft_image_decode. Not a public header.
 *
 * Both fill *out (w, h, px) only on success and leave it empty on failure;
 * the limits have been resolved (max_pixels and max_scans are never 0). */
#ifndef GRAFT_IMAGE_IMPL_H
#define GRAFT_IMAGE_IMPL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/image.h"

typedef struct graft__decode_limits {
  uint64_t max_pixels;
  int max_scans;
  int strict;
} graft__decode_limits;

graft_status graft__jpeg_decode(const uint8_t *buf, size_t len, const graft__decode_limits *lim,
                                graft_image *out);
graft_status graft__png_decode(const uint8_t *buf, size_t len, const graft__decode_limits *lim,
                               graft_image *out);

/* How a decoder fails: libjpeg and libpng report errors through callbacks
 * that must not return, so the callbacks (and the decoder's own checks)
 * record what went wrong here and longjmp back to the decoder, which cleans
 * up and then reports it with graft__decode_report. */
typedef struct graft__decode_failure {
  jmp_buf jump;
  const char *call; /* the library call in progress (NULL: a check of ours) */
  int line;
  graft_status status;
  char what[320];
} graft__decode_failure;

/* Make a library call, remembering its name and line for the detail. */
#define GRAFT__DECODE_CALL(f, fn, args) ((f)->call = #fn, (f)->line = __LINE__, fn args)

/* Record status s and the formatted message, and longjmp to f->jump. */
#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 3, 4)))
#endif
void graft__decode_bail(graft__decode_failure *f, graft_status s, const char *fmt, ...);

/* Set the detail of failure s: the message, and the library call in progress
 * with its place in `file` (a __FILE__) when there was one. Returns s. */
graft_status graft__decode_report(const graft__decode_failure *f, graft_status s,
                                  const char *file);

/* "io/jpeg.c" from a __FILE__ that may be an absolute path, for details. */
const char *graft__short_file(const char *file);

/* "image is 65000x65000, over the 64000000-pixel limit" when w*h is too big
 * (or a side is 0); GRAFT_OK otherwise. Checked before anything is allocated. */
graft_status graft__check_dims(uint64_t w, uint64_t h, uint64_t max_pixels);

#endif
