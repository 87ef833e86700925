/*
 * coordinator/textrun: the shared setup of model-over-text runs (coordinator/textrun.h).
 */
#include "coordinator/textrun.h"

#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/log.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "model/vocab.h"

enum imc_status imc_textrun_open_model(struct imc_textrun *r, const char *path)
{
    memset(r, 0, sizeof(*r));
    IMC_TRY(imc_gguf_open(&r->g, path));
    IMC_TRY(imc_model_load(&r->m, r->g));
    return imc_vocab_load(&r->v, r->g);
}

int64_t imc_textrun_default_ctx(const struct imc_model *m)
{
    const int64_t train = m->hp.n_ctx_train;
    return train > 0 && train < IMC_TEXTRUN_DEFAULT_CTX ? train : IMC_TEXTRUN_DEFAULT_CTX;
}

int64_t imc_textrun_seqs(int64_t batch, int64_t n_ctx)
{
    const int64_t b = batch > 0 ? batch : IMC_TEXTRUN_DEFAULT_BATCH;
    return b / n_ctx > 1 ? b / n_ctx : 1;
}

enum imc_status imc_textrun_resolve_ctx(struct imc_textrun *r, const char *what, const char *path,
                                        int64_t requested)
{
    const int64_t train = r->m->hp.n_ctx_train;
    r->n_ctx = requested > 0 ? requested : imc_textrun_default_ctx(r->m);
    if (requested <= 0 && r->n_ctx < IMC_TEXTRUN_DEFAULT_CTX) {
        IMC_LOG_WRN("%s: %s: default ctx %d exceeds the model's training context; using %lld", what,
                    path, IMC_TEXTRUN_DEFAULT_CTX, (long long)r->n_ctx);
    }
    if (r->n_ctx < 4) {
        IMC_LOG_ERR("%s: %s: --ctx %lld is too small (need at least 4)", what, path,
                    (long long)r->n_ctx);
        return IMC_ERR_ARG;
    }
    if (train > 0 && r->n_ctx > train) {
        IMC_LOG_ERR("%s: %s: --ctx %lld exceeds the model's training context (n_ctx_train = "
                    "%lld)",
                    what, path, (long long)r->n_ctx, (long long)train);
        return IMC_ERR_ARG;
    }
    return IMC_OK;
}

// The special-token path: imc_chunks_from_file tokenizes without parsing special texts.
static enum imc_status load_special(struct imc_textrun *r, const char *path, int64_t max_chunks)
{
    char *text = NULL;
    size_t len = 0;
    IMC_TRY(imc_file_read_all(path, &text, &len));
    const bool add_bos = imc_vocab_add_bos(r->v);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    enum imc_status st = imc_vocab_tokenize(r->v, text, len, add_bos, true, &ids, &n_ids);
    free(text);
    if (st != IMC_OK) {
        return st;
    }
    if ((int64_t)n_ids / 2 < r->n_ctx) {
        IMC_LOG_ERR("%s: text has %zu tokens, need at least 2*ctx = %lld", path, n_ids,
                    (long long)(2 * r->n_ctx));
        free(ids);
        return IMC_ERR_ARG;
    }
    st = imc_chunks_from_tokens(&r->ch, ids, (int64_t)n_ids, r->n_ctx, max_chunks,
                                add_bos ? imc_vocab_bos(r->v) : -1, path);
    free(ids);
    return st;
}

enum imc_status imc_textrun_load_text(struct imc_textrun *r, const char *path, int64_t max_chunks,
                                      bool parse_special)
{
    if (parse_special) {
        return load_special(r, path, max_chunks);
    }
    return imc_chunks_from_file(&r->ch, r->v, path, r->n_ctx, max_chunks);
}

void imc_textrun_print_ppl(FILE *out, int64_t i, double ppl)
{
    fprintf(out, "[%lld]%.4f,", (long long)i, ppl);
    fflush(out);
}

void imc_textrun_free(struct imc_textrun *r)
{
    imc_chunks_free(&r->ch);
    imc_vocab_free(r->v);
    imc_model_free(r->m);
    imc_gguf_free(r->g);
    memset(r, 0, sizeof(*r));
}
