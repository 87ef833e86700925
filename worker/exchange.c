/*
 * worker/exchange: how an engine's rows travel between ranks (DESIGN.md §6; issue 13 item 3):
 * the expert shards' routed rows (worker/moe.c's dispatch and combine) and the pipeline stages'
 * hidden rows (imc_engine_pipe_*, for coordinator/dist.c). Two ways:
 *   - host: the rows are in host memory and go through MPI (imc_xfer_*);
 *   - peer: the rows stay in the op table's memory and the table moves them between the ranks
 *     itself (backend.h peer_*: NCCL between GPUs), so a GPU rank's rows never come down to the
 *     host. MPI still carries the control (counts, (token, expert) records).
 * Each group decides once: the expert group when the shards' engines are made (imc_engine_init,
 * collective over the group where they run an MoE layer; else at the first MoE exchange, which
 * every shard reaches together), the pipeline group when the stages open their transport. Peer when
 * every rank's table has its own memory and a peer exchange whose library loads, no two ranks share
 * a device, the rows are the table's (the shards' routed experts run on it: not --experts-on cpu)
 * and opts.host_exchange is off; else host on every rank. The choice changes where rows travel,
 * never what is computed.
 *
 * The peer exchange borrows this file's callbacks over the group (backend.h imc_peer_boot): the
 * hellos and the broadcast of NCCL's id, and the nonblocking transfers the emulator's NCCL runs
 * on (tests). Ownership: the engine owns both exchanges (struct eng_xchg), freed by
 * eng_xchg_free.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mpi/xfer.h"
#include "worker/engine_priv.h"

// The wire's tag (the emulator's NCCL only): on the pipeline group the stages' own MPI messages
// (dist.c, tags by batch) do not travel while the wire does.
#define XCHG_TAG 0

// Every shard's bytes of mine into all, in shard order.
static enum imc_status w_allgather(void *user, const void *mine, void *all, size_t bytes)
{
    const struct eng_xchg *x = (const struct eng_xchg *)user;
    const int n = x->boot.n_ranks;
    char *send = malloc((size_t)n * bytes);
    size_t *cnt = malloc((size_t)n * sizeof(size_t));
    enum imc_status st = IMC_ERR_NOMEM;
    if (!send || !cnt) {
        IMC_LOG_ERR("exchange: out of memory for the hellos of %d ranks", n);
        goto out;
    }
    for (int j = 0; j < n; j++) {
        memcpy(send + (size_t)j * bytes, mine, bytes);
        cnt[j] = bytes;
    }
    st = imc_xfer_alltoallv_bytes(x->c, x->g, send, cnt, all, cnt);
out:
    free(send);
    free(cnt);
    return st;
}

static enum imc_status w_bcast(void *user, void *buf, size_t bytes)
{
    const struct eng_xchg *x = (const struct eng_xchg *)user;
    return imc_xfer_bcast(x->c, x->g, 0, buf, bytes);
}

// Room for one more transfer in flight.
static enum imc_status w_room(struct eng_xchg *x)
{
    if (x->n_pending < x->cap_pending) {
        return IMC_OK;
    }
    const int cap = x->cap_pending ? 2 * x->cap_pending : 16;
    struct imc_xfer **p = realloc(x->pending, (size_t)cap * sizeof(*p));
    if (!p) {
        IMC_LOG_ERR("exchange: out of memory for %d transfers", cap);
        return IMC_ERR_NOMEM;
    }
    x->pending = p;
    x->cap_pending = cap;
    return IMC_OK;
}

static enum imc_status w_isend(void *user, int peer, const void *buf, size_t bytes)
{
    struct eng_xchg *x = (struct eng_xchg *)user;
    IMC_TRY(w_room(x));
    IMC_TRY(
        imc_xfer_isend_bytes(x->c, x->g, peer, XCHG_TAG, buf, bytes, &x->pending[x->n_pending]));
    x->n_pending++;
    return IMC_OK;
}

static enum imc_status w_irecv(void *user, int peer, void *buf, size_t bytes)
{
    struct eng_xchg *x = (struct eng_xchg *)user;
    IMC_TRY(w_room(x));
    IMC_TRY(
        imc_xfer_irecv_bytes(x->c, x->g, peer, XCHG_TAG, buf, bytes, &x->pending[x->n_pending]));
    x->n_pending++;
    return IMC_OK;
}

// Waits for every transfer started (each under the MPI watchdog); the first failure.
static enum imc_status w_waitall(void *user)
{
    struct eng_xchg *x = (struct eng_xchg *)user;
    enum imc_status st = IMC_OK;
    for (int i = 0; i < x->n_pending; i++) {
        const enum imc_status si = imc_xfer_wait(x->pending[i]);
        st = st == IMC_OK ? si : st;
    }
    x->n_pending = 0;
    return st;
}

// Sets up x over group g of c: every rank says whether it can keep its rows in its table
// (can), then the table's peer exchange is set up where all can (collective over the group).
static enum imc_status xchg_open(struct imc_engine *e, struct eng_xchg *x, const struct imc_comm *c,
                                 enum imc_comm_group g, const char *name, bool can)
{
    x->c = c;
    x->g = g;
    x->boot = (struct imc_peer_boot){.n_ranks = imc_comm_group_size(c, g),
                                     .rank = imc_comm_group_rank(c, g),
                                     .timeout = imc_comm_timeout(c),
                                     .group = name,
                                     .user = x,
                                     .allgather = w_allgather,
                                     .bcast = w_bcast,
                                     .isend = w_isend,
                                     .irecv = w_irecv,
                                     .waitall = w_waitall};
    can = can && e->dev && e->be->peer_new && !e->opts.host_exchange;
    x->mode = XCHG_HOST;
    enum imc_status st;
    if (!can) { // this rank's no, in the exchange of hellos the others' peer_new makes
        struct imc_peer_hello no = {0}, *all = calloc((size_t)x->boot.n_ranks, sizeof(*all));
        st = all ? w_allgather(x, &no, all, sizeof(no)) : IMC_ERR_NOMEM;
        free(all);
    } else {
        st = e->be->peer_new(e->be_ctx, &x->boot, &x->peer);
    }
    if (st == IMC_OK && !x->peer) {
        st = IMC_ERR_UNSUPPORTED;
    }
    if (st == IMC_ERR_UNSUPPORTED) {
        IMC_LOG_DBG("%s group rank %d: rows go through the host (MPI)", name, x->boot.rank);
        return IMC_OK;
    }
    IMC_TRY(st);
    x->mode = XCHG_PEER;
    IMC_LOG_DBG("%s group rank %d: rows go from %s table to %s table", name, x->boot.rank,
                e->be->name, e->be->name);
    return IMC_OK;
}

enum imc_status eng_xchg_peer(struct imc_engine *e, bool *peer)
{
    if (e->xchg.mode == XCHG_UNDECIDED) { // the routed experts must run on the table too
        IMC_TRY(xchg_open(e, &e->xchg, e->opts.ep_comm, IMC_GROUP_EXPERT, "expert",
                          e->be_exp == e->be));
    }
    *peer = e->xchg.mode == XCHG_PEER;
    return IMC_OK;
}

enum imc_status eng_xchg_rows(struct imc_engine *e, const float *send, const uint64_t *send_rows,
                              float *recv, const uint64_t *recv_rows)
{
    size_t sc[IMC_ENG_MAX_SHARDS], rc[IMC_ENG_MAX_SHARDS];
    const size_t d = (size_t)e->m->hp.n_embd;
    for (int s = 0; s < e->ep_size; s++) {
        sc[s] = (size_t)send_rows[s] * d;
        rc[s] = (size_t)recv_rows[s] * d;
    }
    if (e->xchg.mode == XCHG_PEER) {
        return e->be->peer_alltoallv(e->ex, e->xchg.peer, send, sc, recv, rc);
    }
    return imc_xfer_alltoallv(e->opts.ep_comm, IMC_GROUP_EXPERT, send, sc, recv, rc);
}

// Frees x's exchange and waits for its transfers (none are left in flight unless a wait failed
// half-way).
static void xchg_close(struct imc_engine *e, struct eng_xchg *x)
{
    if (x->peer) {
        e->be->peer_free(x->peer);
    }
    (void)w_waitall(x);
    free(x->pending);
    *x = (struct eng_xchg){0};
}

void eng_xchg_free(struct imc_engine *e)
{
    xchg_close(e, &e->xchg);
    xchg_close(e, &e->pipe);
}

enum imc_status imc_engine_pipe_open(struct imc_engine *e, const struct imc_comm *c, bool *device)
{
    if (e->pipe.mode != XCHG_UNDECIDED) {
        IMC_LOG_ERR("engine: the pipeline transport is already open");
        return IMC_ERR_ARG;
    }
    IMC_TRY(xchg_open(e, &e->pipe, c, IMC_GROUP_PIPELINE, "pipeline", true));
    *device = e->pipe.mode == XCHG_PEER;
    return IMC_OK;
}

// Checks that the pipeline transport runs in the table's memory.
static enum imc_status pipe_ready(const struct imc_engine *e, const char *what)
{
    if (e->pipe.mode == XCHG_PEER) {
        return IMC_OK;
    }
    IMC_LOG_ERR("engine: %s: the pipeline transport does not run in the table's memory", what);
    return IMC_ERR_ARG;
}

enum imc_status imc_engine_pipe_send(struct imc_engine *e, const float *hidden, size_t n, int stage)
{
    IMC_TRY(pipe_ready(e, "pipe_send"));
    return e->be->peer_send(e->ex, e->pipe.peer, hidden, n, stage);
}

enum imc_status imc_engine_pipe_recv(struct imc_engine *e, float *hidden, size_t n, int stage)
{
    IMC_TRY(pipe_ready(e, "pipe_recv"));
    return e->be->peer_recv(e->ex, e->pipe.peer, hidden, n, stage);
}
