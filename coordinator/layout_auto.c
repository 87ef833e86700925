/*
 * coordinator/layout_auto: the automatic layout (layout_auto.h).
 */
#include "coordinator/layout_auto.h"

#include <stdbool.h>
#include <stdlib.h>

#include "coordinator/model_cost.h"
#include "core/log.h"

static bool layout_valid(const struct imc_model_cost *c, const struct imc_layout *l)
{
    return l->pp <= c->n_layer && (c->n_expert == 0 ? l->ep == 1 : l->ep <= c->n_expert);
}

// Largest rank load of one replica of layout l (the larger of byte and FLOP shares).
static double max_load(const struct imc_model_cost *c, double tb, double tf,
                       const struct imc_layout *l, struct imc_rank_plan *tmp)
{
    struct imc_layout one = {l->pp, l->ep, 1};
    if (imc_plan_split(c, &one, tmp) != IMC_OK) {
        return 1e300;
    }
    double worst = 0;
    for (int r = 0; r < l->pp * l->ep; r++) {
        double b = tb > 0 ? (double)tmp[r].weight_bytes / tb : 0;
        double f = tf > 0 ? tmp[r].flops / tf : 0;
        double v = b > f ? b : f;
        worst = v > worst ? v : worst;
    }
    return worst;
}

enum imc_status imc_layout_auto(const struct imc_model_cost *c, double total_bytes,
                                double total_flops, int n, struct imc_layout *out, double *load)
{
    struct imc_rank_plan *tmp = calloc((size_t)n, sizeof(*tmp));
    if (!tmp) {
        IMC_LOG_ERR("plan: out of memory for %d ranks", n);
        return IMC_ERR_NOMEM;
    }
    bool found = false;
    double best = 0;
    for (int dp = 1; dp <= n && !found; dp++) {
        if (n % dp != 0) {
            continue;
        }
        for (int pp = n / dp; pp >= 1; pp--) { // larger pp first: it wins ties
            struct imc_layout l = {pp, n / dp / pp, dp};
            if (l.pp * l.ep * dp != n || !layout_valid(c, &l)) {
                continue;
            }
            double v = max_load(c, total_bytes, total_flops, &l, tmp);
            if (!found || v < best * 0.95) {
                *out = l;
                best = v;
                found = true;
            }
        }
    }
    free(tmp);
    IMC_ASSERT(found); // pp = ep = 1, dp = n is always valid
    if (load) {
        *load = best;
    }
    return IMC_OK;
}

enum imc_status imc_layout_auto_model(const struct imc_model *m, int n, struct imc_layout *out)
{
    struct imc_layer_cost *layers = calloc((size_t)m->hp.n_layer + 1, sizeof(*layers));
    if (!layers) {
        IMC_LOG_ERR("plan: out of memory for %lld layers", (long long)m->hp.n_layer);
        return IMC_ERR_NOMEM;
    }
    struct imc_model_cost c;
    double tb = 0, tf = 0;
    enum imc_status st = imc_model_cost_build(m, layers, &c);
    if (st == IMC_OK) {
        imc_model_cost_totals(m, &c, &tb, &tf);
        st = imc_layout_auto(&c, tb, tf, n, out, NULL);
    }
    free(layers);
    return st;
}
