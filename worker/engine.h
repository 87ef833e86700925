/*
 * worker/engine: the CPU forward pass of one rank over its layers (DESIGN.md §2 worker/, §5).
 * Architectures: llama (GQA, RoPE, optional MoE) and deepseek2 (MLA in both paths, q_lora or
 * plain q, YaRN, dense leading layers, MoE with shared experts, sigmoid/softmax gating,
 * exp_probs_b, group-limited top-k).
 *
 * Data layout: activations are f32 row-major, one row per token: hidden [n_tokens][n_embd],
 * logits [n_tokens][n_vocab]. A call processes n_seq independent causal sequences of n_ctx
 * tokens each, laid out one after another; positions restart at 0 in every sequence.
 *
 * Compute: weights stay in the GGUF mapping in their stored type; each matmul dequantizes a tile
 * of weight rows to f32 into packed panels and runs imc's own GEMM on it (kernels/cpu/gemm.h),
 * which computes every output as one fmaf chain over the input in ascending order: a token's
 * output row depends only on that token's input and the weight, never on the other tokens of
 * the call, its position among them, the tiling or the thread count. Work is split over the
 * engine's own pthread pool (attention's per-sequence products run on the same GEMM inside the
 * tasks), so results are bitwise identical for any n_threads.
 *
 * Expert shards (ep_comm): the shards of a stage each run the layers on their own sequences
 * (attention, router, shared experts: data-parallel over sequences) and exchange the routed
 * tokens: every (token, slot) pair goes to the shard owning its expert (all-to-all), each
 * shard runs its experts over the rows it received, in global token order, and the outputs
 * come back (all-to-all) to be weighted and added in slot order. Every per-token result is
 * bitwise the one a single engine computes (the matmul's rows do not depend on the other rows
 * of a call). imc_engine_layers is then collective over the group: every shard calls it for
 * every batch, with the same n_ctx, also with no sequence of its own. Where every shard's table
 * has its own memory and can exchange it between ranks (the CUDA table: NCCL), the routed rows
 * stay there and go from device to device; else (a CPU shard among them, --experts-on cpu,
 * opts.host_exchange) they travel through host memory and MPI. The shards agree on the way in
 * imc_engine_init (collective over the group where the engine runs an MoE layer), so the
 * activations' arena leaves out rows the host keeps. MPI carries the counts and the (token,
 * expert) records either way.
 *
 * Invariants: an engine borrows its model (and the model's GGUF mapping), which must outlive
 * it. One forward call at a time per engine (scratch buffers are reused); different engines
 * are independent. Non-finite activations stop the pass with IMC_ERR_NUMERIC, logged once with
 * the layer and the tensor whose output went bad.
 */
#ifndef IMC_WORKER_ENGINE_H
#define IMC_WORKER_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "kernels/kernels.h"
#include "model/arch.h"
#include "worker/stats.h"

// How deepseek2 computes attention (DESIGN.md §5). Both paths compute the same function.
enum imc_attn_path {
    IMC_ATTN_AUTO = 0,      // absorbed when attn_k_b + attn_v_b exist, else non-absorbed
    IMC_ATTN_ABSORBED,      // scores over the latent c; needs attn_k_b and attn_v_b
    IMC_ATTN_NON_ABSORBED,  // k_nope, v from attn_kv_b; needs attn_kv_b
};

// Where an engine runs (--device), when opts.backend is NULL.
enum imc_device {
    IMC_DEVICE_AUTO = 0, // cuda when the build has CUDA and a device is visible, else cpu
    IMC_DEVICE_CPU,
    IMC_DEVICE_CUDA,     // the CUDA op table (kernels/cuda/cuda.h); an error without one
};

struct imc_backend; // kernels/backend.h
struct imc_comm;    // mpi/comm.h

