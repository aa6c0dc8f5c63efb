/* Preprocessing against PIL + torchvision 0.14, to the bit:
 *  - every decodable image of the shared hymenoptera set through
 *    Resize(256), CenterCrop(224), ToTensor, Normalize (ref_preprocess.py
 *    streams its tensors through a pipe: ~240 MB, never stored);
 *  - PIL resizes with boxes, up and down, odd sizes; F.resized_crop at fixed
 *    parameters; eval transforms with other sizes (zero padding included);
 *  - the train transform: ranges, determinism, flip frequency, fallback crop.
 * With --bench DIR: ms per image for decode + eval over DIR/<class>/<files>,
 * graft against PIL + torchvision, measured in the same run. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "harness.h"
#include "engine/base/clock.h"
#include "io/image.h"
#include "io/preprocess.h"
#include "io/resize.h"
#include "test_images.h"

/* ---- the train transform ---- */

static void train_checks(void) {
  graft_preproc p;
  graft_preproc_default(&p);
  /* crop parameters: inside the image, scale and ratio inside their ranges */
  graft_rng rng = {7, 0};
  double smin = 1, smax = 0, rmin = 10, rmax = 0;
  for (int t = 0; t < 20000; t++) {
    int w = 50 + t % 400, h = 50 + (t * 7) % 300, i, j, ch, cw;
    graft__random_resized_crop_params(w, h, &rng, &i, &j, &ch, &cw);
    bool inside = i >= 0 && j >= 0 && ch >= 1 && cw >= 1 && i + ch <= h && j + cw <= w;
    CHECK_MSG(inside, "crop %d,%d %dx%d outside %dx%d", j, i, cw, ch, w, h);
    double s = (double)cw * ch / ((double)w * h), r = (double)cw / ch;
    /* the bounds are on the real-valued draw; w and h are rounded after */
    double slack_s = (cw + ch + 1.0) / ((double)w * h), slack_r = 1.0 / ch + r / ch;
    CHECK_MSG(s >= 0.08 - slack_s && s <= 1.0, "scale %g", s);
    CHECK_MSG((r >= 0.75 - slack_r && r <= 4.0 / 3 + slack_r) || (cw == w && ch == h),
              "ratio %g (%dx%d of %dx%d)", r, cw, ch, w, h);
    smin = fmin(smin, s), smax = fmax(smax, s), rmin = fmin(rmin, r), rmax = fmax(rmax, r);
  }
  CHECK_MSG(smin < 0.1 && smax > 0.95 && rmin < 0.78 && rmax > 1.3,
            "draws do not span the ranges: scale %g-%g ratio %g-%g", smin, smax, rmin, rmax);
  /* 1000x10: every try is taller than the image; the fallback is the centre
   * at ratio 4/3 */
  int i, j, ch, cw;
  graft__random_resized_crop_params(1000, 10, &rng, &i, &j, &ch, &cw);
  CHECK_MSG(i == 0 && j == 493 && ch == 10 && cw == 13, "fallback %d,%d %dx%d", j, i, cw, ch);
  graft__random_resized_crop_params(10, 1000, &rng, &i, &j, &ch, &cw);
  CHECK_MSG(i == 493 && j == 0 && ch == 13 && cw == 10, "fallback %d,%d %dx%d", j, i, cw, ch);

  /* a horizontal gradient: flipped outputs decrease along x */
  int w = 300, h = 200;
  graft_image img = {w, h, malloc((size_t)w * h * 3)};
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) img.px[((size_t)y * w + x) * 3 + c] = (uint8_t)(x * 255 / (w - 1));
  p.crop = 32;
  float *a = malloc(sizeof *a * 3 * 32 * 32), *b = malloc(sizeof *b * 3 * 32 * 32);
  const float lo = (0.0f - p.mean[0]) / p.std[0] - 1e-6f, hi = (1.0f - p.mean[2]) / p.std[2] + 1e-6f;
  int flips = 0, n = 2000;
  for (int t = 0; t < n; t++) {
    graft_rng r = {99, (uint64_t)t * 1000};
    CHECK_OK(graft_preprocess_train(&img, &p, &r, a));
    bool in_range = true;
    for (int k = 0; k < 3 * 32 * 32; k++) in_range &= isfinite(a[k]) && a[k] >= lo && a[k] <= hi;
    CHECK_MSG(in_range, "train output %d outside the normalised range", t);
    double left = 0, right = 0;
    for (int y = 0; y < 32; y++) left += a[y * 32], right += a[y * 32 + 31];
    CHECK_MSG(left != right, "draw %d: flat crop", t);
    flips += left > right;
  }
  CHECK_MSG(flips > n * 0.45 && flips < n * 0.55, "%d flips of %d", flips, n);
  /* exactly F.resized_crop then hflip: the same draws, composed from the
   * public resize (checked against PIL below) and the normalisation */
  for (int t = 0; t < 40; t++) {
    graft_rng r = {7, (uint64_t)t * 1000}, q = r;
    CHECK_OK(graft_preprocess_train(&img, &p, &r, a));
    int ti, tj, th, tw;
    graft__random_resized_crop_params(w, h, &q, &ti, &tj, &th, &tw);
    bool flip = graft_rng_double(&q) < 0.5;
    graft_image part = {tw, th, malloc((size_t)tw * th * 3)}, sized;
    for (int y = 0; y < th; y++)
      memcpy(part.px + (size_t)y * tw * 3, img.px + ((size_t)(ti + y) * w + tj) * 3,
             (size_t)tw * 3);
    CHECK_OK(graft_image_resize(&part, 0, 0, tw, th, 32, 32, &sized));
    size_t bad = 0;
    for (int c = 0; c < 3; c++)
      for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
          uint8_t v = sized.px[((size_t)y * 32 + (flip ? 31 - x : x)) * 3 + c];
          float want = ((float)v / 255.0f - p.mean[c]) / p.std[c];
          bad += memcmp(&want, &a[(c * 32 + y) * 32 + x], sizeof want) != 0;
        }
    CHECK_MSG(bad == 0, "draw %d (%s): %zu values differ from crop+resize%s", t,
              flip ? "flipped" : "not flipped", bad, flip ? "+flip" : "");
    graft_image_free(&part);
    graft_image_free(&sized);
  }
  /* determinism: the same rng state gives the same tensor */
  graft_rng r1 = {5, 17}, r2 = {5, 17}, r3 = {5, 18};
  p.crop = 224;
  float *c = malloc(sizeof *c * 3 * 224 * 224), *d = malloc(sizeof *d * 3 * 224 * 224);
  CHECK_OK(graft_preprocess_train(&img, &p, &r1, c));
  CHECK_OK(graft_preprocess_train(&img, &p, &r2, d));
  CHECK(memcmp(c, d, sizeof *c * 3 * 224 * 224) == 0);
  CHECK(r1.counter == r2.counter);
  CHECK_OK(graft_preprocess_train(&img, &p, &r3, d));
  CHECK(memcmp(c, d, sizeof *c * 3 * 224 * 224) != 0);
  printf("train: %d of %d flipped; scale %.3f-%.3f, ratio %.3f-%.3f\n", flips, n, smin, smax, rmin,
         rmax);
  free(a), free(b), free(c), free(d);
  graft_image_free(&img);
}

