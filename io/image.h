/* Image decoding: format detected from the bytes, never the name.
 * Output is always 8-bit RGB, interleaved, rows top to bottom — what PIL's
 * Image.open(f).convert('RGB') gives (alpha dropped, no EXIF rotation). */
#ifndef GRAFT_IMAGE_H
#define GRAFT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

typedef struct graft_image {
  int w, h;
  uint8_t *px; /* w*h*3 bytes, RGBRGB... */
} graft_image;

typedef enum graft_image_format {
  GRAFT_IMAGE_UNKNOWN = 0,
  GRAFT_IMAGE_JPEG,
  GRAFT_IMAGE_PNG,
  GRAFT_IMAGE_GIF,  /* recognised, not decoded */
  GRAFT_IMAGE_BMP,  /* recognised, not decoded */
  GRAFT_IMAGE_WEBP, /* recognised, not decoded */
  GRAFT_IMAGE_TIFF, /* recognised, not decoded */
} graft_image_format;

typedef struct graft_decode_opts {
  uint64_t max_pixels;  /* refuse larger images before allocating; 0 = default 64 Mpx
                           (at most 2^31 - 1 whatever is asked) */
  int max_scans;        /* JPEG scan cap (progressive files); 0 = default 1000 */
  int strict;           /* nonzero: libjpeg/libpng warnings ("Corrupt JPEG data: ...")
                           are errors. Either way a truncated file, a CRC error or a
                           libjpeg/libpng error is an error, as in PIL. */
} graft_decode_opts;

#define GRAFT_DEFAULT_MAX_PIXELS (64ull * 1000 * 1000)
#define GRAFT_DEFAULT_MAX_SCANS 1000
/* graft_image_load refuses larger files before reading them. */
#define GRAFT_IMAGE_MAX_FILE_BYTES ((size_t)256 << 20)

/* Format from the first bytes. */
graft_image_format graft_image_sniff(const uint8_t *buf, size_t len);
const char *graft_image_format_name(graft_image_format f);

/* Decode an in-memory file. On failure *out is left empty and the one-line
 * detail says what is wrong ("GIF is not supported (only JPEG and PNG are
 * decoded)", "truncated JPEG data (in jpeg_read_scanlines, io/jpeg.c:190)",
 * "image is 65000x65000, over the 64000000-pixel limit", "empty file").
 * opts may be NULL. 16-bit grayscale PNGs give their high byte (PIL clips
 * them to 255 instead; see io/png.c). */
graft_status graft_image_decode(const uint8_t *buf, size_t len, const graft_decode_opts *opts,
                                graft_image *out);

/* Read and decode a file (regular files only: a directory is an error; at
 * most GRAFT_IMAGE_MAX_FILE_BYTES). The detail starts with the path. */
graft_status graft_image_load(const char *path, const graft_decode_opts *opts, graft_image *out);

void graft_image_free(graft_image *img);

#endif
