/*
 * tests/mpi/test_engine_ep_emu: expert shards (worker/engine.h "Expert shards") on the emulated
 * CUDA table (tests/cuda/backend_emu.h: kernels/cuda/table.cu on the emulator) under mpirun, the
 * ranks one stage of ep = N shards. What only this test runs on the device table: the routed
 * rows exchanged in the tables' memory (backend.h peer_alltoallv, NCCL's calls on the
 * emulator's NCCL) and, with the host exchange, leaving the device for MPI (dispatch: gathered
 * from the table's memory into host rows), coming back into the experts' gather from host rows,
 * the expert outputs scattered into host rows for the return all-to-all, and the weighted sum
 * reading them from the host; with --experts-on cpu also the cpu table's experts between the
 * two. The emulator closes the table's
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
 *   - on cuda-emu the activations' arena is one block, worker/engine_mem.h's bound for the
 *     shard (received rows at their worst), and holds the pass's high-water mark; with the host
 *     exchange (decided in imc_engine_init, before the arena is made) smaller, the rows on the
 *     host: see arena_case (made without the decision in init, its host arena is the peer's).
 *   - the exchange in the tables' memory (the emulator's NCCL over MPI; worker/exchange.c)
 *     against the host exchange (--exchange host) on the same tables: see peer_case; one
 *     shard's NCCL init failing: see init_fails;
 *   - the op table's scratch of each way the rows go, within worker/engine_mem.h's bound slot by
 *     slot, and the copies through the host the same whatever the groups of experts: see
 *     scratch_case.
 * Broken variants tried by hand: the received rows' offsets of peer.cu's all-to-all left at 0
 * (logits off by 0.87 of the largest, statistics inf); the expert outputs in host memory while
 * the shards exchange in the tables' memory (the forward fails: "an index array in the table's
 * memory indexes host rows").
 * The table's move_rows uploading the whole extent of host rows a host index spans (and a host
 * scatter's extent up and down), as it did before: with a group per expert the host exchange
 * copied 3x the bytes of the default block (ds2-tiny-3d, N = 2: 626608 B up against 210352)
 * and its X and Y slots passed their bounds; the bound without the rows sent: its Y slot failed.
 * Earlier (host exchange only): the expert outputs of a shard left in the table's memory (p->out
 * from the activation arena with shards): the return all-to-all read them on the host and the
 * N >= 2 runs crashed (the emulator's closed buffers); the N = 1 run (no exchange) passed.
 */
#include <stdio.h>

#include "tests/cuda/backend_emu.h"
#include "tests/e2e/engine_util.h"
#include "tests/logcap.h"
#include "tests/mpi/mpitest.h"
#include "worker/engine_mem.h"
#define IMC_CUDA_FN(name) imc_cuemu_##name
#include "kernels/cuda/kern_decl.h"
#include "kernels/cuda/table_priv.h" // the table's scratch slots
#undef IMC_CUDA_FN
#include "worker/engine_priv.h" // the activations' arena
#include "worker/stats_collect.h"

#define N_CTX 24
#define SEQ 2
#define BOUND 2e-5
#define BOUND_STATS 4e-5 // Σx²: twice the relative error of x (tests/cuda/test_engine_emu)

// How a run goes and what its table moved.
struct how {
    const struct imc_backend *be; // NULL: cpu
    bool experts_cpu;             // --experts-on cpu
    bool host_xchg;               // engine opts host_exchange (--exchange host)
    // out, on cuda-emu: what the table copied (ctx_traffic) and exchanged between ranks
    size_t up, down, n_up, n_down, n_peer, peer_out, peer_in;
};

// The engine options of a run as h says, with the stage's expert group c (NULL: one engine).
static struct imc_engine_opts how_opts(const struct how *h, const struct imc_comm *c)
{
    struct imc_engine_opts o = imc_engine_opts_default();
    o.backend = h->be;
    o.ep_comm = c;
    o.experts_on_cpu = h->experts_cpu;
    o.host_exchange = h->host_xchg;
    return o;
}

// What the run's cuda-emu table (state ctx) copied and exchanged, into h.
static void how_traffic(struct how *h, const void *ctx)
{
    tcuda_emu_traffic(ctx, &h->up, &h->down, &h->n_up, &h->n_down);
    tcuda_emu_peer(ctx, &h->n_peer, &h->peer_out, &h->peer_in);
}

