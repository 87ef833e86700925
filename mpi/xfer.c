/*
 * mpi/xfer: activation transfers, broadcast and all-to-all (xfer.h).
 */
#include "mpi/xfer.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/log.h"
#include "mpi/mpi_priv.h"

struct imc_xfer {
    const struct imc_comm *c; // borrowed
    enum imc_comm_group g;    // group whose ranks peer names
    int peer;                 // group rank of the other end
    int tag;                  // MPI tag of every piece
    int is_recv;              // 1 for a receive
    int done;                 // 1 once imc_xfer_test saw every piece complete
    MPI_Datatype type;        // MPI_FLOAT or MPI_BYTE
    size_t elem;              // bytes per element of type
    size_t n;                 // elements in the whole buffer
    size_t piece;             // elements per message (the last may be shorter)
    int nreq;                 // messages, >= 1 (an empty buffer is one empty message)
    MPI_Request *req;         // [nreq]
    MPI_Status *st;           // [nreq]
};

int imc_xfer_tag(const struct imc_comm *c, long chunk)
{
    IMC_ASSERT(chunk >= 0);
    return (int)(chunk % ((long)c->tag_ub + 1));
}

static enum imc_status check_peer(const struct imc_comm *c, enum imc_comm_group g, int peer,
                                  int tag, const char *what)
{
    IMC_ASSERT((unsigned)g < IMC_GROUP_COUNT);
    if (peer < 0 || peer >= c->size[g]) {
        IMC_LOG_ERR("%s: peer %d is not a rank of the %s group (size %d)", what, peer,
                    imc_comm_group_name(g), c->size[g]);
        return IMC_ERR_ARG;
    }
    if (tag < 0 || tag > c->tag_ub) {
        IMC_LOG_ERR("%s: tag %d outside [0, %d]", what, tag, c->tag_ub);
        return IMC_ERR_ARG;
    }
    return IMC_OK;
}

static void xfer_free(struct imc_xfer *x)
{
    if (x) {
        free(x->req);
        free(x->st);
        free(x);
    }
}

static enum imc_status xfer_new(const struct imc_comm *c, size_t n, size_t elem,
                                struct imc_xfer **out)
{
    struct imc_xfer *x = calloc(1, sizeof(*x));
    size_t piece = c->max_msg_bytes / elem;
    size_t nreq = n == 0 ? 1 : (n + piece - 1) / piece;
    if (!x || nreq > INT_MAX) {
        free(x);
        IMC_LOG_ERR("out of memory for a transfer of %zu elements", n);
        return IMC_ERR_NOMEM;
    }
    x->req = calloc(nreq, sizeof(*x->req));
    x->st = calloc(nreq, sizeof(*x->st));
    if (!x->req || !x->st) {
        xfer_free(x);
        IMC_LOG_ERR("out of memory for a transfer of %zu elements", n);
        return IMC_ERR_NOMEM;
    }
    x->c = c;
    x->elem = elem;
    x->type = elem == sizeof(float) ? MPI_FLOAT : MPI_BYTE;
    x->n = n;
    x->piece = piece;
    x->nreq = (int)nreq;
    *out = x;
    return IMC_OK;
}

static size_t piece_len(const struct imc_xfer *x, int i)
{
    size_t off = (size_t)i * x->piece;
    return x->n - off < x->piece ? x->n - off : x->piece;
}

// Starts the pieces of a transfer of n elements of elem bytes (4: MPI_FLOAT, 1: MPI_BYTE).
static enum imc_status xfer_start(const struct imc_comm *c, enum imc_comm_group g, int peer,
                                  int tag, char *buf, size_t n, size_t elem, int is_recv,
                                  struct imc_xfer **out)
{
    *out = NULL;
    IMC_TRY(check_peer(c, g, peer, tag, is_recv ? "receive" : "send"));
    struct imc_xfer *x = NULL;
    IMC_TRY(xfer_new(c, n, elem, &x));
    x->g = g;
    x->peer = peer;
    x->tag = tag;
    x->is_recv = is_recv;
    enum imc_status st = IMC_OK;
    for (int i = 0; i < x->nreq; i++) {
        char *p = buf ? buf + (size_t)i * x->piece * elem : buf;
        int len = (int)piece_len(x, i);
        if (is_recv) {
            IMC_MPI_GOTO(MPI_Irecv(p, len, x->type, peer, tag, c->group[g], &x->req[i]), st,
                         out_free);
        } else {
            IMC_MPI_GOTO(MPI_Isend(p, len, x->type, peer, tag, c->group[g], &x->req[i]), st,
                         out_free);
        }
    }
    *out = x;
    return IMC_OK;
out_free:
    xfer_free(x);
    return st;
}

