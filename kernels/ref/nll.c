/*
 * kernels/ref/nll: the scoring of logits rows (kernels/kernels.h "scoring of logits rows"): the
 * per-token NLL of `imc perplexity` / `imc imatrix` and the KLD figures of --kld-base, moved down
 * from the coordinator unchanged (the same operations in the same order, so the same bits), so
 * that every op table can run them (kernels/cuda/nll.cu is the device twin).
 */
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "kernels/kernels.h"

float imc_nll_base_logp(const uint16_t *row, int64_t i)
{
    float head[2]; // scale, min_log_prob
    memcpy(head, row, sizeof(head));
    return head[0] * (float)row[4 + i] + head[1];
}

struct imc_nll_row imc_ref_nll_row(const float *logits, int64_t n_vocab, int32_t target,
                                   const uint16_t *base)
{
    IMC_ASSERT(n_vocab >= 1 && target >= 0 && target < n_vocab);
    double max = logits[0];
    int64_t top = 0;
    for (int64_t i = 1; i < n_vocab; i++) {
        if (logits[i] > max) {
            max = logits[i];
            top = i;
        }
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n_vocab; i++) {
        sum += exp((double)logits[i] - max);
    }
    const double shift = max + log(sum); // log q_i = l_i − shift
    struct imc_nll_row r = {
        .nll = shift - (double)logits[target], .top = (int32_t)top, .top_base = -1};
    if (!base) {
        return r;
    }
    double kld = 0.0;
    float lp_max = 0.0f;
    for (int64_t i = 0; i < n_vocab; i++) {
        const float lp = imc_nll_base_logp(base, i);
        if (i == 0 || lp > lp_max) {
            lp_max = lp;
            r.top_base = (int32_t)i;
        }
        if (lp > -16.0f) {
            kld += (double)expf(lp) * ((double)lp - ((double)logits[i] - shift));
        }
    }
    r.nll_base = -(double)imc_nll_base_logp(base, target);
    r.kld = kld;
    return r;
}

void imc_ref_nll_rows(struct imc_nll_row *out, const float *logits, int64_t n_rows, int64_t n_vocab,
                      const int32_t *targets, const uint16_t *base, int64_t ld_base)
{
    for (int64_t r = 0; r < n_rows; r++) {
        out[r] = imc_ref_nll_row(logits + r * n_vocab, n_vocab, targets[r],
                                 base ? base + r * ld_base : NULL);
    }
}
