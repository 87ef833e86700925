/*
 * model/synth_write: configuration checks, GGUF metadata (llama.cpp key names) and the file
 * write of the synthetic model generator (model/synth.h).
 */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "model/synth_priv.h"

#define CFG_CHECK(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            IMC_LOG_ERR(__VA_ARGS__);                                                              \
            return IMC_ERR_ARG;                                                                    \
        }                                                                                          \
    } while (0)

#define MAXD ((int64_t)1 << 20)

static enum imc_status check_llama(struct imc_hparams *hp, const struct imc_synth_cfg *c)
{
    CFG_CHECK(hp->n_head_kv >= 1 && hp->n_head_kv <= hp->n_head &&
                  hp->n_head % hp->n_head_kv == 0,
              "synth: n_head %lld is not a multiple of n_head_kv %lld", (long long)hp->n_head,
              (long long)hp->n_head_kv);
    if (hp->head_dim == 0) {
        CFG_CHECK(hp->n_embd % hp->n_head == 0, "synth: n_embd %lld not divisible by n_head",
                  (long long)hp->n_embd);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    hp->n_rot = hp->n_rot ? hp->n_rot : hp->head_dim;
    CFG_CHECK(hp->head_dim <= MAXD && hp->n_rot % 2 == 0 && hp->n_rot <= hp->head_dim,
              "synth: bad llama head dims (head_dim %lld, n_rot %lld)", (long long)hp->head_dim,
              (long long)hp->n_rot);
    CFG_CHECK(c->arch == IMC_ARCH_GLM4MOE ||
                  (!c->exp_probs_b && hp->n_expert_shared == 0 && hp->n_group <= 1 &&
                   hp->gating == IMC_GATING_SOFTMAX && hp->n_layer_dense == 0),
              "synth: llama models have softmax routing without bias, groups, shared experts "
              "or leading dense layers");
    if (hp->n_ff_exp == 0) {
        hp->n_ff_exp = hp->n_ff;
    }
    // qwen3moe files say the experts' width (expert_feed_forward_length); llama's use n_ff
    CFG_CHECK(hp->n_expert == 0 || c->arch == IMC_ARCH_GLM4MOE ||
                  ((hp->n_ff_exp == hp->n_ff || c->arch == IMC_ARCH_QWEN3MOE) &&
                   hp->expert_weights_norm && hp->expert_weights_scale == 1.0f),
              "synth: llama MoE experts have width n_ff (qwen3moe: any) and renormalized, "
              "unscaled weights");
    return IMC_OK;
}

static enum imc_status check_ds2(struct imc_hparams *hp, const struct imc_synth_cfg *c)
{
    CFG_CHECK(hp->kv_lora >= 1 && hp->qk_nope >= 1 && hp->v_head >= 1 && hp->qk_rope >= 2 &&
                  hp->qk_rope % 2 == 0 && hp->q_lora >= 0 && hp->kv_lora <= MAXD &&
                  hp->qk_nope <= MAXD && hp->v_head <= MAXD && hp->qk_rope <= MAXD &&
                  hp->q_lora <= MAXD,
              "synth: bad MLA dims (q_lora %lld, kv_lora %lld, qk_nope %lld, qk_rope %lld, "
              "v_head %lld)",
              (long long)hp->q_lora, (long long)hp->kv_lora, (long long)hp->qk_nope,
              (long long)hp->qk_rope, (long long)hp->v_head);
    CFG_CHECK(c->k_b == IMC_MLA_NONE || c->k_b == IMC_MLA_3D || c->k_b == IMC_MLA_2D,
              "synth: k_b layout must be none, 3d or 2d");
    CFG_CHECK(c->kv_b || c->k_b != IMC_MLA_NONE, "synth: neither attn_kv_b nor attn_k_b/v_b");
    CFG_CHECK(hp->n_layer_dense >= 0 && hp->n_layer_dense <= hp->n_layer,
              "synth: n_layer_dense %lld out of [0, n_layer]", (long long)hp->n_layer_dense);
    hp->n_rot = hp->qk_rope;
    hp->head_dim = hp->qk_nope + hp->qk_rope;
    hp->n_head_kv = c->mla_keys ? 1 : hp->n_head;
    return IMC_OK;
}

static enum imc_status check_moe(struct imc_hparams *hp, const struct imc_synth_cfg *c)
{
    if (hp->n_expert == 0) {
        CFG_CHECK(!c->exp_probs_b && c->dead_expert < 0, "synth: exp_probs_b without experts");
        return IMC_OK;
    }
    CFG_CHECK(hp->n_expert <= 4096 && hp->n_expert_used >= 1 &&
                  hp->n_expert_used <= hp->n_expert && hp->n_ff_exp >= 1 &&
                  hp->n_ff_exp <= MAXD && hp->n_expert_shared >= 0 &&
                  hp->n_expert_shared <= 64,
              "synth: bad experts (n_expert %lld, used %lld, n_ff_exp %lld, shared %lld)",
              (long long)hp->n_expert, (long long)hp->n_expert_used, (long long)hp->n_ff_exp,
              (long long)hp->n_expert_shared);
    CFG_CHECK(hp->n_group <= 1 ||
                  (hp->n_expert % hp->n_group == 0 && hp->n_group_used >= 1 &&
                   hp->n_group_used <= hp->n_group &&
                   hp->n_expert_used <= hp->n_group_used * (hp->n_expert / hp->n_group)),
              "synth: expert groups do not fit (%lld experts, %lld groups, %lld used)",
              (long long)hp->n_expert, (long long)hp->n_group, (long long)hp->n_group_used);
    CFG_CHECK(c->dead_expert < hp->n_expert && (c->dead_expert < 0 || c->exp_probs_b),
              "synth: dead_expert %lld needs exp_probs_b and must be < n_expert",
              (long long)c->dead_expert);
    return IMC_OK;
}

// Checks c and fills the derived fields (head_dim, n_rot, n_head_kv of deepseek2, ...).
static enum imc_status check_cfg(struct imc_synth_cfg *c)
{
    struct imc_hparams *hp = &c->hp;
    CFG_CHECK(c->arch >= 0 && c->arch < IMC_ARCH_COUNT, "synth: bad arch");
    CFG_CHECK(hp->n_embd >= 1 && hp->n_embd <= MAXD && hp->n_layer >= 1 &&
                  hp->n_layer <= 4096 && hp->n_head >= 1 && hp->n_head <= 4096 &&
                  hp->n_ctx_train >= 1 && hp->n_ff >= 0 && hp->n_ff <= MAXD,
              "synth: bad dims (n_embd %lld, n_layer %lld, n_head %lld, n_ctx %lld, n_ff %lld)",
              (long long)hp->n_embd, (long long)hp->n_layer, (long long)hp->n_head,
              (long long)hp->n_ctx_train, (long long)hp->n_ff);
    CFG_CHECK(hp->rms_eps > 0 && hp->rope_freq_base > 0, "synth: rms_eps/rope_freq_base <= 0");
    CFG_CHECK(hp->rope_scaling == IMC_ROPE_SCALING_NONE ||
                  ((hp->rope_scaling == IMC_ROPE_SCALING_LINEAR ||
                    hp->rope_scaling == IMC_ROPE_SCALING_YARN) &&
                   hp->rope_scale_factor >= 1.0f && hp->rope_orig_ctx >= 1),
              "synth: bad rope scaling");
    const struct imc_type_traits *tr = imc_type_traits(c->wtype);
    if (!tr || (c->wtype != IMC_TYPE_F32 && !tr->from_float)) {
        IMC_LOG_ERR("synth: weight type %s has no quantizer", imc_type_name(c->wtype));
        return IMC_ERR_UNSUPPORTED;
    }
    if (imc_arch_is_gqa(c->arch)) {
        IMC_TRY(check_llama(hp, c));
    } else {
        IMC_TRY(check_ds2(hp, c));
    }
    CFG_CHECK(hp->n_ff >= 1 || (hp->n_expert > 0 && hp->n_layer_dense == 0),
              "synth: n_ff must be positive when dense layers exist");
    return check_moe(hp, c);
}

// ---- metadata -----------------------------------------------------------------------------------

struct meta {
    struct imc_gguf_writer *w;
    const char *arch;
};

static const char *akey(const struct meta *m, const char *suffix, char *buf, size_t size)
{
    snprintf(buf, size, "%s.%s", m->arch, suffix);
    return buf;
}

static enum imc_status set_u32(const struct meta *m, const char *suffix, int64_t v)
{
    char k[128];
    return imc_gguf_set_u32(m->w, akey(m, suffix, k, sizeof(k)), (uint32_t)v);
}

static enum imc_status set_f32(const struct meta *m, const char *suffix, float v)
{
    char k[128];
    return imc_gguf_set_f32(m->w, akey(m, suffix, k, sizeof(k)), v);
}

static enum imc_status set_common(const struct meta *m, const struct imc_synth_cfg *c)
{
    const struct imc_hparams *hp = &c->hp;
    char k[128];
    IMC_TRY(imc_gguf_set_str(m->w, "general.architecture", m->arch));
    IMC_TRY(imc_gguf_set_str(m->w, "general.name", c->name ? c->name : "synthetic"));
    IMC_TRY(imc_gguf_set_u32(m->w, "general.quantization_version", 2));
    IMC_TRY(set_u32(m, "vocab_size", hp->n_vocab));
    IMC_TRY(set_u32(m, "context_length", hp->n_ctx_train));
    IMC_TRY(set_u32(m, "embedding_length", hp->n_embd));
    IMC_TRY(set_u32(m, "block_count", hp->n_layer + c->n_nextn));
    if (hp->n_ff > 0) {
        IMC_TRY(set_u32(m, "feed_forward_length", hp->n_ff));
    }
    IMC_TRY(set_u32(m, "attention.head_count", hp->n_head));
    IMC_TRY(set_u32(m, "attention.head_count_kv", hp->n_head_kv));
    IMC_TRY(set_f32(m, "attention.layer_norm_rms_epsilon", hp->rms_eps));
    IMC_TRY(set_f32(m, "rope.freq_base", hp->rope_freq_base));
    IMC_TRY(set_u32(m, "rope.dimension_count", hp->n_rot));
    if (hp->rope_scaling == IMC_ROPE_SCALING_NONE) {
        return IMC_OK;
    }
    const bool yarn = hp->rope_scaling == IMC_ROPE_SCALING_YARN;
    IMC_TRY(imc_gguf_set_str(m->w, akey(m, "rope.scaling.type", k, sizeof(k)),
                             yarn ? "yarn" : "linear"));
    IMC_TRY(set_f32(m, "rope.scaling.factor", hp->rope_scale_factor));
    if (yarn) {
        IMC_TRY(set_u32(m, "rope.scaling.original_context_length", hp->rope_orig_ctx));
        IMC_TRY(set_f32(m, "rope.scaling.yarn_log_multiplier", hp->yarn_log_mul));
    }
    return IMC_OK;
}

static enum imc_status set_arch(const struct meta *m, const struct imc_synth_cfg *c)
{
    const struct imc_hparams *hp = &c->hp;
    char k[128];
    if (imc_arch_is_gqa(c->arch)) {
        IMC_TRY(set_u32(m, "attention.key_length", hp->head_dim));
        IMC_TRY(set_u32(m, "attention.value_length", hp->head_dim));
        if (c->arch == IMC_ARCH_GLM4MOE) {
            IMC_TRY(set_u32(m, "leading_dense_block_count", hp->n_layer_dense));
            IMC_TRY(set_u32(m, "nextn_predict_layers", c->n_nextn));
        }
    } else {
        IMC_TRY(set_u32(m, "leading_dense_block_count", hp->n_layer_dense));
        // written even when 0 (lite): llama.cpp requires the key unless n_layer is 27
        IMC_TRY(set_u32(m, "attention.q_lora_rank", hp->q_lora));
        IMC_TRY(set_u32(m, "attention.kv_lora_rank", hp->kv_lora));
        // mainline: MQA over the latent; older files: per-head key/value lengths
        IMC_TRY(set_u32(m, "attention.key_length",
                        c->mla_keys ? hp->kv_lora + hp->qk_rope : hp->qk_nope + hp->qk_rope));
        IMC_TRY(set_u32(m, "attention.value_length", c->mla_keys ? hp->kv_lora : hp->v_head));
        if (c->mla_keys) {
            IMC_TRY(set_u32(m, "attention.key_length_mla", hp->qk_nope + hp->qk_rope));
            IMC_TRY(set_u32(m, "attention.value_length_mla", hp->v_head));
        }
    }
    if (hp->n_expert == 0) {
        return IMC_OK;
    }
    IMC_TRY(set_u32(m, "expert_count", hp->n_expert));
    IMC_TRY(set_u32(m, "expert_used_count", hp->n_expert_used));
    if (imc_arch_is_gqa(c->arch) && c->arch != IMC_ARCH_GLM4MOE) {
        // qwen3moe: experts have their own width (llama's Mixtral files use feed_forward_length)
        return c->arch == IMC_ARCH_QWEN3MOE
                   ? set_u32(m, "expert_feed_forward_length", hp->n_ff_exp)
                   : IMC_OK;
    }
    IMC_TRY(set_u32(m, "expert_feed_forward_length", hp->n_ff_exp));
    IMC_TRY(set_u32(m, "expert_shared_count", hp->n_expert_shared));
    IMC_TRY(set_f32(m, "expert_weights_scale", hp->expert_weights_scale));
    IMC_TRY(imc_gguf_set_bool(m->w, akey(m, "expert_weights_norm", k, sizeof(k)),
                              hp->expert_weights_norm));
    IMC_TRY(set_u32(m, "expert_gating_func", hp->gating));
    if (hp->n_group > 1) {
        IMC_TRY(set_u32(m, "expert_group_count", hp->n_group));
        IMC_TRY(set_u32(m, "expert_group_used_count", hp->n_group_used));
    }
    return IMC_OK;
}

static enum imc_status set_tokenizer(struct imc_gguf_writer *w, const struct imc_synth_vocab *v)
{
    IMC_TRY(imc_gguf_set_str(w, "tokenizer.ggml.model", "gpt2"));
    IMC_TRY(imc_gguf_set_str(w, "tokenizer.ggml.pre", "default"));
    IMC_TRY(imc_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
                                 (uint64_t)v->n_tokens));
    IMC_TRY(imc_gguf_set_arr(w, "tokenizer.ggml.token_type", IMC_GGUF_INT32, v->types,
                             (uint64_t)v->n_tokens));
    IMC_TRY(imc_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                                 (uint64_t)v->n_merges));
    IMC_TRY(imc_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos));
    IMC_TRY(imc_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos));
    IMC_TRY(imc_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", true));
    return imc_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", false);
}

