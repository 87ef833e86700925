/*
 * model/arch_deepseek2: hyper-parameters and tensors of the "deepseek2" architecture (MLA
 * attention with optional q_lora, leading dense layers, MoE with shared experts). DESIGN.md §4,
 * §5; key and tensor names as llama.cpp's llama-arch.cpp, shapes as llama-model.cpp.
 *
 * Head dimensions come in two metadata styles:
 *   mainline (key_length_mla present): key_length = kv_lora + qk_rope, value_length = kv_lora,
 *       head_count_kv = 1; key_length_mla = qk_nope + qk_rope, value_length_mla = v_head.
 *   older files: key_length = qk_nope + qk_rope, value_length = v_head, head_count_kv = n_head.
 * The MLA tensor layout (3D, 2D ik-style, kv_b only) is detected from the tensors and must be
 * the same in every layer.
 */
#include <inttypes.h>

#include "core/log.h"
#include "model/arch_priv.h"

#define MAXD IMC_ARCH_MAX_DIM

static enum imc_status head_dims(const struct imc_arch_ld *ld, struct imc_hparams *hp)
{
    IMC_TRY(imc_arch_get_int(ld, "rope.dimension_count", true, 0, 2, MAXD, &hp->n_rot));
    hp->qk_rope = hp->n_rot;
    int64_t k_mla = 0, v_mla = 0;
    IMC_TRY(imc_arch_get_int(ld, "attention.key_length_mla", false, 0, 0, MAXD, &k_mla));
    const bool mla_keys = k_mla > 0;
    if (mla_keys) {
        IMC_TRY(imc_arch_get_int(ld, "attention.value_length_mla", true, 0, 1, MAXD, &v_mla));
    } else {
        int64_t def_k = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
        IMC_TRY(imc_arch_get_int(ld, "attention.key_length", def_k == 0, def_k, 1, MAXD,
                                 &k_mla));
        IMC_TRY(imc_arch_get_int(ld, "attention.value_length", false, k_mla, 1, MAXD, &v_mla));
    }
    if (k_mla <= hp->qk_rope) {
        IMC_LOG_ERR("%s: key '%s.attention.key_length%s' = %" PRId64
                    " must exceed rope.dimension_count %" PRId64,
                    ld->path, ld->arch, mla_keys ? "_mla" : "", k_mla, hp->qk_rope);
        return IMC_ERR_FORMAT;
    }
    hp->qk_nope = k_mla - hp->qk_rope;
    hp->v_head = v_mla;
    hp->head_dim = k_mla;
    return IMC_OK;
}

enum imc_status imc_arch_ds2_hparams(const struct imc_arch_ld *ld, struct imc_hparams *hp)
{
    IMC_TRY(imc_arch_common_hparams(ld, hp));
    IMC_TRY(imc_arch_get_int(ld, "leading_dense_block_count", false, 0, 0, hp->n_layer,
                             &hp->n_layer_dense));
    IMC_TRY(imc_arch_get_int(ld, "attention.q_lora_rank", false, 0, 0, MAXD, &hp->q_lora));
    IMC_TRY(imc_arch_get_int(ld, "attention.kv_lora_rank", true, 0, 1, MAXD, &hp->kv_lora));
    IMC_TRY(head_dims(ld, hp));
    IMC_TRY(imc_arch_get_rope_scaling(ld, hp));
    hp->expert_weights_scale = 1.0f;
    IMC_TRY(imc_arch_expert_hparams(ld, hp));
    IMC_TRY(imc_arch_get_bool(ld, "expert_weights_norm", false, &hp->expert_weights_norm));
    bool has_dense = hp->n_expert == 0 || hp->n_layer_dense > 0;
    IMC_TRY(imc_arch_get_int(ld, "feed_forward_length", has_dense, 0, has_dense ? 1 : 0, MAXD,
                             &hp->n_ff));
    if (hp->n_expert > 0) {
        IMC_TRY(imc_arch_get_int(ld, "expert_feed_forward_length", true, 0, 1, MAXD,
                                 &hp->n_ff_exp));
    }
    return IMC_OK;
}

