/*
 * tests/kernels/test_softmax: imc_cpu_softmax and imc_cpu_swiglu against their references over a
 * shape sweep, masked (-INFINITY) entries, and properties of the references; attention's
 * softmax (kernels/cpu/softmax_row.h): its exp within 2 ulp of exp on [−86, 0] (every 257th
 * float of [−1, 0] and 4M points beyond), 0 below, NaN kept; the scaled row softmax against the
 * reference and bitwise the same on every GEMM path the CPU supports, rows of 1 .. 70, 300, 1001
 * and 2^18 with masked entries and scales. Tolerances: kcheck.h.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kcheck.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/softmax_row.h"

static void softmax_case(struct imc_exec *ex, struct krng *r, int64_t rows, int64_t n)
{
    float *x = kalloc_rand(r, rows * n, 3.0f);
    for (int64_t i = 0; i < rows * n; i += 5) {
        x[i] = -INFINITY; // masked entries (a row of n = 1 may be entirely masked)
    }
    float *y = kdup(x, rows * n), *ref = kdup(x, rows * n);
    imc_ref_softmax(ref, rows, n);
    imc_cpu_softmax(ex, y, rows, n);
    char what[64];
    snprintf(what, sizeof(what), "softmax rows=%lld n=%lld", (long long)rows, (long long)n);
    kcompare(what, y, ref, rows * n, TOL_SOFTMAX_ATOL, TOL_SOFTMAX_RTOL);
    for (int64_t rr = 0; rr < rows; rr++) { // spec: rows sum to 1 unless fully masked
        double s = 0.0;
        bool any = false;
        for (int64_t i = 0; i < n; i++) {
            s += ref[rr * n + i];
            any = any || x[rr * n + i] != -INFINITY;
        }
        CHECK_CLOSE(s, any ? 1.0 : 0.0, 1e-6, 0);
    }
    free(x);
    free(y);
    free(ref);
}

static void swiglu_case(struct imc_exec *ex, struct krng *r, int64_t rows, int64_t n)
{
    const int64_t ld = n + 3; // strided rows
    float *g = kalloc_rand(r, rows * ld, 3.0f), *u = kalloc_rand(r, rows * ld, 1.0f);
    float *y = calloc((size_t)(rows * n), 4), *ref = calloc((size_t)(rows * n), 4);
    imc_ref_swiglu(ref, n, g, ld, u, ld, rows, n);
    imc_cpu_swiglu(ex, y, n, g, ld, u, ld, rows, n);
    char what[64];
    snprintf(what, sizeof(what), "swiglu rows=%lld n=%lld", (long long)rows, (long long)n);
    kcompare(what, y, ref, rows * n, TOL_SWIGLU_ATOL, TOL_SWIGLU_RTOL);
    free(g);
    free(u);
    free(y);
    free(ref);
}

// Units in the last place of exp(x) (double) that e is off by.
static double ulps(float e, double x)
{
    const double want = exp(x);
    const float w = (float)want;
    const double ulp = (double)nextafterf(w, INFINITY) - (double)w;
    return fabs((double)e - want) / ulp;
}

static void exp_det(void)
{
    double worst = 0.0, at = 0.0;
    // every 257th float of [−1, 0] (all binades down to the smallest), then 4M points to −86
    for (uint32_t b = 0x80000000u; b <= 0xbf800000u; b += 257) {
        float x;
        memcpy(&x, &b, sizeof x);
        const double u = ulps(imc_cpu_exp_det(x), (double)x);
        at = u > worst ? (double)x : at;
        worst = u > worst ? u : worst;
    }
    for (int64_t i = 0; i <= (1 << 22); i++) {
        const float x = -1.0f - 85.0f * (float)i / (float)(1 << 22);
        const double u = ulps(imc_cpu_exp_det(x), (double)x);
        at = u > worst ? (double)x : at;
        worst = u > worst ? u : worst;
    }
    CHECK(worst <= 2.0, "exp_det: %.2f ulp at %.9g (bound 2)", worst, at);
    CHECK(imc_cpu_exp_det(0.0f) == 1.0f, "exp_det(0) = %.9g", (double)imc_cpu_exp_det(0.0f));
    CHECK(imc_cpu_exp_det(-86.5f) == 0.0f && imc_cpu_exp_det(-INFINITY) == 0.0f,
          "exp_det below −86 is 0");
    CHECK(isnan(imc_cpu_exp_det(NAN)), "exp_det(NaN) is NaN");
    printf("  exp_det: worst %.3f ulp at %.9g\n", worst, at);
}

// Attention's softmax of rows of n with scale sc on every supported path: bitwise the generic
// path's, and within the softmax tolerance of the reference.
static void scaled_case(struct krng *r, int64_t n, float sc)
{
    float *x = kalloc_rand(r, n, 8.0f), *ref = kdup(x, n), *gen = kdup(x, n);
    for (int64_t i = 3; i < n; i += 7) {
        x[i] = ref[i] = gen[i] = -INFINITY;
    }
    for (int64_t i = 0; i < n; i++) {
        ref[i] = ref[i] == -INFINITY ? -INFINITY : ref[i] * sc;
    }
    imc_ref_softmax(ref, 1, n);
    imc_cpu_softmax_scaled(IMC_GEMM_GENERIC)(gen, n, sc);
    char what[96];
    snprintf(what, sizeof(what), "softmax_scaled n=%lld scale=%g", (long long)n, (double)sc);
    kcompare(what, gen, ref, n, TOL_SOFTMAX_ATOL, TOL_SOFTMAX_RTOL);
    const enum imc_gemm_path paths[] = {IMC_GEMM_AVX2, IMC_GEMM_VNNI};
    for (int p = 0; p < 2; p++) {
        if (!imc_gemm_path_supported(paths[p])) {
            continue;
        }
        float *y = kdup(x, n);
        imc_cpu_softmax_scaled(paths[p])(y, n, sc);
        CHECK(memcmp(y, gen, (size_t)n * sizeof(float)) == 0, "%s: %s path differs from generic",
              what, imc_gemm_path_name(paths[p]));
        free(y);
    }
    free(x);
    free(ref);
    free(gen);
}

int main(void)
{
    struct krng r = {2};
    exp_det();
    for (int64_t n = 1; n <= 70; n++) {
        scaled_case(&r, n, n % 3 == 0 ? 0.125f : 1.0f);
    }
    scaled_case(&r, 300, 0.0722f);
    scaled_case(&r, 1001, 2.0f);
    scaled_case(&r, 1 << 18, 1.0f); // enough elements to show a change of any fma step
    float all[5] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    imc_cpu_softmax_scaled(imc_gemm_path_best())(all, 5, 1.0f);
    CHECK(all[0] == 0.0f && all[4] == 0.0f, "a row entirely -INFINITY becomes 0");
    struct imc_exec *ex = kexec(2);
    const int64_t rows[] = {1, 5, 33};
    const int64_t ns[] = {1, 2, 9, 128, 5001};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        for (size_t j = 0; j < sizeof(ns) / sizeof(ns[0]); j++) {
            softmax_case(ex, &r, rows[i], ns[j]);
            swiglu_case(ex, &r, rows[i], ns[j]);
        }
    }
    // Spec values: softmax([0, ln 3]) = [1/4, 3/4]; silu(1)·2 = 2/(1+e^-1).
    float s[2] = {0.0f, logf(3.0f)}, g = 1.0f, u = 2.0f, o = 0.0f;
    imc_ref_softmax(s, 1, 2);
    CHECK_CLOSE(s[0], 0.25, 1e-7, 0);
    CHECK_CLOSE(s[1], 0.75, 1e-7, 0);
    imc_ref_swiglu(&o, 1, &g, 1, &u, 1, 1, 1);
    CHECK_CLOSE(o, 2.0 / (1.0 + exp(-1.0)), 1e-7, 0);
    imc_exec_free(ex);
    return check_summary();
}
