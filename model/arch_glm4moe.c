/*
 * model/arch_glm4moe: hyper-parameters and tensors of "glm4moe" (GLM-4.5/4.6/4.7 and 4.5-Air).
 * Key and tensor names as llama.cpp's llama-arch.cpp, shapes in ggml ne order.
 *
 * Attention: llama's GQA with biases on q, k and v (attn_{q,k,v}.bias), optional per-head RMS
 * norms (attn_q_norm/attn_k_norm, [head_dim]) and NEOX RoPE over the first rope.dimension_count
 * elements of each head (partial: GLM-4.5 rotates 64 of 128). FFN: its norm is
 * post_attention_norm; leading_dense_block_count dense layers, then MoE layers with a sigmoid
 * router (expert_gating_func absent or 0 means sigmoid), exp_probs_b, the top-k weights
 * normalized (expert_weights_norm) and scaled (expert_weights_scale), and a shared expert.
 *
 * The last nextn_predict_layers of block_count are the NextN (multi-token prediction) layers:
 * llama-perplexity and llama-imatrix do not run them, so here hp.n_layer excludes them and no
 * layer, engine or imatrix entry refers to their tensors (quantize still copies them: it works
 * on the file's tensors).
 */
#include <inttypes.h>

#include "core/log.h"
#include "model/arch_priv.h"

#define MAXD IMC_ARCH_MAX_DIM

enum imc_status imc_arch_glm4moe_hparams(const struct imc_arch_ld *ld, struct imc_hparams *hp)
{
    IMC_TRY(imc_arch_common_hparams(ld, hp));
    IMC_TRY(imc_arch_get_int(ld, "nextn_predict_layers", false, 0, 0, hp->n_layer - 1,
                             &hp->n_layer_nextn));
    hp->n_layer -= hp->n_layer_nextn;
    IMC_TRY(imc_arch_gqa_heads(ld, hp));
    IMC_TRY(imc_arch_get_rope_scaling(ld, hp));
    IMC_TRY(imc_arch_get_int(ld, "leading_dense_block_count", false, 0, 0, hp->n_layer,
                             &hp->n_layer_dense));
    hp->expert_weights_scale = 1.0f;
    IMC_TRY(imc_arch_expert_hparams(ld, hp));
    if (hp->n_expert == 0) {
        IMC_LOG_ERR("%s: missing key '%s.expert_count' (glm4moe has experts)", ld->path, ld->arch);
        return IMC_ERR_FORMAT;
    }
    int64_t gating = 0;
    IMC_TRY(imc_arch_get_int(ld, "expert_gating_func", false, 0, 0, INT32_MAX, &gating));
    hp->gating = gating == 0 ? IMC_GATING_SIGMOID : hp->gating; // glm4moe's default
    IMC_TRY(imc_arch_get_bool(ld, "expert_weights_norm", false, &hp->expert_weights_norm));
    IMC_TRY(
        imc_arch_get_int(ld, "feed_forward_length", hp->n_layer_dense > 0, 0, 0, MAXD, &hp->n_ff));
    return imc_arch_get_int(ld, "expert_feed_forward_length", true, 0, 1, MAXD, &hp->n_ff_exp);
}

enum imc_status imc_arch_glm4moe_tensors(const struct imc_arch_ld *ld, struct imc_model *m)
{
    const struct imc_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd, hd = hp->head_dim, q = hp->n_head * hd, kv = hp->n_head_kv * hd;
    m->mla = IMC_MLA_NONE;
    for (int il = 0; il < hp->n_layer; il++) {
        struct imc_layer *l = &m->layers[il];
        IMC_TRY(
            imc_arch_tensor(ld, "blk.%d.attn_norm.weight", il, imc_shape1(d), true, &l->attn_norm));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_q.weight", il, imc_shape2(d, q), true, &l->wq));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_k.weight", il, imc_shape2(d, kv), true, &l->wk));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_v.weight", il, imc_shape2(d, kv), true, &l->wv));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_q.bias", il, imc_shape1(q), false, &l->bq));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_k.bias", il, imc_shape1(kv), false, &l->bk));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_v.bias", il, imc_shape1(kv), false, &l->bv));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_q_norm.weight", il, imc_shape1(hd), false,
                                &l->q_norm));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_k_norm.weight", il, imc_shape1(hd), !!l->q_norm,
                                &l->k_norm));
        if (l->k_norm && !l->q_norm) {
            IMC_LOG_ERR("%s: tensor 'blk.%d.attn_k_norm.weight' without attn_q_norm", ld->path, il);
            return IMC_ERR_FORMAT;
        }
        IMC_TRY(
            imc_arch_tensor(ld, "blk.%d.attn_output.weight", il, imc_shape2(q, d), true, &l->wo));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.post_attention_norm.weight", il, imc_shape1(d), true,
                                &l->ffn_norm));
        IMC_TRY(imc_arch_ffn_body(ld, hp, il, l));
    }
    return IMC_OK;
}
