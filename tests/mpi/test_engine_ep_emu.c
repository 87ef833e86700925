/*
 * tests/mpi/test_engine_ep_emu: expert shards (worker/engine.h "Expert shards") on the emulated
 * CUDA table (tests/cuda/backend_emu.h: kernels/cuda/table.cu on the emulator) under mpirun, the
 * ranks one stage of ep = N shards. What only this test runs on the device table: the routed
 * rows leave the device for MPI (dispatch: gathered from the table's memory into host rows),
 * come back into the experts' gather from host rows, the expert outputs are scattered into host
 * rows for the return all-to-all, and the weighted sum reads them from the host; with
 * --experts-on cpu also the cpu table's experts between the two. The emulator closes the table's
 * buffers to the host between ops, so a host access of the engine's activations crashes a rank.
 *
 * Each rank runs SEQ sequences of N_CTX tokens of its own (the same token stream on every rank,
 * rank r taking sequences r·SEQ ..), on ds2-tiny-3d and qwen3moe-tiny:
 *   - the cpu table with shards: bitwise the single engine on the same sequences (the contract);
 *   - cuda-emu with shards, all-device and hybrid: within max|Δ| / max|logit| <= 2e-5 of the cpu
 *     run (tests/cuda/test_engine_emu's bound: float sums in other orders, derived there), and
 *     the statistics each shard collects (the imatrix collector through the engine's hooks: on
 *     cuda-emu the table's Σx², on host rows for the hybrid's experts) the same entries and
 *     counts, Σx² within 4e-5 of each matrix's largest;
 *   - self-check: a logit moved by 1 exceeds the bound.
 * Broken variant tried by hand: the expert outputs of a shard left in the table's memory (p->out
 * from the activation arena with shards): the return all-to-all reads them on the host and the
 * N >= 2 runs crash (the emulator's closed buffers); the N = 1 run (no exchange) passes.
 */
#include <stdio.h>

#include "tests/cuda/backend_emu.h"
#include "tests/e2e/engine_util.h"
#include "tests/mpi/mpitest.h"
#include "worker/stats_collect.h"

#define N_CTX 24
#define SEQ 2
#define BOUND 2e-5
#define BOUND_STATS 4e-5 // Σx²: twice the relative error of x (tests/cuda/test_engine_emu)

// Logits [SEQ·N_CTX][n_vocab] of this rank's sequences (tokens tok) on table be (NULL: cpu),
// with the stage's expert group c (NULL: a single engine), experts on the cpu table when asked;
// the statistics this shard collects (its own tokens' dense inputs, its experts' rows from every
// shard) folded into im (one chunk; NULL: none) through the imatrix program's collector.
static float *run(const struct imc_model *m, const struct imc_comm *c, const struct imc_backend *be,
                  bool experts_cpu, const int32_t *tok, int64_t seq0, struct imc_imatrix *im)
{
    struct imc_engine_opts o = imc_engine_opts_default();
    o.backend = be;
    o.ep_comm = c;
    o.experts_on_cpu = experts_cpu;
    struct imc_stats_collect *col = NULL;
    struct imc_stats_hooks hk;
    if (im) {
        imc_imatrix_init(im);
        if (imc_stats_collect_init(&col, im) != IMC_OK) {
            return NULL;
        }
        hk = imc_stats_collect_hooks(col);
        o.hooks = &hk;
    }
    const int64_t n = SEQ * N_CTX, d = m->hp.n_embd, v = m->hp.n_vocab;
    float *h = malloc((size_t)(n * d) * sizeof(float));
    float *y = malloc((size_t)(n * v) * sizeof(float));
    struct imc_engine *e = NULL;
    const bool ok = h && y && imc_engine_init(&e, m, &o) == IMC_OK &&
                    imc_engine_embed(e, tok, n, h) == IMC_OK &&
                    imc_engine_layers(e, h, SEQ, N_CTX, seq0) == IMC_OK &&
                    imc_engine_head(e, h, 0, n, y) == IMC_OK;
    imc_engine_free(e);
    free(h);
    const bool folded = ok && (!col || imc_stats_collect_end_chunk(col) == IMC_OK);
    imc_stats_collect_free(col);
    if (!folded) {
        free(y);
        return NULL;
    }
    return y;
}

