/*
 * kernels/cuda/kern_decl: the prototypes of every launcher of kernels/cuda/<op>.cu, written with
 * IMC_CUDA_FN (kernels/cuda/launch.h). Deliberately without include guards: a test includes it
 * once with IMC_CUDA_FN(n) defined as imc_cuemu_##n and once as imc_cuda_##n, and calls either.
 * Pointers are device pointers; stream is an opaque cudaStream_t (NULL = default stream).
 * One section per .cu file.
 */
#include "kernels/cuda/launch.h"
#include "kernels/cuda/policy.h"
#include <stddef.h>
#include <stdint.h>

struct imc_rope; // kernels/kernels.h

#include "core/status.h"

// ---- elementwise.cu: the twins of kernels/ref/elementwise.c (kernels/kernels.h) ---------------
// y[r] = x[r] / sqrt(mean(x[r]²) + eps) · w (w may be NULL), n_rows rows of n; y may equal x.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(rmsnorm)(void *stream, float *y, const float *x,
                                                     const float *w, int64_t n_rows, int64_t n,
                                                     float eps);
// In place: each of n_rows rows of n becomes exp(x - max) / Σ exp(x - max); all -inf: zeros.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(softmax)(void *stream, float *x, int64_t n_rows,
                                                     int64_t n);
// out = silu(gate) · up over n_rows strided rows of n; out may alias gate or up.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(swiglu)(void *stream, float *out, int64_t ldo,
                                                    const float *gate, int64_t ldg, const float *up,
                                                    int64_t ldu, int64_t n_rows, int64_t n);
// sum2[i] += Σ_r x[r][i]² in double, rows in order; *count += n_rows (count on the device, or
// NULL: not counted).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(sqacc)(void *stream, double *sum2, int64_t *count,
                                                   const float *x, int64_t ldx, int64_t n_rows,
                                                   int64_t n_in);
// One sqacc of sqacc_group (an MoE layer's experts, each its own rows and sums): sum2[i] += Σ_r
// x[r][i]² over n_rows rows of x at stride ldx, *count += n_rows (count NULL: not counted).
#ifndef IMC_CUDA_SQACC_JOB_DEFINED
#define IMC_CUDA_SQACC_JOB_DEFINED
struct imc_sqacc_job {
    double *sum2;
    int64_t *count;
    const float *x;
    int64_t ldx;
    int64_t n_rows;
};
#define IMC_CUDA_SQACC_GROUP_MAX 96 // jobs in one launch's parameters (under 4 KB)
#endif
// The n jobs (a host array; their pointers the device's), each job's sums and count the bits
// sqacc gives it alone, IMC_CUDA_SQACC_GROUP_MAX jobs a launch (by value in its parameters: no
// copy), a grid row each.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(sqacc_group)(void *stream,
                                                         const struct imc_sqacc_job *jobs,
                                                         int64_t n, int64_t n_in);

// ---- rope.cu: the twin of imc_ref_rope (p on the host; x and pos on the device) -------------
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(rope)(void *stream, const struct imc_rope *p, float *x,
                                                  int64_t n_tok, int64_t n_head, int64_t ld_tok,
                                                  int64_t ld_head, const int32_t *pos);

// ---- nll.cu: the twin of imc_ref_nll_rows (kernels/kernels.h), every pointer on the device ----
struct imc_nll_row; // kernels/kernels.h
// out[r] = the scores of logits row r (n_rows contiguous rows of n_vocab) against targets[r] and,
// base not NULL, the encoded base row base + r·ld_base. One block per row.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(nll_rows)(void *stream, struct imc_nll_row *out,
                                                      const float *logits, int64_t n_rows,
                                                      int64_t n_vocab, const int32_t *targets,
                                                      const uint16_t *base, int64_t ld_base);

// ---- rows.cu: the twins of kernels/ref/rows.c and imc_find_nonfinite ----
struct imc_copy_args; // kernels/kernels.h
// dst/src in a on the device (a itself on the host): imc_ref_copy.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(copy)(void *stream, const struct imc_copy_args *a);
// dst, src and the index arrays (either may be NULL) on the device: imc_ref_move_rows.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(move_rows)(void *stream, float *dst,
                                                       const int32_t *dst_idx, const float *src,
                                                       const int32_t *src_idx, int64_t n,
                                                       int64_t d);
// x[r][i] += y[r·ldy + i] (device; ldy 0: one row to every row): imc_ref_add.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(add)(void *stream, float *x, const float *y,
                                                 int64_t n_rows, int64_t n, int64_t ldy);
