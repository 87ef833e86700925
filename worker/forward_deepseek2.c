/*
 * worker/forward_deepseek2: MLA attention of the deepseek2 architecture in both paths
 * (DESIGN.md §5; equation numbers below refer to these lines):
 *
 *   (1) h = RMSNorm(x; attn_norm)
 *   (2) q = W_qb · RMSNorm(W_qa · h; attn_q_a_norm)      (lite: q = W_q · h); q_h = [q_nope_h | q_pe_h]
 *   (3) [c | k_pe] = W_kv_a_mqa · h;  c = RMSNorm(c; attn_kv_a_norm)
 *   (4) q_pe_h, k_pe = RoPE/YaRN (k_pe shared by all heads)
 *   (5a) absorbed:  q~_h = W_kb,h · q_nope_h;  s = (q~_h·c(u) + q_pe_h·k_pe(u)) · kq_scale
 *                   õ_h = Σ_u softmax(s) c(u);  o_h = W_vb,h · õ_h
 *   (5b) non-absorbed: [k_nope_h | v_h] = W_kvb,h · c;  s = (q_nope_h·k_nope_h(u) + q_pe_h·k_pe(u))
 *                   · kq_scale;  o_h = Σ_u softmax(s) v_h(u)
 *   (6) x += W_o · [o_1 … o_H]
 *
 * W_kb,h / W_vb,h are slice h of attn_k_b [qk_nope, kv_lora, H] / attn_v_b [kv_lora, v_head, H];
 * the 2D ik layout holds the same bytes, so the same slicing serves both. Statistics hooks see
 * the inputs of attn_kv_b (c), attn_k_b (q_nope_h) and attn_v_b (õ_h) whichever path runs: the
 * non-absorbed path computes õ_h on the side with the same probabilities (imc_attn_args.v2).
 */
#include <stdio.h>

#include "worker/engine_priv.h"

struct mla {
    int64_t H, nope, rope, qk, kvl, vh, kd; // kd = kvl + rope: a row of [c | k_pe]
};

static struct mla mla_dims(const struct imc_hparams *hp)
{
    return (struct mla){hp->n_head, hp->qk_nope, hp->qk_rope, hp->qk_nope + hp->qk_rope,
                        hp->kv_lora, hp->v_head, hp->kv_lora + hp->qk_rope};
}

// Heads per block of the absorbed path at n tokens: as many as keep their buffers (q~ and õ)
// within `bytes` (opts.block_bytes), at least one. All 128 heads of DeepSeek-V3 at 1024 tokens
// would take 0.57 GB, first touched (zeroed by the kernel) by every process and then held. Heads
// are independent (each score, probability and output row depends on its own head's rows only),
// so the bits do not depend on the block.
static int64_t absorbed_heads(const struct mla *d, int64_t n, int64_t bytes)
{
    const int64_t per_head = n * (d->kd + d->kvl) * (int64_t)sizeof(float);
    const int64_t hb = per_head > 0 ? bytes / per_head : d->H;
    return hb < 1 ? 1 : hb > d->H ? d->H : hb;
}

// (5a) for heads h0 .. h0 + nh: their columns of o from q and kva; qt [n][nh*kd] and
// ot [n][nh*kvl] are the block's scratch.
static enum imc_status absorbed_block(struct imc_engine *e, int64_t il, const float *q,
                                      const float *kva, float *o, int64_t n, int64_t h0, int64_t nh,
                                      float *qt, float *ot)
{
    const struct imc_layer *l = &e->m->layers[il];
    const struct mla d = mla_dims(&e->m->hp);
    // the rope parts first: the heads' check spans them
    const struct imc_copy_args rope_part = {.dst = qt + d.kvl,
                                            .d_ld_tok = nh * d.kd,
                                            .d_ld_head = d.kd,
                                            .src = q + h0 * d.qk + d.nope,
                                            .s_ld_tok = d.H * d.qk,
                                            .s_ld_head = d.qk,
                                            .n_tok = n,
                                            .n_head = nh,
                                            .n = d.rope};
    IMC_TRY(eng_copy(e, &rope_part));
    IMC_TRY(eng_matmul_heads(e, il, l->wk_b, h0, nh, d.kvl, qt, nh * d.kd, d.kd, q + h0 * d.qk,
                             d.H * d.qk, d.qk, n));
    const struct imc_attn_args a = {
        .n_tok = e->n_ctx, .n_head = nh, .n_head_kv = 1, .dk = d.kd, .dv = d.kvl,
        .scale = e->kq_scale, .q = qt, .q_ld_tok = nh * d.kd, .q_ld_head = d.kd, .k = kva,
        .k_ld_tok = d.kd, .k_ld_head = 0, .v = kva, .v_ld_tok = d.kd, .v_ld_head = 0, .out = ot,
        .o_ld_tok = nh * d.kvl, .o_ld_head = d.kvl};
    IMC_TRY(eng_attention(e, &a));
    char what[96];
    snprintf(what, sizeof(what), "the attention output (latent) of heads %lld..%lld", (long long)h0,
             (long long)(h0 + nh - 1));
    IMC_TRY(eng_check(e, il, what, ot, nh * d.kvl, n, nh * d.kvl));
    return eng_matmul_heads(e, il, l->wv_b, h0, nh, d.vh, o + h0 * d.vh, d.H * d.vh, d.vh, ot,
                            nh * d.kvl, d.kvl, n);
}

