/*
 * tests/kernels/test_matmul: imc_cpu_matmul against imc_ref_matmul for every weight type of the
 * type table that can be quantized and dequantized, over shapes that hit one row, odd counts,
 * partial weight tiles and token chunks, and strided x/y; bitwise equality across thread counts;
 * bitwise batch invariance (row t of y is the same whether token t is computed alone or among
 * n tokens, so MoE experts give the same bits whatever number of tokens they are routed);
 * bitwise equality of the AVX2 and generic GEMM paths;
 * imc_cpu_get_rows against the reference (exact: same dequantizer).
 *
 * Tolerance: per element |y - ref| <= 8·2^-24·sqrt(n_in)·Σ_i |W_oi x_ti|: the reference sums in
 * double, the GEMM (kernels/cpu/gemm.h) accumulates n_in fused products in one float (error
 * grows ~sqrt(n_in) for random signs; 8 is margin). Both use the same dequantized weights.
 */
#include <math.h>

#include "kcheck.h"
#include "kernels/cpu/gemm.h"

struct mcase {
    int64_t n_out, n_in, n_tok;
};

// Random weights [n_out][n_in] stored as type t (quantized row by row); deq gets the f32 values
// the kernels see. Returns NULL when t cannot be produced.
static void *make_weights(struct krng *r, uint32_t t, int64_t n_out, int64_t n_in, float **deq)
{
    const struct imc_type_traits *tr = imc_type_traits(t);
    uint64_t rb = 0;
    if (!tr || !tr->to_float || (!tr->from_float && t != IMC_TYPE_F32) ||
        !imc_type_row_bytes(t, n_in, &rb)) {
        return NULL;
    }
    float *f = kalloc_rand(r, n_out * n_in, 1.0f / sqrtf((float)n_in));
    uint8_t *w = malloc((size_t)(rb * (uint64_t)n_out));
    *deq = malloc((size_t)(n_out * n_in) * 4);
    for (int64_t o = 0; o < n_out; o++) {
        if (t == IMC_TYPE_F32) {
            memcpy(w + o * rb, f + o * n_in, rb);
        } else {
            tr->from_float(f + o * n_in, w + o * rb, n_in, NULL);
        }
        tr->to_float(w + o * rb, *deq + o * n_in, n_in);
    }
    free(f);
    return w;
}

// Elements of y outside the bound; *tol_mid receives the bound of element (0, n_out/2).
static int count_bad(const float *y, const float *ref, const float *x, const float *deq,
                     struct mcase c, int64_t ldx, int64_t ldy, double *tol_mid)
{
    int bad = 0;
    for (int64_t k = 0; k < c.n_tok; k++) {
        for (int64_t o = 0; o < c.n_out; o++) {
            double mag = 0.0;
            for (int64_t i = 0; i < c.n_in; i++) {
                mag += fabs((double)deq[o * c.n_in + i] * x[k * ldx + i]);
            }
            const double tol = 8.0 * 0x1p-24 * sqrt((double)c.n_in) * mag + 1e-30;
            bad += !(fabs((double)y[k * ldy + o] - ref[k * ldy + o]) <= tol);
            if (k == 0 && o == c.n_out / 2) {
                *tol_mid = tol;
            }
        }
    }
    return bad;
}

static void run_case(struct imc_exec *ex, struct krng *r, uint32_t t, struct mcase c)
{
    float *deq = NULL;
    void *w = make_weights(r, t, c.n_out, c.n_in, &deq);
    if (!w) {
        return;
    }
    const int64_t ldx = c.n_in + 5, ldy = c.n_out + 3;
    float *x = kalloc_rand(r, c.n_tok * ldx, 1.0f);
    float *y = calloc((size_t)(c.n_tok * ldy), 4), *ref = calloc((size_t)(c.n_tok * ldy), 4);
    CHECK(imc_ref_matmul(ref, ldy, w, (enum imc_type)t, c.n_out, c.n_in, x, ldx, c.n_tok) == IMC_OK,
          "ref matmul failed");
    CHECK(imc_cpu_matmul(ex, y, ldy, w, (enum imc_type)t, c.n_out, c.n_in, x, ldx, c.n_tok) ==
              IMC_OK,
          "cpu matmul failed");
    double tol = 0.0;
    int bad = count_bad(y, ref, x, deq, c, ldx, ldy, &tol);
    CHECK(bad == 0, "matmul %s %lldx%lld tok %lld: %d elements outside the bound", imc_type_name(t),
          (long long)c.n_out, (long long)c.n_in, (long long)c.n_tok, bad);
    const int64_t mid = c.n_out / 2; // self-check: a perturbation of 10 bounds is caught
    const float keep = y[mid];
    y[mid] = (float)(ref[mid] + 10.0 * tol);
    CHECK(count_bad(y, ref, x, deq, c, ldx, ldy, &tol) == bad + 1, "checker missed a perturbation");
    y[mid] = keep;
    free(deq);
    free(w);
    free(x);
    free(y);
    free(ref);
}

