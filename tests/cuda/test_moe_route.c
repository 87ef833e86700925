/*
 * tests/cuda/test_moe_route: kernels/cuda/moe_route.cu against imc_ref_moe_route: small configs
 * (softmax and sigmoid gating, top-k of all experts, groups of one), DeepSeek-V3's (256 experts,
 * 8 groups of which 4 are kept, top 8, sigmoid, exp_probs_b, norm, scale 2.5), a Kimi-K2-like
 * (384 experts, one group) and a Qwen3-like (128, softmax, norm) routing, over random logits and
 * over tie cases: logits on a grid of 0.5 with a bias of 0 or 0.125 (many exact ties of scores
 * and of group scores), tokens whose logits are all zero (every expert tied), and sigmoid tokens
 * with logits near -16 whose selected weights sum to less than the normalization floor; and rows of
 * NaN / infinite logits, which must still give distinct experts in range. Emulated in
 * every resume order and on the GPU where there is one (tests/cuda/ccheck.h).
 *
 * Tolerance: the kernel does the reference's operations in the reference's order (scores in
 * double, the two order-dependent sums in the reference's order, arg-max under the reference's
 * tie rule), so
 *   emulated  ids and weights bitwise equal (the emulator's exp is libm's, as the reference's);
 *   GPU       ids equal; weights within 2^-22 relative: the device's double exp may differ from
 *             libm's in the last ulp (~1e-16 relative in p), which can move the final rounding
 *             to float by one float ulp (2^-23 relative). The tie grid has non-negative logits,
 *             so no two different score sums are mathematically equal (as sigmoid(x) +
 *             sigmoid(-x) = 1 would be): a last-ulp difference cannot reorder the selection.
 */
#include <math.h>

#include "ccheck.h"

struct rcase {
    struct imc_route_cfg c;
    int64_t n_tok;
    int ties;    // 1: logits on the 0.5 grid (and every 5th token all zero), bias 0 / 0.125
    float shift; // added to the logits of every other token (sigmoid weights under the floor)
};

#define MAX_EXPERT 384

struct rctx {
    float bias[MAX_EXPERT], tie_bias[MAX_EXPERT];
};

static void run_case(const struct cdev *d, const struct rctx *x, struct rcase rc, unsigned seed)
{
    struct imc_route_cfg c = rc.c;
    const int64_t T = rc.n_tok, E = c.n_expert, K = c.n_used;
    struct krng r = {seed};
    float *l = kalloc_rand(&r, T * E, 1.5f);
    if (rc.ties) {
        for (int64_t i = 0; i < T * E; i++) {
            l[i] = (i / E) % 5 == 4 ? 0.0f : (float)(krng_next(&r) % 7) * 0.5f;
        }
    }
    for (int64_t i = 0; i < T * E; i++) {
        l[i] += (i / E) % 2 ? rc.shift : 0.0f;
    }
    const float *hbias = c.bias ? (rc.ties ? x->tie_bias : x->bias) : NULL;
    int32_t *ids = malloc((size_t)(T * K) * 4), *rids = malloc((size_t)(T * K) * 4);
    float *w = malloc((size_t)(T * K) * 4), *rw = malloc((size_t)(T * K) * 4);
    c.bias = hbias;
    CHECK(imc_ref_moe_route(&c, l, T, rids, rw) == IMC_OK, "ref route");
    void *dl = cdev_up(d, l, (size_t)(T * E) * 4);
    void *db = hbias ? cdev_up(d, hbias, (size_t)E * 4) : NULL;
    void *dids = cdev_up(d, NULL, (size_t)(T * K) * 4), *dw = cdev_up(d, NULL, (size_t)(T * K) * 4);
    c.bias = db;
    CHECK(CDEV_FN(d, moe_route)(NULL, &c, dl, T, dids, dw) == IMC_OK, "%s: route launch",
          d->name);
    cdev_down(d, ids, dids, (size_t)(T * K) * 4);
    cdev_down(d, w, dw, (size_t)(T * K) * 4);
    CDEV_FN(d, dev_free)(dl);
    CDEV_FN(d, dev_free)(db);
    char what[128];
    snprintf(what, sizeof(what), "%s route E=%lld k=%lld groups %lld/%lld %s%s T=%lld", d->name,
             (long long)E, (long long)K, (long long)c.n_group, (long long)c.n_group_used,
             c.gating == IMC_ROUTE_SIGMOID ? "sigmoid" : "softmax", rc.ties ? " ties" : "",
             (long long)T);
    for (int64_t t = 0; t < T; t++) {
        CHECK(memcmp(ids + t * K, rids + t * K, (size_t)K * 4) == 0,
              "%s: token %lld: experts differ (first %d vs %d)", what, (long long)t, ids[t * K],
              rids[t * K]);
    }
    if (d->emu) {
        CHECK(memcmp(w, rw, (size_t)(T * K) * 4) == 0, "%s: weights not bitwise equal", what);
    } else {
        kcompare(what, w, rw, T * K, 0.0, 0x1p-22);
    }
    printf("%s: ok\n", what);
    free(l);
    free(ids);
    free(rids);
    free(w);
    free(rw);
}