// (5a): o [n][H*vh] from q [n][H*qk] and kva [n][kd] = [c | k_pe], by blocks of heads.
static enum imc_status absorbed(struct imc_engine *e, int64_t il, const float *q, const float *kva,
                                float *o, int64_t n)
{
    const struct imc_layer *l = &e->m->layers[il];
    const struct mla d = mla_dims(&e->m->hp);
    const int64_t hb = absorbed_heads(&d, n, e->opts.block_bytes);
    float *qt = eng_f32(e, n * hb * d.kd), *ot = eng_f32(e, n * hb * d.kvl);
    if (!qt || !ot) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t h0 = 0; h0 < d.H; h0 += hb) {
        const int64_t nh = hb < d.H - h0 ? hb : d.H - h0;
        IMC_TRY(absorbed_block(e, il, q, kva, o, n, h0, nh, qt, ot));
    }
    return eng_report(e, il, l->wkv_b, -1, kva, d.kd, n, d.kvl, e->tok);
}

// (5b): o [n][H*vh] from q, kva and c [n][kvl].
static enum imc_status non_absorbed(struct imc_engine *e, int64_t il, const float *q,
                                    const float *kva, const float *c, float *o, int64_t n)
{
    const struct imc_layer *l = &e->m->layers[il];
    const struct mla d = mla_dims(&e->m->hp);
    const int64_t kvd = d.nope + d.vh;
    const bool want_ot = e->opts.hooks && l->wv_b;
    float *kv = eng_f32(e, n * d.H * kvd), *k = eng_f32(e, n * d.H * d.qk);
    float *ot = want_ot ? eng_f32(e, n * d.H * d.kvl) : NULL;
    if (!kv || !k || (want_ot && !ot)) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(eng_matmul(e, il, l->wkv_b, -1, d.H * kvd, kv, d.H * kvd, c, d.kvl, n));
    // k_h = [k_nope_h | k_pe]
    const struct imc_copy_args k_nope = {.dst = k,
                                         .d_ld_tok = d.H * d.qk,
                                         .d_ld_head = d.qk,
                                         .src = kv,
                                         .s_ld_tok = d.H * kvd,
                                         .s_ld_head = kvd,
                                         .n_tok = n,
                                         .n_head = d.H,
                                         .n = d.nope};
    const struct imc_copy_args k_pe = {.dst = k + d.nope,
                                       .d_ld_tok = d.H * d.qk,
                                       .d_ld_head = d.qk,
                                       .src = kva + d.kvl,
                                       .s_ld_tok = d.kd,
                                       .s_ld_head = 0,
                                       .n_tok = n,
                                       .n_head = d.H,
                                       .n = d.rope};
    IMC_TRY(eng_copy(e, &k_nope));
    IMC_TRY(eng_copy(e, &k_pe));
    for (int64_t h = 0; l->wk_b && h < d.H; h++) {
        IMC_TRY(eng_report(e, il, l->wk_b, h, q + h * d.qk, d.H * d.qk, n, d.nope, e->tok));
    }
    const struct imc_attn_args a = {
        .n_tok = e->n_ctx, .n_head = d.H, .n_head_kv = d.H, .dk = d.qk, .dv = d.vh,
        .scale = e->kq_scale, .q = q, .q_ld_tok = d.H * d.qk, .q_ld_head = d.qk, .k = k,
        .k_ld_tok = d.H * d.qk, .k_ld_head = d.qk, .v = kv + d.nope, .v_ld_tok = d.H * kvd,
        .v_ld_head = kvd, .out = o, .o_ld_tok = d.H * d.vh, .o_ld_head = d.vh,
        .v2 = want_ot ? kva : NULL, .n_head_v2 = 1, .dv2 = d.kvl, .v2_ld_tok = d.kd,
        .v2_ld_head = 0, .out2 = ot, .o2_ld_tok = d.H * d.kvl, .o2_ld_head = d.kvl};
    IMC_TRY(eng_attention(e, &a));
    IMC_TRY(eng_check(e, il, "the attention output", o, d.H * d.vh, n, d.H * d.vh));
    for (int64_t h = 0; want_ot && h < d.H; h++) {
        IMC_TRY(eng_report(e, il, l->wv_b, h, ot + h * d.kvl, d.H * d.kvl, n, d.kvl, e->tok));
    }
    return IMC_OK;
}

