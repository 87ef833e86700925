/*
 * coordinator/imatrix_dist: `imc imatrix` as one MPI job (DESIGN.md §6; coordinator/imatrix.h,
 * coordinator/dist.h for the forward passes).
 *
 * Every rank runs its stage's layers (and its expert shard) over its replica's batches, with the
 * splitter's collectors (imatrix_priv.h) folding each chunk slot into a per-slot partial P[s]
 * (the stage's entries, zero before the chunk). The totals are kept by owners, the ranks of
 * replica 0: shard 0 of a stage owns its dense block, shard i the expert block of its experts
 * (coordinator/imatrix_blocks.h). After every round, for every chunk of the round in chunk
 * order, the rank that computed each block of that chunk (dense: the shard that ran the chunk's
 * sequence; experts: the shard that owns them, in the chunk's replica) hands it to its owner over
 * the stage group (a copy when it is the owner), and the owner adds it to its totals. Each total
 * thus gets T += P_c for c = first, first+1, ... exactly as the single-process collector folds
 * (a slice a chunk did not see adds 0.0, which leaves a non-negative total unchanged): the
 * imatrix is bitwise the same for every layout, the rounds only decide when data moves.
 *
 * World rank 0, the coordinator, gathers the owners' totals (and the NLLs of the chunks done,
 * summed over the world: one rank computed each) at every checkpoint and at the end, and writes
 * the files. A resumed run (any rank count) starts from the checkpoint's totals, which rank 0
 * scatters to the owners; the chunks after it are cut into batches from there, which gives the
 * same bits because no per-token value depends on the batching.
 *
 * Traffic per chunk: the stage's dense block (small) from the computing shard to shard 0 and,
 * with replicas, every expert block from replica r to replica 0 (about the stage's imatrix size).
 * Memory per rank: the stage's entries in double n_seq + 2 times (P, collectors) plus totals.
 */
#include <stdlib.h>
#include <string.h>

#include "coordinator/dist.h"
#include "coordinator/imatrix_blocks.h"
#include "coordinator/imatrix_priv.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/reduce.h"
#include "mpi/xfer.h"

#define TAG_GATHER 1
#define TAG_SCATTER 2

struct imd {
    struct imx_run *r;
    const struct imc_comm *c;
    struct imc_layout l;
    int stage, shard, replica, me; // me: rank in the stage group (replica * ep + shard)
    int64_t eb, ee;                // this shard's experts
    struct imx_blocks sb;          // this stage's entries
    struct imx_blocks *all;        // [pp] every stage's entries (rank 0)
    struct imc_imatrix *P;         // [n_seq] chunk partials of the slots
    struct imc_imatrix T;          // totals (owners: replica 0)
    double *buf;                   // a dense or an expert block
    size_t n_dense, n_exp;         // doubles of this stage's blocks
    struct imc_dist_job job;
    double *nll;           // [ch.n_chunk][n_scored]
    int64_t folded;        // chunks of the run folded into the totals
    int64_t nll_done;      // chunks of the run whose NLLs rank 0 has recorded
    uint32_t chunk_count0; // r->im.chunk_count when the loop started
};

static bool is_owner(const struct imd *d)
{
    return d->replica == 0;
}

// ---- one chunk's blocks to their owners --------------------------------------------------

static int chunk_tag(const struct imd *d, int64_t c, int kind)
{
    return imc_xfer_tag(d->c, 2 * c + kind);
}

// Block of kind k of chunk c (slot s of replica r) from stage rank `from` to stage rank `to`.
static enum imc_status move_block(struct imd *d, enum imx_block_kind k, int64_t c, int64_t s,
                                  int from, int to)
{
    const size_t n = k == IMX_BLOCK_DENSE ? d->n_dense : d->n_exp;
    const int tag = chunk_tag(d, c, (int)k);
    if (d->me == from) {
        IMC_TRY(imx_blocks_pack(&d->sb, k, d->eb, d->ee, &d->P[s], d->buf));
        if (from != to) {
            return imc_xfer_send_bytes(d->c, IMC_GROUP_STAGE, to, tag, d->buf, n * 8);
        }
    } else if (d->me == to) {
        IMC_TRY(imc_xfer_recv_bytes(d->c, IMC_GROUP_STAGE, from, tag, d->buf, n * 8));
    }
    return d->me == to ? imx_blocks_add(&d->sb, k, d->eb, d->ee, &d->T, d->buf) : IMC_OK;
}

