/*
 * kernels/cpu/moe: MoE routing on the pool (kernels/kernels.h), tokens in fixed chunks. Scores
 * in float (expf); the selection rules are those of imc_ref_moe_route (ties: lower index).
 */
#include <math.h>
#include <stdbool.h>

#include "core/log.h"
#include "kernels/kernels.h"

#define TOKS_PER_TASK 16

struct route_job {
    const struct imc_route_cfg *c;
    const float *logits;
    int64_t n_tok;
    int32_t *ids;
    float *w;
    const struct imc_exec *ex;
    int failed;
};

static int64_t argmax_ok(const float *v, const float *excluded, int64_t n)
{
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++) {
        if (excluded[i] == 0.0f && (best < 0 || v[i] > v[best])) {
            best = i;
        }
    }
    return best;
}

// Marks (excl = 1) the experts outside the n_group_used best groups; gs: scratch of 2 n_group.
static void limit_groups(const struct imc_route_cfg *c, const float *sel, float *excl, float *gs)
{
    const int64_t per = c->n_expert / c->n_group;
    float *gx = gs + c->n_group;
    for (int64_t g = 0; g < c->n_group; g++) {
        float b1 = -INFINITY, b2 = -INFINITY;
        for (int64_t i = g * per; i < (g + 1) * per; i++) {
            if (sel[i] > b1) {
                b2 = b1;
                b1 = sel[i];
            } else if (sel[i] > b2) {
                b2 = sel[i];
            }
        }
        gs[g] = per >= 2 ? b1 + b2 : b1;
        gx[g] = 0.0f;
    }
    for (int64_t k = 0; k < c->n_group_used; k++) {
        gx[argmax_ok(gs, gx, c->n_group)] = 2.0f; // 2 = kept
    }
    for (int64_t i = 0; i < c->n_expert; i++) {
        excl[i] = gx[i / per] == 2.0f ? 0.0f : 1.0f;
    }
}

static void route_one(const struct imc_route_cfg *c, const float *l, int32_t *ids, float *w,
                      float *buf)
{
    float *p = buf, *sel = buf + c->n_expert, *excl = buf + 2 * c->n_expert;
    float mx = -INFINITY;
    double sum = 0.0;
    for (int64_t e = 0; e < c->n_expert; e++) {
        mx = l[e] > mx ? l[e] : mx;
    }
    for (int64_t e = 0; e < c->n_expert; e++) {
        p[e] = c->gating == IMC_ROUTE_SIGMOID ? 1.0f / (1.0f + expf(-l[e])) : expf(l[e] - mx);
        sum += p[e];
    }
    for (int64_t e = 0; e < c->n_expert; e++) {
        p[e] = c->gating == IMC_ROUTE_SIGMOID ? p[e] : (float)(p[e] / sum);
        sel[e] = p[e] + (c->bias ? c->bias[e] : 0.0f);
        excl[e] = 0.0f;
    }
    if (c->n_group > 1) {
        limit_groups(c, sel, excl, buf + 3 * c->n_expert);
    }
    double wsum = 0.0;
    for (int64_t k = 0; k < c->n_used; k++) {
        const int64_t e = argmax_ok(sel, excl, c->n_expert);
        excl[e] = 1.0f;
        ids[k] = (int32_t)e;
        wsum += p[e];
    }
    const float div = c->norm ? (float)fmax(wsum, 6.103515625e-5) : 1.0f;
    for (int64_t k = 0; k < c->n_used; k++) {
        w[k] = p[ids[k]] / div * c->scale;
    }
}

static void route_task(void *ctx, int64_t task, int thread)
{
    struct route_job *j = ctx;
    const struct imc_route_cfg *c = j->c;
    float *buf = imc_exec_scratch(j->ex, thread, 3 * c->n_expert + 2 * c->n_group + 2);
    if (!buf) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int64_t t = task * TOKS_PER_TASK; t < j->n_tok && t < (task + 1) * TOKS_PER_TASK; t++) {
        route_one(c, j->logits + t * c->n_expert, j->ids + t * c->n_used, j->w + t * c->n_used,
                  buf);
    }
}

enum imc_status imc_cpu_moe_route(const struct imc_exec *ex, const struct imc_route_cfg *c,
                                  const float *logits, int64_t n_tok, int32_t *ids,
                                  float *weights)
{
    struct route_job j = {c, logits, n_tok, ids, weights, ex, 0};
    imc_exec_run(ex, (n_tok + TOKS_PER_TASK - 1) / TOKS_PER_TASK, route_task, &j);
    if (j.failed) {
        IMC_LOG_ERR("moe_route: out of memory for %lld experts", (long long)c->n_expert);
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}