// Logits [SEQ·N_CTX][n_vocab] of this rank's sequences (tokens tok) run as h says, with the
// stage's expert group c (NULL: a single engine); the statistics this shard collects (its own
// tokens' dense inputs, its experts' rows from every shard) folded into im (one chunk; NULL:
// none) through the imatrix program's collector.
static float *run(const struct imc_model *m, const struct imc_comm *c, struct how *h,
                  const int32_t *tok, int64_t seq0, struct imc_imatrix *im)
{
    struct imc_engine_opts o = how_opts(h, c);
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
    float *x = malloc((size_t)(n * d) * sizeof(float));
    float *y = malloc((size_t)(n * v) * sizeof(float));
    struct imc_engine *e = NULL;
    const bool ok = x && y && imc_engine_init(&e, m, &o) == IMC_OK &&
                    imc_engine_embed(e, tok, n, x) == IMC_OK &&
                    imc_engine_layers(e, x, SEQ, N_CTX, seq0) == IMC_OK &&
                    imc_engine_head(e, x, 0, n, y) == IMC_OK;
    if (ok && h->be == tcuda_backend_emu()) {
        const void *ctx = imc_engine_backend_ctx(e);
        how_traffic(h, ctx);
        // the activations' arena: one block, the bound of worker/engine_mem.h (rows received
        // from every shard at their worst), holding the pass's high-water mark
        const struct eng_arena *a = &e->arena;
        const size_t bound = eng_act_bound(e, n), want = bound > 1 << 20 ? bound : 1 << 20;
        CHECK(a->blk[0].cap == want && !a->blk[1].p && a->hw <= bound,
              "shard of %d: the activations' arena: first block %zu bytes (want %zu), a second "
              "block %s, high-water %zu, bound %zu",
              e->ep_size, a->blk[0].cap, want, a->blk[1].p ? "made" : "not made", a->hw, bound);
    }
    imc_engine_free(e);
    free(x);
    const bool folded = ok && (!col || imc_stats_collect_end_chunk(col) == IMC_OK);
    imc_stats_collect_free(col);
    if (!folded) {
        free(y);
        return NULL;
    }
    return y;
}

// A run of the commands' kind on a shard (embed into the table's memory, layers, the head
// keeping its logits) with the rows exchanged in the tables' memory or through the host, or with
// the experts on the cpu table, and opts.block_bytes of block (0: the default; small: a group
// per expert): each of the table's scratch slots within its bound (worker/engine_mem.h
// imc_engine_scratch_bytes: C, D, E unused). The slots are printed against the bound; the
// traffic into *h.
static void scratch_run(const char *preset, const struct imc_model *m, const struct imc_comm *c,
                        struct how *h, int64_t block, const int32_t *tok, int64_t seq0)
{
    const int rank = imc_comm_group_rank(c, IMC_GROUP_EXPERT);
    const int64_t n = SEQ * N_CTX;
    struct imc_engine_opts o = how_opts(h, c);
    o.block_bytes = block;
    struct imc_engine *e = NULL;
    bool ok = imc_engine_init(&e, m, &o) == IMC_OK;
    float *x = ok ? imc_engine_hidden_alloc(e, n * m->hp.n_embd) : NULL;
    ok = x && imc_engine_embed(e, tok, n, x) == IMC_OK &&
         imc_engine_layers(e, x, SEQ, N_CTX, seq0) == IMC_OK &&
         imc_engine_head(e, x, 0, n, NULL) == IMC_OK;
    CHECK(ok, "%s rank %d: the commands' run (%s%s, block %lld)", preset, rank,
          h->host_xchg ? "host" : "peer", h->experts_cpu ? ", experts on cpu" : "",
          (long long)block);
    if (ok) {
        const void *ctx = imc_engine_backend_ctx(e);
        how_traffic(h, ctx);
        const struct imc_engine_mem_q q = {.n_tok = n,
                                           .expert_begin = e->expert_begin,
                                           .expert_end = e->expert_end,
                                           .ep_size = e->ep_size,
                                           .path = e->path,
                                           .block_bytes = block,
                                           .experts_on_cpu = h->experts_cpu,
                                           .host_rows = h->host_xchg};
        const struct imc_engine_scratch_q sq = {.embed = true};
        struct imc_engine_scratch p;
        const size_t bound = imc_engine_scratch_bytes(m, &q, &sq, &p);
        const size_t *d = ((const struct imc_cuda_ctx *)ctx)->dev_cap;
        const size_t used = d[CT_W] + d[CT_X] + d[CT_Y] + d[CT_A] + d[CT_B];
        CHECK(d[CT_W] <= p.tile && d[CT_X] <= p.x && d[CT_Y] <= p.y && d[CT_A] <= p.a &&
                  d[CT_B] <= p.b && d[CT_C] == 0 && d[CT_D] == 0 && d[CT_E] == 0,
              "%s rank %d (%s%s, block %lld): scratch slots W %zu X %zu Y %zu A %zu B %zu (C %zu "
              "D %zu E %zu) within their bounds %zu %zu %zu %zu %zu",
              preset, rank, h->host_xchg ? "host" : "peer",
              h->experts_cpu ? ", experts on cpu" : "", (long long)block, d[CT_W], d[CT_X], d[CT_Y],
              d[CT_A], d[CT_B], d[CT_C], d[CT_D], d[CT_E], p.tile, p.x, p.y, p.a, p.b);
        printf("%-14s rank %d of %d: %s%s block %-8lld op scratch %zu (x %zu, y %zu, a %zu, b "
               "%zu), bound %zu (%zu %zu %zu %zu); %zu B up, %zu B down\n",
               preset, rank, e->ep_size, h->host_xchg ? "host" : "peer",
               h->experts_cpu ? "+cpu" : "    ", (long long)block, used, d[CT_X], d[CT_Y], d[CT_A],
               d[CT_B], bound, p.x, p.y, p.a, p.b, h->up, h->down);
    }
    imc_engine_free(e);
}