// every pointer on the device: imc_ref_moe_wsum.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(moe_wsum)(void *stream, float *y, const float *rows,
                                                      const int32_t *pos, const float *w,
                                                      const float *add, int64_t n, int64_t k,
                                                      int64_t d);
// *index (device int64) = imc_find_nonfinite(x, ld, n_rows, n): the first flat index r*n + i
// (row-major order) of a non-finite value, or -1.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(find_nonfinite)(void *stream, const float *x,
                                                            int64_t ld, int64_t n_rows, int64_t n,
                                                            int64_t *index);
// The record of deferred checks (device memory, set to all ones before the first): the
// smallest key id << 40 | flat index over the checks posted, and that element's value.
#ifndef IMC_CUDA_CHECK_REC_DEFINED // this header has no guard; the struct needs one
#define IMC_CUDA_CHECK_REC_DEFINED
#define IMC_CUDA_CHECK_INDEX_BITS 40
#define IMC_CUDA_CHECK_MAX_ID ((int64_t)1 << 23)
struct imc_cuda_check_rec {
    unsigned long long key; // all ones: nothing found
    float value;
    float pad_;
};
#endif
// Adds check id (0 <= id < IMC_CUDA_CHECK_MAX_ID) of x to rec without waiting: the record keeps
// the smallest key of a non-finite element. IMC_ERR_ARG for an id or size beyond the key.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(check_post)(void *stream, const float *x, int64_t ld,
                                                        int64_t n_rows, int64_t n, int64_t id,
                                                        struct imc_cuda_check_rec *rec);

// ---- mem.cu: device memory and the device count ----------------------------------------------
// Allocates bytes of device memory into *p (the emulator fills it with 0xFF).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(dev_alloc)(size_t bytes, void **p);
// Frees p (NULL is fine).
IMC_CUDA_EXTERN void IMC_CUDA_FN(dev_free)(void *p);
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(copy_to_dev)(void *stream, void *dst, const void *src,
                                                         size_t bytes);
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(copy_to_host)(void *stream, void *dst, const void *src,
                                                          size_t bytes);
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(dev_memset)(void *stream, void *p, int v, size_t bytes);
// Waits for the stream's work.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(sync)(void *stream);
// *n = the number of visible devices (0 without a driver or device; the emulator has 1).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(device_count)(int *n);
// The current device's free and total memory (cudaMemGetInfo: every process's allocations and
// CUDA contexts count).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(mem_info)(size_t *free, size_t *total);
// Makes device dev (0 .. count - 1) the calling host thread's device for later calls.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(set_device)(int dev);
// buf[0..len) = the PCI bus id of device dev ("00000000:17:00.0"; the emulator's is all zeros).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(pci_bus_id)(int dev, char *buf, int len);

// ---- attention.cu, moe_route.cu: the twins of imc_ref_attention and imc_ref_moe_route ---------
struct imc_attn_args;  // kernels/kernels.h
struct imc_route_cfg;  // kernels/kernels.h
// Causal attention; a on the host, every pointer in it on the device. IMC_ERR_ARG for heads
// that do not divide evenly, IMC_ERR_UNSUPPORTED for dk/dv/dv2 whose tiles exceed shared memory.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(attention)(void *stream,
                                                       const struct imc_attn_args *a);
// MoE routing of n_tok tokens; c on the host with c->bias (or NULL) on the device, logits
// [n_tok][n_expert], ids and weights [n_tok][n_used] on the device. IMC_ERR_ARG for a bad config.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(moe_route)(void *stream, const struct imc_route_cfg *c,
                                                       const float *logits, int64_t n_tok,
                                                       int32_t *ids, float *weights);

// ---- dequant.cu: weight rows of a GGUF type -> f32 / f16 / bf16 ----------------------------
#ifdef __cplusplus // types.h is C: its function imc_type_traits shadows the struct's name in C++
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
extern "C" {
#endif
#include "types/types.h"
#ifdef __cplusplus
}
#pragma GCC diagnostic pop
#endif
// Whether the dequantize, get_rows and mmv launchers handle weights of type.
IMC_CUDA_EXTERN bool IMC_CUDA_FN(supports_type)(enum imc_type type);
// Decodes rows [r0, r0 + nr) of the weight matrix w (device; rows of n_per_row elements of type,
// row 0 at w) into dst (device; nr x n_per_row elements of dst_type: F32, bit-identical to
// imc_type_decode, or F16 / BF16, that value rounded to nearest even). Returns
// IMC_ERR_UNSUPPORTED for a type without a kernel (supports_type) or another dst_type,
// IMC_ERR_ARG when n_per_row is not a positive multiple of the block, IMC_ERR_CUDA.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(dequantize)(void *stream, enum imc_type type,
                                                        const void *w, int64_t n_per_row,
                                                        int64_t r0, int64_t nr,
                                                        enum imc_type dst_type, void *dst);
