/*
 * kernels/cpu/bmm: the bf16 matmul behind imc_cpu_matmul's q8 mode for bf16 weights (not part of
 * the kernels API; tests/kernels/ and bench/ use it directly): llama.cpp's CPU arithmetic for
 * them, the activations rounded to bf16 and the products summed by AVX512-BF16's vdpbf16ps
 * where the CPU has it, and by an emulation of that instruction, bit for bit, everywhere else.
 *
 * Activations: x[e] becomes imc_fp32_to_bf16(x[e]) (round to nearest even; NaN quieted); a row of
 * n is stored padded with +0 to np = n rounded up to IMC_BMM_CHUNK elements: as bf16 for the
 * GENERIC and AVX512BF16 kernels, as the f32 values of those bf16 (exact) split into each chunk's
 * odd and even elements for the emulations (their layouts: bmm_x86.c), so that a tile's row
 * groups do not split the same tokens again.
 *
 * Arithmetic (bitwise, every kernel): output y[t][o] has 16 lane accumulators a[l] = +0. For each
 * chunk c of 32 elements in ascending order (weights past n read as +0, as the padded
 * activations are) and each lane l, with p(e) = W[o][e] · xb[t][e] (exact: 8-bit significands):
 *     a[l] = a[l] + p(32c + 2l + 1)      (rounded to nearest even)
 *     a[l] = a[l] + p(32c + 2l)          (rounded to nearest even)
 * — vdpbf16ps's order (Intel's pseudo-code: the odd element of each pair first) — then
 *     s[i] = a[i] + a[i + 8] (i < 8);  u[i] = s[i] + s[i + 4] (i < 4);  v[i] = u[i] + u[i + 2];
 *     y = v[0] + v[1].
 * Every one of these operations treats denormal inputs as zero and flushes denormal results to
 * zero (DAZ/FTZ: vdpbf16ps does, ignoring MXCSR; the other kernels run with MXCSR's DAZ and FTZ
 * set, and the x86 tile sets them for the reduction of every kernel). A lane update is one fused
 * multiply-add (the product is exact, so it is the rounded sum either way).
 *
 * Kernels: GENERIC (plain C: fmaf per lane; the specification), AVX2 and AVX512, the emulations
 * (8 or 16 lanes per vector; the weights, once per tile, and the activations, once per matmul,
 * split into each pair's odd and even f32 by a mask and a shift; two fmadds per lane and chunk),
 * and AVX512BF16 (vdpbf16ps). The tree runs in registers where the CPU has AVX-512. The
 * instruction's own rounding is trusted only where a probe (imc_bmm_probe, run once per exec) finds
 * it gives the emulation's bits on lanes chosen to tell the orders and the flushes apart; elsewhere
 * the vnni path takes the AVX512 emulation. Each output depends only on W row o, x row t and n:
 * never on the batch, tiling, thread count or kernel.
 *
 * Workload: n up to ~20k, called on tiles of up to a few hundred W rows × token chunks.
 */
#ifndef IMC_KERNELS_CPU_BMM_H
#define IMC_KERNELS_CPU_BMM_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define IMC_BMM_CHUNK 32 // elements per step of the 16 lane accumulators
#define IMC_BMM_LANES 16

enum imc_bmm_kernel {
    IMC_BMM_GENERIC = 0,
    IMC_BMM_AVX2 = 1,
    IMC_BMM_AVX512 = 2,
    IMC_BMM_AVX512BF16 = 3,
};

// "generic" / "avx2" / "avx512" / "avx512bf16".
const char *imc_bmm_kernel_name(enum imc_bmm_kernel k);

// True when this CPU can run kernel k (AVX2: AVX2 and FMA; AVX512: AVX512F too; AVX512BF16:
// AVX512F and AVX512-BF16).
bool imc_bmm_kernel_supported(enum imc_bmm_kernel k);

// True when the CPU has AVX512-BF16 and vdpbf16ps gives the generic kernel's bits on the probe's
// lanes (exact sums, both orders' roundings, denormal inputs, underflowing products and sums,
// overflow). Takes tens of microseconds: run once per exec (imc_exec_init).
bool imc_bmm_probe(void);

// The kernel of gemm path `path`: generic → GENERIC; avx2 → AVX2; vnni → AVX512BF16 where
// `dot_ok` (imc_bmm_probe's answer), else AVX512 where the CPU has AVX512F, else AVX2.
enum imc_bmm_kernel imc_bmm_kernel_for(enum imc_gemm_path path, bool dot_ok);

