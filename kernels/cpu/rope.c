/*
 * kernels/cpu/rope: RoPE (normal and NEOX modes, YaRN) on the pool (kernels/kernels.h). Tokens
 * are cut into fixed chunks; each (token, pair) angle is computed once in double and applied to
 * every head in float.
 */
#include <math.h>

#include "kernels/kernels.h"

#define TOKS_PER_TASK 8

struct rope_job {
    const struct imc_rope *p;
    float *x;
    int64_t n_tok, n_head, ld_tok, ld_head;
    const int32_t *pos;
    float corr[2];
    double mag;
};

// theta of pair i at position pos (the formula of imc_ref_rope).
static double pair_theta(const struct rope_job *j, int64_t i, int32_t pos)
{
    const struct imc_rope *p = j->p;
    const double extrap =
        (double)pos * pow((double)p->freq_base, -2.0 * (double)i / (double)p->n_dims);
    const double interp = (double)p->freq_scale * extrap;
    if (p->ext_factor == 0.0f) {
        return interp;
    }
    const double den = fmax(0.001, (double)j->corr[1] - (double)j->corr[0]);
    const double y = ((double)i - (double)j->corr[0]) / den;
    const double mix = (1.0 - fmin(1.0, fmax(0.0, y))) * (double)p->ext_factor;
    return interp * (1.0 - mix) + extrap * mix;
}

static void rope_task(void *ctx, int64_t task, int thread)
{
    const struct rope_job *j = ctx;
    for (int64_t t = task * TOKS_PER_TASK; t < j->n_tok && t < (task + 1) * TOKS_PER_TASK; t++) {
        for (int64_t i = 0; 2 * i < j->p->n_dims; i++) {
            const double theta = pair_theta(j, i, j->pos[t]);
            const float c = (float)(cos(theta) * j->mag), s = (float)(sin(theta) * j->mag);
            float *v = j->x + t * j->ld_tok + (j->p->neox ? i : 2 * i);
            const int64_t o = j->p->neox ? j->p->n_dims / 2 : 1; // the pair's second element
            for (int64_t h = 0; h < j->n_head; h++, v += j->ld_head) {
                const float x0 = v[0], x1 = v[o];
                v[0] = x0 * c - x1 * s;
                v[o] = x0 * s + x1 * c;
            }
        }
    }
}

void imc_cpu_rope(const struct imc_exec *ex, const struct imc_rope *p, float *x, int64_t n_tok,
                  int64_t n_head, int64_t ld_tok, int64_t ld_head, const int32_t *pos)
{
    struct rope_job j = {.p = p, .x = x, .n_tok = n_tok, .n_head = n_head, .ld_tok = ld_tok,
                         .ld_head = ld_head, .pos = pos, .mag = p->attn_factor};
    imc_rope_corr_dims(p, j.corr);
    if (p->ext_factor != 0.0f) {
        j.mag *= 1.0 + 0.1 * log(1.0 / (double)p->freq_scale);
    }
    imc_exec_run(ex, (n_tok + TOKS_PER_TASK - 1) / TOKS_PER_TASK, rope_task, &j);
}
