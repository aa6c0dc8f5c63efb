#include "io/tensors.h"

#include <string.h>

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man) { /* subnormal: normalise */
    exp = 113;
    while (!(man & 0x400)) man <<= 1, exp--;
    bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
  } else {
    bits = sign;
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

void graft_tensor_to_f32(graft_dtype t, const uint8_t *src, size_t n, float *dst) {
  if (t == GRAFT_DT_F32) {
    memcpy(dst, src, n * 4); /* little-endian hosts only (graft's targets) */
    return;
  }
  for (size_t i = 0; i < n; i++) {
    uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
    if (t == GRAFT_DT_F16) {
      dst[i] = half_to_float(h);
    } else {
      uint32_t bits = (uint32_t)h << 16;
      memcpy(&dst[i], &bits, 4);
    }
  }
}
