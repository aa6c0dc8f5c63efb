/* Decoder coverage against PIL: every JPEG and PNG flavour decodes to
 * exactly Image.open(f).convert('RGB') (16-bit gray: to its high byte, see
 * io/png.c). The PNGs and most JPEGs are written by ref_preprocess.py; the
 * JPEGs PIL cannot write (YCCK, CMYK without an Adobe marker, arithmetic
 * coding, restart markers, non-interleaved scans) are written here with
 * libjpeg's compressor, and PIL decodes them for the reference. */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "io/image.h"
#include "test_images.h"

static const char *write_c_jpegs(const char *dir) {
  static char extras[4096];
  /* three sequential scans, one component each */
  static const jpeg_scan_info nonint[3] = {
      {1, {0}, 0, 63, 0, 0}, {1, {1}, 0, 63, 0, 0}, {1, {2}, 0, 63, 0, 0}};
  struct {
    const char *name;
    testimg_jpeg o;
  } cases[] = {
      {"c_ycck.jpg", {.w = 45, .h = 31, .comps = 4, .in_cs = JCS_CMYK, .jpeg_cs = JCS_YCCK, .seed = 1}},
      {"c_ycck_prog.jpg", {.w = 45, .h = 31, .comps = 4, .in_cs = JCS_CMYK, .jpeg_cs = JCS_YCCK,
                           .progressive = 1, .seed = 2}},
      {"c_cmyk_noadobe.jpg", {.w = 33, .h = 20, .comps = 4, .in_cs = JCS_CMYK, .jpeg_cs = JCS_CMYK,
                              .no_adobe = 1, .seed = 3}},
      {"c_rgb_adobe.jpg", {.w = 40, .h = 24, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_RGB,
                           .seed = 4}},
      {"c_arith.jpg", {.w = 50, .h = 38, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_YCbCr,
                       .arith = 1, .seed = 5}},
      {"c_arith_prog.jpg", {.w = 50, .h = 38, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_YCbCr,
                            .arith = 1, .progressive = 1, .seed = 6}},
      {"c_restart.jpg", {.w = 70, .h = 66, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_YCbCr,
                         .restart_rows = 1, .seed = 7}},
      {"c_nonint.jpg", {.w = 41, .h = 29, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_YCbCr,
                        .scans = nonint, .nscans = 3, .seed = 8}},
      {"c_gray_restart.jpg", {.w = 30, .h = 70, .comps = 1, .in_cs = JCS_GRAYSCALE,
                              .jpeg_cs = JCS_GRAYSCALE, .restart_rows = 2, .seed = 9}},
  };
  extras[0] = '\0';
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len;
    uint8_t *b = testimg_jpeg_bytes(&cases[i].o, &len);
    const char *path = graft_test_path(dir, cases[i].name);
    if (testimg_write(path, b, len) != 0) {
      fprintf(stderr, "cannot write %s\n", path);
      exit(1);
    }
    free(b);
    size_t used = strlen(extras);
    snprintf(extras + used, sizeof extras - used, " '%s'", path);
  }
  return extras;
}

int main(void) {
  graft_test_python_or_skip();
  const char *dir = graft_test_tmpdir("image_decode");
  const char *extras = write_c_jpegs(dir);
  char args[8192];
  snprintf(args, sizeof args, "synth '%s'%s", dir, extras);
  if (graft_test_run_python("test/ref_preprocess.py", args) != 0) {
    fprintf(stderr, "ref_preprocess.py synth failed\n");
    return 1;
  }

  FILE *m = fopen(graft_test_path(dir, "manifest.txt"), "r");
  CHECK(m != NULL);
  if (!m) return graft_test_finish("image_decode");
  char name[256], rule[32];
  int n = 0, same = 0;
  while (fscanf(m, "%255s %31s", name, rule) == 2) {
    n++;
    char ref_name[300];
    snprintf(ref_name, sizeof ref_name, "%s.rgb", name);
    size_t rlen = 0;
    uint8_t *ref = testimg_read(graft_test_path(dir, ref_name), &rlen);
    CHECK_MSG(ref && rlen >= 8, "%s: no reference", name);
    if (!ref || rlen < 8) {
      free(ref);
      continue;
    }
    uint32_t rw, rh;
    memcpy(&rw, ref, 4);
    memcpy(&rh, ref + 4, 4);
    graft_image img = {0};
    graft_decode_opts strict = {0, 0, 1};
    graft_status s = graft_image_load(graft_test_path(dir, name), &strict, &img);
    CHECK_MSG(s == GRAFT_OK, "%s: %s: %s", name, graft_strerror(s), graft_detail());
    if (s == GRAFT_OK) {
      bool dims = img.w == (int)rw && img.h == (int)rh && rlen == 8 + (size_t)rw * rh * 3;
      CHECK_MSG(dims, "%s: graft %dx%d, PIL %ux%u", name, img.w, img.h, rw, rh);
      if (dims) {
        size_t diff = 0, first = 0, bytes = (size_t)rw * rh * 3;
        for (size_t i = 0; i < bytes; i++)
          if (img.px[i] != ref[8 + i] && diff++ == 0) first = i;
        CHECK_MSG(diff == 0, "%s (%s): %zu of %zu bytes differ, first at pixel %zu channel %zu "
                  "(graft %d, reference %d)", name, rule, diff, bytes, first / 3, first % 3,
                  img.px[first], ref[8 + first]);
        if (diff == 0) same++;
      }
    }
    graft_image_free(&img);
    free(ref);
  }
  fclose(m);
  printf("%d of %d images decode exactly as the reference\n", same, n);
  CHECK(n >= 60);
  return graft_test_finish("image_decode");
}