// Chunk c, slot s of batch b (ns chunks, replica r): dense block from the shard that ran the
// sequence to shard 0 of replica 0; expert blocks from (r, i) to (0, i).
static enum imc_status fold_chunk(struct imd *d, int64_t c, int64_t s, int64_t ns, int r)
{
    const int ep = d->l.ep;
    int home = 0;
    for (int h = 0; h < ep; h++) {
        int64_t s0, s1;
        imc_plan_seq_range(ns, ep, h, &s0, &s1);
        home = s >= s0 && s < s1 ? h : home;
    }
    IMC_TRY(move_block(d, IMX_BLOCK_DENSE, c, s, r * ep + home, 0));
    if (d->n_exp > 0) {
        IMC_TRY(move_block(d, IMX_BLOCK_EXPERTS, c, s, r * ep + d->shard, d->shard));
    }
    if (d->replica == r) {
        imx_blocks_zero(&d->sb, &d->P[s]);
    }
    return IMC_OK;
}

// ---- coordinator: NLLs and totals --------------------------------------------------------

// Sums the NLLs of chunks [nll_done, folded) of the run onto rank 0, which records them.
static enum imc_status gather_nll(struct imd *d)
{
    struct imx_run *r = d->r;
    const int64_t ns = imc_ppl_n_scored(r->tr.n_ctx);
    double *seg = d->nll + (r->first + r->start + d->nll_done) * ns;
    const size_t n = (size_t)((d->folded - d->nll_done) * ns);
    IMC_TRY(imc_reduce_sum_f64(d->c, IMC_GROUP_WORLD, seg, seg, n));
    for (int64_t i = 0; r->rank0 && i < d->folded - d->nll_done; i++) {
        for (int64_t k = 0; k < ns; k++) {
            imc_ppl_add(&r->acc, seg[i * ns + k]);
        }
        imx_chunk_scored(r);
    }
    d->nll_done = d->folded;
    return IMC_OK;
}

// World rank of the owner of stage s's blocks of shard i (replica 0).
static int owner_rank(const struct imd *d, int s, int i)
{
    return imc_layout_rank(&d->l, (struct imc_coords){.stage = s, .shard = i, .replica = 0});
}

// Rank 0's side of block `kind` of stage s, shard i. Gather: the owner's block (received, or
// rank 0's own) is added to r->im. Scatter: r->im's block goes to the owner (or rank 0's T).
static enum imc_status rank0_block(struct imd *d, bool gather, int s, int i,
                                   enum imx_block_kind kind)
{
    struct imx_run *r = d->r;
    int64_t eb = 0, ee = 0;
    if (kind == IMX_BLOCK_EXPERTS) {
        imc_plan_expert_range(r->tr.m->hp.n_expert, d->l.ep, i, &eb, &ee);
    }
    const size_t n = imx_blocks_len(&d->all[s], kind, eb, ee);
    const int peer = owner_rank(d, s, i);
    double *b = malloc(n * sizeof(double) + 8);
    if (!b) {
        IMC_LOG_ERR("imatrix: out of memory for a block of %zu values", n);
        return IMC_ERR_NOMEM;
    }
    enum imc_status st;
    if (gather) {
        st = peer == 0 ? imx_blocks_pack(&d->sb, kind, eb, ee, &d->T, b)
                       : imc_xfer_recv_bytes(d->c, IMC_GROUP_WORLD, peer, TAG_GATHER, b, n * 8);
        st = st == IMC_OK ? imx_blocks_add(&d->all[s], kind, eb, ee, &r->im, b) : st;
    } else {
        st = imx_blocks_pack(&d->all[s], kind, eb, ee, &r->im, b);
        if (st == IMC_OK) {
            st = peer == 0
                     ? imx_blocks_add(&d->sb, kind, eb, ee, &d->T, b)
                     : imc_xfer_send_bytes(d->c, IMC_GROUP_WORLD, peer, TAG_SCATTER, b, n * 8);
        }
    }
    free(b);
    return st;
}

