/*
 * tests/unit/test_plan_split: layouts (parse, check, coordinates) and the layer/expert split of
 * numa/plan.h. Expected stage bounds are worked out by hand in the comments; a brute-force
 * search over every split (with its own load formula) checks optimality on random costs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "numa/plan.h"
#include "tests/check.h"

static void capture(enum imc_log_level level, const char *line, void *user)
{
    (void)level;
    snprintf(user, 256, "%s", line);
}

static void test_layout(void)
{
    struct imc_layout l = {0};
    CHECK(imc_layout_parse("pp=2,ep=1,dp=3", &l) == IMC_OK && l.pp == 2 && l.ep == 1 && l.dp == 3,
          "pp=2,ep=1,dp=3");
    CHECK(imc_layout_parse("dp=4", &l) == IMC_OK && l.pp == 1 && l.ep == 1 && l.dp == 4, "dp=4");
    CHECK(imc_layout_parse("ep=8,pp=2", &l) == IMC_OK && l.pp == 2 && l.ep == 8 && l.dp == 1,
          "any order");
    char line[256] = "";
    imc_log_set_sink(capture, line);
    const char *bad[] = {"", "pp=0", "pp=2,pp=3", "xx=1", "pp=2;ep=1", "pp=", "pp", "pp=-1",
                         ",", "pp=1x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(imc_layout_parse(bad[i], &l) == IMC_ERR_ARG, "'%s' must be rejected", bad[i]);
        CHECK(strncmp(line, "--layout '", 10) == 0, "message for '%s': %s", bad[i], line);
    }
    l = (struct imc_layout){2, 1, 3};
    CHECK(imc_layout_check(&l, 4) == IMC_ERR_ARG, "6 ranks needed");
    CHECK(strcmp(line, "layout pp=2,ep=1,dp=3 needs 6 ranks, the job has 4") == 0, "message: %s",
          line);
    imc_log_set_sink(NULL, NULL);
    CHECK(imc_layout_check(&l, 6) == IMC_OK, "6 ranks fit");

    l = (struct imc_layout){2, 2, 2};
    struct imc_coords co = imc_layout_coords(&l, 5); // 5 = (1*2 + 0)*2 + 1
    CHECK(co.stage == 0 && co.shard == 1 && co.replica == 1, "rank 5: %d %d %d", co.stage,
          co.shard, co.replica);
    co = imc_layout_coords(&l, 6); // 6 = (1*2 + 1)*2 + 0
    CHECK(co.stage == 1 && co.shard == 0 && co.replica == 1, "rank 6");
    int bad_rt = 0;
    for (int r = 0; r < 8; r++) {
        bad_rt += imc_layout_rank(&l, imc_layout_coords(&l, r)) != r;
    }
    CHECK(bad_rt == 0, "coords round trip");
}

// Runs the split of layers with the given bytes/flops (no experts) and checks the bounds.
static void expect_bounds(const uint64_t *bytes, const double *flops, int n, uint64_t embd,
                          uint64_t head, int pp, const int *want)
{
    struct imc_layer_cost lc[16] = {{0}};
    for (int i = 0; i < n; i++) {
        lc[i].bytes = bytes ? bytes[i] : 0;
        lc[i].flops = flops ? flops[i] : 0;
    }
    struct imc_model_cost m = {.n_layer = n, .layer = lc, .embd = {.bytes = embd},
                               .head = {.bytes = head}};
    struct imc_layout l = {pp, 1, 1};
    int b[17] = {0};
    CHECK(imc_plan_stages(&m, &l, b) == IMC_OK, "split %d layers / %d stages", n, pp);
    int same = 1;
    char got[128] = "", exp[128] = "";
    for (int s = 0; s <= pp; s++) {
        same &= b[s] == want[s];
        snprintf(got + strlen(got), sizeof(got) - strlen(got), " %d", b[s]);
        snprintf(exp + strlen(exp), sizeof(exp) - strlen(exp), " %d", want[s]);
    }
    CHECK(same, "bounds%s, expected%s", got, exp);
}

static void test_stages(void)
{
    uint64_t eq[4] = {100, 100, 100, 100};
    expect_bounds(eq, NULL, 4, 0, 0, 2, (int[]){0, 2, 4});
    expect_bounds(eq, NULL, 4, 0, 0, 4, (int[]){0, 1, 2, 3, 4});
    // pp=3: the bottleneck is two layers; front stages take as many as allowed: 2, 1, 1.
    expect_bounds(eq, NULL, 4, 0, 0, 3, (int[]){0, 2, 3, 4});
    // {1,1,1,1,4}: [0,4) and [4,5) both cost 4.
    expect_bounds((uint64_t[]){1, 1, 1, 1, 4}, NULL, 5, 0, 0, 2, (int[]){0, 4, 5});
    // 4 x 10 bytes, embedding 20, head 20: split at 2 gives 40 | 40.
    uint64_t ten[4] = {10, 10, 10, 10};
    expect_bounds(ten, NULL, 4, 20, 20, 2, (int[]){0, 2, 4});
    // head 40: split at 3 gives 50 | 50 (at 2: 40 | 60).
    expect_bounds(ten, NULL, 4, 20, 40, 2, (int[]){0, 3, 4});
    // bytes 10 each (total 40), flops 1,1,1,5 (total 8): at 2 -> max(.5,.25) | max(.5,.75) =
    // .75; at 3 -> max(.75,.375) | max(.25,.625) = .75; tie, front stage takes more: 3.
    expect_bounds(ten, (double[]){1, 1, 1, 5}, 4, 0, 0, 2, (int[]){0, 3, 4});
    // flops only {1,1,1,5}: at 3 -> 3 | 5 (bottleneck 5/8), at 2 -> 2 | 6.
    expect_bounds(NULL, (double[]){1, 1, 1, 5}, 4, 0, 0, 2, (int[]){0, 3, 4});
    // no costs at all: balance layer counts (5 layers: 3 | 2).
    expect_bounds(NULL, NULL, 5, 0, 0, 2, (int[]){0, 3, 5});
}

static void test_experts_and_shares(void)
{
    struct imc_layer_cost lc[4];
    for (int i = 0; i < 4; i++) {
        lc[i] = (struct imc_layer_cost){.bytes = 10, .expert_bytes = 80, .flops = 5,
                                        .expert_flops = 3};
    }
    struct imc_model_cost m = {.n_layer = 4, .layer = lc, .n_expert = 8};
    struct imc_layout l = {2, 2, 1};
    struct imc_rank_plan rp[4];
    CHECK(imc_plan_split(&m, &l, rp) == IMC_OK, "split MoE pp=2 ep=2");
    // rank 1 = stage 0, shard 1: layers [0,2), experts [4,8): 2 * (10 + 80 * 4/8) = 100 bytes,
    // 2 * (5/2 + 3 * 4/8) = 8 FLOPs of 4 * 8 = 32 (its half of the sequences' attention, its
    // experts for every token).
    CHECK(rp[1].co.stage == 0 && rp[1].co.shard == 1, "rank 1 coords");
    CHECK(rp[1].layer_begin == 0 && rp[1].layer_end == 2, "rank 1 layers [%d,%d)",
          rp[1].layer_begin, rp[1].layer_end);
    CHECK(rp[1].expert_begin == 4 && rp[1].expert_end == 8, "rank 1 experts");
    CHECK(rp[1].weight_bytes == 100, "rank 1 bytes %llu", (unsigned long long)rp[1].weight_bytes);
    CHECK_CLOSE(rp[1].compute_share, 8.0 / 32.0, 1e-15, 0);
    double sum = 0;
    for (int r = 0; r < 4; r++) {
        sum += rp[r].compute_share;
    }
    CHECK_CLOSE(sum, 1.0, 1e-15, 0);
    CHECK(rp[2].layer_begin == 2 && rp[2].expert_begin == 0 && rp[2].expert_end == 4,
          "rank 2 = stage 1 shard 0");
    CHECK(rp[0].numa_node == -1 && rp[0].gpu == -1 && rp[0].cpus[0] == '\0', "unplaced");

    // 10 experts over 3 shards: [0,3) [3,6) [6,10); shard 2 holds 4 of 10: 10 + 80*4/10 = 42.
    l = (struct imc_layout){1, 3, 1};
    m.n_expert = 10;
    CHECK(imc_plan_split(&m, &l, rp) == IMC_OK, "split ep=3");
    CHECK(rp[0].expert_end == 3 && rp[1].expert_begin == 3 && rp[1].expert_end == 6 &&
              rp[2].expert_begin == 6 && rp[2].expert_end == 10,
          "expert ranges");
    CHECK(rp[2].weight_bytes == 4 * 42, "shard 2 bytes %llu",
          (unsigned long long)rp[2].weight_bytes);

    // Dense, flops only, head 20, pp=2 dp=2: split 3 | 1 (30 | 10+20); shares .5 each replica.
    struct imc_layer_cost dl[4];
    for (int i = 0; i < 4; i++) {
        dl[i] = (struct imc_layer_cost){.flops = 10};
    }
    struct imc_model_cost dm = {.n_layer = 4, .layer = dl, .head = {.flops = 20}};
    l = (struct imc_layout){2, 1, 2};
    CHECK(imc_plan_split(&dm, &l, rp) == IMC_OK, "split dense pp=2 dp=2");
    CHECK(rp[0].layer_end == 3 && rp[3].layer_begin == 3 && rp[3].co.replica == 1, "3 | 1");
    CHECK_CLOSE(rp[0].compute_share, 0.5, 1e-15, 0);
    CHECK_CLOSE(rp[3].compute_share, 0.5, 1e-15, 0);
}

static void test_errors(void)
{
    struct imc_layer_cost lc[2] = {{.bytes = 1}, {.bytes = 1}};
    struct imc_model_cost m = {.n_layer = 2, .layer = lc};
    int b[8];
    char line[256] = "";
    imc_log_set_sink(capture, line);
    CHECK(imc_plan_stages(&m, &(struct imc_layout){3, 1, 1}, b) == IMC_ERR_ARG, "pp > layers");
    CHECK(strstr(line, "pp=3 needs at least 3 layers, the model has 2") != NULL, "%s", line);
    CHECK(imc_plan_stages(&m, &(struct imc_layout){1, 2, 1}, b) == IMC_ERR_ARG, "ep on dense");
    m.n_expert = 4;
    CHECK(imc_plan_stages(&m, &(struct imc_layout){1, 5, 1}, b) == IMC_ERR_ARG, "ep > experts");
    CHECK(imc_plan_stages(&m, &(struct imc_layout){0, 1, 1}, b) == IMC_ERR_ARG, "pp = 0");
    imc_log_set_sink(NULL, NULL);
}

// Independent bottleneck of a split (test's own formula: flops and bytes, no experts).
static double split_cost(const struct imc_layer_cost *lc, int n, const int *b, int pp)
{
    double tb = 0, tf = 0, worst = 0;
    for (int i = 0; i < n; i++) {
        tb += (double)lc[i].bytes;
        tf += lc[i].flops;
    }
    for (int s = 0; s < pp; s++) {
        double sb = 0, sf = 0;
        for (int i = b[s]; i < b[s + 1]; i++) {
            sb += (double)lc[i].bytes;
            sf += lc[i].flops;
        }
        double v = sb / tb > sf / tf ? sb / tb : sf / tf;
        worst = v > worst ? v : worst;
    }
    return worst;
}

// Best bottleneck over every split of n layers into pp non-empty stages (recursive).
static double brute(const struct imc_layer_cost *lc, int n, int pp, int *b, int s)
{
    if (s == pp) {
        return b[pp - 1] < n ? split_cost(lc, n, b, pp) : 1e300;
    }
    double best = 1e300;
    for (int e = b[s - 1] + 1; e <= n - (pp - s); e++) {
        b[s] = e;
        double v = brute(lc, n, pp, b, s + 1);
        best = v < best ? v : best;
    }
    b[pp] = n;
    return best;
}

static void test_random_optimal(void)
{
    uint64_t x = 12345;
    int bad = 0;
    for (int trial = 0; trial < 200; trial++) {
        struct imc_layer_cost lc[9];
        int n = 2 + trial % 8;
        for (int i = 0; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            lc[i] = (struct imc_layer_cost){.bytes = 1 + (x >> 33) % 1000,
                                            .flops = (double)(1 + (x >> 13) % 1000)};
        }
        int pp = 1 + trial % n;
        int got[10], all[10] = {0};
        all[pp] = n;
        struct imc_model_cost m = {.n_layer = n, .layer = lc};
        if (imc_plan_stages(&m, &(struct imc_layout){pp, 1, 1}, got) != IMC_OK) {
            bad++;
            continue;
        }
        double opt = brute(lc, n, pp, all, 1);
        double mine = split_cost(lc, n, got, pp);
        bad += mine > opt * (1 + 1e-12) || got[0] != 0 || got[pp] != n;
    }
    CHECK(bad == 0, "%d of 200 random splits not optimal", bad);
}

int main(void)
{
    test_layout();
    test_stages();
    test_experts_and_shares();
    test_errors();
    test_random_optimal();
    return check_summary();
}
