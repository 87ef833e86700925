/*
 * coordinator/layout_auto: the automatic layout of an MPI job of N ranks (DESIGN.md §6; what
 * `imc plan`, `imc imatrix` and `imc perplexity` use without --layout).
 *
 * The job is meant to spread a model too big for one node, so no replicas unless needed: dp is
 * the smallest divisor of N for which some pp x ep = N/dp is valid (1 <= pp <= layers, ep = 1
 * for a dense model, ep <= experts otherwise). Among those the one with the smallest largest
 * rank load (the larger of its share of weight bytes and of FLOPs, as numa/plan.h balances
 * stages) wins; a larger pp wins over a smaller one when its load is within 5% (point-to-point
 * activations cost less than the all-to-all of expert shards). So a dense model with at least
 * N layers gets pp = N.
 */
#ifndef IMC_COORDINATOR_LAYOUT_AUTO_H
#define IMC_COORDINATOR_LAYOUT_AUTO_H

#include "core/status.h"
#include "model/arch.h"
#include "numa/plan.h"

// Chooses the layout of n ranks (>= 1) for a model of cost c whose weights total total_bytes
// and total_flops per token (imc_model_cost_totals). *load: the largest rank load of one
// replica (a share of the model, 1/(pp*ep) ideally). IMC_ERR_NOMEM (logged).
enum imc_status imc_layout_auto(const struct imc_model_cost *c, double total_bytes,
                                double total_flops, int n, struct imc_layout *out, double *load);

// The same from the model itself (its cost built and freed here).
enum imc_status imc_layout_auto_model(const struct imc_model *m, int n, struct imc_layout *out);

#endif // IMC_COORDINATOR_LAYOUT_AUTO_H
