/*
 * worker/forward_ref: the scalar reference forward pass (worker/forward_ref.h). The clean,
 * minimal reference: one token at a time, everything through imc_ref_* kernels.
 */
#include "worker/forward_ref.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kernels/kernels.h"

struct ref {
    const struct imc_model *m;
    const struct imc_hparams *hp;
    enum imc_attn_path path;
    bool plain_topk;
    struct imc_rope rope;
    float kq_scale;
    int64_t n;       // tokens of the sequence (cache capacity)
    float **kcache;  // per layer: llama [n][n_head_kv*head_dim]; MLA [n][kv_lora + qk_rope] (c | k_pe)
    float **vcache;  // per layer: llama [n][n_head_kv*head_dim]; MLA non-absorbed [n][H*(nope+v)]
    float *buf;      // scratch for one token
    double *scores;  // [n] attention scores of one head
};

// ---- tensor helpers ---------------------------------------------------------------------------

// f32 values of a vector tensor into dst (n elements).
static void vec(const struct imc_tensor_info *t, float *dst, int64_t n)
{
    int32_t zero = 0;
    imc_ref_get_rows(dst, t->data, t->type, n, &zero, 1);
}

// y[n_out] = rows [row0, row0 + n_out) of weight w times x (rows of w->ne[0]).
static enum imc_status mv(const struct imc_tensor_info *w, int64_t row0, int64_t n_out,
                          const float *x, float *y)
{
    uint64_t rb = 0;
    if (!imc_type_row_bytes((uint32_t)w->type, w->ne[0], &rb)) {
        return IMC_ERR_UNSUPPORTED;
    }
    return imc_ref_matmul(y, n_out, (const uint8_t *)w->data + (uint64_t)row0 * rb, w->type,
                          n_out, w->ne[0], x, w->ne[0], 1);
}

static void rmsnorm(const struct imc_tensor_info *w, float *x, int64_t n, float eps, float *tmp)
{
    vec(w, tmp, n);
    imc_ref_rmsnorm(x, x, tmp, 1, n, eps);
}

// x[0..n) += the f32 values of bias tensor b (nothing when b is NULL); tmp: n floats of scratch.
static void add_bias(const struct imc_tensor_info *b, float *x, int64_t n, float *tmp)
{
    if (!b) {
        return;
    }
    vec(b, tmp, n);
    for (int64_t i = 0; i < n; i++) {
        x[i] += tmp[i];
    }
}

// ---- attention ---------------------------------------------------------------------------------

// Softmax-weighted sum over cached positions 0..t: out[d] = Σ p_u val(u), scores s[u] given.
static void attend(double *s, int64_t t, const float *val, int64_t ld, int64_t d, float *out)
{
    double mx = -INFINITY, sum = 0.0;
    for (int64_t u = 0; u <= t; u++) {
        mx = fmax(mx, s[u]);
    }
    for (int64_t u = 0; u <= t; u++) {
        s[u] = exp(s[u] - mx);
        sum += s[u];
    }
    for (int64_t i = 0; i < d; i++) {
        double acc = 0.0;
        for (int64_t u = 0; u <= t; u++) {
            acc += s[u] / sum * val[u * ld + i];
        }
        out[i] = (float)acc;
    }
}

static double dot(const float *a, const float *b, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
    }
    return s;
}

static enum imc_status llama_attn(struct ref *r, int64_t il, const float *h, int64_t t,
                                  float *out, double *s, float *tmp)
{
    const struct imc_hparams *hp = r->hp;
    const struct imc_layer *l = &r->m->layers[il];
    const int64_t hd = hp->head_dim, nkv = hp->n_head_kv * hd;
    float *q = out + hp->n_head * hd, *k = r->kcache[il] + t * nkv, *v = r->vcache[il] + t * nkv;
    IMC_TRY(mv(l->wq, 0, hp->n_head * hd, h, q));
    IMC_TRY(mv(l->wk, 0, nkv, h, k));
    IMC_TRY(mv(l->wv, 0, nkv, h, v));
    add_bias(l->bq, q, hp->n_head * hd, tmp); // glm4moe
    add_bias(l->bk, k, nkv, tmp);
    add_bias(l->bv, v, nkv, tmp);
    for (int64_t i = 0; l->q_norm && i < hp->n_head; i++) { // qwen3: RMS norm per head
        rmsnorm(l->q_norm, q + i * hd, hd, hp->rms_eps, tmp);
    }
    for (int64_t i = 0; l->k_norm && i < hp->n_head_kv; i++) {
        rmsnorm(l->k_norm, k + i * hd, hd, hp->rms_eps, tmp);
    }
    const int32_t pos = (int32_t)t;
    imc_ref_rope(&r->rope, q, 1, hp->n_head, 0, hd, &pos);
    imc_ref_rope(&r->rope, k, 1, hp->n_head_kv, 0, hd, &pos);
    for (int64_t h_ = 0; h_ < hp->n_head; h_++) {
        const int64_t g = h_ / (hp->n_head / hp->n_head_kv);
        for (int64_t u = 0; u <= t; u++) {
            s[u] = dot(q + h_ * hd, r->kcache[il] + u * nkv + g * hd, hd) * r->kq_scale;
        }
        attend(s, t, r->vcache[il] + g * hd, nkv, hd, out + h_ * hd);
    }
    return IMC_OK;
}

