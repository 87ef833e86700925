/*
 * mpi/reduce: the rank-ordered chain reduction and integer all-reductions (reduce.h).
 *
 * Deadlock freedom of the chain: rank 0 posts every chunk's send at once and posts the receive
 * of total chunk k only after its send of chunk k completed (so in == out is safe); a middle rank
 * keeps SLOTS chunk buffers, receives ahead into free ones and reuses a slot only after its
 * previous send completed. Chunk k can always advance once chunk k-1 has, by induction along the
 * chain, because every receive for chunk k is posted before any rank waits on chunk k+SLOTS-1.
 */
#include "mpi/reduce.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mpi/mpi_priv.h"

enum { SLOTS = 4 };

struct chain {
    const struct imc_comm *c;
    enum imc_comm_group g;
    MPI_Comm comm;    // the group's communicator
    int rank, size;   // group rank and size
    int tag;          // reserved tag: MPI_TAG_UB (xfer uses at most MPI_TAG_UB - 1)
    MPI_Datatype type;
    size_t esize;     // bytes per element
    void (*add)(void *dst, const void *src, size_t n); // dst[i] = dst[i] + src[i]
    size_t n;         // elements
    size_t chunk;     // elements per chunk
    size_t nchunks;   // ceil(n / chunk)
};

static void add_f64(void *dst, const void *src, size_t n)
{
    double *d = dst;
    const double *s = src;
    for (size_t i = 0; i < n; i++) {
        d[i] = d[i] + s[i];
    }
}

static void add_f32(void *dst, const void *src, size_t n)
{
    float *d = dst;
    const float *s = src;
    for (size_t i = 0; i < n; i++) {
        d[i] = d[i] + s[i];
    }
}

static int chunk_len(const struct chain *ch, size_t k)
{
    size_t off = k * ch->chunk;
    return (int)(ch->n - off < ch->chunk ? ch->n - off : ch->chunk);
}

static size_t chunk_off(const struct chain *ch, size_t k)
{
    return k * ch->chunk * ch->esize;
}

// Group rank 0: feeds its array into the chain and collects the total into out.
static enum imc_status chain_root(const struct chain *ch, const char *in, char *out)
{
    enum imc_status st = IMC_OK;
    MPI_Request *req = calloc(2 * ch->nchunks, sizeof(*req));
    if (!req) {
        IMC_LOG_ERR("reduce: out of memory for %zu request handles", 2 * ch->nchunks);
        return IMC_ERR_NOMEM;
    }
    MPI_Request *sreq = req, *rreq = req + ch->nchunks;
    const char *gname = imc_comm_group_name(ch->g);
    for (size_t k = 0; k < ch->nchunks; k++) {
        IMC_MPI_GOTO(MPI_Isend(in + chunk_off(ch, k), chunk_len(ch, k), ch->type, 1, ch->tag,
                               ch->comm, &sreq[k]),
                     st, out_free);
    }
    for (size_t k = 0; k < ch->nchunks && st == IMC_OK; k++) {
        st = imc_mpi_waitall(ch->c, 1, &sreq[k], MPI_STATUSES_IGNORE,
                             "reduce: send of chunk %zu/%zu to %s rank 1", k + 1, ch->nchunks,
                             gname);
        if (st == IMC_OK) {
            IMC_MPI_GOTO(MPI_Irecv(out + chunk_off(ch, k), chunk_len(ch, k), ch->type,
                                   ch->size - 1, ch->tag, ch->comm, &rreq[k]),
                         st, out_free);
        }
    }
    for (size_t k = 0; k < ch->nchunks && st == IMC_OK; k++) {
        st = imc_mpi_waitall(ch->c, 1, &rreq[k], MPI_STATUSES_IGNORE,
                             "reduce: chunk %zu/%zu of the sum from %s rank %d", k + 1,
                             ch->nchunks, gname, ch->size - 1);
    }
out_free:
    free(req);
    return st;
}

// Posts the receive of chunk k of the partial sum into its slot.
static enum imc_status post_recv(const struct chain *ch, char *slots, size_t k, MPI_Request *rr)
{
    size_t s = k % SLOTS;
    IMC_MPI(MPI_Irecv(slots + s * ch->chunk * ch->esize, chunk_len(ch, k), ch->type,
                      ch->rank - 1, ch->tag, ch->comm, &rr[s]));
    return IMC_OK;
}

