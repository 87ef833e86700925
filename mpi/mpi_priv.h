/*
 * mpi/mpi_priv: what the sources in mpi/ share and nobody else sees — the body of struct
 * imc_comm, the IMC_MPI() check macro and the watched wait (DESIGN.md §6 "Faults"; STYLE b.4
 * items 2, 5).
 *
 * Invariant: every MPI call in mpi/ goes through IMC_MPI() or its result is checked by hand;
 * every wait for a peer goes through imc_mpi_waitall so that no rank can hang forever on a dead
 * or stuck peer.
 */
#ifndef IMC_MPI_PRIV_H
#define IMC_MPI_PRIV_H

#include <mpi.h>

#include "core/status.h"
#include "mpi/comm.h"

struct imc_comm {
    MPI_Comm group[IMC_GROUP_COUNT]; // owned communicators; MPI_COMM_NULL when not built
    MPI_Comm beat;                   // a duplicate of group[IMC_GROUP_WORLD] for mpi/beat only
    int rank[IMC_GROUP_COUNT];       // this process's rank in each group
    int size[IMC_GROUP_COUNT];       // ranks in each group
    char host[MPI_MAX_PROCESSOR_NAME + 1]; // MPI_Get_processor_name
    double timeout;                  // seconds without progress before imc_fatal
    size_t max_msg_bytes;            // largest single message of imc_xfer_*
    size_t chunk_bytes;              // pipeline chunk of imc_reduce_*
    int tag_ub;                      // MPI_TAG_UB - 1: largest tag of imc_xfer_*
    int owns_mpi;                    // 1 when imc_comm_init called MPI_Init_thread
    int job_rank;                    // rank in MPI_COMM_WORLD (messages; differs from
                                     //   rank[IMC_GROUP_WORLD] in a imc_comm_split_world set)
};

// Logs "<file>:<line>: <call> failed: <MPI error string>" and returns IMC_ERR_MPI.
enum imc_status imc_mpi_fail(int rc, const char *call, const char *file, int line);

// Evaluates an MPI call; on failure logs it with MPI_Error_string and returns IMC_ERR_MPI from the
// caller (STYLE b.4 item 5: the same shape as IMC_CUDA / IMC_NCCL).
#define IMC_MPI(call)                                                                              \
    do {                                                                                           \
        int imc_mpi_rc_ = (call);                                                                  \
        if (imc_mpi_rc_ != MPI_SUCCESS) {                                                          \
            return imc_mpi_fail(imc_mpi_rc_, #call, __FILE__, __LINE__);                           \
        }                                                                                          \
    } while (0)

// The same check storing the status in st and jumping to label (functions holding resources).
#define IMC_MPI_GOTO(call, st, label)                                                              \
    do {                                                                                           \
        int imc_mpi_rc_ = (call);                                                                  \
        if (imc_mpi_rc_ != MPI_SUCCESS) {                                                          \
            (st) = imc_mpi_fail(imc_mpi_rc_, #call, __FILE__, __LINE__);                           \
            goto label;                                                                            \
        }                                                                                          \
    } while (0)

// Completes n requests (statuses may be MPI_STATUSES_IGNORE) by polling MPI_Testall. If none
// completes for c->timeout seconds, calls imc_fatal naming this rank and "waiting for <what>",
// where what is printf-formatted from fmt only then. Returns IMC_ERR_MPI (logged) when a request
// fails. n may be 0.
enum imc_status imc_mpi_waitall(const struct imc_comm *c, int n, MPI_Request *reqs,
                                MPI_Status *statuses, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif // IMC_MPI_PRIV_H
