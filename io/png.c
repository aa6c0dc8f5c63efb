/* PNG through libpng, to the pixels of PIL 9.4's Image.open(f).convert('RGB').
 *
 * libpng only inflates, unfilters and de-interlaces (png_set_packing spreads
 * 1/2/4-bit samples to a byte each); the conversion to RGB8 is ours, written
 * after Pillow's PngImagePlugin modes and its unpack/convert rules:
 *  - gray 1/2/4/8 bits: scaled to 8 bits (x255, x85, x17), replicated;
 *  - 16-bit samples of RGB, RGBA and gray+alpha: the high byte (Pillow's
 *    "RGB;16B", "RGBA;16B", "LA;16B" unpackers);
 *  - alpha dropped without compositing; tRNS ignored (convert('RGB') keeps
 *    the pixels as they are, whatever the transparency);
 *  - palette: PLTE entries, and for indices past the PLTE PIL's default
 *    palette (the gray ramp i,i,i), which PIL's lookup then returns.
 * The one deliberate difference: 16-bit grayscale. PIL opens it as mode "I"
 * and convert('RGB') clips each value to 255, so nearly every pixel is white;
 * we take the high byte (what png_set_strip_16 and every viewer show).
 *
 * Failure policy: libpng errors, CRC errors on any chunk, and data ending
 * before IEND are errors; libpng warnings and benign errors are errors when
 * strict, tolerated otherwise. The IHDR's size is checked against max_pixels
 * from the raw bytes before libpng starts. Ancillary chunks other than tRNS
 * are skipped unparsed (CRC still checked): PIL ignores them for pixels, and
 * libpng's complaints about e.g. an odd iCCP profile are no reason to refuse
 * an image. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "io/image_impl.h"

typedef struct png_ctx {
  png_structp png;
  png_infop info;
  graft__decode_failure fail; /* what went wrong, and where to jump */
  const graft__decode_limits *lim;
  const uint8_t *buf;
  size_t len, pos;
  /* freed by the caller */
  uint8_t *px, *raw;
  png_bytep *rows;
  /* what a row holds after libpng */
  int color_type, bit_depth;
  uint8_t pal[256][3];
} png_ctx;

#define PCALL(c, fn, args) GRAFT__DECODE_CALL(&(c)->fail, fn, args)

/* Fail: record s and the message, and longjmp back to decode(). */
#define bail(c, ...) graft__decode_bail(&(c)->fail, __VA_ARGS__)

static void on_error(png_structp png, png_const_charp msg) {
  png_ctx *c = png_get_error_ptr(png);
  bail(c, GRAFT_EFORMAT, "corrupt PNG data: %s", msg);
}

static void on_warning(png_structp png, png_const_charp msg) {
  png_ctx *c = png_get_error_ptr(png);
  if (c->lim->strict) bail(c, GRAFT_EFORMAT, "corrupt PNG data: %s", msg);
}

