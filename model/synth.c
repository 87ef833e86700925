/*
 * model/synth: presets, configuration checks and GGUF metadata of the synthetic model
 * generator (model/synth.h). Weights: synth_tensors.c; vocabulary: synth_bpe.c.
 */
#include "model/synth.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "model/synth_priv.h"

// ---- presets ------------------------------------------------------------------------------------

static void llama_tiny(struct imc_synth_cfg *c)
{
    c->arch = IMC_ARCH_LLAMA;
    c->hp = (struct imc_hparams){
        .n_vocab = 512, .n_ctx_train = 256, .n_embd = 64, .n_layer = 2, .n_head = 4,
        .n_head_kv = 2, .n_ff = 128, .rms_eps = 1e-5f, .rope_freq_base = 10000.0f,
        .head_dim = 16, .n_rot = 16, .rope_scale_factor = 1.0f, .expert_weights_scale = 1.0f,
        .gating = IMC_GATING_SOFTMAX};
    c->wtype = IMC_TYPE_F32;
    c->dead_expert = -1;
}

// llama-tiny widened so that every matmul row (256 or 512) fits the 256-element blocks of the
// K types (q2_k ... q6_k, iq4_xs): quantization tests at 2-3 bits without type fallbacks.
static void llama_k_tiny(struct imc_synth_cfg *c)
{
    llama_tiny(c);
    c->hp.n_embd = 256;
    c->hp.n_ff = 512;
    c->hp.head_dim = 64;
    c->hp.n_rot = 64;
}

static void llama_moe_tiny(struct imc_synth_cfg *c)
{
    llama_tiny(c);
    c->hp.n_ff = 64;
    c->hp.n_ff_exp = 64;
    c->hp.n_expert = 4;
    c->hp.n_expert_used = 2;
    c->hp.expert_weights_norm = true;
    c->tied_output = true;
}

// Qwen3 dense: llama-tiny's shapes with head_dim 32 != n_embd / n_head (as Qwen3's 128 for
// its widths), the per-head q/k norms, NEOX RoPE at base 1e6.
static void qwen3_tiny(struct imc_synth_cfg *c)
{
    llama_tiny(c);
    c->arch = IMC_ARCH_QWEN3;
    c->hp.head_dim = 32;
    c->hp.n_rot = 32;
    c->hp.rms_eps = 1e-6f;
    c->hp.rope_freq_base = 1000000.0f;
}

// Qwen3-MoE: qwen3-tiny's attention, 8 experts of width 32 (2 used), softmax router with the
// top-k weights renormalized, no shared expert, every layer MoE.
static void qwen3moe_tiny(struct imc_synth_cfg *c)
{
    qwen3_tiny(c);
    c->arch = IMC_ARCH_QWEN3MOE;
    c->hp.n_ff = 96;
    c->hp.n_ff_exp = 32;
    c->hp.n_expert = 8;
    c->hp.n_expert_used = 2;
    c->hp.expert_weights_norm = true;
}

// GLM-4.5-like: GQA 4/2 with head_dim 32, q/k/v biases and per-head norms, NEOX RoPE over 16 of
// the 32 (partial), one leading dense layer, then 8 experts of 32 (2 used) and a shared expert,
// sigmoid routing with exp_probs_b (expert 7 never routed), weights normalized and scaled by
// 2.5; one NextN layer after the 3 that run.
static void glm4moe_tiny(struct imc_synth_cfg *c)
{
    llama_tiny(c);
    c->arch = IMC_ARCH_GLM4MOE;
    c->hp.n_layer = 3;
    c->hp.head_dim = 32;
    c->hp.n_rot = 16;
    c->hp.rope_freq_base = 1000000.0f;
    c->hp.n_ff = 96;
    c->hp.n_ff_exp = 32;
    c->hp.n_expert = 8;
    c->hp.n_expert_used = 2;
    c->hp.n_expert_shared = 1;
    c->hp.n_layer_dense = 1;
    c->hp.gating = IMC_GATING_SIGMOID;
    c->hp.expert_weights_norm = true;
    c->hp.expert_weights_scale = 2.5f;
    c->exp_probs_b = true;
    c->dead_expert = 7; // its exp_probs_b keeps it out of every top-k, as in the ds2 presets
    c->n_nextn = 1;
    c->attn_bias = true;
    c->qk_norm = true;
}

