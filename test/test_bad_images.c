/* Files that are not images, or are broken or hostile ones: each must give a
 * non-OK status and a one-line detail saying what is wrong, never a crash,
 * and never an image-sized allocation before the size check (the ELIMIT
 * status proves the check fired first: an allocation would be ENOMEM).
 * Fixtures are made here, in the test's scratch folder. Most useful under
 * GRAFT_SANITIZE. */
#include <png.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "io/image.h"
#include "test_images.h"

static const char *dir;

/* Decode path with opts; expect status `want` (GRAFT_OK = any failure) and a
 * detail containing `needle`. */
static void expect_fail(const char *what, const char *path, const graft_decode_opts *opts,
                        graft_status want, const char *needle) {
  graft_image img = {0};
  graft_status s = graft_image_load(path, opts, &img);
  const char *d = graft_detail();
  CHECK_MSG(s != GRAFT_OK, "%s: decoded as %dx%d", what, img.w, img.h);
  CHECK_MSG(img.px == NULL && img.w == 0 && img.h == 0, "%s: output not left empty", what);
  if (want != GRAFT_OK) CHECK_MSG(s == want, "%s: got %s, want %s (%s)", what, graft_strerror(s),
                                  graft_strerror(want), d);
  CHECK_MSG(d[0] != '\0' && strchr(d, '\n') == NULL, "%s: detail \"%s\"", what, d);
  if (needle) CHECK_MSG(strstr(d, needle) != NULL, "%s: detail \"%s\" lacks \"%s\"", what, d, needle);
  printf("  %-28s %-22s %s\n", what, graft_strerror(s), d);
  graft_image_free(&img);
}

static void expect_ok(const char *what, const char *path, const graft_decode_opts *opts) {
  graft_image img = {0};
  graft_status s = graft_image_load(path, opts, &img);
  CHECK_MSG(s == GRAFT_OK && img.px, "%s: %s: %s", what, graft_strerror(s), graft_detail());
  graft_image_free(&img);
}

static const char *put(const char *name, const void *data, size_t len) {
  const char *p = graft_test_path(dir, name);
  if (testimg_write(p, data, len) != 0) {
    fprintf(stderr, "cannot write %s\n", p);
    exit(1);
  }
  return p;
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return ~c;
}

static void be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* A valid RGB PNG from libpng's simplified writer (malloc'd). */
static uint8_t *make_png(int w, int h, size_t *len) {
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  im.width = (png_uint_32)w;
  im.height = (png_uint_32)h;
  im.format = PNG_FORMAT_RGB;
  uint8_t *px = testimg_pattern(w, h, 3, 11);
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&im, NULL, &size, 0, px, 0, NULL)) abort();
  uint8_t *mem = malloc(size);
  if (!mem || !png_image_write_to_memory(&im, mem, &size, 0, px, 0, NULL)) abort();
  free(px);
  *len = size;
  return mem;
}

/* Offset of the first chunk of this type (its length field), or 0. */
static size_t find_chunk(const uint8_t *png, size_t len, const char *type) {
  for (size_t off = 8; off + 12 <= len;) {
    uint32_t n = (uint32_t)png[off] << 24 | (uint32_t)png[off + 1] << 16 |
                 (uint32_t)png[off + 2] << 8 | png[off + 3];
    if (memcmp(png + off + 4, type, 4) == 0) return off;
    off += 12 + (size_t)n;
  }
  return 0;
}

/* valid PNG with a chunk (type, data, good or bad CRC) inserted after the IHDR */
static uint8_t *png_with_chunk(const uint8_t *png, size_t len, const char *type, const char *data,
                               bool bad_crc, size_t *out_len) {
  size_t dn = strlen(data), cn = 12 + dn;
  uint8_t *o = malloc(len + cn);
  if (!o) abort();
  memcpy(o, png, 33);
  be32(o + 33, (uint32_t)dn);
  memcpy(o + 37, type, 4);
  memcpy(o + 41, data, dn);
  be32(o + 41 + dn, crc32_png(o + 37, 4 + dn) ^ (bad_crc ? 1u : 0u));
  memcpy(o + 33 + cn, png + 33, len - 33);
  *out_len = len + cn;
  return o;
}