struct imc_engine_opts {
    int n_threads;                 // compute threads, >= 1 (0 means 1)
    const struct imc_backend *backend; // NULL: by device; imc_backend_ref() etc. for tests
    enum imc_device device;        // used when backend is NULL
    // --experts-on cpu: the routed experts' matmuls (the backend's matmul_group, which the
    // engine calls for nothing else) run on the cpu table with this engine's thread pool, every
    // other op on the backend, so a device table never sees (nor uploads) a routed expert's
    // weights; the statistics of the experts' inputs (the hooks) then use the cpu table's sqacc
    // too. A no-op when the backend is the cpu table.
    bool experts_on_cpu;
    // --exchange host: expert shards move routed rows, and pipeline stages hidden rows
    // (imc_engine_pipe_open), through host memory and MPI even where their tables could exchange
    // them in their own memory (NCCL between GPU ranks; see "Expert shards"). The bits are the
    // same either way.
    bool host_exchange;
    enum imc_attn_path attn;       // deepseek2 only; ignored for llama
    enum imc_matmul_mode matmul;   // quantized weights: dequantized (F32) or q8 (qmm.h)
    bool plain_topk;               // route by plain top-k even when the model has groups
    int64_t layer_begin;           // run layers [layer_begin, layer_end); both 0 = all layers
    int64_t layer_end;
    // Expert parallelism (DESIGN.md §6 "Experts"): NULL runs every routed expert here. Else the
    // expert group (IMC_GROUP_EXPERT, borrowed, must outlive the engine) of this rank's stage:
    // shard i of P owns experts imc_plan_expert_range(n_expert, P, i); see "Expert shards".
    const struct imc_comm *ep_comm;
    const struct imc_stats_hooks *hooks; // NULL = no statistics; borrowed, must outlive engine
    // Scratch of the absorbed MLA path's blocks of heads and of the MoE layers' groups of
    // experts, in bytes at most (at least one head / one expert whatever its size); 0 means
    // IMC_ENGINE_BLOCK_BYTES. Smaller blocks only save memory: the bits are the same.
    int64_t block_bytes;
};

#define IMC_ENGINE_BLOCK_BYTES ((int64_t)64 << 20)

struct imc_engine;

// Default options: 1 thread, device cpu, AUTO path, F32 matmul (the exact path: tests and
// other backends start from it; the commands' run options default to Q8), all layers, all
// experts here, no hooks.
struct imc_engine_opts imc_engine_opts_default(void);

// Creates an engine for model m (borrowed; must outlive the engine). Copies the small f32
// vectors (norms, exp_probs_b) and starts opts->n_threads - 1 worker threads. Returns
// IMC_ERR_ARG (logged) for a bad layer/expert range, an attention path the file cannot run
// (e.g. ABSORBED without attn_k_b), or a tensor type without dequantization; IMC_ERR_NOMEM;
// IMC_ERR_UNSUPPORTED (logged: "--device cuda: no CUDA device visible" / "this build has no
// CUDA") for device CUDA where it cannot run. With the CUDA table the engine owns the table's
// state (weights resident on the device as they are first used). With ep_comm and an MoE layer
// to run, collective over the expert group (the shards agree how their rows travel). Free with
// imc_engine_free.
enum imc_status imc_engine_init(struct imc_engine **out, const struct imc_model *m,
                                const struct imc_engine_opts *opts);
void imc_engine_free(struct imc_engine *e); // NULL is a no-op
// The op table's state the engine owns (backend.h ctx_new; NULL for the cpu table), borrowed:
// for tests that look at what a device table holds (kernels/cuda kern_decl.h ctx_resident).
void *imc_engine_backend_ctx(const struct imc_engine *e);

