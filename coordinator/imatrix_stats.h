/*
 * coordinator/imatrix_stats: `imc imatrix --stats FILE` — statistics of an imatrix file (either
 * form) per tensor and per layer, to judge calibration coverage before quantizing (DESIGN.md §3).
 *
 * Definitions, for one entry with matrices m (experts, heads or 1) and columns j:
 *   v[m][j]   = Σx²[m][j] / count[m]   the mean squared activation of the column (0 when the
 *                                       matrix saw no token); what a quantizer weights by
 *   N         = n_per_row · n_mat       values
 *   sum       = Σ Σx²[m][j]             raw sum of squared activations
 *   mean, max = mean and max of v over the N values
 *   active    = fraction of the N values with v >= IMC_IMSTATS_ACTIVE_REL · mean(v): columns
 *               whose weight is not negligible next to the average one
 *   entropy   = −Σ p log2 p with p = v / Σv (bits; 0 when Σv = 0); H/Hmax = entropy / log2 N,
 *               1 for a flat distribution, near 0 when a few columns dominate
 * Per layer ("blk.N." prefix; others under "-"): sum and N add, mean and active are over all the
 * layer's values, max is the largest, H/Hmax is the mean over the layer's tensors.
 */
#ifndef IMC_COORDINATOR_IMATRIX_STATS_H
#define IMC_COORDINATOR_IMATRIX_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "model/imatrix_file.h"

#define IMC_IMSTATS_ACTIVE_REL 1e-3

struct imc_imstat {
    int64_t n;        // values (n_per_row · n_mat)
    int64_t n_active; // values counted active
    double sum;       // raw Σx²
    double sum_v;     // Σ v
    double max;       // max v
    double entropy;   // bits
    double h_norm;    // entropy / log2(n); 1 when n == 1
};

// Statistics of one entry (definitions above).
void imc_imstat_entry(const struct imc_imatrix_entry *e, struct imc_imstat *s);

// Reads path (GGUF or .dat) and prints the tensor table and the layer table to out. Errors of
// imc_imatrix_read (logged), IMC_ERR_NOMEM.
enum imc_status imc_imstat_print_file(const char *path, FILE *out);

#endif // IMC_COORDINATOR_IMATRIX_STATS_H
