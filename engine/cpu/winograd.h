/* Inside graft's Winograd convolution (engine/cpu/winograd.c): the plan and
 * the three stages, whose AVX2 + FMA builds are in winograd_avx2.c.
 *
 * A layer's output is cut into m x m tiles (m = 2, 4 or 6), each computed from
 * an a x a tile of the input (a = m + r - 1, r = 3 or 5). Tiles are numbered image by image,
 * row by row, and worked on in blocks of `block` tiles (a multiple of 6,
 * the GEMM kernel's rows). For one block:
 *   input:  V[xi][tile][c] = (B^T d B)[xi], d the tile's input, per channel
 *   gemm:   M[xi][tile][k] = sum_c V[xi][tile][c] U[xi][c][k]
 *   output: y = A^T M A + bias (ReLU), the tile's m x m outputs
 * for the a*a positions xi of a transformed tile. U = G w G^T was computed
 * once, at plan time.
 *
 * Layouts (floats; cg, kg = 8-channel groups of the input and output,
 * K16 = kb * 16 the output channels rounded up to 16):
 *   V block  [xi][block/6][cg][6][8]   six tiles' 8 channels side by side, so
 *                                       the kernel's broadcasts read one stream
 *   U        [xi][kb][cg*8][16]        16 output channels a row
 *   M block  [xi][block][K16]
 * The xi slices of V and M are padded by a cache line: the transforms touch
 * all a*a of them for each tile, and at power-of-two strides those lines
 * fall in one L1 set (measured: the transforms ran at half speed).
 *   x, y     nChw8c: [n][cg or kg][h][w][8] */
#ifndef GRAFT_CPU_WINOGRAD_H
#define GRAFT_CPU_WINOGRAD_H

#include "engine/cpu/cpu.h"

#define WINO_ROWS 6 /* tiles per GEMM kernel call */

typedef struct wino_plan {
  graft_plan head;
  int m, r, a;               /* output tile, kernel and input tile sides: a = m + r - 1 */
  int n, h, w, oh, ow, pad;  /* the layer */
  int cg, kg, kb;            /* input and output 8-channel groups, 16-channel blocks */
  int tiles_w, tiles_img;    /* tiles per output row, per image */
  int tiles;                 /* all tiles of the batch */
  int block;                 /* tiles per block */
  bool team;                 /* a block is shared by the team; else one thread's */
  bool relu;
  float *u;                  /* [a*a][kb][cg*8][16] */
  float *bias;               /* [kb*16], zero beyond the real channels */
  size_t v_xi, m_xi;         /* floats from one xi to the next in V and M */
  size_t v_floats, m_floats; /* one block's V and M */
} wino_plan;

/* Tiles [lo, hi) of the block that starts at tile t0 into v (the block's V). */
void graft__wino_input_avx2(const wino_plan *p, const float *x, float *v, int t0, int lo,
                            int hi);
/* Work units [lo, hi) of a block of nt tiles, unit = xi * kb + k-block: M from V and U. */
void graft__wino_gemm_avx2(const wino_plan *p, const float *v, float *m, int nt, int lo,
                           int hi);
/* Tiles [lo, hi) of the block that starts at t0: y from M, bias and ReLU. */
void graft__wino_output_avx2(const wino_plan *p, const float *m, float *y, int t0, int lo,
                             int hi);

#endif