static void one_preset(const struct imc_comm *c, const char *dir, const char *preset)
{
    struct tmodel t;
    if (tmodel_open(&t, dir, preset) != 0) {
        CHECK(0, "%s: cannot create the model", preset);
        return;
    }
    const int rank = imc_comm_group_rank(c, IMC_GROUP_EXPERT);
    const int size = imc_comm_group_size(c, IMC_GROUP_EXPERT);
    const int64_t n = SEQ * N_CTX, nv = n * t.m->hp.n_vocab;
    int32_t *all = malloc((size_t)(size * n) * sizeof(int32_t));
    ttokens(all, size * n, t.m->hp.n_vocab, 11);
    const int32_t *tok = all + rank * n;
    const int64_t seq0 = (int64_t)rank * SEQ;
    struct imc_imatrix s_cpu, s_emu, s_hyb;
    float *one = run(t.m, NULL, NULL, false, tok, seq0, NULL);
    float *cpu = run(t.m, c, NULL, false, tok, seq0, &s_cpu);
    float *emu = run(t.m, c, tcuda_backend_emu(), false, tok, seq0, &s_emu);
    float *hyb = run(t.m, c, tcuda_backend_emu(), true, tok, seq0, &s_hyb);
    CHECK(one && cpu && emu && hyb, "%s rank %d: a forward failed", preset, rank);
    if (one && cpu && emu && hyb) {
        CHECK(memcmp(one, cpu, (size_t)nv * sizeof(float)) == 0,
              "%s rank %d of %d: cpu shards differ from the single engine (max rel %.3g)", preset,
              rank, size, trel_err(cpu, one, nv));
        const double e1 = trel_err(emu, cpu, nv), e2 = trel_err(hyb, cpu, nv);
        printf("%-14s rank %d of %d: cuda-emu shards vs cpu shards %.3g, hybrid %.3g (bound "
               "%.0e); hybrid vs cuda-emu %.3g\n",
               preset, rank, size, e1, e2, BOUND, trel_err(hyb, emu, nv));
        CHECK(e1 <= BOUND && e2 <= BOUND, "%s rank %d of %d: cuda-emu %.3g, hybrid %.3g", preset,
              rank, size, e1, e2);
        emu[nv / 2] += 1.0f;
        CHECK(trel_err(emu, cpu, nv) > BOUND, "%s: the comparison missed a moved logit", preset);
        const double s1 = tstats_cmp(preset, &s_emu, &s_cpu),
                     s2 = tstats_cmp(preset, &s_hyb, &s_cpu);
        printf("%-14s rank %d of %d: statistics (%lld entries) cuda-emu %.3g, hybrid %.3g (bound "
               "%.0e)\n",
               preset, rank, size, (long long)s_cpu.n_entries, s1, s2, BOUND_STATS);
        CHECK(s1 <= BOUND_STATS && s2 <= BOUND_STATS, "%s rank %d: statistics %.3g, hybrid %.3g",
              preset, rank, s1, s2);
    }
    imc_imatrix_free(&s_cpu);
    imc_imatrix_free(&s_emu);
    imc_imatrix_free(&s_hyb);
    free(one);
    free(cpu);
    free(emu);
    free(hyb);
    free(all);
    tmodel_close(&t);
}

int main(int argc, char **argv)
{
    struct imc_comm *c = mpitest_init(&argc, &argv);
    const int size = imc_comm_size(c);
    CHECK(imc_comm_split_layout(c, 1, size, 1) == IMC_OK, "layout 1x%dx1", size);
    char tag[32], dir[256];
    snprintf(tag, sizeof(tag), "ep_emu_r%d", imc_comm_rank(c));
    tmkdir(dir, sizeof(dir), tag);
    static const char *const presets[] = {"ds2-tiny-3d", "qwen3moe-tiny"};
    for (int i = 0; i < 2; i++) {
        one_preset(c, dir, presets[i]);
    }
    trmdir(dir, presets, 2);
    return mpitest_finish(c);
}
