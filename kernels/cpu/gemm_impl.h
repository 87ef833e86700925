/*
 * kernels/cpu/gemm_impl: the per-path kernels of the GEMM (kernels/cpu/gemm.h), private to
 * gemm.c and gemm_avx2.c. A path is a const table of two functions; both paths compute each
 * output with the arithmetic stated in gemm.h, so they are interchangeable bit for bit.
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
    // As imc_gemm_pack_panel.
    void (*pack_panel)(float *dst, const float *src, int64_t lds, int64_t nr, int64_t kn);
};

// imc_gemm_pack_panel in plain C (the generic path's, and the AVX2 path's edges).
void imc_gemm_pack_scalar(float *dst, const float *src, int64_t lds, int64_t nr, int64_t kn);

#if defined(__x86_64__) || defined(__i386__)
// The AVX2+FMA kernels (gemm_avx2.c), or NULL when the CPU (or OS) lacks AVX2 or FMA.
const struct imc_gemm_kernels *imc_gemm_kernels_avx2(void);
#else
static inline const struct imc_gemm_kernels *imc_gemm_kernels_avx2(void)
{
    return NULL; // no x86: the generic path only
}
#endif // x86

#endif // IMC_KERNELS_CPU_GEMM_IMPL_H
