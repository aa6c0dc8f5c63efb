/* The device description test_cuda_ops holds forced rungs to (cuda_reference.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cuda_reference.h"
#include "harness.h"

static graft__cudnn_target reference; /* deviceless planning, for forced rungs */
static char reference_name[300];

const char *cuda_reference_name(void) { return reference_name; }

void cuda_reference_release(void) {
  if (reference.device) cudnnBackendDestroyDescriptor(reference.device);
  reference.device = NULL;
}

/* Does deviceless planning find a plan for this conv on the forced graph
 * rung (fused, fallback, split)? Says which in note. */
bool cuda_reference_plans(const char *rung, const graft__conv_shape *sh, graft_precision prec,
                          char *note, size_t cap) {
  if (!reference.device) { /* nothing to hold the GPU to: never accepted */
    snprintf(note, cap, "no device description to plan against");
    return true;
  }
  static const struct {
    const char *rung;
    bool fused;
    cudnnBackendHeurMode_t mode;
  } tries[] = {{"fused", true, CUDNN_HEUR_MODE_A},     {"fused", true, CUDNN_HEUR_MODE_FALLBACK},
               {"fallback", true, CUDNN_HEUR_MODE_FALLBACK},
               {"split", false, CUDNN_HEUR_MODE_A},    {"split", false, CUDNN_HEUR_MODE_FALLBACK}};
  for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
    if (strcmp(tries[i].rung, rung) != 0) continue;
    graft__cudnn_plan p;
    if (graft__conv_graph(&reference, sh, tries[i].fused, tries[i].mode, prec, &p) == GRAFT_OK) {
      snprintf(note, cap, "deviceless planning on %s finds engine %ld", reference_name,
               (long)p.engine);
      graft__cudnn_plan_release(&p);
      return true;
    }
  }
  snprintf(note, cap, "deviceless planning on %s finds no plan either", reference_name);
  graft_clear_detail();
  return false;
}

/* The GPU's own device description, made from the handle; NULL (saying
 * why) where the loaded cuDNN cannot make one. */
static cudnnBackendDescriptor_t own_description(graft_backend *be) {
  cudnnHandle_t h = cuda_of(be)->cudnn;
  cudnnBackendDescriptor_t d = NULL;
  graft_status s = GRAFT_CU_STATUS(cudnn, cudnnBackendCreateDescriptor(
                                              CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, &d));
  if (s == GRAFT_OK)
    s = GRAFT_CU_STATUS(cudnn, cudnnBackendSetAttribute(d, CUDNN_ATTR_DEVICEPROP_HANDLE,
                                                        CUDNN_TYPE_HANDLE, 1, &h));
  if (s == GRAFT_OK) s = GRAFT_CU_STATUS(cudnn, cudnnBackendFinalize(d));
  if (s == GRAFT_OK) return d;
  printf("note: no device description from this GPU's handle: %s\n", graft_detail());
  if (d) cudnnBackendDestroyDescriptor(d);
  graft_clear_detail();
  return NULL;
}

/* The card's name as a file name: "NVIDIA H100 80GB HBM3" ->
 * "nvidia-h100-80gb-hbm3"; "" where it cannot be read. */
static void card_name(graft_backend *be, char *out, size_t cap) {
  struct cudaDeviceProp prop;
  size_t at = 0;
  out[0] = '\0';
  if (GRAFT_CU_STATUS(cuda, cudaGetDeviceProperties(&prop, cuda_of(be)->device)) != GRAFT_OK) {
    printf("note: no card name: %s\n", graft_detail());
    graft_clear_detail();
    return;
  }
  for (const char *c = prop.name; *c && at + 1 < cap; c++) {
    if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9'))
      out[at++] = *c;
    else if (*c >= 'A' && *c <= 'Z')
      out[at++] = (char)(*c - 'A' + 'a');
    else if (at > 0 && out[at - 1] != '-')
      out[at++] = '-';
  }
  while (at > 0 && out[at - 1] == '-') at--;
  out[at] = '\0';
}

