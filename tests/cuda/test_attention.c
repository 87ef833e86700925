/*
 * tests/cuda/test_attention: kernels/cuda/attention.cu against imc_ref_attention for MHA, GQA
 * (n_head_kv < n_head) and the MLA shapes (absorbed: one kv head, dk 576, values inside the keys
 * dv 512, plus a second value set of 512; non-absorbed: dk 192, dv 128, a one-head second value
 * set; and a second value set of 3 heads shared by 6), token counts 1 .. 70 around the query tile (8) and key tile (16), padded token rows and
 * padded output rows whose padding must stay untouched; emulated in every resume order and on
 * the GPU where there is one (tests/cuda/ccheck.h). Also: the result is bitwise the same in
 * every resume order and run to run (fixed summation order, no atomics).
 *
 * Tolerance (absolute, per case, from the data): the kernel computes in float what the reference
 * computes in double, so by the first-order error bounds of float sums (γ_n = n·u, u = 2^-24):
 *   score      δs ≤ (dk + 1)·u · scale · max_{t,u} Σ_i |q_ti k_ui|   (dot in element order, ·scale)
 *   softmax    relative error of each p ≤ 2·δs + (n_tok/16 + 4)·u    (expf, online rescale per key
 *              tile, sum and division)
 *   out        |δout| ≤ (2·δs + (n_tok/16 + 4)·u + (n_tok + 2)·u) · max|v|  (the weighted sum)
 * The test allows twice that bound (expf's own ulps on the device are inside the factor). The
 * online softmax reorders the reference's sums (a running max and rescaling per key tile instead
 * of one max), which is what this bound covers; a kernel bug (a lost rescale, a key masked one
 * off, a stale tile) errs by O(0.01 .. 1), far outside it (the bound is ~1e-4 · max|v| at dk 576).
 */
#include <math.h>

#include "ccheck.h"

struct acase {
    int64_t n_tok, n_head, n_head_kv, dk, dv;
    bool shared_kv;    // values are the first dv elements of the keys (MLA absorbed)
    int64_t dv2;       // second value set (0: none)
    float scale;
    int64_t n_head_v2; // its heads (0 or 1: one head, head stride 0)
};

static const struct acase cases[] = {
    {1, 4, 4, 16, 16, false, 0, 0.3f, 0},     {7, 4, 4, 16, 16, false, 0, 0.3f, 0},
    {8, 6, 2, 24, 20, false, 0, 0.3f, 0},     {9, 6, 2, 24, 20, false, 0, 0.3f, 0},
    {17, 6, 3, 24, 20, false, 12, 0.3f, 3},   {33, 4, 2, 40, 32, true, 0, 0.3f, 0},
    {70, 8, 2, 64, 48, false, 0, 0.2f, 0},    {70, 4, 4, 192, 128, false, 512, 0.08f, 0},
    {1, 4, 1, 576, 512, true, 512, 0.1f, 0},  {9, 4, 1, 576, 512, true, 512, 0.1f, 0},
    {70, 3, 1, 576, 512, true, 512, 0.1f, 0},
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

struct actx {
    float *first[N_CASES][2]; // the first emulated run's out and out2, for the bitwise check
};

static double max_abs(const float *x, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        m = fmax(m, fabs((double)x[i]));
    }
    return m;
}

// The tolerance of the header comment for one output set with values of magnitude <= vmax.
static double attn_tol(const struct imc_attn_args *a, double vmax)
{
    const double u = 0x1p-24;
    double sabs = 0.0;
    const int64_t grp = a->n_head / a->n_head_kv;
    for (int64_t h = 0; h < a->n_head; h++) {
        for (int64_t t = 0; t < a->n_tok; t++) {
            for (int64_t v = 0; v <= t; v++) {
                const float *q = a->q + t * a->q_ld_tok + h * a->q_ld_head;
                const float *k = a->k + v * a->k_ld_tok + (h / grp) * a->k_ld_head;
                double s = 0.0;
                for (int64_t i = 0; i < a->dk; i++) {
                    s += fabs((double)q[i] * k[i]);
                }
                sabs = fmax(sabs, s);
            }
        }
    }
    const double ds = (double)(a->dk + 1) * u * a->scale * sabs;
    const double n = (double)a->n_tok;
    return 2.0 * (2.0 * ds + (n / 16.0 + 4.0) * u + (n + 2.0) * u) * vmax;
}

static double max_diff(const float *x, const float *y, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        m = fmax(m, fabs((double)x[i] - y[i]));
    }
    return m;
}

static float *sentinel(int64_t n)
{
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        p[i] = 7.5f;
    }
    return p;
}

// One launch of a with host arrays uploaded; o and o2 receive the outputs (with padding).
static void launch(const struct cdev *d, const struct imc_attn_args *h, int64_t nq, int64_t nk,
                   int64_t nv, int64_t nv2, int64_t no, int64_t no2, float *o, float *o2)
{
    struct imc_attn_args a = *h;
    void *dq = cdev_up(d, h->q, (size_t)nq * 4), *dk = cdev_up(d, h->k, (size_t)nk * 4);
    void *dv = h->v == h->k ? dk : cdev_up(d, h->v, (size_t)nv * 4);
    void *dv2 = h->v2 ? cdev_up(d, h->v2, (size_t)nv2 * 4) : NULL;
    void *dout = cdev_up(d, o, (size_t)no * 4), *dout2 = cdev_up(d, o2, (size_t)no2 * 4);
    a.q = dq;
    a.k = dk;
    a.v = dv;
    a.v2 = dv2;
    a.out = dout;
    a.out2 = dout2;
    CHECK(CDEV_FN(d, attention)(NULL, &a) == IMC_OK, "%s: attention launch", d->name);
    cdev_down(d, o, dout, (size_t)no * 4);
    cdev_down(d, o2, dout2, (size_t)no2 * 4);
    CDEV_FN(d, dev_free)(dq);
    CDEV_FN(d, dev_free)(dk);
    if (dv != dk) {
        CDEV_FN(d, dev_free)(dv);
    }
    CDEV_FN(d, dev_free)(dv2);
}