static void on_read(png_structp png, png_bytep data, size_t n) {
  png_ctx *c = png_get_io_ptr(png);
  if (n > c->len - c->pos) bail(c, GRAFT_EFORMAT, "truncated PNG data");
  memcpy(data, c->buf + c->pos, n);
  c->pos += n;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One row as libpng hands it (1 byte per sample below 8 bits, big-endian
 * 16-bit samples) to RGB8. */
static void row_to_rgb(const png_ctx *c, const uint8_t *in, uint8_t *out, size_t w) {
  int hi16 = c->bit_depth == 16; /* samples are 2 bytes: take the first */
  size_t step = hi16 ? 2 : 1;
  switch (c->color_type) {
    case PNG_COLOR_TYPE_GRAY: {
      /* 1, 2, 4 bits scale to 8 as PIL's "1", "L;2", "L;4" do */
      int mul = c->bit_depth == 1 ? 255 : c->bit_depth == 2 ? 85 : c->bit_depth == 4 ? 17 : 1;
      for (size_t x = 0; x < w; x++) {
        uint8_t v = (uint8_t)(in[x * step] * mul);
        out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
      }
      break;
    }
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      for (size_t x = 0; x < w; x++) {
        uint8_t v = in[2 * step * x];
        out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
      }
      break;
    case PNG_COLOR_TYPE_RGB:
      if (!hi16) {
        memcpy(out, in, w * 3);
        break;
      }
      for (size_t x = 0; x < w; x++)
        for (int k = 0; k < 3; k++) out[3 * x + k] = in[6 * x + 2 * k];
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      for (size_t x = 0; x < w; x++)
        for (int k = 0; k < 3; k++) out[3 * x + k] = in[4 * step * x + step * k];
      break;
    case PNG_COLOR_TYPE_PALETTE:
      for (size_t x = 0; x < w; x++) memcpy(out + 3 * x, c->pal[in[x]], 3);
      break;
    default:
      break; /* rejected before any row is read */
  }
}

static graft_status decode(png_ctx *c) {
  if (setjmp(c->fail.jump)) return c->fail.status;

  c->png = PCALL(c, png_create_read_struct, (PNG_LIBPNG_VER_STRING, c, on_error, on_warning));
  if (!c->png) bail(c, GRAFT_ENOMEM, "png_create_read_struct failed");
  c->info = PCALL(c, png_create_info_struct, (c->png));
  if (!c->info) bail(c, GRAFT_ENOMEM, "png_create_info_struct failed");

  png_structp png = c->png;
  PCALL(c, png_set_read_fn, (png, c, on_read));
  /* PNG's own limits, generous but finite; max_pixels is the real cap */
  PCALL(c, png_set_user_limits, (png, 1000000, 1000000));
  PCALL(c, png_set_chunk_cache_max, (png, 1000));
  PCALL(c, png_set_chunk_malloc_max, (png, 8u << 20));
  PCALL(c, png_set_crc_action, (png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT));
  PCALL(c, png_set_benign_errors, (png, c->lim->strict ? 0 : 1));
  PCALL(c, png_set_keep_unknown_chunks, (png, PNG_HANDLE_CHUNK_NEVER, NULL, -1));
  /* out-of-range palette indices get PIL's default entries, not a complaint */
  PCALL(c, png_set_check_for_invalid_index, (png, 0));

  PCALL(c, png_read_info, (png, c->info));
  png_uint_32 w32, h32;
  int interlace;
  PCALL(c, png_get_IHDR,
        (png, c->info, &w32, &h32, &c->bit_depth, &c->color_type, &interlace, NULL, NULL));
  c->fail.call = NULL; /* the checks below are ours, not libpng's */
  graft_status s = graft__check_dims(w32, h32, c->lim->max_pixels);
  if (s != GRAFT_OK) bail(c, s, "%s", graft_detail());

  if (c->color_type == PNG_COLOR_TYPE_PALETTE) {
    for (int i = 0; i < 256; i++) c->pal[i][0] = c->pal[i][1] = c->pal[i][2] = (uint8_t)i;
    png_colorp plte = NULL;
    int n = 0;
    if (PCALL(c, png_get_PLTE, (png, c->info, &plte, &n)) == 0 || !plte)
      bail(c, GRAFT_EFORMAT, "palette PNG without a PLTE chunk");
    for (int i = 0; i < n && i < 256; i++) {
      c->pal[i][0] = plte[i].red;
      c->pal[i][1] = plte[i].green;
      c->pal[i][2] = plte[i].blue;
    }
  }
  if (c->bit_depth < 8) PCALL(c, png_set_packing, (png));
  int passes = PCALL(c, png_set_interlace_handling, (png));
  PCALL(c, png_read_update_info, (png, c->info));
  size_t rowbytes = PCALL(c, png_get_rowbytes, (png, c->info));
  size_t w = w32, h = h32;
  size_t samples = c->color_type == PNG_COLOR_TYPE_GRAY || c->color_type == PNG_COLOR_TYPE_PALETTE ? 1
                   : c->color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                   : c->color_type == PNG_COLOR_TYPE_RGB        ? 3
                                                               : 4;
  c->fail.call = NULL;
  if (rowbytes != w * samples * (c->bit_depth == 16 ? 2 : 1))
    bail(c, GRAFT_EFORMAT, "unexpected PNG row of %zu bytes for %zu pixels", rowbytes, w);

  c->px = malloc(w * h * 3);
  if (!c->px) bail(c, GRAFT_ENOMEM, "cannot allocate %zux%zu RGB pixels", w, h);
  if (passes > 1) {
    /* Adam7 needs the whole raw image: each pass adds pixels to every row */
    c->raw = malloc(rowbytes * h);
    c->rows = malloc(sizeof *c->rows * h);
    if (!c->raw || !c->rows) bail(c, GRAFT_ENOMEM, "cannot allocate a %zux%zu interlaced image", w, h);
    for (size_t y = 0; y < h; y++) c->rows[y] = c->raw + y * rowbytes;
    PCALL(c, png_read_image, (png, c->rows));
    for (size_t y = 0; y < h; y++) row_to_rgb(c, c->rows[y], c->px + y * w * 3, w);
  } else {
    c->raw = malloc(rowbytes);
    if (!c->raw) bail(c, GRAFT_ENOMEM, "cannot allocate a %zu-byte row", rowbytes);
    for (size_t y = 0; y < h; y++) {
      PCALL(c, png_read_row, (png, c->raw, NULL));
      row_to_rgb(c, c->raw, c->px + y * w * 3, w);
    }
  }
  /* reads the rest through IEND: a file cut after its pixel data is an error */
  PCALL(c, png_read_end, (png, NULL));
  return GRAFT_OK;
}

graft_status graft__png_decode(const uint8_t *buf, size_t len, const graft__decode_limits *lim,
                               graft_image *out) {
  /* The size from the IHDR's raw bytes (signature, length, "IHDR", w, h),
   * before libpng sets up anything. */
  if (len >= 24 && memcmp(buf + 12, "IHDR", 4) == 0)
    GRAFT_TRY(graft__check_dims(be32(buf + 16), be32(buf + 20), lim->max_pixels));

  png_ctx *c = calloc(1, sizeof *c);
  if (!c) return graft__fail(GRAFT_ENOMEM, "out of memory for the PNG decoder");
  c->lim = lim;
  c->buf = buf;
  c->len = len;
  graft_status s = decode(c);
  if (s == GRAFT_OK) {
    out->w = (int)png_get_image_width(c->png, c->info);
    out->h = (int)png_get_image_height(c->png, c->info);
    out->px = c->px;
  }
  if (c->png) png_destroy_read_struct(&c->png, c->info ? &c->info : NULL, NULL);
  free(c->raw);
  free(c->rows);
  if (s != GRAFT_OK) {
    free(c->px);
    graft__decode_report(&c->fail, s, __FILE__);
  }
  free(c);
  return s;
}
