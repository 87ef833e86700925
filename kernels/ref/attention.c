/*
 * kernels/ref/attention: scalar reference of causal softmax attention with an optional second
 * value set (kernels/kernels.h). Scores, softmax and weighted sums in double.
 */
#include <math.h>
#include <stdlib.h>

#include "core/log.h"
#include "kernels/kernels.h"

// out_t,h[i] = Σ_{u<=t} p[u] v_u,h'[i] for one (t, h).
static void weighted_sum(float *out, const double *p, int64_t t, const float *v, int64_t ld_tok,
                         int64_t d)
{
    for (int64_t i = 0; i < d; i++) {
        double acc = 0.0;
        for (int64_t u = 0; u <= t; u++) {
            acc += p[u] * v[u * ld_tok + i];
        }
        out[i] = (float)acc;
    }
}

enum imc_status imc_ref_attention(const struct imc_attn_args *a)
{
    double *p = malloc((size_t)(a->n_tok > 0 ? a->n_tok : 1) * sizeof(double));
    if (!p) {
        IMC_LOG_ERR("attention: out of memory for %lld scores", (long long)a->n_tok);
        return IMC_ERR_NOMEM;
    }
    const int64_t grp = a->n_head / a->n_head_kv;
    for (int64_t h = 0; h < a->n_head; h++) {
        const float *k = a->k + (h / grp) * a->k_ld_head;
        for (int64_t t = 0; t < a->n_tok; t++) {
            const float *q = a->q + t * a->q_ld_tok + h * a->q_ld_head;
            double mx = -INFINITY, sum = 0.0;
            for (int64_t u = 0; u <= t; u++) {
                double s = 0.0;
                for (int64_t i = 0; i < a->dk; i++) {
                    s += (double)q[i] * k[u * a->k_ld_tok + i];
                }
                p[u] = s * (double)a->scale;
                mx = p[u] > mx ? p[u] : mx;
            }
            for (int64_t u = 0; u <= t; u++) {
                p[u] = exp(p[u] - mx);
                sum += p[u];
            }
            for (int64_t u = 0; u <= t; u++) {
                p[u] /= sum;
            }
            weighted_sum(a->out + t * a->o_ld_tok + h * a->o_ld_head, p, t,
                         a->v + (h / grp) * a->v_ld_head, a->v_ld_tok, a->dv);
            if (a->v2) {
                const int64_t h2 = h / (a->n_head / a->n_head_v2);
                weighted_sum(a->out2 + t * a->o2_ld_tok + h * a->o2_ld_head, p, t,
                             a->v2 + h2 * a->v2_ld_head, a->v2_ld_tok, a->dv2);
            }
        }
    }
    free(p);
    return IMC_OK;
}
