/*
 * worker/moe: the FFN block of both architectures (DESIGN.md §5, FFN lines):
 *
 *   h = RMSNorm(x; ffn_norm)
 *   dense:  y = W_down (silu(W_gate h) ⊙ W_up h)
 *   MoE:    p, E, w = route(W_gate_inp h)            (kernels: imc_*_moe_route)
 *           y = Σ_{k in slot order} w_k · W_down,E_k(silu(W_gate,E_k h) ⊙ W_up,E_k h)
 *               + shared expert (unweighted, dense SwiGLU with *_shexp)
 *   x += y
 *
 * Experts run one at a time over the tokens routed to them (gathered rows), so each routed
 * expert's weights are read once per call and the hooks see exactly its tokens. Each token's
 * expert outputs are summed in slot order (the order of selection), as llama.cpp adds them.
 */
#include <string.h>

#include "worker/engine_priv.h"

// y [n][d] = W_down (silu(W_gate h) ⊙ W_up h) for 2D weights (dense layer or shared expert).
static enum imc_status dense(struct imc_engine *e, int64_t il, const struct imc_tensor_info *wg,
                             const struct imc_tensor_info *wu, const struct imc_tensor_info *wd,
                             const float *h, float *y, int64_t n)
{
    const int64_t d = e->m->hp.n_embd, ff = wg->ne[1];
    float *g = eng_f32(e, n * ff), *u = eng_f32(e, n * ff);
    if (!g || !u) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(eng_matmul(e, il, wg, -1, ff, g, ff, h, d, n));
    IMC_TRY(eng_matmul(e, il, wu, -1, ff, u, ff, h, d, n));
    e->be->swiglu(e->ex, g, ff, g, ff, u, ff, n, ff);
    return eng_matmul(e, il, wd, -1, d, y, d, g, ff, n);
}

struct moe_bufs {
    int32_t *ids;  // [n][k] selected experts
    float *w;      // [n][k] their weights
    float *slot;   // [n][k][d] weighted expert outputs
    int32_t *rows; // [n] tokens routed to the current expert
    int32_t *slots;// [n] the slot of that expert in each of these tokens
    float *xe, *g, *u, *ye; // gathered inputs [n][d], [n][ff_exp] ×2, outputs [n][d]
};

static enum imc_status moe_alloc(struct imc_engine *e, struct moe_bufs *b, int64_t n)
{
    const struct imc_hparams *hp = &e->m->hp;
    const int64_t k = hp->n_expert_used, d = hp->n_embd, fe = hp->n_ff_exp;
    b->ids = (int32_t *)eng_f32(e, n * k);
    b->w = eng_f32(e, n * k);
    b->slot = eng_f32_zero(e, n * k * d);
    b->rows = (int32_t *)eng_f32(e, n);
    b->slots = (int32_t *)eng_f32(e, n);
    b->xe = eng_f32(e, n * d);
    b->g = eng_f32(e, n * fe);
    b->u = eng_f32(e, n * fe);
    b->ye = eng_f32(e, n * d);
    const bool ok = b->ids && b->w && b->slot && b->rows && b->slots && b->xe && b->g && b->u &&
                    b->ye;
    return ok ? IMC_OK : IMC_ERR_NOMEM;
}

// Routed expert ex over its tokens: slot[t][s] = w[t][s] · expert(h[t]).
static enum imc_status run_expert(struct imc_engine *e, int64_t il, int64_t ex,
                                  const struct moe_bufs *b, const float *h, int64_t n)
{
    const struct imc_hparams *hp = &e->m->hp;
    const struct imc_layer *l = &e->m->layers[il];
    const int64_t k = hp->n_expert_used, d = hp->n_embd, fe = hp->n_ff_exp;
    int64_t cnt = 0;
    for (int64_t t = 0; t < n; t++) {
        for (int64_t s = 0; s < k; s++) {
            if (b->ids[t * k + s] == ex) {
                b->rows[cnt] = (int32_t)t;
                b->slots[cnt++] = (int32_t)s;
            }
        }
    }
    if (cnt == 0) {
        return IMC_OK;
    }
    for (int64_t r = 0; r < cnt; r++) {
        memcpy(b->xe + r * d, h + (int64_t)b->rows[r] * d, (size_t)d * sizeof(float));
    }
    IMC_TRY(eng_matmul(e, il, l->ffn_gate_exps, ex, fe, b->g, fe, b->xe, d, cnt));
    IMC_TRY(eng_matmul(e, il, l->ffn_up_exps, ex, fe, b->u, fe, b->xe, d, cnt));
    e->be->swiglu(e->ex, b->g, fe, b->g, fe, b->u, fe, cnt, fe);
    IMC_TRY(eng_matmul(e, il, l->ffn_down_exps, ex, d, b->ye, d, b->g, fe, cnt));
    for (int64_t r = 0; r < cnt; r++) {
        const int64_t ts = (int64_t)b->rows[r] * k + b->slots[r];
        const float wt = b->w[ts];
        float *dst = b->slot + ts * d;
        const float *src = b->ye + r * d;
        for (int64_t i = 0; i < d; i++) {
            dst[i] = wt * src[i];
        }
    }
    return IMC_OK;
}

