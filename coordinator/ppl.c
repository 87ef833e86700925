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
    IMC_ASSERT(n_vocab >= 1 && target >= 0 && target < n_vocab);
    double max = logits[0];
    for (int64_t i = 1; i < n_vocab; i++) {
        if (logits[i] > max) {
            max = logits[i];
        }
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n_vocab; i++) {
        sum += exp((double)logits[i] - max);
    }
    return max + log(sum) - (double)logits[target];
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

struct nll_job {
    const float *logits;
    const int32_t *targets; // tokens[first + 1 ..]
    int64_t n_vocab;
    double *nll;
};

static void nll_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const struct nll_job *j = ctx;
    j->nll[task] = imc_ppl_nll_row(j->logits + task * j->n_vocab, j->n_vocab, j->targets[task]);
}

void imc_ppl_chunk_nll(const struct imc_exec *ex, const float *logits, int64_t n_ctx,
                       int64_t n_vocab, const int32_t *tokens, double *nll)
{
    struct nll_job j = {logits, tokens + imc_ppl_first(n_ctx) + 1, n_vocab, nll};
    imc_exec_run(ex, imc_ppl_n_scored(n_ctx), nll_task, &j);
}

void imc_ppl_add_chunk(const struct imc_exec *ex, struct imc_ppl_acc *a, const float *logits,
                       int64_t n_ctx, int64_t n_vocab, const int32_t *tokens)
{
    enum { BLOCK = 512 }; // rows per pool job: nll values on the stack, not the heap
    const int64_t n = imc_ppl_n_scored(n_ctx), first = imc_ppl_first(n_ctx);
    double nll[BLOCK];
    for (int64_t r0 = 0; r0 < n; r0 += BLOCK) {
        const int64_t nb = n - r0 < BLOCK ? n - r0 : BLOCK;
        struct nll_job j = {logits + r0 * n_vocab, tokens + first + 1 + r0, n_vocab, nll};
        imc_exec_run(ex, nb, nll_task, &j);
        for (int64_t r = 0; r < nb; r++) {
            imc_ppl_add(a, nll[r]);
        }
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
