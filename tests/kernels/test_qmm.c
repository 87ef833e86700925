/*
 * tests/kernels/test_qmm: the quantized-activation matmul (kernels/cpu/qmm.h, imc_cpu_matmul in
 * Q8 mode) for Q8_0 and Q4_0 weights.
 *
 *   - paths: the AVX2 micro-tiles (where the CPU has them) give the generic kernel's bits, for
 *     every edge of the 2 × 4 micro-tile and the 32-token pass;
 *   - tolerance against the scalar reference (dequantized W times the f32 x, in double):
 *       |y − ref| <= Σ_i |w_i|·|x_i − d_b·q_i|  +  2^-22·(n/32 + 4)·Σ_i |w_i·d_b·q_i|
 *     the first term is the activation quantization error itself (computed exactly), the second
 *     the float rounding of one fma per block per lane (n/32 of them), the scale product and the
 *     three adds of the reduction, each <= 2^-24 of the sum of magnitudes (4× margin);
 *   - quantization: |q| <= 127, an all-zero block gives d = 0, x ≈ d·q within d/2 plus the f16
 *     rounding of d (127·2^-11·d);
 *   - imc_cpu_matmul in Q8 mode: each output row bitwise the same for 1 and 37 tokens, on pools
 *     of 1 and 3 threads, on both paths; types without an integer route keep the F32 bits.
 */
#include <math.h>

#include "kcheck.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/qmm.h"
#include "types/types.h"

static uint8_t *quantize_rows(enum imc_type type, const float *w, int64_t rows, int64_t n,
                              uint64_t *rb)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    imc_type_row_bytes((uint32_t)type, n, rb);
    uint8_t *q = malloc((size_t)(*rb * (uint64_t)rows));
    for (int64_t r = 0; q && r < rows; r++) {
        tr->from_float(w + r * n, q + (uint64_t)r * *rb, n, NULL);
    }
    return q;
}

// Activations with the shapes that matter: an all-zero block, an outlier, small values.
static float *make_x(struct krng *r, int64_t rows, int64_t n)
{
    float *x = kalloc_rand(r, rows * n, 1.0f);
    for (int64_t t = 0; t < rows; t++) {
        if (n >= 64 && t % 3 == 0) {
            memset(x + t * n + 32, 0, 32 * sizeof(float)); // block 1 all zero
        }
        x[t * n + (t * 7) % n] *= 40.0f;
    }
    return x;
}

static void test_quantize(void)
{
    struct krng r = {3};
    float *x = make_x(&r, 3, 96);
    struct imc_q8x q[3 * 3];
    bool ok = true;
    for (int t = 0; t < 3; t++) {
        imc_qmm_quantize_row(x + t * 96, 96, q + t * 3);
        for (int b = 0; b < 3; b++) {
            for (int i = 0; i < 32; i++) {
                const float v = x[t * 96 + b * 32 + i], d = q[t * 3 + b].d;
                ok = ok && q[t * 3 + b].q[i] != -128 &&
                     fabsf(v - d * (float)q[t * 3 + b].q[i]) <=
                         (0.5f + 127.0f / 2048.0f) * d * 1.001f;
            }
        }
    }
    CHECK(ok, "quantized blocks within half a step (and the f16 scale's rounding), |q| <= 127");
    CHECK(q[1].d == 0.0f && q[1].q[0] == 0 && q[1].q[31] == 0, "zero block: d = 0, q = 0");
    free(x);
}

struct qcase {
    enum imc_type type;
    int64_t n, nr, nt;
};

static void run_paths(struct krng *r, const struct qcase *c)
{
    float *wf = kalloc_rand(r, c->nr * c->n, 0.5f), *x = make_x(r, c->nt, c->n);
    uint64_t rb;
    uint8_t *w = quantize_rows(c->type, wf, c->nr, c->n, &rb);
    const int64_t nb = c->n / 32;
    struct imc_q8x *xq = malloc((size_t)(c->nt * nb) * sizeof(*xq));
    for (int64_t t = 0; t < c->nt; t++) {
        imc_qmm_quantize_row(x + t * c->n, c->n, xq + t * nb);
    }
    float *y = calloc((size_t)(c->nr * c->nt), 4), *y2 = calloc((size_t)(c->nr * c->nt), 4);
    imc_qmm_tile(IMC_GEMM_GENERIC, c->type, w, rb, c->nr, xq, nb, c->nt, c->n, y, c->nr);
    // the reference: dequantized W times the f32 x, in double, and the stated bound
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)c->type);
    float *wd = malloc((size_t)c->n * 4);
    int bad = 0;
    double worst = 0;
    for (int64_t o = 0; o < c->nr; o++) {
        tr->to_float(w + (uint64_t)o * rb, wd, c->n);
        for (int64_t t = 0; t < c->nt; t++) {
            double ref = 0, qerr = 0, mag = 0;
            for (int64_t i = 0; i < c->n; i++) {
                const struct imc_q8x *b = &xq[t * nb + i / 32];
                const double xqv = (double)b->d * b->q[i % 32];
                ref += (double)wd[i] * x[t * c->n + i];
                qerr += fabs((double)wd[i]) * fabs((double)x[t * c->n + i] - xqv);
                mag += fabs((double)wd[i] * xqv);
            }
            const double bound = qerr + 0x1p-22 * (double)(nb + 4) * mag + 1e-30;
            const double e = fabs((double)y[t * c->nr + o] - ref) / bound;
            bad += !(e <= 1.0);
            worst = check_worst(worst, e);
        }
    }
    CHECK(bad == 0, "%s n=%lld %lldx%lld: %d outputs beyond the bound (worst %.3g of it)",
          imc_type_name((uint32_t)c->type), (long long)c->n, (long long)c->nr, (long long)c->nt,
          bad, worst);
    if (imc_gemm_path_supported(IMC_GEMM_AVX2)) {
        imc_qmm_tile(IMC_GEMM_AVX2, c->type, w, rb, c->nr, xq, nb, c->nt, c->n, y2, c->nr);
        CHECK(memcmp(y, y2, (size_t)(c->nr * c->nt) * 4) == 0,
              "%s n=%lld %lldx%lld: avx2 bits differ from generic",
              imc_type_name((uint32_t)c->type), (long long)c->n, (long long)c->nr,
              (long long)c->nt);
    }
    free(wd);
    free(y);
    free(y2);
    free(xq);
    free(w);
    free(wf);
    free(x);
}