// Benchmark sizes of the two families at ds2-bench's widths (n_embd 1024, vocab 3072, q8_0) with
// fewer layers (~140 MB): head_dim 128 of 16 heads (4 KV heads), 16 experts of 512.
// ds2-bench's widths for the GQA families (n_embd 1024, vocab 3072, q8_0), 4 layers (~140 MB):
// head_dim 128 of 16 heads (4 KV heads), 16 experts of 512 (4 used), dense n_ff 2816.
static void gqa_bench(struct imc_synth_cfg *c)
{
    c->hp.n_vocab = 3072;
    c->hp.n_ctx_train = 4096;
    c->hp.n_embd = 1024;
    c->hp.n_layer = 4;
    c->hp.n_head = 16;
    c->hp.n_head_kv = 4;
    c->hp.head_dim = 128;
    c->hp.n_ff = 2816;
    c->hp.n_ff_exp = 512;
    c->hp.n_expert = 16;
    c->hp.n_expert_used = 4;
    c->dead_expert = -1;
    c->wtype = IMC_TYPE_Q8_0;
}

static void qwen3moe_bench(struct imc_synth_cfg *c)
{
    qwen3moe_tiny(c);
    gqa_bench(c);
    c->hp.n_rot = 128;
}

static void glm4moe_bench(struct imc_synth_cfg *c)
{
    glm4moe_tiny(c);
    gqa_bench(c);
    c->hp.n_rot = 64; // partial, as GLM-4.5
}

// DeepSeek-V3-like: q_lora, 1 leading dense layer, 8 experts (2 used, 1 shared), sigmoid gating
// with exp_probs_b (expert 7 never routed), 2 groups (1 used), YaRN.
static void ds2_tiny(struct imc_synth_cfg *c)
{
    c->arch = IMC_ARCH_DEEPSEEK2;
    c->hp = (struct imc_hparams){
        .n_vocab = 512, .n_ctx_train = 256, .n_embd = 64, .n_layer = 3, .n_head = 4,
        .n_head_kv = 4, .n_ff = 128, .rms_eps = 1e-6f, .rope_freq_base = 10000.0f,
        .n_rot = 8, .head_dim = 24, .rope_scaling = IMC_ROPE_SCALING_YARN,
        .rope_scale_factor = 4.0f, .rope_orig_ctx = 64, .yarn_log_mul = 0.1f,
        .yarn_beta_fast = 32.0f, .yarn_beta_slow = 1.0f, .q_lora = 32, .kv_lora = 32,
        .qk_nope = 16, .qk_rope = 8, .v_head = 16, .n_expert = 8, .n_expert_used = 2,
        .n_expert_shared = 1, .n_ff_exp = 32, .n_layer_dense = 1, .expert_weights_scale = 2.5f,
        .expert_weights_norm = true, .gating = IMC_GATING_SIGMOID, .n_group = 2,
        .n_group_used = 1};
    c->exp_probs_b = true;
    c->dead_expert = 7;
    c->wtype = IMC_TYPE_F32;
}

static void ds2_tiny_3d(struct imc_synth_cfg *c)
{
    ds2_tiny(c);
    c->mla_keys = true;
    c->k_b = IMC_MLA_3D;
}

static void ds2_tiny_ik(struct imc_synth_cfg *c)
{
    ds2_tiny(c);
    c->kv_b = true;
    c->k_b = IMC_MLA_2D;
}

static void ds2_tiny_all(struct imc_synth_cfg *c)
{
    ds2_tiny(c);
    c->mla_keys = true;
    c->kv_b = true;
    c->k_b = IMC_MLA_3D;
}