// MLA for token t: out[H*v_head]. q [H*(nope+rope)] is computed here into scratch.
static enum imc_status mla_attn(struct ref *r, int64_t il, const float *h, int64_t t, float *out,
                                double *s, float *tmp)
{
    const struct imc_hparams *hp = r->hp;
    const struct imc_layer *l = &r->m->layers[il];
    const int64_t H = hp->n_head, nope = hp->qk_nope, rope = hp->qk_rope, qk = nope + rope;
    const int64_t kvl = hp->kv_lora, kd = kvl + rope, vh = hp->v_head, kvd = nope + vh;
    float *q = tmp, *qa = q + H * qk, *lat = qa + (hp->q_lora > 0 ? hp->q_lora : 1);
    float *qt = lat + kvl, *kv = r->kcache[il] + t * kd;
    if (hp->q_lora > 0) {
        IMC_TRY(mv(l->wq_a, 0, hp->q_lora, h, qa));
        rmsnorm(l->q_a_norm, qa, hp->q_lora, hp->rms_eps, lat);
        IMC_TRY(mv(l->wq_b, 0, H * qk, qa, q));
    } else {
        IMC_TRY(mv(l->wq, 0, H * qk, h, q));
    }
    IMC_TRY(mv(l->wkv_a_mqa, 0, kd, h, kv)); // [c | k_pe]
    rmsnorm(l->kv_a_norm, kv, kvl, hp->rms_eps, lat);
    const int32_t pos = (int32_t)t;
    imc_ref_rope(&r->rope, q + nope, 1, H, 0, qk, &pos);
    imc_ref_rope(&r->rope, kv + kvl, 1, 1, 0, rope, &pos);
    if (r->path == IMC_ATTN_NON_ABSORBED) {
        IMC_TRY(mv(l->wkv_b, 0, H * kvd, kv, r->vcache[il] + t * H * kvd));
    }
    for (int64_t hh = 0; hh < H; hh++) {
        const float *qn = q + hh * qk, *qp = qn + nope;
        if (r->path == IMC_ATTN_ABSORBED) { // q~ = W_kb,h q_nope over the latent
            IMC_TRY(mv(l->wk_b, hh * kvl, kvl, qn, qt));
            for (int64_t u = 0; u <= t; u++) {
                const float *ku = r->kcache[il] + u * kd;
                s[u] = (dot(qt, ku, kvl) + dot(qp, ku + kvl, rope)) * r->kq_scale;
            }
            attend(s, t, r->kcache[il], kd, kvl, lat); // õ_h
            IMC_TRY(mv(l->wv_b, hh * vh, vh, lat, out + hh * vh));
        } else {
            const float *vc = r->vcache[il] + hh * kvd;
            for (int64_t u = 0; u <= t; u++) {
                s[u] = (dot(qn, vc + u * H * kvd, nope) +
                        dot(qp, r->kcache[il] + u * kd + kvl, rope)) * r->kq_scale;
            }
            attend(s, t, vc + nope, H * kvd, vh, out + hh * vh);
        }
    }
    return IMC_OK;
}

// ---- FFN ---------------------------------------------------------------------------------------

// y += scale · W_down,e(silu(W_gate,e h) ⊙ W_up,e h) for slice e (e = 0 for 2D weights).
static enum imc_status swiglu_ffn(const struct imc_tensor_info *wg,
                                  const struct imc_tensor_info *wu,
                                  const struct imc_tensor_info *wd, int64_t e, const float *h,
                                  float scale, float *y, float *tmp, int64_t d)
{
    const int64_t ff = wg->ne[1];
    float *g = tmp, *u = tmp + ff, *o = tmp + 2 * ff;
    IMC_TRY(mv(wg, e * ff, ff, h, g));
    IMC_TRY(mv(wu, e * ff, ff, h, u));
    imc_ref_swiglu(g, ff, g, ff, u, ff, 1, ff);
    IMC_TRY(mv(wd, e * d, d, g, o));
    for (int64_t i = 0; i < d; i++) {
        y[i] += scale * o[i];
    }
    return IMC_OK;
}

