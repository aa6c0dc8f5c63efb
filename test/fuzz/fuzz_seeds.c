/* The libFuzzer harnesses' seed corpora, made at test time (test/fuzz/run.sh):
 *
 *   fuzz_seeds image DIR   small JPEGs of every kind graft decodes (baseline,
 *                          progressive, arithmetic, restart markers,
 *                          grayscale, CMYK, YCCK) and PNGs (RGB, RGBA, gray,
 *                          gray + alpha, palette, 16-bit)
 *   fuzz_seeds KIND DIR    the seed of an HDF5 kind (test/h5_kinds.h) */
#include <png.h>
#include <stdio.h>
#include <string.h>

#include "../h5_kinds.h"
#include "../harness.h"
#include "../test_images.h"

static void write_seed(const char *dir, const char *name, const uint8_t *data, size_t len) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  CHECK_MSG(testimg_write(path, data, len) == 0, "cannot write %s", path);
}

static void jpegs(const char *dir) {
  static const struct {
    const char *name;
    testimg_jpeg o;
  } cases[] = {
      {"baseline.jpg", {.w = 24, .h = 17, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_YCbCr}},
      {"progressive.jpg",
       {.w = 31, .h = 20, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_YCbCr, .progressive = 1}},
      {"arith.jpg",
       {.w = 20, .h = 16, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_YCbCr, .arith = 1}},
      {"restart.jpg",
       {.w = 40, .h = 33, .comps = 3, .in_cs = JCS_RGB, .jpeg_cs = JCS_YCbCr, .restart_rows = 1}},
      {"gray.jpg",
       {.w = 19, .h = 23, .comps = 1, .in_cs = JCS_GRAYSCALE, .jpeg_cs = JCS_GRAYSCALE}},
      {"cmyk.jpg", {.w = 17, .h = 12, .comps = 4, .in_cs = JCS_CMYK, .jpeg_cs = JCS_CMYK}},
      {"ycck.jpg",
       {.w = 17, .h = 12, .comps = 4, .in_cs = JCS_CMYK, .jpeg_cs = JCS_YCCK, .progressive = 1}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len;
    uint8_t *b = testimg_jpeg_bytes(&cases[i].o, &len);
    write_seed(dir, cases[i].name, b, len);
    free(b);
  }
}

static void pngs(const char *dir) {
  static const struct {
    const char *name;
    png_uint_32 format;
    int channels, bytes;
  } cases[] = {
      {"rgb.png", PNG_FORMAT_RGB, 3, 1},       {"rgba.png", PNG_FORMAT_RGBA, 4, 1},
      {"gray.png", PNG_FORMAT_GRAY, 1, 1},     {"gray_alpha.png", PNG_FORMAT_GA, 2, 1},
      {"gray16.png", PNG_FORMAT_LINEAR_Y, 1, 2}, {"rgb16.png", PNG_FORMAT_LINEAR_RGB, 3, 2},
      {"palette.png", PNG_FORMAT_RGB_COLORMAP, 1, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = 13;
    im.height = 9;
    im.format = cases[i].format;
    int n = cases[i].channels * cases[i].bytes;
    uint8_t *px = testimg_pattern(13, 9, n, (uint32_t)i + 1);
    uint8_t colormap[256 * 3];
    for (int c = 0; c < 256 * 3; c++) colormap[c] = (uint8_t)(c * 7);
    im.colormap_entries = (im.format & PNG_FORMAT_FLAG_COLORMAP) ? 256 : 0;
    const void *cmap = im.colormap_entries ? colormap : NULL;
    png_alloc_size_t size = 0;
    CHECK(png_image_write_to_memory(&im, NULL, &size, 0, px, 0, cmap));
    uint8_t *mem = graft_test_alloc(size);
    CHECK(png_image_write_to_memory(&im, mem, &size, 0, px, 0, cmap));
    write_seed(dir, cases[i].name, mem, size);
    free(mem);
    free(px);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fuzz_seeds image|KIND DIR\n");
    return 2;
  }
  if (strcmp(argv[1], "image") == 0) {
    jpegs(argv[2]);
    pngs(argv[2]);
  } else {
    int k = h5_kind_find(argv[1]);
    if (k < 0) {
      fprintf(stderr, "fuzz_seeds: unknown kind %s\n", argv[1]);
      return 2;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.h5", argv[2], argv[1]);
    h5_kind_seed((h5_kind)k, path);
  }
  return graft_test_finish("fuzz_seeds");
}
