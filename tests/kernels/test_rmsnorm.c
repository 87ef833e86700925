/*
 * tests/kernels/test_rmsnorm: imc_cpu_rmsnorm (and its weightless and in-place forms) against
 * imc_ref_rmsnorm over a shape sweep, plus the defining property of the reference. Tolerances:
 * kcheck.h.
 */
#include <math.h>

#include "kcheck.h"

static void sweep_case(struct imc_exec *ex, struct krng *r, int64_t rows, int64_t n, bool weight)
{
    float *x = kalloc_rand(r, rows * n, 2.0f), *w = kalloc_rand(r, n, 1.0f);
    float *y = malloc((size_t)(rows * n) * 4), *ref = malloc((size_t)(rows * n) * 4);
    imc_ref_rmsnorm(ref, x, weight ? w : NULL, rows, n, 1e-5f);
    imc_cpu_rmsnorm(ex, y, x, weight ? w : NULL, rows, n, 1e-5f);
    char what[96];
    snprintf(what, sizeof(what), "rmsnorm rows=%lld n=%lld w=%d", (long long)rows, (long long)n,
             weight);
    kcompare(what, y, ref, rows * n, TOL_RMSNORM_ATOL, TOL_RMSNORM_RTOL);
    imc_cpu_rmsnorm(ex, x, x, weight ? w : NULL, rows, n, 1e-5f); // in place
    CHECK(memcmp(x, y, (size_t)(rows * n) * 4) == 0, "%s: in-place result differs", what);
    free(x);
    free(w);
    free(y);
    free(ref);
}

// Spec: without weight, every output row has mean square 1/(1 + eps/ms) (≈ 1).
static void property(void)
{
    const float x[4] = {1.0f, -2.0f, 3.0f, 0.5f};
    float y[4];
    imc_ref_rmsnorm(y, x, NULL, 1, 4, 0.0f);
    double ms = 0;
    for (int i = 0; i < 4; i++) {
        ms += (double)y[i] * y[i] / 4;
    }
    CHECK_CLOSE(ms, 1.0, 1e-6, 0);
    CHECK_CLOSE(y[1] / y[0], -2.0, 1e-6, 0); // direction kept
}

int main(void)
{
    struct krng r = {1};
    const int64_t rows[] = {1, 3, 17, 70};
    const int64_t ns[] = {1, 7, 64, 1000, 4096};
    struct imc_exec *ex = kexec(3);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        for (size_t j = 0; j < sizeof(ns) / sizeof(ns[0]); j++) {
            sweep_case(ex, &r, rows[i], ns[j], (i + j) % 2 == 0);
            sweep_case(ex, &r, rows[i], ns[j], (i + j) % 2 == 1);
        }
    }
    property();
    imc_exec_free(ex);
    return check_summary();
}