static void run_case(const struct cdev *d, struct actx *x, size_t ci)
{
    const struct acase c = cases[ci];
    struct krng r = {100 + ci};
    const int64_t T = c.n_tok, H = c.n_head, HK = c.n_head_kv, dv2 = c.dv2 ? c.dv2 : 1;
    const int64_t H2 = c.n_head_v2 > 1 ? c.n_head_v2 : 1, v2_ld = H2 > 1 ? H2 * dv2 + 1 : dv2;
    const int64_t q_ld = H * c.dk + 1, k_ld = HK * c.dk + 2, v_ld = HK * c.dv + 3;
    const int64_t o_ld = H * c.dv + 5, o2_ld = H * dv2 + 4;
    const int64_t nq = T * q_ld, nk = T * k_ld, nv = T * v_ld, nv2 = T * v2_ld;
    const int64_t no = T * o_ld, no2 = T * o2_ld;
    float *q = kalloc_rand(&r, nq, 1.0f), *k = kalloc_rand(&r, nk, 1.0f);
    float *v = kalloc_rand(&r, nv, 1.0f), *v2 = kalloc_rand(&r, nv2, 1.0f);
    float *ref = sentinel(no), *ref2 = sentinel(no2), *o = sentinel(no), *o2 = sentinel(no2);
    struct imc_attn_args a = {
        .n_tok = T, .n_head = H, .n_head_kv = HK, .dk = c.dk, .dv = c.dv, .scale = c.scale,
        .q = q, .q_ld_tok = q_ld, .q_ld_head = c.dk, .k = k, .k_ld_tok = k_ld, .k_ld_head = c.dk,
        .v = c.shared_kv ? k : v, .v_ld_tok = c.shared_kv ? k_ld : v_ld,
        .v_ld_head = c.shared_kv ? c.dk : c.dv, .out = ref, .o_ld_tok = o_ld, .o_ld_head = c.dv,
        .v2 = c.dv2 ? v2 : NULL, .n_head_v2 = H2, .dv2 = dv2, .v2_ld_tok = v2_ld,
        .v2_ld_head = H2 > 1 ? dv2 : 0,
        .out2 = ref2, .o2_ld_tok = o2_ld, .o2_ld_head = dv2};
    CHECK(imc_ref_attention(&a) == IMC_OK, "ref attention");
    launch(d, &a, nq, nk, nv, nv2, no, no2, o, o2);
    char what[160];
    snprintf(what, sizeof(what), "%s attention T=%lld H=%lld/%lld dk=%lld dv=%lld dv2=%lld", d->name,
             (long long)T, (long long)H, (long long)HK, (long long)c.dk, (long long)c.dv,
             (long long)c.dv2);
    const double vmax = max_abs(c.shared_kv ? k : v, c.shared_kv ? nk : nv);
    const double tol = attn_tol(&a, vmax);
    printf("%s: max|d| %.3g, tolerance %.3g (max|v| %.3g)\n", what, max_diff(o, ref, no), tol,
           vmax);
    kcompare(what, o, ref, no, tol, 0.0);
    if (c.dv2) {
        const double tol2 = attn_tol(&a, max_abs(v2, nv2));
        char what2[200];
        snprintf(what2, sizeof(what2), "%s, second value set", what);
        kcompare(what2, o2, ref2, no2, tol2, 0.0);
    }
    // Bitwise determinism: every emulated order as the first; the device run to run.
    float *again = sentinel(no), *again2 = sentinel(no2);
    const float *b1 = x->first[ci][0], *b2 = x->first[ci][1];
    if (!d->emu) {
        launch(d, &a, nq, nk, nv, nv2, no, no2, again, again2);
        b1 = again;
        b2 = again2;
    }
    if (b1) {
        CHECK(memcmp(o, b1, (size_t)no * 4) == 0 && memcmp(o2, b2, (size_t)no2 * 4) == 0,
              "%s: not bitwise equal to the %s run", what, d->emu ? "first emulated" : "first");
    } else {
        x->first[ci][0] = kdup(o, no);
        x->first[ci][1] = kdup(o2, no2);
    }
    free(again);
    free(again2);
    free(q);
    free(k);
    free(v);
    free(v2);
    free(o);
    free(o2);
    free(ref);
    free(ref2);
}

static void run(const struct cdev *d, void *ctx)
{
    for (size_t ci = 0; ci < N_CASES; ci++) {
        run_case(d, ctx, ci);
    }
}

// Bad shapes are refused with IMC_ERR_ARG / IMC_ERR_UNSUPPORTED before any launch.
static void bad_input(void)
{
    struct imc_attn_args a = {.n_tok = 4, .n_head = 6, .n_head_kv = 4, .dk = 8, .dv = 8};
    CHECK(imc_cuemu_attention(NULL, &a) == IMC_ERR_ARG, "6 heads over 4 kv heads accepted");
    a.n_head_kv = 2;
    a.dk = 8192;
    CHECK(imc_cuemu_attention(NULL, &a) == IMC_ERR_UNSUPPORTED, "dk 8192 accepted");
}

int main(void)
{
    struct actx x = {0};
    cdev_run(run, &x);
    bad_input();
    for (size_t ci = 0; ci < N_CASES; ci++) {
        free(x.first[ci][0]);
        free(x.first[ci][1]);
    }
    return check_summary();
}