// Row r of dst (device, n_ids x n_per_row f32) = row ids[r] (device int32) of the n_rows x
// n_per_row matrix w (device), bit-identical to imc_type_decode; an id outside [0, n_rows)
// gives a row of NaN (callers check token ids on the host). Errors as dequantize.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(get_rows)(void *stream, enum imc_type type,
                                                      const void *w, int64_t n_rows,
                                                      int64_t n_per_row, const int32_t *ids,
                                                      int64_t n_ids, float *dst);

// ---- mmv.cu: small-batch matmul straight on the quantized weight rows ------------------------
// y[t][o] = Σ_i W[o][i]·x[t][i] for t < n_tok (1..IMC_CUDA_MMV_MAX_TOK), o < n_out: W (device)
// n_out x n_in of type, x (device) n_tok x n_in f32, y (device) n_tok x n_out f32. f32
// accumulation in a fixed order (the same bits on every run and launch). Returns
// IMC_ERR_UNSUPPORTED (type), IMC_ERR_ARG (n_in not a positive multiple of the block, n_tok out
// of range), IMC_ERR_CUDA.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(mmv)(void *stream, enum imc_type type, const void *w,
                                                 int64_t n_out, int64_t n_in, const float *x,
                                                 int n_tok, float *y);

// One product of mmv_group: weights w (device, n_out rows), n_tok <= IMC_CUDA_MMV_MAX_TOK tokens
// at x, outputs at y (device; the group's row strides).
#ifndef IMC_CUDA_MMV_JOB_DEFINED
#define IMC_CUDA_MMV_JOB_DEFINED
struct imc_cuda_mmv_job {
    const void *w;
    const float *x;
    float *y;
    int64_t n_tok;
};
#define IMC_CUDA_MMV_GROUP_MAX 120
#endif
// jobs[0 .. n_jobs) (a host array), all of type and n_out x n_in, x rows at stride ldx, y rows at
// stride ldy, in one launch per IMC_CUDA_MMV_GROUP_MAX jobs (they travel in the kernel's
// parameters, under CUDA's 4 KB: no copy): each y[t·ldy + o] the bits mmv gives it alone.
// IMC_ERR_UNSUPPORTED (type), IMC_ERR_ARG (shape), IMC_ERR_CUDA.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(mmv_group)(void *stream, enum imc_type type,
                                                       const struct imc_cuda_mmv_job *jobs,
                                                       int n_jobs, int64_t n_out, int64_t n_in,
                                                       int64_t ldx, int64_t ldy);

// ---- mmq.cu: batch matmul straight on the quantized weight rows, on the tensor cores ----------
// The jobs of mmv_group (any number of tokens from 1 to 65535·64 each), each y[t·ldy + o] =
// Σ_i bf16(W[o][i])·bf16(x[t][i]) with f32 sums (wmma bf16 16 x 16 x 16): the arithmetic of the
// table's bf16 batch path (dequantize to bf16 + GEMM), without the dequantized copy. In the
// emulator each output is one fmaf chain over ascending i from +0 (gemm_bf16's bits on the
// dequantized rows); on a device, the tensor cores' order, the same on every run. One launch per
// IMC_CUDA_MMV_GROUP_MAX jobs. IMC_ERR_UNSUPPORTED (type), IMC_ERR_ARG (shape), IMC_ERR_CUDA.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(mmq_group)(void *stream, enum imc_type type,
                                                       const struct imc_cuda_mmv_job *jobs,
                                                       int n_jobs, int64_t n_out, int64_t n_in,
                                                       int64_t ldx, int64_t ldy);

// The op table's lines between mmv, mmq and the batch path (kernels/cuda/policy.h), as a table
// state ctx has them (the environment's, read by ctx_new).
IMC_CUDA_EXTERN int IMC_CUDA_FN(ctx_mmv_tokens)(const void *ctx);
IMC_CUDA_EXTERN int IMC_CUDA_FN(ctx_mmq_tokens)(const void *ctx);

