/*
 * kernels/cpu/qmm: the quantized-activation matmul behind imc_cpu_matmul's q8 mode (not part of
 * the kernels API; tests/kernels/ and bench/ use it directly). llama.cpp's CPU arithmetic: the
 * activations are quantized to 8 bits per block of 32, multiplied with the weight blocks as
 * integers, and each block's integer sum is scaled by the two block scales.
 *
 * Activations: a row x[0..n) (n a multiple of 32) becomes blocks as ggml's q8_0 quantizer makes
 * them: d = amax / 127 (amax = max |x_i| over the block), q_i = roundf(x_i · (1 / d)), and the
 * scale kept as q8_0 stores it, rounded to f16 (d = 0 and q = 0 for an all-zero block). So
 * |q_i| <= 127 and x_i ≈ d · q_i within d/2 + 127·2^-11·d.
 *
 * Weights: Q8_0 (q_i int8, d f16) and Q4_0 (q_i = nibble − 8, d f16), blocks of 32.
 *
 * Arithmetic (bitwise, every path): output y[t][o] = Σ over blocks b in ascending order, kept in
 * eight float lanes acc[0..8) that start at +0:
 *     s = dw_b · dx_b                                    (one float multiply)
 *     acc[l] = fmaf((float)I_bl, s, acc[l])              for l = 0..7
 *     I_bl = Σ_{e = 4l}^{4l+3} wq_b[e] · xq_b[e]          (exact, int32)
 *     y = ((acc0 + acc4) + (acc2 + acc6)) + ((acc1 + acc5) + (acc3 + acc7))
 * Lane l holds elements 4l..4l+3 of every block: what AVX2's maddubs + madd (and VNNI's dpbusd)
 * leave in 32-bit lane l, so the vector paths need no horizontal sum per block and the generic
 * path computes the same float operations in the same order. y depends only on W row o, x row t
 * and n: never on the batch, the tiling, the thread count or the path.
 *
 * Workload: n up to ~20k, called on tiles of up to a few hundred W rows × token chunks.
 */
#ifndef IMC_KERNELS_CPU_QMM_H
#define IMC_KERNELS_CPU_QMM_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define IMC_QMM_BLOCK 32

// One quantized activation block (36 bytes; q needs no alignment).
struct imc_q8x {
    float d;
    int8_t q[IMC_QMM_BLOCK];
};

// True when W of type t can be multiplied on the q8 route (rows of n, n a multiple of 32).
bool imc_qmm_supports(enum imc_type t, int64_t n);

// Quantizes x[0..n) (n a multiple of 32) into n / 32 blocks (the rule above; scalar C, the same
// on every path).
void imc_qmm_quantize_row(const float *x, int64_t n, struct imc_q8x *out);

// y[t·ldy + r] for r < nr, t < nt = the outputs of W rows w + r·row_bytes (type t, n elements;
// row_bytes is the row's size, imc_type_row_bytes: the kernels take the block size from it)
// against the quantized token rows xq + t·ldq (blocks). Any nr, nt >= 1; path must be supported.
void imc_qmm_tile(enum imc_gemm_path path, enum imc_type type, const uint8_t *w, uint64_t row_bytes,
                  int64_t nr, const struct imc_q8x *xq, int64_t ldq, int64_t nt, int64_t n,
                  float *y, int64_t ldy);

// ---- private to qmm.c and qmm_avx2.c ----------------------------------------------------------

#define IMC_QMM_MR 2 // W rows of a micro-tile
#define IMC_QMM_NT 4 // token rows of a micro-tile

// The micro-tile of a path: outputs of nr <= IMC_QMM_MR W rows × nt <= IMC_QMM_NT tokens over nb
// blocks, stored to y[t·ldy + r].
typedef void (*imc_qmm_kernel_fn)(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int nr,
                                  const struct imc_q8x *xq, int64_t ldq, int nt, int64_t nb,
                                  float *y, int64_t ldy);

#if defined(__x86_64__) || defined(__i386__)
// The AVX2 micro-tile (qmm_avx2.c), or NULL when the CPU lacks AVX2, FMA or F16C.
imc_qmm_kernel_fn imc_qmm_kernel_avx2(void);
#else
static inline imc_qmm_kernel_fn imc_qmm_kernel_avx2(void)
{
    return NULL;
}
#endif

#endif // IMC_KERNELS_CPU_QMM_H
