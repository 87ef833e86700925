/*
 * kernels: the compute ops of the forward pass, no I/O (DESIGN.md §2 kernels/, §5). Each op has
 * a scalar reference imc_ref_<op> (kernels/ref/, double accumulation, obviously correct: the
 * spec, used by tests) and an optimized imc_cpu_<op> (kernels/cpu/: pthread pool, our own
 * deterministic GEMM for matmul and the per-sequence attention products).
 * tests/kernels/test_<op>.c compares them; tolerances are listed there in one table.
 *
 * Layout conventions: f32, row-major, one row per token. A matrix W "of type t" is n_out rows of
 * n_in elements stored as GGUF stores a 2D tensor with ne = [n_in, n_out]: row o starts at byte
 * o * row_bytes(t, n_in). y = W x means y[o] = Σ_i W[o][i] x[i] (ggml_mul_mat).
 *
 * Threads: every imc_cpu_* op takes a const struct imc_exec *ex (not NULL; one thread is
 * imc_exec_init(&ex, 1)). Work is cut into tasks whose boundaries do not depend on the thread
 * count, and each output element is computed by one task in a fixed order, so results are
 * bitwise identical for any number of threads. The pool is not reentrant: one op at a time per
 * imc_exec. imc_cpu_matmul goes further: each output is one fmaf chain over its input row
 * (kernels/cpu/gemm.h), so a token's row does not depend on the other tokens of the call.
 */
#ifndef IMC_KERNELS_H
#define IMC_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "types/types.h"

// ---- execution context (kernels/cpu/pool.c) ----------------------------------------------------

struct imc_exec;

// Starts n_threads - 1 workers (the caller is the n-th). Returns IMC_ERR_NOMEM or
// IMC_ERR_INTERNAL (logged) when threads cannot start. Free with imc_exec_free.
enum imc_status imc_exec_init(struct imc_exec **out, int n_threads);
void imc_exec_free(struct imc_exec *ex); // NULL is a no-op
int imc_exec_n_threads(const struct imc_exec *ex); // 1 for NULL

// The code path of the kernels under imc_cpu_matmul (kernels/cpu/gemm.h, qmm.h). All give the
// same bits; AVX2 needs a CPU with AVX2 and FMA (and F16C for the q8 route's and f16's vector
// code), generic runs anywhere; VNNI is the AVX2 path with VNNI dot products (AVX512-VNNI+VL or
// AVX-VNNI) in the q8 route's 32-block tile.
enum imc_gemm_path { IMC_GEMM_GENERIC = 0, IMC_GEMM_AVX2 = 1, IMC_GEMM_VNNI = 2 };
// The path ex's kernels use: the fastest the CPU supports, chosen once by imc_exec_init.
enum imc_gemm_path imc_exec_gemm_path(const struct imc_exec *ex);
// Forces path (tests, benchmarks; call between ops). IMC_ERR_UNSUPPORTED (logged) when the CPU
// cannot run it.
enum imc_status imc_exec_set_gemm_path(struct imc_exec *ex, enum imc_gemm_path path);

// How imc_cpu_matmul multiplies quantized weights. F32 (an exec's default, set by imc_exec_init):
// dequantized to f32, one fmaf chain per output (the exact path). Q8 (the commands' default,
// hence 0, the "not given" value of their options): the activations quantized to 8 bits per
// block of 32 or 256 and multiplied as integers (kernels/cpu/qmm.h: llama.cpp's CPU arithmetic)
// where the weight type has that route (imc_qmm_supports: q8_0, q4_0, iq4_nl, q2_k .. q6_k,
// iq4_xs); for bf16 weights the activations rounded to bf16 and the products summed as
// AVX512-BF16's vdpbf16ps does (kernels/cpu/bmm.h, emulated exactly where the CPU lacks it); F32
// for every other type. Either way each output depends only on its W row and x row, and has the
// same bits on every path.
enum imc_matmul_mode { IMC_MATMUL_Q8 = 0, IMC_MATMUL_F32 = 1 };
void imc_exec_set_matmul(struct imc_exec *ex, enum imc_matmul_mode mode);
enum imc_matmul_mode imc_exec_matmul(const struct imc_exec *ex); // F32 for NULL
const char *imc_matmul_mode_name(enum imc_matmul_mode mode);     // "f32" / "q8"

// The state of the op table that runs on ex (kernels/backend.h ctx_new: a device table's
// resident weights and buffers), borrowed: whoever owns both sets it and clears it before
// freeing the state. NULL by default and for NULL ex.
void imc_exec_set_backend_ctx(struct imc_exec *ex, void *ctx);
void *imc_exec_backend_ctx(const struct imc_exec *ex);

