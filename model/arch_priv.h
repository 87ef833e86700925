/*
 * model/arch_priv: helpers shared by the architecture readers (arch.c, arch_llama.c,
 * arch_deepseek2.c). Not part of the public API; see model/arch.h for the contract.
 *
 * Every helper logs one line "<path>: <cause>" naming the key or tensor on failure and returns
 * the status, so the per-architecture code only passes statuses up.
 */
#ifndef IMC_MODEL_ARCH_PRIV_H
#define IMC_MODEL_ARCH_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "model/arch.h"

// Largest accepted dimension read from metadata (keeps every product of two dims in int64).
#define IMC_ARCH_MAX_DIM ((int64_t)1 << 30)

struct imc_arch_ld {
    const struct imc_gguf *g; // reader (borrowed)
    const char *path;         // for messages
    const char *arch;         // general.architecture value, the key prefix
};

// Reads integer key "<arch>.<suffix>". Absent: IMC_ERR_FORMAT when required, else *out = def.
// A per-layer array whose elements are all equal is accepted as that value; differing elements
// give IMC_ERR_UNSUPPORTED. Values outside [lo, hi] give IMC_ERR_FORMAT.
enum imc_status imc_arch_get_int(const struct imc_arch_ld *ld, const char *suffix, bool required,
                                 int64_t def, int64_t lo, int64_t hi, int64_t *out);
// Reads float key "<arch>.<suffix>" (f32 or f64); *out = def when absent and not required.
enum imc_status imc_arch_get_float(const struct imc_arch_ld *ld, const char *suffix,
                                   bool required, float def, float *out);
// Reads bool key "<arch>.<suffix>"; *out = def when absent.
enum imc_status imc_arch_get_bool(const struct imc_arch_ld *ld, const char *suffix, bool def,
                                  bool *out);
// Reads the rope scaling keys (type/factor/original_context_length/yarn_*) into hp.
enum imc_status imc_arch_get_rope_scaling(const struct imc_arch_ld *ld, struct imc_hparams *hp);

// Expected shape of a tensor: n_dims entries of ne (ggml order); unused dims count as 1.
struct imc_arch_shape {
    int n_dims;
    int64_t ne[IMC_GGUF_MAX_DIMS];
};

static inline struct imc_arch_shape imc_shape1(int64_t a)
{
    return (struct imc_arch_shape){1, {a, 1, 1, 1}};
}
static inline struct imc_arch_shape imc_shape2(int64_t a, int64_t b)
{
    return (struct imc_arch_shape){2, {a, b, 1, 1}};
}
static inline struct imc_arch_shape imc_shape3(int64_t a, int64_t b, int64_t c)
{
    return (struct imc_arch_shape){3, {a, b, c, 1}};
}

// True when t has shape s (trailing dims of 1 ignored, as ggml does).
bool imc_arch_shape_eq(const struct imc_tensor_info *t, struct imc_arch_shape s);
// Formats a shape "[a, b, c]" into buf.
const char *imc_arch_shape_str(const int64_t *ne, int n_dims, char *buf, int size);

// Finds tensor `name` (formatted with layer il when it holds "%d"; pass -1 otherwise) and checks
// its shape. Absent: *out = NULL, and IMC_ERR_FORMAT when required. Wrong shape: IMC_ERR_FORMAT.
enum imc_status imc_arch_tensor(const struct imc_arch_ld *ld, const char *name, int il,
                                struct imc_arch_shape s, bool required,
                                const struct imc_tensor_info **out);
// Finds tensor `name` (as above) without a shape check; NULL when absent.
const struct imc_tensor_info *imc_arch_find(const struct imc_arch_ld *ld, const char *name,
                                            int il);

// Keys every architecture reads the same way: context_length, embedding_length, block_count,
// attention.head_count(_kv), attention.layer_norm_rms_epsilon, rope.freq_base.
enum imc_status imc_arch_common_hparams(const struct imc_arch_ld *ld, struct imc_hparams *hp);
// Expert keys shared by llama (Mixtral) and deepseek2 (expert_count, expert_used_count,
// expert_shared_count, expert_weights_scale, expert_gating_func, expert_group_*); all zero
// for a dense model.
enum imc_status imc_arch_expert_hparams(const struct imc_arch_ld *ld, struct imc_hparams *hp);

// GQA head keys (llama, qwen3, glm4moe): head_count a multiple of head_count_kv,
// attention.key_length (head_dim; n_embd / n_head when absent) equal to value_length, and
// rope.dimension_count (n_rot, even, <= head_dim; head_dim when absent).
enum imc_status imc_arch_gqa_heads(const struct imc_arch_ld *ld, struct imc_hparams *hp);
// Per-architecture readers: fill m->hp (keys) and then the tensors of m.
enum imc_status imc_arch_llama_hparams(const struct imc_arch_ld *ld, struct imc_hparams *hp);
enum imc_status imc_arch_llama_tensors(const struct imc_arch_ld *ld, struct imc_model *m);
enum imc_status imc_arch_ds2_hparams(const struct imc_arch_ld *ld, struct imc_hparams *hp);
enum imc_status imc_arch_ds2_tensors(const struct imc_arch_ld *ld, struct imc_model *m);
enum imc_status imc_arch_qwen3_tensors(const struct imc_arch_ld *ld, struct imc_model *m);
enum imc_status imc_arch_glm4moe_hparams(const struct imc_arch_ld *ld, struct imc_hparams *hp);
enum imc_status imc_arch_glm4moe_tensors(const struct imc_arch_ld *ld, struct imc_model *m);
// Shared MoE/dense FFN tensors of layer il (every architecture uses the same names), with
// blk.N.ffn_norm; imc_arch_ffn_body without the norm (glm4moe names it post_attention_norm).
enum imc_status imc_arch_ffn_tensors(const struct imc_arch_ld *ld, const struct imc_hparams *hp,
                                     int il, struct imc_layer *l);
enum imc_status imc_arch_ffn_body(const struct imc_arch_ld *ld, const struct imc_hparams *hp,
                                  int il, struct imc_layer *l);

#endif // IMC_MODEL_ARCH_PRIV_H