static void jpeg_cases(void) {
  graft_decode_opts strict = {0, 0, 1}, lenient = {0, 0, 0};
  size_t len;
  testimg_jpeg base = {.w = 64, .h = 48, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_YCbCr,
                       .seed = 21};
  uint8_t *jpg = testimg_jpeg_bytes(&base, &len);
  expect_ok("valid baseline JPEG", put("ok.jpg", jpg, len), &strict);

  const char *p = put("truncated.jpg", jpg, len / 2);
  expect_fail("truncated JPEG, strict", p, &strict, GRAFT_EFORMAT, "truncated JPEG data");
  expect_fail("truncated JPEG, lenient", p, &lenient, GRAFT_EFORMAT, "truncated JPEG data");
  p = put("no_eoi.jpg", jpg, len - 2);
  expect_fail("JPEG without EOI", p, &lenient, GRAFT_EFORMAT, "truncated JPEG data");
  expect_fail("JPEG header only", put("header.jpg", jpg, 200), &lenient, GRAFT_EFORMAT,
              "truncated JPEG data");
  expect_fail("JPEG SOI only", put("soi.jpg", jpg, 3), &lenient, GRAFT_EFORMAT, NULL);

  /* garbage between the entropy data and the EOI: libjpeg warns "Corrupt
   * JPEG data: N extraneous bytes before marker 0xd9" */
  uint8_t *junk = malloc(len + 16);
  memcpy(junk, jpg, len - 2);
  memset(junk + len - 2, 0x5a, 16);
  memcpy(junk + len + 14, jpg + len - 2, 2);
  p = put("extraneous.jpg", junk, len + 16);
  expect_fail("corrupt JPEG data, strict", p, &strict, GRAFT_EFORMAT, "corrupt JPEG data");
  expect_ok("corrupt JPEG data, lenient", p, &lenient);
  free(junk);

  /* 65000x65000 in the SOF0 */
  uint8_t *big = malloc(len);
  memcpy(big, jpg, len);
  for (size_t i = 2; i + 9 < len; i++)
    if (big[i] == 0xff && big[i + 1] == 0xc0) {
      big[i + 5] = big[i + 7] = 0xfd;
      big[i + 6] = big[i + 8] = 0xe8;
      break;
    }
  expect_fail("JPEG claiming 65000x65000", put("huge.jpg", big, len), &lenient, GRAFT_ELIMIT,
              "65000x65000, over the 64000000-pixel limit");
  free(big);
  graft_decode_opts small = {64 * 48 - 1, 0, 0};
  expect_fail("JPEG over max_pixels", graft_test_path(dir, "ok.jpg"), &small, GRAFT_ELIMIT,
              "limit");
  free(jpg);

  /* progressive: 10 scans from jpeg_simple_progression; a cap of 3 trips */
  testimg_jpeg prog = base;
  prog.progressive = 1;
  jpg = testimg_jpeg_bytes(&prog, &len);
  p = put("prog.jpg", jpg, len);
  expect_ok("progressive JPEG", p, &strict);
  graft_decode_opts cap3 = {0, 3, 1};
  expect_fail("progressive, max_scans 3", p, &cap3, GRAFT_ELIMIT, "more than 3 scans");
  free(jpg);

  /* 2090 scans, every coefficient's bits one scan at a time: valid, but over
   * the default cap of 1000 */
  jpeg_scan_info *scans = calloc(2100, sizeof *scans);
  int n = 0;
  scans[n++] = (jpeg_scan_info){3, {0, 1, 2}, 0, 0, 0, 10};
  for (int a = 10; a >= 1; a--) scans[n++] = (jpeg_scan_info){3, {0, 1, 2}, 0, 0, a, a - 1};
  for (int c = 0; c < 3; c++)
    for (int k = 1; k < 64; k++) {
      scans[n++] = (jpeg_scan_info){1, {c}, k, k, 0, 10};
      for (int a = 10; a >= 1; a--) scans[n++] = (jpeg_scan_info){1, {c}, k, k, a, a - 1};
    }
  testimg_jpeg many = {.w = 16, .h = 16, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_YCbCr,
                       .scans = scans, .nscans = n, .seed = 22};
  jpg = testimg_jpeg_bytes(&many, &len);
  free(scans);
  p = put("many_scans.jpg", jpg, len);
  expect_fail("JPEG with 2090 scans", p, &lenient, GRAFT_ELIMIT, "more than 1000 scans");
  graft_decode_opts cap_big = {0, 5000, 1};
  expect_ok("JPEG with 2090 scans, cap 5000", p, &cap_big);
  free(jpg);
}

