/*
 * tests/cuda/test_rmsnorm: kernels/cuda/elementwise.cu's rmsnorm (with and without weight, in
 * place) against imc_ref_rmsnorm over odd shapes, emulated in every resume order and on the GPU
 * where there is one (tests/cuda/ccheck.h: tolerance TOL_RMSNORM).
 */
#include "ccheck.h"

struct shape {
    int64_t rows, n;
};

static void run(const struct cdev *d, void *ctx)
{
    (void)ctx;
    static const struct shape shapes[] = {{1, 1},    {3, 7},    {5, 33},   {2, 255}, {4, 256},
                                          {3, 1000}, {2, 7168}, {1, 4097}, {70, 64}};
    struct krng r = {7};
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        const int64_t rows = shapes[k].rows, n = shapes[k].n;
        const size_t bytes = (size_t)(rows * n) * sizeof(float);
        float *x = kalloc_rand(&r, rows * n, 2.0f), *w = kalloc_rand(&r, n, 1.0f);
        float *ref = malloc(bytes), *y = malloc(bytes);
        for (int weight = 0; weight < 2; weight++) {
            imc_ref_rmsnorm(ref, x, weight ? w : NULL, rows, n, 1e-5f);
            float *dx = cdev_up(d, x, bytes), *dy = cdev_up(d, NULL, bytes);
            float *dw = weight ? cdev_up(d, w, (size_t)n * sizeof(float)) : NULL;
            CHECK(CDEV_FN(d, rmsnorm)(NULL, dy, dx, dw, rows, n, 1e-5f) == IMC_OK, "launch");
            cdev_down(d, y, dy, bytes);
            char what[96];
            snprintf(what, sizeof(what), "%s rmsnorm %lldx%lld w=%d", d->name, (long long)rows,
                     (long long)n, weight);
            kcompare(what, y, ref, rows * n, TOL_RMSNORM_ATOL, TOL_RMSNORM_RTOL);
            CHECK(CDEV_FN(d, rmsnorm)(NULL, dx, dx, dw, rows, n, 1e-5f) == IMC_OK, "in place");
            cdev_down(d, y, dx, bytes);
            kcompare(what, y, ref, rows * n, TOL_RMSNORM_ATOL, TOL_RMSNORM_RTOL);
            CDEV_FN(d, dev_free)(dw);
        }
        free(x);
        free(w);
        free(ref);
        free(y);
    }
}

int main(void)
{
    cdev_run(run, NULL);
    return check_summary();
}