// An owner's side (other than rank 0): gather sends its block, scatter receives and adds it.
static enum imc_status owner_block(struct imd *d, bool gather, enum imx_block_kind kind)
{
    const bool ex = kind == IMX_BLOCK_EXPERTS;
    const size_t n = ex ? d->n_exp : d->n_dense;
    const int64_t eb = ex ? d->eb : 0, ee = ex ? d->ee : 0;
    if (gather) {
        IMC_TRY(imx_blocks_pack(&d->sb, kind, eb, ee, &d->T, d->buf));
        return imc_xfer_send_bytes(d->c, IMC_GROUP_WORLD, 0, TAG_GATHER, d->buf, n * 8);
    }
    IMC_TRY(imc_xfer_recv_bytes(d->c, IMC_GROUP_WORLD, 0, TAG_SCATTER, d->buf, n * 8));
    return imx_blocks_add(&d->sb, kind, eb, ee, &d->T, d->buf);
}

// Gather: rank 0's r->im (model entries) = the owners' totals. Scatter: the owners' totals =
// rank 0's r->im (a resumed run). Every owner has one expert block, shard 0 also the dense one.
static enum imc_status move_totals(struct imd *d, bool gather)
{
    struct imx_run *r = d->r;
    if (!r->rank0) {
        if (is_owner(d)) {
            IMC_TRY(owner_block(d, gather, IMX_BLOCK_EXPERTS));
            if (d->shard == 0) {
                IMC_TRY(owner_block(d, gather, IMX_BLOCK_DENSE));
            }
        }
        return IMC_OK;
    }
    for (int s = 0; s < d->l.pp; s++) {
        if (gather) {
            imx_blocks_zero(&d->all[s], &r->im);
        }
        for (int i = 0; i < d->l.ep; i++) {
            IMC_TRY(rank0_block(d, gather, s, i, IMX_BLOCK_EXPERTS));
            if (i == 0) {
                IMC_TRY(rank0_block(d, gather, s, i, IMX_BLOCK_DENSE));
            }
        }
    }
    if (gather) {
        r->im.chunk_count = d->chunk_count0 + (uint32_t)d->folded;
    }
    return IMC_OK;
}

// Collective: everything up to the chunks folded reaches rank 0, which writes the checkpoint.
static enum imc_status checkpoint(struct imd *d)
{
    IMC_TRY(gather_nll(d));
    IMC_TRY(move_totals(d, true));
    return d->r->rank0 ? imx_checkpoint(d->r) : IMC_OK;
}

// ---- the round callback --------------------------------------------------------------------

static enum imc_status after_round(void *user, int64_t k)
{
    struct imd *d = user;
    const struct imc_dist_job *j = &d->job;
    const int64_t n_batch = imc_dist_n_batch(j);
    const int64_t mine = k * d->l.dp + d->replica;
    if (mine < n_batch) {
        int64_t b0, b1;
        imc_dist_batch_chunks(j, mine, &b0, &b1);
        for (int64_t s = 0; s < b1 - b0; s++) {
            IMC_TRY(imx_hook_end_chunk(&d->r->hook, s));
        }
    }
    for (int r = 0; r < d->l.dp && k * d->l.dp + r < n_batch; r++) {
        int64_t b0, b1;
        imc_dist_batch_chunks(j, k * d->l.dp + r, &b0, &b1);
        for (int64_t s = 0; s < b1 - b0; s++) {
            IMC_TRY(fold_chunk(d, b0 + s, s, b1 - b0, r));
            d->folded++;
            const int64_t every = d->r->o->save_every;
            const int64_t done = d->r->start + d->folded;
            if (every > 0 && done % every == 0 && done < d->r->n_chunk) {
                IMC_TRY(checkpoint(d));
            }
        }
    }
    return IMC_OK;
}

