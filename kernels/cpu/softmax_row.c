/*
 * kernels/cpu/softmax_row: attention's scaled softmax of one score row with an exp of imc's own,
 * vectorized and the same bits on every path (kernels/cpu/softmax_row.h).
 *
 * exp (Cephes expf's scheme): for x >= LO, n = rint(x · log2 e), r = x − n·C1 − n·C2 (two
 * fmaf, C1 + C2 = ln 2 with C1 exact in few bits), p = 1 + r + r²·P(r) with P of degree 5 by
 * Horner's fmaf, result p · 2^n (2^n built from its bits); below LO, 0. Every path computes
 * exactly these operations on each element (fmaf ↔ vfmadd, rintf ↔ roundscale to nearest even,
 * fmaxf(x, LO) ↔ vmaxps(x, LO) for the n of a NaN), so the bits match. Within 2 ulp of exp on
 * [LO, 0] (kernels.softmax measures it). LO = −86: 2^n stays normal there, and e^−86 ≈ 4e−38 is
 * nothing beside the row's largest term, 1.
 *
 * The sum: 16 double lanes, lane i adding elements i, i + 16, i + 32, ... in ascending order,
 * then the lanes added 0 .. 15 in order: the same on every path.
 */
#include "kernels/cpu/softmax_row.h"

#include <math.h>
#include <string.h>

#define LO (-86.0f)
#define LOG2E 1.44269504088896341f
#define C1 0.693359375f
#define C2 (-2.12194440e-4f)
#define P0 1.9875691500e-4f
#define P1 1.3981999507e-3f
#define P2 8.3334519073e-3f
#define P3 4.1665795894e-2f
#define P4 1.6666665459e-1f
#define P5 5.0000001201e-1f
#define LANES 16

typedef void (*exp_sum_fn)(float *x, int64_t n, float mx, double *s);

float imc_cpu_exp_det(float x)
{
    const float n = rintf(fmaxf(x, LO) * LOG2E);
    float r = fmaf(-n, C1, x);
    r = fmaf(-n, C2, r);
    float p = fmaf(P0, r, P1);
    p = fmaf(p, r, P2);
    p = fmaf(p, r, P3);
    p = fmaf(p, r, P4);
    p = fmaf(p, r, P5);
    p = fmaf(p, r * r, r) + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < LO ? 0.0f : p * scale;
}

// x[i] = exp(x[i] − mx) for i < n, lane sums into s (element i into lane i % LANES).
static void exp_sum_generic(float *x, int64_t n, float mx, double *s)
{
    for (int64_t i = 0; i < n; i++) {
        x[i] = imc_cpu_exp_det(x[i] - mx);
        s[i % LANES] += (double)x[i];
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f")))

AVX2 static inline __m256 exp8(__m256 x)
{
    const __m256 n =
        _mm256_round_ps(_mm256_mul_ps(_mm256_max_ps(x, _mm256_set1_ps(LO)), _mm256_set1_ps(LOG2E)),
                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(C1), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(C2), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(P0), r, _mm256_set1_ps(P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P5));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i bits =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const __m256 e = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(LO), _CMP_LT_OQ), e);
}

AVX2 static void exp_sum_avx2(float *x, int64_t n, float mx, double *s)
{
    const __m256 m = _mm256_set1_ps(mx);
    __m256d a[4] = {_mm256_loadu_pd(s), _mm256_loadu_pd(s + 4), _mm256_loadu_pd(s + 8),
                    _mm256_loadu_pd(s + 12)};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        const __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        const __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m));
        _mm256_storeu_ps(x + i, e0);
        _mm256_storeu_ps(x + i + 8, e1);
        a[0] = _mm256_add_pd(a[0], _mm256_cvtps_pd(_mm256_castps256_ps128(e0)));
        a[1] = _mm256_add_pd(a[1], _mm256_cvtps_pd(_mm256_extractf128_ps(e0, 1)));
        a[2] = _mm256_add_pd(a[2], _mm256_cvtps_pd(_mm256_castps256_ps128(e1)));
        a[3] = _mm256_add_pd(a[3], _mm256_cvtps_pd(_mm256_extractf128_ps(e1, 1)));
    }
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_pd(s + 4 * k, a[k]);
    }
    exp_sum_generic(x + i, n - i, mx, s); // i is a multiple of LANES: lanes line up
}

AVX512 static inline __m512 exp16(__m512 x)
{
    const __m512 n = _mm512_roundscale_ps(
        _mm512_mul_ps(_mm512_max_ps(x, _mm512_set1_ps(LO)), _mm512_set1_ps(LOG2E)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(C1), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(C2), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(P0), r, _mm512_set1_ps(P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P5));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    const __m512i bits =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    const __m512 e = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
    const __mmask16 lo = _mm512_cmp_ps_mask(x, _mm512_set1_ps(LO), _CMP_LT_OQ);
    return _mm512_mask_mov_ps(e, lo, _mm512_setzero_ps());
}

AVX512 static void exp_sum_avx512(float *x, int64_t n, float mx, double *s)
{
    const __m512 m = _mm512_set1_ps(mx);
    __m512d a0 = _mm512_loadu_pd(s), a1 = _mm512_loadu_pd(s + 8);
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
        _mm512_storeu_ps(x + i, e);
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        a1 = _mm512_add_pd(
            a1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    _mm512_storeu_pd(s, a0);
    _mm512_storeu_pd(s + 8, a1);
    exp_sum_generic(x + i, n - i, mx, s);
}

#endif

// The row softmax around a path's exp_sum (inlined into one function per path below).
static inline __attribute__((always_inline)) void softmax_with(exp_sum_fn exp_sum, float *x,
                                                               int64_t n, float scale)
{
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x[i] *= scale;
        mx = x[i] > mx ? x[i] : mx;
    }
    if (mx == -INFINITY) {
        memset(x, 0, (size_t)(n > 0 ? n : 0) * sizeof(float));
        return;
    }
    double s[LANES] = {0};
    exp_sum(x, n, mx, s);
    double sum = 0.0;
    for (int k = 0; k < LANES; k++) {
        sum += s[k];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) {
        x[i] *= inv;
    }
}

static void softmax_generic(float *x, int64_t n, float scale)
{
    softmax_with(exp_sum_generic, x, n, scale);
}

#if defined(__x86_64__) || defined(__i386__)
static void softmax_avx2(float *x, int64_t n, float scale)
{
    softmax_with(exp_sum_avx2, x, n, scale);
}

static void softmax_avx512(float *x, int64_t n, float scale)
{
    softmax_with(exp_sum_avx512, x, n, scale);
}
#endif

imc_softmax_row_fn imc_cpu_softmax_scaled(enum imc_gemm_path path)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (path == IMC_GEMM_VNNI && __builtin_cpu_supports("avx512f")) {
        return softmax_avx512;
    }
    if (path != IMC_GEMM_GENERIC && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma")) {
        return softmax_avx2;
    }
#endif
    (void)path;
    return softmax_generic;
}
