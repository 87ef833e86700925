/*
 * mpi/xfer: point-to-point and collective transport of activations and small control data
 * (DESIGN.md §2 mpi/, §6 "Pipeline", "Experts"). Transport only: no tensor semantics.
 *
 * Activations are float buffers sent between pipeline stages (other payloads go as bytes);
 * the tag says which chunk (or micro-batch) they belong to, so several chunks can be in flight
 * and matched out of order (imc_xfer_tag maps a chunk index to a valid tag). A buffer larger
 * than imc_comm_max_msg_bytes goes as several messages with the same tag; MPI's non-overtaking
 * rule keeps them in order. Both ends must use the same max_msg_bytes (a job-wide setting).
 *
 * Every wait goes through the watchdog (IMC_MPI_TIMEOUT): a peer that never sends or never
 * receives aborts the job with a message naming this rank, the peer and the tag.
 * Peers are ranks of the given group (IMC_GROUP_PIPELINE: the stage index).
 */
#ifndef IMC_MPI_XFER_H
#define IMC_MPI_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "mpi/comm.h"

// A transfer in flight; opaque. Completed and freed by imc_xfer_wait.
struct imc_xfer;

// Maps a chunk index (>= 0) to a tag in [0, imc_comm_tag_ub]: chunk modulo (tag_ub + 1).
int imc_xfer_tag(const struct imc_comm *c, long chunk);

// Sends n floats of buf to rank peer of group g with tag; returns once buf may be reused.
// Borrows buf. Returns IMC_ERR_ARG (logged) for a bad peer or tag, IMC_ERR_MPI on failure.
enum imc_status imc_xfer_send(const struct imc_comm *c, enum imc_comm_group g, int peer, int tag,
                              const float *buf, size_t n);
// Receives exactly n floats from rank peer of group g with tag into buf. A message of another
// length is IMC_ERR_MPI, logged with both lengths.
enum imc_status imc_xfer_recv(const struct imc_comm *c, enum imc_comm_group g, int peer, int tag,
                              float *buf, size_t n);

// Nonblocking variants: start the transfer and return a new handle in *out; buf must stay valid
// (and, for isend, unmodified) until imc_xfer_wait. c must outlive the handle.
enum imc_status imc_xfer_isend(const struct imc_comm *c, enum imc_comm_group g, int peer, int tag,
                               const float *buf, size_t n, struct imc_xfer **out);
enum imc_status imc_xfer_irecv(const struct imc_comm *c, enum imc_comm_group g, int peer, int tag,
                               float *buf, size_t n, struct imc_xfer **out);
// Sets *done when x has completed (then imc_xfer_wait returns at once). Does not free x.
enum imc_status imc_xfer_test(struct imc_xfer *x, bool *done);
// Completes x under the watchdog, checks a receive's length, and frees x (also on failure).
// NULL is a no-op returning IMC_OK.
enum imc_status imc_xfer_wait(struct imc_xfer *x);

// Byte variants (statistics in double, token ids, quantized rows, result records): the same
// contracts with the length in bytes; a buffer larger than max_msg_bytes goes as several
// messages.
enum imc_status imc_xfer_isend_bytes(const struct imc_comm *c, enum imc_comm_group g, int peer,
                                     int tag, const void *buf, size_t bytes,
                                     struct imc_xfer **out);
enum imc_status imc_xfer_irecv_bytes(const struct imc_comm *c, enum imc_comm_group g, int peer,
                                     int tag, void *buf, size_t bytes, struct imc_xfer **out);
enum imc_status imc_xfer_send_bytes(const struct imc_comm *c, enum imc_comm_group g, int peer,
                                    int tag, const void *buf, size_t bytes);
enum imc_status imc_xfer_recv_bytes(const struct imc_comm *c, enum imc_comm_group g, int peer,
                                    int tag, void *buf, size_t bytes);

// Cancels a receive that has not completed and frees x, so its buffer may be released (for a
// failed run that will end the job). Receives only (cancelling a send is not portable). NULL is
// a no-op.
void imc_xfer_cancel(struct imc_xfer *x);

// Broadcasts bytes of buf from group rank root to every rank of g (control data: token ids,
// chunk schedules). Split into messages of at most max_msg_bytes.
enum imc_status imc_xfer_bcast(const struct imc_comm *c, enum imc_comm_group g, int root,
                               void *buf, size_t bytes);

// All-to-all of floats inside group g (expert dispatch/combine): rank i sends send_counts[j]
// floats starting at send + sum(send_counts[0..j)) to rank j, and receives recv_counts[j] floats
// from rank j, packed the same way into recv. Counts have group-size entries; each side's total
// must stay below 2^31 floats (IMC_ERR_ARG otherwise). Borrows all arrays.
enum imc_status imc_xfer_alltoallv(const struct imc_comm *c, enum imc_comm_group g,
                                   const float *send, const size_t *send_counts, float *recv,
                                   const size_t *recv_counts);

// The same with bytes (records of mixed types: expert dispatch metadata).
enum imc_status imc_xfer_alltoallv_bytes(const struct imc_comm *c, enum imc_comm_group g,
                                         const void *send, const size_t *send_bytes, void *recv,
                                         const size_t *recv_bytes);
// Every rank of g sends send[j] to rank j and receives recv[j] from rank j (group-size entries
// each): the counts exchange before an all-to-all of unknown sizes.
enum imc_status imc_xfer_alltoall_u64(const struct imc_comm *c, enum imc_comm_group g,
                                      const uint64_t *send, uint64_t *recv);

#endif // IMC_MPI_XFER_H
