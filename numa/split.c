/*
 * numa/split: the layer split over pipeline stages and the expert split over shards
 * (numa/plan.h). Stage loads are computed by one function (stage_load) from prefix sums, so a
 * value compared twice is always computed the same way.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "numa/plan.h"

// Per-shard costs of the layers as prefix sums, and the totals that normalize them.
struct loads {
    int n;            // layers
    double *pb, *pf;  // [n+1] prefix sums of bytes / FLOPs per shard
    double eb, ef;    // embedding bytes / FLOPs per shard
    double hb, hf;    // head bytes / FLOPs per shard
    double tb, tf;    // totals
};

static enum imc_status check_model(const struct imc_model_cost *m, const struct imc_layout *l)
{
    if (m->n_layer < 1 || !m->layer || m->n_expert < 0) {
        IMC_LOG_ERR("layer split: the model has %d layers and %d experts; expected at least one "
                    "layer",
                    m->n_layer, m->n_expert);
        return IMC_ERR_ARG;
    }
    if (l->pp < 1 || l->ep < 1 || l->dp < 1) {
        IMC_LOG_ERR("layout pp=%d,ep=%d,dp=%d: every factor must be at least 1", l->pp, l->ep,
                    l->dp);
        return IMC_ERR_ARG;
    }
    if (l->pp > m->n_layer) {
        IMC_LOG_ERR("layout pp=%d needs at least %d layers, the model has %d", l->pp, l->pp,
                    m->n_layer);
        return IMC_ERR_ARG;
    }
    if (l->ep > 1 && m->n_expert == 0) {
        IMC_LOG_ERR("layout ep=%d needs a MoE model; this one has no routed experts", l->ep);
        return IMC_ERR_ARG;
    }
    if (l->ep > m->n_expert && m->n_expert > 0) {
        IMC_LOG_ERR("layout ep=%d exceeds the %d experts per layer", l->ep, m->n_expert);
        return IMC_ERR_ARG;
    }
    return IMC_OK;
}

static enum imc_status loads_init(struct loads *ld, const struct imc_model_cost *m, int ep)
{
    // The bottleneck shard holds ceil(E/ep) of the E experts.
    double frac = m->n_expert > 0 ? (double)((m->n_expert + ep - 1) / ep) / m->n_expert : 1.0;
    ld->n = m->n_layer;
    ld->pb = calloc(2 * ((size_t)m->n_layer + 1), sizeof(double));
    if (!ld->pb) {
        IMC_LOG_ERR("out of memory for the costs of %d layers", m->n_layer);
        return IMC_ERR_NOMEM;
    }
    ld->pf = ld->pb + m->n_layer + 1;
    for (int i = 0; i < m->n_layer; i++) {
        const struct imc_layer_cost *c = &m->layer[i];
        ld->pb[i + 1] = ld->pb[i] + (double)c->bytes + (double)c->expert_bytes * frac;
        ld->pf[i + 1] = ld->pf[i] + c->flops / ep + c->expert_flops * frac;
    }
    ld->eb = (double)m->embd.bytes + (double)m->embd.expert_bytes * frac;
    ld->ef = m->embd.flops / ep + m->embd.expert_flops * frac;
    ld->hb = (double)m->head.bytes + (double)m->head.expert_bytes * frac;
    ld->hf = m->head.flops / ep + m->head.expert_flops * frac;
    ld->tb = ld->pb[ld->n] + ld->eb + ld->hb;
    ld->tf = ld->pf[ld->n] + ld->ef + ld->hf;
    return IMC_OK;
}

// Load of a stage owning layers [j, i): the larger of its byte share and its FLOP share; the
// layer count when the model has neither.
static double stage_load(const struct loads *ld, int j, int i)
{
    double b = ld->pb[i] - ld->pb[j] + (j == 0 ? ld->eb : 0) + (i == ld->n ? ld->hb : 0);
    double f = ld->pf[i] - ld->pf[j] + (j == 0 ? ld->ef : 0) + (i == ld->n ? ld->hf : 0);
    if (ld->tb <= 0 && ld->tf <= 0) {
        return (double)(i - j);
    }
    double sb = ld->tb > 0 ? b / ld->tb : 0;
    double sf = ld->tf > 0 ? f / ld->tf : 0;
    return sb > sf ? sb : sf;
}

// best[s][i]: smallest possible largest load of s+1 stages covering layers [0, i).
static double bottleneck(const struct loads *ld, int pp, double *best)
{
    int n = ld->n;
    for (int i = 1; i <= n; i++) {
        best[i] = stage_load(ld, 0, i);
    }
    for (int s = 1; s < pp; s++) {
        double *prev = best + (size_t)(s - 1) * (n + 1), *cur = best + (size_t)s * (n + 1);
        for (int i = s + 1; i <= n; i++) {
            cur[i] = INFINITY;
            for (int j = s; j < i; j++) {
                double a = prev[j], b = stage_load(ld, j, i);
                double v = a > b ? a : b;
                if (v < cur[i]) {
                    cur[i] = v;
                }
            }
        }
    }
    return best[(size_t)(pp - 1) * (n + 1) + n];
}

// Gives each stage, front to back, as many layers as the bottleneck allows while leaving one
// layer per later stage. Returns 0 if the last stage ends above the bottleneck (rounding).
static int greedy_bounds(const struct loads *ld, int pp, double bn, int *bounds)
{
    double lim = bn * (1 + 1e-12);
    bounds[0] = 0;
    for (int s = 0; s < pp - 1; s++) {
        int end = bounds[s] + 1;
        while (end + 1 <= ld->n - (pp - s - 1) && stage_load(ld, bounds[s], end + 1) <= lim) {
            end++;
        }
        bounds[s + 1] = end;
    }
    bounds[pp] = ld->n;
    return stage_load(ld, bounds[pp - 1], ld->n) <= lim;
}

// Reads an optimal split back from the table (fallback when rounding defeats the greedy pass).
static void table_bounds(const struct loads *ld, int pp, const double *best, int *bounds)
{
    int n = ld->n, i = n;
    bounds[pp] = n;
    for (int s = pp - 1; s >= 1; s--) {
        const double *prev = best + (size_t)(s - 1) * (n + 1);
        double target = best[(size_t)s * (n + 1) + i];
        int j = i - 1;
        for (int k = s; k < i; k++) {
            double a = prev[k], b = stage_load(ld, k, i);
            if ((a > b ? a : b) <= target) {
                j = k;
                break;
            }
        }
        bounds[s] = j;
        i = j;
    }
    bounds[0] = 0;
}

enum imc_status imc_plan_stages(const struct imc_model_cost *m, const struct imc_layout *l,
                                int *bounds)
{
    IMC_TRY(check_model(m, l));
    struct loads ld = {0};
    IMC_TRY(loads_init(&ld, m, l->ep));
    double *best = calloc((size_t)l->pp * ((size_t)m->n_layer + 1), sizeof(*best));
    if (!best) {
        free(ld.pb);
        IMC_LOG_ERR("out of memory splitting %d layers over %d stages", m->n_layer, l->pp);
        return IMC_ERR_NOMEM;
    }
    double bn = bottleneck(&ld, l->pp, best);
    if (!greedy_bounds(&ld, l->pp, bn, bounds)) {
        table_bounds(&ld, l->pp, best, bounds);
    }
    free(best);
    free(ld.pb);
    return IMC_OK;
}

// What a shard owning n_own of E experts holds of one cost entry.
// A shard holds the stage's non-expert weights and its own experts; it computes the non-expert
// part for its share (1/ep) of the sequences and its experts for every token of the stage.
static void own_cost(const struct imc_layer_cost *c, int n_own, int n_expert, int ep,
                     struct imc_rank_plan *rp)
{
    uint64_t eb = c->expert_bytes;
    if (n_expert > 0) {
        eb = c->expert_bytes / (uint64_t)n_expert * (uint64_t)n_own +
             c->expert_bytes % (uint64_t)n_expert * (uint64_t)n_own / (uint64_t)n_expert;
        rp->flops += c->flops / ep + c->expert_flops * n_own / n_expert;
    } else {
        rp->flops += c->flops + c->expert_flops;
    }
    rp->weight_bytes += c->bytes + eb;
    rp->expert_bytes += eb;
}

static void even_range(int64_t n, int parts, int i, int64_t *begin, int64_t *end)
{
    IMC_ASSERT(parts >= 1 && i >= 0 && i < parts && n >= 0);
    *begin = n * i / parts;
    *end = n * (i + 1) / parts;
}

void imc_plan_expert_range(int64_t n_expert, int ep, int shard, int64_t *begin, int64_t *end)
{
    even_range(n_expert, ep, shard, begin, end);
}

void imc_plan_seq_range(int64_t n_seq, int ep, int shard, int64_t *begin, int64_t *end)
{
    even_range(n_seq, ep, shard, begin, end);
}

static void fill_rank(const struct imc_model_cost *m, const struct imc_layout *l,
                      const int *bounds, int r, struct imc_rank_plan *rp)
{
    memset(rp, 0, sizeof(*rp));
    rp->rank = r;
    rp->co = imc_layout_coords(l, r);
    rp->layer_begin = bounds[rp->co.stage];
    rp->layer_end = bounds[rp->co.stage + 1];
    int e = m->n_expert;
    int64_t eb, ee;
    imc_plan_expert_range(e, l->ep, rp->co.shard, &eb, &ee);
    rp->expert_begin = (int)eb;
    rp->expert_end = (int)ee;
    int own = rp->expert_end - rp->expert_begin;
    for (int i = rp->layer_begin; i < rp->layer_end; i++) {
        own_cost(&m->layer[i], own, e, l->ep, rp);
    }
    if (rp->co.stage == 0) {
        own_cost(&m->embd, own, e, l->ep, rp);
    }
    if (rp->co.stage == l->pp - 1) {
        own_cost(&m->head, own, e, l->ep, rp);
    }
    rp->numa_node = -1;
    rp->gpu = -1;
}

enum imc_status imc_plan_split(const struct imc_model_cost *m, const struct imc_layout *l,
                               struct imc_rank_plan *out)
{
    int *bounds = calloc((size_t)(l->pp > 0 ? l->pp : 0) + 1, sizeof(*bounds));
    if (!bounds) {
        IMC_LOG_ERR("out of memory for %d stage bounds", l->pp);
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = imc_plan_stages(m, l, bounds);
    if (st != IMC_OK) {
        free(bounds);
        return st;
    }
    int n = l->pp * l->ep * l->dp;
    double total_flops = 0, total_bytes = 0;
    for (int i = 0; i < m->n_layer; i++) {
        total_flops += m->layer[i].flops + m->layer[i].expert_flops;
        total_bytes += (double)m->layer[i].bytes + (double)m->layer[i].expert_bytes;
    }
    total_flops += m->embd.flops + m->embd.expert_flops + m->head.flops + m->head.expert_flops;
    total_bytes += (double)(m->embd.bytes + m->embd.expert_bytes + m->head.bytes +
                            m->head.expert_bytes);
    for (int r = 0; r < n; r++) {
        fill_rank(m, l, bounds, r, &out[r]);
        out[r].compute_share = total_flops > 0   ? out[r].flops / total_flops
                               : total_bytes > 0 ? (double)out[r].weight_bytes / total_bytes
                                                 : 0;
    }
    free(bounds);
    return IMC_OK;
}