// Group ranks 1..P-1: partial sum in, own array added, on to the next rank (the last: to 0).
static enum imc_status chain_link(const struct chain *ch, const char *in, char *slots)
{
    MPI_Request rr[SLOTS], sr[SLOTS];
    for (int s = 0; s < SLOTS; s++) {
        rr[s] = sr[s] = MPI_REQUEST_NULL;
    }
    int dst = (ch->rank + 1) % ch->size;
    const char *gname = imc_comm_group_name(ch->g);
    for (size_t k = 0; k < ch->nchunks && k < SLOTS; k++) {
        IMC_TRY(post_recv(ch, slots, k, rr));
    }
    for (size_t k = 0; k < ch->nchunks; k++) {
        size_t s = k % SLOTS;
        char *buf = slots + s * ch->chunk * ch->esize;
        IMC_TRY(imc_mpi_waitall(ch->c, 1, &rr[s], MPI_STATUSES_IGNORE,
                                "reduce: chunk %zu/%zu of the partial sum from %s rank %d", k + 1,
                                ch->nchunks, gname, ch->rank - 1));
        ch->add(buf, in + chunk_off(ch, k), (size_t)chunk_len(ch, k));
        IMC_MPI(MPI_Isend(buf, chunk_len(ch, k), ch->type, dst, ch->tag, ch->comm, &sr[s]));
        if (k >= 1 && k - 1 + SLOTS < ch->nchunks) {
            size_t ps = (k - 1) % SLOTS;
            IMC_TRY(imc_mpi_waitall(ch->c, 1, &sr[ps], MPI_STATUSES_IGNORE,
                                    "reduce: send of chunk %zu/%zu to %s rank %d", k,
                                    ch->nchunks, gname, dst));
            IMC_TRY(post_recv(ch, slots, k - 1 + SLOTS, rr));
        }
    }
    return imc_mpi_waitall(ch->c, SLOTS, sr, MPI_STATUSES_IGNORE,
                           "reduce: last sends of %zu chunks to %s rank %d", ch->nchunks, gname,
                           dst);
}

static enum imc_status reduce_sum(struct chain *ch, const void *in, void *out)
{
    IMC_ASSERT((unsigned)ch->g < IMC_GROUP_COUNT);
    const struct imc_comm *c = ch->c;
    ch->comm = c->group[ch->g];
    ch->rank = c->rank[ch->g];
    ch->size = c->size[ch->g];
    ch->tag = c->tag_ub + 1;
    ch->chunk = c->chunk_bytes / ch->esize;
    ch->nchunks = ch->n == 0 ? 0 : (ch->n - 1) / ch->chunk + 1;
    if (ch->size == 1) {
        if (out != in && ch->n > 0) {
            memcpy(out, in, ch->n * ch->esize);
        }
        return IMC_OK;
    }
    if (ch->rank == 0) {
        return chain_root(ch, in, out);
    }
    size_t bytes = SLOTS * ch->chunk * ch->esize;
    char *slots = malloc(bytes);
    if (!slots) {
        IMC_LOG_ERR("reduce: out of memory for %zu bytes of chunk buffers", bytes);
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = chain_link(ch, in, slots);
    free(slots);
    return st;
}

enum imc_status imc_reduce_sum_f64(const struct imc_comm *c, enum imc_comm_group g,
                                   const double *in, double *out, size_t n)
{
    struct chain ch = {.c = c, .g = g, .type = MPI_DOUBLE, .esize = sizeof(double),
                       .add = add_f64, .n = n};
    return reduce_sum(&ch, in, out);
}

enum imc_status imc_reduce_sum_f32(const struct imc_comm *c, enum imc_comm_group g,
                                   const float *in, float *out, size_t n)
{
    struct chain ch = {.c = c, .g = g, .type = MPI_FLOAT, .esize = sizeof(float),
                       .add = add_f32, .n = n};
    return reduce_sum(&ch, in, out);
}

enum imc_status imc_reduce_all_sum_int(const struct imc_comm *c, enum imc_comm_group g, int *v,
                                       int n)
{
    IMC_ASSERT((unsigned)g < IMC_GROUP_COUNT && n >= 0);
    MPI_Request req = MPI_REQUEST_NULL;
    IMC_MPI(MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_INT, MPI_SUM, c->group[g], &req));
    return imc_mpi_waitall(c, 1, &req, MPI_STATUSES_IGNORE, "all-reduce of %d ints on %s", n,
                           imc_comm_group_name(g));
}

enum imc_status imc_reduce_errors(const struct imc_comm *c, int *count)
{
    return imc_reduce_all_sum_int(c, IMC_GROUP_WORLD, count, 1);
}
