/*
 * kernels/cpu/gemm_impl: the per-path kernels of the GEMM (kernels/cpu/gemm.h), private to
 * gemm.c, gemm_avx2.c and gemm_avx512.c. A path is a const table of kernel functions; every
 * path computes each output with the arithmetic stated in gemm.h, so they are interchangeable
 * bit for bit.
 */
#ifndef IMC_KERNELS_CPU_GEMM_IMPL_H
#define IMC_KERNELS_CPU_GEMM_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/cpu/gemm.h"

// Reassociation or flush-to-zero would break the bitwise contract of gemm.h. (Contraction cannot:
// the kernels compute only through fmaf and FMA intrinsics; the build is -std=c17, so
// -ffp-contract=off.)
#ifdef __FAST_MATH__
#error "kernels/cpu/gemm must not be built with -ffast-math"
#endif

struct imc_gemm_kernels {
    // C[i][0:NR] (rows i < mr <= MR, stride ldc) = (load ? C : 0) + Σ_kk a[i·lda + kk] ·
    // bp[kk·NR + 0:NR] for kk < kc ascending, one fmaf per element and step.
    void (*tile)(int mr, int64_t kc, const float *a, int64_t lda, const float *bp, float *c,
                 int64_t ldc, bool load);
    // NULL, or tile over two panels at once: C[i][0:NR] from bp0 and C[i][NR:2·NR] from bp1,
    // each element as tile computes it (same bits as two tile calls).
    void (*tile2)(int mr, int64_t kc, const float *a, int64_t lda, const float *bp0,
                  const float *bp1, float *c, int64_t ldc, bool load);
    // As imc_gemm_pack_panel.
    void (*pack_panel)(float *dst, const float *src, int64_t lds, int64_t nr, int64_t kn);
};

// imc_gemm_pack_panel in plain C (the generic path's, and the AVX2 path's edges).
void imc_gemm_pack_scalar(float *dst, const float *src, int64_t lds, int64_t nr, int64_t kn);

#if defined(__x86_64__) || defined(__i386__)
// The AVX2+FMA kernels (gemm_avx2.c), or NULL when the CPU (or OS) lacks AVX2 or FMA.
const struct imc_gemm_kernels *imc_gemm_kernels_avx2(void);
// The AVX-512 kernels (gemm_avx512.c; AVX2's pack), or NULL without AVX2, FMA and AVX512F.
const struct imc_gemm_kernels *imc_gemm_kernels_avx512(void);
// The AVX2 kernels' imc_gemm_pack_panel (call only where imc_gemm_kernels_avx2 is not NULL).
void imc_gemm_pack_avx2(float *dst, const float *src, int64_t lds, int64_t nr, int64_t kn);
#else
static inline const struct imc_gemm_kernels *imc_gemm_kernels_avx2(void)
{
    return NULL; // no x86: the generic path only
}
static inline const struct imc_gemm_kernels *imc_gemm_kernels_avx512(void)
{
    return NULL;
}
#endif // x86

#endif // IMC_KERNELS_CPU_GEMM_IMPL_H