static void run(const struct cdev *d, void *ctx)
{
    const struct rctx *x = ctx;
    const float *B = x->bias; // placeholder: run_case picks the random or the tie bias
    const struct rcase cases[] = {
        {{.n_expert = 8, .n_used = 2, .gating = IMC_ROUTE_SOFTMAX, .scale = 1.0f}, 5, 0, 0.0f},
        {{.n_expert = 7, .n_used = 3, .gating = IMC_ROUTE_SOFTMAX, .norm = true, .scale = 1.0f},
         37, 0, 0.0f},
        {{.n_expert = 16, .n_used = 4, .gating = IMC_ROUTE_SIGMOID, .bias = B, .n_group = 4,
          .n_group_used = 2, .norm = true, .scale = 2.5f},
         9, 1, 0.0f},
        {{.n_expert = 5, .n_used = 5, .gating = IMC_ROUTE_SIGMOID, .scale = 1.0f}, 3, 0, 0.0f},
        {{.n_expert = 6, .n_used = 2, .gating = IMC_ROUTE_SIGMOID, .bias = B, .n_group = 6,
          .n_group_used = 3, .norm = true, .scale = 1.0f},
         11, 1, 0.0f}, // groups of one expert: the group score is that expert's
        {{.n_expert = 64, .n_used = 6, .gating = IMC_ROUTE_SOFTMAX, .n_group = 8,
          .n_group_used = 3, .norm = false, .scale = 1.0f},
         20, 1, 0.0f},
        {{.n_expert = 256, .n_used = 8, .gating = IMC_ROUTE_SIGMOID, .bias = B, .n_group = 8,
          .n_group_used = 4, .norm = true, .scale = 2.5f},
         40, 0, 0.0f}, // DeepSeek-V3
        {{.n_expert = 64, .n_used = 8, .gating = IMC_ROUTE_SIGMOID, .norm = true, .scale = 1.0f},
         12, 0, -16.0f}, // every other token's top-8 sum under the norm floor 6.103515625e-5
        {{.n_expert = 256, .n_used = 8, .gating = IMC_ROUTE_SIGMOID, .bias = B, .n_group = 8,
          .n_group_used = 4, .norm = true, .scale = 2.5f},
         25, 1, 0.0f},
        {{.n_expert = 384, .n_used = 8, .gating = IMC_ROUTE_SIGMOID, .bias = B, .n_group = 1,
          .norm = true, .scale = 2.827f},
         17, 0, 0.0f}, // Kimi-K2-like
        {{.n_expert = 128, .n_used = 8, .gating = IMC_ROUTE_SOFTMAX, .norm = true, .scale = 1.0f},
         13, 1, 0.0f}, // Qwen3-like
        {{.n_expert = 4, .n_used = 2, .gating = IMC_ROUTE_SOFTMAX, .norm = true,
          .scale = 1.0f},
         1, 1, 0.0f},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(d, x, cases[i], 50u + (unsigned)i);
    }
}