static enum imc_status ffn(struct ref *r, int64_t il, const float *h, float *y, float *tmp)
{
    const struct imc_hparams *hp = r->hp;
    const struct imc_layer *l = &r->m->layers[il];
    const int64_t d = hp->n_embd;
    memset(y, 0, (size_t)d * sizeof(float));
    if (!l->is_moe) {
        return swiglu_ffn(l->ffn_gate, l->ffn_up, l->ffn_down, 0, h, 1.0f, y, tmp, d);
    }
    float *logits = tmp, *bias = NULL, *w = logits + hp->n_expert, *t2 = w + hp->n_expert_used;
    int32_t ids[256];
    IMC_TRY(mv(l->ffn_gate_inp, 0, hp->n_expert, h, logits));
    if (l->ffn_exp_probs_b) {
        bias = t2;
        t2 += hp->n_expert;
        vec(l->ffn_exp_probs_b, bias, hp->n_expert);
    }
    const struct imc_route_cfg c = {
        .n_expert = hp->n_expert, .n_used = hp->n_expert_used,
        .gating = hp->gating == IMC_GATING_SIGMOID ? IMC_ROUTE_SIGMOID : IMC_ROUTE_SOFTMAX,
        .bias = bias, .n_group = r->plain_topk ? 0 : hp->n_group,
        .n_group_used = hp->n_group_used, .norm = hp->expert_weights_norm,
        .scale = hp->expert_weights_scale};
    IMC_TRY(imc_ref_moe_route(&c, logits, 1, ids, w));
    for (int64_t k = 0; k < hp->n_expert_used; k++) {
        IMC_TRY(swiglu_ffn(l->ffn_gate_exps, l->ffn_up_exps, l->ffn_down_exps, ids[k], h, w[k], y,
                           t2, d));
    }
    if (l->ffn_gate_shexp) {
        IMC_TRY(swiglu_ffn(l->ffn_gate_shexp, l->ffn_up_shexp, l->ffn_down_shexp, 0, h, 1.0f, y,
                           t2, d));
    }
    return IMC_OK;
}

// ---- setup and main loop -----------------------------------------------------------------------

// RoPE and score scale from DESIGN.md §5 (see forward_ref.h).
static void ref_rope(struct ref *r)
{
    const struct imc_hparams *hp = r->hp;
    const bool ds2 = r->m->arch == IMC_ARCH_DEEPSEEK2;
    const bool yarn = hp->rope_scaling == IMC_ROPE_SCALING_YARN;
    const double fs = hp->rope_scaling == IMC_ROPE_SCALING_NONE ? 1.0 : 1.0 / hp->rope_scale_factor;
    // the rope kernel multiplies by 1 + 0.1 ln(1/fs) under YaRN; deepseek2 wants a pure rotation
    const double attn = yarn && ds2 ? 1.0 / (1.0 + 0.1 * log(1.0 / fs)) : 1.0;
    r->rope = (struct imc_rope){.n_dims = ds2 ? hp->qk_rope : hp->n_rot,
                                .freq_base = hp->rope_freq_base, .freq_scale = (float)fs,
                                .ext_factor = yarn ? 1.0f : 0.0f, .attn_factor = (float)attn,
                                .beta_fast = hp->yarn_beta_fast, .beta_slow = hp->yarn_beta_slow,
                                .n_ctx_orig = hp->rope_orig_ctx,
                                .neox = imc_arch_rope_neox(r->m->arch)};
    if (ds2) {
        const double mscale = 1.0 + hp->yarn_log_mul * log(1.0 / fs);
        r->kq_scale = (float)(mscale * mscale / sqrt((double)(hp->qk_nope + hp->qk_rope)));
    } else {
        r->kq_scale = (float)(1.0 / sqrt((double)hp->head_dim));
    }
}

static int64_t scratch_floats(const struct imc_hparams *hp)
{
    const int64_t H = hp->n_head, ff = hp->n_ff > hp->n_ff_exp * (hp->n_expert_shared + 1)
                                           ? hp->n_ff
                                           : hp->n_ff_exp * (hp->n_expert_shared + 1);
    return 4 * hp->n_embd + 2 * H * (hp->head_dim + hp->qk_nope + hp->qk_rope + hp->v_head) +
           H * hp->kv_lora + hp->q_lora + 4 * hp->kv_lora + 4 * hp->n_expert + 3 * ff + 64;
}

