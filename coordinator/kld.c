/*
 * coordinator/kld: the `_logits_` base file and KL-divergence statistics (coordinator/kld.h).
 */
#include "coordinator/kld.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/ppl.h"
#include "core/log.h"
#include "core/size.h"
#include "kernels/kernels.h"

#define HEADER_BYTES 20 // magic + 3 × int32

_Static_assert(sizeof(float) == 4, "the file stores IEEE binary32 floats");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the file is little-endian");

// ---- row encoding -------------------------------------------------------------------------------

int64_t imc_kld_row_len(int64_t n_vocab)
{
    return 2 * ((n_vocab + 1) / 2) + 4;
}

// Round to nearest, ties to even, as llama.cpp's nearest_int; clamped to the uint16 range.
static uint16_t quantize(float v)
{
    long q = lrintf(v);
    return (uint16_t)(q < 0 ? 0 : q > 65535 ? 65535 : q);
}

void imc_kld_encode_row(const float *logits, int64_t n_vocab, uint16_t *row)
{
    float max = logits[0], min = logits[0];
    for (int64_t i = 1; i < n_vocab; i++) {
        max = logits[i] > max ? logits[i] : max;
        min = logits[i] < min ? logits[i] : min;
    }
    if (min < max - 16) {
        min = max - 16;
    }
    double sum_exp = 0.0;
    for (int64_t i = 0; i < n_vocab; i++) {
        sum_exp += expf(logits[i] - max);
    }
    const float lse = (float)log(sum_exp);
    const float head[2] = {(max - min) / 65535.f, min - max - lse}; // scale, min_log_prob
    memcpy(row, head, sizeof(head));
    uint16_t *q = row + 4;
    memset(q, 0, (size_t)(imc_kld_row_len(n_vocab) - 4) * sizeof(uint16_t));
    if (head[0] != 0.0f) {
        const float inv = 1 / head[0];
        for (int64_t i = 0; i < n_vocab; i++) {
            q[i] = logits[i] > min ? quantize(inv * (logits[i] - min)) : 0;
        }
    }
}

float imc_kld_row_logp(const uint16_t *row, int64_t i)
{
    return imc_nll_base_logp(row, i);
}

// ---- writer -------------------------------------------------------------------------------------

static enum imc_status write_i32(struct imc_kld_writer *w, int64_t v)
{
    int32_t x = (int32_t)v;
    return imc_afile_write(&w->af, &x, sizeof(x));
}

static enum imc_status writer_header(struct imc_kld_writer *w, const int32_t *tokens)
{
    IMC_TRY(imc_afile_write(&w->af, IMC_KLD_MAGIC, 8));
    IMC_TRY(write_i32(w, w->n_ctx));
    IMC_TRY(write_i32(w, w->n_vocab));
    IMC_TRY(write_i32(w, w->n_chunk));
    return imc_afile_write(&w->af, tokens, (size_t)(w->n_chunk * w->n_ctx) * sizeof(int32_t));
}

enum imc_status imc_kld_writer_open(struct imc_kld_writer *w, const char *path, int64_t n_ctx,
                                    int64_t n_vocab, int64_t n_chunk, const int32_t *tokens)
{
    memset(w, 0, sizeof(*w));
    uint64_t n_tok, n_row;
    if (n_ctx < 4 || n_ctx > INT32_MAX || n_vocab < 1 || n_vocab > INT32_MAX - 8 ||
        n_chunk < 1 || n_chunk > INT32_MAX ||
        !imc_size_mul((uint64_t)n_ctx, (uint64_t)n_chunk, &n_tok) || n_tok > INT32_MAX ||
        !imc_size_mul((uint64_t)imc_ppl_n_scored(n_ctx), (uint64_t)imc_kld_row_len(n_vocab),
                      &n_row)) {
        IMC_LOG_ERR("%s: cannot store n_ctx %lld, n_vocab %lld, %lld chunks in a logits file", path,
                    (long long)n_ctx, (long long)n_vocab, (long long)n_chunk);
        return IMC_ERR_ARG;
    }
    w->rows = malloc(n_row * sizeof(uint16_t));
    if (!w->rows) {
        IMC_LOG_ERR("%s: out of memory for %llu log-prob values", path, (unsigned long long)n_row);
        return IMC_ERR_NOMEM;
    }
    w->n_ctx = n_ctx;
    w->n_vocab = n_vocab;
    w->n_chunk = n_chunk;
    enum imc_status st = imc_afile_open(&w->af, path);
    if (st == IMC_OK) {
        st = writer_header(w, tokens);
    }
    if (st != IMC_OK) {
        imc_kld_writer_abort(w);
    }
    return st;
}

struct encode_job {
    const float *logits;
    int64_t n_vocab, len;
    uint16_t *rows;
};

static void encode_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const struct encode_job *j = ctx;
    imc_kld_encode_row(j->logits + task * j->n_vocab, j->n_vocab, j->rows + task * j->len);
}

void imc_kld_encode_chunk(const struct imc_exec *ex, const float *logits, int64_t n_ctx,
                          int64_t n_vocab, uint16_t *rows)
{
    struct encode_job j = {logits, n_vocab, imc_kld_row_len(n_vocab), rows};
    imc_exec_run(ex, imc_ppl_n_scored(n_ctx), encode_task, &j);
}

