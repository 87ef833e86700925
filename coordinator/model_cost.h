/*
 * coordinator/model_cost: the per-layer weight bytes and FLOPs per token of a model, from tensor
 * shapes and sizes only (no tensor data is touched), as numa/plan.h's struct imc_model_cost
 * wants them for the layer/expert split and `imc plan` (DESIGN.md §3, §6).
 *
 * Bytes (what a rank must hold):
 *   layer[i].bytes        every tensor named "blk.<i>.*" except the routed experts
 *   layer[i].expert_bytes ffn_{gate,up,down}_exps of layer i (all experts)
 *   embd.bytes            token_embd (the lookup on the first stage)
 *   head.bytes            output_norm + output; with a tied output that is token_embd again (the
 *                         last stage needs its own copy), plus any other tensor that belongs to
 *                         no layer (e.g. "blk.<n>" with n >= n_layer, such as a DeepSeek-V3
 *                         next-token-prediction layer, or rope_freqs)
 * FLOPs per token (2 per multiply-add of each active weight matrix):
 *   layer[i].flops        2 x elements of the attention projections (q/k/v/o; MLA q_a, q_b,
 *                         kv_a_mqa and either attn_k_b+attn_v_b or attn_kv_b — the two paths
 *                         multiply the same number of weights, so one is counted), the dense FFN
 *                         or the router and shared experts
 *   layer[i].expert_flops 2 x elements of one expert's gate+up+down x n_expert_used
 *   embd.flops            0 (a row lookup)
 *   head.flops            2 x elements of output
 * Attention over the context (scores, weighted sums) and norms are not counted: they cost the
 * same in every layer and do not change the split.
 *
 * Invariant: the sum of all bytes equals the file's tensor bytes plus token_embd's once more when
 * the output is tied.
 */
#ifndef IMC_COORDINATOR_MODEL_COST_H
#define IMC_COORDINATOR_MODEL_COST_H

#include "core/status.h"
#include "model/arch.h"
#include "numa/plan.h"

// Fills *out from m. layers must hold m->hp.n_layer entries (caller-owned); out->layer points
// into it afterwards (borrowed: layers must outlive out). Borrows m only during the call.
// Returns IMC_ERR_ARG (logged) when the model has no layers or more than INT_MAX of them.
enum imc_status imc_model_cost_build(const struct imc_model *m, struct imc_layer_cost *layers,
                                     struct imc_model_cost *out);

// The model's weight bytes (each weight once: a tied output counts once) and FLOPs per token.
void imc_model_cost_totals(const struct imc_model *m, const struct imc_model_cost *c,
                           double *bytes, double *flops);

#endif // IMC_COORDINATOR_MODEL_COST_H