static enum imc_status ref_init(struct ref *r, const struct imc_model *m, enum imc_attn_path path,
                                int64_t n)
{
    const struct imc_hparams *hp = &m->hp;
    r->m = m;
    r->hp = hp;
    r->n = n;
    r->path = m->arch != IMC_ARCH_DEEPSEEK2 ? IMC_ATTN_AUTO
              : path == IMC_ATTN_AUTO       ? (m->has_k_b ? IMC_ATTN_ABSORBED : IMC_ATTN_NON_ABSORBED)
                                            : path;
    if ((r->path == IMC_ATTN_ABSORBED && !m->has_k_b) ||
        (r->path == IMC_ATTN_NON_ABSORBED && !m->has_kv_b) || hp->n_expert_used > 256) {
        IMC_LOG_ERR("ref forward: %s attention not possible for this file",
                    imc_attn_path_name(r->path));
        return IMC_ERR_ARG;
    }
    ref_rope(r);
    const bool mla = m->arch == IMC_ARCH_DEEPSEEK2;
    const int64_t kw = mla ? hp->kv_lora + hp->qk_rope : hp->n_head_kv * hp->head_dim;
    const int64_t vw = mla ? hp->n_head * (hp->qk_nope + hp->v_head) : kw;
    r->kcache = calloc((size_t)hp->n_layer, sizeof(float *));
    r->vcache = calloc((size_t)hp->n_layer, sizeof(float *));
    r->buf = malloc((size_t)scratch_floats(hp) * sizeof(float) * 2);
    r->scores = malloc((size_t)n * sizeof(double));
    bool ok = r->kcache && r->vcache && r->buf && r->scores;
    for (int64_t il = 0; ok && il < hp->n_layer; il++) {
        r->kcache[il] = malloc((size_t)(n * kw) * sizeof(float));
        r->vcache[il] = malloc((size_t)(n * vw) * sizeof(float));
        ok = r->kcache[il] && r->vcache[il];
    }
    if (!ok) {
        IMC_LOG_ERR("ref forward: out of memory for %" PRId64 " tokens", n);
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

static void ref_free(struct ref *r)
{
    for (int64_t il = 0; il < r->hp->n_layer; il++) {
        free(r->kcache ? r->kcache[il] : NULL);
        free(r->vcache ? r->vcache[il] : NULL);
    }
    free(r->kcache);
    free(r->vcache);
    free(r->buf);
    free(r->scores);
}

// One token through every layer and the head.
static enum imc_status ref_token(struct ref *r, int32_t tok, int64_t t, float *logits)
{
    const struct imc_hparams *hp = r->hp;
    const int64_t d = hp->n_embd;
    float *x = r->buf, *h = x + d, *y = h + d, *att = y + d;
    double *s = r->scores;
    float *tmp = att + 2 * hp->n_head * (hp->head_dim + hp->v_head) + 8;
    const struct imc_tensor_info *te = r->m->tok_embd;
    IMC_TRY(imc_ref_get_rows(x, te->data, te->type, d, &tok, 1));
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const struct imc_layer *l = &r->m->layers[il];
        memcpy(h, x, (size_t)d * sizeof(float));
        rmsnorm(l->attn_norm, h, d, hp->rms_eps, y);
        if (r->m->arch == IMC_ARCH_DEEPSEEK2) {
            IMC_TRY(mla_attn(r, il, h, t, att, s, tmp));
        } else {
            IMC_TRY(llama_attn(r, il, h, t, att, s, tmp));
        }
        IMC_TRY(mv(l->wo, 0, d, att, y));
        for (int64_t i = 0; i < d; i++) {
            x[i] += y[i];
        }
        memcpy(h, x, (size_t)d * sizeof(float));
        rmsnorm(l->ffn_norm, h, d, hp->rms_eps, y);
        IMC_TRY(ffn(r, il, h, y, tmp));
        for (int64_t i = 0; i < d; i++) {
            x[i] += y[i];
        }
    }
    rmsnorm(r->m->output_norm, x, d, hp->rms_eps, y);
    return mv(r->m->output, 0, hp->n_vocab, x, logits);
}

enum imc_status imc_ref_forward(const struct imc_model *m, enum imc_attn_path path,
                                bool plain_topk, const int32_t *tokens, int64_t n,
                                float *logits)
{
    for (int64_t t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= m->hp.n_vocab) {
            IMC_LOG_ERR("ref forward: token %" PRId32 " at %" PRId64 " outside the vocabulary",
                        tokens[t], t);
            return IMC_ERR_ARG;
        }
    }
    struct ref r = {.plain_topk = plain_topk};
    enum imc_status st = ref_init(&r, m, path, n);
    for (int64_t t = 0; st == IMC_OK && t < n; t++) {
        st = ref_token(&r, tokens[t], t, logits + t * m->hp.n_vocab);
    }
    ref_free(&r);
    return st;
}
