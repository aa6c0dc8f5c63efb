/* Keras's HDF5 weights layout, read as a graft VGG16 (models/keras.h).
 *
 * The layout is that of Keras's save_weights to .h5 and of the files
 * keras.applications downloads; Keras's own legacy reader is the reference
 * for what is accepted. The root attribute layer_names lists the model's
 * layers in order; each is a group whose attribute weight_names lists its
 * weights as dataset paths relative to the group (tf.keras 2's
 * "block1_conv1/kernel:0", Keras 3's "block1_conv1/kernel", Keras 1's
 * "block1_conv1_W_1:0"). A layer without weights (input, pooling) has no
 * weight_names, an empty one, or one that is not strings. As in Keras,
 * layers with weights are matched by order, not by name: VGG16's 13
 * convolutions, then fc1, fc2 and predictions when the file has its top.
 *
 * Converted at load into graft's (torchvision's) conventions:
 *  - kernels HWIO -> OIHW, Dense kernels (in, out) -> (out, in);
 *  - the first convolution's input channels BGR -> RGB;
 *  - fc1's inputs from Keras's NHWC flatten of block5_pool to torchvision's
 *    NCHW order: W[o, c*49 + h*7 + w] = fc1[(h*7 + w)*512 + c, o];
 *  - Keras's "caffe" input, x = 255 * p - mean_bgr on pixels p in [0, 1],
 *    becomes graft's (p - mean) / std with mean = caffe mean / 255 (RGB)
 *    and std = k / 255, i.e. the caffe input divided by k;
 *  - every convolution's bias divided by k, and fc1's kernel multiplied by k.
 *
 * Why k: caffe inputs stay in 0..255, so this trunk's features are ~58 times
 * larger than a torchvision-trained VGG16's, and the tutorial's recipe (a new
 * classifier, SGD with lr 0.001) diverges on them. Convolution + ReLU and
 * max pooling are positively homogeneous: relu(W(x/k) + b/k) = relu(Wx + b)/k.
 * Dividing the input and every bias by k therefore divides every activation
 * by exactly k, and fc1 * k gives the same logits as Keras. k = 57.6 puts the
 * input on torchvision's scale (57.6 / 255 = 0.2259, the mean of its stds
 * 0.229, 0.224, 0.225) and the features near a torchvision VGG16's, where
 * the recipe was tuned. */
#include "models/keras.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_CONV 13
#define N_DENSE 3
#define MAX_LAYER_NAMES 100000
#define MAX_CLASSES 100000
#define SLAB_BYTES (16u << 20) /* Dense kernels are converted this much at a time */

typedef struct klayer {
  const char *name; /* from layer_names */
  char **weights;   /* weight_names, paths relative to the layer's group */
  int n_weights;
} klayer;

typedef struct kfile {
  graft_h5 *f;
  const char *base; /* "" or "model_weights/" */
  char **names;
  int n_names;
  klayer layers[N_CONV + N_DENSE + 1]; /* the layers with weights, in order (one too many
                                          is enough to say so) */
  int n_layers;
} kfile;

/* What the i-th layer with weights must be: Keras's VGG16 name and shape. */
typedef struct kexpect {
  char name[40];
  bool conv;
  const graft_param *w, *b;
  int rank;
  int64_t dims[4]; /* Keras's kernel shape */
} kexpect;

static const char *ordinal(int n, char *buf, size_t cap) {
  const char *suffix = (n % 100 >= 11 && n % 100 <= 13) ? "th"
                       : n % 10 == 1                    ? "st"
                       : n % 10 == 2                    ? "nd"
                       : n % 10 == 3                    ? "rd"
                                                        : "th";
  snprintf(buf, cap, "%d%s", n, suffix);
  return buf;
}

bool graft__keras_detect(graft_h5 *f) {
  if (graft_h5_has_attr(f, "format")) return false;
  return graft_h5_has_attr(f, "layer_names") ||
         (graft_h5_has_group(f, "model_weights") &&
          graft_h5_has_attr_at(f, "model_weights", "layer_names"));
}