// ---- setup ---------------------------------------------------------------------------------

static enum imc_status declare_all(struct imd *d)
{
    struct imx_run *r = d->r;
    const struct imc_model *m = r->tr.m;
    const bool out = r->o->process_output;
    int64_t lb, le;
    IMC_TRY(imc_dist_stage_layers(m, &d->l, d->stage, &lb, &le));
    const bool head = d->stage + 1 == d->l.pp;
    IMC_TRY(imx_blocks_init(&d->sb, m, lb, le, head && out));
    IMC_TRY(imx_blocks_declare(&d->sb, &d->T));
    d->P = calloc((size_t)r->n_seq, sizeof(*d->P));
    struct imc_imatrix **ims = calloc((size_t)r->n_seq, sizeof(*ims));
    if (!d->P || !ims) {
        free(ims);
        IMC_LOG_ERR("imatrix: out of memory");
        return IMC_ERR_NOMEM;
    }
    for (int64_t s = 0; s < r->n_seq; s++) {
        imc_imatrix_init(&d->P[s]);
        ims[s] = &d->P[s];
    }
    enum imc_status st = imx_hook_init(&r->hook, m, ims, r->n_seq, r->tr.n_ctx, out);
    free(ims);
    IMC_TRY(st);
    imx_hook_set_layers(&r->hook, lb, le, head);
    IMC_TRY(imx_hook_declare(&r->hook));
    r->hooks = imx_hook_hooks(&r->hook);
    if (!r->rank0) {
        return IMC_OK;
    }
    d->all = calloc((size_t)d->l.pp, sizeof(*d->all));
    if (!d->all) {
        IMC_LOG_ERR("imatrix: out of memory");
        return IMC_ERR_NOMEM;
    }
    for (int s = 0; s < d->l.pp; s++) {
        IMC_TRY(imc_dist_stage_layers(m, &d->l, s, &lb, &le));
        IMC_TRY(imx_blocks_init(&d->all[s], m, lb, le, s + 1 == d->l.pp && out));
        IMC_TRY(imx_blocks_declare(&d->all[s], &r->im));
    }
    return IMC_OK;
}

static enum imc_status setup(struct imd *d)
{
    struct imx_run *r = d->r;
    d->c = r->o->comm;
    d->l = r->o->layout;
    IMC_TRY(imc_layout_check(&d->l, imc_comm_size(d->c)));
    d->stage = imc_comm_group_rank(d->c, IMC_GROUP_PIPELINE);
    d->shard = imc_comm_group_rank(d->c, IMC_GROUP_EXPERT);
    d->replica = imc_comm_group_rank(d->c, IMC_GROUP_REPLICA);
    d->me = imc_comm_group_rank(d->c, IMC_GROUP_STAGE);
    enum imc_status st = imx_setup_common(r, NULL);
    // Every rank learns how far a resumed run got (or that rank 0 failed: then the job ends).
    int64_t state[2] = {st == IMC_OK ? 0 : 1, r->done};
    IMC_TRY(imc_xfer_bcast(d->c, IMC_GROUP_WORLD, 0, state, sizeof(state)));
    IMC_TRY(st);
    if (state[0] != 0) {
        return IMC_ERR_ARG; // rank 0 failed and logged why
    }
    r->done = r->start = state[1];
    imc_plan_expert_range(r->tr.m->hp.n_expert, d->l.ep, d->shard, &d->eb, &d->ee);
    IMC_TRY(declare_all(d));
    d->n_dense = imx_blocks_len(&d->sb, IMX_BLOCK_DENSE, 0, 0);
    d->n_exp = imx_blocks_len(&d->sb, IMX_BLOCK_EXPERTS, d->eb, d->ee);
    const size_t nb = d->n_dense > d->n_exp ? d->n_dense : d->n_exp;
    const int64_t n_scored = imc_ppl_n_scored(r->tr.n_ctx);
    d->buf = malloc((nb + 1) * sizeof(double));
    d->nll = calloc((size_t)(r->tr.ch.n_chunk * n_scored), sizeof(double));
    if (!d->buf || !d->nll) {
        IMC_LOG_ERR("imatrix: out of memory for a block of %zu values", nb);
        return IMC_ERR_NOMEM;
    }
    d->chunk_count0 = r->rank0 ? r->im.chunk_count : 0;
    return r->done > 0 ? move_totals(d, false) : IMC_OK;
}