// DeepSeek-V2-Lite-like: no q_lora, softmax gating without bias or groups, 2 shared experts,
// older metadata and only attn_kv_b (as GGUFs converted before the MLA split).
static void ds2_lite_tiny(struct imc_synth_cfg *c)
{
    ds2_tiny(c);
    c->hp.q_lora = 0;
    c->hp.n_expert_shared = 2;
    c->hp.gating = IMC_GATING_SOFTMAX;
    c->hp.expert_weights_norm = false;
    c->hp.expert_weights_scale = 1.0f;
    c->hp.n_group = 0;
    c->hp.n_group_used = 0;
    c->exp_probs_b = false;
    c->dead_expert = -1;
    c->kv_b = true;
    c->k_b = IMC_MLA_NONE;
}

// ~228 M parameters (~243 MB as q8_0) in the mainline layout, for benchmarks.
static void ds2_bench(struct imc_synth_cfg *c)
{
    ds2_tiny_3d(c);
    c->hp.n_vocab = 3072;
    c->hp.n_ctx_train = 4096;
    c->hp.rope_orig_ctx = 1024;
    c->hp.n_embd = 1024;
    c->hp.n_layer = 8;
    c->hp.n_head = 16;
    c->hp.n_ff = 2816;
    c->hp.q_lora = 512;
    c->hp.kv_lora = 256;
    c->hp.qk_nope = 64;
    c->hp.qk_rope = 32;
    c->hp.n_rot = 32;
    c->hp.v_head = 64;
    c->hp.head_dim = 96;
    c->hp.n_expert = 16;
    c->hp.n_expert_used = 4;
    c->hp.n_ff_exp = 512;
    c->hp.n_group = 4;
    c->hp.n_group_used = 2;
    c->dead_expert = -1;
    c->wtype = IMC_TYPE_Q8_0;
}

// DeepSeek-V3's real widths (n_embd 7168, 128 heads, q_lora 1536, kv_lora 512, rope 64, nope
// 128, v 128, dense n_ff 18432, experts of 2048) in few blocks: 3 dense + 2 MoE layers of 32
// experts (8 used, 1 shared, 8 groups of which 4 used), vocab 3072, q8_0 (~5.3 GB), in the
// layout ik_llama.cpp loads (attn_kv_b + 2D attn_k_b/attn_v_b), for the side-by-side speed
// benchmark (bench/bench_reference.sh). Large: e2e.reference does not generate it.
static void ds3_width(struct imc_synth_cfg *c)
{
    ds2_tiny_ik(c);
    c->hp.n_vocab = 3072;
    c->hp.n_ctx_train = 4096;
    c->hp.rope_orig_ctx = 4096;
    c->hp.n_embd = 7168;
    c->hp.n_layer = 5;
    c->hp.n_layer_dense = 3;
    c->hp.n_head = 128;
    c->hp.n_head_kv = 128;
    c->hp.n_ff = 18432;
    c->hp.q_lora = 1536;
    c->hp.kv_lora = 512;
    c->hp.qk_nope = 128;
    c->hp.qk_rope = 64;
    c->hp.n_rot = 64;
    c->hp.v_head = 128;
    c->hp.head_dim = 192;
    c->hp.n_expert = 32;
    c->hp.n_expert_used = 8;
    c->hp.n_ff_exp = 2048;
    c->hp.n_group = 8;
    c->hp.n_group_used = 4;
    c->dead_expert = -1;
    c->wtype = IMC_TYPE_Q8_0;
}

// ~12M parameters, f32 (~48 MB): expert tensors of MBs, so a rank's slice of the weights spans
// many pages (tests of what each rank maps).
static void ds2_mid(struct imc_synth_cfg *c)
{
    ds2_tiny_3d(c);
    c->hp.n_embd = 256;
    c->hp.n_layer = 4;
    c->hp.n_ff = 512;
    c->hp.q_lora = 64;
    c->hp.kv_lora = 64;
    c->hp.n_expert = 16;
    c->hp.n_expert_used = 4;
    c->hp.n_ff_exp = 256;
    c->hp.n_group = 4;
    c->hp.n_group_used = 2;
    c->dead_expert = -1;
}

