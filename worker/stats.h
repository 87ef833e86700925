/*
 * worker/stats: the hooks through which the engine hands the input of every matmul to a
 * statistics collector (the imatrix, DESIGN.md §4 "What each tensor gets"). The engine only
 * calls the hook; accumulation (Σx² per column in double, counts) lives in the collector, which
 * runs it through the engine's op table (be->sqacc, kernels/backend.h), so the statistics are
 * computed by the backend that computed the activations.
 *
 * What the engine reports, for every layer it runs (and the head), whichever attention path
 * computes (the other path's inputs are computed on the side when hooks are set):
 *
 *   tensor                        slice        x rows            n_in
 *   dense 2D weights (attn_q, attn_k, attn_v, attn_output, attn_q_a, attn_q_b,
 *     attn_kv_a_mqa, ffn_gate/up/down, *_shexp, ffn_gate_inp, output)
 *                                 -1           every token       ne[0]
 *   ffn_{gate,up}_exps            expert e     tokens routed to e, in token order   n_embd
 *   ffn_down_exps                 expert e     same tokens (silu(g)*u rows)         n_ff_exp
 *   attn_kv_b                     -1           normalized latent c per token        kv_lora
 *   attn_k_b (3D or 2D ik)        head h       q_nope_h per token                   qk_nope
 *   attn_v_b (3D or 2D ik)        head h       õ_h = Σ_u softmax(s)_u c(u)          kv_lora
 *
 * Experts that receive no token are not called (n_rows would be 0). Token embedding is a row
 * lookup, not a matmul, and is not reported.
 *
 * Invariants: the hook is called from the thread that called the engine, one call at a time,
 * in a deterministic order (layer by layer, tensors in forward order, experts ascending, heads
 * ascending), so a collector needs no locks and its sums do not depend on the thread count.
 * The engine's pool is idle during the call and is handed to the hook (ex) with the engine's
 * op table (be), whose ops the hook may run on it (the cpu table's sqacc: the same bits for any
 * thread count), so the statistics do not become a serial section as the core count grows.
 * x is [n_rows][n_in] with row stride ldx >= n_in (a column block of a wider activation is not
 * copied), f32, and borrowed for the call: host memory, or the table's memory when be has
 * buf_alloc (then only be's ops may read it). It is finite, except on tables whose finiteness
 * checks are deferred (check_post): there a non-finite x is reported by the engine's next poll,
 * which stops the call before on_sync.
 * tok[r] is the index of row r's token in the batch (sequence s, position p: s*n_ctx + p; with
 * expert shards, sequences are numbered over the whole stage), strictly ascending within a
 * call; also borrowed for the call.
 */
#ifndef IMC_WORKER_STATS_H
#define IMC_WORKER_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "model/gguf.h"

struct imc_exec;    // kernels/kernels.h
struct imc_backend; // kernels/backend.h

struct imc_stats_hooks {
    void *user; // passed back to on_input
    // Called once per (weight, slice) per forward call. w: the GGUF tensor (name exactly as in
    // the file); layer: block index, -1 for the output head; slice: expert index for *_exps,
    // head index for attn_k_b/attn_v_b, -1 otherwise; be: the engine's op table (borrowed).
    // Returning anything but IMC_OK stops the forward pass, which returns that status.
    enum imc_status (*on_input)(void *user, const struct imc_exec *ex, const struct imc_backend *be,
                                const struct imc_tensor_info *w, int64_t layer, int64_t slice,
                                const float *x, int64_t ldx, int64_t n_rows, int64_t n_in,
                                const int32_t *tok);
    // Optional (NULL: nothing to bring home). Called with the engine's exec and op table at the
    // end of every engine call that may have reported inputs (imc_engine_layers and
    // imc_engine_head, when they succeed), and with release true from imc_engine_free before
    // the table's state goes: what the collector keeps in the table's memory (be->buf_alloc:
    // statistics partials on the device) comes home then (and is freed on release), so that
    // host code (the collector's end of chunk) may read it. Not calling on_input in a call is
    // fine; an error stops the call with that status.
    enum imc_status (*on_sync)(void *user, const struct imc_exec *ex, const struct imc_backend *be,
                               bool release);
};

#endif // IMC_WORKER_STATS_H
