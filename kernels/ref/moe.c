/*
 * kernels/ref/moe: scalar reference of MoE routing (kernels/kernels.h): softmax or sigmoid
 * scores, selection bias, group-limited top-k (DeepSeek-V3), weight normalization and scale.
 * Scores in double; selection by repeated arg-max (ties: lower index).
 */
#include <math.h>
#include <stdlib.h>

#include "core/log.h"
#include "kernels/kernels.h"

// Index of the largest v[i] with ok[i] (ties: lowest i), or -1.
static int64_t argmax(const double *v, const bool *ok, int64_t n)
{
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++) {
        if (ok[i] && (best < 0 || v[i] > v[best])) {
            best = i;
        }
    }
    return best;
}

// Clears ok[] for the experts of every group outside the n_group_used best (score = sum of the
// two largest sel of the group).
static void limit_groups(const struct imc_route_cfg *c, const double *sel, bool *ok,
                         double *gscore, bool *gok)
{
    const int64_t per = c->n_expert / c->n_group;
    for (int64_t g = 0; g < c->n_group; g++) {
        double b1 = -INFINITY, b2 = -INFINITY;
        for (int64_t i = g * per; i < (g + 1) * per; i++) {
            if (sel[i] > b1) {
                b2 = b1;
                b1 = sel[i];
            } else if (sel[i] > b2) {
                b2 = sel[i];
            }
        }
        gscore[g] = per >= 2 ? b1 + b2 : b1;
        gok[g] = true;
    }
    bool *keep = gok + c->n_group; // second half of the buffer
    for (int64_t g = 0; g < c->n_group; g++) {
        keep[g] = false;
    }
    for (int64_t k = 0; k < c->n_group_used; k++) {
        int64_t g = argmax(gscore, gok, c->n_group);
        gok[g] = false;
        keep[g] = true;
    }
    for (int64_t i = 0; i < c->n_expert; i++) {
        ok[i] = keep[i / per];
    }
}

static void route_token(const struct imc_route_cfg *c, const float *logits, int32_t *ids,
                        float *w, double *buf, bool *bbuf)
{
    double *p = buf, *sel = buf + c->n_expert, *gscore = buf + 2 * c->n_expert;
    bool *ok = bbuf, *gok = bbuf + c->n_expert;
    double mx = -INFINITY, sum = 0.0;
    for (int64_t e = 0; e < c->n_expert; e++) {
        mx = logits[e] > mx ? logits[e] : mx;
    }
    for (int64_t e = 0; e < c->n_expert; e++) {
        const double l = logits[e];
        p[e] = c->gating == IMC_ROUTE_SIGMOID ? 1.0 / (1.0 + exp(-l)) : exp(l - mx);
        sum += p[e];
    }
    for (int64_t e = 0; e < c->n_expert; e++) {
        if (c->gating != IMC_ROUTE_SIGMOID) {
            p[e] /= sum;
        }
        sel[e] = p[e] + (c->bias ? (double)c->bias[e] : 0.0);
        ok[e] = true;
    }
    if (c->n_group > 1) {
        limit_groups(c, sel, ok, gscore, gok);
    }
    double wsum = 0.0;
    for (int64_t k = 0; k < c->n_used; k++) {
        int64_t e = argmax(sel, ok, c->n_expert);
        ok[e] = false;
        ids[k] = (int32_t)e;
        wsum += p[e];
    }
    const double div = c->norm ? fmax(wsum, 6.103515625e-5) : 1.0;
    for (int64_t k = 0; k < c->n_used; k++) {
        w[k] = (float)(p[ids[k]] / div * (double)c->scale);
    }
}

enum imc_status imc_ref_moe_route(const struct imc_route_cfg *c, const float *logits,
                                  int64_t n_tok, int32_t *ids, float *weights)
{
    double *buf = malloc((size_t)(3 * c->n_expert) * sizeof(double));
    bool *bbuf = malloc((size_t)(c->n_expert + 2 * c->n_group + 1) * sizeof(bool));
    if (!buf || !bbuf) {
        free(buf);
        free(bbuf);
        IMC_LOG_ERR("moe_route: out of memory for %lld experts", (long long)c->n_expert);
        return IMC_ERR_NOMEM;
    }
    for (int64_t t = 0; t < n_tok; t++) {
        route_token(c, logits + t * c->n_expert, ids + t * c->n_used, weights + t * c->n_used,
                    buf, bbuf);
    }
    free(bbuf);
    free(buf);
    return IMC_OK;
}
