/*
 * kernels/backend: a small table of the ops the engine calls (STYLE b.1, after ggml's backend
 * interface), so the forward pass is written once and runs on any backend that fills the
 * table. Backends: "cpu" (imc_cpu_*, the production kernels), "ref" (imc_ref_* behind the
 * same signatures: the scalar spec, single-threaded, for tests) and "cuda" (kernels/cuda/cuda.h:
 * the .cu kernels, weights resident in device memory).
 *
 * Invariant: every entry is non-NULL except ctx_new / ctx_free, which are NULL for stateless
 * tables (cpu, ref), and buf_alloc / buf_free / check_post / check_poll / peer_*, NULL for
 * tables on host memory (cpu, ref); the
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

// What every rank of a group tells the others when an exchange between ranks is set up (peer_new;
// a rank whose table has none sends ok 0): whether it can, and whose memory it exchanges, so that
// ranks sharing one device fall back to the host (NCCL refuses two ranks on one GPU).
struct imc_peer_hello {
    int32_t ok;
    char host[64];   // the host's name
    char device[64]; // the device on that host (its PCI bus id; in the emulator, the process)
};

// What a table's exchange between ranks (peer_new) gets from its group: the caller's MPI
// (worker/exchange.c). Borrowed by the exchange it creates, so it must outlive that.
struct imc_peer_boot {
    int n_ranks, rank; // the group's size and this rank in it
    double timeout;    // seconds an exchange may wait for the group before it aborts (0: none)
    const char *group; // the group's name for messages ("expert")
    void *user;        // the callbacks' first argument
    // Every rank's bytes at mine, in rank order, into all [n_ranks][bytes] (collective).
    enum imc_status (*allgather)(void *user, const void *mine, void *all, size_t bytes);
    // bytes of buf from group rank 0 to every rank (collective): NCCL's unique id.
    enum imc_status (*bcast)(void *user, void *buf, size_t bytes);
    // The group's host transport, which only the emulator's NCCL uses as its wire (emulated
    // device memory is host memory; kernels/cuda/emu/cuemu_nccl.h): start sending / receiving
    // bytes to / from a peer (group rank), and wait for every transfer started.
    enum imc_status (*isend)(void *user, int peer, const void *buf, size_t bytes);
    enum imc_status (*irecv)(void *user, int peer, void *buf, size_t bytes);
    enum imc_status (*waitall)(void *user);
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
    // Exchanges of the table's memory between the ranks of a group that never pass through the
    // host (NCCL on the CUDA table), or NULL entries (rows then travel through host memory and
    // MPI). peer_new is collective over the group: the ranks first tell each other whether they
    // can (struct imc_peer_hello through boot->allgather: a rank whose library does not load, or
    // whose table has no peer_new, says no; two ranks on one device cannot), then the exchange is
    // set up; IMC_ERR_UNSUPPORTED on every rank when one cannot (not an error: the caller falls
    // back to the host), IMC_ERR_NCCL (logged) when the setup fails. Free with peer_free after
    // the last exchange (NULL is fine).
    enum imc_status (*peer_new)(void *ctx, const struct imc_peer_boot *boot, void **peer);
    void (*peer_free)(void *peer);
    // All-to-all of floats in the table's memory inside the group (the expert dispatch and
    // combine): this rank sends send_counts[j] floats from send + Σ send_counts[0..j) to rank j
    // and receives recv_counts[j] floats from rank j into recv + Σ recv_counts[0..j); the counts
    // must match across ranks (they come from an MPI exchange of counts). Waits, under
    // boot->timeout, until the data has arrived. IMC_ERR_ARG (logged) for arrays outside the
    // table's memory, IMC_ERR_NCCL (logged, the exchange aborted) on failure or timeout.
    enum imc_status (*peer_alltoallv)(const struct imc_exec *ex, void *peer, const float *send,
                                      const size_t *send_counts, float *recv,
                                      const size_t *recv_counts);
    // n floats of the table's memory to rank `to` of the group / from rank `from` (pipeline
    // stages' hidden rows); each waits until its data has left / arrived, so the two sides must
    // call them in the same order. Errors as peer_alltoallv.
    enum imc_status (*peer_send)(const struct imc_exec *ex, void *peer, const float *buf, size_t n,
                                 int to);
    enum imc_status (*peer_recv)(const struct imc_exec *ex, void *peer, float *buf, size_t n,
                                 int from);
};

// The production CPU backend (pool, imc's deterministic GEMM, for attention too).
const struct imc_backend *imc_backend_cpu(void);
// The scalar references behind the backend signatures (ignore ex; single-threaded).
const struct imc_backend *imc_backend_ref(void);
// Backend by name ("cpu", "ref"), or NULL.
const struct imc_backend *imc_backend_by_name(const char *name);

#endif // IMC_KERNELS_BACKEND_H