/* ---- resizes and eval transforms at other sizes against PIL ---- */

static int compare_bytes(const char *what, const uint8_t *got, const uint8_t *ref, size_t n) {
  size_t diff = 0, first = 0;
  for (size_t k = 0; k < n; k++)
    if (got[k] != ref[k] && diff++ == 0) first = k;
  CHECK_MSG(diff == 0, "%s: %zu of %zu bytes differ, first at %zu (graft %d, PIL %d)", what, diff,
            n, first, got[first], ref[first]);
  return diff == 0;
}

static int compare_floats(const char *what, const float *got, const float *ref, size_t n) {
  graft_test_diff d = graft_test_compare(graft_test_f(got), graft_test_f(ref), NULL, n);
  CHECK_MSG(d.bits_differ == 0, "%s: %zu of %zu floats differ, largest %g at %zu", what,
            d.bits_differ, n, d.max_abs, d.where);
  return d.bits_differ == 0;
}

static void resize_cases(const char *data) {
  const char *dir = graft_test_tmpdir("preprocess");
  graft_image imgs[4] = {{0}};
  int n = 0;
  char args[8192];
  int used = snprintf(args, sizeof args, "resize '%s'", dir);
  /* two patterned images PIL reads as PPM, and two photos when the data is here */
  static const int sizes[2][2] = {{101, 67}, {13, 200}};
  for (int k = 0; k < 2; k++, n++) {
    int w = sizes[k][0], h = sizes[k][1];
    imgs[n] = (graft_image){w, h, testimg_pattern(w, h, 3, 70 + (uint32_t)k)};
    char name[32], hdr[64];
    snprintf(name, sizeof name, "pattern%d.ppm", k);
    const char *path = graft_test_path(dir, name);
    int hl = snprintf(hdr, sizeof hdr, "P6\n%d %d\n255\n", w, h);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(hdr, 1, (size_t)hl, f) == (size_t)hl &&
          fwrite(imgs[n].px, 3, (size_t)w * h, f) == (size_t)w * h);
    if (f) fclose(f);
    used += snprintf(args + used, sizeof args - (size_t)used, " '%s'", path);
  }
  static const char *photos[] = {"val/ants/10308379_1b6c72e180.jpg", "val/bees/1032546534_06907fe3b3.jpg"};
  for (int k = 0; data && k < 2; k++) {
    const char *path = graft_test_path(data, photos[k]);
    if (graft_image_load(path, NULL, &imgs[n]) != GRAFT_OK) continue; /* the set changed */
    used += snprintf(args + used, sizeof args - (size_t)used, " '%s'", path);
    n++;
  }
  if (graft_test_run_python("test/ref_preprocess.py", args) != 0) {
    CHECK_MSG(0, "ref_preprocess.py resize failed");
    return;
  }
  FILE *cases = fopen(graft_test_path(dir, "cases.txt"), "r");
  CHECK(cases != NULL);
  char kind[16], file[64], line[256];
  int total = 0, same = 0;
  while (cases && fgets(line, sizeof line, cases)) {
    int idx, v[7];
    if (sscanf(line, "%15s %d", kind, &idx) != 2 || idx < 0 || idx >= n) continue;
    const graft_image *im = &imgs[idx];
    size_t rlen = 0;
    uint8_t *ref = NULL;
    char what[300];
    line[strcspn(line, "\n")] = '\0';
    snprintf(what, sizeof what, "%s (%dx%d)", line, im->w, im->h);
    total++;
    if (strcmp(kind, "resize") == 0 &&
        sscanf(line, "%*s %*d %d %d %d %d %d %d %63s", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               file) == 7) {
      graft_image out = {0};
      ref = testimg_read(graft_test_path(dir, file), &rlen);
      CHECK_OK(graft_image_resize(im, v[0], v[1], v[2], v[3], v[4], v[5], &out));
      if (ref && rlen == (size_t)v[4] * v[5] * 3) same += compare_bytes(what, out.px, ref, rlen);
      else CHECK_MSG(0, "%s: reference has %zu bytes", what, rlen);
      graft_image_free(&out);
    } else if (strcmp(kind, "crop") == 0 &&
               sscanf(line, "%*s %*d %d %d %d %d %d %63s", &v[0], &v[1], &v[2], &v[3], &v[4],
                      file) == 6) {
      /* what graft_preprocess_train does after drawing (i, j, h, w) */
      graft__rgb_view view = {im->px + 3 * ((size_t)v[0] * im->w + v[1]), 3 * (size_t)im->w,
                              v[3], v[2]};
      const double box[4] = {0, 0, v[3], v[2]};
      uint8_t *out = malloc(3 * (size_t)v[4] * v[4]);
      CHECK_OK(graft__resize_window(&view, box, v[4], v[4], 0, 0, v[4], v[4], out));
      ref = testimg_read(graft_test_path(dir, file), &rlen);
      if (ref && rlen == 3 * (size_t)v[4] * v[4]) same += compare_bytes(what, out, ref, rlen);
      else CHECK_MSG(0, "%s: reference has %zu bytes", what, rlen);
      free(out);
    } else if (strcmp(kind, "eval") == 0 &&
               sscanf(line, "%*s %*d %d %d %63s", &v[0], &v[1], file) == 3) {
      graft_preproc p;
      graft_preproc_default(&p);
      p.resize = v[0];
      p.crop = v[1];
      size_t nf = 3 * (size_t)v[1] * v[1];
      float *out = malloc(sizeof *out * nf);
      CHECK_OK(graft_preprocess_eval(im, &p, out));
      ref = testimg_read(graft_test_path(dir, file), &rlen);
      if (ref && rlen == nf * sizeof(float)) same += compare_floats(what, out, (float *)ref, nf);
      else CHECK_MSG(0, "%s: reference has %zu bytes", what, rlen);
      free(out);
    } else {
      CHECK_MSG(0, "bad case line: %s", line);
    }
    free(ref);
  }
  if (cases) fclose(cases);
  printf("resize/crop/eval cases: %d of %d identical to PIL + torchvision (%d images)\n", same,
         total, n);
  CHECK(total >= 2 * 23);
  for (int k = 0; k < n; k++) graft_image_free(&imgs[k]);
}

