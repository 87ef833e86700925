/*
 * kernels/cpu/qmm_avx2: the AVX2 micro-tile of the quantized-activation matmul
 * (kernels/cpu/qmm.h). Compiled for AVX2+FMA+F16C by target attributes only; handed out when
 * the CPU has all three.
 *
 * Per block and (row, token) pair: |w| as unsigned bytes and x with w's sign (sign trick), so
 * _mm256_maddubs_epi16 gives the 16 pair sums w·x (|pair| <= 2·128·127 < 2^15: no saturation),
 * _mm256_madd_epi16 with ones adds neighbouring pairs into 32-bit lane l = elements 4l..4l+3
 * (exact), _mm256_cvtepi32_ps and _mm256_fmadd_ps with the broadcast product dw·dx are, per
 * lane, (float)I and fmaf of the generic kernel. The final sum adds the halves, then the
 * pairs, then the two remaining values: the reduction order qmm.h states.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdbool.h>

#include "kernels/cpu/qmm.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

// The 32 signed weights of a block (nibbles − 8 for Q4_0) and its scale.
AVX2 INLINE __m256i weights(enum imc_type type, const uint8_t *blk, float *d)
{
    *d = _cvtsh_ss((unsigned short)(blk[0] | blk[1] << 8));
    if (type == IMC_TYPE_Q8_0) {
        return _mm256_loadu_si256((const __m256i *)(blk + 2));
    }
    const __m128i b = _mm_loadu_si128((const __m128i *)(blk + 2));
    const __m128i m = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
    return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
}

AVX2 INLINE float reduce8(__m256 v)
{
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// The R × T micro-tile (R <= IMC_QMM_MR, T <= IMC_QMM_NT constants: the loops unroll into
// registers; 2 × 4 measured fastest of 1-4 × 1-4 on an AMD EPYC with AVX2).
AVX2 INLINE void tile(enum imc_type type, const uint8_t *w, uint64_t row_bytes,
                      const struct imc_q8x *xq, int64_t ldq, int64_t nb, float *y, int64_t ldy,
                      const int R, const int T)
{
    const uint64_t bb = row_bytes / (uint64_t)nb; // the type's block size (types.def)
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[IMC_QMM_MR][IMC_QMM_NT];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            acc[r][t] = _mm256_setzero_ps();
        }
    }
    for (int64_t b = 0; b < nb; b++) {
        __m256i wv[IMC_QMM_MR], ax[IMC_QMM_MR];
        __m256 dw[IMC_QMM_MR];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float d;
            wv[r] = weights(type, w + (uint64_t)r * row_bytes + (uint64_t)b * bb, &d);
            ax[r] = _mm256_sign_epi8(wv[r], wv[r]);
            dw[r] = _mm256_set1_ps(d);
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const struct imc_q8x *xb = xq + t * ldq + b;
            const __m256i xv = _mm256_loadu_si256((const __m256i *)xb->q);
            const __m256 dx = _mm256_broadcast_ss(&xb->d);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m256i p = _mm256_maddubs_epi16(ax[r], _mm256_sign_epi8(xv, wv[r]));
                const __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                acc[r][t] = _mm256_fmadd_ps(f, _mm256_mul_ps(dw[r], dx), acc[r][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            y[t * ldy + r] = reduce8(acc[r][t]);
        }
    }
}

#define TILE_FN(R, T)                                                                              \
    AVX2 static void tile_##R##_##T(enum imc_type type, const uint8_t *w, uint64_t rb,             \
                                    const struct imc_q8x *xq, int64_t ldq, int64_t nb, float *y,   \
                                    int64_t ldy)                                                   \
    {                                                                                              \
        tile(type, w, rb, xq, ldq, nb, y, ldy, R, T);                                              \
    }
TILE_FN(1, 1)
TILE_FN(1, 2)
TILE_FN(1, 3)
TILE_FN(1, 4)
TILE_FN(2, 1)
TILE_FN(2, 2)
TILE_FN(2, 3)
TILE_FN(2, 4)
_Static_assert(IMC_QMM_MR == 2 && IMC_QMM_NT == 4, "the table below covers 2 x 4 micro-tiles");

typedef void (*tile_fn)(enum imc_type, const uint8_t *, uint64_t, const struct imc_q8x *, int64_t,
                        int64_t, float *, int64_t);

static void kernel_avx2(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int nr,
                        const struct imc_q8x *xq, int64_t ldq, int nt, int64_t nb, float *y,
                        int64_t ldy)
{
    static const tile_fn tiles[IMC_QMM_MR][IMC_QMM_NT] = {{tile_1_1, tile_1_2, tile_1_3, tile_1_4},
                                                          {tile_2_1, tile_2_2, tile_2_3, tile_2_4}};
    tiles[nr - 1][nt - 1](type, w, row_bytes, xq, ldq, nb, y, ldy);
}

imc_qmm_kernel_fn imc_qmm_kernel_avx2(void)
{
    __builtin_cpu_init();
    const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
    return ok ? kernel_avx2 : NULL;
}

#endif // x86
