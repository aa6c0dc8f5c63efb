/* Counter-based random numbers: the value for (seed, counter) is a pure
 * function, so the CPU and CUDA backends draw identical dropout masks and a
 * resumed run continues the exact stream. SplitMix64 finaliser over a
 * seed-keyed counter (Steele et al., "Fast splittable PRNGs", 2014). */
#ifndef GRAFT_RNG_H
#define GRAFT_RNG_H

#include <stdint.h>

#include "engine/base/hostdevice.h"

static inline GRAFT_HD uint64_t graft_rng_u64(uint64_t seed, uint64_t counter) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + (counter + 1) * 0xBF58476D1CE4E5B9ULL;
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ULL;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z;
}

/* Uniform float in [0, 1) with 24 random bits. */
static inline GRAFT_HD float graft_rng_uniform(uint64_t seed, uint64_t counter) {
  return (float)(graft_rng_u64(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

/* A sequential generator for host-side choices (shuffles, crops, head init):
 * its whole state is (seed, counter), which a checkpoint stores. */
typedef struct graft_rng {
  uint64_t seed;
  uint64_t counter;
} graft_rng;

static inline uint64_t graft_rng_next(graft_rng *r) { return graft_rng_u64(r->seed, r->counter++); }

/* Uniform double in [0, 1) with 53 random bits. */
static inline double graft_rng_double(graft_rng *r) {
  return (double)(graft_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), unbiased (rejection), n > 0. */
static inline uint64_t graft_rng_below(graft_rng *r, uint64_t n) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do v = graft_rng_next(r);
  while (v >= limit);
  return v % n;
}

#endif
