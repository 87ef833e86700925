/*
 * kernels/cpu/sqacc_rows: the inner loop of imc_cpu_sqacc (elementwise.c), per path: for each
 * row r in order and each column i of [c0, c1), s[i] += (double)x[r][i] · (double)x[r][i], a
 * double multiply (exact: two 24-bit significands) then a double add, as the reference computes
 * it. Vectorized across columns only, so each sum sees the same operations in the same row
 * order on every path: the same bits (kernels.sqacc compares each path with imc_ref_sqacc
 * bitwise).
 */
#include "kernels/cpu/cpu_priv.h"

static void rows_generic(double *s, const float *x, int64_t ldx, int64_t n_rows, int64_t c0,
                         int64_t c1)
{
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * ldx;
        for (int64_t i = c0; i < c1; i++) {
            const double v = xr[i];
            s[i] += v * v;
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

__attribute__((target("avx2"))) static void rows_avx2(double *s, const float *x, int64_t ldx,
                                                      int64_t n_rows, int64_t c0, int64_t c1)
{
    const int64_t cv = c0 + (c1 - c0) / 8 * 8;
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * ldx;
        for (int64_t i = c0; i < cv; i += 8) {
            const __m256 v = _mm256_loadu_ps(xr + i);
            const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
            const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
            _mm256_storeu_pd(s + i, _mm256_add_pd(_mm256_loadu_pd(s + i), _mm256_mul_pd(lo, lo)));
            _mm256_storeu_pd(s + i + 4,
                             _mm256_add_pd(_mm256_loadu_pd(s + i + 4), _mm256_mul_pd(hi, hi)));
        }
    }
    rows_generic(s, x, ldx, n_rows, cv, c1);
}

__attribute__((target("avx512f"))) static void rows_avx512(double *s, const float *x, int64_t ldx,
                                                           int64_t n_rows, int64_t c0, int64_t c1)
{
    const int64_t cv = c0 + (c1 - c0) / 16 * 16;
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * ldx;
        for (int64_t i = c0; i < cv; i += 16) {
            const __m512 v = _mm512_loadu_ps(xr + i);
            const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
            const __m512d hi =
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
            _mm512_storeu_pd(s + i, _mm512_add_pd(_mm512_loadu_pd(s + i), _mm512_mul_pd(lo, lo)));
            _mm512_storeu_pd(s + i + 8,
                             _mm512_add_pd(_mm512_loadu_pd(s + i + 8), _mm512_mul_pd(hi, hi)));
        }
    }
    rows_generic(s, x, ldx, n_rows, cv, c1);
}

imc_sqacc_rows_fn imc_cpu_sqacc_rows(enum imc_gemm_path path)
{
    __builtin_cpu_init();
    if (path == IMC_GEMM_VNNI && __builtin_cpu_supports("avx512f")) {
        return rows_avx512;
    }
    if (path != IMC_GEMM_GENERIC && __builtin_cpu_supports("avx2")) {
        return rows_avx2;
    }
    return rows_generic;
}
#else
imc_sqacc_rows_fn imc_cpu_sqacc_rows(enum imc_gemm_path path)
{
    (void)path;
    return rows_generic;
}
#endif
