/*
 * coordinator/dist: the distributed chunk runner of `imc perplexity` and `imc imatrix`
 * (DESIGN.md §6 "Pipeline", "Experts", "Replicas"; STYLE b.4 item 2). One SPMD job over
 * pp x ep x dp ranks (mpi/comm.h numbering):
 *
 *   batches  the chunks [chunk0, chunk_end) are cut into batches of n_seq consecutive chunks
 *            (one engine call each), as the single-process run cuts them.
 *   dp       replica r runs batches b with b % dp == r; round k is batches k*dp .. k*dp+dp-1,
 *            one per replica, run side by side.
 *   pp       stage s owns the layers numa/plan.h's imc_plan_stages gives it for the model's
 *            cost (balanced by bytes and FLOPs; coordinator/model_cost.h). Stage 0 embeds and
 *            runs its layers and sends its rows to stage 1 (tag = the batch index); the last
 *            stage runs the head and computes the per-token NLLs (imc_engine_score_head: on the
 *            engine's op table where the head left the logits, so on the device for --device
 *            cuda, with no copy of the logits). Sends are nonblocking
 *            and double-buffered, so a stage computes batch b+1 while batch b travels.
 *   ep       the ep shards of a stage split each batch's sequences (imc_plan_seq_range; a shard
 *            may have none) and run attention, router and shared experts on their own
 *            sequences; routed experts are sharded (imc_plan_expert_range) and tokens travel to
 *            them by all-to-all (worker/engine.h "Expert shards"). Shard i of stage s sends to
 *            shard i of stage s+1.
 *
 * After every round, every rank calls job->after_round (when set) with the round's index:
 * the imatrix gathers its statistics there (coordinator/imatrix_dist.c). Rounds are the same
 * on every rank, also where a replica has no batch in the last round.
 *
 * Results: the last-stage shard that ran a chunk's sequence fills its nll[c * n_scored + k]
 * (value k of chunk c, c counted in ch); every other entry stays 0. Summing the arrays over
 * the world in rank order (mpi/reduce.h) therefore gives every value exactly (x + 0 == x): the
 * bits the single-process run computes, for every layout.
 *
 * Placement (coordinator/rank_place.h): before its engine starts, each rank is pinned to the
 * PUs the host plan gives it and asks for its slice of the weights (worker/slice.h: its layers,
 * its experts' part of the expert tensors) on its NUMA node; the mapping is never touched
 * outside the slice, so what a rank holds resident is its slice (measured at the end).
 *
 * Invariants: collective over the world; every rank calls with the same chunks and sizes. A
 * failure on one rank leaves the others waiting: the caller ends the job with imc_fatal.
 */
#ifndef IMC_COORDINATOR_DIST_H
#define IMC_COORDINATOR_DIST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/pulse.h"
#include "core/status.h"
#include "numa/plan.h"
#include "worker/engine.h"

struct imc_comm;
struct imc_chunks;
struct imc_progress;
struct imc_stats_hooks;

