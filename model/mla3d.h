/*
 * model/mla3d: rewrite an ik_llama.cpp-style deepseek2 GGUF (2D attn_k_b [qk_nope,
 * n_head·kv_lora] / attn_v_b [kv_lora, n_head·v_head]) into the mainline 3D layout
 * (attn_k_b [qk_nope, kv_lora, n_head] / attn_v_b [kv_lora, v_head, n_head]); `imc mla-3d`
 * (DESIGN.md §4 "What each tensor gets": the 3D layout gives per-head imatrix data).
 *
 * Same tensor bytes, new shapes: slice h of the 2D tensor (rows h·kv_lora … h·kv_lora+kv_lora−1
 * of attn_k_b) is matrix h of the 3D one, so the forward pass is unchanged bit for bit. The
 * metadata is switched to the mainline MLA keys that go with the 3D layout:
 *   <arch>.attention.key_length       = kv_lora + qk_rope
 *   <arch>.attention.value_length     = kv_lora
 *   <arch>.attention.key_length_mla   = qk_nope + qk_rope
 *   <arch>.attention.value_length_mla = v_head
 *   <arch>.attention.head_count_kv    = 1
 * Every other key and tensor (type, data, order) is copied as it is; attn_kv_b is kept unless
 * drop_kv_b (mainline llama.cpp refuses files with tensors it does not load). The output is one
 * file (a split input is joined), written atomically.
 */
#ifndef IMC_MODEL_MLA3D_H
#define IMC_MODEL_MLA3D_H

#include <stdbool.h>

#include "core/status.h"

// Reads in, writes out. Returns IMC_ERR_ARG (logged, naming in) when in is not deepseek2 or its
// layout is already 3D, IMC_ERR_UNSUPPORTED when it has only attn_kv_b (splitting it is a
// conversion, not a header rewrite), the reader's / writer's errors otherwise.
enum imc_status imc_mla3d_convert(const char *in, const char *out, bool drop_kv_b);

#endif // IMC_MODEL_MLA3D_H
