/*
 * kernels/cpu/gemm_avx2: the AVX2+FMA kernels of the GEMM (kernels/cpu/gemm_impl.h). Only the
 * functions below are compiled for AVX2 (target attributes), so the binary still starts on any
 * x86-64; imc_gemm_kernels_avx2 hands them out only when the CPU has AVX2 and FMA.
 *
 * The tile kernel holds an mr × 16 block of C in 2·mr ymm registers (12 for mr = 6) and, per
 * k-step, loads the two halves of the packed B row, broadcasts each A value and issues
 * _mm256_fmadd_ps(a, b, acc): per lane exactly fmaf(a, b, acc) of the generic kernel, in the
 * same k order, so the bits match it. Nothing else touches the accumulators.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "kernels/cpu/gemm_impl.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define MR IMC_GEMM_MR
#define NR IMC_GEMM_NR

// Row i of the tile: accumulators c<i>0 (lanes 0-7) and c<i>1 (lanes 8-15). mr is a constant
// in every expansion, so the conditions fold away.
#define ROW_INIT(i)                                                                                \
    __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();                           \
    if (mr > (i) && load) {                                                                        \
        c##i##0 = _mm256_loadu_ps(c + (i) * ldc);                                                  \
        c##i##1 = _mm256_loadu_ps(c + (i) * ldc + 8);                                              \
    }
#define ROW_STEP(i)                                                                                \
    if (mr > (i)) {                                                                                \
        const __m256 a##i = _mm256_broadcast_ss(a + (i) * lda);                                    \
        c##i##0 = _mm256_fmadd_ps(a##i, b0, c##i##0);                                              \
        c##i##1 = _mm256_fmadd_ps(a##i, b1, c##i##1);                                              \
    }
#define ROW_STORE(i)                                                                               \
    if (mr > (i)) {                                                                                \
        _mm256_storeu_ps(c + (i) * ldc, c##i##0);                                                  \
        _mm256_storeu_ps(c + (i) * ldc + 8, c##i##1);                                              \
    }

INLINE AVX2 void tile_rows(const int mr, int64_t kc, const float *a, int64_t lda, const float *bp,
                           float *c, int64_t ldc, bool load)
{
    ROW_INIT(0)
    ROW_INIT(1)
    ROW_INIT(2)
    ROW_INIT(3)
    ROW_INIT(4)
    ROW_INIT(5)
#pragma GCC unroll 4
    for (int64_t kk = 0; kk < kc; kk++) {
        const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
        ROW_STEP(0)
        ROW_STEP(1)
        ROW_STEP(2)
        ROW_STEP(3)
        ROW_STEP(4)
        ROW_STEP(5)
        a++;
        bp += NR;
    }
    ROW_STORE(0)
    ROW_STORE(1)
    ROW_STORE(2)
    ROW_STORE(3)
    ROW_STORE(4)
    ROW_STORE(5)
}

// tile_rows with a constant row count, one function per count (tile_kernels[mr]).
#define DEFINE_TILE(n)                                                                             \
    AVX2 static void tile_##n(int64_t kc, const float *a, int64_t lda, const float *bp, float *c,  \
                              int64_t ldc, bool load)                                              \
    {                                                                                              \
        tile_rows(n, kc, a, lda, bp, c, ldc, load);                                                \
    }
DEFINE_TILE(1)
DEFINE_TILE(2)
DEFINE_TILE(3)
DEFINE_TILE(4)
DEFINE_TILE(5)
DEFINE_TILE(6)

typedef void (*tile_fn)(int64_t kc, const float *a, int64_t lda, const float *bp, float *c,
                        int64_t ldc, bool load);
static const tile_fn tile_kernels[MR + 1] = {NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6};

static void tile_avx2(int mr, int64_t kc, const float *a, int64_t lda, const float *bp, float *c,
                      int64_t ldc, bool load)
{
    tile_kernels[mr](kc, a, lda, bp, c, ldc, load);
}

// dst[kk·NR + r] = src[r·lds + kk] for r, kk < 8 (an 8 × 8 transpose into a panel). Named
// registers, not arrays: gcc -O2 does not unroll loops over ymm arrays and spills them.
INLINE AVX2 void transpose8(float *dst, const float *src, int64_t lds)
{
    const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds);
    const __m256 r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds);
    const __m256 r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds);
    const __m256 r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
    // rows a, b: a0 b0 a1 b1 | a4 b4 a5 b5 (lo) and a2 b2 a3 b3 | a6 b6 a7 b7 (hi)
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    // rows 0-3 (u0-u3) and 4-7 (u4-u7) of column k | k + 4, for k = 0, 1, 2, 3
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + NR, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * NR, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * NR, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * NR, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * NR, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * NR, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * NR, _mm256_permute2f128_ps(u3, u7, 0x31));
}

AVX2 void imc_gemm_pack_avx2(float *dst, const float *src, int64_t lds, int64_t nr, int64_t kn)
{
    int64_t kk = 0;
    if (nr == NR) {
        for (; kk + 8 <= kn; kk += 8) {
            transpose8(dst + kk * NR, src + kk, lds);
            transpose8(dst + kk * NR + 8, src + 8 * lds + kk, lds);
        }
    }
    if (kk < kn) {
        imc_gemm_pack_scalar(dst + kk * NR, src + kk, lds, nr, kn - kk);
    }
}

static const struct imc_gemm_kernels avx2_kernels = {
    .tile = tile_avx2,
    .pack_panel = imc_gemm_pack_avx2,
};

const struct imc_gemm_kernels *imc_gemm_kernels_avx2(void)
{
    __builtin_cpu_init();
    const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return ok ? &avx2_kernels : NULL;
}

#endif // x86