// ---- gemm.cu, blas.cu: y = W·xᵀ on an f32 or bf16 weight tile (the batch matmul) -------------
// y[t·ldy + o] = Σ_i w[o·n_in + i]·x[t·n_in + i] for o < n_out, t < n_tok (all device, f32):
// the tiled shared-memory kernel, one fmaf chain per output in ascending i from +0 (the bits of
// imc_cpu_matmul's f32 path). IMC_ERR_ARG for a bad shape, IMC_ERR_CUDA.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(gemm)(void *stream, const float *w, int64_t n_out,
                                                  int64_t n_in, const float *x, int64_t n_tok,
                                                  float *y, int64_t ldy);
// The same on bf16 W and x (each element widened to f32, exactly; f32 accumulation): gemm's bits
// on the widened inputs.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(gemm_bf16)(void *stream, const uint16_t *w,
                                                       int64_t n_out, int64_t n_in,
                                                       const uint16_t *x, int64_t n_tok, float *y,
                                                       int64_t ldy);
// A cuBLAS handle into *handle; IMC_ERR_UNSUPPORTED in the emulator (no cuBLAS).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(blas_create)(void **handle);
IMC_CUDA_EXTERN void IMC_CUDA_FN(blas_free)(void *handle); // NULL is fine
// The same product as gemm through cublasGemmEx (f32 in, f32 accumulation); IMC_ERR_UNSUPPORTED
// for dimensions beyond int (use gemm), IMC_ERR_CUDA (logged).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(blas_gemm)(void *handle, void *stream, const float *w,
                                                       int64_t n_out, int64_t n_in, const float *x,
                                                       int64_t n_tok, float *y, int64_t ldy);
// The same on bf16 W and x (cublasGemmEx, CUDA_R_16BF inputs, f32 accumulation and output: the
// tensor cores' bf16 path).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(blas_gemm_bf16)(void *handle, void *stream,
                                                            const uint16_t *w, int64_t n_out,
                                                            int64_t n_in, const uint16_t *x,
                                                            int64_t n_tok, float *y, int64_t ldy);

// ---- table.cu: the op table (kernels/backend.h, named "cuda") on these launchers -------------
struct imc_backend; // kernels/backend.h
// Static and immutable; its state comes from ctx_new (see kernels/cuda/table.cu).
IMC_CUDA_EXTERN const struct imc_backend *IMC_CUDA_FN(backend)(void);
// The weights resident in a table state ctx (from the table's ctx_new) whose host address lies in
// [lo, hi) (lo = hi = NULL: all): their number, and their device bytes into *bytes (may be
// NULL). For the residency checks of --experts-on cpu (tests/cuda/test_engine_emu).
IMC_CUDA_EXTERN size_t IMC_CUDA_FN(ctx_resident)(const void *ctx, const void *lo, const void *hi,
                                                 size_t *bytes);
// What the ops of a table state ctx copied between host and device since ctx_new (weights'
// uploads not counted: ctx_resident): bytes and copies each way; and what its exchanges moved
// between ranks. For the tests that check that
// activations stay on the device (tests/cuda/test_engine_emu).
#ifndef IMC_CUDA_TRAFFIC_DEFINED // this header has no guard (see above); the struct needs one
#define IMC_CUDA_TRAFFIC_DEFINED
struct imc_cuda_traffic {
    size_t up_bytes, down_bytes; // host -> device, device -> host
    size_t n_up, n_down;
    // the exchanges between ranks without the host (backend.h peer_alltoallv, peer_send,
    // peer_recv): calls, and bytes sent to and received from the group (this rank included)
    size_t n_peer, peer_out_bytes, peer_in_bytes;
};
#endif
IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_traffic)(const void *ctx, struct imc_cuda_traffic *t);
// The device memory of a table state ctx: what it holds now, and its most since ctx_new (the sum
// of the three at the moment of the peak, and that sum's parts then). The CUDA context and
// cuBLAS's workspace come on top. ctx_free logs the peak (INFO, one line) and the copies (DEBUG).
#ifndef IMC_CUDA_MEM_DEFINED
#define IMC_CUDA_MEM_DEFINED
struct imc_cuda_mem {
    size_t weights, n_weights; // resident weights now (bytes, tensors)
    size_t buffers;            // the table's buffers now (activations, statistics, hidden rows)
    size_t scratch;            // the ops' scratch now (operand slots, weight tile, check record)
    size_t peak, peak_weights, peak_buffers, peak_scratch;
};
#endif
IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_mem)(const void *ctx, struct imc_cuda_mem *m);
