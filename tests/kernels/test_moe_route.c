/*
 * tests/kernels/test_moe_route: imc_cpu_moe_route against imc_ref_moe_route (softmax and sigmoid
 * gating, selection bias, group-limited top-k, normalization and scale; 1, odd and many tokens),
 * and the reference against hand-computed routings: the bias changes the selection but not the
 * weights, and group limiting can exclude the expert with the best score.
 */
#include <math.h>

#include "kcheck.h"

// Whether every pair of selection scores (and of group scores) of the token differs by more than
// the margin, so float and double implementations must select the same experts.
static bool separated(const struct imc_route_cfg *c, const float *l)
{
    double sel[64], mx = -INFINITY, sum = 0.0;
    for (int64_t e = 0; e < c->n_expert; e++) {
        mx = fmax(mx, l[e]);
    }
    for (int64_t e = 0; e < c->n_expert; e++) {
        sel[e] = c->gating == IMC_ROUTE_SIGMOID ? 1.0 / (1.0 + exp(-(double)l[e])) : exp(l[e] - mx);
        sum += sel[e];
    }
    for (int64_t e = 0; e < c->n_expert; e++) {
        sel[e] = (c->gating == IMC_ROUTE_SIGMOID ? sel[e] : sel[e] / sum) +
                 (c->bias ? c->bias[e] : 0.0);
    }
    for (int64_t a = 0; a < c->n_expert; a++) {
        for (int64_t b = a + 1; b < c->n_expert; b++) {
            if (fabs(sel[a] - sel[b]) <= TOL_ROUTE_MARGIN) {
                return false;
            }
        }
    }
    return true; // group scores are sums of these; a near-tie there is rare and caught below
}

static void run_case(struct imc_exec *ex, struct krng *r, struct imc_route_cfg c, int64_t n_tok)
{
    float *l = kalloc_rand(r, n_tok * c.n_expert, 1.5f);
    int32_t *ids = malloc((size_t)(n_tok * c.n_used) * 4), *rids = malloc((size_t)(n_tok * c.n_used) * 4);
    float *w = malloc((size_t)(n_tok * c.n_used) * 4), *rw = malloc((size_t)(n_tok * c.n_used) * 4);
    CHECK(imc_cpu_moe_route(ex, &c, l, n_tok, ids, w) == IMC_OK, "cpu route");
    CHECK(imc_ref_moe_route(&c, l, n_tok, rids, rw) == IMC_OK, "ref route");
    int compared = 0;
    for (int64_t t = 0; t < n_tok; t++) {
        if (!separated(&c, l + t * c.n_expert)) {
            continue;
        }
        compared++;
        CHECK(memcmp(ids + t * c.n_used, rids + t * c.n_used, (size_t)c.n_used * 4) == 0,
              "token %lld: experts differ (first %d vs %d)", (long long)t, ids[t * c.n_used],
              rids[t * c.n_used]);
        kcompare("route weights", w + t * c.n_used, rw + t * c.n_used, c.n_used, 0.0,
                 TOL_ROUTE_RTOL);
    }
    CHECK(compared * 10 >= n_tok * 9, "only %d of %lld tokens well separated", compared,
          (long long)n_tok);
    free(l);
    free(ids);
    free(rids);
    free(w);
    free(rw);
}

static void spec(void)
{
    // Sigmoid of zero logits: p = 0.5 everywhere; bias decides the selection.
    const float l[4] = {0, 0, 0, 0}, bias[4] = {0.1f, 0.05f, 0.3f, -0.2f};
    struct imc_route_cfg c = {.n_expert = 4, .n_used = 2, .gating = IMC_ROUTE_SIGMOID,
                              .bias = bias, .n_group = 2, .n_group_used = 1, .norm = false,
                              .scale = 1.0f};
    int32_t ids[2];
    float w[2];
    // groups: {0,1} score 0.6 + 0.55 = 1.15 beats {2,3} 0.8 + 0.3 = 1.1 -> experts 0, 1
    imc_ref_moe_route(&c, l, 1, ids, w);
    CHECK(ids[0] == 0 && ids[1] == 1, "grouped ids %d %d, expected 0 1", ids[0], ids[1]);
    CHECK(w[0] == 0.5f && w[1] == 0.5f, "weights %g %g are the unbiased p = 0.5", (double)w[0],
          (double)w[1]);
    c.n_group = 0; // plain top-k: sel 0.8 (e2), 0.6 (e0)
    c.norm = true;
    c.scale = 2.0f;
    imc_ref_moe_route(&c, l, 1, ids, w);
    CHECK(ids[0] == 2 && ids[1] == 0, "plain ids %d %d, expected 2 0", ids[0], ids[1]);
    CHECK_CLOSE(w[0], 1.0, 1e-7, 0); // 0.5 / (0.5 + 0.5) · 2
    // Softmax of ln(1..4): p = 0.1 .. 0.4; top-2 = 3, 2; normalized 4/7, 3/7.
    const float ls[4] = {0.0f, logf(2.0f), logf(3.0f), logf(4.0f)};
    struct imc_route_cfg s = {.n_expert = 4, .n_used = 2, .gating = IMC_ROUTE_SOFTMAX,
                              .norm = false, .scale = 1.0f};
    imc_ref_moe_route(&s, ls, 1, ids, w);
    CHECK(ids[0] == 3 && ids[1] == 2, "softmax ids %d %d", ids[0], ids[1]);
    CHECK_CLOSE(w[0], 0.4, 1e-7, 0);
    CHECK_CLOSE(w[1], 0.3, 1e-7, 0);
    s.norm = true;
    imc_ref_moe_route(&s, ls, 1, ids, w);
    CHECK_CLOSE(w[0], 4.0 / 7.0, 1e-7, 0);
}

int main(void)
{
    struct krng r = {7};
    struct imc_exec *ex = kexec(3);
    float bias[64];
    for (int i = 0; i < 64; i++) {
        bias[i] = krng_normal(&r, 0.05f);
    }
    const struct imc_route_cfg cfgs[] = {
        {.n_expert = 8, .n_used = 2, .gating = IMC_ROUTE_SOFTMAX, .scale = 1.0f},
        {.n_expert = 7, .n_used = 3, .gating = IMC_ROUTE_SOFTMAX, .norm = true, .scale = 1.0f},
        {.n_expert = 16, .n_used = 4, .gating = IMC_ROUTE_SIGMOID, .bias = bias, .n_group = 4,
         .n_group_used = 2, .norm = true, .scale = 2.5f},
        {.n_expert = 64, .n_used = 6, .gating = IMC_ROUTE_SIGMOID, .bias = bias, .n_group = 8,
         .n_group_used = 3, .norm = true, .scale = 2.5f},
        {.n_expert = 5, .n_used = 5, .gating = IMC_ROUTE_SIGMOID, .scale = 1.0f},
    };
    const int64_t toks[] = {1, 5, 37};
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
        for (size_t t = 0; t < 3; t++) {
            run_case(ex, &r, cfgs[i], toks[t]);
        }
    }
    spec();
    imc_exec_free(ex);
    return check_summary();
}
