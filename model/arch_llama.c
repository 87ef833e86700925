/*
 * model/arch_llama: hyper-parameters and tensors of the "llama" architecture (GQA attention,
 * RoPE, dense SwiGLU FFN or Mixtral-style MoE). Key and tensor names as llama.cpp's
 * llama-arch.cpp; shapes in ggml ne order as llama-model.cpp creates them. DESIGN.md §4.
 */
#include <inttypes.h>

#include "core/log.h"
#include "model/arch_priv.h"

#define MAXD IMC_ARCH_MAX_DIM

enum imc_status imc_arch_common_hparams(const struct imc_arch_ld *ld, struct imc_hparams *hp)
{
    IMC_TRY(imc_arch_get_int(ld, "context_length", true, 0, 1, MAXD, &hp->n_ctx_train));
    IMC_TRY(imc_arch_get_int(ld, "embedding_length", true, 0, 1, MAXD, &hp->n_embd));
    IMC_TRY(imc_arch_get_int(ld, "block_count", true, 0, 1, 1 << 16, &hp->n_layer));
    IMC_TRY(imc_arch_get_int(ld, "attention.head_count", true, 0, 1, 1 << 16, &hp->n_head));
    IMC_TRY(imc_arch_get_int(ld, "attention.head_count_kv", false, hp->n_head, 1, hp->n_head,
                             &hp->n_head_kv));
    IMC_TRY(imc_arch_get_float(ld, "attention.layer_norm_rms_epsilon", true, 0, &hp->rms_eps));
    IMC_TRY(imc_arch_get_float(ld, "rope.freq_base", false, 10000.0f, &hp->rope_freq_base));
    if (!(hp->rms_eps > 0.0f) || !(hp->rope_freq_base > 0.0f)) {
        IMC_LOG_ERR("%s: keys '%s.attention.layer_norm_rms_epsilon' (%g) and "
                    "'%s.rope.freq_base' (%g) must be positive",
                    ld->path, ld->arch, (double)hp->rms_eps, ld->arch,
                    (double)hp->rope_freq_base);
        return IMC_ERR_FORMAT;
    }
    return IMC_OK;
}

enum imc_status imc_arch_expert_hparams(const struct imc_arch_ld *ld, struct imc_hparams *hp)
{
    IMC_TRY(imc_arch_get_int(ld, "expert_count", false, 0, 0, 1 << 20, &hp->n_expert));
    if (hp->n_expert == 0) {
        return IMC_OK;
    }
    IMC_TRY(imc_arch_get_int(ld, "expert_used_count", true, 0, 1, hp->n_expert,
                             &hp->n_expert_used));
    IMC_TRY(imc_arch_get_int(ld, "expert_shared_count", false, 0, 0, 1 << 10,
                             &hp->n_expert_shared));
    IMC_TRY(imc_arch_get_float(ld, "expert_weights_scale", false, 1.0f,
                               &hp->expert_weights_scale));
    int64_t gating = 0;
    IMC_TRY(imc_arch_get_int(ld, "expert_gating_func", false, 0, 0, INT32_MAX, &gating));
    if (gating > IMC_GATING_SIGMOID) {
        IMC_LOG_ERR("%s: key '%s.expert_gating_func' = %" PRId64
                    " not supported (1 softmax, 2 sigmoid)",
                    ld->path, ld->arch, gating);
        return IMC_ERR_UNSUPPORTED;
    }
    hp->gating = gating == IMC_GATING_SIGMOID ? IMC_GATING_SIGMOID : IMC_GATING_SOFTMAX;
    IMC_TRY(imc_arch_get_int(ld, "expert_group_count", false, 0, 0, hp->n_expert, &hp->n_group));
    if (hp->n_group > 1) {
        IMC_TRY(imc_arch_get_int(ld, "expert_group_used_count", true, 0, 1, hp->n_group,
                                 &hp->n_group_used));
        if (hp->n_expert % hp->n_group != 0 ||
            hp->n_expert_used > hp->n_group_used * (hp->n_expert / hp->n_group)) {
            IMC_LOG_ERR("%s: expert groups do not fit: %" PRId64 " experts, %" PRId64
                        " groups (%" PRId64 " used), %" PRId64 " experts used",
                        ld->path, hp->n_expert, hp->n_group, hp->n_group_used,
                        hp->n_expert_used);
            return IMC_ERR_FORMAT;
        }
    }
    return IMC_OK;
}

