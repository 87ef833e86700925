/*
 * tests/cuda/ccheck.h: shared pieces of the CUDA kernel tests (kernels/cuda/<op>.cu against
 * kernels/ref). A test writes one case function taking a struct cdev and calls cdev_run, which
 * runs it on the emulator (kernels/cuda/emu) in every resume order, then on the GPU through the
 * imc_cuda_* launchers when the build has CUDA and a device is visible; otherwise it prints
 * "SKIP-PART: no GPU" and the emulated part stands (the test never exits 77 for that).
 *
 * Tolerances (|y - ref| <= atol + rtol |ref|, inputs O(1)): those of tests/kernels/kcheck.h,
 * because each kernel does the arithmetic of the kernels/cpu twin those were set for:
 *   rmsnorm  TOL_RMSNORM  Σx² in double (another order), scale and x·scale·w in float
 *   softmax  TOL_SOFTMAX  expf of the float difference x - max, sum and division in double
 *   swiglu   TOL_SWIGLU   expf, one division and one product in float
 *   rope     TOL_ROPE     the reference's double angles, cos/sin rounded to float, rotation in
 *                         float (the device may contract it into fmaf: within the same bound)
 *   sqacc    bitwise      the reference's double sums in the same row order
 * The emulator runs libm's expf; the device's expf differs by up to 2 ulp, inside those bounds.
 */
#ifndef IMC_TESTS_CCHECK_H
#define IMC_TESTS_CCHECK_H

#include <stdio.h>

#include "../kernels/kcheck.h"
#include "kernels/cuda/emu/cuemu_api.h"

#undef IMC_CUDA_FN
#define IMC_CUDA_FN(n) imc_cuemu_##n
#include "kernels/cuda/kern_decl.h"
#undef IMC_CUDA_FN
#if IMC_HAVE_CUDA
#define IMC_CUDA_FN(n) imc_cuda_##n
#include "kernels/cuda/kern_decl.h"
#undef IMC_CUDA_FN
// The launcher `name` of device d: the emulated or the real one.
#define CDEV_FN(d, name) ((d)->emu ? imc_cuemu_##name : imc_cuda_##name)
#else
#define CDEV_FN(d, name) imc_cuemu_##name
#endif // IMC_HAVE_CUDA

struct cdev {
    int emu;       // 1: the emulator, 0: the GPU
    char name[32]; // "emu/forward", "cuda"
};

// Device memory holding a copy of n bytes at host (NULL: left as allocated).
static inline void *cdev_up(const struct cdev *d, const void *host, size_t n)
{
    void *p = NULL;
    CHECK(CDEV_FN(d, dev_alloc)(n, &p) == IMC_OK, "%s: alloc %zu bytes", d->name, n);
    if (p && host) {
        CHECK(CDEV_FN(d, copy_to_dev)(NULL, p, host, n) == IMC_OK, "%s: upload", d->name);
    }
    return p;
}

// Copies n bytes of device memory p to host and frees p.
static inline void cdev_down(const struct cdev *d, void *host, void *p, size_t n)
{
    CHECK(CDEV_FN(d, copy_to_host)(NULL, host, p, n) == IMC_OK, "%s: download", d->name);
    CDEV_FN(d, dev_free)(p);
}

// Runs fn(d, ctx) on the emulator in every order, then on the GPU where there is one.
static inline void cdev_run(void (*fn)(const struct cdev *d, void *ctx), void *ctx)
{
    struct cdev d = {1, ""};
    for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
        cuemu_set_order((enum cuemu_order)o, 1234u + (unsigned)o);
        snprintf(d.name, sizeof(d.name), "emu/%s", cuemu_order_name((enum cuemu_order)o));
        fn(&d, ctx);
    }
    int n = 0;
#if IMC_HAVE_CUDA
    if (imc_cuda_device_count(&n) != IMC_OK) {
        n = 0;
    }
#endif
    if (n > 0) {
        d.emu = 0;
        snprintf(d.name, sizeof(d.name), "cuda");
        fn(&d, ctx);
    } else {
        printf("SKIP-PART: no GPU (the imc_cuda_* launchers were not run; the emulated kernels "
               "were)\n");
    }
}

#endif // IMC_TESTS_CCHECK_H