enum imc_status imc_xfer_isend(const struct imc_comm *c, enum imc_comm_group g, int peer, int tag,
                               const float *buf, size_t n, struct imc_xfer **out)
{
    // MPI_Isend takes a non-const buffer in old signatures; it never writes to it.
    return xfer_start(c, g, peer, tag, (char *)(uintptr_t)buf, n, sizeof(float), 0, out);
}

enum imc_status imc_xfer_irecv(const struct imc_comm *c, enum imc_comm_group g, int peer, int tag,
                               float *buf, size_t n, struct imc_xfer **out)
{
    return xfer_start(c, g, peer, tag, (char *)buf, n, sizeof(float), 1, out);
}

enum imc_status imc_xfer_isend_bytes(const struct imc_comm *c, enum imc_comm_group g, int peer,
                                     int tag, const void *buf, size_t bytes,
                                     struct imc_xfer **out)
{
    return xfer_start(c, g, peer, tag, (char *)(uintptr_t)buf, bytes, 1, 0, out);
}

enum imc_status imc_xfer_irecv_bytes(const struct imc_comm *c, enum imc_comm_group g, int peer,
                                     int tag, void *buf, size_t bytes, struct imc_xfer **out)
{
    return xfer_start(c, g, peer, tag, buf, bytes, 1, 1, out);
}

enum imc_status imc_xfer_test(struct imc_xfer *x, bool *done)
{
    if (!x->done) {
        int flag = 0;
        IMC_MPI(MPI_Testall(x->nreq, x->req, &flag, x->st));
        x->done = flag;
    }
    *done = x->done;
    return IMC_OK;
}

// Checks that each piece of a completed receive had the expected length.
static enum imc_status check_lengths(const struct imc_xfer *x)
{
    for (int i = 0; i < x->nreq; i++) {
        int got = 0;
        IMC_MPI(MPI_Get_count(&x->st[i], x->type, &got));
        if ((size_t)got != piece_len(x, i)) {
            IMC_LOG_ERR("receive from %s rank %d (tag %d): expected %zu %s in message %d of "
                        "%d, got %d",
                        imc_comm_group_name(x->g), x->peer, x->tag, piece_len(x, i),
                        x->elem == 1 ? "bytes" : "floats", i + 1, x->nreq, got);
            return IMC_ERR_MPI;
        }
    }
    return IMC_OK;
}

enum imc_status imc_xfer_wait(struct imc_xfer *x)
{
    if (!x) {
        return IMC_OK;
    }
    enum imc_status st = IMC_OK;
    if (!x->done) {
        st = imc_mpi_waitall(x->c, x->nreq, x->req, x->st,
                             "%s of %zu %s %s %s rank %d (tag %d)",
                             x->is_recv ? "receive" : "send", x->n,
                             x->elem == 1 ? "bytes" : "floats", x->is_recv ? "from" : "to",
                             imc_comm_group_name(x->g), x->peer, x->tag);
    }
    if (st == IMC_OK && x->is_recv) {
        st = check_lengths(x);
    }
    xfer_free(x);
    return st;
}

void imc_xfer_cancel(struct imc_xfer *x)
{
    if (!x) {
        return;
    }
    IMC_ASSERT(x->is_recv);
    for (int i = 0; !x->done && i < x->nreq; i++) {
        if (x->req[i] != MPI_REQUEST_NULL) {
            MPI_Cancel(&x->req[i]);
            MPI_Wait(&x->req[i], MPI_STATUS_IGNORE); // local for a cancelled receive
        }
    }
    xfer_free(x);
}

enum imc_status imc_xfer_send(const struct imc_comm *c, enum imc_comm_group g, int peer, int tag,
                              const float *buf, size_t n)
{
    struct imc_xfer *x = NULL;
    IMC_TRY(imc_xfer_isend(c, g, peer, tag, buf, n, &x));
    return imc_xfer_wait(x);
}

enum imc_status imc_xfer_recv(const struct imc_comm *c, enum imc_comm_group g, int peer, int tag,
                              float *buf, size_t n)
{
    struct imc_xfer *x = NULL;
    IMC_TRY(imc_xfer_irecv(c, g, peer, tag, buf, n, &x));
    return imc_xfer_wait(x);
}

enum imc_status imc_xfer_send_bytes(const struct imc_comm *c, enum imc_comm_group g, int peer,
                                    int tag, const void *buf, size_t bytes)
{
    struct imc_xfer *x = NULL;
    IMC_TRY(imc_xfer_isend_bytes(c, g, peer, tag, buf, bytes, &x));
    return imc_xfer_wait(x);
}

