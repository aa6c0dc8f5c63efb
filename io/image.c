/* Format detection from the bytes (names lie: a GIF called .jpg is still a
 * GIF) and dispatch to the JPEG and PNG decoders. */
#include "io/image.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fsutil.h"
#include "io/image_impl.h"

void graft__decode_bail(graft__decode_failure *f, graft_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->what, sizeof f->what, fmt, ap);
  va_end(ap);
  f->status = s;
  longjmp(f->jump, 1);
}

graft_status graft__decode_report(const graft__decode_failure *f, graft_status s,
                                  const char *file) {
  if (f->call)
    return graft__fail(s, "%s (in %s, %s:%d)", f->what, f->call, graft__short_file(file),
                       f->line);
  return graft__fail(s, "%s", f->what);
}

const char *graft__short_file(const char *file) {
  const char *p = strstr(file, "io/");
  const char *last = NULL;
  for (; p; p = strstr(p + 1, "io/")) last = p;
  return last ? last : file;
}

graft_status graft__check_dims(uint64_t w, uint64_t h, uint64_t max_pixels) {
  if (w == 0 || h == 0) return graft__fail(GRAFT_EFORMAT, "image is %llux%llu: empty",
                                           (unsigned long long)w, (unsigned long long)h);
  /* sides are at most 2^32 - 1, so the product cannot wrap */
  if (w * h > max_pixels)
    return graft__fail(GRAFT_ELIMIT, "image is %llux%llu, over the %llu-pixel limit",
                       (unsigned long long)w, (unsigned long long)h,
                       (unsigned long long)max_pixels);
  return GRAFT_OK;
}

graft_image_format graft_image_sniff(const uint8_t *buf, size_t len) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!buf) return GRAFT_IMAGE_UNKNOWN;
  if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff) return GRAFT_IMAGE_JPEG;
  if (len >= 8 && memcmp(buf, png_sig, 8) == 0) return GRAFT_IMAGE_PNG;
  if (len >= 6 && (memcmp(buf, "GIF87a", 6) == 0 || memcmp(buf, "GIF89a", 6) == 0))
    return GRAFT_IMAGE_GIF;
  if (len >= 12 && memcmp(buf, "RIFF", 4) == 0 && memcmp(buf + 8, "WEBP", 4) == 0)
    return GRAFT_IMAGE_WEBP;
  if (len >= 4 && (memcmp(buf, "II*\0", 4) == 0 || memcmp(buf, "MM\0*", 4) == 0))
    return GRAFT_IMAGE_TIFF;
  /* "BM" alone is two printable letters: also ask for a plausible header size */
  if (len >= 18 && buf[0] == 'B' && buf[1] == 'M') {
    uint32_t hdr = (uint32_t)buf[14] | (uint32_t)buf[15] << 8 | (uint32_t)buf[16] << 16 |
                   (uint32_t)buf[17] << 24;
    if (hdr == 12 || hdr == 16 || hdr == 40 || hdr == 52 || hdr == 56 || hdr == 64 ||
        hdr == 108 || hdr == 124)
      return GRAFT_IMAGE_BMP;
  }
  return GRAFT_IMAGE_UNKNOWN;
}

const char *graft_image_format_name(graft_image_format f) {
  switch (f) {
    case GRAFT_IMAGE_JPEG: return "JPEG";
    case GRAFT_IMAGE_PNG: return "PNG";
    case GRAFT_IMAGE_GIF: return "GIF";
    case GRAFT_IMAGE_BMP: return "BMP";
    case GRAFT_IMAGE_WEBP: return "WebP";
    case GRAFT_IMAGE_TIFF: return "TIFF";
    case GRAFT_IMAGE_UNKNOWN: break;
  }
  return "unknown";
}

graft_status graft_image_decode(const uint8_t *buf, size_t len, const graft_decode_opts *opts,
                                graft_image *out) {
  if (!out) return graft__fail(GRAFT_EINVAL, "graft_image_decode: out is NULL");
  out->w = out->h = 0;
  out->px = NULL;
  if (len == 0) return graft__fail(GRAFT_EFORMAT, "empty file");
  if (!buf) return graft__fail(GRAFT_EINVAL, "graft_image_decode: buf is NULL");
  graft__decode_limits lim = {GRAFT_DEFAULT_MAX_PIXELS, GRAFT_DEFAULT_MAX_SCANS, 0};
  if (opts) {
    if (opts->max_pixels) lim.max_pixels = opts->max_pixels;
    if (opts->max_scans > 0) lim.max_scans = opts->max_scans;
    lim.strict = opts->strict != 0;
  }
  /* sides and byte offsets stay well inside int and size_t */
  if (lim.max_pixels > INT32_MAX) lim.max_pixels = INT32_MAX;

  graft_image_format f = graft_image_sniff(buf, len);
  switch (f) {
    case GRAFT_IMAGE_JPEG:
      return graft__jpeg_decode(buf, len, &lim, out);
    case GRAFT_IMAGE_PNG:
      return graft__png_decode(buf, len, &lim, out);
    case GRAFT_IMAGE_UNKNOWN: {
      char hex[3 * 8 + 1] = "";
      size_t n = len < 8 ? len : 8;
      for (size_t i = 0; i < n; i++) {
        static const char digits[] = "0123456789abcdef";
        hex[3 * i] = digits[buf[i] >> 4];
        hex[3 * i + 1] = digits[buf[i] & 15];
        hex[3 * i + 2] = i + 1 < n ? ' ' : '\0';
      }
      return graft__fail(GRAFT_EFORMAT, "not an image: unrecognised data (first bytes %s)", hex);
    }
    default:
      return graft__fail(GRAFT_EUNSUPPORTED, "%s is not supported (only JPEG and PNG are decoded)",
                         graft_image_format_name(f));
  }
}

graft_status graft_image_load(const char *path, const graft_decode_opts *opts, graft_image *out) {
  if (!out) return graft__fail(GRAFT_EINVAL, "graft_image_load: out is NULL");
  out->w = out->h = 0;
  out->px = NULL;
  if (!path) return graft__fail(GRAFT_EINVAL, "graft_image_load: path is NULL");
  uint8_t *buf = NULL;
  size_t len = 0;
  graft_status s = graft_read_file(path, GRAFT_IMAGE_MAX_FILE_BYTES, &buf, &len);
  if (s == GRAFT_OK) s = graft_image_decode(buf, len, opts, out);
  free(buf);
  return s; /* the caller names the file: details never hold the path */
}

void graft_image_free(graft_image *img) {
  if (!img) return;
  free(img->px);
  img->px = NULL;
  img->w = img->h = 0;
}
