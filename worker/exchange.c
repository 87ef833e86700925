/*
 * worker/exchange: how the expert shards of a stage move routed rows for worker/moe.c's dispatch
 * and combine (DESIGN.md §6 "Experts"; issue 13 item 3). Two ways:
 *   - host: the rows are in host memory and go through MPI (imc_xfer_alltoallv);
 *   - peer: the rows stay in the op table's memory and the table moves them between the ranks
 *     itself (backend.h peer_alltoallv: NCCL between GPUs), so a GPU shard's routed rows never
 *     come down to the host. MPI still carries the counts and the (token, expert) records.
 * The shards decide once, at their first MoE exchange (which every shard reaches together: the
 * layers are collective over the group): peer when every shard's table has its own memory and a
 * peer exchange whose library loads, its routed experts run on that table (not --experts-on
 * cpu), and opts.host_exchange is off; else host on every shard. The choice changes where rows
 * travel, never what is computed: both give the same bits.
 *
 * The peer exchange borrows this file's callbacks over the expert group (backend.h
 * imc_peer_boot): the agreement and the broadcast of NCCL's id, and the nonblocking transfers the
 * emulator's NCCL runs on (tests). Ownership: the engine owns the exchange (struct eng_xchg),
 * freed by eng_xchg_free.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mpi/xfer.h"
#include "worker/engine_priv.h"

#define XCHG_TAG 0 // the wire's point-to-point messages on the expert group (no other uses it)

// Every shard's bytes of mine into all, in shard order.
static enum imc_status w_allgather(void *user, const void *mine, void *all, size_t bytes)
{
    const struct eng_xchg *x = (const struct eng_xchg *)user;
    const int n = x->boot.n_ranks;
    char *send = malloc((size_t)n * bytes);
    size_t cnt[IMC_ENG_MAX_SHARDS];
    if (!send) {
        IMC_LOG_ERR("exchange: out of memory for the hellos of %d shards", n);
        return IMC_ERR_NOMEM;
    }
    for (int j = 0; j < n; j++) {
        memcpy(send + (size_t)j * bytes, mine, bytes);
        cnt[j] = bytes;
    }
    const enum imc_status st =
        imc_xfer_alltoallv_bytes(x->c, IMC_GROUP_EXPERT, send, cnt, all, cnt);
    free(send);
    return st;
}

static enum imc_status w_bcast(void *user, void *buf, size_t bytes)
{
    const struct eng_xchg *x = (const struct eng_xchg *)user;
    return imc_xfer_bcast(x->c, IMC_GROUP_EXPERT, 0, buf, bytes);
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
    IMC_TRY(imc_xfer_isend_bytes(x->c, IMC_GROUP_EXPERT, peer, XCHG_TAG, buf, bytes,
                                 &x->pending[x->n_pending]));
    x->n_pending++;
    return IMC_OK;
}

static enum imc_status w_irecv(void *user, int peer, void *buf, size_t bytes)
{
    struct eng_xchg *x = (struct eng_xchg *)user;
    IMC_TRY(w_room(x));
    IMC_TRY(imc_xfer_irecv_bytes(x->c, IMC_GROUP_EXPERT, peer, XCHG_TAG, buf, bytes,
                                 &x->pending[x->n_pending]));
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

// The first exchange: every shard says whether it can keep its rows in its table, then the
// table's peer exchange is set up where all can.
static enum imc_status decide(struct imc_engine *e)
{
    struct eng_xchg *x = &e->xchg;
    x->c = e->opts.ep_comm;
    x->boot = (struct imc_peer_boot){.n_ranks = e->ep_size,
                                     .rank = e->ep_rank,
                                     .timeout = imc_comm_timeout(x->c),
                                     .group = "expert",
                                     .user = x,
                                     .allgather = w_allgather,
                                     .bcast = w_bcast,
                                     .isend = w_isend,
                                     .irecv = w_irecv,
                                     .waitall = w_waitall};
    const bool can = e->dev && e->be_exp == e->be && e->be->peer_new && !e->opts.host_exchange;
    x->mode = XCHG_HOST;
    if (!can) { // this shard's no, in the exchange of hellos the others' peer_new makes
        struct imc_peer_hello no = {0}, *all = calloc((size_t)e->ep_size, sizeof(*all));
        const enum imc_status st = all ? w_allgather(x, &no, all, sizeof(no)) : IMC_ERR_NOMEM;
        free(all);
        return st;
    }
    const enum imc_status st = e->be->peer_new(e->be_ctx, &x->boot, &x->peer);
    if (st == IMC_ERR_UNSUPPORTED) {
        IMC_LOG_DBG("shard %d: the expert shards exchange routed rows through the host (MPI)",
                    e->ep_rank);
        return IMC_OK;
    }
    IMC_TRY(st);
    x->mode = XCHG_PEER;
    IMC_LOG_DBG("shard %d: the expert shards exchange routed rows in the %s table's memory",
                e->ep_rank, e->be->name);
    return IMC_OK;
}

enum imc_status eng_xchg_peer(struct imc_engine *e, bool *peer)
{
    if (e->xchg.mode == XCHG_UNDECIDED) {
        IMC_TRY(decide(e));
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

void eng_xchg_free(struct imc_engine *e)
{
    struct eng_xchg *x = &e->xchg;
    if (x->peer) {
        e->be->peer_free(x->peer);
    }
    (void)w_waitall(x); // none are left in flight unless a wait failed half-way
    free(x->pending);
    *x = (struct eng_xchg){0};
}
