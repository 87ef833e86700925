/*
 * kernels/cuda/table.cu: the CUDA op table (kernels/backend.h, named "cuda"): the engine's ops on
 * the kernels of kernels/cuda/<op>.cu. Written once against the launcher names (launch.h): under
 * nvcc it is imc_cuda_backend(), the production table behind --device cuda; in the emulator it
 * is imc_cuemu_backend(), the table the cuda tests run the engine on (cuda.engine_emu).
 *
 * State: the ops find their context (kernels/cuda/table_priv.h: resident weights, cuBLAS,
 * scratch) through imc_exec_backend_ctx(ex); the engine owns it (ctx_new / ctx_free).
 *
 * Memory: weights resident (wcache: uploaded whole on first use, straight from the mapping).
 * Activations live in the table's buffers (backend.h buf_alloc: the engine's scratch arena is
 * device memory), which every op addresses in place. Any other array an op is handed is a host
 * array (norm weights, positions, routing ids, index arrays, the caller's hidden rows and
 * logits, statistics sums): copied host -> device for the op and, if written, back. Strided
 * host arrays travel as their whole extent (first to last element, gaps included, so writing
 * the extent back leaves the gaps as they were); an array inside the extent of one already
 * copied for the op is addressed in that copy, so host aliasing (out = gate, v inside k) holds
 * on the device. Partial overlaps of an output with another array are not supported (no engine
 * call has one). Every op is bracketed by ctx_guard: in the emulator the table's buffers are
 * closed to the host between ops, so a host access the engine should have left to an op
 * crashes the test that makes it. The copies are counted (kern_decl.h ctx_traffic).
 *
 * Ops:
 *   matmul        <= mmv_tok tokens (kern_decl.h IMC_CUDA_MMV_TOKENS, 16 unless the environment
 *                 says otherwise): mmv on the resident quantized rows. Under --matmul q8 on
 *                 weights other than f32, <= mmq_tok tokens (IMC_CUDA_MMQ_TOKENS, 256): mmq,
 *                 the bf16 batch's arithmetic on the tensor cores straight from those rows. More:
 *                 tiles of rows dequantized on the device (dequant.cu, <= 64 MiB a tile) then
 *                 GEMM: cuBLAS (blas.cu) under nvcc, the tiled kernel (gemm.cu) in the emulator
 *                 or when cuBLAS is missing; f32 tiles and activations under --matmul f32 (f32
 *                 weights skip the dequantization), bf16 ones under --matmul q8 (the exec's
 *                 mode; f32 weights stay f32): batch_mm.
 *   matmul_group  the matmuls of up to mmv_tok tokens with one type, shape and row
 *                 strides, their rows in the table's memory, in one mmv_group launch (an MoE
 *                 layer's experts, MLA's heads), and likewise those that take mmq in one
 *                 mmq_group launch; the others through matmul.
 *   get_rows      the rows of ids gathered on the host from the mapping (n rows: the embedding
 *                 table is never resident), uploaded and dequantized to f32 on the device.
 *   rmsnorm, rope, softmax, swiglu, attention, moe_route, sqacc, nll_rows, copy, move_rows,
 *                 add, moe_wsum, find_nonfinite: the launcher of that name (find_nonfinite
 *                 brings back the index and the one value it names). move_rows gathers or
 *                 scatters host rows by host indices on the host, so n rows cross the bus, and
 *                 moves host rows to host rows without the device. sqacc adds into sum2
 *                 in place when it is the table's memory (the collector's chunk sums,
 *                 worker/stats_collect_dev.c), else uploads it and copies it back; a host
 *                 count is added to on the host. In place on rows in the table's memory it
 *                 is queued (sq_queue): consecutive calls (an MoE layer's experts, MLA's
 *                 heads) go in one sqacc_group launch, made before any other op of the table
 *                 (the guard), buf_free and ctx_free, so what it reads is as it was queued.
 *                 nll_rows reads the logits rows in place (the engine's kept logits) or
 *                 uploads host ones, uploads the targets and base rows, brings back one
 *                 imc_nll_row per row.
 *   upload        one copy into the table's memory (positions, a chunk's earlier sums);
 *   download      one copy out of it (the statistics' chunk sums, a block at a time);
 *   zero          a memset in it, not waiting.
 *   check_post    the launcher into the context's record (one per context), no copy back;
 *   check_poll    brings the record back (16 bytes) and resets it.
 * Ops without a status (rmsnorm, rope, softmax, swiglu, sqacc) fill their output with NaN on
 * failure (logged), so the engine's finiteness check stops the pass; none crashes.
 * Device memory exhausted: the error names the weight's type and shape (the engine adds the
 * tensor's name and layer) or the op's activations, and the bytes needed; the log prefix names
 * the rank.
 *
 * Cost, and what is left: a forward pass moves the hidden rows in and out once per engine call
 * (the head's logits stay in the table's memory and nll_rows scores them there: the engine's
 * kept logits, worker/engine_head.c), and small host arrays: the routing ids (down) and, once
 * per MoE layer, the dispatch's gather / scatter orders and the weighted sum's positions (up:
 * index arrays in the table's memory, which move_rows and moe_wsum read in place; the routing
 * weights never leave it); the engine's finiteness checks are posted (check_post) and answered
 * once per layer;
 * the statistics' sums come home once per engine call (one download per block). Left: every op
 * runs on the default stream and the routing ids wait for a copy back. The 30 interleaved _rN
 * types go up re-laid as rows (types.h imc_type_unweave; wcache.cu, gather_rows): 23 as the
 * plain rows whose decoders give their values, 7 as their own row forms, which device decoders
 * of their own read (qrowform.cuh).
 */
#include "kernels/cuda/cuda_common.cuh"

#include <math.h>
#include <string.h>

#include "kernels/cuda/kern_decl.h"
#include "kernels/cuda/table_priv.h"

extern "C" { // after kern_decl.h, which brings types/types.h in C++ with its pragmas
#include "kernels/backend.h"
}

