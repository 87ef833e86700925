/*
 * mpi/comm: the job's communicators (DESIGN.md §2 mpi/, §6; STYLE b.1, b.4 item 2).
 *
 * One struct imc_comm per process holds MPI_COMM_WORLD's duplicate, the ranks sharing this host
 * (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)), and, after imc_comm_split_layout, the three
 * sub-communicators of a layout pp x ep x dp:
 *
 *   world rank = (replica * pp + stage) * ep + shard
 *
 *   IMC_GROUP_PIPELINE  same (replica, shard), stage 0..pp-1 (group rank = stage): activations
 *   IMC_GROUP_EXPERT    same (replica, stage), shard 0..ep-1 (group rank = shard): all-to-all
 *   IMC_GROUP_REPLICA   same (stage, shard), replica 0..dp-1 (group rank = replica): stats sums
 *
 * Shards of one stage are consecutive world ranks, so they land on the same host when ranks
 * are packed by node (all-to-all is the heaviest traffic). numa/plan.h computes the same
 * coordinates (imc_layout_coords) without MPI; tests/mpi/test_layout.c checks they agree.
 *
 * Invariants: every communicator held here uses MPI_ERRORS_RETURN, so MPI failures come back as
 * IMC_ERR_MPI with the library's message (logged once, inside mpi/) instead of killing the
 * process silently. Until imc_comm_split_layout, the four layout groups hold only this rank
 * (size 1). No mpi.h here (STYLE b.3): the struct is opaque; only the sources in mpi/ see its
 * body.
 *
 * Works without mpirun: MPI_Init in singleton mode gives a world of size 1 (Open MPI 4.1).
 * Threads: MPI is initialized with MPI_THREAD_FUNNELED; call everything here from the thread
 * that called imc_comm_init.
 */
#ifndef IMC_MPI_COMM_H
#define IMC_MPI_COMM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

struct imc_comm;

enum imc_comm_group {
    IMC_GROUP_WORLD,    // all ranks (a duplicate of MPI_COMM_WORLD)
    IMC_GROUP_NODE,     // ranks sharing this host's memory (MPI_COMM_TYPE_SHARED)
    IMC_GROUP_PIPELINE, // the stages of this rank's pipeline
    IMC_GROUP_EXPERT,   // the expert shards of this rank's stage
    IMC_GROUP_REPLICA,  // the replicas of this rank's (stage, shard)
    IMC_GROUP_STAGE,    // every rank of this rank's stage (all replicas and shards)
    IMC_GROUP_COUNT
};

// True when a process manager started this process (mpirun/mpiexec of Open MPI, or a PMI/PMIx
// launcher such as srun --mpi=pmix). Commands start MPI only then: a plain run stays a plain
// process (no MPI start-up, nothing of MPI's kept past exit) and gives the same output.
bool imc_comm_launched(void);

// Initializes MPI if nobody has (MPI_Init_thread with argc/argv, which may be NULL) and returns a
// new communicator set in *out; free with imc_comm_free (which finalizes MPI only if this call
// initialized it). Installs imc_mpi_abort_hook (mpi/fatal.h) as core/log's abort hook and reads
// IMC_MPI_TIMEOUT (seconds, default 300) for the watchdog. Returns IMC_ERR_MPI (logged) when MPI
// cannot start or IMC_ERR_ARG for a malformed IMC_MPI_TIMEOUT.
enum imc_status imc_comm_init(struct imc_comm **out, int *argc, char ***argv);
// Frees the communicators and, if imc_comm_init started MPI, finalizes it (never for a set made by
// imc_comm_split_world). NULL is a no-op.
void imc_comm_free(struct imc_comm *c);

// A new set whose world is the ranks of c's world that pass the same color (>= 0), ordered by
// key (MPI_Comm_split), with its own node group and one-rank layout groups; it inherits c's
// timeout, message and chunk sizes, and messages (imc_fatal, log prefix) still name the rank in
// the whole job. Collective over c's world. Free with imc_comm_free, which then frees its
// communicators only (MPI stays up). The existing distributed code runs on it unchanged (the
// sweep's recipe groups). IMC_ERR_MPI or IMC_ERR_NOMEM (logged).
enum imc_status imc_comm_split_world(const struct imc_comm *c, int color, int key,
                                     struct imc_comm **out);

// Splits the layout pp x ep x dp (each >= 1) into the pipeline, expert, replica and stage groups.
// Collective over world: every rank must call it with the same values. Returns IMC_ERR_ARG,
// logged as "layout pp=2,ep=1,dp=3 needs 6 ranks, the job has 4", when pp*ep*dp differs from the
// world size, or IMC_ERR_MPI. A previous layout is replaced.
enum imc_status imc_comm_split_layout(struct imc_comm *c, int pp, int ep, int dp);

int imc_comm_rank(const struct imc_comm *c);        // world rank
int imc_comm_size(const struct imc_comm *c);        // world size
const char *imc_comm_host(const struct imc_comm *c); // this host's name; borrowed, valid until free
// Rank and size of this process inside group g (world, node, pipeline, expert, replica).
int imc_comm_group_rank(const struct imc_comm *c, enum imc_comm_group g);
int imc_comm_group_size(const struct imc_comm *c, enum imc_comm_group g);
const char *imc_comm_group_name(enum imc_comm_group g); // "world", "node", "pipeline", ...

// Seconds a watched wait may make no progress before the job is aborted (IMC_MPI_TIMEOUT).
double imc_comm_timeout(const struct imc_comm *c);
void imc_comm_set_timeout(struct imc_comm *c, double seconds);
// Largest single message (bytes) imc_xfer_* sends; bigger buffers go as several messages.
// Default 1 GiB (always below 2^31 elements). Tests lower it to exercise the split.
size_t imc_comm_max_msg_bytes(const struct imc_comm *c);
void imc_comm_set_max_msg_bytes(struct imc_comm *c, size_t bytes);
// Chunk (bytes) of the pipelined reductions in mpi/reduce.h; default 4 MiB.
size_t imc_comm_chunk_bytes(const struct imc_comm *c);
void imc_comm_set_chunk_bytes(struct imc_comm *c, size_t bytes);
// Largest tag imc_xfer_* accepts: MPI_TAG_UB - 1 (at least 32766); MPI_TAG_UB itself is
// reserved for mpi/reduce.
int imc_comm_tag_ub(const struct imc_comm *c);

// Sets core/log's prefix to "imc[r<rank>@<host>] " when the world has more than one rank.
void imc_comm_set_log_prefix(const struct imc_comm *c);

// Waits until every rank of group g arrives, under the watchdog. Returns IMC_ERR_MPI on failure.
enum imc_status imc_comm_barrier(const struct imc_comm *c, enum imc_comm_group g);

#endif // IMC_MPI_COMM_H
