/*
 * mpi/reduce: deterministic-order reductions of statistics (DESIGN.md §6 "Stats are ... reduced
 * in chunk order, so the imatrix is the same for any layout"; STYLE b.1 mpi/reduce.c).
 *
 * MPI_Reduce leaves the order of additions unspecified, and double addition is not associative,
 * so its result may change with timing or with the algorithm Open MPI picks. imc_reduce_sum_*
 * adds in rank order instead:
 *
 *   out[i] = (...((in_0[i] + in_1[i]) + in_2[i]) + ...) + in_{P-1}[i]
 *
 * which is bit-for-bit what one process gets by adding the ranks' arrays in rank order, on every
 * run. It is computed by a chain 0 -> 1 -> ... -> P-1 -> 0: rank r receives the partial sum of
 * ranks 0..r-1, adds its own array and passes it on; the last rank sends the total to rank 0.
 * The arrays travel in chunks of imc_comm_chunk_bytes (default 4 MiB), pipelined, so every link
 * carries the array once, no message is larger than a chunk (any n works, e.g. 1 GB, with no
 * single message near 2^31 elements), and memory beyond the caller's arrays is 4 chunks per rank.
 *
 * All calls are collective over the group: every rank of g calls with the same n.
 */
#ifndef IMC_MPI_REDUCE_H
#define IMC_MPI_REDUCE_H

#include <stddef.h>

#include "core/status.h"
#include "mpi/comm.h"

// Sums n doubles over the ranks of g into out on group rank 0, in rank order (above). Borrows
// in; on group rank 0, out holds n doubles and may equal in; on other ranks out is unused (may
// be NULL). Returns IMC_ERR_NOMEM or IMC_ERR_MPI (logged); a stalled peer trips the watchdog.
enum imc_status imc_reduce_sum_f64(const struct imc_comm *c, enum imc_comm_group g,
                                   const double *in, double *out, size_t n);
// The same for floats (sums in float, in rank order).
enum imc_status imc_reduce_sum_f32(const struct imc_comm *c, enum imc_comm_group g,
                                   const float *in, float *out, size_t n);

// Sums n ints over g into v on every rank (integer addition: order does not matter).
enum imc_status imc_reduce_all_sum_int(const struct imc_comm *c, enum imc_comm_group g, int *v,
                                       int n);
// Test and error-count agreement (nccl-tests): replaces *count by its sum over the world, so
// every rank can exit with the same code.
enum imc_status imc_reduce_errors(const struct imc_comm *c, int *count);

#endif // IMC_MPI_REDUCE_H
