/* What test_cuda_ops holds the forced rungs of the convolution ladder to:
 * deviceless planning against a device description (test_cuda_ops.c says
 * which, and why a refusal is then a NOTE), and the card's own description,
 * written out for bench/cudnn-devices/. */
#ifndef GRAFT_TEST_CUDA_REFERENCE_H
#define GRAFT_TEST_CUDA_REFERENCE_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/cuda/cuda.h"

/* Choose the description (the card's recorded one, else its architecture's
 * hand-written one, else the GPU's own from its handle) and say which. */
void cuda_reference_setup(graft_backend *be);
/* Write the GPU's description as cuDNN gives it to
 * $GRAFT_CUDNN_DEVICE_JSON_OUT/<card>.json, when that is set. */
void cuda_reference_dump(graft_backend *be);
/* Does deviceless planning find a plan for this conv on the forced graph
 * rung (fused, fallback, split)? Says which in note. */
bool cuda_reference_plans(const char *rung, const graft__conv_shape *sh, graft_precision prec,
                          char *note, size_t cap);
/* The description's name ("nothing (no description)" when none). */
const char *cuda_reference_name(void);
void cuda_reference_release(void);

#endif