// The same matmul with 1 and 4 threads gives identical bits.
static void determinism(struct krng *r)
{
    const int64_t n_out = 700, n_in = 320, n_tok = 260;
    float *deq = NULL;
    void *w = make_weights(r, IMC_TYPE_F16, n_out, n_in, &deq);
    float *x = kalloc_rand(r, n_tok * n_in, 1.0f);
    float *y1 = malloc((size_t)(n_tok * n_out) * 4), *y4 = malloc((size_t)(n_tok * n_out) * 4);
    struct imc_exec *e1 = kexec(1), *e4 = kexec(4);
    CHECK(imc_cpu_matmul(e1, y1, n_out, w, IMC_TYPE_F16, n_out, n_in, x, n_in, n_tok) == IMC_OK,
          "matmul 1 thread");
    CHECK(imc_cpu_matmul(e4, y4, n_out, w, IMC_TYPE_F16, n_out, n_in, x, n_in, n_tok) == IMC_OK,
          "matmul 4 threads");
    CHECK(memcmp(y1, y4, (size_t)(n_tok * n_out) * 4) == 0, "results differ across thread counts");
    imc_exec_free(e1);
    imc_exec_free(e4);
    free(deq);
    free(w);
    free(x);
    free(y1);
    free(y4);
}

// Many threads cut W into more, smaller tiles (twice the threads, kernels/cpu/matmul.c): a
// 24-thread pool tiles a 4096-row weight differently from 1 thread, with the same bits, for few
// tokens (an expert's matmul) and many.
static void thread_tiling(struct krng *r)
{
    const int64_t n_out = 4096, n_in = 96, toks[2] = {3, 70};
    float *deq = NULL;
    void *w = make_weights(r, IMC_TYPE_Q8_0, n_out, n_in, &deq);
    float *x = kalloc_rand(r, 70 * n_in, 1.0f);
    float *y1 = malloc((size_t)(70 * n_out) * 4), *y24 = malloc((size_t)(70 * n_out) * 4);
    struct imc_exec *e1 = kexec(1), *e24 = kexec(24);
    for (int i = 0; i < 2 && w && x && y1 && y24 && e1 && e24; i++) {
        CHECK(imc_cpu_matmul(e1, y1, n_out, w, IMC_TYPE_Q8_0, n_out, n_in, x, n_in, toks[i]) ==
                      IMC_OK &&
                  imc_cpu_matmul(e24, y24, n_out, w, IMC_TYPE_Q8_0, n_out, n_in, x, n_in,
                                 toks[i]) == IMC_OK,
              "matmul 1 and 24 threads");
        CHECK(memcmp(y1, y24, (size_t)(toks[i] * n_out) * 4) == 0,
              "%lld tokens: 24 threads (finer tiles) differ from 1", (long long)toks[i]);
    }
    imc_exec_free(e1);
    imc_exec_free(e24);
    free(deq);
    free(w);
    free(x);
    free(y1);
    free(y24);
}

