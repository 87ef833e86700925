/*
 * tests/cuda/test_interleaved: a model whose weights are an interleaved type runs on the emulated
 * CUDA table as the plain type does (the re-layout of types/r_unweave.c through the whole
 * engine: dense 2D weights and 3D expert tensors, whose slices are whole groups). llama-tiny and
 * qwen3moe-tiny with their layers' matmul weights (f32 in the presets) quantized to q8_0 by
 * imc's quantizer, and the same bytes woven into q8_0_r8 by this test (checked: the library's
 * unweave gives the q8_0 bytes back):
 *   - cuda-emu on the q8_0_r8 model: logits bit for bit those of cuda-emu on the q8_0 model;
 *   - the cpu engine on the q8_0_r8 model: bit for bit the cpu engine on the q8_0 model (the
 *     interleaved decoders give the plain values), and within 2e-5 of the largest logit of
 *     cuda-emu (cuda.engine_emu's bound);
 *   - --matmul q8 (the commands' default) on cuda-emu, whose batches multiply bf16 weights and
 *     activations: within BOUND_BF16 of the largest logit of the cpu's f32 run on the q8_0 model
 *     (and not equal to it: the bf16 path ran); printed beside the cpu's own q8 path (8-bit
 *     activations: 0.0225 on llama-tiny, 0.40 on qwen3moe-tiny, whose routing it flips).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../e2e/engine_util.h"
#include "backend_emu.h"

enum { N_TOK = 24, MAX_W = 256 };
// --matmul q8 on the table (bf16 GEMM of batches) against the cpu's f32 run, max|Δ| / max|logit|:
// 10 bf16 roundings (2^-9 each) of the largest logit; measured 0.0086 and 0.0087 here.
#define BOUND_BF16 0.02

// A copy of a model with some weights replaced (tensor infos and data owned here).
struct qmodel {
    struct imc_model m;
    struct imc_tensor_info ti[MAX_W];
    uint8_t *data[MAX_W];
    int n;
};

// q8_0 rows (n_rows x n) -> q8_0_r8 groups of 8 rows (the layout of types/r_legacy.c).
static void weave_q8_0(const uint8_t *plain, int64_t n_rows, int64_t n, uint8_t *out)
{
    const int64_t nb = n / 32;
    for (int64_t g = 0; g < n_rows / 8; g++) {
        for (int64_t ib = 0; ib < nb; ib++) {
            uint8_t *b = out + ((size_t)g * 8 * (size_t)nb + (size_t)ib * 8) * 34;
            for (int k = 0; k < 8; k++) {
                const uint8_t *p =
                    plain + (((size_t)g * 8 + (size_t)k) * (size_t)nb + (size_t)ib) * 34;
                memcpy(b + 2 * k, p, 2);
                for (int c = 0; c < 4; c++) {
                    memcpy(b + 16 + 32 * c + 4 * k, p + 2 + 4 * c, 4);
                    memcpy(b + 144 + 32 * c + 4 * k, p + 18 + 4 * c, 4);
                }
            }
        }
    }
}

// Replaces *w (f32, rows of a multiple of 32 columns, whole groups of 8 rows per matrix) by q8_0
// or q8_0_r8 of the same values.
static void requant(struct qmodel *q, const struct imc_tensor_info **w, bool woven)
{
    const struct imc_tensor_info *t = *w;
    const int64_t n = t->ne[0], rows = t->ne[1] * t->ne[2];
    if (t->type != IMC_TYPE_F32 || n % 32 != 0 || t->ne[1] % 8 != 0 || q->n == MAX_W) {
        return;
    }
    const size_t rb = (size_t)(n / 32) * 34, bytes = rb * (size_t)rows;
    uint8_t *plain = malloc(bytes), *out = woven ? malloc(bytes) : plain;
    const struct imc_type_traits *tr = imc_type_traits(IMC_TYPE_Q8_0);
    for (int64_t r = 0; r < rows; r++) {
        tr->from_float((const float *)t->data + r * n, plain + (size_t)r * rb, n, NULL);
    }
    if (woven) {
        weave_q8_0(plain, rows, n, out);
        uint8_t *back = malloc(bytes);
        CHECK(imc_type_unweave(IMC_TYPE_Q8_0_R8, out, rows, n, back) &&
                  memcmp(back, plain, bytes) == 0,
              "%s: the test's weave is not the library's unweave inverted", t->name);
        free(back);
        free(plain);
    }
    struct imc_tensor_info *c = &q->ti[q->n];
    *c = *t;
    c->type = woven ? IMC_TYPE_Q8_0_R8 : IMC_TYPE_Q8_0;
    c->data = out;
    c->nbytes = bytes;
    q->data[q->n++] = out;
    *w = c;
}

static void qmodel_make(struct qmodel *q, const struct imc_model *m, bool woven)
{
    memset(q, 0, sizeof(*q));
    q->m = *m;
    q->m.layers = malloc(sizeof(*m->layers) * (size_t)m->hp.n_layer);
    memcpy(q->m.layers, m->layers, sizeof(*m->layers) * (size_t)m->hp.n_layer);
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        struct imc_layer *l = &q->m.layers[il];
        const struct imc_tensor_info **w[] = {&l->wq,
                                              &l->wk,
                                              &l->wv,
                                              &l->wo,
                                              &l->ffn_gate,
                                              &l->ffn_up,
                                              &l->ffn_down,
                                              &l->ffn_gate_exps,
                                              &l->ffn_up_exps,
                                              &l->ffn_down_exps,
                                              &l->ffn_gate_shexp,
                                              &l->ffn_up_shexp,
                                              &l->ffn_down_shexp};
        for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
            if (*w[i]) {
                requant(q, w[i], woven);
            }
        }
    }
}

static void qmodel_free(struct qmodel *q)
{
    for (int i = 0; i < q->n; i++) {
        free(q->data[i]);
    }
    free(q->m.layers);
}

static float *run_mode(const struct imc_model *m, const struct imc_backend *be, const int32_t *tok,
                       enum imc_matmul_mode mode)
{
    struct imc_engine_opts o = imc_engine_opts_default();
    o.backend = be;
    o.matmul = mode;
    return tforward(m, &o, tok, N_TOK);
}

static float *run(const struct imc_model *m, const struct imc_backend *be, const int32_t *tok)
{
    return run_mode(m, be, tok, IMC_MATMUL_F32);
}

static void one(const char *preset, const struct imc_model *m)
{
    struct qmodel a, b;
    qmodel_make(&a, m, false);
    qmodel_make(&b, m, true);
    CHECK(a.n > 0 && a.n == b.n, "%s: %d and %d weights requantized", preset, a.n, b.n);
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, m->hp.n_vocab, 5);
    const int64_t n = N_TOK * m->hp.n_vocab;
    float *ya = run(&a.m, tcuda_backend_emu(), tok), *yb = run(&b.m, tcuda_backend_emu(), tok);
    float *ca = run(&a.m, NULL, tok), *cb = run(&b.m, NULL, tok);
    CHECK(ya && yb && ca && cb, "%s: a forward pass failed", preset);
    if (ya && yb && ca && cb) {
        CHECK(memcmp(ya, yb, (size_t)n * sizeof(float)) == 0,
              "%s: cuda-emu, q8_0_r8 differs from q8_0", preset);
        CHECK(memcmp(ca, cb, (size_t)n * sizeof(float)) == 0, "%s: cpu, q8_0_r8 differs from q8_0",
              preset);
        const double e = trel_err(yb, cb, n);
        CHECK(e <= 2e-5, "%s: cuda-emu vs cpu on q8_0_r8: %.3g", preset, e);
        printf("%-14s %d weights as q8_0_r8: cuda-emu bitwise q8_0, cpu bitwise q8_0, cuda-emu vs "
               "cpu %.3g (bound 2e-5)\n",
               preset, b.n, e);
        float *yq = run_mode(&a.m, tcuda_backend_emu(), tok, IMC_MATMUL_Q8);
        float *cq = run_mode(&a.m, NULL, tok, IMC_MATMUL_Q8);
        CHECK(yq && cq, "%s: a --matmul q8 forward failed", preset);
        if (yq && cq) {
            const double eq = trel_err(yq, ca, n);
            CHECK(eq > 0 && eq <= BOUND_BF16, "%s: cuda-emu --matmul q8 (bf16) vs cpu f32: %.3g",
                  preset, eq);
            printf("%-14s --matmul q8 against the cpu's f32: cuda-emu (bf16 GEMM) %.3g (bound "
                   "%.3g), cpu (q8 activations) %.3g\n",
                   preset, eq, BOUND_BF16, trel_err(cq, ca, n));
        }
        free(yq);
        free(cq);
    }
    free(ya);
    free(yb);
    free(ca);
    free(cb);
    qmodel_free(&a);
    qmodel_free(&b);
}

int main(void)
{
    char dir[256];
    tmkdir(dir, sizeof(dir), "interleaved");
    const char *presets[2] = {"llama-tiny", "qwen3moe-tiny"};
    for (int i = 0; i < 2; i++) {
        struct tmodel t;
        if (tmodel_open(&t, dir, presets[i]) != 0) {
            CHECK(0, "preset %s", presets[i]);
            continue;
        }
        one(presets[i], t.m);
        tmodel_close(&t);
    }
    trmdir(dir, presets, 2);
    return check_summary();
}
