/*
 * tests/kernels/test_softmax: imc_cpu_softmax and imc_cpu_swiglu against their references over a
 * shape sweep, masked (-INFINITY) entries, and properties of the references. Tolerances: kcheck.h.
 */
#include <math.h>

#include "kcheck.h"

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

int main(void)
{
    struct krng r = {2};
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