enum imc_status imc_xfer_recv_bytes(const struct imc_comm *c, enum imc_comm_group g, int peer,
                                    int tag, void *buf, size_t bytes)
{
    struct imc_xfer *x = NULL;
    IMC_TRY(imc_xfer_irecv_bytes(c, g, peer, tag, buf, bytes, &x));
    return imc_xfer_wait(x);
}

enum imc_status imc_xfer_bcast(const struct imc_comm *c, enum imc_comm_group g, int root,
                               void *buf, size_t bytes)
{
    IMC_TRY(check_peer(c, g, root, 0, "broadcast"));
    size_t piece = c->max_msg_bytes;
    size_t n = bytes == 0 ? 0 : (bytes - 1) / piece + 1;
    for (size_t i = 0; i < n; i++) {
        size_t off = i * piece;
        int len = (int)(bytes - off < piece ? bytes - off : piece);
        MPI_Request req = MPI_REQUEST_NULL;
        IMC_MPI(MPI_Ibcast((char *)buf + off, len, MPI_BYTE, root, c->group[g], &req));
        IMC_TRY(imc_mpi_waitall(c, 1, &req, MPI_STATUSES_IGNORE,
                                "broadcast of %zu bytes from %s rank %d", bytes,
                                imc_comm_group_name(g), root));
    }
    return IMC_OK;
}

// Fills counts/displs (ints) from size_t counts; IMC_ERR_ARG when a total reaches 2^31.
static enum imc_status pack_counts(const size_t *counts, int n, int *icounts, int *displs,
                                   const char *side, const char *unit)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (counts[i] > (size_t)INT_MAX - total) {
            IMC_LOG_ERR("all-to-all: %s counts add up to 2^31 %s or more (at rank %d)", side,
                        unit, i);
            return IMC_ERR_ARG;
        }
        displs[i] = (int)total;
        icounts[i] = (int)counts[i];
        total += counts[i];
    }
    return IMC_OK;
}

static enum imc_status alltoallv(const struct imc_comm *c, enum imc_comm_group g,
                                 const void *send, const size_t *send_counts, void *recv,
                                 const size_t *recv_counts, MPI_Datatype type, const char *unit)
{
    IMC_ASSERT((unsigned)g < IMC_GROUP_COUNT);
    int n = c->size[g];
    int *ints = malloc(4 * (size_t)n * sizeof(*ints));
    if (!ints) {
        IMC_LOG_ERR("out of memory for all-to-all counts of %d ranks", n);
        return IMC_ERR_NOMEM;
    }
    int *sc = ints, *sd = ints + n, *rc = ints + 2 * n, *rd = ints + 3 * n;
    enum imc_status st = pack_counts(send_counts, n, sc, sd, "send", unit);
    if (st == IMC_OK) {
        st = pack_counts(recv_counts, n, rc, rd, "receive", unit);
    }
    MPI_Request req = MPI_REQUEST_NULL;
    if (st == IMC_OK) {
        // MPI_Ialltoallv takes a non-const send buffer in old signatures; it never writes to it.
        IMC_MPI_GOTO(MPI_Ialltoallv((void *)(uintptr_t)send, sc, sd, type, recv, rc, rd, type,
                                    c->group[g], &req),
                     st, out_free);
        st = imc_mpi_waitall(c, 1, &req, MPI_STATUSES_IGNORE, "all-to-all on %s (%d ranks)",
                             imc_comm_group_name(g), n);
    }
out_free:
    free(ints);
    return st;
}

enum imc_status imc_xfer_alltoallv(const struct imc_comm *c, enum imc_comm_group g,
                                   const float *send, const size_t *send_counts, float *recv,
                                   const size_t *recv_counts)
{
    return alltoallv(c, g, send, send_counts, recv, recv_counts, MPI_FLOAT, "floats");
}

enum imc_status imc_xfer_alltoallv_bytes(const struct imc_comm *c, enum imc_comm_group g,
                                         const void *send, const size_t *send_bytes, void *recv,
                                         const size_t *recv_bytes)
{
    return alltoallv(c, g, send, send_bytes, recv, recv_bytes, MPI_BYTE, "bytes");
}

enum imc_status imc_xfer_alltoall_u64(const struct imc_comm *c, enum imc_comm_group g,
                                      const uint64_t *send, uint64_t *recv)
{
    IMC_ASSERT((unsigned)g < IMC_GROUP_COUNT);
    MPI_Request req = MPI_REQUEST_NULL;
    IMC_MPI(MPI_Ialltoall((void *)(uintptr_t)send, 1, MPI_UINT64_T, recv, 1, MPI_UINT64_T,
                          c->group[g], &req));
    return imc_mpi_waitall(c, 1, &req, MPI_STATUSES_IGNORE, "all-to-all of sizes on %s (%d ranks)",
                           imc_comm_group_name(g), c->size[g]);
}