// The activations' arena of a call of 4 x 128 tokens (above the arena's 1 MiB least block) with
// the rows in the tables' memory and through the host: one block, the bound for the way the shards
// agreed on in imc_engine_init, before the first call made it (the host's the smaller with shards).
static void arena_case(const char *preset, const struct imc_model *m, const struct imc_comm *c)
{
    enum { NS = 4, NC = 128 };
    const int rank = imc_comm_group_rank(c, IMC_GROUP_EXPERT);
    const int size = imc_comm_group_size(c, IMC_GROUP_EXPERT);
    int32_t tok[NS * NC];
    ttokens(tok, NS * NC, m->hp.n_vocab, 13 + rank);
    size_t cap[2] = {0, 0};
    for (int host = 0; host < 2; host++) {
        const struct how h = {.be = tcuda_backend_emu(), .host_xchg = host};
        const struct imc_engine_opts o = how_opts(&h, c);
        struct imc_engine *e = NULL;
        bool ok = imc_engine_init(&e, m, &o) == IMC_OK;
        float *x = ok ? imc_engine_hidden_alloc(e, NS * NC * m->hp.n_embd) : NULL;
        ok = x && imc_engine_embed(e, tok, NS * NC, x) == IMC_OK &&
             imc_engine_layers(e, x, NS, NC, (int64_t)rank * NS) == IMC_OK;
        CHECK(ok, "%s rank %d: a call of %d x %d tokens (%s)", preset, rank, NS, NC,
              host ? "host" : "peer");
        if (ok) {
            const size_t bound = eng_act_bound(e, NS * NC);
            cap[host] = e->arena.blk[0].cap;
            CHECK(cap[host] == bound && bound > 1 << 20 && !e->arena.blk[1].p,
                  "%s rank %d (%s): the arena's block %zu B, the bound %zu B", preset, rank,
                  host ? "host" : "peer", cap[host], bound);
        }
        imc_engine_free(e);
    }
    CHECK(size == 1 ? cap[1] == cap[0] : cap[1] < cap[0],
          "%s rank %d of %d: the arena %zu B through the host, %zu B in the tables' memory", preset,
          rank, size, cap[1], cap[0]);
    printf("%-14s rank %d of %d: the activations' arena at %d x %d tokens: %zu B with the rows in "
           "the tables' memory, %zu B through the host\n",
           preset, rank, size, NS, NC, cap[0], cap[1]);
}

