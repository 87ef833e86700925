/*
 * kernels/cuda/emu/nccl: the emulated NCCL subset of cuemu_nccl.h over the caller's wire. The
 * group state is per host thread, as NCCL's is.
 */
#include "kernels/cuda/emu/cuemu_nccl.h"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <vector>

struct cuemu_nccl_comm {
    int n, rank;
    const cuemu_nccl_wire *wire;
    ncclResult_t async; // sticky: the first failure of the wire (ncclInProgress: init pending)
    bool pending;       // transfers started in the open group, not yet waited for
    ncclUniqueId id;    // what a pending init checks
};

namespace
{

thread_local int t_depth = 0;                          // ncclGroupStart nesting
thread_local std::vector<cuemu_nccl_comm *> t_touched; // comms with transfers in the open group

size_t type_size(ncclDataType_t t)
{
    switch (t) {
    case ncclInt8:
    case ncclUint8:
        return 1;
    case ncclInt32:
    case ncclFloat32:
        return 4;
    }
    return 0;
}

// Waits for the comm's transfers started so far.
ncclResult_t finish(cuemu_nccl_comm *c)
{
    c->pending = false;
    if (c->wire->waitall(c->wire->user) != 0) {
        c->async = ncclRemoteError;
    }
    return c->async;
}

ncclResult_t start(bool send, void *buf, size_t count, ncclDataType_t type, int peer,
                   cuemu_nccl_comm *c)
{
    if (!c) {
        return ncclInvalidArgument;
    }
    if (c->async != ncclSuccess) {
        return c->async == ncclInProgress ? ncclInvalidUsage : c->async;
    }
    const size_t es = type_size(type);
    if (es == 0 || peer < 0 || peer >= c->n || (count > 0 && !buf) || count > INT_MAX / es) {
        return ncclInvalidArgument;
    }
    const cuemu_nccl_wire *w = c->wire;
    const int rc =
        send ? w->isend(w->user, peer, buf, count * es) : w->irecv(w->user, peer, buf, count * es);
    if (rc != 0) {
        c->async = ncclRemoteError;
        return c->async;
    }
    if (t_depth == 0) {
        return finish(c);
    }
    if (!c->pending) {
        c->pending = true;
        t_touched.push_back(c);
    }
    return ncclSuccess;
}

// What every rank tells rank 0 at init.
struct hello {
    int nranks;
    ncclUniqueId id;
};

// The init's check over the wire: rank 0 gathers every rank's size and id and answers each with
// the verdict. Sets and returns c->async: ncclSuccess, ncclInvalidUsage or ncclRemoteError.
ncclResult_t handshake(cuemu_nccl_comm *c)
{
    const cuemu_nccl_wire *wire = c->wire;
    const hello mine = {c->n, c->id};
    int verdict = 1;
    bool wire_ok = true;
    if (c->rank == 0) {
        std::vector<hello> all((size_t)c->n);
        for (int r = 1; r < c->n; r++) {
            wire_ok = wire_ok && wire->irecv(wire->user, r, &all[(size_t)r], sizeof(hello)) == 0;
        }
        wire_ok = wire_ok && wire->waitall(wire->user) == 0;
        for (int r = 1; r < c->n && wire_ok; r++) {
            const hello &h = all[(size_t)r];
            verdict = verdict && h.nranks == c->n &&
                      std::memcmp(h.id.internal, c->id.internal, sizeof(c->id.internal)) == 0;
        }
        for (int r = 1; r < c->n && wire_ok; r++) {
            wire_ok = wire->isend(wire->user, r, &verdict, sizeof(verdict)) == 0;
        }
    } else {
        wire_ok = wire->isend(wire->user, 0, &mine, sizeof(mine)) == 0 &&
                  wire->irecv(wire->user, 0, &verdict, sizeof(verdict)) == 0;
    }
    wire_ok = wire->waitall(wire->user) == 0 && wire_ok;
    c->async = !wire_ok ? ncclRemoteError : !verdict ? ncclInvalidUsage : ncclSuccess;
    return c->async;
}

} // namespace