const struct imc_model *imc_engine_model(const struct imc_engine *e);
// The path deepseek2 layers use (AUTO resolved); IMC_ATTN_AUTO for llama.
enum imc_attn_path imc_engine_attn_path(const struct imc_engine *e);
// Where an engine's time went, by kind of operation: wall seconds of the calling thread inside
// each kind (the pool's work included), summed over every call since imc_engine_init. OTHER is
// what the forward calls spent outside the kinds (scratch, residual adds, bias, gathers).
enum imc_prof {
    IMC_PROF_MATMUL,    // matmuls and grouped expert matmuls (the backend's matmul ops)
    IMC_PROF_ATTENTION, // the attention kernel (scores, softmax, values)
    IMC_PROF_NORM,      // RMS norms
    IMC_PROF_ROPE,      // RoPE
    IMC_PROF_FFN_ACT,   // SwiGLU
    IMC_PROF_ROUTE,     // the MoE router's top-k and weights
    IMC_PROF_EMBED,     // token embedding rows
    IMC_PROF_HOOKS,     // the statistics hooks (imatrix)
    IMC_PROF_CHECK,     // the non-finite checks of outputs
    IMC_PROF_EXCHANGE,  // expert shards' all-to-all (dispatch and combine)
    IMC_PROF_OTHER,
    IMC_PROF_COUNT
};
const char *imc_prof_name(enum imc_prof k); // "matmul", "attention", ...
void imc_engine_profile(const struct imc_engine *e, double seconds[IMC_PROF_COUNT]);
// Formats seconds[IMC_PROF_COUNT] as "matmul 61.2% (1.234 s), attention ...; 2.016 s in all":
// the kinds of at least 0.05% of the total, in decreasing order.
void imc_prof_format(const double seconds[IMC_PROF_COUNT], char *buf, size_t size);
// Logs one debug line (-v): "<who>profile: " and the format above.
void imc_engine_log_profile(const struct imc_engine *e, const char *who);

// The engine's CPU pool (borrowed), idle between calls: for the scoring of its logits (NLL,
// KLD) and bench/bench_pool_sim.c's trace.
struct imc_exec *imc_engine_exec(struct imc_engine *e);
const char *imc_attn_path_name(enum imc_attn_path p); // "auto", "absorbed", "non-absorbed"
// The path an engine for m would use when asked for req (AUTO resolved as above; AUTO for
// llama), without checking that the file can run it (imc_engine_init does).
enum imc_attn_path imc_attn_path_for(const struct imc_model *m, enum imc_attn_path req);

// Whole model, one sequence: logits [n_tokens][n_vocab] for positions 0..n_tokens-1. Requires
// the engine to own all layers. Token ids outside [0, n_vocab) give IMC_ERR_ARG (logged).
enum imc_status imc_engine_forward(struct imc_engine *e, const int32_t *tokens, int64_t n_tokens,
                                   float *logits);

// Whole model, n_seq independent sequences of n_ctx tokens (tokens [n_seq][n_ctx]). Logits
// only for positions [out_begin, n_ctx) of each sequence: logits [n_seq][n_ctx - out_begin]
// [n_vocab]. out_begin == n_ctx skips the output head (logits may then be NULL).
enum imc_status imc_engine_forward_batch(struct imc_engine *e, const int32_t *tokens,
                                         int64_t n_seq, int64_t n_ctx, int64_t out_begin,
                                         float *logits);

// ---- split form, for pipeline stages -----------------------------------------------------------

// hidden [n_tokens][n_embd] = token embeddings (the first stage).
enum imc_status imc_engine_embed(struct imc_engine *e, const int32_t *tokens, int64_t n_tokens,
                                 float *hidden);
// Runs the engine's layers [layer_begin, layer_end) in place on hidden [n_seq*n_ctx][n_embd]:
// sequences seq0 .. seq0+n_seq-1 of the batch (seq0 only numbers the tokens for the stats
// hooks: row r is token seq0*n_ctx + r). n_seq 0 is allowed with ep_comm (a shard without
// sequences of its own still serves its experts).
enum imc_status imc_engine_layers(struct imc_engine *e, float *hidden, int64_t n_seq,
                                  int64_t n_ctx, int64_t seq0);