static void log_plan(const struct imd *d)
{
    const struct imx_run *r = d->r;
    IMC_LOG_INF("imatrix: %lld tokens, chunks %lld..%lld of %lld tokens, %lld per engine call, "
                "%d ranks in layout pp=%d,ep=%d,dp=%d, %d thread(s) per rank%s",
                (long long)r->tr.ch.n_tokens, (long long)r->first + 1,
                (long long)(r->first + r->n_chunk), (long long)r->tr.n_ctx, (long long)r->n_seq,
                imc_comm_size(d->c), d->l.pp, d->l.ep, d->l.dp,
                r->o->n_threads > 0 ? r->o->n_threads : 1,
                r->o->process_output ? ", collecting output.weight" : "");
}

static void imd_free(struct imd *d)
{
    for (int64_t s = 0; d->P && s < d->r->n_seq; s++) {
        imc_imatrix_free(&d->P[s]);
    }
    free(d->P);
    imc_imatrix_free(&d->T);
    for (int s = 0; d->all && s < d->l.pp; s++) {
        imx_blocks_free(&d->all[s]);
    }
    free(d->all);
    imx_blocks_free(&d->sb);
    free(d->buf);
    free(d->nll);
}

enum imc_status imx_run_dist(struct imx_run *r)
{
    struct imd d;
    memset(&d, 0, sizeof(d));
    d.r = r;
    imc_imatrix_init(&d.T);
    enum imc_status st = setup(&d);
    if (st == IMC_OK) {
        if (r->rank0) {
            log_plan(&d);
        }
        for (int64_t i = 0; r->rank0 && i < r->done; i++) {
            imc_textrun_print_ppl(r->out, i + 1, r->ppl[i]);
        }
        imc_progress_init(&r->prog, stderr, "imatrix", r->n_chunk - r->start,
                          r->o->quiet || !r->rank0);
        d.job = (struct imc_dist_job){.comm = d.c,
                                      .layout = d.l,
                                      .model = r->tr.m,
                                      .ch = &r->tr.ch,
                                      .chunk0 = r->first + r->start,
                                      .chunk_end = r->first + r->n_chunk,
                                      .n_seq = r->n_seq,
                                      .n_threads = r->o->n_threads,
                                      .attn = r->o->attn,
                                      .matmul = r->o->matmul,
                                      .device = r->o->device,
                                      .experts_on_cpu = r->o->experts_on_cpu,
                                      .host_exchange = r->o->host_exchange,
                                      .backend = r->o->backend,
                                      .head_begin = r->out_begin,
                                      .hooks = &r->hooks,
                                      .prog = r->rank0 ? &r->prog : NULL,
                                      .after_round = after_round,
                                      .user = &d};
        struct imc_dist_times t;
        st = imc_dist_run(&d.job, d.nll, &t);
        if (st == IMC_OK) {
            st = imc_dist_log_times(d.c, &t);
        }
    }
    if (st == IMC_OK) {
        st = gather_nll(&d);
    }
    if (st == IMC_OK) {
        st = move_totals(&d, true);
    }
    imd_free(&d);
    return st;
}