static void kfile_free(kfile *k) {
  for (int i = 0; i < k->n_layers; i++)
    graft_strv_free(k->layers[i].weights, k->layers[i].n_weights);
  graft_strv_free(k->names, k->n_names);
}

/* Names from the file end up in paths and one-line messages. */
static bool plain_name(const char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) return false;
  return n > 0 && n <= 512;
}

/* "model_weights/" + layer + "/" + weight: the dataset's path in the file. */
static void dataset_path(const kfile *k, const klayer *l, int weight, char *buf, size_t cap) {
  snprintf(buf, cap, "%s%s/%s", k->base, l->name, l->weights[weight]);
}

/* layer_names, and the weight_names of each layer: the layers with weights. */
static graft_status kfile_open(graft_h5 *f, kfile *k) {
  char safe[96], group[1100];
  memset(k, 0, sizeof *k);
  k->f = f;
  k->base = graft_h5_has_attr(f, "layer_names") ? "" : "model_weights/";
  graft_status s = *k->base ? graft_h5_attr_strings_at(f, "model_weights", "layer_names",
                                                       &k->names, &k->n_names)
                            : graft_h5_attr_strings(f, "layer_names", &k->names, &k->n_names);
  if (s != GRAFT_OK) return graft__context(s, "Keras weights");
  if (k->n_names > MAX_LAYER_NAMES)
    return graft__fail(GRAFT_ELIMIT, "Keras weights: %d layer names, over the limit of %d",
                       k->n_names, MAX_LAYER_NAMES);
  for (int i = 0; i < k->n_names; i++) {
    const char *name = k->names[i];
    snprintf(group, sizeof group, "%s%s", k->base, name);
    if (!plain_name(name))
      return graft__fail(GRAFT_EFORMAT,
                         "Keras weights: attribute \"layer_names\": name %d is not a layer name",
                         i);
    if (!graft_h5_has_group(f, group))
      return graft__fail(GRAFT_EFORMAT, "Keras layer \"%s\": no group \"%s%s\" in the file",
                         graft__printable(name, safe, sizeof safe), k->base, safe);
    /* Keras reads no weights from a layer whose weight_names is absent or
     * empty; one that is not strings (an empty float array, as Keras 3
     * writes it) is the same. */
    if (strcmp(graft_h5_attr_kind_at(f, group, "weight_names"), "string") != 0) continue;
    char **w;
    int n;
    s = graft_h5_attr_strings_at(f, group, "weight_names", &w, &n);
    if (s != GRAFT_OK)
      return graft__context(s, "Keras layer \"%s\"", graft__printable(name, safe, sizeof safe));
    for (int j = 0; j < n && s == GRAFT_OK; j++)
      if (!plain_name(w[j]))
        s = graft__fail(GRAFT_EFORMAT,
                        "Keras layer \"%s\": attribute \"weight_names\": name %d is not a "
                        "dataset path",
                        graft__printable(name, safe, sizeof safe), j);
    if (s != GRAFT_OK || n == 0) {
      graft_strv_free(w, n);
      if (s != GRAFT_OK) return s;
      continue;
    }
    if (k->n_layers == N_CONV + N_DENSE + 1) {
      graft_strv_free(w, n);
      break; /* more than VGG16 has: the first extra one is enough to say so */
    }
    k->layers[k->n_layers++] = (klayer){name, w, n};
  }
  return GRAFT_OK;
}