static void png_cases(void) {
  graft_decode_opts strict = {0, 0, 1}, lenient = {0, 0, 0};
  size_t len, n2;
  uint8_t *png = make_png(40, 30, &len);
  expect_ok("valid PNG", put("ok.png", png, len), &strict);
  expect_fail("truncated PNG", put("truncated.png", png, len / 2), &lenient, GRAFT_EFORMAT,
              "truncated PNG data");
  expect_fail("PNG without IEND", put("no_iend.png", png, len - 12), &lenient, GRAFT_EFORMAT,
              "truncated PNG data");
  expect_fail("PNG signature only", put("sig.png", png, 8), &lenient, GRAFT_EFORMAT, NULL);

  uint8_t *bad = malloc(len);
  memcpy(bad, png, len);
  size_t idat = find_chunk(bad, len, "IDAT");
  CHECK(idat > 0);
  uint32_t idat_len = (uint32_t)bad[idat] << 24 | (uint32_t)bad[idat + 1] << 16 |
                      (uint32_t)bad[idat + 2] << 8 | bad[idat + 3];
  bad[idat + 8 + idat_len] ^= 0x40; /* the CRC itself: the data still inflates */
  expect_fail("PNG with IDAT CRC error", put("crc.png", bad, len), &lenient, GRAFT_EFORMAT, "CRC");
  free(bad);
  uint8_t *t = png_with_chunk(png, len, "tEXt", "Comment\0x", true, &n2);
  expect_fail("PNG with tEXt CRC error", put("crc_text.png", t, n2), &lenient, GRAFT_EFORMAT,
              "CRC");
  free(t);
  t = png_with_chunk(png, len, "tEXt", "Comment", false, &n2);
  expect_ok("PNG with a tEXt chunk", put("text.png", t, n2), &strict);
  free(t);
  t = png_with_chunk(png, len, "XBAD", "critical", false, &n2);
  expect_fail("PNG with unknown critical", put("critical.png", t, n2), &lenient, GRAFT_EFORMAT,
              NULL);
  free(t);

  /* IHDR claiming 200000x200000, correct CRC, nothing after it */
  uint8_t hdr[33];
  memcpy(hdr, png, 8);
  be32(hdr + 8, 13);
  memcpy(hdr + 12, "IHDR", 4);
  be32(hdr + 16, 200000);
  be32(hdr + 20, 200000);
  hdr[24] = 8, hdr[25] = 2, hdr[26] = hdr[27] = hdr[28] = 0;
  be32(hdr + 29, crc32_png(hdr + 12, 17));
  expect_fail("PNG claiming 200000x200000", put("huge.png", hdr, sizeof hdr), &lenient,
              GRAFT_ELIMIT, "200000x200000, over the 64000000-pixel limit");
  free(png);
}

