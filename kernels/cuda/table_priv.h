/*
 * kernels/cuda/table_priv: the state of the CUDA op table (kernels/cuda/table.cu), shared by
 * wcache.cu (resident weights) and table_ctx.cu (the context and its buffers). Private to
 * kernels/cuda; included after kernels/cuda/kern_decl.h, so the functions carry the launcher
 * names (imc_cuda_* under nvcc, imc_cuemu_* in the emulator).
 *
 * Ownership: one struct imc_cuda_ctx per engine (backend.h ctx_new / ctx_free). It owns
 *   - the weight cache: a device copy of every weight matrix the ops have seen, keyed by the
 *     weight's host address (the GGUF mapping), uploaded whole on first use in its file type
 *     straight from the mapping (one copy per tensor, no host staging), freed by ctx_free;
 *   - the cuBLAS handle (NULL in the emulator, or when cuBLAS cannot start: tiled gemm.cu);
 *   - scratch: per slot one device buffer, grown to the largest request and kept, and one host
 *     staging buffer for packing strided rows. Host arrays handed to an op live there for it;
 *   - the table's buffers (backend.h buf_alloc): device memory the engine's activations live in
 *     from op to op; an op addresses a pointer inside one in place. In the emulator they are
 *     host pages closed to the host between ops (ctx_guard), so a host access of activations
 *     the engine should have left to the ops crashes the test that makes it.
 */
#ifndef IMC_KERNELS_CUDA_TABLE_PRIV_H
#define IMC_KERNELS_CUDA_TABLE_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

struct imc_cuda_went {
    const void *host; // key; NULL: empty slot
    void *dev;        // the device copy
    size_t bytes;
};

struct imc_cuda_wcache {
    struct imc_cuda_went *e; // open addressing, cap a power of two (0: none yet)
    size_t cap, n;
    size_t bytes; // resident bytes
};

// The device scratch slots of one op.
enum imc_cuda_slot { CT_X, CT_Y, CT_W, CT_A, CT_B, CT_C, CT_D, CT_E, CT_NSLOT };

// The table's buffers (buf_alloc): the engine's arena blocks and vectors, and the blocks of the
// statistics collectors' partials (worker/stats_collect.c: doubling blocks, one set per chunk
// slot, ~15 per slot at DeepSeek-V3's size).
#define IMC_CUDA_MAX_BUFS 256

struct imc_cuda_buf {
    char *p; // NULL: free entry
    size_t bytes;
};

struct imc_cuda_ctx {
    struct imc_cuda_wcache wc;
    struct imc_cuda_buf buf[IMC_CUDA_MAX_BUFS]; // the table's buffers (buf_alloc)
    int guard_depth;                            // ops in progress (ctx_guard)
    struct imc_cuda_traffic traffic;            // the ops' copies (kern_decl.h ctx_traffic)
    struct imc_cuda_check_rec *check_rec;       // deferred checks' record (device), or NULL
    void *blas; // cuBLAS handle or NULL
    void *dev[CT_NSLOT];
    size_t dev_cap[CT_NSLOT];
    void *host; // staging, host_cap bytes
    size_t host_cap;
    size_t buf_bytes;         // the table's buffers' bytes now
    struct imc_cuda_mem peak; // device memory at its most (ctx_mem's peak fields; ctx_mem_note)
    int mmv_tok;              // matmuls of up to mmv_tok tokens run mmv (kern_decl.h)
    int mmq_tok;              // bf16 batches of up to mmq_tok tokens run mmq (kern_decl.h)
    // sqaccs on the table's memory not launched yet (ctx_sq_flush): consecutive statistics
    // calls (an MoE layer's experts, MLA's heads) go in one sqacc_group launch, not one each
    struct imc_sqacc_job sq[IMC_CUDA_SQACC_GROUP_MAX];
    int sq_n;
    int64_t sq_in; // their columns
};

// Notes the device memory c holds now (weights, buffers, scratch) in its peak; called after
// every allocation of c's.
IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_mem_note)(struct imc_cuda_ctx *c);

// The device copy of the weight at host address w: n_rows rows of n_in values of type, uploaded
// on first use (again when a later use needs more rows); an interleaved type is held as rows
// (types.h imc_type_unweave: plain rows, or its row form). On exhausted device memory: logged
// with the shape, type and bytes needed, IMC_ERR_NOMEM; rows that are not whole groups of an
// interleaved type: IMC_ERR_ARG (logged).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(wcache_get)(struct imc_cuda_wcache *c, const void *w,
                                                        enum imc_type type, int64_t n_rows,
                                                        int64_t n_in, const void **dev);
IMC_CUDA_EXTERN void IMC_CUDA_FN(wcache_free)(struct imc_cuda_wcache *c);

// Launches the queued sqaccs of c (sq: one sqacc_group, in the order queued) and empties the
// queue; on failure their sums are set to NaN (as a failed sqacc's), so the collector's check
// at its sync stops the run. Every op of the table but sqacc, buf_free and ctx_free call it
// first: the rows and sums it reads stay as they were queued.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(ctx_sq_flush)(struct imc_cuda_ctx *c);
// The context (backend.h ctx_new / ctx_free).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(ctx_new)(void **ctx);
IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_free)(void *ctx);
// Slot's device buffer with at least bytes (grown; old contents lost), or NULL after logging
// what was needed (what: "activations of <op>").
IMC_CUDA_EXTERN void *IMC_CUDA_FN(ctx_dev)(struct imc_cuda_ctx *c, enum imc_cuda_slot slot,
                                           size_t bytes, const char *what);
// The table's buffers (backend.h buf_alloc / buf_free; ctx is the table's context): bytes of
// device memory, or NULL after logging what was needed.
IMC_CUDA_EXTERN void *IMC_CUDA_FN(ctx_buf_alloc)(void *ctx, size_t bytes);
IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_buf_free)(void *ctx, void *p);
// Whether [p, p + bytes) lies in one of c's buffers (then an op uses p in place).
IMC_CUDA_EXTERN bool IMC_CUDA_FN(ctx_buf_has)(const struct imc_cuda_ctx *c, const void *p,
                                              size_t bytes);
// Brackets an op (nesting counted): in the emulator the buffers are open to the host while an op
// runs and closed (PROT_NONE) otherwise; nothing under nvcc.
IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_guard)(struct imc_cuda_ctx *c, bool open);
// The host staging buffer with at least bytes, or NULL (logged).
IMC_CUDA_EXTERN void *IMC_CUDA_FN(ctx_host)(struct imc_cuda_ctx *c, size_t bytes);

// ---- peer.cu: exchanges of device memory between ranks (backend.h peer_*; NCCL) ----------------
struct imc_peer_boot;
// backend.h peer_new / peer_free (ctx unused: NCCL's communicator is per device and group).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(peer_new)(void *ctx, const struct imc_peer_boot *b,
                                                      void **out);
IMC_CUDA_EXTERN void IMC_CUDA_FN(peer_free)(void *peer);
// The number of ranks of peer's group.
IMC_CUDA_EXTERN int IMC_CUDA_FN(peer_size)(const void *peer);
// backend.h peer_send (send true) / peer_recv of n floats at buf (device) with rank `rank`.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(peer_p2p)(void *peer, void *stream, bool send,
                                                      float *buf, size_t n, int rank);
// backend.h peer_alltoallv on stream (NULL: the default stream) with send and recv on the device.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(peer_alltoallv)(void *peer, void *stream,
                                                            const float *send,
                                                            const size_t *send_counts, float *recv,
                                                            const size_t *recv_counts);

#endif // IMC_KERNELS_CUDA_TABLE_PRIV_H