ncclResult_t cuemu_nccl_get_unique_id(ncclUniqueId *id)
{
    if (!id) {
        return ncclInvalidArgument;
    }
    std::random_device rd;
    for (size_t i = 0; i < sizeof(id->internal); i += sizeof(unsigned)) {
        const unsigned v = rd();
        std::memcpy(id->internal + i, &v, sizeof(v));
    }
    return ncclSuccess;
}

ncclResult_t cuemu_nccl_comm_init_wire(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank,
                                       ncclConfig_t *config, const struct cuemu_nccl_wire *wire)
{
    if (!comm || nranks < 1 || rank < 0 || rank >= nranks || !wire) {
        return ncclInvalidArgument;
    }
    *comm = nullptr;
    const char *fail = std::getenv("IMC_CUEMU_NCCL_FAIL_INIT");
    if (fail && *fail && std::atoi(fail) == rank) {
        return ncclSystemError;
    }
    cuemu_nccl_comm *c =
        new (std::nothrow) cuemu_nccl_comm{nranks, rank, wire, ncclInProgress, false, id};
    if (!c) {
        return ncclSystemError;
    }
    if (config && config->blocking == 0) {
        *comm = c;
        return ncclInProgress;
    }
    const ncclResult_t r = handshake(c);
    if (r != ncclSuccess) {
        delete c;
        return r;
    }
    *comm = c;
    return ncclSuccess;
}

ncclResult_t cuemu_nccl_comm_destroy(ncclComm_t comm)
{
    if (comm && comm->pending) {
        (void)finish(comm);
    }
    delete comm;
    return ncclSuccess;
}

ncclResult_t cuemu_nccl_comm_abort(ncclComm_t comm)
{
    for (size_t i = 0; i < t_touched.size(); i++) {
        if (t_touched[i] == comm) {
            t_touched.erase(t_touched.begin() + (long)i);
            break;
        }
    }
    delete comm;
    return ncclSuccess;
}

ncclResult_t cuemu_nccl_send(const void *buf, size_t count, ncclDataType_t type, int peer,
                             ncclComm_t comm, cudaStream_t stream)
{
    (void)stream;
    return start(true, const_cast<void *>(buf), count, type, peer, comm);
}

ncclResult_t cuemu_nccl_recv(void *buf, size_t count, ncclDataType_t type, int peer,
                             ncclComm_t comm, cudaStream_t stream)
{
    (void)stream;
    return start(false, buf, count, type, peer, comm);
}

ncclResult_t cuemu_nccl_group_start(void)
{
    t_depth++;
    return ncclSuccess;
}

ncclResult_t cuemu_nccl_group_end(void)
{
    if (t_depth == 0) {
        return ncclInvalidUsage;
    }
    if (--t_depth > 0) {
        return ncclSuccess;
    }
    ncclResult_t r = ncclSuccess;
    for (cuemu_nccl_comm *c : t_touched) {
        const ncclResult_t rc = finish(c);
        r = r == ncclSuccess ? rc : r;
    }
    t_touched.clear();
    return r;
}

ncclResult_t cuemu_nccl_comm_get_async_error(ncclComm_t comm, ncclResult_t *err)
{
    if (!comm || !err) {
        return ncclInvalidArgument;
    }
    if (comm->async == ncclInProgress) { // a nonblocking init: it runs now
        (void)handshake(comm);
    }
    *err = comm->async;
    return ncclSuccess;
}

const char *cuemu_nccl_get_error_string(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess:
        return "no error";
    case ncclUnhandledCudaError:
        return "unhandled cuda error";
    case ncclSystemError:
        return "unhandled system error";
    case ncclInternalError:
        return "internal error";
    case ncclInvalidArgument:
        return "invalid argument";
    case ncclInvalidUsage:
        return "invalid usage";
    case ncclRemoteError:
        return "remote process exited or there was a network error";
    case ncclInProgress:
        return "NCCL operation in progress";
    }
    return "unknown result code";
}