// Runs fn(ctx, task, thread) for task in [0, n_tasks) on the pool, returns when all are done.
// thread in [0, n_threads) names the worker (for per-thread scratch). ex NULL: the tasks in
// order on the calling thread (thread 0), for callers whose pool is optional.
typedef void (*imc_task_fn)(void *ctx, int64_t task, int thread);
void imc_exec_run(const struct imc_exec *ex, int64_t n_tasks, imc_task_fn fn, void *ctx);
// A record of the pool's work, for bench/bench_pool_sim.c (which simulates larger pools from
// it): while set on a 1-thread pool, every imc_exec_run adds one job — the durations of its
// tasks, which run one after another on the caller — and the caller's time since the previous
// job ended (the serial work between parallel jobs). Growing stops (truncated = true) when
// memory runs out. Owned by the caller; free its arrays with imc_exec_trace_free.
struct imc_exec_trace {
    int64_t n_jobs;     // jobs recorded
    int64_t *job_first; // [n_jobs + 1] index in task_s of each job's first task
    double *serial_s;   // [n_jobs] seconds on the caller since the previous job (or the start)
    int64_t n_tasks;    // tasks recorded
    double *task_s;     // [n_tasks] seconds per task
    int64_t cap_jobs;   // allocated jobs
    int64_t cap_tasks;  // allocated tasks
    double last;        // clock (core/clock.h) at the end of the last job, or the start
    bool truncated;     // a growth failed: the record stops there
};
// Starts recording into tr (emptied first) from now; NULL stops. ex must have 1 thread.
// cut_threads: the thread count the kernels cut their work for while recording (what a pool of
// that many threads would get; imc_exec_cut_threads), so the record can be replayed for it.
void imc_exec_trace_set(struct imc_exec *ex, struct imc_exec_trace *tr, int cut_threads);
// The thread count kernels size their tasks for: ex's threads, or cut_threads while tracing.
// Results never depend on it (tasks cut differently compute every output the same way).
int imc_exec_cut_threads(const struct imc_exec *ex);
void imc_exec_trace_free(struct imc_exec_trace *tr); // frees the arrays; tr itself is the caller's

// Per-thread scratch of at least n floats, valid until the next call from the same thread
// with a larger n or imc_exec_free. NULL on allocation failure or a bad thread index.
float *imc_exec_scratch(const struct imc_exec *ex, int thread, int64_t n);
// Scratch of at least n floats for the thread that submits jobs (imc_exec_run's caller), apart
// from every task thread's, so a kernel can hand it to its tasks (e.g. matmul's quantized
// activations, reused across calls instead of allocated per call). Valid until the next call
// with a larger n or imc_exec_free. NULL on allocation failure.
float *imc_exec_caller_scratch(const struct imc_exec *ex, int64_t n);

// ---- RMSNorm -----------------------------------------------------------------------------------

// y[r] = x[r] / sqrt(mean(x[r]²) + eps) * w, for n_rows rows of n (w may be NULL: no weight).
// y may equal x.
void imc_ref_rmsnorm(float *y, const float *x, const float *w, int64_t n_rows, int64_t n,
                     float eps);
void imc_cpu_rmsnorm(const struct imc_exec *ex, float *y, const float *x, const float *w,
                     int64_t n_rows, int64_t n, float eps);

// ---- RoPE (llama.cpp "normal" mode, with YaRN) -------------------------------------------------

// Rotates adjacent pairs (x[2i], x[2i+1]), 2i < n_dims, by theta_i(p) (ggml rope_yarn):
//   theta_extrap = p * base^(-2i/n_dims);  theta_interp = freq_scale * theta_extrap
//   ext_factor != 0: ramp = 1 - clamp((i - corr0) / max(0.001, corr1 - corr0), 0, 1),
//                    mix = ramp * ext_factor; theta = interp (1 - mix) + extrap mix;
//                    magnitude *= 1 + 0.1 ln(1/freq_scale)
//   corr0/1 = floor/ceil of n_dims ln(n_ctx_orig / (beta 2π)) / (2 ln base) with beta_fast /
//   beta_slow, clamped to [0, n_dims - 1];  x' = magnitude · R(theta) x, magnitude =
//   attn_factor (· the YaRN term). Elements n_dims.. of each head are left unchanged.
struct imc_rope {
    int64_t n_dims;     // rotated elements per head (even)
    float freq_base;    // rope.freq_base
    float freq_scale;   // 1 / rope.scaling.factor (1 = none)
    float ext_factor;   // 1 for YaRN, 0 otherwise
    float attn_factor;  // magnitude multiplier passed to ggml_rope_ext
    float beta_fast;    // YaRN ramp corners (32, 1)
    float beta_slow;
    int64_t n_ctx_orig; // rope.scaling.original_context_length
    bool neox;          // pairs (i, i + n_dims/2) (llama.cpp's NEOX mode: qwen3) instead of
                        // adjacent pairs (2i, 2i + 1) (normal mode: llama, deepseek2)
};

