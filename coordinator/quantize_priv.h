/*
 * coordinator/quantize_priv: what the sources of `imc quantize` share (quantize.c: plan, rows,
 * output; quantize_dist.c: tensors spread over MPI ranks). Not for other modules.
 *
 * Invariants: a planned tensor's type, row_bytes and convert flag are the same on every rank
 * (they depend only on the model, the options and the imatrix). out is allocated on the rank
 * that quantizes the tensor (owner) and on rank 0, which writes the file; nowhere else.
 */
#ifndef IMC_COORDINATOR_QUANTIZE_PRIV_H
#define IMC_COORDINATOR_QUANTIZE_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "core/pulse.h"
#include "core/status.h"
#include "model/gguf.h"

struct imc_comm;

// One output tensor.
struct imc_qtensor {
    const struct imc_tensor_info *t; // input (borrowed from the reader)
    enum imc_type type;              // output type
    bool convert;                    // false: bytes copied from the input
    int64_t n_rows;                  // ne[1]·ne[2]·ne[3]
    int64_t n_mat;                   // matrices the imatrix distinguishes (ne[2]·ne[3]) or 1
    float *qw;                       // [n_mat][ne[0]] importance weights, or NULL (owned)
    uint8_t *has_qw;                 // [n_mat] 1 when that matrix has weights (owned)
    uint64_t row_bytes;              // output bytes per row
    uint8_t *out;                    // [n_rows·row_bytes] output (owned), NULL when not held here
    bool fell_back;                  // type replaced because of the row length
    int owner;                       // world rank that quantizes it (0 in a single process)
};

// Output bytes of a converted tensor (row_bytes · n_rows; checked against overflow at plan time).
uint64_t imc_qtensor_bytes(const struct imc_qtensor *q);

// Called by the main thread between jobs while the other threads quantize (MPI progress: the
// main thread is the only one that may call MPI). Returns non-OK to stop the run.
typedef enum imc_status (*imc_qpoll_fn)(void *user);

// Quantizes the rows of every converted tensor owned by rank on n_threads threads (the calling
// thread included), calling poll (may be NULL), then pulse (may be NULL; core/pulse.h), after each
// job of the calling thread. Returns IMC_ERR_NOMEM (logged) or poll's status.
enum imc_status imc_qrun_pool(struct imc_qtensor *tens, int64_t n, int n_threads, int rank,
                              imc_qpoll_fn poll, void *poll_user, const struct imc_pulse *pulse);

// ---- quantize_dist.c: tensors over MPI ranks --------------------------------------------------

// Sets every tensor's owner: converted tensors go to ranks 0..size-1 balanced by elements (the
// work and, for a given type, the bytes): largest first, each to the least loaded rank (lowest
// rank on ties), so every rank computes the same assignment. Copied tensors stay with rank 0.
// IMC_ERR_NOMEM (logged).
enum imc_status imc_qdist_assign(struct imc_qtensor *tens, int64_t n, int size);

struct imc_qdist;
// Starts the transfers of a job of several ranks: rank 0 posts a receive for every converted
// tensor another rank owns (its out must be allocated). Returns a new handle in *out (free with
// imc_qdist_finish), IMC_ERR_NOMEM or IMC_ERR_MPI (logged).
enum imc_status imc_qdist_start(const struct imc_comm *c, struct imc_qtensor *tens, int64_t n,
                                struct imc_qdist **out);
// imc_qpoll_fn for imc_qrun_pool on rank 0: tests the receives so that senders can finish.
enum imc_status imc_qdist_poll(void *dist);
// After this rank's rows are done: ranks other than 0 send their tensors to rank 0; rank 0 waits
// for all of them (watched waits: IMC_MPI_TIMEOUT). Frees d (also on failure). ok = false skips
// the transfers (this rank failed; the caller ends the job through imc_fatal).
enum imc_status imc_qdist_finish(struct imc_qdist *d, bool ok);

#endif // IMC_COORDINATOR_QUANTIZE_PRIV_H