// A group of matmuls (experts: slices of one weight, few and uneven token counts, one with no
// token; other types beside) gives each y the bits of imc_cpu_matmul alone, on 3 threads.
static void group(struct krng *r)
{
    enum { N = 6 };
    const int64_t n_out = 96, n_in = 64, toks[N] = {1, 0, 5, 2, 33, 7};
    const uint32_t types[N] = {IMC_TYPE_Q8_0, IMC_TYPE_Q8_0, IMC_TYPE_Q4_K,
                               IMC_TYPE_F16,  IMC_TYPE_F32,  IMC_TYPE_Q8_0};
    struct imc_mm mm[N];
    void *w[N] = {0};
    float *deq[N] = {0}, *x[N] = {0}, *y[N] = {0}, *alone[N] = {0};
    struct imc_exec *ex = kexec(3);
    bool ok = ex != NULL;
    for (int i = 0; i < N && ok; i++) {
        const int64_t in = types[i] == IMC_TYPE_Q4_K ? 256 : n_in, nt = toks[i] > 0 ? toks[i] : 1;
        w[i] = make_weights(r, types[i], n_out, in, &deq[i]);
        x[i] = kalloc_rand(r, nt * in, 1.0f);
        y[i] = malloc((size_t)(nt * n_out) * 4);
        alone[i] = malloc((size_t)(nt * n_out) * 4);
        ok = w[i] && x[i] && y[i] && alone[i];
        if (ok) {
            mm[i] = (struct imc_mm){y[i], n_out, w[i],   (enum imc_type)types[i], n_out, in,
                                    x[i], in,    toks[i]};
            ok = imc_cpu_matmul(ex, alone[i], n_out, w[i], (enum imc_type)types[i], n_out, in, x[i],
                                in, toks[i]) == IMC_OK;
        }
    }
    CHECK(ok && imc_cpu_matmul_group(ex, mm, N) == IMC_OK, "group of %d matmuls", N);
    for (int i = 0; i < N && ok; i++) {
        CHECK(memcmp(y[i], alone[i], (size_t)(toks[i] * n_out) * 4) == 0,
              "matmul %d of the group (%s, %lld tokens) differs from it alone", i,
              imc_type_name(types[i]), (long long)toks[i]);
    }
    CHECK(imc_cpu_matmul_group(ex, mm, 0) == IMC_OK, "empty group");
    for (int i = 0; i < N; i++) {
        free(w[i]);
        free(deq[i]);
        free(x[i]);
        free(y[i]);
        free(alone[i]);
    }
    imc_exec_free(ex);
}

// Row t of y computed inside a batch of n tokens equals row t computed alone (bitwise), for
// token counts around the GEMM micro-kernel height (6) and the token chunk, over a weight with a
// partial last tile. The batch uses strided x/y (ldx, ldy), the token alone contiguous rows.
static void batch_invariance(struct imc_exec *ex, struct krng *r, uint32_t t)
{
    const int64_t n_out = 150, n_in = 256, n_max = 260, ldx = n_in + 5, ldy = n_out + 3;
    const int64_t counts[] = {1, 2, 5, 17, 37, 100, 260};
    float *deq = NULL;
    void *w = make_weights(r, t, n_out, n_in, &deq);
    if (!w) {
        CHECK(0, "batch invariance: cannot make %s weights", imc_type_name(t));
        return;
    }
    float *x = kalloc_rand(r, n_max * ldx, 1.0f), *x1 = malloc((size_t)n_in * 4);
    float *alone = malloc((size_t)(n_max * n_out) * 4), *y = malloc((size_t)(n_max * ldy) * 4);
    for (int64_t k = 0; k < n_max; k++) {
        memcpy(x1, x + k * ldx, (size_t)n_in * 4);
        CHECK(imc_cpu_matmul(ex, alone + k * n_out, n_out, w, (enum imc_type)t, n_out, n_in, x1,
                             n_in, 1) == IMC_OK,
              "matmul alone");
    }
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        const int64_t n = counts[c];
        CHECK(imc_cpu_matmul(ex, y, ldy, w, (enum imc_type)t, n_out, n_in, x, ldx, n) == IMC_OK,
              "matmul batch");
        int64_t bad = 0;
        for (int64_t k = 0; k < n; k++) {
            bad += memcmp(y + k * ldy, alone + k * n_out, (size_t)n_out * 4) != 0;
        }
        CHECK(bad == 0, "batch invariance %s: %lld of %lld rows differ from the token alone",
              imc_type_name(t), (long long)bad, (long long)n);
    }
    free(deq);
    free(w);
    free(x);
    free(x1);
    free(alone);
    free(y);
}

