/*
 * tests/cuda/test_gemm: the tiled GEMM launchers (kernels/cuda/gemm.cu: gemm on f32, gemm_bf16 on
 * bf16 inputs) and cuBLAS's (kernels/cuda/blas.cu: blas_gemm, blas_gemm_bf16) against kernels/ref
 * and kernels/cpu, in every emulator order (cuBLAS emulated: kernels/cuda/emu/cuemu_cublas.h),
 * then on the GPU where there is one (the real cuBLAS). cuBLAS is held to the bound below, not
 * to the bits: its order of sums is its own.
 *
 * Checks per shape (n_out, n_in, n_tok, ldy), f32 weights and activations N(0, 1), then the same
 * rounded to bf16 and handed to gemm_bf16 as bf16 (its products are exact in f32, so the checks
 * below hold for it unchanged, against imc_cpu_matmul and the reference on the rounded values):
 *   - the tiled GEMM bitwise equal to imc_cpu_matmul: both are one fmaf chain per output in
 *     ascending i from +0 (kernels/cpu/gemm.h), so any other order, a dropped or doubled column,
 *     or a tile edge read wrong shows in the bits;
 *   - |y - ref| <= (n_in + 2)·2^-24·Σ_i |w_i·x_i| against imc_ref_matmul (double sums): γ(n_in)
 *     for the float chain plus the reference's own rounding to float (u·|y|);
 *   - the outputs between ldy rows (ldy > n_out) keep their values (no write out of the tile).
 * Shapes cover one element, partial 64-row/64-token tiles and partial 16-column steps.
 * Broken variant run by hand and not kept: the k loop over c < kn - 1 (one column skipped per
 * step) fails every shape on the bitwise check and the bound.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ccheck.h"
#include "kernels/kernels.h"

struct shape {
    int64_t n_out, n_in, n_tok, ldy;
};

static const struct shape shapes[] = {
    {1, 1, 1, 1},      {5, 7, 3, 5},       {64, 16, 64, 64},
    {70, 33, 130, 75}, {130, 100, 9, 130}, {3, 300, 65, 4},
};
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

// One shape with weights w and activations x (f32; with bf16, values that bf16 holds exactly,
// handed to the device as bf16): gemm / gemm_bf16 (and on the device blas_gemm / blas_gemm_bf16)
// against imc_cpu_matmul's bits and the reference's bound on those values.
static void check(const struct cdev *d, const struct shape *s, const float *w, const float *x,
                  bool bf16)
{
    const int64_t ny = s->n_tok * s->ldy, nw = s->n_out * s->n_in, nx = s->n_tok * s->n_in;
    float *y = malloc((size_t)ny * sizeof(float)), *cpu = malloc((size_t)ny * sizeof(float));
    float *ref = malloc((size_t)ny * sizeof(float));
    uint16_t *wb = malloc((size_t)nw * 2), *xb = malloc((size_t)nx * 2);
    for (int64_t i = 0; i < ny; i++) {
        y[i] = cpu[i] = ref[i] = -7.0f; // the gaps between rows must keep this
    }
    for (int64_t i = 0; i < nw; i++) {
        wb[i] = imc_fp32_to_bf16(w[i]);
    }
    for (int64_t i = 0; i < nx; i++) {
        xb[i] = imc_fp32_to_bf16(x[i]);
    }
    struct imc_exec *ex = kexec(1);
    CHECK(imc_cpu_matmul(ex, cpu, s->ldy, w, IMC_TYPE_F32, s->n_out, s->n_in, x, s->n_in,
                         s->n_tok) == IMC_OK,
          "cpu matmul");
    CHECK(imc_ref_matmul(ref, s->ldy, w, IMC_TYPE_F32, s->n_out, s->n_in, x, s->n_in, s->n_tok) ==
              IMC_OK,
          "ref matmul");
    imc_exec_free(ex);
    void *dw = bf16 ? cdev_up(d, wb, (size_t)nw * 2) : cdev_up(d, w, (size_t)nw * 4);
    void *dx = bf16 ? cdev_up(d, xb, (size_t)nx * 2) : cdev_up(d, x, (size_t)nx * 4);
    const char *names[2][2] = {{"gemm", "cublas"}, {"gemm_bf16", "cublas_bf16"}};
    for (int pass = 0; pass < 2; pass++) { // pass 1: cuBLAS (emulated in the emulator)
        const char *name = names[bf16][pass];
        void *dy = cdev_up(d, y, (size_t)ny * 4);
        enum imc_status st = IMC_ERR_UNSUPPORTED;
        void *h = NULL;
        if (pass == 0) {
            st = bf16 ? CDEV_FN(d, gemm_bf16)(NULL, dw, s->n_out, s->n_in, dx, s->n_tok, dy, s->ldy)
                      : CDEV_FN(d, gemm)(NULL, dw, s->n_out, s->n_in, dx, s->n_tok, dy, s->ldy);
        } else if ((st = CDEV_FN(d, blas_create)(&h)) == IMC_OK) {
            st = bf16 ? CDEV_FN(d, blas_gemm_bf16)(h, NULL, dw, s->n_out, s->n_in, dx, s->n_tok, dy,
                                                   s->ldy)
                      : CDEV_FN(d, blas_gemm)(h, NULL, dw, s->n_out, s->n_in, dx, s->n_tok, dy,
                                              s->ldy);
            CDEV_FN(d, blas_free)(h);
        }
        float *out = malloc((size_t)ny * sizeof(float));
        cdev_down(d, out, dy, (size_t)ny * 4);
        CHECK(st == IMC_OK, "%s %s: %lldx%lld, %lld tokens: launch", d->name, name,
              (long long)s->n_out, (long long)s->n_in, (long long)s->n_tok);
        int bad_bits = 0, bad_bound = 0, bad_gap = 0;
        double worst = 0.0;
        for (int64_t t = 0; t < s->n_tok; t++) {
            for (int64_t o = 0; o < s->ldy; o++) {
                const int64_t k = t * s->ldy + o;
                if (o >= s->n_out) {
                    bad_gap += out[k] != -7.0f;
                    continue;
                }
                double sabs = 0.0;
                for (int64_t i = 0; i < s->n_in; i++) {
                    sabs += fabs((double)w[o * s->n_in + i] * x[t * s->n_in + i]);
                }
                const double bound = (double)(s->n_in + 2) * 0x1p-24 * sabs;
                const double e = fabs((double)out[k] - ref[k]);
                worst = sabs > 0 && e / sabs > worst ? e / sabs : worst;
                bad_bound += !(e <= bound);
                bad_bits += pass == 0 && memcmp(&out[k], &cpu[k], 4) != 0;
            }
        }
        CHECK(bad_bits == 0 && bad_bound == 0 && bad_gap == 0,
              "%s %s: %lldx%lld, %lld tokens, ldy %lld: %d outputs differ from imc_cpu_matmul, "
              "%d outside the bound, %d gap values overwritten",
              d->name, name, (long long)s->n_out, (long long)s->n_in, (long long)s->n_tok,
              (long long)s->ldy, bad_bits, bad_bound, bad_gap);
        if (d->emu == 0 || strcmp(d->name, "emu/forward") == 0) {
            printf("%-12s %-11s %4lld x %4lld, %4lld tokens: max |y - ref| / Σ|w·x| = %.3g "
                   "(bound (n_in + 2)·2^-24 = %.3g)\n",
                   d->name, name, (long long)s->n_out, (long long)s->n_in, (long long)s->n_tok,
                   worst, (double)(s->n_in + 2) * 0x1p-24);
        }
        free(out);
    }
    CDEV_FN(d, dev_free)(dw);
    CDEV_FN(d, dev_free)(dx);
    free(y);
    free(cpu);
    free(ref);
    free(wb);
    free(xb);
}

static void one(const struct cdev *d, void *ctx)
{
    const struct shape *s = ctx;
    struct krng r = {(uint64_t)(s->n_out * 1000 + s->n_in)};
    float *w = kalloc_rand(&r, s->n_out * s->n_in, 1.0f);
    float *x = kalloc_rand(&r, s->n_tok * s->n_in, 1.0f);
    check(d, s, w, x, false);
    for (int64_t i = 0; i < s->n_out * s->n_in; i++) { // the values bf16 holds
        w[i] = imc_bf16_to_fp32(imc_fp32_to_bf16(w[i]));
    }
    for (int64_t i = 0; i < s->n_tok * s->n_in; i++) {
        x[i] = imc_bf16_to_fp32(imc_fp32_to_bf16(x[i]));
    }
    check(d, s, w, x, true);
    free(w);
    free(x);
}

int main(void)
{
    for (size_t i = 0; i < N_SHAPES; i++) {
        cdev_run(one, (void *)&shapes[i]);
    }
    return check_summary();
}