enum imc_status imc_kld_writer_add_encoded(struct imc_kld_writer *w, const uint16_t *rows)
{
    IMC_ASSERT(w->n_done < w->n_chunk);
    const int64_t n = imc_ppl_n_scored(w->n_ctx), len = imc_kld_row_len(w->n_vocab);
    w->n_done++;
    return imc_afile_write(&w->af, rows, (size_t)(n * len) * sizeof(uint16_t));
}

enum imc_status imc_kld_writer_add_chunk(struct imc_kld_writer *w, const struct imc_exec *ex,
                                        const float *logits)
{
    imc_kld_encode_chunk(ex, logits, w->n_ctx, w->n_vocab, w->rows);
    return imc_kld_writer_add_encoded(w, w->rows);
}

enum imc_status imc_kld_writer_commit(struct imc_kld_writer *w)
{
    if (w->n_done != w->n_chunk) {
        IMC_LOG_ERR("%s: %lld of %lld chunks written; file not saved", w->af.path,
                    (long long)w->n_done, (long long)w->n_chunk);
        imc_kld_writer_abort(w);
        return IMC_ERR_INTERNAL;
    }
    free(w->rows);
    w->rows = NULL;
    return imc_afile_commit(&w->af);
}

void imc_kld_writer_abort(struct imc_kld_writer *w)
{
    imc_afile_abort(&w->af);
    free(w->rows);
    w->rows = NULL;
}

// ---- reader -------------------------------------------------------------------------------------

static int64_t read_i32(const uint8_t *p)
{
    int32_t x;
    memcpy(&x, p, sizeof(x));
    return x;
}

// Expected size of a file with these dimensions; false on overflow.
static bool expected_size(int64_t n_ctx, int64_t n_vocab, int64_t n_chunk, uint64_t *out)
{
    uint64_t tok, rows, vals;
    return imc_size_mul((uint64_t)n_ctx, (uint64_t)n_chunk, &tok) &&
           imc_size_mul(tok, 4, &tok) &&
           imc_size_mul((uint64_t)imc_ppl_n_scored(n_ctx), (uint64_t)n_chunk, &rows) &&
           imc_size_mul(rows, (uint64_t)imc_kld_row_len(n_vocab), &vals) &&
           imc_size_mul(vals, 2, &vals) && imc_size_add(HEADER_BYTES, tok, out) &&
           imc_size_add(*out, vals, out);
}

static enum imc_status base_check(struct imc_kld_base *b, const char *path)
{
    const struct imc_map *m = &b->map;
    if (m->size < HEADER_BYTES || memcmp(m->data, IMC_KLD_MAGIC, 8) != 0) {
        IMC_LOG_ERR("%s: not a logits file (no '_logits_' header)", path);
        return IMC_ERR_FORMAT;
    }
    b->n_ctx = read_i32(m->data + 8);
    b->n_vocab = read_i32(m->data + 12);
    b->n_chunk = read_i32(m->data + 16);
    if (b->n_ctx < 4 || b->n_vocab < 1 || b->n_chunk < 1) {
        IMC_LOG_ERR("%s: bad header: n_ctx %lld, n_vocab %lld, n_chunk %lld", path,
                    (long long)b->n_ctx, (long long)b->n_vocab, (long long)b->n_chunk);
        return IMC_ERR_FORMAT;
    }
    uint64_t want = 0;
    if (!expected_size(b->n_ctx, b->n_vocab, b->n_chunk, &want)) {
        IMC_LOG_ERR("%s: header sizes overflow: n_ctx %lld, n_vocab %lld, n_chunk %lld", path,
                    (long long)b->n_ctx, (long long)b->n_vocab, (long long)b->n_chunk);
        return IMC_ERR_FORMAT;
    }
    if (want != m->size) {
        IMC_LOG_ERR("%s: file has %llu bytes, expected %llu for n_ctx %lld, n_vocab %lld, "
                    "n_chunk %lld (truncated or not a logits file)",
                    path, (unsigned long long)m->size, (unsigned long long)want,
                    (long long)b->n_ctx, (long long)b->n_vocab, (long long)b->n_chunk);
        return IMC_ERR_FORMAT;
    }
    b->tokens = m->data + HEADER_BYTES;
    b->rows = b->tokens + (size_t)(b->n_ctx * b->n_chunk) * 4;
    return IMC_OK;
}

enum imc_status imc_kld_base_open(struct imc_kld_base *b, const char *path)
{
    memset(b, 0, sizeof(*b));
    IMC_TRY(imc_map_open(&b->map, path));
    enum imc_status st = base_check(b, path);
    if (st != IMC_OK) {
        imc_kld_base_close(b);
    }
    return st;
}

void imc_kld_base_close(struct imc_kld_base *b)
{
    imc_map_close(&b->map);
    memset(b, 0, sizeof(*b));
}

void imc_kld_base_tokens(const struct imc_kld_base *b, int64_t c, int32_t *dst)
{
    IMC_ASSERT(c >= 0 && c < b->n_chunk);
    memcpy(dst, b->tokens + (size_t)(c * b->n_ctx) * 4, (size_t)b->n_ctx * sizeof(int32_t));
}

const uint16_t *imc_kld_base_rows(const struct imc_kld_base *b, int64_t c)
{
    IMC_ASSERT(c >= 0 && c < b->n_chunk);
    size_t per_chunk = (size_t)(imc_ppl_n_scored(b->n_ctx) * imc_kld_row_len(b->n_vocab));
    return (const uint16_t *)(const void *)(b->rows + (size_t)c * per_chunk * 2);
}