static void test_paths(void)
{
    struct krng r = {11};
    const enum imc_type types[] = {IMC_TYPE_Q8_0, IMC_TYPE_Q4_0};
    const int64_t ns[] = {32, 96, 4096};
    const int64_t nrs[] = {1, 2, 3, 5};
    const int64_t nts[] = {1, 3, 4, 9, 37};
    for (int ti = 0; ti < 2; ti++) {
        for (int ni = 0; ni < 3; ni++) {
            for (int ri = 0; ri < 4; ri++) {
                for (int ki = 0; ki < 5; ki++) {
                    const struct qcase c = {types[ti], ns[ni], nrs[ri], nts[ki]};
                    run_paths(&r, &c);
                }
            }
        }
    }
}

// imc_cpu_matmul in Q8 mode: row t of a 37-token call equals a 1-token call of row t, on pools
// of 1 and 3 threads and both paths; F16 weights (no integer route) give the F32 mode's bits.
static void test_matmul(void)
{
    enum { N_IN = 512, N_OUT = 70, N_TOK = 37 };
    struct krng r = {5};
    float *wf = kalloc_rand(&r, N_OUT * N_IN, 0.5f), *x = make_x(&r, N_TOK, N_IN);
    float *y = malloc(N_TOK * N_OUT * 4), *y1 = malloc(N_OUT * 4), *yf = malloc(N_TOK * N_OUT * 4);
    const enum imc_type types[] = {IMC_TYPE_Q8_0, IMC_TYPE_Q4_0, IMC_TYPE_F16};
    for (int ti = 0; ti < 3; ti++) {
        uint64_t rb;
        uint8_t *w = quantize_rows(types[ti], wf, N_OUT, N_IN, &rb);
        for (int nt = 1; nt <= 3; nt += 2) {
            struct imc_exec *ex = kexec(nt);
            for (int p = 0; p < 2; p++) {
                if (p == 1 && imc_exec_set_gemm_path(ex, IMC_GEMM_AVX2) != IMC_OK) {
                    continue;
                }
                imc_exec_set_matmul(ex, IMC_MATMUL_Q8);
                CHECK(imc_cpu_matmul(ex, y, N_OUT, w, types[ti], N_OUT, N_IN, x, N_IN, N_TOK) ==
                          IMC_OK,
                      "matmul");
                bool same = true;
                for (int t = 0; t < N_TOK; t++) {
                    imc_cpu_matmul(ex, y1, N_OUT, w, types[ti], N_OUT, N_IN, x + t * N_IN, N_IN, 1);
                    same = same && memcmp(y1, y + t * N_OUT, N_OUT * 4) == 0;
                }
                CHECK(same, "%s, %d threads, path %d: a row's bits depend on the batch",
                      imc_type_name((uint32_t)types[ti]), nt, p);
                imc_exec_set_matmul(ex, IMC_MATMUL_F32);
                imc_cpu_matmul(ex, yf, N_OUT, w, types[ti], N_OUT, N_IN, x, N_IN, N_TOK);
                const bool differs = memcmp(yf, y, N_TOK * N_OUT * 4) != 0;
                CHECK(differs == imc_qmm_supports(types[ti], N_IN), "%s: q8 mode %s the f32 bits",
                      imc_type_name((uint32_t)types[ti]), differs ? "changed" : "kept");
            }
            imc_exec_free(ex);
        }
        free(w);
    }
    free(wf);
    free(x);
    free(y);
    free(y1);
    free(yf);
}

int main(void)
{
    test_quantize();
    if (!imc_gemm_path_supported(IMC_GEMM_AVX2)) {
        CHECK_SKIP("avx2 paths", "this CPU lacks AVX2/FMA: only the generic kernel runs");
    }
    test_paths();
    test_matmul();
    return check_summary();
}
