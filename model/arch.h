/*
 * model/arch: architecture descriptions read from GGUF metadata — hyper-parameters and the
 * tensors of each layer, by exact GGUF name (DESIGN.md §4, §5). No compute.
 *
 * Supported: "llama" (GQA, RoPE, optional MoE), "qwen3" and "qwen3moe" (llama's attention with
 * an RMS norm per head on q and k, NEOX RoPE; qwen3moe: softmax router, top-k renormalized, no
 * shared expert) and "deepseek2" (MLA, optional q_lora, dense leading layers, MoE with shared
 * experts, softmax/sigmoid gating, exp_probs_b, groups) and "glm4moe" (GQA with q/k/v biases,
 * optional per-head q/k norms, partial NEOX RoPE, leading dense layers, sigmoid routing with
 * exp_probs_b, a shared expert; its trailing NextN/MTP layers are not part of the model here).
 *
 * MLA layouts of deepseek2 (ggml ne order, ne[0] = contiguous input dim):
 *   IMC_MLA_3D   mainline: attn_k_b [qk_nope, kv_lora, n_head], attn_v_b [kv_lora, v_head, n_head]
 *   IMC_MLA_2D   ik-style: attn_k_b [qk_nope, n_head*kv_lora], attn_v_b [kv_lora, n_head*v_head]
 *   IMC_MLA_KVB  only attn_kv_b [kv_lora, n_head*(qk_nope+v_head)]
 * attn_kv_b may be present with 3D or 2D k_b/v_b too (has_kv_b below); k_b/v_b absent -> KVB.
 *
 * Invariants after imc_model_load: every required tensor exists with the expected shape and a
 * known type; optional tensors are NULL when absent; all pointers borrow from the reader.
 */
#ifndef IMC_MODEL_ARCH_H
#define IMC_MODEL_ARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "model/gguf.h"

enum imc_arch {
    IMC_ARCH_LLAMA,
    IMC_ARCH_DEEPSEEK2,
    IMC_ARCH_QWEN3,
    IMC_ARCH_QWEN3MOE,
    IMC_ARCH_GLM4MOE,
    IMC_ARCH_COUNT
};
enum imc_mla_layout { IMC_MLA_NONE, IMC_MLA_3D, IMC_MLA_2D, IMC_MLA_KVB };
enum imc_gating { IMC_GATING_SOFTMAX = 1, IMC_GATING_SIGMOID = 2 }; // GGUF expert_gating_func
enum imc_rope_scaling { IMC_ROPE_SCALING_NONE, IMC_ROPE_SCALING_LINEAR, IMC_ROPE_SCALING_YARN };

struct imc_hparams {
    int64_t n_vocab;      // rows of token_embd
    int64_t n_ctx_train;  // <arch>.context_length
    int64_t n_embd;       // <arch>.embedding_length
    int64_t n_layer;      // <arch>.block_count, less the NextN layers (the layers that run)
    int64_t n_layer_nextn; // glm4moe: <arch>.nextn_predict_layers, trailing layers not run
    int64_t n_head;       // <arch>.attention.head_count
    int64_t n_head_kv;    // <arch>.attention.head_count_kv (llama GQA; 1 or n_head for MLA)
    int64_t n_ff;         // <arch>.feed_forward_length (dense FFN width)
    float rms_eps;        // <arch>.attention.layer_norm_rms_epsilon
    float rope_freq_base; // <arch>.rope.freq_base (default 10000)
    int64_t n_rot;        // <arch>.rope.dimension_count (llama: head_dim; deepseek2: qk_rope)
    // llama: head dims
    int64_t head_dim;     // n_embd / n_head unless attention.key_length says otherwise
    // rope scaling (YaRN for deepseek2)
    enum imc_rope_scaling rope_scaling;
    float rope_scale_factor;     // rope.scaling.factor (1 when none); freq_scale = 1/factor
    int64_t rope_orig_ctx;       // rope.scaling.original_context_length
    float yarn_log_mul;          // rope.scaling.yarn_log_multiplier (0 when absent)
    float yarn_beta_fast;        // 32 (llama.cpp default)
    float yarn_beta_slow;        // 1
    // MLA (deepseek2)
    int64_t q_lora;       // attention.q_lora_rank, 0 = plain attn_q ("lite")
    int64_t kv_lora;      // attention.kv_lora_rank
    int64_t qk_nope;      // key head dim without rope part
    int64_t qk_rope;      // = n_rot
    int64_t v_head;       // value head dim
    // MoE
    int64_t n_expert;         // expert_count (0 = dense model)
    int64_t n_expert_used;    // expert_used_count
    int64_t n_expert_shared;  // expert_shared_count
    int64_t n_ff_exp;         // expert_feed_forward_length
    int64_t n_layer_dense;    // leading_dense_block_count
    float expert_weights_scale; // 1 when absent
    bool expert_weights_norm;   // false when absent
    enum imc_gating gating;     // softmax when absent
    int64_t n_group;            // expert_group_count (<= 1: plain top-k)
    int64_t n_group_used;       // expert_group_used_count
};