enum imc_status imc_arch_gqa_heads(const struct imc_arch_ld *ld, struct imc_hparams *hp)
{
    if (hp->n_head % hp->n_head_kv != 0) {
        IMC_LOG_ERR("%s: key '%s.attention.head_count' (%" PRId64
                    ") is not a multiple of head_count_kv (%" PRId64 ")",
                    ld->path, ld->arch, hp->n_head, hp->n_head_kv);
        return IMC_ERR_FORMAT;
    }
    int64_t def_hd = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
    IMC_TRY(imc_arch_get_int(ld, "attention.key_length", def_hd == 0, def_hd, 1, MAXD,
                             &hp->head_dim));
    int64_t vlen = 0;
    IMC_TRY(imc_arch_get_int(ld, "attention.value_length", false, hp->head_dim, 1, MAXD, &vlen));
    if (vlen != hp->head_dim) {
        IMC_LOG_ERR("%s: key '%s.attention.value_length' = %" PRId64
                    " differs from key_length %" PRId64 ": not supported for %s",
                    ld->path, ld->arch, vlen, hp->head_dim, ld->arch);
        return IMC_ERR_UNSUPPORTED;
    }
    IMC_TRY(imc_arch_get_int(ld, "rope.dimension_count", false, hp->head_dim, 2, hp->head_dim,
                             &hp->n_rot));
    if (hp->n_rot % 2 != 0) {
        IMC_LOG_ERR("%s: key '%s.rope.dimension_count' = %" PRId64 " is odd", ld->path, ld->arch,
                    hp->n_rot);
        return IMC_ERR_FORMAT;
    }
    return IMC_OK;
}

enum imc_status imc_arch_llama_hparams(const struct imc_arch_ld *ld, struct imc_hparams *hp)
{
    IMC_TRY(imc_arch_common_hparams(ld, hp));
    IMC_TRY(imc_arch_gqa_heads(ld, hp));
    IMC_TRY(imc_arch_get_rope_scaling(ld, hp));
    IMC_TRY(imc_arch_get_int(ld, "feed_forward_length", true, 0, 1, MAXD, &hp->n_ff));
    hp->expert_weights_scale = 1.0f;
    IMC_TRY(imc_arch_expert_hparams(ld, hp));
    // Mixtral-style routing renormalizes the top-k softmax weights (llama.cpp norm_w = true).
    IMC_TRY(imc_arch_get_bool(ld, "expert_weights_norm", true, &hp->expert_weights_norm));
    IMC_TRY(imc_arch_get_int(ld, "expert_feed_forward_length", false, hp->n_ff, 1, MAXD,
                             &hp->n_ff_exp));
    return IMC_OK;
}

enum imc_status imc_arch_llama_tensors(const struct imc_arch_ld *ld, struct imc_model *m)
{
    const struct imc_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd, q = hp->n_head * hp->head_dim, kv = hp->n_head_kv * hp->head_dim;
    m->mla = IMC_MLA_NONE;
    for (int il = 0; il < hp->n_layer; il++) {
        struct imc_layer *l = &m->layers[il];
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_norm.weight", il, imc_shape1(d), true,
                                &l->attn_norm));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_q.weight", il, imc_shape2(d, q), true, &l->wq));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_k.weight", il, imc_shape2(d, kv), true, &l->wk));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_v.weight", il, imc_shape2(d, kv), true, &l->wv));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_output.weight", il, imc_shape2(q, d), true,
                                &l->wo));
        IMC_TRY(imc_arch_ffn_tensors(ld, hp, il, l));
    }
    return IMC_OK;
}