struct imc_dist_job {
    const struct imc_comm *comm;   // split into layout already (imc_comm_split_layout); borrowed
    struct imc_layout layout;      // pp x ep x dp
    const struct imc_model *model; // borrowed
    const struct imc_chunks *ch;   // the chunks (same on every rank); borrowed
    int64_t chunk0, chunk_end;     // run chunks [chunk0, chunk_end) of ch
    int64_t n_seq;                 // chunks per engine call (>= 1)
    int n_threads;                 // engine threads
    enum imc_attn_path attn;       // deepseek2 attention path
    enum imc_matmul_mode matmul;   // how quantized weights are multiplied
    enum imc_device device;        // where the engines run (--device)
    bool experts_on_cpu;           // routed experts on the cpu table (--experts-on cpu)
    bool host_exchange;            // expert rows through the host (--exchange host)
    const struct imc_backend *backend; // tests: the engines' op table (NULL: by device)
    int64_t head_begin;            // first position of each chunk the head computes logits for:
                                   //   imc_ppl_first(n_ctx), or 0 to feed output's stats
    const struct imc_stats_hooks *hooks; // the engines' stats hooks (borrowed) or NULL
    struct imc_progress *prog;     // progress of this rank's chunks, or NULL; borrowed
    struct imc_pulse pulse;        // called on every rank after every round (core/pulse.h)
    // Called on every rank after round k (batches k*dp .. k*dp+dp-1). Non-OK stops.
    enum imc_status (*after_round)(void *user, int64_t round);
    // Called on the head-stage shard that scored chunk c (c counted in ch), after its NLLs,
    // with the stage's engine (idle during the call: its pool), which keeps the chunk's logits:
    // positions imc_ppl_first(n_ctx) .. n_ctx-1 are rows r0 .. of its head's logits, scored
    // where they are by imc_engine_score_head (on a GPU rank in device memory) or brought to
    // the host by imc_engine_head_rows (into buf, [n_ctx - imc_ppl_first(n_ctx)][n_vocab],
    // where they are not host memory already). NULL: none.
    enum imc_status (*on_logits)(void *user, int64_t chunk, struct imc_engine *e, int64_t r0,
                                 float *buf);
    void *user;
};

// The world rank of the head-stage shard that scores chunk c (c in [chunk0, chunk_end)).
int imc_dist_head_rank(const struct imc_dist_job *j, int64_t c);

// Where the time of one rank went and what it held (for logs, tests and bench/).
struct imc_dist_times {
    double total;           // seconds in imc_dist_run
    double compute;         // in engine calls (embed, layers with their expert exchanges, head)
    double wait;            // waiting for the previous stage's rows or for a send buffer
    double slice_bytes;     // tensor bytes of the rank's slice (worker/slice.h)
    double resident_slice;  // bytes of the slice's pages mapped in this process at the end
    double resident_model;  // bytes of all the model's tensor pages mapped in this process
    int numa_node;          // the rank's NUMA node (OS number), -1 unknown
    double prof[IMC_PROF_COUNT]; // the engine's seconds per kind of operation (engine.h)
};

// Stage `stage`'s layer range [*begin, *end) of m under layout l: numa/plan.h's imc_plan_stages
// over the model's cost (coordinator/model_cost.h), the split `imc plan` prints. Returns
// IMC_ERR_ARG (logged by imc_plan_stages) when pp exceeds the layers, IMC_ERR_NOMEM. Borrows m.
enum imc_status imc_dist_stage_layers(const struct imc_model *m, const struct imc_layout *l,
                                      int stage, int64_t *begin, int64_t *end);

// Batches of the job and their chunks: batch b covers chunks [*c0, *c1).
int64_t imc_dist_n_batch(const struct imc_dist_job *j);
void imc_dist_batch_chunks(const struct imc_dist_job *j, int64_t b, int64_t *c0, int64_t *c1);

// Runs this rank's part of the evaluation (above). nll holds ch->n_chunk *
// imc_ppl_n_scored(n_ctx) doubles; on return it holds this rank's values and zeros (sum it
// over the world for the result). times may be NULL. Returns IMC_ERR_ARG (logged) for a layout
// that does not fit the world or the model, IMC_ERR_NOMEM, IMC_ERR_NUMERIC, IMC_ERR_MPI, or
// what after_round returned.
enum imc_status imc_dist_run(const struct imc_dist_job *j, double *nll,
                             struct imc_dist_times *times);

// Collective over the world: gathers every rank's times to rank 0, which logs a summary line at
// INFO and one line per rank at DEBUG: times ("idle" = the share of the run not spent
// computing: pipeline bubble, exchanges, waits) and resident weights against the slice.
enum imc_status imc_dist_log_times(const struct imc_comm *c, const struct imc_dist_times *t);

#endif // IMC_COORDINATOR_DIST_H
