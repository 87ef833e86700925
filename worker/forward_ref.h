/*
 * worker/forward_ref: the scalar reference forward pass — the spec the engine is tested against
 * (STYLE: "the scalar reference is the spec", llama2.c style). One token at a time with a KV
 * cache, only imc_ref_* kernels (double accumulation), no threads, written independently of the
 * batched engine (worker/engine.h) and directly from DESIGN.md §5:
 *   RoPE/YaRN: rotation with magnitude 1 for deepseek2 and 1 + 0.1 ln(1/freq_scale) for llama
 *   YaRN; deepseek2 kq_scale = mscale² / sqrt(qk_nope + qk_rope), mscale = 1 +
 *   yarn_log_multiplier · ln(1/freq_scale) (llama.cpp's derivation gives the same numbers for
 *   DeepSeek-V2/V3 files).
 * Slow (O(n²) per token for attention, weights dequantized row by row): tiny models only.
 */
#ifndef IMC_WORKER_FORWARD_REF_H
#define IMC_WORKER_FORWARD_REF_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "model/arch.h"
#include "worker/engine.h"

// logits [n][n_vocab] for tokens at positions 0..n-1. path: deepseek2 attention path (AUTO as
// in the engine); plain_topk: ignore expert groups. Returns IMC_ERR_ARG (logged) for a path the
// file cannot run or a bad token, IMC_ERR_NOMEM, or a kernel's error.
enum imc_status imc_ref_forward(const struct imc_model *m, enum imc_attn_path path,
                                bool plain_topk, const int32_t *tokens, int64_t n,
                                float *logits);

#endif // IMC_WORKER_FORWARD_REF_H