// The op scratch of the shards' three ways (rows in the tables' memory, through the host, the
// experts on the cpu table), each at the default block and at a group per expert (block 1):
// within the bound, and the host's ways the same copies whatever the groups.
static void scratch_case(const char *preset, const struct imc_model *m, const struct imc_comm *c,
                         const int32_t *tok, int64_t seq0)
{
    const int rank = imc_comm_group_rank(c, IMC_GROUP_EXPERT);
    for (int way = 0; way < 3; way++) {
        struct how big = {.be = tcuda_backend_emu(), .host_xchg = way > 0, .experts_cpu = way == 2};
        struct how small = big;
        scratch_run(preset, m, c, &big, 0, tok, seq0);
        scratch_run(preset, m, c, &small, 1, tok, seq0);
        CHECK(big.up == small.up && big.down == small.down,
              "%s rank %d way %d: the groups change the copies: %zu B up, %zu B down at the "
              "default block; %zu, %zu with a group per expert",
              preset, rank, way, big.up, big.down, small.up, small.down);
    }
}

// The last shard's NCCL init fails at once (the emulator's IMC_CUEMU_NCCL_FAIL_INIT: as a rank
// whose GPU has no memory left for it): no shard is left waiting in its init (the nonblocking
// init's agreements, kernels/cuda/peer.cu); that rank warns with NCCL's error, and every shard
// falls back to the host exchange, with its bits and no peer call (a single shard exchanges
// nothing and builds no communicator: no warning).
static void init_fails(const char *preset, const struct imc_model *m, const struct imc_comm *c,
                       const int32_t *tok, int64_t seq0)
{
    const int rank = imc_comm_group_rank(c, IMC_GROUP_EXPERT);
    const int size = imc_comm_group_size(c, IMC_GROUP_EXPERT);
    const int64_t nv = SEQ * N_CTX * m->hp.n_vocab;
    char who[16];
    snprintf(who, sizeof(who), "%d", size - 1);
    struct how hf = {.be = tcuda_backend_emu()},
               hh = {.be = tcuda_backend_emu(), .host_xchg = true};
    struct logcap lc;
    setenv("IMC_CUEMU_NCCL_FAIL_INIT", who, 1);
    logcap_start(&lc);
    float *failed = run(m, c, &hf, tok, seq0, NULL);
    logcap_stop();
    unsetenv("IMC_CUEMU_NCCL_FAIL_INIT");
    float *host = run(m, c, &hh, tok, seq0, NULL);
    CHECK(failed && host, "%s rank %d: a forward failed after a failed NCCL init", preset, rank);
    const bool warned = strstr(lc.text, "ncclCommInitRankConfig") &&
                        strstr(lc.text, "unhandled system error") &&
                        strstr(lc.text, "the group's rows go through the host");
    CHECK(rank == size - 1 && size > 1 ? warned && lc.n_wrn == 1 : lc.n_wrn == 0,
          "%s rank %d of %d: after rank %d's NCCL init failed: %d warnings: %s", preset, rank, size,
          size - 1, lc.n_wrn, lc.text);
    CHECK(hf.n_peer == 0, "%s rank %d: %zu peer calls after a failed NCCL init", preset, rank,
          hf.n_peer);
    CHECK(failed && host && memcmp(failed, host, (size_t)nv * sizeof(float)) == 0,
          "%s rank %d: the fallback after a failed NCCL init changed the bits", preset, rank);
    free(failed);
    free(host);
}

