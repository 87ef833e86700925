/*
 * model/synth: deterministic generator of synthetic GGUF models for tests, demos and benchmarks
 * (STYLE b.7 "tiny GGUF models from a deterministic generator"; DESIGN.md §4, §5).
 *
 * A model is described by struct imc_synth_cfg (usually filled from a named preset and then
 * adjusted). The file carries llama.cpp's metadata keys and tensor names, random weights whose
 * scale keeps activations O(1) (N-like(0, 1/sqrt(n_in)), residual projections scaled down by
 * sqrt(2 n_layer)), norm weights near 1, and a byte-level BPE tokenizer (tokenizer.ggml.model
 * "gpt2", pre "default"): the 256 GPT-2 byte tokens, merges learned from cfg->text, BOS/EOS.
 *
 * Invariants:
 *   - same cfg (including the text bytes) -> identical file bytes. The PRNG (xoshiro256**
 *     seeded by splitmix64 from cfg->seed and the tensor name) and the value transform are
 *     integer/IEEE arithmetic only, so the bytes do not depend on libm.
 *   - each tensor's values depend only on (seed, its name, its shape), not on which other
 *     tensors are written: presets that differ only in MLA file layout hold the same function.
 *   - deepseek2: attn_k_b / attn_v_b are the exact per-head reshaping of attn_kv_b (as the
 *     llama.cpp converter splits kv_b_proj), generated from attn_kv_b's values whether or not
 *     attn_kv_b itself is written. In f32 both attention paths compute the same function.
 */
#ifndef IMC_MODEL_SYNTH_H
#define IMC_MODEL_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "model/arch.h"
#include "types/types.h"

struct imc_synth_cfg {
    const char *name;      // general.name
    enum imc_arch arch;    // llama, qwen3, qwen3moe, glm4moe or deepseek2
    // Hyper-parameters as imc_model_load reports them. Used: n_vocab (tokens including BOS and
    // EOS, >= 258), n_ctx_train, n_embd, n_layer, n_head, n_head_kv (llama), n_ff, rms_eps,
    // rope_freq_base, head_dim (llama; n_embd / n_head when 0), n_rot (llama; head_dim when 0),
    // rope_scaling (NONE or YARN) with rope_scale_factor, rope_orig_ctx, yarn_log_mul; MLA:
    // q_lora (0 = plain attn_q), kv_lora, qk_nope, qk_rope, v_head; MoE: n_expert (0 = dense),
    // n_expert_used, n_expert_shared, n_ff_exp, n_layer_dense, expert_weights_scale,
    // expert_weights_norm, gating, n_group, n_group_used. Other fields are ignored.
    struct imc_hparams hp;
    // deepseek2 file layout
    bool mla_keys;         // mainline metadata (key_length_mla, head_count_kv 1) vs older style
    bool kv_b;             // write attn_kv_b [kv_lora, n_head*(qk_nope+v_head)]
    enum imc_mla_layout k_b; // IMC_MLA_3D, IMC_MLA_2D, or IMC_MLA_NONE: no attn_k_b/attn_v_b
    bool exp_probs_b;      // write blk.N.exp_probs_b.bias (f32) in MoE layers
    int64_t dead_expert;   // expert whose exp_probs_b is -1e4 so it is never routed; -1 = none
    bool tied_output;      // no output.weight (output = token_embd)
    int64_t n_nextn;       // glm4moe: NextN layers written after hp.n_layer (block_count and
                           // nextn_predict_layers count them; imc_model_load leaves them out)
    bool attn_bias;        // glm4moe: attn_{q,k,v}.bias
    bool qk_norm;          // glm4moe: attn_q_norm/attn_k_norm (qwen3 always has them)
    enum imc_type wtype;   // type of matmul weights; per-tensor fallback when a row length is
                           // not a multiple of its block (K/IQ4_XS -> 32-block type -> f16)
    uint64_t seed;         // PRNG seed
    int n_threads;         // threads quantizing a tensor's rows (0 or 1: the caller's); the
                           // bytes written do not depend on it
    const char *text;      // BPE training text (borrowed); NULL: no merges (byte tokens only,
    size_t text_len;       // padded with unused tokens up to n_vocab)
};

// Presets: "llama-tiny", "llama-k-tiny", "llama-moe-tiny", "qwen3-tiny", "qwen3moe-tiny",
// "glm4moe-tiny", "qwen3moe-bench", "glm4moe-bench",
// "ds2-tiny-3d", "ds2-tiny-ik", "ds2-tiny-all", "ds2-lite-tiny", "ds2-mid", "ds2-bench",
// "ds3-width". Index i
// in [0, imc_synth_n_presets()).
int imc_synth_n_presets(void);
const char *imc_synth_preset_name(int i);
const char *imc_synth_preset_desc(int i); // one line
// Fills *cfg with preset `name` (seed 0, no text). Returns IMC_ERR_ARG (logged, listing the
// presets) for an unknown name.
enum imc_status imc_synth_preset(struct imc_synth_cfg *cfg, const char *name);

// Type actually used for a matmul weight of row length ne0 when cfg asks for t.
enum imc_type imc_synth_weight_type(enum imc_type t, int64_t ne0);

// Writes the model described by cfg to path (atomically). Returns IMC_ERR_ARG (logged) for an
// inconsistent cfg, IMC_ERR_UNSUPPORTED for a weight type without a quantizer, IMC_ERR_NOMEM,
// or the writer's IMC_ERR_IO.
enum imc_status imc_synth_write(const struct imc_synth_cfg *cfg, const char *path);

#endif // IMC_MODEL_SYNTH_H
