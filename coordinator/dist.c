/*
 * coordinator/dist: the distributed chunk runner (coordinator/dist.h).
 */
#include "coordinator/dist.h"

#include <stdlib.h>
#include <string.h>

#include "coordinator/chunks.h"
#include "coordinator/model_cost.h"
#include "coordinator/ppl.h"
#include "coordinator/progress.h"
#include "coordinator/rank_place.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/size.h"
#include "kernels/kernels.h"
#include "model/arch.h"
#include "mpi/comm.h"
#include "mpi/reduce.h"
#include "mpi/xfer.h"
#include "numa/mem.h"
#include "worker/slice.h"

struct dist {
    const struct imc_dist_job *j;
    struct imc_engine *e;
    int stage, pp, shard, ep, replica, dp;
    int64_t n_ctx, n_embd, n_vocab, first, n_scored;
    int32_t *in;              // [home seqs][n_ctx] engine input (stage 0)
    float *hid[2];            // [home seqs * n_ctx][n_embd], double-buffered
    bool pipe_dev;            // hid moved between stages by the engine's pipe (NCCL)
    bool hid_engine;          // hid in the engine's table memory (a single stage, or pipe_dev)
    struct imc_xfer *send[2]; // isend in flight from hid[k] (host hid), or NULL
    float *logits;            // [n_ctx - first][n_vocab]: on_logits's host buffer, or NULL
    double *nll;              // [n_chunk][n_scored], the caller's
    struct imc_nll_row *sc;   // [n_scored] one chunk's scores (last stage)
    struct imc_dist_times t;
    struct imc_rank_place place;
    struct imc_slice slice; // this rank's weights
};

enum imc_status imc_dist_stage_layers(const struct imc_model *m, const struct imc_layout *l,
                                      int stage, int64_t *begin, int64_t *end)
{
    IMC_ASSERT(stage >= 0 && stage < l->pp);
    const int64_t n_layer = m->hp.n_layer;
    struct imc_layer_cost *layers = n_layer > 0 ? calloc((size_t)n_layer, sizeof(*layers)) : NULL;
    int *bounds = calloc((size_t)l->pp + 1, sizeof(int));
    enum imc_status st = IMC_ERR_NOMEM;
    if (!layers || !bounds) {
        IMC_LOG_ERR("dist: out of memory for the layer split of %lld layers", (long long)n_layer);
        goto out_free;
    }
    struct imc_model_cost cost;
    st = imc_model_cost_build(m, layers, &cost);
    if (st == IMC_OK) {
        st = imc_plan_stages(&cost, l, bounds);
    }
    if (st == IMC_OK) {
        *begin = bounds[stage];
        *end = bounds[stage + 1];
    }
out_free:
    free(layers);
    free(bounds);
    return st;
}

int64_t imc_dist_n_batch(const struct imc_dist_job *j)
{
    const int64_t n = j->chunk_end - j->chunk0;
    return n > 0 ? (n + j->n_seq - 1) / j->n_seq : 0;
}

void imc_dist_batch_chunks(const struct imc_dist_job *j, int64_t b, int64_t *c0, int64_t *c1)
{
    *c0 = j->chunk0 + b * j->n_seq;
    *c1 = *c0 + j->n_seq < j->chunk_end ? *c0 + j->n_seq : j->chunk_end;
}

static enum imc_status check_layout(const struct imc_dist_job *j)
{
    const struct imc_layout *l = &j->layout;
    IMC_TRY(imc_layout_check(l, imc_comm_size(j->comm)));
    if (imc_comm_group_size(j->comm, IMC_GROUP_PIPELINE) != l->pp ||
        imc_comm_group_size(j->comm, IMC_GROUP_EXPERT) != l->ep ||
        imc_comm_group_size(j->comm, IMC_GROUP_REPLICA) != l->dp) {
        IMC_LOG_ERR("dist: communicators are not split into layout pp=%d,ep=%d,dp=%d", l->pp, l->ep,
                    l->dp);
        return IMC_ERR_ARG;
    }
    if (j->chunk0 < 0 || j->chunk_end > j->ch->n_chunk || j->chunk0 > j->chunk_end ||
        j->head_begin < 0 || j->head_begin > imc_ppl_first(j->ch->n_ctx)) {
        IMC_LOG_ERR("dist: chunks [%lld, %lld) of %lld or head start %lld out of range",
                    (long long)j->chunk0, (long long)j->chunk_end, (long long)j->ch->n_chunk,
                    (long long)j->head_begin);
        return IMC_ERR_ARG;
    }
    return IMC_OK;
}

