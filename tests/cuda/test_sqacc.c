/*
 * tests/cuda/test_sqacc: kernels/cuda/elementwise.cu's sqacc against imc_ref_sqacc, bitwise (the
 * same double sums in the same row order), accumulating twice onto nonzero sums over odd shapes
 * and a row stride, emulated in every resume order and on the GPU where there is one.
 */
#include "ccheck.h"

struct shape {
    int64_t rows, n_in;
};

static void run(const struct cdev *d, void *ctx)
{
    (void)ctx;
    static const struct shape shapes[] = {{1, 1}, {3, 130}, {17, 1000}, {5, 7168}, {300, 33}};
    struct krng r = {9};
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        const int64_t m = shapes[k].rows, n = shapes[k].n_in, ldx = n + 2;
        float *x = kalloc_rand(&r, m * ldx, 3.0f);
        double *ref = malloc((size_t)n * 8), *got = malloc((size_t)n * 8);
        int64_t count_ref = 5, count = 5;
        for (int64_t i = 0; i < n; i++) {
            ref[i] = (double)krng_unif(&r) + 1.0; // earlier chunks' sums
        }
        double *ds = cdev_up(d, ref, (size_t)n * 8);
        float *dx = cdev_up(d, x, (size_t)(m * ldx) * 4);
        int64_t *dc = cdev_up(d, &count, sizeof(count));
        for (int pass = 0; pass < 2; pass++) {
            imc_ref_sqacc(ref, &count_ref, x, ldx, m, n);
            CHECK(CDEV_FN(d, sqacc)(NULL, ds, dc, dx, ldx, m, n) == IMC_OK, "launch");
        }
        cdev_down(d, got, ds, (size_t)n * 8);
        cdev_down(d, &count, dc, sizeof(count));
        CDEV_FN(d, dev_free)(dx);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) {
            bad += memcmp(&got[i], &ref[i], 8) != 0;
        }
        CHECK(bad == 0 && count == count_ref,
              "%s sqacc %lldx%lld: %lld sums differ (first %.17g "
              "vs %.17g), count %lld vs %lld",
              d->name, (long long)m, (long long)n, (long long)bad, got[0], ref[0], (long long)count,
              (long long)count_ref);
        free(x);
        free(ref);
        free(got);
    }
}

int main(void)
{
    cdev_run(run, NULL);
    return check_summary();
}
