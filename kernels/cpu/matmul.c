/*
 * kernels/cpu/matmul: y = W x and the row lookup on the pool (kernels/kernels.h).
 *
 * The output is cut into tiles of TILE rows of W × a chunk of tokens. A task dequantizes its W
 * rows to f32 into per-thread scratch (f32 weights are used in place) and runs single-threaded
 * cblas_sgemm calls y[t][o0:o1] = x[t] · W[o0:o1]^T over token tiles of exactly TOK_TILE rows.
 * Tokens are chunked (TOK_CHUNK) only when W has fewer than MANY_TILES tiles, so large weights
 * are dequantized once per call.
 *
 * Invariant (bitwise): y[t][o] depends only on x[t], W and the shapes of W, never on the thread
 * count, on n_tok or on the other tokens. OpenBLAS picks its kernel (small-matrix kernel, packed
 * micro-kernels and their remainder paths) from M, N, K, so a varying token count M changed the
 * summation order of a row; here every sgemm call has M = TOK_TILE and N, K fixed by W's shape
 * and tile index. A last partial token tile is copied into zero-padded scratch and its valid
 * rows copied out. MoE experts, which see a varying number of routed tokens, rely on this.
 *
 * Workload assumptions: n_in up to ~20k (DeepSeek-V3 ffn_down 18432), n_out up to ~130k
 * (vocab), n_tok from 1 to a few thousand. The tile budget keeps a dequantized tile ≤ 2 MiB.
 */
#include <cblas.h>
#include <string.h>

#include "core/log.h"
#include "kernels/kernels.h"

#define TILE_BYTES (2 << 20)
#define TILE_MIN 16
#define TILE_MAX 256
#define TOK_CHUNK 128 // a multiple of TOK_TILE
#define TOK_TILE 16 // every sgemm call has M = TOK_TILE (a multiple of micro-kernel heights)
#define MANY_TILES 32

struct mm_job {
    float *y;
    int64_t ldy;
    const uint8_t *w;
    uint64_t row_bytes;
    imc_to_float_fn to_float; // NULL for f32
    int64_t n_out, n_in, n_tok, tile, n_tiles, chunk;
    const float *x;
    int64_t ldx;
    const struct imc_exec *ex;
    int failed; // set (to 1) by a task whose scratch allocation failed
};

static int64_t tile_rows(int64_t n_in)
{
    int64_t r = TILE_BYTES / (4 * (n_in > 0 ? n_in : 1));
    r = r < TILE_MIN ? TILE_MIN : r > TILE_MAX ? TILE_MAX : r;
    return r / TILE_MIN * TILE_MIN;
}

// y[t0 + k][0:rows] = x[t0 + k] · wt^T for k < toks (toks <= TOK_TILE) with one sgemm of
// M = TOK_TILE; a partial tile goes through pad (TOK_TILE × (n_in + rows) floats).
static void mm_tokens(const struct mm_job *j, const float *wt, int64_t rows, int64_t t0,
                      int64_t toks, float *y, float *pad)
{
    const float *x = j->x + t0 * j->ldx;
    int64_t ldx = j->ldx, ldy = j->ldy;
    float *yt = y + t0 * j->ldy;
    const int padded = toks < TOK_TILE;
    if (padded) {
        float *xp = pad, *yp = pad + TOK_TILE * j->n_in;
        for (int64_t k = 0; k < TOK_TILE; k++) {
            if (k < toks) {
                memcpy(xp + k * j->n_in, x + k * j->ldx, (size_t)j->n_in * sizeof(float));
            } else {
                memset(xp + k * j->n_in, 0, (size_t)j->n_in * sizeof(float));
            }
        }
        x = xp;
        yt = yp;
        ldx = j->n_in;
        ldy = rows;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TOK_TILE, (int)rows, (int)j->n_in, 1.0f,
                x, (int)ldx, wt, (int)j->n_in, 0.0f, yt, (int)ldy);
    for (int64_t k = 0; padded && k < toks; k++) {
        memcpy(y + (t0 + k) * j->ldy, yt + k * rows, (size_t)rows * sizeof(float));
    }
}

