/*
 * kernels/cuda/peer.cu: the op table's exchange of device memory between ranks (backend.h
 * peer_new / peer_alltoallv / peer_send / peer_recv; issue 13 item 3): NCCL point-to-point
 * calls (grouped for the all-to-all) on the table's stream, so an expert shard's routed rows and
 * a pipeline stage's hidden rows go from its GPU to the others' without the host. MPI keeps the
 * control: the group agrees on using NCCL and broadcasts rank 0's unique id through the caller's
 * callbacks (worker/exchange.c), and the counts of every exchange come from an MPI exchange before
 * it.
 *
 * NCCL is opened at run time (dlopen of the soname compiled against, libnccl.so.2, as blas.cu
 * opens cuBLAS): the program does not link it. Before any NCCL call the ranks exchange hellos
 * (struct imc_peer_hello): a rank where NCCL does not load says no, and two ranks on one GPU
 * (same host, same PCI bus id), which NCCL refuses, are named in a warning; then the whole group
 * falls back to MPI instead of failing or hanging in NCCL's init. The communicator is nonblocking
 * (ncclCommInitRankConfig, blocking = 0): the ranks agree that every init call went through and
 * then that every init completed (polled for at most boot->timeout seconds), so a rank whose init
 * fails alone warns and the whole group falls back to MPI, instead of leaving the others waiting
 * in theirs. A nonblocking communicator's calls may return ncclInProgress: every exchange polls
 * it until its calls are done before it looks at the stream.
 *
 * Every exchange waits for its data before returning, polling the stream and the communicator's
 * async error against boot->timeout (the MPI watchdog's, IMC_MPI_TIMEOUT): a peer that died or
 * never joins makes the exchange abort the communicator and fail with IMC_ERR_NCCL naming this
 * rank, the group and the seconds waited, instead of a hang.
 *
 * In the emulator the same code runs against kernels/cuda/emu/cuemu_nccl.h, whose communicator
 * travels over the boot's host transport (emulated device memory is host memory); only the
 * library's loading (load / unload) and ncclCommInitRank (init_rank) differ. Device-only paths
 * (dlopen, the real NCCL) are compiled by nvcc in CI and run only on a GPU machine.
 */
#include "kernels/cuda/cuda_common.cuh"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/cuda/kern_decl.h"
#include "kernels/cuda/table_priv.h"

extern "C" {
#include "core/clock.h"
#include "kernels/backend.h"
}

#ifdef IMC_CUDA_EMU
#include "kernels/cuda/emu/cuemu_nccl.h"
#else
#include <dlfcn.h>
#include <nccl.h>
#define PEER_STR_(x) #x
#define PEER_STR(x) PEER_STR_(x)
#define PEER_SONAME "libnccl.so." PEER_STR(NCCL_MAJOR)
#endif