// The YaRN correction dims [corr0, corr1] of p.
void imc_rope_corr_dims(const struct imc_rope *p, float dims[2]);

// x: n_tok rows; row t holds n_head head vectors, head h at x + t*ld_tok + h*ld_head, each with
// n_dims rotated elements; pos[t] is the position of row t. In place.
void imc_ref_rope(const struct imc_rope *p, float *x, int64_t n_tok, int64_t n_head,
                  int64_t ld_tok, int64_t ld_head, const int32_t *pos);
void imc_cpu_rope(const struct imc_exec *ex, const struct imc_rope *p, float *x, int64_t n_tok,
                  int64_t n_head, int64_t ld_tok, int64_t ld_head, const int32_t *pos);

// ---- matmul ------------------------------------------------------------------------------------

// y[t][o] = Σ_i W[o][i] x[t][i] for t < n_tok, o < n_out; x rows have stride ldx, y rows ldy.
// Returns IMC_ERR_UNSUPPORTED (logged) for a type without to_float or n_in not a multiple of
// its block; IMC_ERR_NOMEM. The reference dequantizes one row at a time and sums in double.
enum imc_status imc_ref_matmul(float *y, int64_t ldy, const void *w, enum imc_type type,
                               int64_t n_out, int64_t n_in, const float *x, int64_t ldx,
                               int64_t n_tok);
enum imc_status imc_cpu_matmul(const struct imc_exec *ex, float *y, int64_t ldy, const void *w,
                               enum imc_type type, int64_t n_out, int64_t n_in, const float *x,
                               int64_t ldx, int64_t n_tok);

// One matmul of a group: y = W x with imc_cpu_matmul's arguments.
struct imc_mm {
    float *y;           // [n_tok][ldy]
    int64_t ldy;        // row stride of y
    const void *w;      // [n_out] rows of n_in values of type
    enum imc_type type; // W's type
    int64_t n_out;      // rows of W
    int64_t n_in;       // columns of W
    const float *x;     // [n_tok][ldx]
    int64_t ldx;        // row stride of x
    int64_t n_tok;      // tokens (rows of x and y)
};
// The n matmuls mm[0..n) as one pool job, their tiles the tasks: every y the bits
// imc_cpu_matmul gives it alone (the same tiling and arithmetic), but small matmuls (an MoE
// layer's experts, each of few tokens) keep every thread busy together. Errors as
// imc_cpu_matmul's.
enum imc_status imc_cpu_matmul_group(const struct imc_exec *ex, const struct imc_mm *mm,
                                     int64_t n);

// out[t] = row ids[t] of W (dequantized), rows of n_in: the embedding lookup. Ids must be valid.
enum imc_status imc_ref_get_rows(float *out, const void *w, enum imc_type type, int64_t n_in,
                                 const int32_t *ids, int64_t n);
enum imc_status imc_cpu_get_rows(const struct imc_exec *ex, float *out, const void *w,
                                 enum imc_type type, int64_t n_in, const int32_t *ids, int64_t n);

// ---- softmax, activations ----------------------------------------------------------------------

// In place, each of n_rows rows of n: x = exp(x - max) / Σ exp(x - max). -INFINITY entries get 0.
void imc_ref_softmax(float *x, int64_t n_rows, int64_t n);
void imc_cpu_softmax(const struct imc_exec *ex, float *x, int64_t n_rows, int64_t n);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + e^-g); n_rows rows of n, each array with
// its own row stride. out may alias gate or up.
void imc_ref_swiglu(float *out, int64_t ldo, const float *gate, int64_t ldg, const float *up,
                    int64_t ldu, int64_t n_rows, int64_t n);
void imc_cpu_swiglu(const struct imc_exec *ex, float *out, int64_t ldo, const float *gate,
                    int64_t ldg, const float *up, int64_t ldu, int64_t n_rows, int64_t n);

// ---- causal attention --------------------------------------------------------------------------

