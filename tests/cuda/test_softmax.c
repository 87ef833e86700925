/*
 * tests/cuda/test_softmax: kernels/cuda/elementwise.cu's softmax against imc_ref_softmax over odd
 * shapes, spread and near-flat rows, with -inf entries and a fully masked row, emulated in every
 * resume order and on the GPU where there is one (tests/cuda/ccheck.h: tolerance TOL_SOFTMAX).
 */
#include <math.h>

#include "ccheck.h"

static void run(const struct cdev *d, void *ctx)
{
    (void)ctx;
    const int64_t rows[] = {1, 5, 33};
    const int64_t ns[] = {1, 2, 9, 128, 257, 5001, 1024, 300};
    struct krng r = {3};
    for (size_t a = 0; a < sizeof(rows) / sizeof(rows[0]); a++) {
        for (size_t b = 0; b < sizeof(ns) / sizeof(ns[0]); b++) {
            const int64_t m = rows[a], n = ns[b];
            const size_t bytes = (size_t)(m * n) * sizeof(float);
            // rows of spread values, and near-flat rows (every exp near 1: partial sums exceed
            // the max, so a reduction that mixes them up shows)
            float *x = kalloc_rand(&r, m * n, b % 2 ? 0.01f : 3.0f);
            for (int64_t i = 0; i < m * n; i += 7) { // causal-mask style holes
                x[i] = -INFINITY;
            }
            for (int64_t i = 0; m > 1 && i < n; i++) { // the last row fully masked
                x[(m - 1) * n + i] = -INFINITY;
            }
            float *ref = kdup(x, m * n), *y = malloc(bytes);
            imc_ref_softmax(ref, m, n);
            float *dx = cdev_up(d, x, bytes);
            CHECK(CDEV_FN(d, softmax)(NULL, dx, m, n) == IMC_OK, "launch");
            cdev_down(d, y, dx, bytes);
            char what[96];
            snprintf(what, sizeof(what), "%s softmax %lldx%lld", d->name, (long long)m,
                     (long long)n);
            kcompare(what, y, ref, m * n, TOL_SOFTMAX_ATOL, TOL_SOFTMAX_RTOL);
            free(x);
            free(ref);
            free(y);
        }
    }
}

int main(void)
{
    cdev_run(run, NULL);
    return check_summary();
}