static void *alloc_array(int64_t n, size_t elem, const char *what)
{
    uint64_t bytes = 0;
    void *p = NULL;
    if (n >= 0 && imc_size_mul((uint64_t)(n > 0 ? n : 1), elem, &bytes) && bytes <= SIZE_MAX) {
        p = malloc((size_t)bytes);
    }
    if (!p) {
        IMC_LOG_ERR("dist: out of memory for %lld %s", (long long)n, what);
    }
    return p;
}

// Pins this rank and asks for its weights on its NUMA node (before the engine's threads start).
static enum imc_status place_slice(struct dist *d, int64_t lb, int64_t le)
{
    const struct imc_dist_job *j = d->j;
    struct imc_rank_gpus gpus;
    imc_rank_gpus_for(j->device, &gpus);
    IMC_TRY(imc_rank_place(j->comm, &gpus, &d->place));
    struct imc_slice_spec sp = {.layer_begin = lb,
                                .layer_end = le,
                                .embedding = d->stage == 0,
                                .head = d->stage + 1 == d->pp};
    imc_plan_expert_range(j->model->hp.n_expert, d->ep, d->shard, &sp.expert_begin, &sp.expert_end);
    IMC_TRY(imc_slice_init(&d->slice, j->model, &sp));
    d->t.slice_bytes = (double)d->slice.bytes;
    d->t.numa_node = d->place.node;
    for (int64_t i = 0; d->place.node >= 0 && i < d->slice.n; i++) {
        if (imc_numa_bind_range((void *)(uintptr_t)d->slice.r[i].p, d->slice.r[i].len,
                                d->place.node) != IMC_OK) {
            break; // warned once; the run goes on with the kernel's placement
        }
    }
    return IMC_OK;
}

// What this rank holds of its slice and of the whole model at the end.
static void measure_resident(struct dist *d)
{
    const struct imc_model *m = d->j->model;
    struct imc_slice all;
    struct imc_slice_spec sp = {.layer_begin = 0,
                                .layer_end = m->hp.n_layer,
                                .expert_begin = 0,
                                .expert_end = m->hp.n_expert,
                                .embedding = true,
                                .head = true};
    uint64_t a = 0, b = 0;
    if (imc_slice_resident(&d->slice, &a) == IMC_OK) {
        d->t.resident_slice = (double)a;
    }
    if (imc_slice_init(&all, m, &sp) == IMC_OK && imc_slice_resident(&all, &b) == IMC_OK) {
        d->t.resident_model = (double)b;
    }
    imc_slice_free(&all);
}

