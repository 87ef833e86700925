/*
 * kernels/cpu/gemm: the deterministic f32 GEMM behind imc_cpu_matmul (not part of the kernels
 * API; bench/ and tests/kernels/ use it directly).
 *
 *   C[m][n] = Σ_k A[m][k] · B[n][k]    for m < M, n < N ("NT": A and B both hold rows of K)
 *
 * Invariant (bitwise): every C element is ONE float accumulator that starts at +0 and is updated
 * in strictly ascending k by acc = fmaf(A[m][k], B[n][k], acc). K is cut into blocks; between
 * blocks the accumulator is stored to C as a float and reloaded, which is exact. So C[m][n] is a
 * function of A row m, B row n and K only: not of M, N, of m's or n's position, of the tiling,
 * of the thread count, nor of the code path. Every path gives identical bits:
 *   - IMC_GEMM_VNNI: where the CPU has AVX512F, AVX-512 intrinsics (gemm_avx512.c: 6 rows × two
 *     panels per kernel call), else the AVX2 kernels;
 *   - IMC_GEMM_AVX2: AVX2+FMA intrinsics (functions with target("avx2,fma"), the rest of the
 *     build stays baseline x86-64), used when the CPU has both (checked at run time);
 *   - IMC_GEMM_GENERIC: portable C, fmaf() per element in the same order (any CPU).
 * Nothing else is contracted or reassociated: the build is -std=c17 (-ffp-contract=off) and
 * never -ffast-math.
 *
 * Why our own: OpenBLAS's sgemm result for an A row depends on which row of the call it occupies
 * (its micro-kernels and edge paths sum in different orders; measured on Zen: 10 of 16 rows of an
 * M = 16 call differ), which breaks the batch invariance imatrix and perplexity rely on.
 *
 * Layout: B is used packed (BLIS style): panels of IMC_GEMM_NR rows, panel p holding B rows
 * 16p .. 16p+15 k-major, element (k, r) at bp[p·NR·K + k·NR + r]; lanes of rows >= N are zero
 * and their results are discarded. A is read in place. The driver runs an MR × NR
 * register-blocked micro-kernel (6 × 16: 12 ymm accumulators) over blocks of A rows and B panels;
 * edge rows use the same kernel with fewer rows. Pointers need no alignment (64-byte alignment
 * of packed panels is faster: imc_gemm_align).
 *
 * Workload assumptions: A = activations (M tokens, 1 .. thousands), B = weight rows (a tile of
 * <= 256 rows in matmul), K up to ~20k. One call is single-threaded; callers split M and N.
 */
#ifndef IMC_KERNELS_CPU_GEMM_H
#define IMC_KERNELS_CPU_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define IMC_GEMM_NR 16 // outputs (B rows) per packed panel
#define IMC_GEMM_MR 6  // A rows per micro-kernel call

// True when path can run on this CPU (the generic path always can).
bool imc_gemm_path_supported(enum imc_gemm_path path);
// The fastest supported path: vnni where the CPU has its integer tiles (AVX512-VNNI+VL or
// AVX-VNNI) and AVX2, else AVX2 when the CPU has AVX2 and FMA, else generic.
enum imc_gemm_path imc_gemm_path_best(void);
// "vnni" / "avx2" / "generic".
const char *imc_gemm_path_name(enum imc_gemm_path path);

// p rounded up to the next 64-byte boundary (at most 15 floats further).
float *imc_gemm_align(float *p);

// Floats of the packed form of n rows of k: ceil(n / NR) · NR · k.
int64_t imc_gemm_packed_floats(int64_t n, int64_t k);

// One panel slice: dst[kk·NR + r] = src[r·lds + kk] for r < nr, 0 for nr <= r < NR, kk < kn.
// dst is panel base + k0·NR to fill the slice k0 .. k0+kn-1 of a panel. 1 <= nr <= NR.
void imc_gemm_pack_panel(enum imc_gemm_path path, float *dst, const float *src, int64_t lds,
                         int64_t nr, int64_t kn);
// Packs n rows of k (row stride ldb) into bp (imc_gemm_packed_floats(n, k) floats).
void imc_gemm_pack_b(enum imc_gemm_path path, float *bp, const float *b, int64_t ldb, int64_t n,
                     int64_t k);

// Packs B given transposed (k rows of n: B[r][kk] = bt[kk·ldt + r], e.g. attention's values,
// token-major) into bp (imc_gemm_packed_floats(n, k) floats): the layout of imc_gemm_pack_b, for
// every path.
void imc_gemm_pack_bt(float *bp, const float *bt, int64_t ldt, int64_t n, int64_t k);

// C = A · B^T with B packed (bp from imc_gemm_pack_b of n rows of k); A rows have stride lda,
// C rows ldc. accumulate: every accumulator starts from the float in C instead of +0, i.e. the
// call continues the chains of an earlier call over the preceding columns of the same A and B
// rows; splitting K into ascending ranges this way gives the bits of one call over all of K.
// k = 0 gives C = 0 (C unchanged when accumulating). path must be supported (asserted).
void imc_gemm_packed(enum imc_gemm_path path, float *c, int64_t ldc, const float *a, int64_t lda,
                     int64_t m, const float *bp, int64_t n, int64_t k, bool accumulate);

// Floats of work imc_gemm_nt needs for rows of k.
int64_t imc_gemm_nt_work_floats(int64_t k);

// C = A · B^T with B as plain rows (stride ldb): packs blocks of B rows into work
// (imc_gemm_nt_work_floats(k) floats, borrowed) and runs imc_gemm_packed on each. Same bits as
// imc_gemm_packed.
void imc_gemm_nt(enum imc_gemm_path path, float *c, int64_t ldc, const float *a, int64_t lda,
                 int64_t m, const float *b, int64_t ldb, int64_t n, int64_t k, float *work);

#endif // IMC_KERNELS_CPU_GEMM_H