/* VGG16's layers with weights as Keras names and shapes them. */
static int expectations(const graft_arch *a, kexpect *e) {
  int n = 0, block = 1, conv = 0;
  for (int i = 0; i < a->n_trunk; i++) {
    const graft_layer *l = &a->trunk[i];
    if (l->kind == GRAFT_LAYER_MAXPOOL2D) block++, conv = 0;
    if (l->kind != GRAFT_LAYER_CONV2D) continue;
    const graft_conv2d_params *c = &l->u.conv;
    e[n] = (kexpect){.conv = true,
                     .w = graft_arch_weight(a, l),
                     .b = graft_arch_bias(a, l),
                     .rank = 4,
                     .dims = {c->kernel, c->kernel, c->in_c, c->out_c}};
    snprintf(e[n].name, sizeof e[n].name, "block%d_conv%d", block, ++conv);
    n++;
  }
  static const char *const dense[N_DENSE] = {"fc1", "fc2", "predictions"};
  int d = 0;
  for (int i = 0; i < a->n_classifier; i++) {
    const graft_layer *l = &a->classifier[i];
    if (l->kind != GRAFT_LAYER_LINEAR) continue;
    e[n] = (kexpect){.conv = false,
                     .w = graft_arch_weight(a, l),
                     .b = graft_arch_bias(a, l),
                     .rank = 2,
                     .dims = {l->u.linear.in, l->u.linear.out}};
    snprintf(e[n].name, sizeof e[n].name, "%s", dense[d++]);
    n++;
  }
  return n;
}

/* "Keras layer "x"" and, when its name is not VGG16's, which layer it stands for. */
static graft_status layer_context(graft_status s, const klayer *l, const kexpect *e, int i) {
  char safe[96], nth[16];
  if (strcmp(l->name, e->name) == 0)
    return graft__context(s, "Keras layer \"%s\"", e->name);
  return graft__context(s, "Keras layer \"%s\" (VGG16's %s layer with weights is %s)",
                        graft__printable(l->name, safe, sizeof safe),
                        ordinal(i + 1, nth, sizeof nth), e->name);
}

/* One layer's datasets: two weights, float32, Keras's shapes, stored plainly. */
static graft_status check_layer(const kfile *k, int i, const kexpect *e) {
  const klayer *l = &k->layers[i];
  char path[2200];
  if (l->n_weights != 2)
    return layer_context(graft__fail(GRAFT_ESHAPE, "%d weight%s, expected 2 (kernel, bias)",
                                     l->n_weights, l->n_weights == 1 ? "" : "s"),
                         l, e, i);
  dataset_path(k, l, 0, path, sizeof path);
  graft_status s = graft_h5_check_f32(k->f, path, e->rank, e->dims);
  if (s == GRAFT_ESHAPE && e->conv) {
    /* Keras 1's channels-first ("th") files keep kernels (out, in, h, w). */
    int rank;
    int64_t d[4];
    char why[1024];
    snprintf(why, sizeof why, "%s", graft_detail());
    if (graft_h5_dataset_shape(k->f, path, &rank, d, 4) == GRAFT_OK && rank == 4 &&
        d[0] == e->dims[3] && d[1] == e->dims[2] && d[2] == e->dims[0] && d[3] == e->dims[1])
      s = graft__fail(s, "%s: a channels-first (Theano-ordered) kernel; use the "
                         "tf_dim_ordering_tf_kernels file",
                      why);
    else
      s = graft__fail(s, "%s", why);
  }
  if (s == GRAFT_OK) {
    int64_t bd[1] = {e->dims[e->rank - 1]};
    dataset_path(k, l, 1, path, sizeof path);
    s = graft_h5_check_f32(k->f, path, 1, bd);
  }
  return s == GRAFT_OK ? s : layer_context(s, l, e, i);
}

/* How many classes a top's predictions layer has (1000 when it cannot be
 * read: the shape check then says what is wrong). */
static int top_classes(const kfile *k) {
  const klayer *l = &k->layers[N_CONV + N_DENSE - 1];
  char path[2200];
  int rank;
  int64_t d[4];
  if (l->n_weights < 1) return 1000;
  dataset_path(k, l, 0, path, sizeof path);
  if (graft_h5_dataset_shape(k->f, path, &rank, d, 4) == GRAFT_OK && rank == 2 && d[1] >= 1 &&
      d[1] <= MAX_CLASSES)
    return (int)d[1];
  return 1000;
}

/* The file's layers against VGG16's, in order: the first that does not fit
 * is the error. On success *top says whether fc1, fc2 and predictions are there. */