struct imc_layer {
    const struct imc_tensor_info *attn_norm;
    // llama attention
    const struct imc_tensor_info *wq, *wk, *wv; // wq is also deepseek2-lite's attn_q
    const struct imc_tensor_info *wo;           // attn_output
    const struct imc_tensor_info *q_norm, *k_norm; // qwen3: attn_q_norm/attn_k_norm [head_dim]
    const struct imc_tensor_info *bq, *bk, *bv;    // glm4moe: attn_{q,k,v}.bias, or NULL
    // deepseek2 MLA
    const struct imc_tensor_info *wq_a, *q_a_norm, *wq_b;
    const struct imc_tensor_info *wkv_a_mqa, *kv_a_norm;
    const struct imc_tensor_info *wkv_b; // attn_kv_b, NULL when absent
    const struct imc_tensor_info *wk_b;  // attn_k_b (2D or 3D), NULL when absent
    const struct imc_tensor_info *wv_b;  // attn_v_b (2D or 3D), NULL when absent
    // FFN
    const struct imc_tensor_info *ffn_norm;
    const struct imc_tensor_info *ffn_gate, *ffn_up, *ffn_down; // dense layers
    const struct imc_tensor_info *ffn_gate_inp;                 // router [n_embd, n_expert]
    const struct imc_tensor_info *ffn_gate_exps, *ffn_up_exps, *ffn_down_exps;
    const struct imc_tensor_info *ffn_exp_probs_b;              // [n_expert] f32 or NULL
    const struct imc_tensor_info *ffn_gate_shexp, *ffn_up_shexp, *ffn_down_shexp;
    bool is_moe; // routed experts in this layer
};

struct imc_model {
    const struct imc_gguf *gguf; // borrowed reader
    enum imc_arch arch;
    struct imc_hparams hp;
    enum imc_mla_layout mla;     // IMC_MLA_NONE for llama
    bool has_kv_b;               // every layer has attn_kv_b
    bool has_k_b;                // every layer has attn_k_b and attn_v_b
    const struct imc_tensor_info *tok_embd;    // [n_embd, n_vocab]
    const struct imc_tensor_info *output_norm; // [n_embd]
    const struct imc_tensor_info *output;      // [n_embd, n_vocab]; tok_embd when tied
    struct imc_layer *layers;                  // n_layer entries, owned
};

// Reads the architecture of g. Returns a new model in *out (free with imc_model_free); borrows
// g, which must outlive it. On a missing key or tensor, a wrong shape or an unsupported
// architecture logs "<path>: <cause>" naming the key/tensor and expected vs found shape, and
// returns IMC_ERR_FORMAT (IMC_ERR_UNSUPPORTED for an unknown architecture).
enum imc_status imc_model_load(struct imc_model **out, const struct imc_gguf *g);
void imc_model_free(struct imc_model *m);

const char *imc_arch_name(enum imc_arch a);
// True for the architectures with llama's GQA attention (llama, qwen3, qwen3moe, glm4moe).
bool imc_arch_is_gqa(enum imc_arch a);
// True for the architectures whose RoPE rotates pairs (i, i + n_rot/2) (qwen3, qwen3moe, glm4moe).
bool imc_arch_rope_neox(enum imc_arch a);
const char *imc_mla_layout_name(enum imc_mla_layout l); // "none", "3d", "2d (ik)", "kv_b only"

// The weight matrices of a layer, NULL where absent, in this order (the imatrix's declaration
// order, coordinator/imatrix_hook.c): wq, wk, wv, wq_a, wq_b, wkv_a_mqa, wkv_b, wk_b, wv_b, wo,
// ffn_gate, ffn_up, ffn_down, ffn_gate_inp, the routed experts' gate, up and down (from index
// IMC_LAYER_EXPS), the shared expert's gate, up and down.
#define IMC_LAYER_N_MATRICES 20
#define IMC_LAYER_EXPS 14
void imc_layer_matrices(const struct imc_layer *l,
                        const struct imc_tensor_info *out[IMC_LAYER_N_MATRICES]);

// The vector tensors of a layer (norm weights, biases, the router's bias), NULL where absent, in
// this order: attn_norm, q_a_norm, kv_a_norm, ffn_norm, ffn_exp_probs_b, q_norm, k_norm, bq, bk,
// bv.
#define IMC_LAYER_N_VECTORS 10
void imc_layer_vectors(const struct imc_layer *l,
                       const struct imc_tensor_info *out[IMC_LAYER_N_VECTORS]);

#endif // IMC_MODEL_ARCH_H
