/*
 * tests/cuda/test_mmv: the small-batch matmul on quantized weights (kernels/cuda/mmv.cu) for
 * every type with a device decoder, in the emulator (every thread order) and on a GPU when
 * there is one.
 *
 * Tolerance, per output, against the double-precision product of the CPU-decoded weights
 * (imc_type_decode, which the kernel's decoder matches bit for bit: test_dequant) and x:
 *     |y - Σ_i w_i·x_i| <= (m + 6)·2^-24·Σ_i |w_i·x_i|,   m = ceil(n_in / (32·CH))·CH
 * Each lane sums its m products with one fma chain (one rounding per step) and the 32 lane
 * sums meet in a 5-level tree: the classic bound for recursive summation gives γ(m + 5)·Σ|w·x|
 * with γ(k) = k·u/(1 - k·u) < (k + 1)·u here (u = 2^-24, k·u < 2^-10). CH is 8 for the block
 * types and 1 for f32/f16/bf16. A wrong weight or a lost term moves y by about |w_i·x_i|, far
 * beyond this for the sizes tested (m <= 72).
 *
 * Bitwise: in every thread order the outputs are those of a scalar model of mmv's order of the
 * sums (order_model: each lane's fma chain over its chunks, then the xor tree), which no
 * blocking of rows, staging of x's columns or pass over the tokens may change; so the GPU must
 * give the emulator's bits (__fmaf_rn on both). The shapes cross the kernel's blocks of rows,
 * its steps of columns and its passes of tokens, with a part of each at the end. The checker
 * catches an output moved by twice its tolerance; 0 or 65 tokens, a row off the block and a type
 * without a kernel are refused with nothing written.
 */
#include <math.h>

#include "../logcap.h"
#include "qtest.h"

struct mcase {
    int64_t n_out, n_in;
    int n_tok;
};

// The reference product and bounds of a case.
static void reference(enum imc_type type, const uint8_t *w, const float *x, struct mcase c,
                      double *ref, double *tol)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    const int64_t ch = tr->block_size == 1 ? 1 : 8;
    const int64_t m = (c.n_in / ch + 31) / 32 * ch;
    float *wr = malloc((size_t)c.n_in * sizeof(float));
    for (int64_t o = 0; wr && o < c.n_out; o++) {
        imc_type_decode(tr, w, o, c.n_in, 0, c.n_in, wr);
        for (int t = 0; t < c.n_tok; t++) {
            double s = 0, sa = 0;
            for (int64_t i = 0; i < c.n_in; i++) {
                const double p = (double)wr[i] * (double)x[t * c.n_in + i];
                s += p;
                sa += fabs(p);
            }
            ref[t * c.n_out + o] = s;
            tol[t * c.n_out + o] = (double)(m + 6) * 0x1p-24 * sa;
        }
    }
    free(wr);
}

// mmv's order of the sums, modelled on the CPU (kernels/cuda/mmv.cu): per output, lane l's fma
// chain over chunks l, l + 32, ... (ch elements each, in order, from +0), then the xor tree of
// the 32 lane sums (16, 8, 4, 2, 1); lane 0's value. w decoded by the CPU (the device decoders'
// values, bit for bit: test_dequant).
static void order_model(enum imc_type type, const uint8_t *w, const float *x, struct mcase c,
                        float *out)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    const int64_t ch = tr->block_size == 1 ? 1 : 8, nch = c.n_in / ch;
    float *wr = malloc((size_t)c.n_in * sizeof(float));
    for (int64_t o = 0; wr && o < c.n_out; o++) {
        imc_type_decode(tr, w, o, c.n_in, 0, c.n_in, wr);
        for (int t = 0; t < c.n_tok; t++) {
            const float *xt = x + t * c.n_in;
            float lane[32], next[32];
            for (int l = 0; l < 32; l++) {
                lane[l] = 0.0f;
                for (int64_t k = l; k < nch; k += 32) {
                    for (int64_t e = k * ch; e < k * ch + ch; e++) {
                        lane[l] = fmaf(wr[e], xt[e], lane[l]);
                    }
                }
            }
            for (int off = 16; off > 0; off >>= 1) {
                for (int l = 0; l < 32; l++) {
                    next[l] = lane[l] + lane[l ^ off];
                }
                memcpy(lane, next, sizeof(lane));
            }
            out[t * c.n_out + o] = lane[0];
        }
    }
    free(wr);
}

// Runs a case on b into y (n_tok x n_out, host); IMC_OK or the failure.
static enum imc_status run_mmv(const struct kt_backend *b, enum imc_type type, const uint8_t *w,
                               uint64_t w_bytes, const float *x, struct mcase c, float *y)
{
    const size_t nx = (size_t)(c.n_tok * c.n_in), ny = (size_t)(c.n_tok * c.n_out);
    void *dw = kt_upload(b, w, w_bytes), *dx = kt_upload(b, x, nx * sizeof(float)), *dy = NULL;
    enum imc_status st = IMC_ERR_NOMEM;
    if (dw && dx && b->dev_alloc(ny * sizeof(float), &dy) == IMC_OK) {
        st = b->mmv(NULL, type, dw, c.n_out, c.n_in, dx, c.n_tok, dy);
        st = st == IMC_OK ? kt_download(b, y, dy, ny * sizeof(float)) : st;
    }
    b->dev_free(dy);
    b->dev_free(dx);
    b->dev_free(dw);
    return st;
}