static graft_status match(const kfile *k, bool *top, int *classes) {
  char safe[96], nth[16];
  *classes = k->n_layers >= N_CONV + N_DENSE ? top_classes(k) : 1000;
  graft_arch a;
  GRAFT_TRY(graft_arch_init(&a, "vgg16", *classes));
  kexpect e[N_CONV + N_DENSE];
  expectations(&a, e);
  int n = k->n_layers;
  for (int i = 0; i < n && i < N_CONV + N_DENSE; i++) GRAFT_TRY(check_layer(k, i, &e[i]));
  if (n > N_CONV + N_DENSE)
    return graft__fail(GRAFT_ESHAPE,
                       "Keras layer \"%s\" is a %s layer with weights: VGG16 has %d (%d "
                       "without its top)",
                       graft__printable(k->layers[N_CONV + N_DENSE].name, safe, sizeof safe),
                       ordinal(N_CONV + N_DENSE + 1, nth, sizeof nth), N_CONV + N_DENSE, N_CONV);
  if (n == 0)
    return graft__fail(GRAFT_EFORMAT, "Keras weights: no layer has weights");
  if (n < N_CONV || (n > N_CONV && n < N_CONV + N_DENSE))
    return graft__fail(GRAFT_ESHAPE,
                       "Keras weights: %d layers with weights, the last \"%s\"; VGG16 has %d "
                       "(%d without its top): %s is missing",
                       n, graft__printable(k->layers[n - 1].name, safe, sizeof safe),
                       N_CONV + N_DENSE, N_CONV, e[n].name);
  *top = n == N_CONV + N_DENSE;
  return GRAFT_OK;
}

/* ---- reading and converting ---- */

/* A convolution: HWIO -> OIHW, BGR -> RGB inputs for the first, bias / k. */
static graft_status read_conv(const kfile *k, int i, const kexpect *e, graft_model *m,
                              float *tmp) {
  const klayer *l = &k->layers[i];
  char path[2200];
  const int64_t kh = e->dims[0], kw = e->dims[1], in = e->dims[2], out = e->dims[3];
  dataset_path(k, l, 0, path, sizeof path);
  GRAFT_TRY(graft_h5_read_f32(k->f, path, 4, e->dims, tmp, true));
  float *w = graft_model_param(m, e->w);
  for (int64_t h = 0; h < kh; h++)
    for (int64_t x = 0; x < kw; x++)
      for (int64_t c = 0; c < in; c++) {
        int64_t cg = i == 0 ? in - 1 - c : c; /* Keras's B, G, R are graft's inputs 2, 1, 0 */
        const float *src = tmp + ((h * kw + x) * in + c) * out;
        for (int64_t o = 0; o < out; o++) w[((o * in + cg) * kh + h) * kw + x] = src[o];
      }
  dataset_path(k, l, 1, path, sizeof path);
  float *b = graft_model_param(m, e->b);
  GRAFT_TRY(graft_h5_read_f32(k->f, path, 1, &e->dims[3], b, true));
  for (int64_t o = 0; o < out; o++) b[o] = (float)((double)b[o] / GRAFT_KERAS_SCALE);
  return GRAFT_OK;
}

/* A Dense layer: kernel (in, out) -> weight (out, in), times `scale`. Its
 * inputs are `positions` x `channels` values, Keras's row p*channels + c
 * being graft's column c*positions + p (fc1: 49 positions of 512 channels;
 * the others: one position). A slab of channels is gathered in graft's
 * column order, then transposed in tiles, so that the weight is written
 * row by row and no second copy of the kernel is needed. */
