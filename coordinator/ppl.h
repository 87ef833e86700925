/*
 * coordinator/ppl: negative log-likelihood and perplexity aggregation in double (DESIGN.md §4
 * "Perplexity"), shared by `imc perplexity` and the running PPL of `imc imatrix` (STYLE c.4).
 *
 * Definitions (llama-perplexity's):
 *   nll(row, t) = -log_softmax(row)[t] = max + log Σ_j exp(row_j − max) − row_t   (in double)
 *   PPL         = exp(⟨nll⟩)
 *   ± (error)   = PPL · sqrt((⟨nll²⟩ − ⟨nll⟩²) / (N − 1))
 * A chunk of n_ctx tokens is scored at positions first = n_ctx/2 … n_ctx−2, each predicting the
 * token that follows it, so a chunk contributes n_ctx − 1 − n_ctx/2 values.
 *
 * Invariants: an accumulator is plain data; adding the same values in the same order gives the
 * same bits, whatever the batching of the forward passes.
 */
#ifndef IMC_COORDINATOR_PPL_H
#define IMC_COORDINATOR_PPL_H

#include <stdint.h>

struct imc_exec;    // kernels/kernels.h
struct imc_nll_row; // kernels/kernels.h

struct imc_ppl_acc {
    double sum_nll;  // Σ nll
    double sum_nll2; // Σ nll²
    int64_t count;   // values added
};

// Zeroes the accumulator.
void imc_ppl_init(struct imc_ppl_acc *a);

// nll of target under the softmax of logits[0..n_vocab), computed in double (imc_ref_nll_row:
// the scoring lives in kernels/ref/nll.c, so every op table can run it). Borrows logits.
// Requires n_vocab >= 1 and 0 <= target < n_vocab (programmer bugs otherwise).
double imc_ppl_nll_row(const float *logits, int64_t n_vocab, int32_t target);

// Adds one nll value.
void imc_ppl_add(struct imc_ppl_acc *a, double nll);

// First scored position of a chunk of n_ctx tokens (n_ctx/2) and how many are scored.
int64_t imc_ppl_first(int64_t n_ctx);
int64_t imc_ppl_n_scored(int64_t n_ctx);

// Scores one chunk: logits holds rows [n_ctx − first][n_vocab] for positions first … n_ctx−1
// (first = imc_ppl_first(n_ctx); what imc_engine_forward_batch gives with out_begin = first; the
// last row is not used) and tokens the chunk's n_ctx tokens as in the text (targets are
// tokens[pos + 1]). Adds the imc_ppl_n_scored(n_ctx) values in position order. Borrows both.
// The rows' nll values are computed on ex's pool (NULL: this thread), each row as by
// imc_ppl_nll_row, and added in position order: the same bits for any thread count.
void imc_ppl_add_chunk(const struct imc_exec *ex, struct imc_ppl_acc *a, const float *logits,
                       int64_t n_ctx, int64_t n_vocab, const int32_t *tokens);
// nll[i] = the nll of position first + i for the n = imc_ppl_n_scored(n_ctx) scored positions,
// logits and tokens as for imc_ppl_add_chunk, rows on ex's pool (NULL: this thread).
void imc_ppl_chunk_nll(const struct imc_exec *ex, const float *logits, int64_t n_ctx,
                       int64_t n_vocab, const int32_t *tokens, double *nll);

// Adds rows[0..n).nll in order: with the rows of a chunk scored elsewhere (imc_engine_score on
// the targets tokens[first + 1 ..]), what imc_ppl_add_chunk adds.
void imc_ppl_add_rows(struct imc_ppl_acc *a, const struct imc_nll_row *rows, int64_t n);

// exp(mean nll); NAN when count is 0.
double imc_ppl_value(const struct imc_ppl_acc *a);
// PPL · sqrt(var / (N − 1)) with var = ⟨nll²⟩ − ⟨nll⟩²; 0 when N < 2 or var <= 0 (rounding).
double imc_ppl_error(const struct imc_ppl_acc *a);

#endif // IMC_COORDINATOR_PPL_H