static enum imc_status moe(struct imc_engine *e, int64_t il, const float *h, float *y, int64_t n)
{
    const struct imc_hparams *hp = &e->m->hp;
    const struct imc_layer *l = &e->m->layers[il];
    const int64_t k = hp->n_expert_used, d = hp->n_embd, ne = hp->n_expert;
    struct moe_bufs b;
    float *logits = eng_f32(e, n * ne);
    if (!logits || moe_alloc(e, &b, n) != IMC_OK) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(eng_matmul(e, il, l->ffn_gate_inp, -1, ne, logits, ne, h, d, n));
    const struct imc_route_cfg rc = {
        .n_expert = ne, .n_used = k,
        .gating = hp->gating == IMC_GATING_SIGMOID ? IMC_ROUTE_SIGMOID : IMC_ROUTE_SOFTMAX,
        .bias = e->lv[il].exp_probs_b, .n_group = e->opts.plain_topk ? 0 : hp->n_group,
        .n_group_used = hp->n_group_used, .norm = hp->expert_weights_norm,
        .scale = hp->expert_weights_scale};
    IMC_TRY(e->be->moe_route(e->ex, &rc, logits, n, b.ids, b.w));
    for (int64_t ex = e->opts.expert_begin; ex < e->opts.expert_end; ex++) {
        IMC_TRY(run_expert(e, il, ex, &b, h, n));
    }
    for (int64_t t = 0; t < n; t++) {
        float *yt = y + t * d;
        memcpy(yt, b.slot + t * k * d, (size_t)d * sizeof(float));
        for (int64_t s = 1; s < k; s++) {
            const float *src = b.slot + (t * k + s) * d;
            for (int64_t i = 0; i < d; i++) {
                yt[i] += src[i];
            }
        }
    }
    if (l->ffn_gate_shexp && e->opts.expert_begin == 0) {
        float *ys = eng_f32(e, n * d);
        if (!ys) {
            return IMC_ERR_NOMEM;
        }
        IMC_TRY(dense(e, il, l->ffn_gate_shexp, l->ffn_up_shexp, l->ffn_down_shexp, h, ys, n));
        for (int64_t i = 0; i < n * d; i++) {
            y[i] += ys[i];
        }
    }
    if (e->opts.moe_combine) {
        IMC_TRY(e->opts.moe_combine(e->opts.moe_combine_user, il, y, n, d));
    }
    return IMC_OK;
}

enum imc_status imc_ffn(struct imc_engine *e, int64_t il, float *x, int64_t n)
{
    const struct imc_hparams *hp = &e->m->hp;
    const struct imc_layer *l = &e->m->layers[il];
    const int64_t d = hp->n_embd;
    float *h = eng_f32(e, n * d), *y = eng_f32(e, n * d);
    if (!h || !y) {
        return IMC_ERR_NOMEM;
    }
    e->be->rmsnorm(e->ex, h, x, e->lv[il].ffn_norm, n, d, hp->rms_eps);
    if (l->is_moe) {
        IMC_TRY(moe(e, il, h, y, n));
    } else {
        IMC_TRY(dense(e, il, l->ffn_gate, l->ffn_up, l->ffn_down, h, y, n));
    }
    for (int64_t i = 0; i < n * d; i++) {
        x[i] += y[i];
    }
    return IMC_OK;
}
