/* convert: a model in another format, chosen by the output's extension. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "apps/common.h"
#include "models/export.h"
#include "models/model.h"

static const char usage[] =
    "usage: convert [options] IN OUT\n"
    "Write the model IN (anything classify -w reads: graft-weights or Keras HDF5)\n"
    "as OUT, in the format its extension names:\n"
    "  .h5           graft-weights (HDF5), what classify and finetune write and read\n"
    "  .safetensors  F32 tensors named as torchvision's state_dict; the class names\n"
    "                and preprocessing in __metadata__\n"
    "  .onnx         the torchvision graph (opset 17): input \"input\" [batch,3,crop,crop],\n"
    "                normalised; output \"logits\" [batch,num_classes]; the class names\n"
    "                and preprocessing in metadata_props\n"
    "OUT is written atomically: a failure leaves nothing behind.\n"
    "\n"
    "  -h, --help     this text\n"
    "  -V, --version  version\n"
    "\n"
    "Exit status: 0 written, 2 usage error or a model that cannot be read or written.\n";

typedef graft_status (*writer_fn)(const char *path, const graft_model *m);

static const struct {
  const char *ext;
  writer_fn write;
} formats[] = {
    {".h5", graft_model_save},
    {".safetensors", graft_model_save_safetensors},
    {".onnx", graft_model_save_onnx},
};
#define N_FORMATS (sizeof formats / sizeof formats[0])

/* The writer for path's extension (any case), or NULL. */
static writer_fn writer_for(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strlen(base);
  for (size_t i = 0; i < N_FORMATS; i++) {
    size_t e = strlen(formats[i].ext);
    if (n > e && strcasecmp(base + n - e, formats[i].ext) == 0) return formats[i].write;
  }
  return NULL;
}

int main(int argc, char **argv) {
  app_init("convert");
  static const struct option longs[] = {
      {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "hV", longs, NULL)) != -1) {
    switch (c) {
      case 'h': fputs(usage, stdout); return APP_OK;
      case 'V': printf("convert (graft) %s\n", GRAFT_VERSION); return APP_OK;
      default: app_error(NULL, "unknown option %s (see --help)", argv[optind - 1]); return APP_USAGE;
    }
  }
  if (argc - optind != 2) {
    app_error(NULL, "expected IN and OUT, got %d argument%s (see --help)", argc - optind,
              argc - optind == 1 ? "" : "s");
    return APP_USAGE;
  }
  const char *in = argv[optind], *out = argv[optind + 1];
  writer_fn write = writer_for(out);
  if (!write) {
    app_error(out, "unknown output format: the extension must be .h5, .safetensors or .onnx");
    return APP_USAGE;
  }
  graft_model *m;
  graft_status s = graft_model_load(in, &m);
  if (s != GRAFT_OK) {
    app_status_error(in, s);
    return APP_USAGE;
  }
  /* A trunk awaiting its classifier (a Keras file without its top) would be
   * zeros in any format; the .onnx and .safetensors writers refuse it too. */
  if (m->no_classifier) {
    app_error(in, "no classifier: fine-tune it first");
    graft_model_free(m);
    return APP_USAGE;
  }
  s = write(out, m);
  if (s != GRAFT_OK) {
    /* The model's own defects are the input's; the rest is the output's. */
    app_status_error(s == GRAFT_EUNSUPPORTED || s == GRAFT_EFORMAT ? in : out, s);
    graft_model_free(m);
    return APP_USAGE;
  }
  graft_model_free(m);
  return APP_OK;
}