static graft_status read_dense(const kfile *k, int i, const kexpect *e, graft_model *m,
                               int64_t positions, double scale, float *slab, float *rows) {
  const klayer *l = &k->layers[i];
  char path[2200];
  const int64_t in = e->dims[0], out = e->dims[1], channels = in / positions;
  const int64_t per_slab = (int64_t)(SLAB_BYTES / sizeof(float)) / (positions * out);
  const int64_t cb = per_slab < 1 ? 1 : per_slab < channels ? per_slab : channels;
  float *w = graft_model_param(m, e->w);
  dataset_path(k, l, 0, path, sizeof path);
  for (int64_t c0 = 0; c0 < channels; c0 += cb) {
    int64_t nc = channels - c0 < cb ? channels - c0 : cb;
    for (int64_t p = 0; p < positions; p++) {
      GRAFT_TRY(graft_h5_read_f32_rows(k->f, path, 2, e->dims, p * channels + c0, nc, rows, true));
      for (int64_t c = 0; c < nc; c++)
        memcpy(slab + (c * positions + p) * out, rows + c * out, (size_t)out * sizeof(float));
    }
    const int64_t cols = nc * positions, col0 = c0 * positions;
    enum { TILE = 16 };
    for (int64_t o0 = 0; o0 < out; o0 += TILE)
      for (int64_t r = 0; r < cols; r++)
        for (int64_t o = o0; o < out && o < o0 + TILE; o++) {
          float v = (float)((double)slab[r * out + o] * scale);
          if (!isfinite(v))
            return graft__fail(GRAFT_ENONFINITE,
                               "dataset \"%s\": %g times the feature scale %g is too large",
                               path, (double)slab[r * out + o], scale);
          w[o * in + col0 + r] = v;
        }
  }
  dataset_path(k, l, 1, path, sizeof path);
  return graft_h5_read_f32(k->f, path, 1, &e->dims[1], graft_model_param(m, e->b), true);
}

static graft_status read_all(const kfile *k, bool top, graft_model *m) {
  kexpect e[N_CONV + N_DENSE];
  expectations(&m->arch, e);
  size_t floats = SLAB_BYTES / sizeof(float);
  for (int i = 0; i < N_CONV; i++)
    if (e[i].w->count > floats) floats = e[i].w->count;
  float *tmp = malloc(floats * sizeof(float));
  float *rows = top ? malloc(SLAB_BYTES) : NULL;
  graft_status s = tmp && (rows || !top) ? GRAFT_OK
                                         : graft__fail(GRAFT_ENOMEM, "out of memory");
  int i = 0;
  for (; s == GRAFT_OK && i < N_CONV; i++) s = read_conv(k, i, &e[i], m, tmp);
  for (; top && s == GRAFT_OK && i < N_CONV + N_DENSE; i++) {
    /* fc1 reads block5_pool: 7 x 7 positions of the last convolution's channels. */
    int64_t positions = i == N_CONV ? e[i].dims[0] / e[N_CONV - 1].dims[3] : 1;
    double scale = i == N_CONV ? GRAFT_KERAS_SCALE : 1.0;
    s = read_dense(k, i, &e[i], m, positions, scale, tmp, rows);
  }
  free(tmp);
  free(rows);
  return s == GRAFT_OK ? s : layer_context(s, &k->layers[i - 1], &e[i - 1], i - 1);
}

graft_status graft__keras_load(graft_h5 *f, graft_arena *mem, graft_model **out) {
  *out = NULL;
  kfile k;
  graft_model *m = NULL;
  bool top = false;
  int classes = 1000;
  graft_status s = kfile_open(f, &k);
  if (s == GRAFT_OK) s = match(&k, &top, &classes);
  if (s == GRAFT_OK) s = graft__model_create_in(mem, "vgg16", classes, &m);
  if (s == GRAFT_OK) s = read_all(&k, top, m);
  if (s == GRAFT_OK && top && classes == 1000)
    s = graft_model_set_class_names(m, (char *const *)graft__imagenet_classes, 1000);
  kfile_free(&k);
  if (s != GRAFT_OK) {
    graft__model_drop(m); /* its parameters go back with the job */
    return s;
  }
  const double mean[3] = {GRAFT_KERAS_MEAN_R, GRAFT_KERAS_MEAN_G, GRAFT_KERAS_MEAN_B};
  for (int c = 0; c < 3; c++) {
    m->pre.mean[c] = (float)(mean[c] / 255.0);
    m->pre.std[c] = (float)(GRAFT_KERAS_SCALE / 255.0);
  }
  m->no_classifier = !top;
  *out = m;
  return GRAFT_OK;
}