static const struct {
    const char *name;
    const char *desc;
    void (*fill)(struct imc_synth_cfg *c);
} presets[] = {
    {"llama-tiny", "llama, GQA 4/2 heads, 2 layers, n_embd 64, f32", llama_tiny},
    {"llama-k-tiny", "llama, n_embd 256, n_ff 512: rows fit the 256-blocks of the K types",
     llama_k_tiny},
    {"llama-moe-tiny", "llama MoE, 4 experts (2 used), tied output, f32", llama_moe_tiny},
    {"qwen3-tiny", "qwen3: q/k norms per head, head_dim 32 != n_embd/n_head, NEOX RoPE, f32",
     qwen3_tiny},
    {"qwen3moe-tiny", "qwen3moe: qwen3-tiny attention, 8 experts of 32 (2 used), f32",
     qwen3moe_tiny},
    {"glm4moe-tiny", "glm4moe: biases, q/k norms, partial NEOX RoPE, 1 dense + 2 MoE layers "
     "(8 experts, 1 shared, sigmoid), 1 NextN layer, f32",
     glm4moe_tiny},
    {"qwen3moe-bench", "qwen3moe, n_embd 1024, 4 layers, 16 experts of 512 (4 used), q8_0",
     qwen3moe_bench},
    {"glm4moe-bench", "glm4moe, n_embd 1024, 1 dense + 3 MoE layers (16 experts of 512, 4 used, "
     "1 shared) + NextN, q8_0",
     glm4moe_bench},
    {"ds2-tiny-3d", "deepseek2 mainline layout: 3D attn_k_b/attn_v_b, no attn_kv_b", ds2_tiny_3d},
    {"ds2-tiny-ik", "deepseek2 ik_llama.cpp layout: attn_kv_b + 2D attn_k_b/attn_v_b, older keys",
     ds2_tiny_ik},
    {"ds2-tiny-all", "deepseek2: attn_kv_b + 3D attn_k_b/attn_v_b (both paths; not mainline)",
     ds2_tiny_all},
    {"ds2-lite-tiny", "deepseek2 lite: plain attn_q, attn_kv_b only, softmax gating",
     ds2_lite_tiny},
    {"ds2-mid", "deepseek2 mainline layout, 16 experts, ~12M params, f32 (~48 MB)", ds2_mid},
    {"ds2-bench", "deepseek2 mainline layout, ~228M params, q8_0 (~243 MB)", ds2_bench},
    {"ds3-width", "deepseek2 at DeepSeek-V3's widths, 3 dense + 2 MoE layers, ik layout, q8_0 "
                  "(~5.3 GB; large: not generated by the tests)",
     ds3_width},
};
#define N_PRESETS ((int)(sizeof(presets) / sizeof(presets[0])))

int imc_synth_n_presets(void)
{
    return N_PRESETS;
}

const char *imc_synth_preset_name(int i)
{
    return i >= 0 && i < N_PRESETS ? presets[i].name : NULL;
}

const char *imc_synth_preset_desc(int i)
{
    return i >= 0 && i < N_PRESETS ? presets[i].desc : NULL;
}

enum imc_status imc_synth_preset(struct imc_synth_cfg *cfg, const char *name)
{
    for (int i = 0; i < N_PRESETS; i++) {
        if (strcmp(presets[i].name, name) == 0) {
            memset(cfg, 0, sizeof(*cfg));
            presets[i].fill(cfg);
            cfg->name = presets[i].name;
            return IMC_OK;
        }
    }
    char list[256] = "";
    for (int i = 0; i < N_PRESETS; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", presets[i].name);
    }
    IMC_LOG_ERR("synth: unknown preset '%s' (presets: %s)", name, list);
    return IMC_ERR_ARG;
}
