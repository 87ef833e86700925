/*
 * worker/forward_llama: the GQA attention block of llama, qwen3, qwen3moe and glm4moe (RoPE in
 * llama.cpp's normal mode for llama, NEOX mode for the others, over the first n_rot elements of
 * each head; scores scaled by 1/sqrt(head_dim)). The FFN is worker/moe.c.
 *
 *   h = RMSNorm(x; attn_norm);  q = W_q h (+ b_q), k = W_k h (+ b_k), v = W_v h (+ b_v)
 *   qwen3, glm4moe: q_h = RMSNorm(q_h; attn_q_norm), k_g = RMSNorm(k_g; attn_k_norm) per head
 *   q, k = RoPE(q, k);  o_h = softmax(q_h k_g^T / sqrt(head_dim), causal) v_g, g = h / (H/H_kv)
 *   x += W_o [o_1 … o_H]
 */
#include "worker/engine_priv.h"

// y[t][0..w) += b for each of the n rows (nothing when b is NULL), by the op table.
static enum imc_status add_bias(struct imc_engine *e, float *y, int64_t w, int64_t n,
                                const float *b)
{
    return b ? e->be->add(e->ex, y, b, n, w, 0) : IMC_OK;
}

enum imc_status imc_llama_attn(struct imc_engine *e, int64_t il, float *x, int64_t n)
{
    const struct imc_hparams *hp = &e->m->hp;
    const struct imc_layer *l = &e->m->layers[il];
    const int64_t d = hp->n_embd, hd = hp->head_dim, nq = hp->n_head * hd,
                  nkv = hp->n_head_kv * hd;
    float *h = eng_f32(e, n * d), *q = eng_f32(e, n * nq), *k = eng_f32(e, n * nkv);
    float *v = eng_f32(e, n * nkv), *o = eng_f32(e, n * nq), *y = eng_f32(e, n * d);
    if (!h || !q || !k || !v || !o || !y) {
        return IMC_ERR_NOMEM;
    }
    ENG_TIMED(e, IMC_PROF_NORM,
              e->be->rmsnorm(e->ex, h, x, e->lvo[il].attn_norm, n, d, hp->rms_eps));
    IMC_TRY(eng_matmul(e, il, l->wq, -1, nq, q, nq, h, d, n));
    IMC_TRY(eng_matmul(e, il, l->wk, -1, nkv, k, nkv, h, d, n));
    IMC_TRY(eng_matmul(e, il, l->wv, -1, nkv, v, nkv, h, d, n));
    IMC_TRY(add_bias(e, q, nq, n, e->lvo[il].bq));
    IMC_TRY(add_bias(e, k, nkv, n, e->lvo[il].bk));
    IMC_TRY(add_bias(e, v, nkv, n, e->lvo[il].bv));
    if (e->lvo[il].q_norm) { // rows of head_dim: every head of every token
        ENG_TIMED(e, IMC_PROF_NORM,
                  e->be->rmsnorm(e->ex, q, q, e->lvo[il].q_norm, n * hp->n_head, hd, hp->rms_eps));
        ENG_TIMED(
            e, IMC_PROF_NORM,
            e->be->rmsnorm(e->ex, k, k, e->lvo[il].k_norm, n * hp->n_head_kv, hd, hp->rms_eps));
    }
    ENG_TIMED(e, IMC_PROF_ROPE, e->be->rope(e->ex, &e->rope, q, n, hp->n_head, nq, hd, e->pos_o));
    ENG_TIMED(e, IMC_PROF_ROPE,
              e->be->rope(e->ex, &e->rope, k, n, hp->n_head_kv, nkv, hd, e->pos_o));
    const struct imc_attn_args a = {
        .n_tok = e->n_ctx, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .dk = hd, .dv = hd,
        .scale = e->kq_scale, .q = q, .q_ld_tok = nq, .q_ld_head = hd, .k = k, .k_ld_tok = nkv,
        .k_ld_head = hd, .v = v, .v_ld_tok = nkv, .v_ld_head = hd, .out = o, .o_ld_tok = nq,
        .o_ld_head = hd};
    IMC_TRY(eng_attention(e, &a));
    IMC_TRY(eng_check(e, il, "the attention output", o, nq, n, nq));
    IMC_TRY(eng_matmul(e, il, l->wo, -1, d, y, d, o, nq, n));
    return eng_add(e, x, y, n, d);
}