// Bytes of one converted activation row of n elements for kernel k: n rounded up to 32
// elements, 2 bytes each (GENERIC, AVX512BF16) or 4 (the split f32 of AVX2, AVX512).
uint64_t imc_bmm_xrow_bytes(enum imc_bmm_kernel k, int64_t n);

// Converts the n_rows rows x + r·ldx (n elements) into kernel k's activation rows at out + r·ldo
// (bytes; 4-byte aligned), padded with +0 (the rule above; AVX2 code where the CPU has it, the
// same bits as the scalar conversion).
void imc_bmm_convert_rows(enum imc_bmm_kernel k, const float *x, int64_t ldx, int64_t n_rows,
                          int64_t n, uint8_t *out, uint64_t ldo);

// Bytes of scratch imc_bmm_tile needs on kernel k for nr W rows of n: the lane accumulators of
// the tile's rows (rounded up to the row group) × one token group and, for the emulations, the
// rows split into f32 (4 bytes per element, n rounded up to 32).
uint64_t imc_bmm_scratch_bytes(enum imc_bmm_kernel k, int64_t nr, int64_t n);

// y[t·ldy + r] for r < nr, t < nt = the outputs of bf16 W rows w + r·row_bytes (n elements,
// row_bytes >= 2n) against converted token rows xb + t·ldq (bytes; imc_bmm_convert_rows). Any
// nr, nt >= 1, n >= 1; k must be supported; scratch holds imc_bmm_scratch_bytes(nr) bytes
// (64-byte aligned).
void imc_bmm_tile(enum imc_bmm_kernel k, const uint8_t *w, uint64_t row_bytes, int64_t nr,
                  const uint8_t *xb, uint64_t ldq, int64_t nt, int64_t n, float *y, int64_t ldy,
                  void *scratch);

// ---- private to bmm.c and bmm_x86.c -----------------------------------------------------------

#define IMC_BMM_MR 4 // W rows per row group (every kernel)
#define IMC_BMM_NT 6 // token rows per token group (every kernel; fewer use the first ones)

// Lane accumulators of rows w[0..IMC_BMM_MR) (bf16 rows of n elements, or for the emulations the
// rows split as their activations, padded; rows past the real ones repeat the last) against
// tokens x[0..nk) (1 <= nk <= IMC_BMM_NT; the kernel's converted rows; x[nk..IMC_BMM_NT) repeat
// the last and may be computed too), chunks [c0, c1): acc[(i·IMC_BMM_NT + j)·16 + l] is row i,
// token j, lane l; init: they start at +0, else from acc. Run with MXCSR DAZ and FTZ set (x86).
typedef void (*imc_bmm_uk_fn)(const uint8_t *const *w, const uint8_t *const *x, int nk, int64_t c0,
                              int64_t c1, int64_t n, float *acc, bool init);

// A token group's lane accumulators (as imc_bmm_uk_fn's, rows r < nr, tokens j < nk) reduced by
// the tree to y[j·ldy + r]. Under MXCSR DAZ/FTZ (x86).
typedef void (*imc_bmm_red_fn)(const float *acc, int64_t nr, int nk, float *y, int64_t ldy);

#if defined(__x86_64__) || defined(__i386__)
// Kernel k's micro-kernel (bmm_x86.c; k AVX2, AVX512 or AVX512BF16), or NULL when the CPU cannot
// run it; the AVX2 bf16 converter (x[0..n) to out[0..n)), or NULL; the split converter of the
// AVX2 or AVX512 kernel (x[0..n) to the padded row out), or NULL.
imc_bmm_uk_fn imc_bmm_uk_x86(enum imc_bmm_kernel k);
typedef void (*imc_bmm_cvt_fn)(const float *x, int64_t n, uint16_t *out);
imc_bmm_cvt_fn imc_bmm_cvt_avx2(void);
// The AVX-512 imc_bmm_red_fn (bmm_x86.c), or NULL without AVX512F.
imc_bmm_red_fn imc_bmm_red_avx512(void);
typedef void (*imc_bmm_split_fn)(const float *x, int64_t n, void *out);
imc_bmm_split_fn imc_bmm_split_x86(enum imc_bmm_kernel k);
// The weight row splitter of the AVX2 or AVX512 kernel (bf16 w[0..n) to the padded f32 parts at
// out), or NULL.
typedef void (*imc_bmm_wsplit_fn)(const uint16_t *w, int64_t n, float *out);
imc_bmm_wsplit_fn imc_bmm_wsplit_x86(enum imc_bmm_kernel k);
#endif

#endif // IMC_KERNELS_CPU_BMM_H