// logits [n_rows][n_vocab] = output(RMSNorm(rows row0 .. row0+n_rows-1 of hidden)) (the last
// stage), hidden being the array of the last imc_engine_layers call (same numbering of tokens
// for the hooks). hidden is not modified. The engine keeps the logits (imc_engine_score_head,
// imc_engine_head_rows) until the next embed, layers or head call: on a table with its own
// memory in that memory, so with logits NULL (kept only) none travels to the host; on a host
// table in logits itself when given (which must then stay unchanged while they are used), else
// in a buffer of the engine's.
enum imc_status imc_engine_head(struct imc_engine *e, const float *hidden, int64_t row0,
                                int64_t n_rows, float *logits);

// ---- pipeline stages' hidden rows without the host (coordinator/dist.c) -------------------------

// A hidden array of n floats in the engine's table memory (host memory on host tables), which
// embed, layers and head take as their hidden array (on a device table then without copies to and
// from the host) and the pipe functions move. Owned by the engine, freed with it; at most
// IMC_ENG_MAX_HIDDEN (4) per engine. NULL (logged) when exhausted. Host code must not touch it
// on a device table.
float *imc_engine_hidden_alloc(struct imc_engine *e, int64_t n);
// Opens the transport of hidden rows between the stages of c's pipeline group (IMC_GROUP_PIPELINE;
// collective over the group, once per engine): *device = whether they go from table to table
// (NCCL between GPU stages: every stage's table can, no two on one GPU, not opts.host_exchange;
// as "Expert shards" says for their rows), else the caller moves host rows (MPI).
enum imc_status imc_engine_pipe_open(struct imc_engine *e, const struct imc_comm *c, bool *device);
// n floats of a hidden array from imc_engine_hidden_alloc to / from stage `stage`, waiting until
// they have left / arrived; both sides call them in the same order. IMC_ERR_ARG (logged) unless
// the transport is open and device; else the table's errors (IMC_ERR_NCCL, the exchange aborted
// after the MPI watchdog's timeout).
enum imc_status imc_engine_pipe_send(struct imc_engine *e, const float *hidden, size_t n,
                                     int stage);
enum imc_status imc_engine_pipe_recv(struct imc_engine *e, float *hidden, size_t n, int stage);

// ---- scoring ------------------------------------------------------------------------------------

struct imc_nll_row; // kernels/kernels.h
// out[r] = the scores of logits row r of [n_rows][n_vocab] (the model's n_vocab; the rows as
// imc_engine_head gives them) against targets[r] and, base not NULL, the encoded base row
// base + r·ld_base (kernels/kernels.h imc_ref_nll_row): the op table's nll_rows on the
// engine's pool (on the cpu table the reference's bits for any thread count; on cuda on the
// device). Borrows everything. Returns IMC_ERR_NOMEM (device memory, logged).
enum imc_status imc_engine_score(struct imc_engine *e, struct imc_nll_row *out, const float *logits,
                                 int64_t n_rows, const int32_t *targets, const uint16_t *base,
                                 int64_t ld_base);
// The same for rows r0 .. r0+n_rows-1 of the logits the last imc_engine_head kept, scored where
// they are (no copy of the logits on a table with its own memory: only the scores come back).
// IMC_ERR_ARG (logged) for rows it does not keep; as imc_engine_score otherwise.
enum imc_status imc_engine_score_head(struct imc_engine *e, struct imc_nll_row *out, int64_t r0,
                                      int64_t n_rows, const int32_t *targets, const uint16_t *base,
                                      int64_t ld_base);
// Rows r0 .. r0+n_rows-1 of the kept logits in host memory, for what only the host does (the
// --kld-save encoding): on a host table the kept rows themselves, else copied into buf
// [n_rows][n_vocab]. Valid while the logits are kept. NULL (logged) for rows it does not keep
// or a failed copy.
const float *imc_engine_head_rows(struct imc_engine *e, int64_t r0, int64_t n_rows, float *buf);

#endif // IMC_WORKER_ENGINE_H