static enum imc_status fill_writer(struct imc_gguf_writer *w, const struct imc_synth_cfg *c,
                                   struct imc_synth_bufs *bufs)
{
    struct meta m = {w, imc_arch_name(c->arch)};
    enum imc_status st = set_common(&m, c);
    st = st == IMC_OK ? set_arch(&m, c) : st;
    if (st != IMC_OK) {
        IMC_LOG_ERR("synth: cannot set metadata (%s)", imc_status_str(st));
        return st;
    }
    struct imc_synth_vocab v;
    IMC_TRY(imc_synth_vocab_build(&v, c->hp.n_vocab, c->text, c->text_len));
    st = set_tokenizer(w, &v);
    imc_synth_vocab_free(&v);
    if (st != IMC_OK) {
        IMC_LOG_ERR("synth: cannot set tokenizer metadata (%s)", imc_status_str(st));
        return st;
    }
    return imc_synth_add_tensors(c, w, bufs);
}

enum imc_status imc_synth_write(const struct imc_synth_cfg *cfg, const char *path)
{
    struct imc_synth_cfg c = *cfg;
    IMC_TRY(check_cfg(&c));
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    if (!w) {
        IMC_LOG_ERR("synth: out of memory");
        return IMC_ERR_NOMEM;
    }
    struct imc_synth_bufs bufs = {0};
    enum imc_status st = fill_writer(w, &c, &bufs);
    if (st == IMC_OK) {
        st = imc_gguf_write(w, path);
    }
    imc_gguf_writer_free(w);
    imc_synth_bufs_free(&bufs);
    return st;
}