/* ---- every hymenoptera image through the eval transform ---- */

static bool read_exact(FILE *f, void *buf, size_t n) { return fread(buf, 1, n, f) == n; }

static void eval_all(const char *data) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "'%s' '%s/test/ref_preprocess.py' eval '%s'",
           graft_test_python_or_skip(), GRAFT_SOURCE_DIR, data);
  printf("+ %s\n", cmd);
  fflush(stdout);
  FILE *f = popen(cmd, "r");
  CHECK(f != NULL);
  if (!f) return;
  graft_preproc p;
  graft_preproc_default(&p);
  const size_t nf = 3 * 224 * 224;
  float *ref = malloc(sizeof *ref * nf), *got = malloc(sizeof *got * nf);
  int total = 0, same = 0, strict_fail = 0;
  for (;;) {
    uint32_t len, shape[3];
    char name[1024];
    if (!read_exact(f, &len, 4) || len == 0) break;
    if (len >= sizeof name || !read_exact(f, name, len) || !read_exact(f, shape, sizeof shape) ||
        shape[0] * shape[1] * shape[2] != nf || !read_exact(f, ref, sizeof *ref * nf)) {
      CHECK_MSG(0, "malformed reference stream after %d images", total);
      break;
    }
    name[len] = '\0';
    total++;
    graft_image img = {0};
    graft_decode_opts lenient = {0, 0, 0}, strict = {0, 0, 1};
    const char *path = graft_test_path(data, name);
    graft_status s = graft_image_load(path, &lenient, &img);
    CHECK_MSG(s == GRAFT_OK, "%s: %s", name, graft_detail());
    if (s == GRAFT_OK) {
      CHECK_OK(graft_preprocess_eval(&img, &p, got));
      same += compare_floats(name, got, ref, nf);
    }
    graft_image_free(&img);
    if (graft_image_load(path, &strict, &img) != GRAFT_OK) {
      strict_fail++;
      printf("  strict decoding refuses %s\n", graft_detail());
    }
    graft_image_free(&img);
  }
  int rc = pclose(f);
  CHECK_MSG(rc == 0, "ref_preprocess.py eval exited with status %d", rc);
  printf("hymenoptera eval: %d of %d tensors identical to torchvision; %d refused by strict "
         "decoding\n", same, total, strict_fail);
  CHECK(total >= 390);
  /* what PIL cannot open is refused too, with a reason */
  graft_image img = {0};
  graft_status s = graft_image_load(graft_test_path(data, "train/ants/imageNotFound.gif"), NULL, &img);
  if (s != GRAFT_ENOENT) CHECK_MSG(s == GRAFT_EUNSUPPORTED, "the GIF: %s", graft_detail());
  free(ref);
  free(got);
}