/* A device description from a JSON file into reference; false if absent. */
static bool reference_from(const char *path) {
  static char json[1 << 16];
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  size_t got = fread(json, 1, sizeof json - 1, f);
  fclose(f);
  json[got] = '\0';
  if (got > 0 && graft__cudnn_device_from_json(json, &reference.device) == GRAFT_OK) {
    snprintf(reference_name, sizeof reference_name, "%s", path);
    return true;
  }
  printf("note: %s: not a device description: %s\n", path, graft_detail());
  graft_clear_detail();
  return false;
}

/* What forced rungs are held to: this card's recorded description
 * ($GRAFT_CUDNN_DEVICES/<card>.json, where the device bundle puts the
 * recorded ones, then GRAFT_SOURCE_DIR/bench/cudnn-devices/<card>.json),
 * else CI's hand-written description of its architecture
 * ($GRAFT_CUDNN_DEVICES, default ../shared/docs/cudnn-devices: h100.json for
 * sm_90, a100.json for sm_80), else the GPU's own from its handle. */
void cuda_reference_setup(graft_backend *be) {
  const cuda_backend *cb = cuda_of(be);
  const char *arch = cb->sm == 90 ? "h100" : cb->sm == 80 ? "a100" : NULL;
  const char *dir = graft_test_env("GRAFT_CUDNN_DEVICES");
  char path[4400], fallback[4096], card[128];
  if (!dir) {
    snprintf(fallback, sizeof fallback, "%s/../shared/docs/cudnn-devices", GRAFT_SOURCE_DIR);
    dir = fallback;
  }
  reference.workspace_limit = (int64_t)(cb->total_mem / 16);
  card_name(be, card, sizeof card);
  bool found = false;
  if (card[0]) {
    snprintf(path, sizeof path, "%s/%s.json", dir, card);
    found = reference_from(path);
    snprintf(path, sizeof path, "%s/bench/cudnn-devices/%s.json", GRAFT_SOURCE_DIR, card);
    if (!found) found = reference_from(path);
    if (!found) printf("no recorded description of this card (%s.json)\n", card);
  }
  if (!found && arch) {
    snprintf(path, sizeof path, "%s/%s.json", dir, arch);
    found = reference_from(path);
    if (found) printf("held to the hand-written description of sm_%d, not this card's\n", cb->sm);
  }
  if (!found) {
    reference.device = own_description(be);
    snprintf(reference_name, sizeof reference_name, "%s",
             reference.device ? "this GPU's own description" : "nothing (no description)");
  }
  printf("forced rungs are held to deviceless planning on %s\n", reference_name);
}

/* The real device's description as cuDNN writes it, to keep in
 * bench/cudnn-devices/ (the next run's forced rungs are held to it;
 * docs/CUDNN.md), as <card>.json in the folder $GRAFT_CUDNN_DEVICE_JSON_OUT
 * when set (made if need be). */
void cuda_reference_dump(graft_backend *be) {
  const char *folder = graft_test_env("GRAFT_CUDNN_DEVICE_JSON_OUT");
  if (!folder) return;
  char card[128], path[4400];
  card_name(be, card, sizeof card);
  snprintf(path, sizeof path, "%s/%s.json", folder, card[0] ? card : "unknown-card");
  if (mkdir(folder, 0777) != 0 && errno != EEXIST) printf("note: cannot make %s\n", folder);
  static char json[1 << 16];
  int64_t n = 0;
  cudnnBackendDescriptor_t d = own_description(be);
  if (!d) return;
  graft_status s = GRAFT_CU_STATUS(cudnn, cudnnBackendGetAttribute(
                                              d, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION,
                                              CUDNN_TYPE_CHAR, sizeof json - 1, &n, json));
  cudnnBackendDestroyDescriptor(d);
  if (s != GRAFT_OK) {
    printf("note: the device description has no JSON: %s\n", graft_detail());
    graft_clear_detail();
    return;
  }
  json[n > 0 && n < (int64_t)sizeof json ? n : 0] = '\0';
  FILE *f = fopen(path, "w");
  CHECK_MSG(f != NULL, "cannot write %s", path);
  if (f) {
    fprintf(f, "%s\n", json);
    fclose(f);
    printf("device description (%ld chars) written to %s\n", (long)n, path);
  }
}