// One causal sequence of n_tok tokens at positions 0..n_tok-1. Query head h uses key/value head
// h / (n_head / n_head_kv). For each h and query t:
//   s_u = scale · q_t,h · k_u,h   (u <= t; u > t masked),  p = softmax(s)
//   out_t,h = Σ_u p_u v_u,h;  and when v2 != NULL also out2_t,h = Σ_u p_u v2_u,h' with head
//   h' = h / (n_head / n_head_v2) (the same probabilities applied to a second value set; the
//   MLA non-absorbed path uses it to compute õ_h = Σ p c for the attn_v_b statistics).
// Each array is addressed as base + t*ld_tok + h*ld_head.
struct imc_attn_args {
    int64_t n_tok, n_head, n_head_kv;
    int64_t dk, dv;
    float scale;
    const float *q;
    int64_t q_ld_tok, q_ld_head;
    const float *k;
    int64_t k_ld_tok, k_ld_head;
    const float *v;
    int64_t v_ld_tok, v_ld_head;
    float *out;
    int64_t o_ld_tok, o_ld_head;
    const float *v2; // optional second value set (NULL: none)
    int64_t n_head_v2, dv2, v2_ld_tok, v2_ld_head;
    float *out2;
    int64_t o2_ld_tok, o2_ld_head;
};

enum imc_status imc_ref_attention(const struct imc_attn_args *a);
enum imc_status imc_cpu_attention(const struct imc_exec *ex, const struct imc_attn_args *a);

// ---- MoE routing -------------------------------------------------------------------------------

enum imc_route_gating { IMC_ROUTE_SOFTMAX = 1, IMC_ROUTE_SIGMOID = 2 };

// Per token (DeepSeek-V3 / llama.cpp build_moe_ffn):
//   p = softmax(logits) or sigmoid(logits);  sel = p + bias (bias may be NULL)
//   n_group > 1: group score = sum of the 2 largest sel in the group; keep the n_group_used
//     best groups, the others' experts are excluded;
//   E = the n_used experts of largest sel (ties: lower index first), in descending sel order
//   w_e = p_e; if norm: w_e /= max(Σ w, 6.103515625e-5); w_e *= scale.
struct imc_route_cfg {
    int64_t n_expert;
    int64_t n_used;
    enum imc_route_gating gating;
    const float *bias;    // [n_expert] selection bias (exp_probs_b) or NULL
    int64_t n_group;      // <= 1: plain top-k
    int64_t n_group_used;
    bool norm;
    float scale;
};

// logits [n_tok][n_expert] -> ids [n_tok][n_used], weights [n_tok][n_used]. IMC_ERR_NOMEM.
enum imc_status imc_ref_moe_route(const struct imc_route_cfg *c, const float *logits,
                                  int64_t n_tok, int32_t *ids, float *weights);
enum imc_status imc_cpu_moe_route(const struct imc_exec *ex, const struct imc_route_cfg *c,
                                  const float *logits, int64_t n_tok, int32_t *ids,
                                  float *weights);

// ---- squared-activation accumulation (the imatrix sums) ----------------------------------------

// sum2[i] += Σ_r x[r][i]² (in double, rows in order r = 0, 1, ...), *count += n_rows. x rows
// have stride ldx. The CPU version splits columns over threads, so it is bitwise equal to the
// reference.
void imc_ref_sqacc(double *sum2, int64_t *count, const float *x, int64_t ldx, int64_t n_rows,
                   int64_t n_in);
void imc_cpu_sqacc(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x,
                   int64_t ldx, int64_t n_rows, int64_t n_in);

// ---- scoring of logits rows: NLL, and KLD against an encoded base row -----------------------

// One logits row l[0..n_vocab) scored against its target t (coordinator/ppl.h, kld.h):
//   nll      = max + log Σ exp(l_i − max) − l_t  (max, the sum and the log in double)
//   top      = the first index of max l
// and, when the row has a base row b (llama.cpp's uint16 log-probabilities, coordinator/kld.h;
// entry i decodes as imc_nll_base_logp(b, i), in float: scale·q_i + min_log_prob):
//   nll_base = −logp_t,  kld = Σ_{i: logp_i > −16} expf(logp_i)·(logp_i − (l_i − max − lse)) in
//   double (i in order), top_base = the first index of max logp.
// Without a base row nll_base = kld = 0 and top_base = −1.
struct imc_nll_row {
    double nll;
    double nll_base;
    double kld;
    int32_t top;
    int32_t top_base;
};