// Both builds of this file can be linked into one program (a test binary of the CUDA build), each
// with its own layout of these: local types, used through void pointers by the launchers.
namespace
{

// The NCCL entry points: the library's (dlsym) or the emulator's.
struct imc_cuda_peer_fns {
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*destroy)(ncclComm_t);
    ncclResult_t (*abort)(ncclComm_t);
    ncclResult_t (*send)(const void *, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
    ncclResult_t (*recv)(void *, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
    ncclResult_t (*group_start)(void);
    ncclResult_t (*group_end)(void);
    ncclResult_t (*async_error)(ncclComm_t, ncclResult_t *);
    const char *(*error_string)(ncclResult_t);
#ifndef IMC_CUDA_EMU
    ncclResult_t (*init_rank)(ncclComm_t *, int, ncclUniqueId, int, ncclConfig_t *);
#endif
};

struct imc_cuda_peer {
    imc_cuda_peer_fns f;
    void *lib; // the dlopen handle (device build), or NULL
    ncclComm_t comm;
    int n, rank;
    double timeout;
    const char *group;
#ifdef IMC_CUDA_EMU
    cuemu_nccl_wire wire; // the boot's host transport (borrowed boot)
#endif
};

#ifdef IMC_CUDA_EMU

int wire_isend(void *u, int peer, const void *buf, size_t bytes)
{
    const struct imc_peer_boot *b = (const struct imc_peer_boot *)u;
    return b->isend(b->user, peer, buf, bytes) != IMC_OK;
}

int wire_irecv(void *u, int peer, void *buf, size_t bytes)
{
    const struct imc_peer_boot *b = (const struct imc_peer_boot *)u;
    return b->irecv(b->user, peer, buf, bytes) != IMC_OK;
}

int wire_waitall(void *u)
{
    const struct imc_peer_boot *b = (const struct imc_peer_boot *)u;
    return b->waitall(b->user) != IMC_OK;
}

bool load(struct imc_cuda_peer *p, const struct imc_peer_boot *b)
{
    p->f = imc_cuda_peer_fns{cuemu_nccl_get_unique_id,
                             cuemu_nccl_comm_destroy,
                             cuemu_nccl_comm_abort,
                             cuemu_nccl_send,
                             cuemu_nccl_recv,
                             cuemu_nccl_group_start,
                             cuemu_nccl_group_end,
                             cuemu_nccl_comm_get_async_error,
                             cuemu_nccl_get_error_string};
    p->wire = cuemu_nccl_wire{(void *)b, wire_isend, wire_irecv, wire_waitall};
    return true;
}

ncclResult_t init_rank(struct imc_cuda_peer *p, ncclUniqueId id, ncclConfig_t *config)
{
    return cuemu_nccl_comm_init_wire(&p->comm, p->n, id, p->rank, config, &p->wire);
}

void unload(struct imc_cuda_peer *)
{
}

#else

template <class F> bool sym(void *lib, F *f, const char *name)
{
    *f = reinterpret_cast<F>(dlsym(lib, name));
    return *f != nullptr;
}

bool load(struct imc_cuda_peer *p, const struct imc_peer_boot *)
{
    p->lib = dlopen(PEER_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!p->lib) {
        IMC_LOG_INF("cuda: %s does not load (%s); expert rows go through MPI", PEER_SONAME,
                    dlerror());
        return false;
    }
    imc_cuda_peer_fns &f = p->f;
    if (sym(p->lib, &f.get_unique_id, "ncclGetUniqueId") &&
        sym(p->lib, &f.destroy, "ncclCommDestroy") && sym(p->lib, &f.abort, "ncclCommAbort") &&
        sym(p->lib, &f.send, "ncclSend") && sym(p->lib, &f.recv, "ncclRecv") &&
        sym(p->lib, &f.group_start, "ncclGroupStart") &&
        sym(p->lib, &f.group_end, "ncclGroupEnd") &&
        sym(p->lib, &f.async_error, "ncclCommGetAsyncError") &&
        sym(p->lib, &f.error_string, "ncclGetErrorString") &&
        sym(p->lib, &f.init_rank, "ncclCommInitRankConfig")) {
        return true;
    }
    IMC_LOG_INF("cuda: %s lacks a function imc calls; expert rows go through MPI", PEER_SONAME);
    dlclose(p->lib);
    p->lib = NULL;
    return false;
}

ncclResult_t init_rank(struct imc_cuda_peer *p, ncclUniqueId id, ncclConfig_t *config)
{
    return p->f.init_rank(&p->comm, p->n, id, p->rank, config);
}

void unload(struct imc_cuda_peer *p)
{
    if (p->lib) {
        dlclose(p->lib);
    }
}

#endif // IMC_CUDA_EMU

// This rank's hello: whether it can, its host and its device (the emulator's device is per
// process: its emulated memory is the process's).
void hello_of(struct imc_peer_hello *h, bool ok)
{
    memset(h, 0, sizeof(*h));
    h->ok = ok;
    if (gethostname(h->host, sizeof(h->host) - 1) != 0) {
        snprintf(h->host, sizeof(h->host), "?");
    }
#ifdef IMC_CUDA_EMU
    snprintf(h->device, sizeof(h->device), "emulator of process %ld", (long)getpid());
#else
    int dev = 0;
    if (ok && (cudaGetDevice(&dev) != cudaSuccess ||
               cudaDeviceGetPCIBusId(h->device, (int)sizeof(h->device) - 1, dev) != cudaSuccess)) {
        (void)cudaGetLastError();
        h->ok = 0;
    }
#endif
}

// Whether every rank can and no two share a device (logged once, by group rank 0, with the
// ranks that share one).
bool all_can(const struct imc_peer_hello *all, const struct imc_peer_boot *b)
{
    for (int i = 0; i < b->n_ranks; i++) {
        if (!all[i].ok) {
            return false;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(all[i].host, all[j].host) == 0 &&
                strcmp(all[i].device, all[j].device) == 0) {
                if (b->rank == 0) {
                    IMC_LOG_WRN("ranks %d and %d of the %s group share a GPU (%s on %s), which "
                                "NCCL cannot serve: their rows go through the host (MPI)",
                                j, i, b->group, all[i].device, all[i].host);
                }
                return false;
            }
        }
    }
    return true;
}

// Every rank's ok into *all: whether ok holds on all of them (collective).
enum imc_status agree(const struct imc_peer_boot *b, bool ok, bool *all)
{
    int32_t *v = (int32_t *)calloc((size_t)b->n_ranks, sizeof(int32_t));
    const int32_t mine = ok;
    if (!v) {
        IMC_LOG_ERR("cuda: out of host memory for the %s group's agreement", b->group);
        return IMC_ERR_NOMEM;
    }
    const enum imc_status st = b->allgather(b->user, &mine, v, sizeof(mine));
    *all = st == IMC_OK;
    for (int i = 0; i < b->n_ranks && *all; i++) {
        *all = v[i] != 0;
    }
    free(v);
    return st;
}

// Logs a failed NCCL call, aborts the communicator (the group cannot go on), IMC_ERR_NCCL.
enum imc_status fail(struct imc_cuda_peer *p, const char *what, ncclResult_t r)
{
    IMC_LOG_ERR("cuda: rank %d of the %s group: NCCL %s: %s", p->rank, p->group, what,
                p->f.error_string(r));
    if (p->comm) {
        (void)p->f.abort(p->comm);
        p->comm = NULL;
    }
    return IMC_ERR_NCCL;
}

// Whether an NCCL call went through: a nonblocking communicator's calls may also answer that
// they are still in progress (peer_wait then polls them to the end).
bool called(ncclResult_t r)
{
    return r == ncclSuccess || r == ncclInProgress;
}

// Waits for the exchange enqueued on stream: polls the communicator's async error until its
// calls are done (a nonblocking communicator's may still be enqueueing), then the stream, or
// aborts after p->timeout seconds.
enum imc_status peer_wait(struct imc_cuda_peer *p, cudaStream_t stream)
{
    const double t0 = imc_clock_now();
    for (;;) {
        ncclResult_t ae = ncclSuccess;
        if (p->f.async_error(p->comm, &ae) != ncclSuccess || !called(ae)) {
            return fail(p, "exchange (async error)", ae);
        }
        const cudaError_t q = ae == ncclSuccess ? cudaStreamQuery(stream) : cudaErrorNotReady;
        if (q == cudaSuccess) {
            return IMC_OK;
        }
        if (q != cudaErrorNotReady) {
            (void)cudaGetLastError();
            IMC_LOG_ERR("cuda: rank %d of the %s group: the exchange's stream: %s", p->rank,
                        p->group, cudaGetErrorString(q));
            return fail(p, "exchange", ncclUnhandledCudaError);
        }
        if (p->timeout > 0 && imc_clock_now() - t0 > p->timeout) {
            IMC_LOG_ERR("cuda: rank %d of the %s group: the exchange did not complete in %.0f s "
                        "(a peer failed or is stuck); aborting it",
                        p->rank, p->group, p->timeout);
            (void)p->f.abort(p->comm);
            p->comm = NULL;
            return IMC_ERR_NCCL;
        }
        sched_yield();
    }
}

// The nonblocking init's result: polls the communicator until it is no longer in progress, for
// at most p->timeout seconds (ncclInProgress then).
ncclResult_t init_wait(struct imc_cuda_peer *p)
{
    const double t0 = imc_clock_now();
    for (;;) {
        ncclResult_t ae = ncclSuccess;
        const ncclResult_t r = p->f.async_error(p->comm, &ae);
        if (r != ncclSuccess || ae != ncclInProgress) {
            return r != ncclSuccess ? r : ae;
        }
        if (p->timeout > 0 && imc_clock_now() - t0 > p->timeout) {
            return ncclInProgress;
        }
        sched_yield();
    }
}

// Builds the group's communicator without blocking (NCCL's nonblocking init), so that no rank is
// left waiting in it for a peer whose init failed: the ranks agree that every init call went
// through, then poll their inits to the end (at most p->timeout seconds each) and agree that
// every one succeeded. IMC_OK with p->comm; IMC_ERR_UNSUPPORTED when one failed anywhere (the
// rank that saw it warns with NCCL's error; every communicator aborted; the group's rows then go
// through the host); an error of the agreement itself.
enum imc_status init_comm(struct imc_cuda_peer *p, const struct imc_peer_boot *b, ncclUniqueId id)
{
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = init_rank(p, id, &config);
    const char *what = "ncclCommInitRankConfig";
    bool mine = called(r), all = false;
    enum imc_status st = agree(b, mine, &all);
    if (st == IMC_OK && all) {
        r = init_wait(p);
        what = "the communicator's init";
        mine = r == ncclSuccess;
        st = agree(b, mine, &all);
    }
    if (st == IMC_OK && all) {
        return IMC_OK;
    }
    if (mine) {
        IMC_LOG_INF("cuda: rank %d of the %s group: another rank's NCCL init failed; the "
                    "group's rows go through the host (MPI)",
                    b->rank, b->group);
    } else if (r == ncclInProgress) {
        IMC_LOG_WRN("cuda: rank %d of the %s group: %s did not complete in %.0f s; the group's "
                    "rows go through the host (MPI)",
                    b->rank, b->group, what, p->timeout);
    } else {
        IMC_LOG_WRN("cuda: rank %d of the %s group: %s (%d ranks): %s; the group's rows go "
                    "through the host (MPI)",
                    b->rank, b->group, what, b->n_ranks, p->f.error_string(r));
    }
    if (p->comm) {
        (void)p->f.abort(p->comm);
        p->comm = NULL;
    }
    return st != IMC_OK ? st : IMC_ERR_UNSUPPORTED;
}

// IMC_OK while p's communicator lives; after an abort IMC_ERR_NCCL (logged: what came after it).
enum imc_status alive(const struct imc_cuda_peer *p, const char *what)
{
    if (p->comm) {
        return IMC_OK;
    }
    IMC_LOG_ERR("cuda: rank %d of the %s group: %s after the group's NCCL communicator was "
                "aborted",
                p->rank, p->group, what);
    return IMC_ERR_NCCL;
}

} // namespace

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(peer_new)(void *ctx, const struct imc_peer_boot *b,
                                                      void **out)
{
    (void)ctx;
    *out = NULL;
    struct imc_cuda_peer *p = (struct imc_cuda_peer *)calloc(1, sizeof(*p));
    struct imc_peer_hello *hello =
        (struct imc_peer_hello *)calloc((size_t)b->n_ranks + 1, sizeof(*hello));
    if (!p || !hello) { // a few hundred bytes: the process is failing anyway
        IMC_LOG_ERR("cuda: out of host memory for the %s group's exchange", b->group);
        free(p);
        free(hello);
        return IMC_ERR_NOMEM;
    }
    hello_of(&hello[b->n_ranks], load(p, b)); // this rank's, then everyone's in rank order
    enum imc_status st = b->allgather(b->user, &hello[b->n_ranks], hello, sizeof(*hello));
    bool all = st == IMC_OK && all_can(hello, b);
    free(hello);
    if (st != IMC_OK || !all) {
        unload(p);
        free(p);
        return st != IMC_OK ? st : IMC_ERR_UNSUPPORTED;
    }
    p->n = b->n_ranks;
    p->rank = b->rank;
    p->timeout = b->timeout;
    p->group = b->group;
    ncclUniqueId id;
    memset(&id, 0, sizeof(id));
    ncclResult_t r = b->rank == 0 ? p->f.get_unique_id(&id) : ncclSuccess;
    if (r != ncclSuccess) {
        IMC_LOG_ERR("cuda: rank 0 of the %s group: ncclGetUniqueId: %s", b->group,
                    p->f.error_string(r));
    }
    // every rank learns whether rank 0 has an id before waiting for it
    st = agree(b, r == ncclSuccess, &all);
    if (st == IMC_OK && all) {
        st = b->bcast(b->user, &id, sizeof(id));
    }
    if (st == IMC_OK && all) {
        st = init_comm(p, b, id);
        if (st == IMC_OK) {
            *out = p;
            return IMC_OK;
        }
    }
    unload(p);
    free(p);
    return st != IMC_OK || all ? st : IMC_ERR_NCCL;
}

