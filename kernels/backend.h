/*
 * kernels/backend: a small table of the ops the engine calls (STYLE b.1, after ggml's backend
 * interface), so the forward pass is written once and runs on any backend that fills the
 * table. Backends: "cpu" (imc_cpu_*, the production kernels), "ref" (imc_ref_* behind the
 * same signatures: the scalar spec, single-threaded, for tests) and "cuda" (kernels/cuda/cuda.h:
 * the .cu kernels, weights resident in device memory).
 *
 * Invariant: every entry is non-NULL except ctx_new / ctx_free, which are NULL for stateless
 * tables (cpu, ref), and buf_alloc / buf_free / check_post / check_poll, NULL for tables on
 * host memory (cpu, ref); the
 * signatures are those of kernels/kernels.h, with the execution context first. Pointers to
 * activations are host pointers or, for a table with buf_alloc, pointers into its buffers.
 *
 * State: a table with ctx_new keeps per-user state (the CUDA table: weights uploaded on first
 * use, device buffers). Its user (the engine) creates it with ctx_new, attaches it to the exec
 * it passes to the ops (imc_exec_set_backend_ctx), and frees it with ctx_free after detaching.
 * Weights are then identified by their host address: they must stay at it, unchanged, while
 * the state lives (the GGUF mapping does).
 */
#ifndef IMC_KERNELS_BACKEND_H
#define IMC_KERNELS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/kernels.h"

enum imc_op {
    IMC_OP_MATMUL,
    IMC_OP_GET_ROWS,
    IMC_OP_RMSNORM,
    IMC_OP_ROPE,
    IMC_OP_SOFTMAX,
    IMC_OP_SWIGLU,
    IMC_OP_ATTENTION,
    IMC_OP_MOE_ROUTE,
    IMC_OP_SQACC,
    IMC_OP_NLL_ROWS,
    IMC_OP_COPY,
    IMC_OP_MOVE_ROWS,
    IMC_OP_ADD,
    IMC_OP_MOE_WSUM,
    IMC_OP_FIND_NONFINITE,
    IMC_OP_COUNT
};