// attn_k_b / attn_v_b of layer il: NULL both, or both present in one layout (3D or 2D).
static enum imc_status kb_vb(const struct imc_arch_ld *ld, const struct imc_hparams *hp, int il,
                             struct imc_layer *l, enum imc_mla_layout *layout)
{
    const int64_t nope = hp->qk_nope, kvl = hp->kv_lora, vh = hp->v_head, nh = hp->n_head;
    l->wk_b = imc_arch_find(ld, "blk.%d.attn_k_b.weight", il);
    l->wv_b = imc_arch_find(ld, "blk.%d.attn_v_b.weight", il);
    *layout = IMC_MLA_KVB;
    if (!l->wk_b && !l->wv_b) {
        return IMC_OK;
    }
    const char *missing = !l->wk_b ? "attn_k_b" : !l->wv_b ? "attn_v_b" : NULL;
    if (missing) {
        IMC_LOG_ERR("%s: missing tensor 'blk.%d.%s.weight' (attn_k_b and attn_v_b go together)",
                    ld->path, il, missing);
        return IMC_ERR_FORMAT;
    }
    if (imc_arch_shape_eq(l->wk_b, imc_shape3(nope, kvl, nh))) {
        *layout = IMC_MLA_3D;
        return imc_arch_tensor(ld, "blk.%d.attn_v_b.weight", il, imc_shape3(kvl, vh, nh), true,
                               &l->wv_b);
    }
    if (imc_arch_shape_eq(l->wk_b, imc_shape2(nope, nh * kvl))) {
        *layout = IMC_MLA_2D;
        return imc_arch_tensor(ld, "blk.%d.attn_v_b.weight", il, imc_shape2(kvl, nh * vh), true,
                               &l->wv_b);
    }
    char want[96], want2[96], have[96];
    struct imc_arch_shape s3 = imc_shape3(nope, kvl, nh), s2 = imc_shape2(nope, nh * kvl);
    IMC_LOG_ERR("%s: tensor 'blk.%d.attn_k_b.weight': expected shape %s (3D) or %s (2D), found %s",
                ld->path, il, imc_arch_shape_str(s3.ne, 3, want, sizeof(want)),
                imc_arch_shape_str(s2.ne, 2, want2, sizeof(want2)),
                imc_arch_shape_str(l->wk_b->ne, l->wk_b->n_dims, have, sizeof(have)));
    return IMC_ERR_FORMAT;
}

static enum imc_status mla_tensors(const struct imc_arch_ld *ld, const struct imc_hparams *hp,
                                   int il, struct imc_layer *l, enum imc_mla_layout *layout)
{
    const int64_t d = hp->n_embd, nh = hp->n_head, kvl = hp->kv_lora;
    const int64_t qdim = nh * (hp->qk_nope + hp->qk_rope);
    if (hp->q_lora > 0) {
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_q_a.weight", il, imc_shape2(d, hp->q_lora), true,
                                &l->wq_a));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_q_a_norm.weight", il, imc_shape1(hp->q_lora),
                                true, &l->q_a_norm));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_q_b.weight", il, imc_shape2(hp->q_lora, qdim),
                                true, &l->wq_b));
    } else {
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_q.weight", il, imc_shape2(d, qdim), true,
                                &l->wq));
    }
    IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_kv_a_mqa.weight", il,
                            imc_shape2(d, kvl + hp->qk_rope), true, &l->wkv_a_mqa));
    IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_kv_a_norm.weight", il, imc_shape1(kvl), true,
                            &l->kv_a_norm));
    IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_kv_b.weight", il,
                            imc_shape2(kvl, nh * (hp->qk_nope + hp->v_head)), false, &l->wkv_b));
    IMC_TRY(kb_vb(ld, hp, il, l, layout));
    if (!l->wkv_b && !l->wk_b) {
        IMC_LOG_ERR("%s: missing tensor 'blk.%d.attn_kv_b.weight' (or attn_k_b + attn_v_b): "
                    "layer %d has no MLA up-projection",
                    ld->path, il, il);
        return IMC_ERR_FORMAT;
    }
    return imc_arch_tensor(ld, "blk.%d.attn_output.weight", il, imc_shape2(nh * hp->v_head, d),
                           true, &l->wo);
}

enum imc_status imc_arch_ds2_tensors(const struct imc_arch_ld *ld, struct imc_model *m)
{
    const struct imc_hparams *hp = &m->hp;
    for (int il = 0; il < hp->n_layer; il++) {
        struct imc_layer *l = &m->layers[il];
        enum imc_mla_layout layout = IMC_MLA_NONE;
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.attn_norm.weight", il, imc_shape1(hp->n_embd), true,
                                &l->attn_norm));
        IMC_TRY(mla_tensors(ld, hp, il, l, &layout));
        if (il == 0) {
            m->mla = layout;
            m->has_kv_b = l->wkv_b != NULL;
        } else if (layout != m->mla || (l->wkv_b != NULL) != m->has_kv_b) {
            IMC_LOG_ERR("%s: layer %d has MLA layout '%s'%s but layer 0 has '%s'%s; mixed "
                        "layouts are not supported",
                        ld->path, il, imc_mla_layout_name(layout),
                        l->wkv_b ? " with attn_kv_b" : "", imc_mla_layout_name(m->mla),
                        m->has_kv_b ? " with attn_kv_b" : "");
            return IMC_ERR_UNSUPPORTED;
        }
        IMC_TRY(imc_arch_ffn_tensors(ld, hp, il, l));
    }
    m->has_k_b = m->mla == IMC_MLA_3D || m->mla == IMC_MLA_2D;
    return IMC_OK;
}
