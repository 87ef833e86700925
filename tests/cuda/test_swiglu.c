/*
 * tests/cuda/test_swiglu: kernels/cuda/elementwise.cu's swiglu against imc_ref_swiglu over odd
 * shapes with distinct row strides, in place over gate, and more rows than a grid's y extent,
 * emulated in every resume order and on the GPU where there is one (tests/cuda/ccheck.h:
 * tolerance TOL_SWIGLU).
 */
#include "ccheck.h"

struct shape {
    int64_t rows, n;
};

static void run(const struct cdev *d, void *ctx)
{
    (void)ctx;
    static const struct shape shapes[] = {{1, 1}, {3, 17}, {5, 300}, {2, 2048}, {70000, 3}};
    struct krng r = {5};
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        const int64_t m = shapes[k].rows, n = shapes[k].n;
        const int64_t ldg = n + 3, ldu = 2 * n + 1, ldo = n + 5; // up interleaved with junk
        float *g = kalloc_rand(&r, m * ldg, 3.0f), *u = kalloc_rand(&r, m * ldu, 1.0f);
        float *out = kalloc_rand(&r, m * ldo, 1.0f), *ref = kdup(out, m * ldo);
        imc_ref_swiglu(ref, ldo, g, ldg, u, ldu, m, n);
        float *dg = cdev_up(d, g, (size_t)(m * ldg) * 4),
              *du = cdev_up(d, u, (size_t)(m * ldu) * 4);
        float *dout = cdev_up(d, out, (size_t)(m * ldo) * 4);
        CHECK(CDEV_FN(d, swiglu)(NULL, dout, ldo, dg, ldg, du, ldu, m, n) == IMC_OK, "launch");
        cdev_down(d, out, dout, (size_t)(m * ldo) * 4);
        char what[96];
        snprintf(what, sizeof(what), "%s swiglu %lldx%lld", d->name, (long long)m, (long long)n);
        kcompare(what, out, ref, m * ldo, TOL_SWIGLU_ATOL, TOL_SWIGLU_RTOL); // padding kept too
        // in place over gate: the gate rows become the output (stride ldg)
        float *refg = kdup(g, m * ldg);
        imc_ref_swiglu(refg, ldg, g, ldg, u, ldu, m, n);
        CHECK(CDEV_FN(d, swiglu)(NULL, dg, ldg, dg, ldg, du, ldu, m, n) == IMC_OK, "in place");
        cdev_down(d, g, dg, (size_t)(m * ldg) * 4);
        kcompare(what, g, refg, m * ldg, TOL_SWIGLU_ATOL, TOL_SWIGLU_RTOL);
        CDEV_FN(d, dev_free)(du);
        free(g);
        free(u);
        free(out);
        free(ref);
        free(refg);
    }
}

int main(void)
{
    cdev_run(run, NULL);
    return check_summary();
}
