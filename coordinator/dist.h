/*
 * coordinator/dist: the distributed chunk runner of `imc perplexity` (DESIGN.md §6 "Pipeline",
 * "Replicas"; STYLE b.4 item 2). One SPMD job over pp x ep x dp ranks (mpi/comm.h numbering):
 *
 *   dp  the chunks are cut into batches of n_seq consecutive chunks (one engine call each), as
 *       the single-process run cuts them; replica r runs batches b with b % dp == r. (Whole
 *       batches, not chunks c % dp == r: the MoE forward's bits depend on which chunks share
 *       an engine call, so only the same batches give the same bits as -np 1.)
 *   pp  stage s owns the layers numa/plan.h's imc_plan_stages gives it for the model's cost
 *       (balanced by bytes and FLOPs; coordinator/model_cost.h). Stage 0 embeds
 *       and runs its layers, and sends hidden [n_seq*n_ctx][n_embd] to stage 1 (tag = the
 *       batch index); the last stage runs the head and computes the per-token NLLs.
 *       Sends are nonblocking and double-buffered, so a stage computes batch b+1 while batch b
 *       travels (two batches in flight per link).
 *   ep  not implemented (ep must be 1).
 *
 * Results: every rank fills an array nll[n_chunk][n_scored] (zero where it scored nothing) and
 * the arrays are summed in rank order onto world rank 0 (mpi/reduce.h). Exactly one rank
 * contributes each value and x + 0.0 == x, so rank 0 receives the same bits the last stage
 * computed, and replaying them through imc_ppl_add in chunk order gives byte-identical running
 * PPLs and final estimate for every layout (-np 1 = -np 2 = -np 4). Rank 0 gets the values at
 * the end of the run, not chunk by chunk.
 *
 * Invariants: collective over the world; every rank calls with the same chunks and sizes. Each
 * value is computed by imc_ppl_nll_row from the same logits bits as the single-process run
 * (the engine's split form is bitwise identical to its whole-model forward).
 */
#ifndef IMC_COORDINATOR_DIST_H
#define IMC_COORDINATOR_DIST_H

#include <stdint.h>

#include "core/status.h"
#include "numa/plan.h"
#include "worker/engine.h"

struct imc_comm;
struct imc_chunks;
struct imc_progress;

struct imc_dist_job {
    const struct imc_comm *comm;   // split into layout already (imc_comm_split_layout); borrowed
    struct imc_layout layout;      // pp x ep x dp, ep == 1
    const struct imc_model *model; // borrowed
    const struct imc_chunks *ch;   // the chunks (same on every rank); borrowed
    int64_t n_seq;                 // chunks per engine call (>= 1)
    int n_threads;                 // engine threads
    enum imc_attn_path attn;       // deepseek2 attention path
    struct imc_progress *prog;     // progress of this rank's chunks, or NULL; borrowed
};

// Stage `stage`'s layer range [*begin, *end) of m under layout l: numa/plan.h's imc_plan_stages
// over the model's cost (coordinator/model_cost.h), the split `imc plan` prints. Returns
// IMC_ERR_ARG (logged by imc_plan_stages) when pp exceeds the layers, IMC_ERR_NOMEM. Borrows m.
enum imc_status imc_dist_stage_layers(const struct imc_model *m, const struct imc_layout *l,
                                      int stage, int64_t *begin, int64_t *end);

// Runs this rank's part of the evaluation (above). nll holds n_chunk * imc_ppl_n_scored(n_ctx)
// doubles on every rank; on return, on world rank 0, nll[c * n_scored + k] is the k-th scored
// value of chunk c (position n_ctx/2 + k); elsewhere its contents are unspecified. Returns
// IMC_ERR_ARG (logged) for ep > 1 or a layout that does not fit the world or the model,
// IMC_ERR_NOMEM, IMC_ERR_NUMERIC, IMC_ERR_MPI. A failure on one rank leaves the others waiting:
// the caller ends the job with imc_fatal.
enum imc_status imc_dist_run(const struct imc_dist_job *j, double *nll);

#endif // IMC_COORDINATOR_DIST_H
