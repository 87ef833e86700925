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
        const __m256 a##i = _mm256_broadcast_ss(ap + (i));                                         \
        c##i##0 = _mm256_fmadd_ps(a##i, b0, c##i##0);                                              \
        c##i##1 = _mm256_fmadd_ps(a##i, b1, c##i##1);                                              \
    }
#define ROW_STORE(i)                                                                               \
    if (mr > (i)) {                                                                                \
        _mm256_storeu_ps(c + (i) * ldc, c##i##0);                                                  \
        _mm256_storeu_ps(c + (i) * ldc + 8, c##i##1);                                              \
    }

INLINE AVX2 void tile_rows(const int mr, int64_t kc, const float *ap, const float *bp, float *c,
                           int64_t ldc, bool load)
{
    ROW_INIT(0)
    ROW_INIT(1)
    ROW_INIT(2)
    ROW_INIT(3)
    ROW_INIT(4)
    ROW_INIT(5)
    for (int64_t kk = 0; kk < kc; kk++) {
        const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
        ROW_STEP(0)
        ROW_STEP(1)
        ROW_STEP(2)
        ROW_STEP(3)
        ROW_STEP(4)
        ROW_STEP(5)
        ap += MR;
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
    AVX2 static void tile_##n(int64_t kc, const float *ap, const float *bp, float *c,             \
                              int64_t ldc, bool load)                                              \
    {                                                                                              \
        tile_rows(n, kc, ap, bp, c, ldc, load);                                                    \
    }
DEFINE_TILE(1)
DEFINE_TILE(2)
DEFINE_TILE(3)
DEFINE_TILE(4)
DEFINE_TILE(5)
DEFINE_TILE(6)

typedef void (*tile_fn)(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                        bool load);
static const tile_fn tile_kernels[MR + 1] = {NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6};

static void tile_avx2(int mr, int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                      bool load)
{
    tile_kernels[mr](kc, ap, bp, c, ldc, load);
}

// dst[kk·NR + r] = src[r·lds + kk] for r, kk < 8 (an 8 × 8 transpose into a panel).
INLINE AVX2 void transpose8(float *dst, const float *src, int64_t lds)
{
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) {
        r[i] = _mm256_loadu_ps(src + i * lds);
    }
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);     // a0 b0 a1 b1 | a4 b4 a5 b5
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); // a2 b2 a3 b3 | a6 b6 a7 b7
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));     // k 0 | 4
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2)); // k 1 | 5
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0)); // k 2 | 6
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2)); // k 3 | 7
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * NR, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
        _mm256_storeu_ps(dst + (i + 4) * NR, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
}

AVX2 static void pack_avx2(float *dst, const float *src, int64_t lds, int64_t nr, int64_t kn)
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
    .pack_panel = pack_avx2,
};

const struct imc_gemm_kernels *imc_gemm_kernels_avx2(void)
{
    __builtin_cpu_init();
    const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return ok ? &avx2_kernels : NULL;
}

#endif // x86
