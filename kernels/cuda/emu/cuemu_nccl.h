/*
 * kernels/cuda/emu/cuemu_nccl: the subset of NCCL that kernels/cuda/peer.cu calls, emulated for
 * the tests (issue 13 items 3 and 5): the same grouped point-to-point semantics as NCCL's, over a
 * wire the caller hands to the communicator, since emulated device memory is host memory (the
 * wire is the group's MPI: worker/exchange.c). Included by peer.cu only, under IMC_CUDA_EMU.
 *
 * What it models:
 *   - ncclGetUniqueId / ncclCommInitRankConfig: rank 0's id reaches every rank by the caller's
 *     broadcast; init checks over the wire that every rank holds rank 0's id and that the ranks
 *     agree on the group's size (ncclInvalidUsage otherwise, on every rank). A nonblocking
 *     config (blocking = 0) returns ncclInProgress with the communicator, and the check runs at
 *     its first ncclCommGetAsyncError (whose answer is then the init's result); until then the
 *     communicator refuses transfers (ncclInvalidUsage), as NCCL requires a nonblocking
 *     communicator's caller to poll it ready first. Test hook: IMC_CUEMU_NCCL_FAIL_INIT=R makes
 *     rank R's init fail at once (ncclSystemError, no communicator, nothing on the wire), as a
 *     rank whose own setup fails (its GPU's memory exhausted) does;
 *   - ncclSend / ncclRecv: a transfer of count elements with peer (0 .. nranks-1, itself
 *     included); inside ncclGroupStart / ncclGroupEnd they are started at once without waiting
 *     (the wire's nonblocking sends and receives) and the outermost ncclGroupEnd waits for all
 *     of them, so the order of the calls inside a group does not matter, as in NCCL; outside a
 *     group each waits for itself. A wire failure makes the communicator's async error
 *     ncclRemoteError;
 *   - ncclCommGetAsyncError, ncclCommAbort, ncclCommDestroy, ncclGetErrorString.
 * Not modelled: streams (everything completes inside the call, as the emulator's kernels do),
 * collectives other than send / receive, and the device buffers' placement (any host pointer is
 * accepted; the op table checks that the buffers are its own). Sizes beyond the wire's (2^31-1
 * bytes per transfer) are ncclInvalidArgument.
 */
#ifndef IMC_KERNELS_CUDA_EMU_CUEMU_NCCL_H
#define IMC_KERNELS_CUDA_EMU_CUEMU_NCCL_H

#include <cstddef>

#include "kernels/cuda/emu/cuemu.h"

enum ncclResult_t {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
};
enum ncclDataType_t { ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclFloat32 = 7 };

#define NCCL_UNIQUE_ID_BYTES 128
struct ncclUniqueId {
    char internal[NCCL_UNIQUE_ID_BYTES];
};
struct cuemu_nccl_comm;
typedef struct cuemu_nccl_comm *ncclComm_t;

// The transport under an emulated communicator (borrowed; outlives it): nonblocking transfers of
// bytes with a peer (its rank in the group) and a wait for every transfer started. 0: success.
struct cuemu_nccl_wire {
    void *user;
    int (*isend)(void *user, int peer, const void *buf, size_t bytes);
    int (*irecv)(void *user, int peer, void *buf, size_t bytes);
    int (*waitall)(void *user);
};

ncclResult_t cuemu_nccl_get_unique_id(ncclUniqueId *id);
// NCCL's config of a communicator: the one field the emulator models (the others of NCCL's keep
// their defaults there).
struct ncclConfig_t {
    int blocking;
};
#define NCCL_CONFIG_INITIALIZER                                                                    \
    {                                                                                              \
        1                                                                                          \
    }

// ncclCommInitRankConfig over wire (collective over the nranks ranks); config NULL: blocking.
ncclResult_t cuemu_nccl_comm_init_wire(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank,
                                       ncclConfig_t *config, const struct cuemu_nccl_wire *wire);
ncclResult_t cuemu_nccl_comm_destroy(ncclComm_t comm);
ncclResult_t cuemu_nccl_comm_abort(ncclComm_t comm);
ncclResult_t cuemu_nccl_send(const void *buf, size_t count, ncclDataType_t type, int peer,
                             ncclComm_t comm, cudaStream_t stream);
ncclResult_t cuemu_nccl_recv(void *buf, size_t count, ncclDataType_t type, int peer,
                             ncclComm_t comm, cudaStream_t stream);
ncclResult_t cuemu_nccl_group_start(void);
ncclResult_t cuemu_nccl_group_end(void);
ncclResult_t cuemu_nccl_comm_get_async_error(ncclComm_t comm, ncclResult_t *err);
const char *cuemu_nccl_get_error_string(ncclResult_t r);

#endif // IMC_KERNELS_CUDA_EMU_CUEMU_NCCL_H