// One case of one type: every emulator order (and the device when dev) against the reference.
static void run_case(const struct kt_backend *dev, enum imc_type type, struct mcase c,
                     uint64_t seed)
{
    struct krng r = {seed};
    uint64_t rb = 0;
    const int64_t ny = c.n_tok * c.n_out;
    uint8_t *w = kt_weights(&r, type, c.n_out, c.n_in, &rb);
    float *x = kt_acts(&r, c.n_tok * c.n_in);
    float *y0 = malloc((size_t)ny * sizeof(float)), *y = malloc((size_t)ny * sizeof(float));
    double *ref = malloc((size_t)ny * sizeof(double)), *tol = malloc((size_t)ny * sizeof(double));
    float *model = malloc((size_t)ny * sizeof(float));
    char what[96];
    if (!w || !x || !y0 || !y || !ref || !tol || !model) {
        CHECK(0, "allocation");
        goto out;
    }
    reference(type, w, x, c, ref, tol);
    order_model(type, w, x, c, model);
    snprintf(what, sizeof(what), "%s %lld x %lld, %d tokens", imc_type_name(type),
             (long long)c.n_out, (long long)c.n_in, c.n_tok);
    for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
        cuemu_set_order(kt_orders[o], 5u + (unsigned)o);
        float *yo = o == 0 ? y0 : y;
        const enum imc_status st = run_mmv(&kt_emu, type, w, rb * (uint64_t)c.n_out, x, c, yo);
        CHECK(st == IMC_OK && kt_outside(what, yo, ref, tol, ny) == 0, "emu %s %s: within bound",
              cuemu_order_name(kt_orders[o]), what);
        CHECK(kt_cmp_bits32(what, yo, model, ny) == 0, "emu %s %s: the order model's bits",
              cuemu_order_name(kt_orders[o]), what);
    }
    if (dev) {
        const enum imc_status st = run_mmv(dev, type, w, rb * (uint64_t)c.n_out, x, c, y);
        CHECK(st == IMC_OK && kt_outside(what, y, ref, tol, ny) == 0, "gpu %s: within bound", what);
        CHECK(st == IMC_OK && kt_cmp_bits32(what, y, y0, ny) == 0, "gpu %s: the emulator's bits",
              what);
    }
out:
    free(w);
    free(x);
    free(y0);
    free(y);
    free(ref);
    free(tol);
    free(model);
}

static void test_rejects(const struct kt_backend *b)
{
    float sentinel[4] = {1, 2, 3, 4}, back[4];
    void *d = kt_upload(b, sentinel, sizeof(sentinel));
    struct logcap cap;
    logcap_start(&cap);
    CHECK(b->mmv(NULL, IMC_TYPE_F32, d, 1, 1, d, 0, d) == IMC_ERR_ARG, "%s: 0 tokens refused",
          b->name);
    CHECK(b->mmv(NULL, IMC_TYPE_F32, d, 1, 1, d, IMC_CUDA_MMV_MAX_TOK + 1, d) == IMC_ERR_ARG,
          "%s: %d tokens refused", b->name, IMC_CUDA_MMV_MAX_TOK + 1);
    CHECK(b->mmv(NULL, IMC_TYPE_Q4_0, d, 1, 48, d, 1, d) == IMC_ERR_ARG,
          "%s: a q4_0 row of 48 refused", b->name);
    CHECK(b->mmv(NULL, IMC_TYPE_IQ2_XXS_R4, d, 1, 256, d, 1, d) == IMC_ERR_UNSUPPORTED,
          "%s: iq2_xxs_r4 refused", b->name);
    logcap_stop();
    CHECK(cap.n_err == 4 && strstr(cap.text, "cuda mmv: 65 tokens, 1 rows: expected 1..64 tokens"),
          "%s: one message each: %.300s", b->name, cap.text);
    CHECK(d && kt_download(b, back, d, sizeof(back)) == IMC_OK &&
              memcmp(back, sentinel, sizeof(back)) == 0,
          "%s: nothing written", b->name);
    b->dev_free(d);
}

int main(void)
{
    // (rows, blocks per row (elements for the float types), tokens): rows past one block of 32
    // (37, 70), tokens past one pass of 8 (19, 64), columns past one step of 1024 (9 blocks of
    // 256, 40 of 32; 2500 floats) with a part-step at the end
    static const int64_t shapes[][3] = {{1, 1, 1}, {5, 7, 3},   {37, 5, 8},
                                        {6, 3, 2}, {70, 9, 19}, {33, 40, 64}};
    enum { NS = sizeof(shapes) / sizeof(shapes[0]) };
    static const int64_t float_len[NS] = {1, 13, 333, 64, 2500, 1100};
    const struct kt_backend *dev = kt_device();
    kt_test_checker();
    for (uint32_t t = kt_next_type(&kt_emu, 0); t < IMC_TYPE_MAX_ID;
         t = kt_next_type(&kt_emu, t + 1)) {
        const int64_t bs = imc_type_traits(t)->block_size;
        for (int s = 0; s < NS; s++) {
            const int64_t blocks = bs == 256 && s == NS - 1 ? 5 : shapes[s][1]; // 1280 columns
            const struct mcase c = {shapes[s][0], bs == 1 ? float_len[s] : blocks * bs,
                                    (int)shapes[s][2]};
            run_case(dev, (enum imc_type)t, c, 100u * t + (uint64_t)s);
        }
    }
    test_rejects(&kt_emu);
    if (dev) {
        test_rejects(dev);
    }
    return check_summary();
}
