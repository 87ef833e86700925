/*
 * kernels/cpu/gemm_avx512: the AVX-512 kernels of the GEMM (kernels/cpu/gemm_impl.h), used by
 * the vnni path where the CPU has AVX512F. Only these functions are compiled for AVX-512
 * (target attributes); imc_gemm_kernels_avx512 hands them out only when the CPU has it.
 *
 * A packed panel row (16 outputs) is one zmm. The two-panel kernel holds an mr × 32 block of C
 * in 2·mr zmm registers (12 for mr = 6) and, per k-step, loads one row of each panel,
 * broadcasts each A value and issues _mm512_fmadd_ps(a, b, acc): per lane exactly
 * fmaf(a, b, acc) of the generic kernel, in the same k order, so the bits match it (and the
 * AVX2 kernel's). Two panels per step: 2 B loads and mr broadcasts feed 2·mr FMAs, where one
 * panel would leave the loads, not the FMA units, the limit.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "kernels/cpu/gemm_impl.h"

#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))
#define NR IMC_GEMM_NR

// Row i of the tile: accumulators c<i>0 (panel 0) and c<i>1 (panel 1, when np = 2). mr and np
// are constants in every expansion, so the conditions fold away.
#define ROW_INIT(i)                                                                                \
    __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();                           \
    if (mr > (i) && load) {                                                                        \
        c##i##0 = _mm512_loadu_ps(c + (i) * ldc);                                                  \
        if (np == 2) {                                                                             \
            c##i##1 = _mm512_loadu_ps(c + (i) * ldc + NR);                                         \
        }                                                                                          \
    }
#define ROW_STEP(i)                                                                                \
    if (mr > (i)) {                                                                                \
        const __m512 a##i = _mm512_set1_ps(a[(i) * lda]);                                          \
        c##i##0 = _mm512_fmadd_ps(a##i, b0, c##i##0);                                              \
        if (np == 2) {                                                                             \
            c##i##1 = _mm512_fmadd_ps(a##i, b1, c##i##1);                                          \
        }                                                                                          \
    }
#define ROW_STORE(i)                                                                               \
    if (mr > (i)) {                                                                                \
        _mm512_storeu_ps(c + (i) * ldc, c##i##0);                                                  \
        if (np == 2) {                                                                             \
            _mm512_storeu_ps(c + (i) * ldc + NR, c##i##1);                                         \
        }                                                                                          \
    }

// C[i][0 : np·NR] for i < mr from panels bp0 (and bp1 when np = 2).
INLINE AVX512 void tile_rows(const int mr, const int np, int64_t kc, const float *a, int64_t lda,
                             const float *bp0, const float *bp1, float *c, int64_t ldc, bool load)
{
    ROW_INIT(0)
    ROW_INIT(1)
    ROW_INIT(2)
    ROW_INIT(3)
    ROW_INIT(4)
    ROW_INIT(5)
#pragma GCC unroll 4
    for (int64_t kk = 0; kk < kc; kk++) {
        const __m512 b0 = _mm512_loadu_ps(bp0 + kk * NR);
        const __m512 b1 = np == 2 ? _mm512_loadu_ps(bp1 + kk * NR) : b0;
        ROW_STEP(0)
        ROW_STEP(1)
        ROW_STEP(2)
        ROW_STEP(3)
        ROW_STEP(4)
        ROW_STEP(5)
        a++;
    }
    ROW_STORE(0)
    ROW_STORE(1)
    ROW_STORE(2)
    ROW_STORE(3)
    ROW_STORE(4)
    ROW_STORE(5)
}

// tile_rows with constant row and panel counts, one function per (count, panels).
#define DEFINE_TILE(n)                                                                             \
    AVX512 static void tile1_##n(int64_t kc, const float *a, int64_t lda, const float *bp,         \
                                 const float *bp1, float *c, int64_t ldc, bool load)               \
    {                                                                                              \
        (void)bp1;                                                                                 \
        tile_rows(n, 1, kc, a, lda, bp, NULL, c, ldc, load);                                       \
    }                                                                                              \
    AVX512 static void tile2_##n(int64_t kc, const float *a, int64_t lda, const float *bp,         \
                                 const float *bp1, float *c, int64_t ldc, bool load)               \
    {                                                                                              \
        tile_rows(n, 2, kc, a, lda, bp, bp1, c, ldc, load);                                        \
    }
DEFINE_TILE(1)
DEFINE_TILE(2)
DEFINE_TILE(3)
DEFINE_TILE(4)
DEFINE_TILE(5)
DEFINE_TILE(6)

typedef void (*tile_fn)(int64_t kc, const float *a, int64_t lda, const float *bp, const float *bp1,
                        float *c, int64_t ldc, bool load);
static const tile_fn tiles1[IMC_GEMM_MR + 1] = {NULL,    tile1_1, tile1_2, tile1_3,
                                                tile1_4, tile1_5, tile1_6};
static const tile_fn tiles2[IMC_GEMM_MR + 1] = {NULL,    tile2_1, tile2_2, tile2_3,
                                                tile2_4, tile2_5, tile2_6};

static void tile_avx512(int mr, int64_t kc, const float *a, int64_t lda, const float *bp, float *c,
                        int64_t ldc, bool load)
{
    tiles1[mr](kc, a, lda, bp, NULL, c, ldc, load);
}

static void tile2_avx512(int mr, int64_t kc, const float *a, int64_t lda, const float *bp0,
                         const float *bp1, float *c, int64_t ldc, bool load)
{
    tiles2[mr](kc, a, lda, bp0, bp1, c, ldc, load);
}

const struct imc_gemm_kernels *imc_gemm_kernels_avx512(void)
{
    static const struct imc_gemm_kernels k = {
        .tile = tile_avx512,
        .tile2 = tile2_avx512,
        .pack_panel = imc_gemm_pack_avx2, // packing is a transpose: AVX2 suffices
    };
    __builtin_cpu_init();
    const bool ok = imc_gemm_kernels_avx2() && __builtin_cpu_supports("avx512f");
    return ok ? &k : NULL;
}

#endif // x86