// (1)-(3): q [n][H*qk] and kva [n][kd] = [RMSNorm(c) | k_pe] (before RoPE).
static enum imc_status project(struct imc_engine *e, int64_t il, const float *x, float *q,
                               float *kva, float *c, int64_t n)
{
    const struct imc_hparams *hp = &e->m->hp;
    const struct imc_layer *l = &e->m->layers[il];
    const struct mla d = mla_dims(hp);
    float *h = eng_f32(e, n * hp->n_embd);
    if (!h) {
        return IMC_ERR_NOMEM;
    }
    ENG_TIMED(e, IMC_PROF_NORM,
              e->be->rmsnorm(e->ex, h, x, e->lvo[il].attn_norm, n, hp->n_embd, hp->rms_eps));
    if (hp->q_lora > 0) {
        float *qa = eng_f32(e, n * hp->q_lora);
        if (!qa) {
            return IMC_ERR_NOMEM;
        }
        IMC_TRY(eng_matmul(e, il, l->wq_a, -1, hp->q_lora, qa, hp->q_lora, h, hp->n_embd, n));
        ENG_TIMED(e, IMC_PROF_NORM,
                  e->be->rmsnorm(e->ex, qa, qa, e->lvo[il].q_a_norm, n, hp->q_lora, hp->rms_eps));
        IMC_TRY(eng_matmul(e, il, l->wq_b, -1, d.H * d.qk, q, d.H * d.qk, qa, hp->q_lora, n));
    } else {
        IMC_TRY(eng_matmul(e, il, l->wq, -1, d.H * d.qk, q, d.H * d.qk, h, hp->n_embd, n));
    }
    IMC_TRY(eng_matmul(e, il, l->wkv_a_mqa, -1, d.kd, kva, d.kd, h, hp->n_embd, n));
    IMC_TRY(eng_copy_rows(e, c, d.kvl, kva, d.kd, n, d.kvl));
    ENG_TIMED(e, IMC_PROF_NORM,
              e->be->rmsnorm(e->ex, c, c, e->lvo[il].kv_a_norm, n, d.kvl, hp->rms_eps));
    return eng_copy_rows(e, kva, d.kd, c, d.kvl, n, d.kvl);
}

enum imc_status imc_ds2_attn(struct imc_engine *e, int64_t il, float *x, int64_t n)
{
    const struct imc_hparams *hp = &e->m->hp;
    const struct mla d = mla_dims(hp);
    float *q = eng_f32(e, n * d.H * d.qk), *kva = eng_f32(e, n * d.kd);
    float *c = eng_f32(e, n * d.kvl), *o = eng_f32(e, n * d.H * d.vh);
    float *y = eng_f32(e, n * hp->n_embd);
    if (!q || !kva || !c || !o || !y) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(project(e, il, x, q, kva, c, n));
    ENG_TIMED(e, IMC_PROF_ROPE,
              e->be->rope(e->ex, &e->rope, q + d.nope, n, d.H, d.H * d.qk, d.qk, e->pos_o)); // (4)
    ENG_TIMED(e, IMC_PROF_ROPE, e->be->rope(e->ex, &e->rope, kva + d.kvl, n, 1, d.kd, 0, e->pos_o));
    if (e->path == IMC_ATTN_ABSORBED) {
        IMC_TRY(absorbed(e, il, q, kva, o, n));
    } else {
        IMC_TRY(non_absorbed(e, il, q, kva, c, o, n));
    }
    IMC_TRY(eng_matmul(e, il, e->m->layers[il].wo, -1, hp->n_embd, y, hp->n_embd, o,
                       d.H * d.vh, n)); // (6)
    return eng_add(e, x, y, n, hp->n_embd);
}