// The exchange in the tables' memory (backend.h peer_alltoallv: NCCL on a GPU, the emulator's
// NCCL over MPI here) against the host exchange on the same tables: the same bits, the same
// statistics; no row through the host: the downloads the host exchange makes for the rows it
// sends (n_pair per MoE layer at dispatch, the received pairs' outputs at combine) are exactly
// the bytes the peer exchange sends instead, one call per dispatch and one per combine; a
// single shard exchanges nothing. Then the fallbacks: one shard asking for the host exchange, or
// one shard on the cpu table, makes every shard use the host (no peer call anywhere), with the
// same bits as the host exchange (cuda-emu shards) or within the bound (the mixed stage).
static void peer_case(const char *preset, const struct imc_model *m, const struct imc_comm *c,
                      const int32_t *tok, int64_t seq0, const float *cpu)
{
    const int rank = imc_comm_group_rank(c, IMC_GROUP_EXPERT);
    const int size = imc_comm_group_size(c, IMC_GROUP_EXPERT);
    const int64_t nv = SEQ * N_CTX * m->hp.n_vocab;
    int64_t n_moe = 0;
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        n_moe += m->layers[il].is_moe;
    }
    const size_t pair_bytes =
        (size_t)(SEQ * N_CTX * m->hp.n_expert_used * m->hp.n_embd) * sizeof(float);
    struct imc_imatrix s_peer, s_host;
    struct how hp = {.be = tcuda_backend_emu()},
               hh = {.be = tcuda_backend_emu(), .host_xchg = true};
    struct how h1 = {.be = tcuda_backend_emu(), .host_xchg = rank == size - 1};
    struct how hm = {.be = rank == 0 ? NULL : tcuda_backend_emu()};
    float *peer = run(m, c, &hp, tok, seq0, &s_peer);
    float *host = run(m, c, &hh, tok, seq0, &s_host);
    float *one = run(m, c, &h1, tok, seq0, NULL);
    float *mix = run(m, c, &hm, tok, seq0, NULL);
    CHECK(peer && host && one && mix, "%s rank %d: a forward failed", preset, rank);
    if (peer && host && one && mix) {
        CHECK(memcmp(peer, host, (size_t)nv * sizeof(float)) == 0,
              "%s rank %d of %d: the peer exchange's logits differ from the host exchange's (max "
              "rel %.3g)",
              preset, rank, size, trel_err(peer, host, nv));
        const double sd = tstats_cmp(preset, &s_peer, &s_host);
        CHECK(sd == 0, "%s rank %d: statistics of the peer exchange differ by %.3g", preset, rank,
              sd);
        const size_t want_calls = size > 1 ? (size_t)(2 * n_moe) : 0;
        printf("%-14s rank %d of %d: peer exchange: %zu calls, %zu B out, %zu B in; host "
               "exchange: %zu B down in %zu copies, peer %zu B in %zu\n",
               preset, rank, size, hp.n_peer, hp.peer_out, hp.peer_in, hh.down, hh.n_down, hp.down,
               hp.n_down);
        CHECK(hp.n_peer == want_calls && hh.n_peer == 0,
              "%s rank %d: %zu / %zu peer calls, want %zu / 0", preset, rank, hp.n_peer, hh.n_peer,
              want_calls);
        CHECK(hp.peer_out == hp.peer_in && hh.down - hp.down == hp.peer_out,
              "%s rank %d: peer %zu B out, %zu B in; the host exchange downloads %zu B more",
              preset, rank, hp.peer_out, hp.peer_in, hh.down - hp.down);
        CHECK(size == 1 || hp.peer_out >= (size_t)n_moe * pair_bytes,
              "%s rank %d: %zu B sent, fewer than the %lld MoE layers' pairs", preset, rank,
              hp.peer_out, (long long)n_moe);
        CHECK(h1.n_peer == 0 && (rank == 0 || hm.n_peer == 0),
              "%s rank %d: a fallback used the peer exchange (%zu / %zu calls)", preset, rank,
              h1.n_peer, hm.n_peer);
        CHECK(memcmp(one, host, (size_t)nv * sizeof(float)) == 0,
              "%s rank %d: one shard's host exchange changed the bits", preset, rank);
        const double em = trel_err(mix, cpu, nv);
        CHECK(em <= BOUND, "%s rank %d: a stage of cpu and cuda-emu shards: %.3g", preset, rank,
              em);
    }
    imc_imatrix_free(&s_peer);
    imc_imatrix_free(&s_host);
    free(peer);
    free(host);
    free(one);
    free(mix);
    init_fails(preset, m, c, tok, seq0);
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
    struct how h_cpu = {0}, h_emu = {.be = tcuda_backend_emu()},
               h_hyb = {.be = tcuda_backend_emu(), .experts_cpu = true};
    float *one = run(t.m, NULL, &h_cpu, tok, seq0, NULL);
    float *cpu = run(t.m, c, &h_cpu, tok, seq0, &s_cpu);
    float *emu = run(t.m, c, &h_emu, tok, seq0, &s_emu);
    float *hyb = run(t.m, c, &h_hyb, tok, seq0, &s_hyb);
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
        CHECK(h_hyb.n_peer == 0, "%s rank %d: --experts-on cpu used the peer exchange", preset,
              rank);
        peer_case(preset, t.m, c, tok, seq0, cpu);
        scratch_case(preset, t.m, c, tok, seq0);
        arena_case(preset, t.m, c);
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
