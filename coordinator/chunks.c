/*
 * coordinator/chunks: text → chunks of n_ctx tokens (coordinator/chunks.h).
 */
#include "coordinator/chunks.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/log.h"
#include "model/vocab.h"

// Takes ownership of tokens[n_tokens] and checks the length (whole_text: at least 2·n_ctx,
// else one chunk).
static enum imc_status adopt(struct imc_chunks *c, int32_t *tokens, int64_t n_tokens,
                             int64_t n_ctx, int64_t max_chunks, int32_t bos, const char *source,
                             bool whole_text)
{
    memset(c, 0, sizeof(*c));
    if (n_ctx < 4) {
        IMC_LOG_ERR("%s: context of %lld tokens is too small (need at least 4)", source,
                    (long long)n_ctx);
        free(tokens);
        return IMC_ERR_ARG;
    }
    if (whole_text && n_tokens / 2 < n_ctx) {
        IMC_LOG_ERR("%s: text has %lld tokens, need at least 2*ctx = %lld", source,
                    (long long)n_tokens, (long long)(2 * n_ctx));
        free(tokens);
        return IMC_ERR_ARG;
    }
    if (n_tokens < n_ctx) {
        IMC_LOG_ERR("%s: has %lld tokens, need at least ctx = %lld", source, (long long)n_tokens,
                    (long long)n_ctx);
        free(tokens);
        return IMC_ERR_ARG;
    }
    c->tokens = tokens;
    c->n_tokens = n_tokens;
    c->n_ctx = n_ctx;
    c->n_chunk = n_tokens / n_ctx;
    if (max_chunks > 0 && max_chunks < c->n_chunk) {
        c->n_chunk = max_chunks;
    }
    c->bos = bos;
    return IMC_OK;
}

enum imc_status imc_chunks_from_tokens(struct imc_chunks *c, const int32_t *tokens,
                                       int64_t n_tokens, int64_t n_ctx, int64_t max_chunks,
                                       int32_t bos, const char *source)
{
    memset(c, 0, sizeof(*c));
    int32_t *copy = malloc((n_tokens > 0 ? (size_t)n_tokens : 1) * sizeof(int32_t));
    if (!copy) {
        IMC_LOG_ERR("%s: out of memory for %lld tokens", source, (long long)n_tokens);
        return IMC_ERR_NOMEM;
    }
    if (n_tokens > 0) {
        memcpy(copy, tokens, (size_t)n_tokens * sizeof(int32_t));
    }
    return adopt(c, copy, n_tokens, n_ctx, max_chunks, bos, source, false);
}

enum imc_status imc_chunks_from_file(struct imc_chunks *c, const struct imc_vocab *v,
                                     const char *path, int64_t n_ctx, int64_t max_chunks)
{
    memset(c, 0, sizeof(*c));
    char *text = NULL;
    size_t len = 0;
    IMC_TRY(imc_file_read_all(path, &text, &len));
    const bool add_bos = imc_vocab_add_bos(v);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    enum imc_status st = imc_vocab_tokenize(v, text, len, add_bos, false, &ids, &n_ids);
    free(text);
    if (st != IMC_OK) {
        return st; // logged by the tokenizer
    }
    return adopt(c, ids, (int64_t)n_ids, n_ctx, max_chunks, add_bos ? imc_vocab_bos(v) : -1,
                 path, true);
}

void imc_chunks_input(const struct imc_chunks *c, int64_t i, int32_t *dst)
{
    IMC_ASSERT(i >= 0 && i < c->n_chunk);
    memcpy(dst, imc_chunks_text(c, i), (size_t)c->n_ctx * sizeof(int32_t));
    if (c->bos >= 0) {
        dst[0] = c->bos;
    }
}

const int32_t *imc_chunks_text(const struct imc_chunks *c, int64_t i)
{
    IMC_ASSERT(i >= 0 && i < c->n_chunk);
    return c->tokens + i * c->n_ctx;
}

void imc_chunks_free(struct imc_chunks *c)
{
    free(c->tokens);
    memset(c, 0, sizeof(*c));
}