static void other_cases(void) {
  graft_decode_opts lenient = {0, 0, 0};
  expect_fail("empty file", put("empty.jpg", "", 0), &lenient, GRAFT_EFORMAT, "empty file");
  static const uint8_t gif[] = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, 255, 255,
                                255, 0, 0, 0, ',', 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 'D', 1, 0, ';'};
  expect_fail("GIF named .jpg", put("gif.jpg", gif, sizeof gif), &lenient,
              GRAFT_EUNSUPPORTED, "GIF is not supported");
  uint8_t bmp[58] = {'B', 'M', 58, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0, 1, 0, 0, 0,
                     1, 0, 0, 0, 1, 0, 24, 0};
  expect_fail("BMP named .png", put("bmp.png", bmp, sizeof bmp), &lenient, GRAFT_EUNSUPPORTED,
              "BMP is not supported");
  static const uint8_t webp[] = "RIFF\x24\x00\x00\x00WEBPVP8 ";
  expect_fail("WebP", put("x.webp.jpg", webp, sizeof webp - 1), &lenient, GRAFT_EUNSUPPORTED,
              "WebP");
  static const uint8_t tiff[] = "II*\x00\x08\x00\x00\x00";
  expect_fail("TIFF", put("x.tif.png", tiff, sizeof tiff - 1), &lenient, GRAFT_EUNSUPPORTED,
              "TIFF");
  static const char text[] = "this is a text file,\nnot an image\n";
  expect_fail("text file", put("text.jpg", text, sizeof text - 1), &lenient, GRAFT_EFORMAT,
              "not an image");
  const char *sub = graft_test_path(dir, "a_directory.jpg");
  mkdir(sub, 0777);
  expect_fail("directory", sub, &lenient, GRAFT_OK, "directory");
  /* Details never repeat the path: the caller names the file. */
  expect_fail("missing path", graft_test_path(dir, "missing.jpg"), &lenient, GRAFT_ENOENT,
              "No such file");
  CHECK(strstr(graft_detail(), "missing.jpg") == NULL);
  graft_image img = {0};
  CHECK(graft_image_decode(NULL, 0, NULL, &img) != GRAFT_OK);
  CHECK(graft_image_sniff(NULL, 0) == GRAFT_IMAGE_UNKNOWN);
}

/* Random byte flips and cuts of valid files: any status, but a clean one. */
static void mutations(void) {
  size_t jlen, plen;
  testimg_jpeg prog = {.w = 40, .h = 24, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_YCbCr,
                       .progressive = 1, .seed = 23};
  uint8_t *files[2] = {testimg_jpeg_bytes(&prog, &jlen), make_png(24, 16, &plen)};
  size_t lens[2] = {jlen, plen};
  uint32_t s = 12345;
  int failed = 0, ok = 0;
  for (int f = 0; f < 2; f++) {
    uint8_t *m = malloc(lens[f]);
    for (int iter = 0; iter < 300; iter++) {
      memcpy(m, files[f], lens[f]);
      size_t n = lens[f];
      if (iter % 3 == 2) {
        s = s * 1664525u + 1013904223u;
        n = 2 + (s >> 8) % (lens[f] - 2);
      } else {
        for (int k = 0; k < 1 + iter % 4; k++) {
          s = s * 1664525u + 1013904223u;
          size_t at = 3 + (s >> 8) % (lens[f] - 3);
          m[at] ^= (uint8_t)(1u << (s % 8));
        }
      }
      graft_decode_opts opts = {0, 0, iter & 1};
      graft_image img = {0};
      graft_status st = graft_image_decode(m, n, &opts, &img);
      if (st == GRAFT_OK) {
        ok++;
        CHECK(img.px != NULL && img.w > 0 && img.h > 0);
      } else {
        failed++;
        const char *d = graft_detail();
        CHECK_MSG(img.px == NULL && d[0] && !strchr(d, '\n'), "mutation %d: detail \"%s\"", iter,
                  d);
      }
      graft_image_free(&img);
    }
    free(m);
    free(files[f]);
  }
  printf("  mutations: %d decoded, %d refused cleanly\n", ok, failed);
}

int main(void) {
  dir = graft_test_tmpdir("bad_images");
  jpeg_cases();
  png_cases();
  other_cases();
  mutations();
  return graft_test_finish("bad_images");
}
