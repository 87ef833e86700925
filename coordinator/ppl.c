/*
 * coordinator/ppl: NLL / perplexity aggregation (coordinator/ppl.h).
 */
#include "coordinator/ppl.h"

#include <math.h>

#include "core/log.h"
#include "kernels/kernels.h"

void imc_ppl_init(struct imc_ppl_acc *a)
{
    a->sum_nll = 0.0;
    a->sum_nll2 = 0.0;
    a->count = 0;
}

double imc_ppl_nll_row(const float *logits, int64_t n_vocab, int32_t target)
{
    return imc_ref_nll_row(logits, n_vocab, target, NULL).nll;
}

void imc_ppl_add(struct imc_ppl_acc *a, double nll)
{
    a->sum_nll += nll;
    a->sum_nll2 += nll * nll;
    a->count++;
}

int64_t imc_ppl_first(int64_t n_ctx)
{
    return n_ctx / 2;
}

int64_t imc_ppl_n_scored(int64_t n_ctx)
{
    return n_ctx - 1 - n_ctx / 2;
}

enum { BLOCK = 512 }; // rows per pool job: their scores on the stack, not the heap

// Scores the chunk's scored rows r0 .. r0 + BLOCK − 1 (fewer at its end) into sc; returns how
// many.
static int64_t score_block(const struct imc_exec *ex, struct imc_nll_row sc[BLOCK],
                           const float *logits, int64_t n_ctx, int64_t n_vocab,
                           const int32_t *tokens, int64_t r0)
{
    const int64_t n = imc_ppl_n_scored(n_ctx), first = imc_ppl_first(n_ctx);
    const int64_t nb = n - r0 < BLOCK ? n - r0 : BLOCK;
    imc_cpu_nll_rows(ex, sc, logits + r0 * n_vocab, nb, n_vocab, tokens + first + 1 + r0, NULL, 0);
    return nb;
}

void imc_ppl_chunk_nll(const struct imc_exec *ex, const float *logits, int64_t n_ctx,
                       int64_t n_vocab, const int32_t *tokens, double *nll)
{
    struct imc_nll_row sc[BLOCK];
    for (int64_t r0 = 0, nb; r0 < imc_ppl_n_scored(n_ctx); r0 += nb) {
        nb = score_block(ex, sc, logits, n_ctx, n_vocab, tokens, r0);
        for (int64_t r = 0; r < nb; r++) {
            nll[r0 + r] = sc[r].nll;
        }
    }
}

void imc_ppl_add_chunk(const struct imc_exec *ex, struct imc_ppl_acc *a, const float *logits,
                       int64_t n_ctx, int64_t n_vocab, const int32_t *tokens)
{
    struct imc_nll_row sc[BLOCK];
    for (int64_t r0 = 0, nb; r0 < imc_ppl_n_scored(n_ctx); r0 += nb) {
        nb = score_block(ex, sc, logits, n_ctx, n_vocab, tokens, r0);
        imc_ppl_add_rows(a, sc, nb);
    }
}

void imc_ppl_add_rows(struct imc_ppl_acc *a, const struct imc_nll_row *rows, int64_t n)
{
    for (int64_t r = 0; r < n; r++) {
        imc_ppl_add(a, rows[r].nll);
    }
}

double imc_ppl_value(const struct imc_ppl_acc *a)
{
    return a->count > 0 ? exp(a->sum_nll / (double)a->count) : NAN;
}

double imc_ppl_error(const struct imc_ppl_acc *a)
{
    if (a->count < 2) {
        return 0.0;
    }
    double n = (double)a->count;
    double mean = a->sum_nll / n;
    double var = a->sum_nll2 / n - mean * mean;
    return var > 0 ? exp(mean) * sqrt(var / (n - 1)) : 0.0;
}
