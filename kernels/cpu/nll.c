/*
 * kernels/cpu/nll: imc_cpu_nll_rows (kernels/kernels.h): one pool task per row, each row by
 * imc_ref_nll_row, so the values are bitwise the reference's for any thread count.
 */
#include "kernels/kernels.h"

struct nll_job {
    struct imc_nll_row *out;
    const float *logits;
    const int32_t *targets;
    const uint16_t *base;
    int64_t n_vocab, ld_base;
};

static void nll_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const struct nll_job *j = ctx;
    j->out[task] = imc_ref_nll_row(j->logits + task * j->n_vocab, j->n_vocab, j->targets[task],
                                   j->base ? j->base + task * j->ld_base : NULL);
}

void imc_cpu_nll_rows(const struct imc_exec *ex, struct imc_nll_row *out, const float *logits,
                      int64_t n_rows, int64_t n_vocab, const int32_t *targets, const uint16_t *base,
                      int64_t ld_base)
{
    struct nll_job j = {out, logits, targets, base, n_vocab, ld_base};
    imc_exec_run(ex, n_rows, nll_task, &j);
}
