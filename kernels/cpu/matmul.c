/*
 * kernels/cpu/matmul: y = W x and the row lookup on the pool (kernels/kernels.h).
 *
 * The output is cut into tiles of W rows × a chunk of tokens. Tiles are whole GEMM panels
 * (kernels/cpu/gemm.h: 16 rows, k-major), within a 2 MiB budget and small enough that W has
 * MANY_TILES tiles where it can (twice the pool's threads when that is more: an expert's
 * few-token matmul still feeds every thread); tokens are chunked (TOK_CHUNK) only when W has
 * fewer than MANY_TILES tiles, so each weight row is dequantized once per call. A task packs
 * its W rows into panels in per-thread scratch: quantized rows are dequantized SEG elements at
 * a time, a panel's 16 rows together, into a small buffer transposed into the panel (f16 and
 * bf16 rows by half.h's vector decoders on AVX2: the same floats); f32 rows are packed straight
 * from the mapping. With many tokens it packs the whole tile, then runs one imc_gemm_packed;
 * with at most FUSED_TOKS tokens (decode-sized calls, MoE experts) it multiplies each 16 × SEG
 * block as soon as it is packed, continuing the accumulators through y.
 *
 * Invariant (bitwise): y[t][o] is one float accumulator updated by fmaf(x[t][i], W[o][i], acc)
 * for i = 0, 1, ..., n_in - 1 (gemm.h), so it depends only on x[t], W row o and n_in: never on
 * the thread count, on n_tok, on the other tokens or t's position among them, on the tile, nor
 * on the GEMM path (vnni, AVX2 or generic). MoE experts, which see a varying number of routed tokens,
 * and the batch-size and rank-count invariance of imatrix and perplexity rely on this. (OpenBLAS
 * does not give it: its sgemm result for a row depends on the row's position within the call.)
 *
 * Q8 mode (imc_exec_set_matmul): for weight types with an integer route (kernels/cpu/qmm.h),
 * each call first quantizes its token rows (a pool job over all the group's rows), then the same
 * tiles run imc_qmm_tile on the weights as they lie in the mapping (the AVX2 path repacks a
 * tile's rows, 8 interleaved, into the thread's scratch: 9/8 to 45/32 bytes per weight; for a
 * call of at most imc_qmm_direct_toks tokens it reads them in place). bf16 weights take bmm.h's
 * route in that mode: the token rows converted (to bf16, or split into f32 for the emulations),
 * then imc_bmm_tile on the same tiles. Each output then depends on W row o and x row t only
 * (qmm.h, bmm.h), the same invariant.
 *
 * Workload assumptions: n_in up to ~20k (DeepSeek-V3 ffn_down 18432), n_out up to ~130k
 * (vocab), n_tok from 1 to a few thousand. The tile budget keeps a packed tile <= 2 MiB.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kernels/cpu/bmm.h"
#include "kernels/cpu/cpu_priv.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/qmm.h"
#include "kernels/kernels.h"

#define TILE_BYTES (2 << 20)
#define TILE_MIN IMC_GEMM_NR // tiles are whole GEMM panels (but the last tile of W)
#define TILE_MAX 256
#define TOK_CHUNK 126 // a multiple of IMC_GEMM_MR
#define MANY_TILES 32
#define SEG 256 // elements of a row dequantized at a time (rounded to a multiple of the block)
#define FUSED_TOKS 32 // token counts up to this multiply each weight segment as it is packed

struct mm_job {
    float *y;
    int64_t ldy;
    const uint8_t *w;
    uint64_t row_bytes;
    const struct imc_type_traits *tr; // W's type; NULL for f32 (packed as it is)
    imc_half_fn half;                 // f16/bf16 rows' vector decoder (half.h), or NULL
    int64_t block_size;               // elements per block of W's type
    int64_t seg; // elements dequantized per row at a time (a multiple of block_size)
    int64_t n_out, n_in, n_tok, tile, n_tiles, chunk;
    const float *x;
    int64_t ldx;
    const struct imc_exec *ex;
    enum imc_gemm_path path;
    enum imc_type type;
    bool q8;                // the integer route (qmm.h), for bf16 W bmm.h's: xq holds the x rows
    enum imc_bmm_kernel bk; // bf16 W on the q8 route: bmm.h's kernel
    uint8_t *xq;            // n_tok quantized (bf16: converted) x rows of ldq bytes, caller scratch
    uint64_t ldq; // bytes per xq row: imc_qmm_xrow_bytes(type, n_in) (bf16: imc_bmm_xrow_bytes)
    int failed;   // set (to 1) by a task whose scratch allocation failed
};

// Rows per tile: within the TILE_BYTES budget (4 bytes per weight packed as f32; at most 45/32
// repacked for the integer route, counted as 3/2), and small enough that W has `many` tiles
// where it can (n_out >= many · TILE_MIN), so tokens need no chunking and each tile is
// dequantized once per call. many = MANY_TILES, or twice the pool's threads when that is more
// (a matmul of few tokens, as an expert's, is then still enough tasks for every thread). On
// the integer route tiles are multiples of 32 rows where W has 32 or more (the per-head
// attn_k_b / attn_v_b matmuls of 512 and 128 rows included): the 512-bit tiles multiply pairs
// of 16-row groups (qmm_vnni.c), a group left alone at half their speed.
static int64_t tile_rows(int64_t n_out, int64_t n_in, int64_t many, bool q8)
{
    const int64_t n = n_in > 0 ? n_in : 1;
    int64_t r = q8 ? 2 * TILE_BYTES / (3 * n) : TILE_BYTES / (4 * n);
    const int64_t spread = n_out / many;
    r = spread < r ? spread : r;
    r = r < TILE_MIN ? TILE_MIN : r > TILE_MAX ? TILE_MAX : r;
    const int64_t unit = q8 && n_out >= 2 * TILE_MIN ? 2 * TILE_MIN : TILE_MIN;
    return r < unit ? unit : r / unit * unit;
}

// Packs columns [k0, k0 + kn) of the nr <= NR W rows from row o into the panel slice dst
// (dst[kk·NR + r], gemm.h); quantized rows are dequantized into deq (NR × seg floats) first.
static void pack_seg(const struct mm_job *j, int64_t o, int64_t nr, int64_t k0, int64_t kn,
                     float *dst, float *deq)
{
    if (!j->tr) {
        const uint8_t *w = j->w + (uint64_t)o * j->row_bytes;
        imc_gemm_pack_panel(j->path, dst, (const float *)w + k0, j->n_in, nr, kn);
        return;
    }
    for (int64_t r = 0; r < nr; r++) {
        if (j->half) {
            const uint8_t *w = j->w + (uint64_t)(o + r) * j->row_bytes;
            j->half((const uint16_t *)w + k0, deq + r * j->seg, kn);
        } else {
            imc_type_decode(j->tr, j->w, o + r, j->n_in, k0, kn, deq + r * j->seg);
        }
    }
    imc_gemm_pack_panel(j->path, dst, deq, j->seg, nr, kn);
}

// Packs W rows o0 .. o0+rows-1 (panels of NR × n_in) into bp and multiplies them with tokens
// t0 .. t0+toks-1. Many tokens: the whole tile is packed, then multiplied in one call. Few
// tokens (fused): each panel × seg block is multiplied as soon as it is packed into bp, so the
// weights never leave L1; the accumulators continue through y from one block to the next
// (exact, gemm.h), so the bits are the same either way.
static void mm_run(const struct mm_job *j, int64_t o0, int64_t rows, int64_t t0, int64_t toks,
                   bool fused, float *bp, float *deq)
{
    float *y = j->y + t0 * j->ldy + o0;
    const float *x = j->x + t0 * j->ldx;
    for (int64_t p = 0; p < rows; p += IMC_GEMM_NR) {
        const int64_t nr = rows - p < IMC_GEMM_NR ? rows - p : IMC_GEMM_NR;
        for (int64_t k0 = 0; k0 < j->n_in; k0 += j->seg) {
            const int64_t kn = j->n_in - k0 < j->seg ? j->n_in - k0 : j->seg;
            pack_seg(j, o0 + p, nr, k0, kn, fused ? bp : bp + p * j->n_in + k0 * IMC_GEMM_NR, deq);
            if (fused) {
                imc_gemm_packed(j->path, y + p, j->ldy, x + k0, j->ldx, toks, bp, nr, kn, k0 > 0);
            }
        }
    }
    if (!fused) {
        imc_gemm_packed(j->path, y, j->ldy, x, j->ldx, toks, bp, rows, j->n_in, false);
    }
}

static void mm_task(void *ctx, int64_t task, int thread)
{
    struct mm_job *j = ctx;
    const int64_t o0 = (task % j->n_tiles) * j->tile, t0 = (task / j->n_tiles) * j->chunk;
    const int64_t rows = o0 + j->tile < j->n_out ? j->tile : j->n_out - o0;
    const int64_t toks = t0 + j->chunk < j->n_tok ? j->chunk : j->n_tok - t0;
    if (j->q8) { // the integer route (qmm.h) or, for bf16 W, bmm.h's
        const bool bf = j->type == IMC_TYPE_BF16;
        const uint64_t sb = bf ? imc_bmm_scratch_bytes(j->bk, rows, j->n_in)
                               : imc_qmm_scratch_bytes(j->type, rows, j->n_in);
        float *s = imc_exec_scratch(j->ex, thread, (int64_t)(sb / sizeof(float)) + 16);
        if (!s) {
            __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
            return;
        }
        const uint8_t *w = j->w + (uint64_t)o0 * j->row_bytes, *xq = j->xq + (uint64_t)t0 * j->ldq;
        float *y = j->y + t0 * j->ldy + o0;
        if (bf) {
            imc_bmm_tile(j->bk, w, j->row_bytes, rows, xq, j->ldq, toks, j->n_in, y, j->ldy,
                         imc_gemm_align(s));
        } else {
            imc_qmm_tile(j->path, j->type, w, j->row_bytes, rows, xq, j->ldq, toks, j->n_in, y,
                         j->ldy, s);
        }
        return;
    }
    const bool fused = toks <= FUSED_TOKS;
    const int64_t nb = (fused ? IMC_GEMM_NR * j->seg : imc_gemm_packed_floats(rows, j->n_in)) + 16;
    const int64_t nd = j->tr ? IMC_GEMM_NR * j->seg : 0;
    float *buf = imc_exec_scratch(j->ex, thread, nb + nd);
    if (!buf) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    mm_run(j, o0, rows, t0, toks, fused, imc_gemm_align(buf), buf + nb);
}

// Fills j for y = W x (imc_cpu_matmul's arguments); returns its task count, or -1 after
// logging why the weights cannot be multiplied.
static int64_t mm_setup(struct mm_job *j, const struct imc_exec *ex, const struct imc_mm *m)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)m->type);
    uint64_t rb = 0;
    if (!imc_type_can_decode(tr) || !imc_type_row_bytes((uint32_t)m->type, m->n_in, &rb)) {
        IMC_LOG_ERR("matmul: rows of %lld elements of type %s cannot be dequantized",
                    (long long)m->n_in, imc_type_name((uint32_t)m->type));
        return -1;
    }
    if (m->n_in > INT32_MAX) {
        IMC_LOG_ERR("matmul: rows of %lld elements exceed the supported %d", (long long)m->n_in,
                    INT32_MAX);
        return -1;
    }
    const int64_t bs = tr->block_size, n_tok = m->n_tok;
    *j = (struct mm_job){.y = m->y,
                         .ldy = m->ldy,
                         .w = m->w,
                         .row_bytes = rb,
                         .tr = m->type == IMC_TYPE_F32 ? NULL : tr,
                         .block_size = bs,
                         .seg = bs >= SEG ? bs : SEG / bs * bs,
                         .n_out = m->n_out,
                         .n_in = m->n_in,
                         .n_tok = n_tok,
                         .x = m->x,
                         .ldx = m->ldx,
                         .ex = ex,
                         .path = imc_exec_gemm_path(ex),
                         .type = m->type,
                         .half = imc_cpu_half_decoder(m->type, imc_exec_gemm_path(ex)),
                         .q8 = imc_exec_matmul(ex) == IMC_MATMUL_Q8 &&
                               (imc_qmm_supports(m->type, m->n_in) || m->type == IMC_TYPE_BF16) &&
                               n_tok > 0};
    if (m->type == IMC_TYPE_BF16) {
        j->bk = imc_exec_bmm_kernel(ex); // (the probe's answer and the path: bmm.h)
    }
    const int64_t cut = 2 * (int64_t)imc_exec_cut_threads(ex);
    // bmm (bf16 W): the f32 route's tiles (its emulations split the rows into 4 bytes per weight)
    j->tile = tile_rows(m->n_out, m->n_in, cut > MANY_TILES ? cut : MANY_TILES,
                        j->q8 && m->type != IMC_TYPE_BF16);
    j->n_tiles = (m->n_out + j->tile - 1) / j->tile;
    j->chunk = j->n_tiles >= MANY_TILES || n_tok < 1 ? (n_tok > 0 ? n_tok : 1) : TOK_CHUNK;
    return j->n_tiles * ((n_tok + j->chunk - 1) / j->chunk);
}

static enum imc_status mm_status(const struct mm_job *j)
{
    if (j->failed) {
        IMC_LOG_ERR("matmul: out of memory for a %lld x %lld weight tile", (long long)j->tile,
                    (long long)j->n_in);
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

struct group_job {
    struct mm_job *jobs; // [n]
    int64_t *first;      // [n + 1] first task of each matmul
    int64_t n;
};

// The i whose range [first[i], first[i + 1]) holds task (the last such i: empty ranges skipped).
static int64_t range_of(const int64_t *first, int64_t n, int64_t task)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (first[mid] <= task) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

// Task t of the group: task t - first[i] of the matmul i whose range holds t.
static void group_task(void *ctx, int64_t task, int thread)
{
    const struct group_job *g = ctx;
    const int64_t i = range_of(g->first, g->n, task);
    mm_task(&g->jobs[i], task - g->first[i], thread);
}

#define QUANT_ROWS 8 // token rows quantized per task

// Task t of the quantization job: QUANT_ROWS x rows of the q8 matmul whose range holds t.
static void quant_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const struct group_job *g = ctx;
    const int64_t i = range_of(g->first, g->n, task);
    const struct mm_job *j = &g->jobs[i];
    const int64_t t0 = (task - g->first[i]) * QUANT_ROWS;
    const int64_t rows = j->n_tok - t0 < QUANT_ROWS ? j->n_tok - t0 : QUANT_ROWS;
    if (j->type == IMC_TYPE_BF16) {
        imc_bmm_convert_rows(j->bk, j->x + t0 * j->ldx, j->ldx, rows, j->n_in,
                             j->xq + (uint64_t)t0 * j->ldq, j->ldq);
    } else {
        imc_qmm_quantize_rows(j->path, j->type, j->x + t0 * j->ldx, j->ldx, rows, j->n_in,
                              j->xq + (uint64_t)t0 * j->ldq, j->ldq);
    }
}

// Quantizes the x rows of the group's q8 matmuls into one buffer, the exec's caller scratch
// (reused from call to call: a fresh allocation of several MB per call was paid in page faults),
// as one pool job. IMC_ERR_NOMEM (logged).
static enum imc_status quantize_group(const struct imc_exec *ex, struct group_job *g)
{
    uint8_t *buf = NULL;
    uint64_t bytes = 0;
    for (int64_t i = 0; i < g->n; i++) {
        struct mm_job *j = &g->jobs[i];
        j->ldq = !j->q8                     ? 0
                 : j->type == IMC_TYPE_BF16 ? imc_bmm_xrow_bytes(j->bk, j->n_in)
                                            : imc_qmm_xrow_bytes(j->type, j->n_in);
        bytes += (uint64_t)j->n_tok * j->ldq;
    }
    if (bytes == 0) {
        return IMC_OK;
    }
    buf = bytes <= (uint64_t)INT64_MAX - 3
              ? (uint8_t *)imc_exec_caller_scratch(ex, (int64_t)((bytes + 3) / 4))
              : NULL;
    int64_t *first = malloc((size_t)(g->n + 1) * sizeof(*first));
    if (!buf || !first) {
        IMC_LOG_ERR("matmul: out of memory for %llu bytes of quantized activations",
                    (unsigned long long)bytes);
        free(first);
        return IMC_ERR_NOMEM;
    }
    first[0] = 0;
    for (int64_t i = 0, at = 0; i < g->n; i++) {
        struct mm_job *j = &g->jobs[i];
        j->xq = j->q8 ? buf + at : NULL;
        at += j->n_tok * (int64_t)j->ldq;
        first[i + 1] = first[i] + (j->q8 ? (j->n_tok + QUANT_ROWS - 1) / QUANT_ROWS : 0);
    }
    struct group_job q = {.jobs = g->jobs, .first = first, .n = g->n};
    imc_exec_run(ex, first[g->n], quant_task, &q);
    free(first);
    return IMC_OK;
}

// Sets up and runs the n = g->n matmuls mm as one pool job (after quantizing their rows for the
// q8 route); g's arrays (n jobs, n + 1 task offsets) are the caller's.
static enum imc_status run_group(const struct imc_exec *ex, struct group_job *g,
                                 const struct imc_mm *mm)
{
    enum imc_status st = IMC_OK;
    g->first[0] = 0;
    for (int64_t i = 0; st == IMC_OK && i < g->n; i++) {
        const int64_t k = mm_setup(&g->jobs[i], ex, &mm[i]);
        st = k < 0 ? IMC_ERR_UNSUPPORTED : IMC_OK;
        g->first[i + 1] = g->first[i] + (k > 0 ? k : 0);
    }
    if (st == IMC_OK) {
        st = quantize_group(ex, g);
    }
    if (st == IMC_OK) {
        imc_exec_run(ex, g->first[g->n], group_task, g);
    }
    for (int64_t i = 0; st == IMC_OK && i < g->n; i++) {
        st = mm_status(&g->jobs[i]);
    }
    return st;
}

enum imc_status imc_cpu_matmul(const struct imc_exec *ex, float *y, int64_t ldy, const void *w,
                               enum imc_type type, int64_t n_out, int64_t n_in, const float *x,
                               int64_t ldx, int64_t n_tok)
{
    const struct imc_mm m = {y, ldy, w, type, n_out, n_in, x, ldx, n_tok};
    struct mm_job job;
    int64_t first[2];
    struct group_job g = {.jobs = &job, .first = first, .n = 1}; // nothing on the heap
    return run_group(ex, &g, &m);
}

enum imc_status imc_cpu_matmul_group(const struct imc_exec *ex, const struct imc_mm *mm, int64_t n)
{
    if (n <= 0) {
        return IMC_OK;
    }
    struct group_job g = {.jobs = malloc((size_t)n * sizeof(*g.jobs)),
                          .first = malloc((size_t)(n + 1) * sizeof(*g.first)),
                          .n = n};
    enum imc_status st = IMC_ERR_NOMEM;
    if (g.jobs && g.first) {
        st = run_group(ex, &g, mm);
    } else {
        IMC_LOG_ERR("matmul: out of memory for a group of %lld matmuls", (long long)n);
    }
    free(g.jobs);
    free(g.first);
    return st;
}

struct rows_job {
    float *out;
    const uint8_t *w;
    uint64_t row_bytes;
    const struct imc_type_traits *tr;
    int64_t n_in, n;
    const int32_t *ids;
};

static void rows_task(void *ctx, int64_t task, int thread)
{
    const struct rows_job *j = ctx;
    for (int64_t t = task * 16; t < j->n && t < (task + 1) * 16; t++) {
        imc_type_decode(j->tr, j->w, j->ids[t], j->n_in, 0, j->n_in, j->out + t * j->n_in);
    }
}

enum imc_status imc_cpu_get_rows(const struct imc_exec *ex, float *out, const void *w,
                                 enum imc_type type, int64_t n_in, const int32_t *ids, int64_t n)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    uint64_t rb = 0;
    if (!imc_type_can_decode(tr) || !imc_type_row_bytes((uint32_t)type, n_in, &rb)) {
        IMC_LOG_ERR("get_rows: rows of %lld elements of type %s cannot be dequantized",
                    (long long)n_in, imc_type_name((uint32_t)type));
        return IMC_ERR_UNSUPPORTED;
    }
    struct rows_job j = {out, w, rb, tr, n_in, n, ids};
    imc_exec_run(ex, (n + 15) / 16, rows_task, &j);
    return IMC_OK;
}
