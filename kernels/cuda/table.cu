/*
 * kernels/cuda/table.cu: the CUDA op table (kernels/backend.h, named "cuda"): the engine's ops on
 * the kernels of kernels/cuda/<op>.cu. Written once against the launcher names (launch.h): under
 * nvcc it is imc_cuda_backend(), the production table behind --device cuda; in the emulator it
 * is imc_cuemu_backend(), the table the cuda tests run the engine on (cuda.engine_emu).
 *
 * State: the ops find their context (kernels/cuda/table_priv.h: resident weights, cuBLAS,
 * scratch) through imc_exec_backend_ctx(ex); the engine owns it (ctx_new / ctx_free).
 *
 * Per op: weights resident (wcache: uploaded whole on first use, straight from the mapping);
 * activations copied host -> device, the kernel, results device -> host. Strided arrays travel
 * as their whole extent (first to last element, gaps included, so writing the extent back
 * leaves the gaps as they were); an array inside the extent of one already copied for the op
 * is addressed in that copy, so host aliasing (out = gate, v inside k) holds on the device.
 * Partial overlaps of an output with another array are not supported (no engine call has one).
 *
 * Ops:
 *   matmul        <= IMC_CUDA_MMV_MAX_TOK tokens: mmv on the resident quantized rows. More:
 *                 tiles of rows dequantized to f32 on the device (dequant.cu, <= 64 MiB a tile)
 *                 then GEMM: cuBLAS (blas.cu) under nvcc, the tiled kernel (gemm.cu) in the
 *                 emulator or when cuBLAS is missing. f32 weights skip the dequantization.
 *   matmul_group  a loop over matmul.
 *   get_rows      the rows of ids gathered on the host from the mapping (n rows: the embedding
 *                 table is never resident), uploaded and dequantized to f32 on the device.
 *   rmsnorm, rope, softmax, swiglu, attention, moe_route, sqacc, nll_rows: the launcher of that
 *                 name. sqacc uploads sum2 and count, accumulates on the device and copies them
 *                 back. nll_rows uploads the logits rows (and the base rows), brings back one
 *                 imc_nll_row per row.
 * Ops without a status (rmsnorm, rope, softmax, swiglu, sqacc) fill their output with NaN on
 * failure (logged), so the engine's finiteness check stops the pass; none crashes.
 * Device memory exhausted: the error names the weight's type and shape (the engine adds the
 * tensor's name and layer) or the op's activations, and the bytes needed; the log prefix names
 * the rank.
 *
 * Cost, and the next step: every op moves its activations over PCIe both ways and synchronizes
 * (copy_to_host waits), so the device idles between ops; a forward pass with device-resident
 * activations (the engine's scratch on the device, only logits and statistics coming back) is
 * what makes this fast. Types without a device decoder (the interleaved _rN types) are
 * unsupported (supports() false).
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

constexpr size_t TILE_BYTES = (size_t)64 << 20; // dequantized weight tile of the batch matmul
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
    for (int i = 0; i < m->n; i++) {
        if (p >= m->r[i].host && p + bytes <= m->r[i].host + m->r[i].bytes) {
            m->r[i].out = m->r[i].out || out;
            return m->r[i].dev + (p - m->r[i].host);
        }
    }
    char *d = (char *)IMC_CUDA_FN(ctx_dev)(m->c, slot, bytes, m->what);
    if (!d || (upload && bytes && IMC_CUDA_FN(copy_to_dev)(NULL, d, h, bytes) != IMC_OK)) {
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
                IMC_CUDA_FN(copy_to_host)(NULL, (void *)m->r[i].host, m->r[i].dev, m->r[i].bytes));
        }
    }
    return IMC_OK;
}

void poison(float *x, int64_t ld, int64_t n_rows, int64_t n)
{
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t i = 0; i < n; i++) {
            x[r * ld + i] = NAN;
        }
    }
}

bool t_supports(enum imc_op op, enum imc_type t)
{
    return op != IMC_OP_MATMUL && op != IMC_OP_GET_ROWS ? true : IMC_CUDA_FN(supports_type)(t);
}

// n_tok rows of n floats at stride ld (host) to contiguous device rows in slot.
float *rows_up(struct imc_cuda_ctx *c, enum imc_cuda_slot slot, const float *x, int64_t ld,
               int64_t n_tok, int64_t n, const char *what)
{
    const size_t bytes = (size_t)(n_tok * n) * sizeof(float);
    float *d = (float *)IMC_CUDA_FN(ctx_dev)(c, slot, bytes, what);
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
    return d && IMC_CUDA_FN(copy_to_dev)(NULL, d, src, bytes) == IMC_OK ? d : NULL;
}

// Contiguous device rows to n_tok rows of n floats at stride ld (host).
enum imc_status rows_down(struct imc_cuda_ctx *c, float *y, int64_t ld, const float *d,
                          int64_t n_tok, int64_t n)
{
    const size_t bytes = (size_t)(n_tok * n) * sizeof(float);
    if (ld == n || n_tok == 1) {
        return IMC_CUDA_FN(copy_to_host)(NULL, y, d, bytes);
    }
    float *h = (float *)IMC_CUDA_FN(ctx_host)(c, bytes);
    if (!h) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(copy_to_host)(NULL, h, d, bytes));
    for (int64_t t = 0; t < n_tok; t++) {
        memcpy(y + t * ld, h + t * n, (size_t)n * sizeof(float));
    }
    return IMC_OK;
}

// yd[n_tok][n_out] = W xdᵀ for more than IMC_CUDA_MMV_MAX_TOK tokens: dequantized row tiles
// then GEMM.
enum imc_status batch_mm(struct imc_cuda_ctx *c, enum imc_type type, const void *wd, int64_t n_out,
                         int64_t n_in, const float *xd, int64_t n_tok, float *yd)
{
    int64_t rows = (int64_t)(TILE_BYTES / ((size_t)n_in * sizeof(float)));
    rows = rows < 1 ? 1 : rows > n_out ? n_out : rows;
    float *tile = NULL;
    if (type != IMC_TYPE_F32) {
        tile = (float *)IMC_CUDA_FN(ctx_dev)(c, CT_W, (size_t)(rows * n_in) * sizeof(float),
                                             "the dequantized weight tile of matmul");
        if (!tile) {
            return IMC_ERR_NOMEM;
        }
    }
    for (int64_t r0 = 0; r0 < n_out; r0 += rows) {
        const int64_t nr = n_out - r0 < rows ? n_out - r0 : rows;
        const float *w = (const float *)wd + r0 * n_in;
        if (tile) {
            IMC_TRY(IMC_CUDA_FN(dequantize)(NULL, type, wd, n_in, r0, nr, IMC_TYPE_F32, tile));
            w = tile;
        }
        enum imc_status st = IMC_ERR_UNSUPPORTED;
        if (c->blas) {
            st = IMC_CUDA_FN(blas_gemm)(c->blas, NULL, w, nr, n_in, xd, n_tok, yd + r0, n_out);
        }
        if (st == IMC_ERR_UNSUPPORTED) {
            st = IMC_CUDA_FN(gemm)(NULL, w, nr, n_in, xd, n_tok, yd + r0, n_out);
        }
        IMC_TRY(st);
    }
    return IMC_OK;
}

enum imc_status t_matmul(const struct imc_exec *ex, float *y, int64_t ldy, const void *w,
                         enum imc_type type, int64_t n_out, int64_t n_in, const float *x,
                         int64_t ldx, int64_t n_tok)
{
    if (!IMC_CUDA_FN(supports_type)(type)) {
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
    IMC_TRY(IMC_CUDA_FN(wcache_get)(&c->wc, w, type, n_out, n_in, &wd));
    const float *xd = rows_up(c, CT_X, x, ldx, n_tok, n_in, "the activations of matmul");
    float *yd = (float *)IMC_CUDA_FN(ctx_dev)(c, CT_Y, (size_t)(n_tok * n_out) * sizeof(float),
                                              "the outputs of matmul");
    if (!xd || !yd) {
        return IMC_ERR_NOMEM;
    }
    const int64_t g = IMC_CUDA_MMV_MAX_TOK;
    if (n_tok <= g) {
        IMC_TRY(IMC_CUDA_FN(mmv)(NULL, type, wd, n_out, n_in, xd, (int)n_tok, yd));
    } else {
        IMC_TRY(batch_mm(c, type, wd, n_out, n_in, xd, n_tok, yd));
    }
    return rows_down(c, y, ldy, yd, n_tok, n_out);
}

enum imc_status t_matmul_group(const struct imc_exec *ex, const struct imc_mm *mm, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const struct imc_mm *m = &mm[i];
        IMC_TRY(
            t_matmul(ex, m->y, m->ldy, m->w, m->type, m->n_out, m->n_in, m->x, m->ldx, m->n_tok));
    }
    return IMC_OK;
}

enum imc_status t_get_rows(const struct imc_exec *ex, float *out, const void *w, enum imc_type type,
                           int64_t n_in, const int32_t *ids, int64_t n)
{
    uint64_t rb = 0;
    if (!IMC_CUDA_FN(supports_type)(type) || !imc_type_row_bytes((uint32_t)type, n_in, &rb)) {
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
    float *od = (float *)IMC_CUDA_FN(ctx_dev)(c, CT_Y, (size_t)(n * n_in) * sizeof(float),
                                              "the outputs of get_rows");
    if (!h || !wd || !od) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t r = 0; r < n; r++) {
        memcpy(h + (size_t)r * rb, (const char *)w + (size_t)ids[r] * rb, (size_t)rb);
    }
    IMC_TRY(IMC_CUDA_FN(copy_to_dev)(NULL, wd, h, bytes));
    IMC_TRY(IMC_CUDA_FN(dequantize)(NULL, type, wd, n_in, 0, n, IMC_TYPE_F32, od));
    return IMC_CUDA_FN(copy_to_host)(NULL, out, od, (size_t)(n * n_in) * sizeof(float));
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
        poison(y, n, n_rows, n);
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
            poison(x + h * ld_head, ld_tok, n_tok, p->n_dims);
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
        poison(x, n, n_rows, n);
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
        poison(out, ldo, n_rows, n);
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
    int64_t *cd = (int64_t *)map(&m, CT_B, count, sizeof(int64_t), true, true);
    if (!xd || !sd || !cd) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(IMC_CUDA_FN(sqacc)(NULL, sd, cd, xd, ldx, n_rows, n_in));
    return map_back(&m);
}

void t_sqacc(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x, int64_t ldx,
             int64_t n_rows, int64_t n_in)
{
    if (n_rows > 0 && n_in > 0 && sqacc_dev(ex, sum2, count, x, ldx, n_rows, n_in) != IMC_OK) {
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

struct imc_backend make_table()
{
    struct imc_backend b;
    memset(&b, 0, sizeof(b));
    b.name = "cuda";
    b.supports = t_supports;
    b.matmul = t_matmul;
    b.matmul_group = t_matmul_group;
    b.get_rows = t_get_rows;
    b.rmsnorm = t_rmsnorm;
    b.rope = t_rope;
    b.softmax = t_softmax;
    b.swiglu = t_swiglu;
    b.attention = t_attention;
    b.moe_route = t_moe_route;
    b.sqacc = t_sqacc;
    b.nll_rows = t_nll_rows;
    b.ctx_new = IMC_CUDA_FN(ctx_new);
    b.ctx_free = IMC_CUDA_FN(ctx_free);
    return b;
}

const struct imc_backend g_table = make_table(); // immutable after static initialization

} // namespace

IMC_CUDA_EXTERN const struct imc_backend *IMC_CUDA_FN(backend)(void)
{
    return &g_table;
}