static void mm_task(void *ctx, int64_t task, int thread)
{
    struct mm_job *j = ctx;
    const int64_t o0 = (task % j->n_tiles) * j->tile, t0 = (task / j->n_tiles) * j->chunk;
    const int64_t rows = o0 + j->tile < j->n_out ? j->tile : j->n_out - o0;
    const int64_t toks = t0 + j->chunk < j->n_tok ? j->chunk : j->n_tok - t0;
    const int64_t wn = j->to_float ? rows * j->n_in : 0;
    float *buf = imc_exec_scratch(j->ex, thread, wn + TOK_TILE * (j->n_in + rows));
    if (!buf) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    const float *wt = (const float *)(j->w + (uint64_t)o0 * j->row_bytes);
    if (j->to_float) {
        for (int64_t r = 0; r < rows; r++) {
            j->to_float(j->w + (uint64_t)(o0 + r) * j->row_bytes, buf + r * j->n_in, j->n_in);
        }
        wt = buf;
    }
    for (int64_t k = 0; k < toks; k += TOK_TILE) {
        mm_tokens(j, wt, rows, t0 + k, toks - k < TOK_TILE ? toks - k : TOK_TILE, j->y + o0,
                  buf + wn);
    }
}

enum imc_status imc_cpu_matmul(const struct imc_exec *ex, float *y, int64_t ldy, const void *w,
                               enum imc_type type, int64_t n_out, int64_t n_in, const float *x,
                               int64_t ldx, int64_t n_tok)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    uint64_t rb = 0;
    if (!tr || (!tr->to_float && type != IMC_TYPE_F32) ||
        !imc_type_row_bytes((uint32_t)type, n_in, &rb)) {
        IMC_LOG_ERR("matmul: rows of %lld elements of type %s cannot be dequantized",
                    (long long)n_in, imc_type_name((uint32_t)type));
        return IMC_ERR_UNSUPPORTED;
    }
    if (n_in > INT32_MAX || n_out > INT32_MAX || n_tok > INT32_MAX || ldx > INT32_MAX ||
        ldy > INT32_MAX) {
        IMC_LOG_ERR("matmul: shape %lld x %lld exceeds the BLAS int range", (long long)n_out,
                    (long long)n_in);
        return IMC_ERR_UNSUPPORTED;
    }
    struct mm_job j = {.y = y, .ldy = ldy, .w = w, .row_bytes = rb,
                       .to_float = type == IMC_TYPE_F32 ? NULL : tr->to_float, .n_out = n_out,
                       .n_in = n_in, .n_tok = n_tok, .tile = tile_rows(n_in), .x = x, .ldx = ldx,
                       .ex = ex};
    j.n_tiles = (n_out + j.tile - 1) / j.tile;
    j.chunk = j.n_tiles >= MANY_TILES || n_tok < 1 ? (n_tok > 0 ? n_tok : 1) : TOK_CHUNK;
    imc_exec_run(ex, j.n_tiles * ((n_tok + j.chunk - 1) / j.chunk), mm_task, &j);
    if (j.failed) {
        IMC_LOG_ERR("matmul: out of memory for a %lld x %lld weight tile", (long long)j.tile,
                    (long long)n_in);
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

struct rows_job {
    float *out;
    const uint8_t *w;
    uint64_t row_bytes;
    imc_to_float_fn to_float;
    int64_t n_in, n;
    const int32_t *ids;
};

static void rows_task(void *ctx, int64_t task, int thread)
{
    const struct rows_job *j = ctx;
    for (int64_t t = task * 16; t < j->n && t < (task + 1) * 16; t++) {
        j->to_float(j->w + (uint64_t)j->ids[t] * j->row_bytes, j->out + t * j->n_in, j->n_in);
    }
}

enum imc_status imc_cpu_get_rows(const struct imc_exec *ex, float *out, const void *w,
                                 enum imc_type type, int64_t n_in, const int32_t *ids, int64_t n)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    uint64_t rb = 0;
    if (!tr || !tr->to_float || !imc_type_row_bytes((uint32_t)type, n_in, &rb)) {
        IMC_LOG_ERR("get_rows: rows of %lld elements of type %s cannot be dequantized",
                    (long long)n_in, imc_type_name((uint32_t)type));
        return IMC_ERR_UNSUPPORTED;
    }
    struct rows_job j = {out, w, rb, tr->to_float, n_in, n, ids};
    imc_exec_run(ex, (n + 15) / 16, rows_task, &j);
    return IMC_OK;
}