IMC_CUDA_EXTERN void IMC_CUDA_FN(peer_free)(void *peer)
{
    struct imc_cuda_peer *p = (struct imc_cuda_peer *)peer;
    if (!p) {
        return;
    }
    if (p->comm) {
        (void)p->f.destroy(p->comm);
    }
    unload(p);
    free(p);
}

IMC_CUDA_EXTERN int IMC_CUDA_FN(peer_size)(const void *peer)
{
    return ((const struct imc_cuda_peer *)peer)->n;
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(peer_alltoallv)(void *peer, void *stream,
                                                            const float *send,
                                                            const size_t *send_counts, float *recv,
                                                            const size_t *recv_counts)
{
    struct imc_cuda_peer *p = (struct imc_cuda_peer *)peer;
    IMC_TRY(alive(p, "an exchange"));
    const cudaStream_t s = (cudaStream_t)stream;
    ncclResult_t r = p->f.group_start();
    if (r != ncclSuccess) {
        return fail(p, "group start", r);
    }
    size_t so = 0, ro = 0;
    for (int j = 0; j < p->n && called(r); j++) {
        if (send_counts[j] > 0) {
            r = p->f.send(send + so, send_counts[j], ncclFloat32, j, p->comm, s);
        }
        if (called(r) && recv_counts[j] > 0) {
            r = p->f.recv(recv + ro, recv_counts[j], ncclFloat32, j, p->comm, s);
        }
        so += send_counts[j];
        ro += recv_counts[j];
    }
    const ncclResult_t re = p->f.group_end(); // closes the group also after a failed call
    if (!called(r) || !called(re)) {
        return fail(p, "send / receive", !called(r) ? r : re);
    }
    return peer_wait(p, s);
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(peer_p2p)(void *peer, void *stream, bool send,
                                                      float *buf, size_t n, int rank)
{
    struct imc_cuda_peer *p = (struct imc_cuda_peer *)peer;
    IMC_TRY(alive(p, "a transfer"));
    if (rank < 0 || rank >= p->n) {
        IMC_LOG_ERR("cuda: rank %d of the %s group: no rank %d of %d", p->rank, p->group, rank,
                    p->n);
        return IMC_ERR_ARG;
    }
    const cudaStream_t s = (cudaStream_t)stream;
    const ncclResult_t r = send ? p->f.send(buf, n, ncclFloat32, rank, p->comm, s)
                                : p->f.recv(buf, n, ncclFloat32, rank, p->comm, s);
    if (!called(r)) {
        return fail(p, send ? "send" : "receive", r);
    }
    return peer_wait(p, s);
}