// Decoded log-probability of entry i of an encoded base row (float, unfused multiply and add).
float imc_nll_base_logp(const uint16_t *row, int64_t i);
// Scores one row (above); base may be NULL. Requires n_vocab >= 1, 0 <= target < n_vocab.
struct imc_nll_row imc_ref_nll_row(const float *logits, int64_t n_vocab, int32_t target,
                                   const uint16_t *base);
// out[r] = imc_ref_nll_row(logits + r·n_vocab, n_vocab, targets[r], base ? base + r·ld_base :
// NULL) for r < n_rows. The CPU version runs rows on ex's pool (NULL: this thread): bitwise the
// reference for any thread count.
void imc_ref_nll_rows(struct imc_nll_row *out, const float *logits, int64_t n_rows, int64_t n_vocab,
                      const int32_t *targets, const uint16_t *base, int64_t ld_base);
void imc_cpu_nll_rows(const struct imc_exec *ex, struct imc_nll_row *out, const float *logits,
                      int64_t n_rows, int64_t n_vocab, const int32_t *targets, const uint16_t *base,
                      int64_t ld_base);

// ---- moving and adding activations (kernels/ref/rows.c, kernels/cpu/rows.c) --------------------

// What the engine did on the host between ops, as ops, so a table whose activations live in
// device memory runs the whole layer there. Every output element is a copy, one add or the
// fixed sequence of roundings stated; the CPU versions give the reference's bits for any thread
// count.

// dst (t, h)[0, n) = src (t, h)[0, n) for t < n_tok, h < n_head, each array addressed as
// base + t·ld_tok + h·ld_head (a head stride of 0 repeats one source row in every head). The
// destination rows must not overlap the source rows.
struct imc_copy_args {
    float *dst;
    int64_t d_ld_tok, d_ld_head;
    const float *src;
    int64_t s_ld_tok, s_ld_head;
    int64_t n_tok, n_head, n;
};
void imc_ref_copy(const struct imc_copy_args *a);
void imc_cpu_copy(const struct imc_exec *ex, const struct imc_copy_args *a);

// Rows of d floats, i < n: dst row (dst_idx ? dst_idx[i] : i) = src row (src_idx ? src_idx[i] :
// i): a gather (src_idx), a scatter (dst_idx) or both. Indices valid and, for dst_idx, distinct.
void imc_ref_move_rows(float *dst, const int32_t *dst_idx, const float *src,
                       const int32_t *src_idx, int64_t n, int64_t d);
void imc_cpu_move_rows(const struct imc_exec *ex, float *dst, const int32_t *dst_idx,
                       const float *src, const int32_t *src_idx, int64_t n, int64_t d);

// x[r·n + i] += y[r·ldy + i] for r < n_rows, i < n: the residual adds (ldy = n) and the bias
// adds (ldy = 0: one row added to every row). y must not overlap x unless it is x.
void imc_ref_add(float *x, const float *y, int64_t n_rows, int64_t n, int64_t ldy);
void imc_cpu_add(const struct imc_exec *ex, float *x, const float *y, int64_t n_rows, int64_t n,
                 int64_t ldy);

// The weighted sum of an MoE layer's expert outputs, token t < n, rows of d:
//   v_s = w[t·k + s] · rows[pos[t·k + s]][i]   (rounded to float)
//   y_t[i] = ((v_0 + v_1) + ...) + v_{k-1}     (slots in order, each add rounded)
//   then y_t[i] += add_t[i] when add is not NULL (the shared expert).
// llama.cpp adds the weighted expert outputs so. k >= 1; y must not overlap rows or add.
void imc_ref_moe_wsum(float *y, const float *rows, const int32_t *pos, const float *w,
                      const float *add, int64_t n, int64_t k, int64_t d);
void imc_cpu_moe_wsum(const struct imc_exec *ex, float *y, const float *rows, const int32_t *pos,
                      const float *w, const float *add, int64_t n, int64_t k, int64_t d);

// ---- checks ------------------------------------------------------------------------------------

// Index of the first non-finite value among n_rows rows of n (stride ld), or -1 (flat index
// r*n + i). imc_find_nonfinite is the reference; imc_cpu_find_nonfinite scans blocks of rows on
// the pool (a branch-free scan of the exponent bits) and returns the same index.
int64_t imc_find_nonfinite(const float *x, int64_t ld, int64_t n_rows, int64_t n);
int64_t imc_cpu_find_nonfinite(const struct imc_exec *ex, const float *x, int64_t ld,
                               int64_t n_rows, int64_t n);

#endif // IMC_KERNELS_H