/* ---- --bench DIR ---- */

static int bench(const char *dir) {
  char **files = NULL;
  int n = 0;
  DIR *top = opendir(dir);
  if (!top) graft_test_skip("cannot open %s", dir);
  struct dirent *e;
  while ((e = readdir(top))) {
    if (e->d_name[0] == '.') continue;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    DIR *d = opendir(sub);
    struct dirent *g;
    while (d && (g = readdir(d))) {
      if (g->d_name[0] == '.') continue;
      char *path = malloc(strlen(sub) + strlen(g->d_name) + 2);
      sprintf(path, "%s/%s", sub, g->d_name);
      graft_image img = {0};
      if (graft_image_load(path, NULL, &img) != GRAFT_OK) { /* the GIF: PIL's side skips it too */
        free(path);
        continue;
      }
      graft_image_free(&img);
      files = realloc(files, sizeof *files * (size_t)(n + 1));
      files[n++] = path;
    }
    if (d) closedir(d);
  }
  closedir(top);
  graft_preproc p;
  graft_preproc_default(&p);
  float *out = malloc(sizeof *out * 3 * 224 * 224);
  enum { ROUNDS = 5 };
  double t[2][ROUNDS];
  for (int full = 0; full < 2; full++)
    for (int r = 0; r < ROUNDS; r++) {
      double t0 = (graft_now() * 1e3);
      for (int k = 0; k < n; k++) {
        graft_image img = {0};
        if (graft_image_load(files[k], NULL, &img) != GRAFT_OK) {
          fprintf(stderr, "%s\n", graft_detail());
          return 1;
        }
        if (full) CHECK_OK(graft_preprocess_eval(&img, &p, out));
        graft_image_free(&img);
      }
      t[full][r] = ((graft_now() * 1e3) - t0) / n;
    }
  for (int full = 0; full < 2; full++) {
    printf("graft           %-12s %8.3f ms/image (median of %d, %d images, 1 thread)\n",
           full ? "decode+eval" : "decode", graft_median(t[full], ROUNDS), ROUNDS, n);
  }
  fflush(stdout);
  char args[4200];
  snprintf(args, sizeof args, "bench '%s' %d", dir, ROUNDS);
  int rc = graft_test_run_python("test/ref_preprocess.py", args);
  for (int k = 0; k < n; k++) free(files[k]);
  free(files);
  free(out);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--bench") == 0) return bench(argv[2]);
  train_checks();
  graft_test_python_or_skip();
  const char *d = graft_test_data_dir();
  const char *data = d ? graft_test_path(d, "hymenoptera") : NULL;
  struct stat st;
  if (data && (stat(data, &st) != 0 || !S_ISDIR(st.st_mode))) data = NULL;
  static char data_buf[4096];
  if (data) data = strcpy(data_buf, data); /* graft_test_path's buffers rotate */
  resize_cases(data);
  if (data) eval_all(data);
  if (!data && graft_test_failures == 0)
    graft_test_skip("the rest passed; no hymenoptera data for the full eval check (set GRAFT_DATA)");
  return graft_test_finish("preprocess");
}