namespace
{

constexpr size_t TILE_BYTES = IMC_CUDA_TILE_BYTES; // the batch matmul's weight tile (policy.h)
constexpr int MAX_REG = 8;                      // arrays of one op

// The arrays of one op on the device: host extent [host, host + bytes) at dev.
struct reg {
    const char *host;
    size_t bytes;
    char *dev;
    bool out; // copied back after the kernel
};
struct opmap {
    struct imc_cuda_ctx *c;
    const char *what; // "activations of <op>" for messages
    struct reg r[MAX_REG];
    int n;
};

// The copies of the ops, counted (ctx_traffic).
enum imc_status up(struct imc_cuda_ctx *c, void *d, const void *h, size_t bytes)
{
    c->traffic.up_bytes += bytes;
    c->traffic.n_up++;
    return IMC_CUDA_FN(copy_to_dev)(NULL, d, h, bytes);
}

enum imc_status down(struct imc_cuda_ctx *c, void *h, const void *d, size_t bytes)
{
    c->traffic.down_bytes += bytes;
    c->traffic.n_down++;
    return IMC_CUDA_FN(copy_to_host)(NULL, h, d, bytes);
}

struct imc_cuda_ctx *ctx_of(const struct imc_exec *ex, const char *op)
{
    struct imc_cuda_ctx *c = (struct imc_cuda_ctx *)imc_exec_backend_ctx(ex);
    if (!c) {
        IMC_LOG_ERR("cuda %s: the op table's context is not attached to the exec", op);
    }
    return c;
}

// Bytes of the extent of n_rows rows of n floats (or of elem bytes) at stride ld elements.
size_t extent(int64_t n_rows, int64_t ld, int64_t n, size_t elem)
{
    return n_rows <= 0 || n <= 0 ? 0 : (size_t)((n_rows - 1) * ld + n) * elem;
}

// The device address of host extent [h, h + bytes): inside an array already mapped, or copied
// into slot (uploaded when upload). NULL on failure (logged). out: copied back by map_back.
void *map(struct opmap *m, enum imc_cuda_slot slot, const void *h, size_t bytes, bool upload,
          bool out)
{
    const char *p = (const char *)h;
    if (IMC_CUDA_FN(ctx_buf_has)(m->c, h, bytes)) {
        return (void *)h; // the table's own memory: in place
    }
    for (int i = 0; i < m->n; i++) {
        if (p >= m->r[i].host && p + bytes <= m->r[i].host + m->r[i].bytes) {
            m->r[i].out = m->r[i].out || out;
            return m->r[i].dev + (p - m->r[i].host);
        }
    }
    char *d = (char *)IMC_CUDA_FN(ctx_dev)(m->c, slot, bytes, m->what);
    if (!d || (upload && bytes && up(m->c, d, h, bytes) != IMC_OK)) {
        return NULL;
    }
    m->r[m->n++] = (struct reg){p, bytes, d, out};
    return d;
}

// Copies every output array back to the host.
enum imc_status map_back(const struct opmap *m)
{
    for (int i = 0; i < m->n; i++) {
        if (m->r[i].out && m->r[i].bytes) {
            IMC_TRY(
                down(m->c, (void *)m->r[i].host, m->r[i].dev, m->r[i].bytes));
        }
    }
    return IMC_OK;
}

// Fills n_rows rows of n at stride ld with NaN: on the host, or on the device where x is the
// table's memory (all-ones bytes are a NaN).
void poison(const struct imc_exec *ex, float *x, int64_t ld, int64_t n_rows, int64_t n)
{
    const struct imc_cuda_ctx *c = (const struct imc_cuda_ctx *)imc_exec_backend_ctx(ex);
    const bool own = c && IMC_CUDA_FN(ctx_buf_has)(c, x, extent(n_rows, ld, n, sizeof(float)));
    for (int64_t r = 0; r < n_rows; r++) {
        if (own) {
            (void)IMC_CUDA_FN(dev_memset)(NULL, x + r * ld, 0xFF, (size_t)n * sizeof(float));
            continue;
        }
        for (int64_t i = 0; i < n; i++) {
            x[r * ld + i] = NAN;
        }
    }
}

// Weights of the interleaved types go to the device as rows (wcache.cu; get_rows re-lays the
// groups it reads): the plain rows of imc_type_unweaved where the type has a plain form, which
// the plain decoders then read with the interleaved decoders' values, else the type's row form,
// which its own decoder reads (qrowform.cuh).
bool t_supports(enum imc_op op, enum imc_type t)
{
    return op != IMC_OP_MATMUL && op != IMC_OP_GET_ROWS
               ? true
               : IMC_CUDA_FN(supports_type)(imc_type_unweaved(t));
}

// Strided device rows: dst [n_tok][n] contiguous = src rows at stride ld (or the reverse).
enum imc_status dev_rows(float *dst, int64_t ldd, const float *src, int64_t lds, int64_t n_tok,
                         int64_t n)
{
    const struct imc_copy_args a = {dst, ldd, 0, src, lds, 0, n_tok, 1, n};
    return IMC_CUDA_FN(copy)(NULL, &a);
}

// n_tok rows of n floats at stride ld to contiguous device rows: x itself where it is the
// table's memory and contiguous, else in slot (from the table's memory by a device copy, from
// the host by an upload).
const float *rows_up(struct imc_cuda_ctx *c, enum imc_cuda_slot slot, const float *x, int64_t ld,
                     int64_t n_tok, int64_t n, const char *what)
{
    const size_t bytes = (size_t)(n_tok * n) * sizeof(float);
    const bool own = IMC_CUDA_FN(ctx_buf_has)(c, x, extent(n_tok, ld, n, sizeof(float)));
    if (own && (ld == n || n_tok == 1)) {
        return x;
    }
    float *d = (float *)IMC_CUDA_FN(ctx_dev)(c, slot, bytes, what);
    if (d && own) {
        return dev_rows(d, n, x, ld, n_tok, n) == IMC_OK ? d : NULL;
    }
    const float *src = x;
    if (d && ld != n && n_tok > 1) {
        float *h = (float *)IMC_CUDA_FN(ctx_host)(c, bytes);
        if (!h) {
            return NULL;
        }
        for (int64_t t = 0; t < n_tok; t++) {
            memcpy(h + t * n, x + t * ld, (size_t)n * sizeof(float));
        }
        src = h;
    }
    return d && up(c, d, src, bytes) == IMC_OK ? d : NULL;
}

// Contiguous device rows d to n_tok rows of n floats at stride ld: nothing where d is y, a
// device copy into the table's memory, else a download.
enum imc_status rows_down(struct imc_cuda_ctx *c, float *y, int64_t ld, const float *d,
                          int64_t n_tok, int64_t n)
{
    const size_t bytes = (size_t)(n_tok * n) * sizeof(float);
    if (d == y) {
        return IMC_OK;
    }
    if (IMC_CUDA_FN(ctx_buf_has)(c, y, extent(n_tok, ld, n, sizeof(float)))) {
        return dev_rows(y, ld, d, n, n_tok, n);
    }
    if (ld == n || n_tok == 1) {
        return down(c, y, d, bytes);
    }
    float *h = (float *)IMC_CUDA_FN(ctx_host)(c, bytes);
    if (!h) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(down(c, h, d, bytes));
    for (int64_t t = 0; t < n_tok; t++) {
        memcpy(y + t * ld, h + t * n, (size_t)n * sizeof(float));
    }
    return IMC_OK;
}

// The batch matmul (more than c->mmv_tok tokens) of device weights wd: tiles of
// TILE_BYTES dequantized on the device and multiplied by cuBLAS (the tiled kernel where cuBLAS
// cannot start, and in the emulator). f32 (--matmul f32, and f32 weights always, as on the
// cpu): f32 tiles and activations, the product's only rounding its f32 accumulation. bf16
// (--matmul q8, the commands' default, on weights of any other type): the activations rounded
// to bf16 once (slot CT_A) and bf16 tiles, the tensor cores' input; the products are exact, the
// accumulation f32, so the error is that of the two roundings to bf16 (each at most 2^-8
// relative) plus the f32 sum's.
enum imc_status batch_mm(struct imc_cuda_ctx *c, enum imc_type type, const void *wd, int64_t n_out,
                         int64_t n_in, const float *xd, int64_t n_tok, float *yd, bool bf16)
{
    const size_t es = bf16 ? 2 : 4; // bytes of a tile element
    int64_t rows = (int64_t)(TILE_BYTES / ((size_t)n_in * es));
    rows = rows < 1 ? 1 : rows > n_out ? n_out : rows;
    void *tile = NULL, *xb = NULL;
    if (type != IMC_TYPE_F32 || bf16) {
        tile = IMC_CUDA_FN(ctx_dev)(c, CT_W, (size_t)(rows * n_in) * es,
                                    "the dequantized weight tile of matmul");
        if (!tile) {
            return IMC_ERR_NOMEM;
        }
    }
    if (bf16) { // the activations as bf16: their rows "dequantized" from f32
        xb = IMC_CUDA_FN(ctx_dev)(c, CT_A, (size_t)(n_tok * n_in) * 2,
                                  "the bf16 activations of matmul");
        if (!xb) {
            return IMC_ERR_NOMEM;
        }
        IMC_TRY(IMC_CUDA_FN(dequantize)(NULL, IMC_TYPE_F32, xd, n_in, 0, n_tok, IMC_TYPE_BF16,
                                        xb));
    }
    const enum imc_type tt = bf16 ? IMC_TYPE_BF16 : IMC_TYPE_F32;
    for (int64_t r0 = 0; r0 < n_out; r0 += rows) {
        const int64_t nr = n_out - r0 < rows ? n_out - r0 : rows;
        const void *w = (const float *)wd + r0 * n_in; // f32 weights in place (f32 mode)
        if (tile) {
            IMC_TRY(IMC_CUDA_FN(dequantize)(NULL, type, wd, n_in, r0, nr, tt, tile));
            w = tile;
        }
        enum imc_status st = IMC_ERR_UNSUPPORTED;
        if (c->blas) {
            st = bf16 ? IMC_CUDA_FN(blas_gemm_bf16)(c->blas, NULL, (const uint16_t *)w, nr, n_in,
                                                    (const uint16_t *)xb, n_tok, yd + r0, n_out)
                      : IMC_CUDA_FN(blas_gemm)(c->blas, NULL, (const float *)w, nr, n_in, xd,
                                               n_tok, yd + r0, n_out);
        }
        if (st == IMC_ERR_UNSUPPORTED) {
            st = bf16 ? IMC_CUDA_FN(gemm_bf16)(NULL, (const uint16_t *)w, nr, n_in,
                                               (const uint16_t *)xb, n_tok, yd + r0, n_out)
                      : IMC_CUDA_FN(gemm)(NULL, (const float *)w, nr, n_in, xd, n_tok, yd + r0,
                                          n_out);
        }
        IMC_TRY(st);
    }
    return IMC_OK;
}

// The device copy of weight w (wcache_get), its bytes noted in c's peak of device memory.
enum imc_status resident(struct imc_cuda_ctx *c, const void *w, enum imc_type type, int64_t n_out,
                         int64_t n_in, const void **wd)
{
    const enum imc_status st = IMC_CUDA_FN(wcache_get)(&c->wc, w, type, n_out, n_in, wd);
    IMC_CUDA_FN(ctx_mem_note)(c);
    return st;
}

// The kernels a matmul of n_tok tokens on the device's copy of weights of type takes: mmv, mmq,
// or the batch path in bf16 (--matmul q8 on weights other than f32) or f32.
enum mm_path { MM_MMV, MM_MMQ, MM_BATCH_BF16, MM_BATCH_F32 };

enum mm_path path_of(const struct imc_cuda_ctx *c, const struct imc_exec *ex, enum imc_type type,
                     int64_t n_tok)
{
    if (n_tok <= c->mmv_tok) {
        return MM_MMV;
    }
    if (imc_exec_matmul(ex) != IMC_MATMUL_Q8 || imc_type_unweaved(type) == IMC_TYPE_F32) {
        return MM_BATCH_F32;
    }
    return n_tok <= c->mmq_tok ? MM_MMQ : MM_BATCH_BF16;
}

enum imc_status t_matmul(const struct imc_exec *ex, float *y, int64_t ldy, const void *w,
                         enum imc_type type, int64_t n_out, int64_t n_in, const float *x,
                         int64_t ldx, int64_t n_tok)
{
    if (!t_supports(IMC_OP_MATMUL, type)) {
        return IMC_ERR_UNSUPPORTED;
    }
    if (n_tok <= 0 || n_out <= 0) {
        return IMC_OK;
    }
    struct imc_cuda_ctx *c = ctx_of(ex, "matmul");
    if (!c) {
        return IMC_ERR_INTERNAL;
    }
    const void *wd = NULL;
    IMC_TRY(resident(c, w, type, n_out, n_in, &wd));
    type = imc_type_unweaved(type); // what the device copy holds
    const float *xd = rows_up(c, CT_X, x, ldx, n_tok, n_in, "the activations of matmul");
    const size_t by = (size_t)(n_tok * n_out) * sizeof(float);
    float *yd = (ldy == n_out || n_tok == 1) && IMC_CUDA_FN(ctx_buf_has)(c, y, by)
                    ? y // the table's memory, contiguous: written in place
                    : (float *)IMC_CUDA_FN(ctx_dev)(c, CT_Y, by, "the outputs of matmul");
    if (!xd || !yd) {
        return IMC_ERR_NOMEM;
    }
    const struct imc_cuda_mmv_job job = {wd, xd, yd, n_tok};
    const enum mm_path path = path_of(c, ex, type, n_tok);
    switch (path) {
    case MM_MMV:
        IMC_TRY(IMC_CUDA_FN(mmv)(NULL, type, wd, n_out, n_in, xd, (int)n_tok, yd));
        break;
    case MM_MMQ:
        IMC_TRY(IMC_CUDA_FN(mmq_group)(NULL, type, &job, 1, n_out, n_in, n_in, n_out));
        break;
    case MM_BATCH_BF16:
    case MM_BATCH_F32:
        IMC_TRY(batch_mm(c, type, wd, n_out, n_in, xd, n_tok, yd, path == MM_BATCH_BF16));
        break;
    }
    return rows_down(c, y, ldy, yd, n_tok, n_out);
}

// The launch m can join: 0, mmv_group's (up to c->mmv_tok tokens), 1, mmq_group's (past that, up
// to c->mmq_tok, bf16 batches), with the lead of that launch (lead[g], or NULL while it has
// none): its type, shape and row strides, x and y in c's memory. -1: none (a matmul of its own).
int group_of(const struct imc_cuda_ctx *c, const struct imc_exec *ex, const struct imc_mm *m,
             const struct imc_mm *const lead[2])
{
    if (m->n_tok < 1 || m->n_out < 1 || !t_supports(IMC_OP_MATMUL, m->type)) {
        return -1;
    }
    const enum mm_path p = path_of(c, ex, m->type, m->n_tok);
    const int g = p == MM_MMV ? 0 : p == MM_MMQ ? 1 : -1;
    const struct imc_mm *l = g >= 0 ? lead[g] : NULL;
    if (g < 0 || (l && (m->type != l->type || m->n_out != l->n_out || m->n_in != l->n_in ||
                        m->ldx != l->ldx || m->ldy != l->ldy))) {
        return -1;
    }
    const size_t bx = (size_t)((m->n_tok - 1) * m->ldx + m->n_in) * sizeof(float);
    const size_t by = (size_t)((m->n_tok - 1) * m->ldy + m->n_out) * sizeof(float);
    return IMC_CUDA_FN(ctx_buf_has)(c, m->x, bx) && IMC_CUDA_FN(ctx_buf_has)(c, m->y, by) ? g
                                                                                          : -1;
}

// The matmuls of a group (an MoE layer's experts, MLA's heads): those that can join the
// mmv_group launch of the first such entry, and those that can join the mmq_group launch of the
// first such one (group_of; their weights resident as for matmul; one launch per
// IMC_CUDA_MMV_GROUP_MAX, no copy), the others one by one through t_matmul. Every output the
// bits t_matmul gives it (it takes the same kernel for the same token count).
enum imc_status t_matmul_group(const struct imc_exec *ex, const struct imc_mm *mm, int64_t n)
{
    struct imc_cuda_ctx *c = n > 1 ? ctx_of(ex, "matmul_group") : NULL;
    struct imc_cuda_mmv_job *jobs = c && n <= INT32_MAX
                                        ? (struct imc_cuda_mmv_job *)malloc(
                                              2 * (size_t)n * sizeof(*jobs))
                                        : NULL;
    const struct imc_mm *lead[2] = {NULL, NULL}; // the first entry of each launch
    int64_t k[2] = {0, 0};
    enum imc_status st = IMC_OK;
    for (int64_t i = 0; i < n && st == IMC_OK; i++) {
        const struct imc_mm *m = &mm[i];
        const int g = jobs ? group_of(c, ex, m, lead) : -1;
        if (g >= 0) {
            lead[g] = lead[g] ? lead[g] : m;
            struct imc_cuda_mmv_job *j = &jobs[g * n + k[g]++];
            *j = (struct imc_cuda_mmv_job){NULL, m->x, m->y, m->n_tok};
            st = resident(c, m->w, m->type, m->n_out, m->n_in, &j->w);
            continue;
        }
        st = t_matmul(ex, m->y, m->ldy, m->w, m->type, m->n_out, m->n_in, m->x, m->ldx, m->n_tok);
    }
    if (k[0] > 0 && st == IMC_OK) {
        st = IMC_CUDA_FN(mmv_group)(NULL, imc_type_unweaved(lead[0]->type), jobs, (int)k[0],
                                    lead[0]->n_out, lead[0]->n_in, lead[0]->ldx, lead[0]->ldy);
    }
    if (k[1] > 0 && st == IMC_OK) {
        st = IMC_CUDA_FN(mmq_group)(NULL, imc_type_unweaved(lead[1]->type), jobs + n, (int)k[1],
                                    lead[1]->n_out, lead[1]->n_in, lead[1]->ldx, lead[1]->ldy);
    }
    free(jobs);
    return st;
}

// h = rows ids[0..n) of w (rb bytes each) as the device holds them: copied, or for an
// interleaved type re-laid from their group (types.h imc_type_unweave; plain rows or the type's
// row form; once for consecutive rows of one group).
enum imc_status gather_rows(enum imc_type type, const void *w, uint64_t rb, int64_t n_in,
                            const int32_t *ids, int64_t n, char *h)
{
    const int g = imc_type_traits((uint32_t)type)->rows;
    char *grp = g > 1 ? (char *)malloc((size_t)rb * (size_t)g) : NULL;
    if (g > 1 && !grp) {
        IMC_LOG_ERR("cuda get_rows: out of host memory");
        return IMC_ERR_NOMEM;
    }
    int64_t held = -1; // the first row of the group grp holds
    for (int64_t r = 0; r < n; r++) {
        const char *src = (const char *)w + (size_t)ids[r] * rb;
        if (g > 1) {
            const int64_t g0 = ids[r] / g * g;
            if (g0 != held) {
                (void)imc_type_unweave(type, (const char *)w + (size_t)g0 * rb, g, n_in, grp);
                held = g0;
            }
            src = grp + (size_t)(ids[r] - g0) * rb;
        }
        memcpy(h + (size_t)r * rb, src, (size_t)rb);
    }
    free(grp);
    return IMC_OK;
}

enum imc_status t_get_rows(const struct imc_exec *ex, float *out, const void *w, enum imc_type type,
                           int64_t n_in, const int32_t *ids, int64_t n)
{
    uint64_t rb = 0;
    if (!t_supports(IMC_OP_GET_ROWS, type) || !imc_type_row_bytes((uint32_t)type, n_in, &rb)) {
        return IMC_ERR_UNSUPPORTED;
    }
    if (n <= 0) {
        return IMC_OK;
    }
    struct imc_cuda_ctx *c = ctx_of(ex, "get_rows");
    if (!c) {
        return IMC_ERR_INTERNAL;
    }
    const size_t bytes = (size_t)rb * (size_t)n;
    char *h = (char *)IMC_CUDA_FN(ctx_host)(c, bytes);
    void *wd = IMC_CUDA_FN(ctx_dev)(c, CT_A, bytes, "the embedding rows of get_rows");
    const size_t bo = (size_t)(n * n_in) * sizeof(float);
    const bool own = IMC_CUDA_FN(ctx_buf_has)(c, out, bo);
    float *od = own ? out : (float *)IMC_CUDA_FN(ctx_dev)(c, CT_Y, bo, "the outputs of get_rows");
    if (!h || !wd || !od) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(gather_rows(type, w, rb, n_in, ids, n, h));
    IMC_TRY(up(c, wd, h, bytes));
    type = imc_type_unweaved(type); // the rows gathered: plain rows, or t's row form
    IMC_TRY(IMC_CUDA_FN(dequantize)(NULL, type, wd, n_in, 0, n, IMC_TYPE_F32, od));
    return own ? IMC_OK : down(c, out, od, bo);
}

enum imc_status rmsnorm_dev(const struct imc_exec *ex, float *y, const float *x, const float *w,
                            int64_t n_rows, int64_t n, float eps)
{
    struct opmap m = {ctx_of(ex, "rmsnorm"), "the activations of rmsnorm", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    const size_t b = (size_t)(n_rows * n) * sizeof(float);
    const float *xd = (const float *)map(&m, CT_X, x, b, true, false);
    const float *wd =
        w ? (const float *)map(&m, CT_A, w, (size_t)n * sizeof(float), true, false) : NULL;
    float *yd = (float *)map(&m, CT_Y, y, b, false, true);
    if (!xd || (w && !wd) || !yd) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(rmsnorm)(NULL, yd, xd, wd, n_rows, n, eps));
    return map_back(&m);
}

void t_rmsnorm(const struct imc_exec *ex, float *y, const float *x, const float *w, int64_t n_rows,
               int64_t n, float eps)
{
    if (n_rows > 0 && rmsnorm_dev(ex, y, x, w, n_rows, n, eps) != IMC_OK) {
        poison(ex, y, n, n_rows, n);
    }
}

enum imc_status rope_dev(const struct imc_exec *ex, const struct imc_rope *p, float *x,
                         int64_t n_tok, int64_t n_head, int64_t ld_tok, int64_t ld_head,
                         const int32_t *pos)
{
    struct opmap m = {ctx_of(ex, "rope"), "the activations of rope", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    const size_t b =
        (size_t)((n_tok - 1) * ld_tok + (n_head - 1) * ld_head + p->n_dims) * sizeof(float);
    float *xd = (float *)map(&m, CT_X, x, b, true, true);
    const int32_t *pd =
        (const int32_t *)map(&m, CT_A, pos, (size_t)n_tok * sizeof(int32_t), true, false);
    if (!xd || !pd) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(rope)(NULL, p, xd, n_tok, n_head, ld_tok, ld_head, pd));
    return map_back(&m);
}

void t_rope(const struct imc_exec *ex, const struct imc_rope *p, float *x, int64_t n_tok,
            int64_t n_head, int64_t ld_tok, int64_t ld_head, const int32_t *pos)
{
    if (n_tok > 0 && n_head > 0 && p->n_dims > 0 &&
        rope_dev(ex, p, x, n_tok, n_head, ld_tok, ld_head, pos) != IMC_OK) {
        for (int64_t h = 0; h < n_head; h++) {
            poison(ex, x + h * ld_head, ld_tok, n_tok, p->n_dims);
        }
    }
}

enum imc_status softmax_dev(const struct imc_exec *ex, float *x, int64_t n_rows, int64_t n)
{
    struct opmap m = {ctx_of(ex, "softmax"), "the activations of softmax", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    float *xd = (float *)map(&m, CT_X, x, (size_t)(n_rows * n) * sizeof(float), true, true);
    if (!xd) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(softmax)(NULL, xd, n_rows, n));
    return map_back(&m);
}

void t_softmax(const struct imc_exec *ex, float *x, int64_t n_rows, int64_t n)
{
    if (n_rows > 0 && n > 0 && softmax_dev(ex, x, n_rows, n) != IMC_OK) {
        poison(ex, x, n, n_rows, n);
    }
}

enum imc_status swiglu_dev(const struct imc_exec *ex, float *out, int64_t ldo, const float *gate,
                           int64_t ldg, const float *up, int64_t ldu, int64_t n_rows, int64_t n)
{
    struct opmap m = {ctx_of(ex, "swiglu"), "the activations of swiglu", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    const size_t bo = extent(n_rows, ldo, n, sizeof(float));
    const float *gd =
        (const float *)map(&m, CT_A, gate, extent(n_rows, ldg, n, sizeof(float)), true, false);
    const float *ud =
        (const float *)map(&m, CT_B, up, extent(n_rows, ldu, n, sizeof(float)), true, false);
    float *od = (float *)map(&m, CT_Y, out, bo, ldo != n, true); // gaps: uploaded
    if (!gd || !ud || !od) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(swiglu)(NULL, od, ldo, gd, ldg, ud, ldu, n_rows, n));
    return map_back(&m);
}

void t_swiglu(const struct imc_exec *ex, float *out, int64_t ldo, const float *gate, int64_t ldg,
              const float *up, int64_t ldu, int64_t n_rows, int64_t n)
{
    if (n_rows > 0 && n > 0 && swiglu_dev(ex, out, ldo, gate, ldg, up, ldu, n_rows, n) != IMC_OK) {
        poison(ex, out, ldo, n_rows, n);
    }
}

// Bytes of the extent of an attention array: n_tok tokens x n_head heads of d floats.
size_t attn_extent(int64_t n_tok, int64_t ld_tok, int64_t n_head, int64_t ld_head, int64_t d)
{
    return (size_t)((n_tok - 1) * ld_tok + (n_head - 1) * ld_head + d) * sizeof(float);
}

// An output array's extent has gaps (so it must be uploaded first) unless it is dense.
bool gappy(size_t bytes, int64_t n_tok, int64_t n_head, int64_t d)
{
    return bytes != (size_t)(n_tok * n_head * d) * sizeof(float);
}

enum imc_status t_attention(const struct imc_exec *ex, const struct imc_attn_args *a)
{
    if (a->n_tok <= 0 || a->n_head <= 0) {
        return IMC_OK;
    }
    struct opmap m = {ctx_of(ex, "attention"), "the activations of attention", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    struct imc_attn_args d = *a;
    const int64_t T = a->n_tok;
    const size_t bq = attn_extent(T, a->q_ld_tok, a->n_head, a->q_ld_head, a->dk);
    const size_t bk = attn_extent(T, a->k_ld_tok, a->n_head_kv, a->k_ld_head, a->dk);
    const size_t bv = attn_extent(T, a->v_ld_tok, a->n_head_kv, a->v_ld_head, a->dv);
    const size_t bo = attn_extent(T, a->o_ld_tok, a->n_head, a->o_ld_head, a->dv);
    d.q = (const float *)map(&m, CT_A, a->q, bq, true, false);
    d.k = (const float *)map(&m, CT_B, a->k, bk, true, false);
    d.v = (const float *)map(&m, CT_C, a->v, bv, true, false);
    d.out = (float *)map(&m, CT_Y, a->out, bo, gappy(bo, T, a->n_head, a->dv), true);
    bool ok = d.q && d.k && d.v && d.out;
    if (ok && a->v2) {
        const size_t b2 = attn_extent(T, a->v2_ld_tok, a->n_head_v2, a->v2_ld_head, a->dv2);
        const size_t bo2 = attn_extent(T, a->o2_ld_tok, a->n_head, a->o2_ld_head, a->dv2);
        d.v2 = (const float *)map(&m, CT_D, a->v2, b2, true, false);
        d.out2 = (float *)map(&m, CT_E, a->out2, bo2, gappy(bo2, T, a->n_head, a->dv2), true);
        ok = d.v2 && d.out2;
    }
    if (!ok) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(attention)(NULL, &d));
    return map_back(&m);
}

enum imc_status t_moe_route(const struct imc_exec *ex, const struct imc_route_cfg *cfg,
                            const float *logits, int64_t n_tok, int32_t *ids, float *weights)
{
    if (n_tok <= 0) {
        return IMC_OK;
    }
    struct opmap m = {ctx_of(ex, "moe_route"), "the activations of moe_route", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    struct imc_route_cfg dc = *cfg;
    const size_t nu = (size_t)(n_tok * cfg->n_used);
    const float *ld = (const float *)map(
        &m, CT_X, logits, (size_t)(n_tok * cfg->n_expert) * sizeof(float), true, false);
    if (cfg->bias) {
        dc.bias = (const float *)map(&m, CT_A, cfg->bias, (size_t)cfg->n_expert * sizeof(float),
                                     true, false);
    }
    int32_t *id = (int32_t *)map(&m, CT_B, ids, nu * sizeof(int32_t), false, true);
    float *wd = (float *)map(&m, CT_Y, weights, nu * sizeof(float), false, true);
    if (!ld || (cfg->bias && !dc.bias) || !id || !wd) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(moe_route)(NULL, &dc, ld, n_tok, id, wd));
    return map_back(&m);
}

enum imc_status sqacc_dev(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x,
                          int64_t ldx, int64_t n_rows, int64_t n_in)
{
    struct opmap m = {ctx_of(ex, "sqacc"), "the activations of sqacc", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    const float *xd =
        (const float *)map(&m, CT_X, x, extent(n_rows, ldx, n_in, sizeof(float)), true, false);
    double *sd = (double *)map(&m, CT_A, sum2, (size_t)n_in * sizeof(double), true, true);
    // a host count is counted here (the kernel adds every row): two waiting copies fewer per call
    int64_t *cd = IMC_CUDA_FN(ctx_buf_has)(m.c, count, sizeof(*count)) ? count : NULL;
    if (!xd || !sd) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(sqacc)(NULL, sd, cd, xd, ldx, n_rows, n_in));
    IMC_TRY(map_back(&m));
    if (!cd) {
        *count += n_rows;
    }
    return IMC_OK;
}

// Queues sqacc on c when its rows and sums are the table's memory (ctx_sq_flush launches the
// queue: when it is full, at another op, or before a job of other columns or on the same sums);
// a count on the host is counted now. false: not queued (the caller runs it at once).
bool sq_queue(struct imc_cuda_ctx *c, double *sum2, int64_t *count, const float *x, int64_t ldx,
              int64_t n_rows, int64_t n_in)
{
    if (!c || !IMC_CUDA_FN(ctx_buf_has)(c, sum2, (size_t)n_in * sizeof(double)) ||
        !IMC_CUDA_FN(ctx_buf_has)(c, x, extent(n_rows, ldx, n_in, sizeof(float)))) {
        return false;
    }
    bool again = c->sq_n == IMC_CUDA_SQACC_GROUP_MAX || (c->sq_n > 0 && c->sq_in != n_in);
    for (int i = 0; i < c->sq_n && !again; i++) {
        again = c->sq[i].sum2 == sum2; // its sums add in order: one job per sums a launch
    }
    if (again) {
        (void)IMC_CUDA_FN(ctx_sq_flush)(c); // a failure leaves NaN sums: found at sync
    }
    const bool dev_count = IMC_CUDA_FN(ctx_buf_has)(c, count, sizeof(*count));
    c->sq[c->sq_n++] = (struct imc_sqacc_job){sum2, dev_count ? count : NULL, x, ldx, n_rows};
    c->sq_in = n_in;
    if (!dev_count) {
        *count += n_rows;
    }
    return true;
}

void t_sqacc(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x, int64_t ldx,
             int64_t n_rows, int64_t n_in)
{
    if (n_rows <= 0 || n_in <= 0) {
        return;
    }
    struct imc_cuda_ctx *c = (struct imc_cuda_ctx *)imc_exec_backend_ctx(ex);
    if (sq_queue(c, sum2, count, x, ldx, n_rows, n_in)) {
        return;
    }
    if (c) {
        (void)IMC_CUDA_FN(ctx_sq_flush)(c); // the queue first: sums in order
    }
    if (sqacc_dev(ex, sum2, count, x, ldx, n_rows, n_in) != IMC_OK) {
        if (c && IMC_CUDA_FN(ctx_buf_has)(c, sum2, (size_t)n_in * sizeof(double))) {
            (void)IMC_CUDA_FN(dev_memset)(NULL, sum2, 0xFF, (size_t)n_in * sizeof(double)); // NaN
            return;
        }
        for (int64_t i = 0; i < n_in; i++) {
            sum2[i] = NAN;
        }
    }
}

enum imc_status t_nll_rows(const struct imc_exec *ex, struct imc_nll_row *out, const float *logits,
                           int64_t n_rows, int64_t n_vocab, const int32_t *targets,
                           const uint16_t *base, int64_t ld_base)
{
    struct opmap m = {ctx_of(ex, "nll_rows"), "the logits of nll_rows", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    if (n_rows <= 0) {
        return IMC_OK;
    }
    const float *ld =
        (const float *)map(&m, CT_X, logits, (size_t)(n_rows * n_vocab) * 4, true, false);
    const int32_t *td = (const int32_t *)map(&m, CT_A, targets, (size_t)n_rows * 4, true, false);
    const uint16_t *bd = NULL;
    if (base) {
        bd =
            (const uint16_t *)map(&m, CT_B, base, extent(n_rows, ld_base, ld_base, 2), true, false);
    }
    struct imc_nll_row *od = (struct imc_nll_row *)map(
        &m, CT_Y, out, (size_t)n_rows * sizeof(struct imc_nll_row), false, true);
    if (!ld || !td || (base && !bd) || !od) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(nll_rows)(NULL, od, ld, n_rows, n_vocab, td, bd, ld_base));
    return map_back(&m);
}

// Rows an index array addresses: max(idx[0..n)) + 1, or n without one. An index array in the
// table's memory is not read on the host: the rows it indexes must be there too (addressed in
// place, so their extent is not needed: 1), else -1 (logged).
int64_t rows_of(const struct imc_cuda_ctx *c, const int32_t *idx, int64_t n, const float *rows)
{
    if (idx && n > 0 && IMC_CUDA_FN(ctx_buf_has)(c, idx, (size_t)n * sizeof(int32_t))) {
        if (IMC_CUDA_FN(ctx_buf_has)(c, rows, sizeof(float))) {
            return 1;
        }
        IMC_LOG_ERR("cuda: an index array in the table's memory indexes host rows");
        return -1;
    }
    int64_t m = idx ? 0 : n;
    for (int64_t i = 0; idx && i < n; i++) {
        m = idx[i] + 1 > m ? idx[i] + 1 : m;
    }
    return m;
}

enum imc_status t_copy(const struct imc_exec *ex, const struct imc_copy_args *a)
{
    if (a->n_tok <= 0 || a->n_head <= 0 || a->n <= 0) {
        return IMC_OK;
    }
    struct opmap m = {ctx_of(ex, "copy"), "the activations of copy", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    struct imc_copy_args d = *a;
    const size_t bs = attn_extent(a->n_tok, a->s_ld_tok, a->n_head, a->s_ld_head, a->n);
    const size_t bd = attn_extent(a->n_tok, a->d_ld_tok, a->n_head, a->d_ld_head, a->n);
    d.src = (const float *)map(&m, CT_X, a->src, bs, true, false);
    d.dst = (float *)map(&m, CT_Y, a->dst, bd, gappy(bd, a->n_tok, a->n_head, a->n), true);
    if (!d.src || !d.dst) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(copy)(NULL, &d));
    return map_back(&m);
}

// Host rows read or written by host indices are gathered or scattered on the host, so only the n
// rows moved cross the bus (not the extent the indices span: the rows a shard received, once per
// group of experts); host to host never touches the device (the shards' routed rows for the cpu
// table's experts); on the host by the reference's move (kernels/kernels.h).
enum imc_status t_move_rows(const struct imc_exec *ex, float *dst, const int32_t *dst_idx,
                            const float *src, const int32_t *src_idx, int64_t n, int64_t d)
{
    if (n <= 0 || d <= 0) {
        return IMC_OK;
    }
    struct opmap m = {ctx_of(ex, "move_rows"), "the rows of move_rows", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    const size_t row = (size_t)d * sizeof(float), bi = (size_t)n * sizeof(int32_t);
    if (rows_of(m.c, src_idx, n, src) < 0 || rows_of(m.c, dst_idx, n, dst) < 0) {
        return IMC_ERR_INTERNAL;
    }
    const bool src_host = !IMC_CUDA_FN(ctx_buf_has)(m.c, src, sizeof(float));
    const bool dst_host = !IMC_CUDA_FN(ctx_buf_has)(m.c, dst, sizeof(float));
    if (src_host && dst_host) {
        imc_ref_move_rows(dst, dst_idx, src, src_idx, n, d);
        return IMC_OK;
    }
    // host rows by host indices: through n staged rows (one side only: the other is the table's)
    float *stage = NULL;
    if ((src_host && src_idx) || (dst_host && dst_idx)) {
        stage = (float *)IMC_CUDA_FN(ctx_host)(m.c, (size_t)n * row);
        if (!stage) {
            return IMC_ERR_NOMEM;
        }
    }
    float *scatter = NULL; // the host rows the staged ones go to, after the kernel
    const int32_t *scatter_idx = NULL;
    if (stage && src_host) {
        imc_ref_move_rows(stage, NULL, src, src_idx, n, d);
        src = stage;
        src_idx = NULL;
    } else if (stage) {
        scatter = dst;
        scatter_idx = dst_idx;
        dst = stage;
        dst_idx = NULL;
    }
    const int64_t ns = rows_of(m.c, src_idx, n, src), nd = rows_of(m.c, dst_idx, n, dst);
    const float *sd = (const float *)map(&m, CT_X, src, (size_t)ns * row, true, false);
    // a scatter leaves the rows it does not write as they were: uploaded first
    float *dd = (float *)map(&m, CT_Y, dst, (size_t)nd * row, dst_idx != NULL, true);
    const int32_t *si = src_idx ? (const int32_t *)map(&m, CT_A, src_idx, bi, true, false) : NULL;
    const int32_t *di = dst_idx ? (const int32_t *)map(&m, CT_B, dst_idx, bi, true, false) : NULL;
    if (!sd || !dd || (src_idx && !si) || (dst_idx && !di)) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(move_rows)(NULL, dd, di, sd, si, n, d));
    IMC_TRY(map_back(&m));
    if (scatter) {
        imc_ref_move_rows(scatter, scatter_idx, stage, NULL, n, d);
    }
    return IMC_OK;
}

enum imc_status t_add(const struct imc_exec *ex, float *x, const float *y, int64_t n_rows,
                      int64_t n, int64_t ldy)
{
    if (n_rows <= 0 || n <= 0) {
        return IMC_OK;
    }
    struct opmap m = {ctx_of(ex, "add"), "the activations of add", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    const float *yd = (const float *)map(&m, CT_X, y, extent(n_rows, ldy, n, sizeof(float)), true,
                                         false);
    float *xd = (float *)map(&m, CT_Y, x, (size_t)(n_rows * n) * sizeof(float), true, true);
    if (!yd || !xd) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(add)(NULL, xd, yd, n_rows, n, ldy));
    return map_back(&m);
}

enum imc_status t_moe_wsum(const struct imc_exec *ex, float *y, const float *rows,
                           const int32_t *pos, const float *w, const float *add, int64_t n,
                           int64_t k, int64_t d)
{
    if (n <= 0 || d <= 0) {
        return IMC_OK;
    }
    struct opmap m = {ctx_of(ex, "moe_wsum"), "the expert outputs of moe_wsum", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    const size_t row = (size_t)d * sizeof(float), nk = (size_t)(n * k);
    const int64_t nr = rows_of(m.c, pos, n * k, rows);
    if (nr < 0) {
        return IMC_ERR_INTERNAL;
    }
    const float *rd = (const float *)map(&m, CT_X, rows, (size_t)nr * row, true, false);
    const int32_t *pd = (const int32_t *)map(&m, CT_A, pos, nk * sizeof(int32_t), true, false);
    const float *wd = (const float *)map(&m, CT_B, w, nk * sizeof(float), true, false);
    const float *ad = add ? (const float *)map(&m, CT_C, add, (size_t)n * row, true, false) : NULL;
    float *yd = (float *)map(&m, CT_Y, y, (size_t)n * row, false, true);
    if (!rd || !pd || !wd || (add && !ad) || !yd) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(moe_wsum)(NULL, yd, rd, pd, wd, ad, n, k, d));
    return map_back(&m);
}

enum imc_status t_find_nonfinite(const struct imc_exec *ex, const float *x, int64_t ld,
                                 int64_t n_rows, int64_t n, int64_t *index, float *value)
{
    *index = -1;
    if (n_rows <= 0 || n <= 0) {
        return IMC_OK;
    }
    struct opmap m = {ctx_of(ex, "find_nonfinite"), "the values of find_nonfinite", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    const float *xd =
        (const float *)map(&m, CT_X, x, extent(n_rows, ld, n, sizeof(float)), true, false);
    int64_t *id = (int64_t *)map(&m, CT_A, index, sizeof(int64_t), false, true);
    if (!xd || !id) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(find_nonfinite)(NULL, xd, ld, n_rows, n, id));
    IMC_TRY(map_back(&m));
    if (*index < 0) {
        return IMC_OK;
    }
    return down(m.c, value, xd + (*index / n) * ld + *index % n, sizeof(float));
}

// The context of op when [p, p + bytes) is the table's memory (its `role`), else NULL (logged).
struct imc_cuda_ctx *own_ctx(const struct imc_exec *ex, const char *op, const void *p, size_t bytes,
                             const char *role)
{
    struct imc_cuda_ctx *c = ctx_of(ex, op);
    if (c && !IMC_CUDA_FN(ctx_buf_has)(c, p, bytes)) {
        IMC_LOG_ERR("cuda %s: the %s is not the table's memory", op, role);
        return NULL;
    }
    return c;
}

enum imc_status t_upload(const struct imc_exec *ex, void *dst, const void *src, size_t bytes)
{
    struct imc_cuda_ctx *c = own_ctx(ex, "upload", dst, bytes, "destination");
    return !c ? IMC_ERR_INTERNAL : bytes ? up(c, dst, src, bytes) : IMC_OK;
}

enum imc_status t_download(const struct imc_exec *ex, void *dst, const void *src, size_t bytes)
{
    struct imc_cuda_ctx *c = own_ctx(ex, "download", src, bytes, "source");
    return !c ? IMC_ERR_INTERNAL : bytes ? down(c, dst, src, bytes) : IMC_OK;
}

enum imc_status t_zero(const struct imc_exec *ex, void *dst, size_t bytes)
{
    const struct imc_cuda_ctx *c = own_ctx(ex, "zero", dst, bytes, "destination");
    return !c ? IMC_ERR_INTERNAL : bytes ? IMC_CUDA_FN(dev_memset)(NULL, dst, 0, bytes) : IMC_OK;
}

// Whether the n floats at p, the `role` of peer op `op`, are the table's memory (NCCL reads and
// writes device memory only); logged when not.
bool peer_own(const struct imc_cuda_ctx *c, const char *op, const char *role, const float *p,
              size_t n)
{
    if (IMC_CUDA_FN(ctx_buf_has)(c, p, n * sizeof(float))) {
        return true;
    }
    IMC_LOG_ERR("cuda %s: the %s (%zu floats) are not the table's memory", op, role, n);
    return false;
}

// Counts an exchange of n_out floats sent and n_in received in c's traffic.
void peer_count(struct imc_cuda_ctx *c, size_t n_out, size_t n_in)
{
    c->traffic.n_peer++;
    c->traffic.peer_out_bytes += n_out * sizeof(float);
    c->traffic.peer_in_bytes += n_in * sizeof(float);
}

enum imc_status t_peer_alltoallv(const struct imc_exec *ex, void *peer, const float *send,
                                 const size_t *send_counts, float *recv, const size_t *recv_counts)
{
    const char *op = "peer_alltoallv";
    struct imc_cuda_ctx *c = ctx_of(ex, op);
    if (!c) {
        return IMC_ERR_INTERNAL;
    }
    size_t ns = 0, nr = 0;
    for (int j = 0, n = IMC_CUDA_FN(peer_size)(peer); j < n; j++) {
        ns += send_counts[j];
        nr += recv_counts[j];
    }
    if (!peer_own(c, op, "sent rows", send, ns) || !peer_own(c, op, "received rows", recv, nr)) {
        return IMC_ERR_ARG;
    }
    peer_count(c, ns, nr);
    return IMC_CUDA_FN(peer_alltoallv)(peer, NULL, send, send_counts, recv, recv_counts);
}

// One side of a transfer between two ranks.
enum imc_status peer_p2p(const struct imc_exec *ex, void *peer, bool send, float *buf, size_t n,
                         int rank)
{
    const char *op = send ? "peer_send" : "peer_recv";
    struct imc_cuda_ctx *c = ctx_of(ex, op);
    if (!c) {
        return IMC_ERR_INTERNAL;
    }
    if (!peer_own(c, op, "rows", buf, n)) {
        return IMC_ERR_ARG;
    }
    peer_count(c, send ? n : 0, send ? 0 : n);
    return IMC_CUDA_FN(peer_p2p)(peer, NULL, send, buf, n, rank);
}

enum imc_status t_peer_send(const struct imc_exec *ex, void *peer, const float *buf, size_t n,
                            int to)
{
    return peer_p2p(ex, peer, true, (float *)buf, n, to);
}

enum imc_status t_peer_recv(const struct imc_exec *ex, void *peer, float *buf, size_t n, int from)
{
    return peer_p2p(ex, peer, false, buf, n, from);
}

// The deferred checks' record of c (allocated, all ones, on first use).
struct imc_cuda_check_rec *check_rec(struct imc_cuda_ctx *c)
{
    if (!c->check_rec) {
        void *p = NULL;
        if (IMC_CUDA_FN(dev_alloc)(sizeof(*c->check_rec), &p) != IMC_OK ||
            IMC_CUDA_FN(dev_memset)(NULL, p, 0xFF, sizeof(*c->check_rec)) != IMC_OK) {
            IMC_CUDA_FN(dev_free)(p);
            return NULL;
        }
        c->check_rec = (struct imc_cuda_check_rec *)p;
        IMC_CUDA_FN(ctx_mem_note)(c);
    }
    return c->check_rec;
}

enum imc_status t_check_post(const struct imc_exec *ex, const float *x, int64_t ld, int64_t n_rows,
                             int64_t n, int64_t id)
{
    if (n_rows <= 0 || n <= 0) {
        return IMC_OK;
    }
    struct opmap m = {ctx_of(ex, "check_post"), "the values of check_post", {}, 0};
    if (!m.c) {
        return IMC_ERR_INTERNAL;
    }
    struct imc_cuda_check_rec *rec = check_rec(m.c);
    const float *xd =
        (const float *)map(&m, CT_X, x, extent(n_rows, ld, n, sizeof(float)), true, false);
    if (!rec || !xd) {
        return IMC_ERR_NOMEM;
    }
    return IMC_CUDA_FN(check_post)(NULL, xd, ld, n_rows, n, id, rec);
}

enum imc_status t_check_poll(const struct imc_exec *ex, int64_t *id, int64_t *index, float *value)
{
    *id = -1;
    struct imc_cuda_ctx *c = ctx_of(ex, "check_poll");
    if (!c) {
        return IMC_ERR_INTERNAL;
    }
    if (!c->check_rec) {
        return IMC_OK; // nothing posted
    }
    struct imc_cuda_check_rec r;
    IMC_TRY(down(c, &r, c->check_rec, sizeof(r)));
    IMC_TRY(IMC_CUDA_FN(dev_memset)(NULL, c->check_rec, 0xFF, sizeof(r)));
    if (r.key != ~0ull) {
        *id = (int64_t)(r.key >> IMC_CUDA_CHECK_INDEX_BITS);
        *index = (int64_t)(r.key & ((1ull << IMC_CUDA_CHECK_INDEX_BITS) - 1));
        *value = r.value;
    }
    return IMC_OK;
}

// Runs an op with the table's buffers open to it (ctx_guard: the emulator's protection), after
// the queued sqaccs (ctx_sq_flush), except for sqacc itself (flush false), which queues.
struct guard {
    struct imc_cuda_ctx *c;
    guard(const struct imc_exec *ex, bool flush)
        : c((struct imc_cuda_ctx *)imc_exec_backend_ctx(ex))
    {
        if (c) {
            IMC_CUDA_FN(ctx_guard)(c, true);
            if (flush) {
                (void)IMC_CUDA_FN(ctx_sq_flush)(c); // a failure leaves NaN sums: found at sync
            }
        }
    }
    ~guard()
    {
        if (c) {
            IMC_CUDA_FN(ctx_guard)(c, false);
        }
    }
    guard(const guard &) = delete;
    guard &operator=(const guard &) = delete;
};

template <class Fn, Fn f> struct guarded;
template <class R, class... A, R (*f)(const struct imc_exec *, A...)>
struct guarded<R (*)(const struct imc_exec *, A...), f> {
    static R call(const struct imc_exec *ex, A... a)
    {
        const guard g(ex, true);
        return f(ex, a...);
    }
};
#define GUARDED(f) guarded<decltype(&f), &f>::call

void sqacc_call(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x,
                int64_t ldx, int64_t n_rows, int64_t n_in)
{
    const guard g(ex, false);
    t_sqacc(ex, sum2, count, x, ldx, n_rows, n_in);
}

struct imc_backend make_table()
{
    struct imc_backend b;
    memset(&b, 0, sizeof(b));
    b.name = "cuda";
    b.supports = t_supports;
    b.matmul = GUARDED(t_matmul);
    b.matmul_group = GUARDED(t_matmul_group);
    b.get_rows = GUARDED(t_get_rows);
    b.rmsnorm = GUARDED(t_rmsnorm);
    b.rope = GUARDED(t_rope);
    b.softmax = GUARDED(t_softmax);
    b.swiglu = GUARDED(t_swiglu);
    b.attention = GUARDED(t_attention);
    b.moe_route = GUARDED(t_moe_route);
    b.sqacc = sqacc_call; // queues: the guard does not flush
    b.nll_rows = GUARDED(t_nll_rows);
    b.copy = GUARDED(t_copy);
    b.move_rows = GUARDED(t_move_rows);
    b.add = GUARDED(t_add);
    b.moe_wsum = GUARDED(t_moe_wsum);
    b.find_nonfinite = GUARDED(t_find_nonfinite);
    b.upload = GUARDED(t_upload);
    b.download = GUARDED(t_download);
    b.zero = GUARDED(t_zero);
    b.check_post = GUARDED(t_check_post);
    b.check_poll = GUARDED(t_check_poll);
    b.buf_alloc = IMC_CUDA_FN(ctx_buf_alloc);
    b.buf_free = IMC_CUDA_FN(ctx_buf_free);
    b.ctx_new = IMC_CUDA_FN(ctx_new);
    b.ctx_free = IMC_CUDA_FN(ctx_free);
    b.peer_new = IMC_CUDA_FN(peer_new);
    b.peer_free = IMC_CUDA_FN(peer_free);
    b.peer_alltoallv = GUARDED(t_peer_alltoallv);
    b.peer_send = GUARDED(t_peer_send);
    b.peer_recv = GUARDED(t_peer_recv);
    return b;
}

const struct imc_backend g_table = make_table(); // immutable after static initialization

} // namespace

IMC_CUDA_EXTERN const struct imc_backend *IMC_CUDA_FN(backend)(void)
{
    return &g_table;
}
