/*
 * coordinator/ppl: NLL / perplexity aggregation (coordinator/ppl.h).
 */
#include "coordinator/ppl.h"

#include <math.h>

#include "core/log.h"

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

void imc_ppl_add_chunk(struct imc_ppl_acc *a, const float *logits, int64_t n_ctx, int64_t n_vocab,
                       const int32_t *tokens)
{
    const int64_t first = imc_ppl_first(n_ctx);
    for (int64_t pos = first; pos < n_ctx - 1; pos++) {
        const float *row = logits + (pos - first) * n_vocab;
        imc_ppl_add(a, imc_ppl_nll_row(row, n_vocab, tokens[pos + 1]));
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