struct imc_backend {
    const char *name;
    // Whether the backend runs op on weights of type t (t ignored for ops without weights).
    bool (*supports)(enum imc_op op, enum imc_type t);
    enum imc_status (*matmul)(const struct imc_exec *ex, float *y, int64_t ldy, const void *w,
                              enum imc_type type, int64_t n_out, int64_t n_in, const float *x,
                              int64_t ldx, int64_t n_tok);
    // y = W x for each of n matmuls (an MoE layer's experts), in one go where the backend can.
    enum imc_status (*matmul_group)(const struct imc_exec *ex, const struct imc_mm *mm,
                                    int64_t n);
    enum imc_status (*get_rows)(const struct imc_exec *ex, float *out, const void *w,
                                enum imc_type type, int64_t n_in, const int32_t *ids, int64_t n);
    void (*rmsnorm)(const struct imc_exec *ex, float *y, const float *x, const float *w,
                    int64_t n_rows, int64_t n, float eps);
    void (*rope)(const struct imc_exec *ex, const struct imc_rope *p, float *x, int64_t n_tok,
                 int64_t n_head, int64_t ld_tok, int64_t ld_head, const int32_t *pos);
    void (*softmax)(const struct imc_exec *ex, float *x, int64_t n_rows, int64_t n);
    void (*swiglu)(const struct imc_exec *ex, float *out, int64_t ldo, const float *gate,
                   int64_t ldg, const float *up, int64_t ldu, int64_t n_rows, int64_t n);
    enum imc_status (*attention)(const struct imc_exec *ex, const struct imc_attn_args *a);
    enum imc_status (*moe_route)(const struct imc_exec *ex, const struct imc_route_cfg *c,
                                 const float *logits, int64_t n_tok, int32_t *ids,
                                 float *weights);
    void (*sqacc)(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x,
                  int64_t ldx, int64_t n_rows, int64_t n_in);
    // out[r] = the scores of logits row r (kernels.h imc_ref_nll_row; contiguous rows of
    // n_vocab) against targets[r] and, when base is not NULL, base row base + r·ld_base: what
    // the coordinator folds into PPL and KLD statistics. IMC_ERR_NOMEM (device memory).
    enum imc_status (*nll_rows)(const struct imc_exec *ex, struct imc_nll_row *out,
                                const float *logits, int64_t n_rows, int64_t n_vocab,
                                const int32_t *targets, const uint16_t *base, int64_t ld_base);
    // The moves and adds between the ops above (kernels.h imc_ref_copy, _move_rows, _add,
    // _moe_wsum): the engine touches no activation itself. Index arrays (dst_idx, src_idx, pos)
    // are host arrays or, where the rows they index are the table's memory, arrays in it (put
    // there once with upload, for several calls). IMC_ERR_NOMEM (device memory).
    enum imc_status (*copy)(const struct imc_exec *ex, const struct imc_copy_args *a);
    enum imc_status (*move_rows)(const struct imc_exec *ex, float *dst, const int32_t *dst_idx,
                                 const float *src, const int32_t *src_idx, int64_t n, int64_t d);
    enum imc_status (*add)(const struct imc_exec *ex, float *x, const float *y, int64_t n_rows,
                           int64_t n, int64_t ldy);
    enum imc_status (*moe_wsum)(const struct imc_exec *ex, float *y, const float *rows,
                                const int32_t *pos, const float *w, const float *add, int64_t n,
                                int64_t k, int64_t d);
    // *index = imc_find_nonfinite(x, ld, n_rows, n) and, when it is not -1, *value = that value
    // (for the message).
    enum imc_status (*find_nonfinite)(const struct imc_exec *ex, const float *x, int64_t ld,
                                      int64_t n_rows, int64_t n, int64_t *index, float *value);
    // dst[0, bytes) = src[0, bytes): host memory into the table's memory (buf_alloc; on host
    // tables plain memory). For arrays that are not floats (positions).
    enum imc_status (*upload)(const struct imc_exec *ex, void *dst, const void *src, size_t bytes);
    // dst[0, bytes) = src[0, bytes): the table's memory into host memory (statistics partials
    // going home); waits for the ops before it. On host tables plain memory.
    enum imc_status (*download)(const struct imc_exec *ex, void *dst, const void *src,
                                size_t bytes);
    // dst[0, bytes) = 0 in the table's memory, without waiting. On host tables plain memory.
    enum imc_status (*zero)(const struct imc_exec *ex, void *dst, size_t bytes);
    // Deferred finiteness checks, for tables with their own memory (NULL on host tables, whose
    // find_nonfinite answers at once): check_post notes, without waiting, whether x has a
    // non-finite value, as check number id (ascending in program order, from 0 after each
    // poll); check_poll waits and gives the smallest id whose x had one (-1: none) with its first
    // index (find_nonfinite's) and value, and starts a new record.
    enum imc_status (*check_post)(const struct imc_exec *ex, const float *x, int64_t ld,
                                  int64_t n_rows, int64_t n, int64_t id);
    enum imc_status (*check_poll)(const struct imc_exec *ex, int64_t *id, int64_t *index,
                                  float *value);
    // The table's own memory for activations, or NULL entries for host memory (cpu, ref). Its
    // ops address a pointer into a buffer in place and copy any other (host) array in and out,
    // so the engine keeps its activations there from op to op and moves data in and out with
    // move_rows / copy from or to host arrays; host code must not touch the buffers. ctx is the
    // table's state. buf_alloc returns NULL after logging (device memory exhausted).
    void *(*buf_alloc)(void *ctx, size_t bytes);
    void (*buf_free)(void *ctx, void *p); // NULL p is fine
    // The table's state (see "State"), or NULL entries. ctx_new logs its errors.
    enum imc_status (*ctx_new)(void **ctx);
    void (*ctx_free)(void *ctx); // NULL ctx is fine
};

// The production CPU backend (pool, imc's deterministic GEMM, for attention too).
const struct imc_backend *imc_backend_cpu(void);
// The scalar references behind the backend signatures (ignore ex; single-threaded).
const struct imc_backend *imc_backend_ref(void);
// Backend by name ("cpu", "ref"), or NULL.
const struct imc_backend *imc_backend_by_name(const char *name);

#endif // IMC_KERNELS_BACKEND_H
