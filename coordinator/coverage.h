/*
 * coordinator/coverage: expert coverage of an imatrix (DESIGN.md §4 "Experts that saw no token:
 * reported (coverage table per layer)"). For every MoE layer of the model: how many routed
 * experts got no token, which ones, and the min / median / max tokens per expert, taken from the
 * per-expert counts of the layer's ffn_gate_exps entry (ffn_up_exps, ffn_down_exps when absent).
 * Median: the middle count, or the mean of the two middle counts for an even number of experts.
 *
 * GGUF metadata written with the imatrix (imc_coverage_set_keys; llama.cpp ignores these keys):
 *   imc.coverage.layers             u32 array   MoE layers listed below, ascending
 *   imc.coverage.blk.N.n_expert     u32         routed experts of layer N
 *   imc.coverage.blk.N.n_unrouted   u32         experts of layer N with 0 tokens
 *   imc.coverage.blk.N.unrouted     u32 array   their expert ids, ascending (may be empty)
 *   imc.coverage.blk.N.tokens_min   f32         fewest tokens routed to one expert
 *   imc.coverage.blk.N.tokens_median f32        median tokens per expert
 *   imc.coverage.blk.N.tokens_max   f32         most tokens routed to one expert
 * Token counts are those of the imatrix (weighted sums after a weighted --in-file merge).
 *
 * Invariants: layers ascending; unrouted ids ascending; min <= median <= max.
 */
#ifndef IMC_COORDINATOR_COVERAGE_H
#define IMC_COORDINATOR_COVERAGE_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

struct imc_model;
struct imc_imatrix;
struct imc_gguf_writer;

struct imc_coverage_layer {
    int64_t layer;           // block index
    int64_t n_expert;        // routed experts
    int64_t n_unrouted;      // experts with count 0
    int64_t *unrouted;       // [n_unrouted] their ids (owned)
    double min, median, max; // tokens per expert
};

struct imc_coverage {
    struct imc_coverage_layer *layers; // [n_layers] (owned)
    int64_t n_layers;
};

// Computes the coverage of im for the MoE layers of m (both borrowed). Layers whose expert
// entry is missing or not one matrix per expert (e.g. read from a .dat) are left out with a
// debug message. IMC_ERR_NOMEM. Free with imc_coverage_free.
enum imc_status imc_coverage_compute(struct imc_coverage *cov, const struct imc_model *m,
                                     const struct imc_imatrix *im);
void imc_coverage_free(struct imc_coverage *cov); // safe on a zeroed struct

// Prints the table (nothing for a model without MoE layers):
//   expert coverage: tokens routed per expert
//   layer experts unrouted      min   median      max  unrouted ids
//       1       8        1        0     33.5       93  7
void imc_coverage_print(FILE *f, const struct imc_coverage *cov);

// Adds the keys above to w. Errors of the writer (IMC_ERR_ARG, IMC_ERR_NOMEM).
enum imc_status imc_coverage_set_keys(struct imc_gguf_writer *w, const struct imc_coverage *cov);

#endif // IMC_COORDINATOR_COVERAGE_H