// The generic GEMM path (forced on a second pool) gives the bits of the default path.
static void gemm_paths(struct imc_exec *ex, struct krng *r, uint32_t t)
{
    if (imc_exec_gemm_path(ex) == IMC_GEMM_GENERIC) {
        CHECK_SKIP("matmul AVX2 path == generic path", "this CPU has no AVX2/FMA");
        return;
    }
    const int64_t n_out = 70, n_in = 512, n_tok = 13;
    float *deq = NULL;
    void *w = make_weights(r, t, n_out, n_in, &deq);
    float *x = kalloc_rand(r, n_tok * n_in, 1.0f);
    float *y = malloc((size_t)(n_tok * n_out) * 4), *yg = malloc((size_t)(n_tok * n_out) * 4);
    struct imc_exec *eg = kexec(2);
    CHECK(imc_exec_set_gemm_path(eg, IMC_GEMM_GENERIC) == IMC_OK, "force the generic path");
    CHECK(imc_cpu_matmul(ex, y, n_out, w, (enum imc_type)t, n_out, n_in, x, n_in, n_tok) == IMC_OK,
          "matmul %s", imc_gemm_path_name(imc_exec_gemm_path(ex)));
    CHECK(imc_cpu_matmul(eg, yg, n_out, w, (enum imc_type)t, n_out, n_in, x, n_in, n_tok) == IMC_OK,
          "matmul generic");
    CHECK(memcmp(y, yg, (size_t)(n_tok * n_out) * 4) == 0, "%s: generic and %s paths differ",
          imc_type_name(t), imc_gemm_path_name(imc_exec_gemm_path(ex)));
    imc_exec_free(eg);
    free(deq);
    free(w);
    free(x);
    free(y);
    free(yg);
}

static void get_rows(struct imc_exec *ex, struct krng *r)
{
    const int64_t n_in = 64, n_rows = 50, n = 9;
    const int32_t ids[9] = {0, 49, 3, 3, 17, 48, 1, 2, 25};
    for (uint32_t t = 0; t < IMC_TYPE_MAX_ID; t++) {
        float *deq = NULL;
        void *w = make_weights(r, t, n_rows, n_in, &deq);
        if (!w) {
            continue;
        }
        float *y = malloc((size_t)(n * n_in) * 4), *ref = malloc((size_t)(n * n_in) * 4);
        CHECK(imc_cpu_get_rows(ex, y, w, (enum imc_type)t, n_in, ids, n) == IMC_OK, "get_rows");
        CHECK(imc_ref_get_rows(ref, w, (enum imc_type)t, n_in, ids, n) == IMC_OK, "ref get_rows");
        CHECK(memcmp(y, ref, (size_t)(n * n_in) * 4) == 0, "get_rows %s differs", imc_type_name(t));
        CHECK(memcmp(ref + n_in, deq + 49 * n_in, (size_t)n_in * 4) == 0, "row 49 of %s wrong",
              imc_type_name(t));
        free(deq);
        free(w);
        free(y);
        free(ref);
    }
}

int main(void)
{
    struct krng r = {4};
    struct imc_exec *ex = kexec(3);
    int n_types = 0;
    for (uint32_t t = 0; t < IMC_TYPE_MAX_ID; t++) {
        const struct imc_type_traits *tr = imc_type_traits(t);
        if (!tr || !tr->to_float || (!tr->from_float && t != IMC_TYPE_F32)) {
            continue;
        }
        const int64_t bs = tr->block_size;
        const int64_t big = bs == 1 ? 1024 : 4 * bs; // 2 weight tiles at n_out 300
        const struct mcase cases[] = {{1, bs, 1}, {17, 3 * bs, 3}, {300, big, 130}};
        for (size_t i = 0; i < 3; i++) {
            run_case(ex, &r, t, cases[i]);
        }
        n_types++;
    }
    printf("matmul: %d weight types tested\n", n_types);
    CHECK(n_types >= 2, "expected at least f32 and f16");
    run_case(ex, &r, IMC_TYPE_F32, (struct mcase){1000, 7, 2});    // odd n_in, many tiles
    run_case(ex, &r, IMC_TYPE_F32, (struct mcase){5, 4096, 1});    // long rows, small tile
    run_case(ex, &r, IMC_TYPE_F16, (struct mcase){2070, 8192, 3}); // >= 32 tiles: no token chunks
    determinism(&r);
    thread_tiling(&r);
    group(&r);
    const uint32_t inv_types[] = {IMC_TYPE_F32, IMC_TYPE_F16, IMC_TYPE_Q8_0, IMC_TYPE_Q4_K,
                                  IMC_TYPE_IQ4_NL};
    for (size_t i = 0; i < sizeof inv_types / sizeof inv_types[0]; i++) {
        batch_invariance(ex, &r, inv_types[i]);
        gemm_paths(ex, &r, inv_types[i]);
    }
    get_rows(ex, &r);
    imc_exec_free(ex);
    return check_summary();
}