// Non-finite logits (on a GPU the engine's checks answer after the layer, so they can reach the
// router): every token still gets n_used distinct experts in range, in every resume order. Rows:
// all NaN, NaN and +inf mixed, one NaN among finite values, all -inf; softmax, sigmoid, groups.
static void nonfinite(const struct cdev *d, void *ctx)
{
    (void)ctx;
    const struct imc_route_cfg cfgs[] = {
        {.n_expert = 8, .n_used = 2, .gating = IMC_ROUTE_SOFTMAX, .norm = true, .scale = 1.0f},
        {.n_expert = 256,
         .n_used = 8,
         .gating = IMC_ROUTE_SIGMOID,
         .n_group = 8,
         .n_group_used = 4,
         .norm = true,
         .scale = 2.5f},
        {.n_expert = 64, .n_used = 6, .gating = IMC_ROUTE_SIGMOID, .scale = 1.0f}};
    for (size_t c = 0; c < sizeof(cfgs) / sizeof(cfgs[0]); c++) {
        const int64_t T = 4, E = cfgs[c].n_expert, K = cfgs[c].n_used;
        float *l = malloc((size_t)(T * E) * 4);
        for (int64_t e = 0; e < E; e++) {
            l[e] = NAN;
            l[E + e] = e % 3 ? NAN : INFINITY;
            l[2 * E + e] = e == E / 2 ? NAN : (float)e * 0.01f;
            l[3 * E + e] = -INFINITY;
        }
        int32_t *ids = malloc((size_t)(T * K) * 4);
        float *w = malloc((size_t)(T * K) * 4);
        void *dl = cdev_up(d, l, (size_t)(T * E) * 4),
             *dids = cdev_up(d, NULL, (size_t)(T * K) * 4);
        void *dw = cdev_up(d, NULL, (size_t)(T * K) * 4);
        CHECK(CDEV_FN(d, moe_route)(NULL, &cfgs[c], dl, T, dids, dw) == IMC_OK, "%s: launch",
              d->name);
        cdev_down(d, ids, dids, (size_t)(T * K) * 4);
        cdev_down(d, w, dw, (size_t)(T * K) * 4);
        CDEV_FN(d, dev_free)(dl);
        for (int64_t t = 0; t < T; t++) {
            bool ok = true;
            for (int64_t k = 0; k < K; k++) {
                ok = ok && ids[t * K + k] >= 0 && ids[t * K + k] < E;
                for (int64_t j = 0; j < k; j++) {
                    ok = ok && ids[t * K + j] != ids[t * K + k];
                }
            }
            CHECK(ok,
                  "%s: %lld experts, non-finite row %lld: ids out of range or repeated "
                  "(first %d, last %d)",
                  d->name, (long long)E, (long long)t, ids[t * K], ids[t * K + K - 1]);
        }
        free(l);
        free(ids);
        free(w);
    }
}

// Configs the kernel cannot route are refused before any launch.
static void bad_input(void)
{
    struct imc_route_cfg c = {.n_expert = 10, .n_used = 2, .gating = IMC_ROUTE_SIGMOID,
                              .n_group = 4, .n_group_used = 2, .scale = 1.0f};
    CHECK(imc_cuemu_moe_route(NULL, &c, NULL, 3, NULL, NULL) == IMC_ERR_ARG,
          "10 experts in 4 groups accepted");
    c.n_expert = 8;
    c.n_used = 5; // 2 groups of 2 kept: 4 experts
    CHECK(imc_cuemu_moe_route(NULL, &c, NULL, 3, NULL, NULL) == IMC_ERR_ARG,
          "top 5 of 4 reachable experts accepted");
}

int main(void)
{
    struct rctx x;
    struct krng r = {9};
    for (int i = 0; i < MAX_EXPERT; i++) {
        x.bias[i] = krng_normal(&r, 0.05f);
        x.tie_bias[i] = (krng_next(&r) % 2) * 0.125f;
    }
    cdev_run(run, &x);
    cdev_run(nonfinite, NULL);
    bad_input();
    return check_summary();
}
