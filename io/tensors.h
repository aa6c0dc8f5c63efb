/* Named tensors found in a weights file read in memory (io/safetensors.h,
 * models/pth.c): where each one's bytes lie, in what type and shape. The
 * readers check every reference against the buffer before handing it out. */
#ifndef GRAFT_TENSORS_H
#define GRAFT_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#define GRAFT_TENSOR_MAX_RANK 8
#define GRAFT_TENSOR_NAME_MAX 256

/* OTHER: a type graft does not read (int64, float64...): such a tensor is
 * listed, by its type's name, and refused only if it is needed. */
typedef enum graft_dtype { GRAFT_DT_F32, GRAFT_DT_F16, GRAFT_DT_BF16, GRAFT_DT_OTHER } graft_dtype;

typedef struct graft_tensor_ref {
  char name[GRAFT_TENSOR_NAME_MAX];
  graft_dtype dtype;
  int rank;
  int64_t dims[GRAFT_TENSOR_MAX_RANK];
  size_t count;          /* elements: the product of dims */
  const uint8_t *data;   /* count elements of dtype, contiguous, little-endian, any alignment */
  const char *type_name; /* the file's name of the type, for messages */
} graft_tensor_ref;

static inline size_t graft_dtype_size(graft_dtype t) { return t == GRAFT_DT_F32 ? 4 : 2; }

/* Convert n elements to float32 (half and bfloat16 exactly). */
void graft_tensor_to_f32(graft_dtype t, const uint8_t *src, size_t n, float *dst);

#endif