static enum imc_status setup(struct dist *d, const struct imc_dist_job *j)
{
    IMC_TRY(check_layout(j));
    const struct imc_comm *c = j->comm;
    d->j = j;
    d->pp = j->layout.pp;
    d->ep = j->layout.ep;
    d->dp = j->layout.dp;
    d->stage = imc_comm_group_rank(c, IMC_GROUP_PIPELINE);
    d->shard = imc_comm_group_rank(c, IMC_GROUP_EXPERT);
    d->replica = imc_comm_group_rank(c, IMC_GROUP_REPLICA);
    d->n_ctx = j->ch->n_ctx;
    d->n_embd = j->model->hp.n_embd;
    d->n_vocab = j->model->hp.n_vocab;
    d->first = imc_ppl_first(d->n_ctx);
    d->n_scored = imc_ppl_n_scored(d->n_ctx);
    struct imc_engine_opts eo = imc_engine_opts_default();
    eo.n_threads = j->n_threads > 0 ? j->n_threads : 1;
    eo.attn = j->attn;
    eo.matmul = j->matmul;
    eo.device = j->device;
    eo.experts_on_cpu = j->experts_on_cpu;
    eo.host_exchange = j->host_exchange;
    eo.hooks = j->hooks;
    eo.ep_comm = d->ep > 1 ? c : NULL;
    eo.backend = j->backend;
    IMC_TRY(imc_dist_stage_layers(j->model, &j->layout, d->stage, &eo.layer_begin, &eo.layer_end));
    IMC_TRY(place_slice(d, eo.layer_begin, eo.layer_end));
    IMC_TRY(imc_engine_init(&d->e, j->model, &eo));
    const int64_t home = (j->n_seq + d->ep - 1) / d->ep; // most sequences of a shard
    const int64_t rows = home * d->n_ctx;
    // stages on GPUs pass their hidden rows from device to device (every stage agrees)
    if (d->pp > 1) {
        IMC_TRY(imc_engine_pipe_open(d->e, c, &d->pipe_dev));
    }
    // the hidden rows stay in the engine's table memory (a GPU rank's device memory) unless they
    // travel between stages through MPI: a single stage's never leave the engine
    d->hid_engine = d->pp == 1 || d->pipe_dev;
    d->in = alloc_array(rows, sizeof(int32_t), "token ids");
    for (int k = 0; k < 2; k++) {
        d->hid[k] = d->hid_engine ? imc_engine_hidden_alloc(d->e, rows * d->n_embd)
                                  : alloc_array(rows * d->n_embd, sizeof(float), "activations");
    }
    // the head's logits stay in the engine; on_logits may need them on the host
    d->logits = j->on_logits
                    ? alloc_array((d->n_ctx - d->first) * d->n_vocab, sizeof(float), "logits")
                    : NULL;
    d->sc = alloc_array(d->n_scored, sizeof(*d->sc), "scores");
    if (!d->in || !d->hid[0] || !d->hid[1] || (j->on_logits && !d->logits) || !d->sc) {
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

// Head and NLLs of this shard's sequences [s0, s1) of the batch starting at chunk c0.
static enum imc_status score(struct dist *d, const float *hidden, int64_t c0, int64_t s0,
                             int64_t s1)
{
    const int64_t hb = d->j->head_begin;
    for (int64_t s = s0; s < s1; s++) {
        // the logits stay in the engine (on a GPU rank in device memory) and are scored there
        IMC_TRY(imc_engine_head(d->e, hidden, (s - s0) * d->n_ctx + hb, d->n_ctx - hb, NULL));
        const int32_t *text = imc_chunks_text(d->j->ch, c0 + s);
        const int64_t r0 = d->first - hb;
        IMC_TRY(imc_engine_score_head(d->e, d->sc, r0, d->n_scored, text + d->first + 1, NULL, 0));
        double *nll = d->nll + (c0 + s) * d->n_scored;
        for (int64_t k = 0; k < d->n_scored; k++) {
            nll[k] = d->sc[k].nll;
        }
        if (d->j->on_logits) {
            IMC_TRY(d->j->on_logits(d->j->user, c0 + s, d->e, r0, d->logits));
        }
    }
    return IMC_OK;
}

// This stage's input rows of batch b: embedded (stage 0) or received from the previous stage.
static enum imc_status stage_input(struct dist *d, int64_t b, int64_t c0, int64_t s0, int64_t s1,
                                   float *h)
{
    const int64_t nh = s1 - s0;
    double t0 = imc_clock_now();
    if (d->stage > 0) {
        const size_t n = (size_t)(nh * d->n_ctx * d->n_embd);
        IMC_TRY(d->pipe_dev ? imc_engine_pipe_recv(d->e, h, n, d->stage - 1)
                            : imc_xfer_recv(d->j->comm, IMC_GROUP_PIPELINE, d->stage - 1,
                                            imc_xfer_tag(d->j->comm, b), h, n));
        d->t.wait += imc_clock_now() - t0;
        return IMC_OK;
    }
    for (int64_t s = s0; s < s1; s++) {
        imc_chunks_input(d->j->ch, c0 + s, d->in + (s - s0) * d->n_ctx);
    }
    enum imc_status st = nh > 0 ? imc_engine_embed(d->e, d->in, nh * d->n_ctx, h) : IMC_OK;
    d->t.compute += imc_clock_now() - t0;
    return st;
}

// Batch b through this stage; k = the replica's local batch count, which picks the buffer.
static enum imc_status stage_batch(struct dist *d, int64_t b, int64_t k)
{
    const struct imc_comm *c = d->j->comm;
    int64_t c0, c1, s0, s1;
    imc_dist_batch_chunks(d->j, b, &c0, &c1);
    imc_plan_seq_range(c1 - c0, d->ep, d->shard, &s0, &s1);
    float *h = d->hid[k % 2];
    double t0 = imc_clock_now();
    IMC_TRY(imc_xfer_wait(d->send[k % 2])); // h is free again
    d->send[k % 2] = NULL;
    d->t.wait += imc_clock_now() - t0;
    IMC_TRY(stage_input(d, b, c0, s0, s1, h));
    t0 = imc_clock_now();
    enum imc_status st = imc_engine_layers(d->e, h, s1 - s0, d->n_ctx, s0);
    if (st == IMC_OK && d->stage + 1 == d->pp) {
        st = score(d, h, c0, s0, s1);
    }
    d->t.compute += imc_clock_now() - t0;
    IMC_TRY(st);
    if (d->stage + 1 < d->pp) {
        const size_t n = (size_t)((s1 - s0) * d->n_ctx * d->n_embd);
        if (d->pipe_dev) { // returns once the next stage has the rows
            t0 = imc_clock_now();
            st = imc_engine_pipe_send(d->e, h, n, d->stage + 1);
            d->t.wait += imc_clock_now() - t0;
            return st;
        }
        return imc_xfer_isend(c, IMC_GROUP_PIPELINE, d->stage + 1, imc_xfer_tag(c, b), h, n,
                              &d->send[k % 2]);
    }
    return IMC_OK;
}

// Rounds of dp batches; replica r runs batch k*dp + r of round k. after_round runs on every
// rank after every round.
static enum imc_status run_rounds(struct dist *d)
{
    const struct imc_dist_job *j = d->j;
    const int64_t n_batch = imc_dist_n_batch(j), n_round = (n_batch + d->dp - 1) / d->dp;
    enum imc_status st = IMC_OK;
    for (int64_t k = 0; st == IMC_OK && k < n_round; k++) {
        const int64_t b = k * d->dp + d->replica;
        if (b < n_batch) {
            st = stage_batch(d, b, k);
        }
        if (st == IMC_OK && j->after_round) {
            st = j->after_round(j->user, k);
        }
        if (st == IMC_OK) {
            imc_pulse_emit(&j->pulse);
        }
        if (st == IMC_OK && j->prog) {
            int64_t c0, c1; // the round's last chunk ends it
            imc_dist_batch_chunks(j, (k + 1) * d->dp < n_batch ? (k + 1) * d->dp - 1 : n_batch - 1,
                                  &c0, &c1);
            imc_progress_update(j->prog, c1 - j->chunk0, (c1 - j->chunk0) * d->n_ctx);
        }
    }
    // On failure the sends in flight are left behind (the caller aborts the job): waiting for a
    // peer that may be gone would only delay the abort by the watchdog's timeout.
    for (int i = 0; st == IMC_OK && i < 2; i++) {
        st = imc_xfer_wait(d->send[i]);
        d->send[i] = NULL;
    }
    return st;
}

// Rank 0 logs what every rank does, so that a message naming a rank (a dead one, a silent peer)
// says what it was running.
static void log_roles(const struct dist *d)
{
    const struct imc_dist_job *j = d->j;
    const int n = d->pp * d->ep * d->dp;
    for (int r = 0; imc_comm_rank(j->comm) == 0 && r < n; r++) {
        const struct imc_coords co = imc_layout_coords(&j->layout, r);
        int64_t lb = 0, le = 0, eb = 0, ee = 0;
        imc_dist_stage_layers(j->model, &j->layout, co.stage, &lb, &le);
        imc_plan_expert_range(j->model->hp.n_expert, d->ep, co.shard, &eb, &ee);
        IMC_LOG_INF("dist: rank %d: stage %d (layers %lld..%lld%s%s), shard %d (experts %lld..%lld)"
                    ", replica %d (batches b %% %d == %d)",
                    r, co.stage, (long long)lb, (long long)le - 1,
                    co.stage == 0 ? ", embedding" : "", co.stage + 1 == d->pp ? ", head" : "",
                    co.shard, (long long)eb, (long long)ee - 1, co.replica, d->dp, co.replica);
    }
}

int imc_dist_head_rank(const struct imc_dist_job *j, int64_t c)
{
    const int64_t b = (c - j->chunk0) / j->n_seq; // the batch of c
    int64_t c0, c1, s0, s1;
    imc_dist_batch_chunks(j, b, &c0, &c1);
    int shard = 0;
    for (int i = 0; i < j->layout.ep; i++) {
        imc_plan_seq_range(c1 - c0, j->layout.ep, i, &s0, &s1);
        shard = c - c0 >= s0 && c - c0 < s1 ? i : shard;
    }
    const int n = j->layout.pp * j->layout.ep * j->layout.dp;
    for (int r = 0; r < n; r++) {
        const struct imc_coords co = imc_layout_coords(&j->layout, r);
        if (co.stage == j->layout.pp - 1 && co.shard == shard && co.replica == b % j->layout.dp) {
            return r;
        }
    }
    return 0; // not reached for a layout of pp x ep x dp ranks
}

static void dist_free(struct dist *d)
{
    imc_slice_free(&d->slice);
    imc_engine_free(d->e);
    free(d->in);
    if (!d->hid_engine) { // else the engine's
        free(d->hid[0]);
        free(d->hid[1]);
    }
    free(d->logits);
    free(d->sc);
}

enum imc_status imc_dist_run(const struct imc_dist_job *j, double *nll,
                             struct imc_dist_times *times)
{
    IMC_ASSERT(j->comm && j->model && j->ch && j->n_seq >= 1 && nll);
    struct dist d;
    memset(&d, 0, sizeof(d));
    const double t0 = imc_clock_now();
    const size_t n = (size_t)(j->ch->n_chunk * imc_ppl_n_scored(j->ch->n_ctx));
    memset(nll, 0, n * sizeof(double));
    d.nll = nll;
    enum imc_status st = setup(&d, j);
    if (st == IMC_OK) {
        log_roles(&d);
        st = run_rounds(&d);
    }
    measure_resident(&d);
    if (d.e) {
        imc_engine_profile(d.e, d.t.prof);
    }
    dist_free(&d);
    d.t.total = imc_clock_now() - t0;
    if (times) {
        *times = d.t;
    }
    return st;
}

enum imc_status imc_dist_log_times(const struct imc_comm *c, const struct imc_dist_times *t)
{
    enum { N = 7 + IMC_PROF_COUNT };
    const int size = imc_comm_size(c), rank = imc_comm_rank(c);
    double *v = calloc((size_t)size * N, sizeof(double));
    if (!v) {
        IMC_LOG_ERR("dist: out of memory for the timing table of %d ranks", size);
        return IMC_ERR_NOMEM;
    }
    const double mine[7] = {t->total,          t->compute,        t->wait,     t->slice_bytes,
                            t->resident_slice, t->resident_model, t->numa_node};
    memcpy(v + rank * N, mine, sizeof(mine));
    memcpy(v + rank * N + 7, t->prof, sizeof(t->prof));
    enum imc_status st = imc_reduce_sum_f64(c, IMC_GROUP_WORLD, v, v, (size_t)size * N);
    double lo = 100.0, hi = 0.0, sum = 0.0;
    for (int r = 0; st == IMC_OK && rank == 0 && r < size; r++) {
        const double *x = v + r * N, mib = 1024.0 * 1024.0;
        const double idle = x[0] > 0 ? 100.0 * (x[0] - x[1]) / x[0] : 0.0;
        lo = idle < lo ? idle : lo;
        hi = idle > hi ? idle : hi;
        sum += idle;
        IMC_LOG_DBG("dist: rank %d: %.3f s, computing %.3f s, waiting for peers %.3f s, "
                    "idle %.1f%%; weights resident %.2f MiB of its slice of %.2f MiB, "
                    "%.2f MiB of the model mapped; NUMA node %.0f",
                    r, x[0], x[1], x[2], idle, x[4] / mib, x[3] / mib, x[5] / mib, x[6]);
        char line[512];
        imc_prof_format(x + 7, line, sizeof(line));
        IMC_LOG_DBG("dist: rank %d: profile: %s", r, line);
    }
    if (st == IMC_OK && rank == 0) {
        IMC_LOG_INF("dist: %d ranks idle (pipeline bubble, exchanges, waits) %.1f%% on average, "
                    "%.1f%% .. %.1f%% (per rank: -v debug)",
                    size, sum / size, lo, hi);
    }
    free(v);
    return st;
}
