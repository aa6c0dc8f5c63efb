#include "io/preprocess.h"

#include <string.h>

void graft_preproc_default(graft_preproc *p) {
  static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  p->resize = 256;
  p->crop = 224;
  memcpy(p->mean, mean, sizeof mean);
  memcpy(p->std, std, sizeof std);
}
