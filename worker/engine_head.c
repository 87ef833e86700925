/*
 * worker/engine_head: the output head, the logits it keeps, and their scoring (worker/engine.h
 * "head and scoring"). On a table with its own memory (the CUDA table) the logits are computed,
 * checked, kept and scored there: imc_engine_head with logits NULL and imc_engine_score_head
 * move no logits at all, only the scores come back. On host tables the head writes the caller's
 * array when given one (kept as borrowed), else the engine's buffer: the bits are the same.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "core/log.h"
#include "worker/engine_priv.h"

void eng_head_forget(struct imc_engine *e)
{
    e->kept = NULL;
    e->n_kept = 0;
}

void eng_head_free(struct imc_engine *e)
{
    if (e->kept_own && e->dev) {
        e->be->buf_free(e->be_ctx, e->kept_own);
    } else {
        free(e->kept_own);
    }
    e->kept_own = NULL;
    e->kept_cap = 0;
    eng_head_forget(e);
}

// The engine's logits buffer for n floats: the table's memory on a table with its own, else host.
static float *kept_buffer(struct imc_engine *e, int64_t n)
{
    if (n <= e->kept_cap) {
        return e->kept_own;
    }
    eng_head_free(e);
    const size_t bytes = (size_t)n * sizeof(float);
    e->kept_own = e->dev ? e->be->buf_alloc(e->be_ctx, bytes) : malloc(bytes);
    if (!e->kept_own) {
        IMC_LOG_ERR("engine: out of %s memory for the head's logits (%zu bytes)",
                    e->dev ? e->be->name : "host", bytes);
        return NULL;
    }
    e->kept_cap = n;
    return e->kept_own;
}

static enum imc_status head_impl(struct imc_engine *e, const float *hidden, int64_t row0,
                                 int64_t n_rows, float *logits)
{
    const struct imc_model *m = e->m;
    const int64_t d = m->hp.n_embd;
    eng_head_forget(e);
    if (row0 < 0 || n_rows < 0 || row0 + n_rows > e->n_seq * e->n_ctx) {
        IMC_LOG_ERR("engine: head rows [%" PRId64 ", +%" PRId64 ") outside the %" PRId64
                    " rows of the last call",
                    row0, n_rows, e->n_seq * e->n_ctx);
        return IMC_ERR_ARG;
    }
    const int64_t v = m->hp.n_vocab;
    // on a table with its own memory: computed, checked and kept there (moved out on request)
    float *y = logits && !e->dev ? logits : kept_buffer(e, n_rows * v);
    if (e->dev && !eng_arena_first(e, e->n_seq * e->n_ctx)) {
        return IMC_ERR_NOMEM;
    }
    struct eng_mark mk = eng_mark(e);
    float *xn = eng_f32(e, n_rows * d);
    if (!xn || !y) {
        eng_release(e, mk);
        return IMC_ERR_NOMEM;
    }
    ENG_TIMED(
        e, IMC_PROF_NORM,
        e->be->rmsnorm(e->ex, xn, hidden + row0 * d, e->output_norm_o, n_rows, d, m->hp.rms_eps));
    enum imc_status st =
        eng_matmul_rows(e, -1, m->output, -1, v, y, v, xn, d, n_rows, e->tok + row0);
    const enum imc_status pst = eng_check_poll(e); // deferred checks: answered here
    st = st != IMC_OK ? st : pst;
    if (st == IMC_OK && logits && y != logits) {
        st = e->be->move_rows(e->ex, logits, NULL, y, NULL, n_rows, v);
    }
    eng_release(e, mk);
    if (st == IMC_OK) {
        e->kept = y;
        e->n_kept = n_rows;
    }
    return st;
}

enum imc_status imc_engine_head(struct imc_engine *e, const float *hidden, int64_t row0,
                                int64_t n_rows, float *logits)
{
    const double t0 = imc_clock_now();
    enum imc_status st = head_impl(e, hidden, row0, n_rows, logits);
    st = st == IMC_OK ? eng_stats_sync(e, false) : st;
    e->prof_total += imc_clock_now() - t0;
    return st;
}

enum imc_status imc_engine_score(struct imc_engine *e, struct imc_nll_row *out, const float *logits,
                                 int64_t n_rows, const int32_t *targets, const uint16_t *base,
                                 int64_t ld_base)
{
    return e->be->nll_rows(e->ex, out, logits, n_rows, e->m->hp.n_vocab, targets, base, ld_base);
}

// Whether rows [r0, r0 + n) are kept (logged when not).
static bool kept_rows(const struct imc_engine *e, int64_t r0, int64_t n, const char *what)
{
    if (r0 >= 0 && n >= 0 && r0 + n <= e->n_kept) {
        return true;
    }
    IMC_LOG_ERR("engine: %s rows [%" PRId64 ", +%" PRId64 ") of the head's logits, which keeps "
                "%" PRId64 " rows",
                what, r0, n, e->n_kept);
    return false;
}

enum imc_status imc_engine_score_head(struct imc_engine *e, struct imc_nll_row *out, int64_t r0,
                                      int64_t n_rows, const int32_t *targets, const uint16_t *base,
                                      int64_t ld_base)
{
    if (!kept_rows(e, r0, n_rows, "scoring")) {
        return IMC_ERR_ARG;
    }
    const int64_t v = e->m->hp.n_vocab;
    return e->be->nll_rows(e->ex, out, e->kept + r0 * v, n_rows, v, targets, base, ld_base);
}

const float *imc_engine_head_rows(struct imc_engine *e, int64_t r0, int64_t n_rows, float *buf)
{
    if (!kept_rows(e, r0, n_rows, "copying")) {
        return NULL;
    }
    const int64_t v = e->m->hp.n_vocab;
    const float *src = e->kept + r0 * v;
    if (!e->dev) {
        return src; // host memory already
    }
    return e->be->move_rows(e->ex, buf, NULL, src, NULL, n_rows, v) == IMC_OK ? buf : NULL;
}
