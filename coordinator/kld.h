/*
 * coordinator/kld: llama.cpp's base log-probabilities file (`_logits_`) and the KL-divergence
 * statistics of `imc perplexity --kld-base` (DESIGN.md §3, §4 "Perplexity").
 *
 * File format (llama-perplexity --kl-divergence-base; little-endian, no padding):
 *   char    magic[8] = "_logits_"
 *   int32   n_ctx, n_vocab, n_chunk
 *   int32   tokens[n_chunk · n_ctx]        the text's tokens (first token NOT replaced by BOS)
 *   per chunk, for positions n_ctx/2 … n_ctx−2 (imc_ppl_n_scored rows), one row of
 *   uint16  row[nv], nv = 2·((n_vocab+1)/2) + 4:
 *           row[0..1] float scale, row[2..3] float min_log_prob, row[4 + i] q_i, then a zero
 *           pad element when n_vocab is odd. log p_i ≈ scale·q_i + min_log_prob.
 *   Encoding of a row of logits l: max = max l, lo = max(min l, max − 16),
 *   lse = log Σ exp(l_i − max), min_log_prob = lo − max − lse, scale = (max − lo)/65535,
 *   q_i = round((l_i − lo)/scale) when l_i > lo, else 0 (entries below e^−16 relative to the top
 *   are clamped to the floor). The float arithmetic follows llama.cpp so files are exchangeable.
 *
 * Statistics, per scored token (llama-perplexity's kl_divergence): with p the base distribution
 * (decoded row) and q the new one (log-softmax of the new logits, double):
 *   KLD = Σ_{i: log p_i > −16} p_i (log p_i − log q_i),  Δp = q_t − p_t for the target t,
 *   same top = argmax p == argmax q.  mean ± uncertainty = ⟨x⟩ ± sqrt((⟨x²⟩−⟨x⟩²)/(N−1)) (0 when
 *   N <= 10), covariance of nll and nll_base for ln(PPL(Q)/PPL(base)), percentiles by linear
 *   interpolation of the sorted values at fraction·(N−1).
 *
 * Invariants: a writer produces the file atomically (core/file.h) or not at all; a base file is
 * validated for exact size on open, so every row accessor stays inside the mapping.
 */
#ifndef IMC_COORDINATOR_KLD_H
#define IMC_COORDINATOR_KLD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/file.h"
#include "core/status.h"

struct imc_exec;    // kernels/kernels.h
struct imc_nll_row; // kernels/kernels.h

#define IMC_KLD_MAGIC "_logits_"

// uint16 elements per row for n_vocab tokens: 2·((n_vocab+1)/2) + 4.
int64_t imc_kld_row_len(int64_t n_vocab);
// Encodes the log-softmax of logits[0..n_vocab) into row[imc_kld_row_len(n_vocab)] (format above).
void imc_kld_encode_row(const float *logits, int64_t n_vocab, uint16_t *row);
// Decoded log-probability of entry i of an encoded row.
float imc_kld_row_logp(const uint16_t *row, int64_t i);

// ---- writer (--kld-save) ------------------------------------------------------------------------

struct imc_kld_writer {
    struct imc_afile af; // temporary file, renamed on commit
    int64_t n_ctx;       // tokens per chunk
    int64_t n_vocab;     // entries per distribution
    int64_t n_chunk;     // chunks announced in the header
    int64_t n_done;      // chunks written so far
    uint16_t *rows;      // scratch [n_scored][row_len], owned
};

// Opens path atomically and writes the header and the tokens[n_chunk · n_ctx] (borrowed).
// Returns IMC_ERR_ARG (logged) for sizes that do not fit the format, IMC_ERR_IO, IMC_ERR_NOMEM;
// on failure nothing is left on disk and w needs no cleanup.
enum imc_status imc_kld_writer_open(struct imc_kld_writer *w, const char *path, int64_t n_ctx,
                                    int64_t n_vocab, int64_t n_chunk, const int32_t *tokens);
// Appends the next chunk: logits rows [n_ctx − n_ctx/2][n_vocab] for positions n_ctx/2 … n_ctx−1
// (borrowed; as for imc_ppl_add_chunk, the last row is not used), the rows encoded on ex's pool
// (NULL: this thread). Returns IMC_ERR_IO on a write failure (the writer must then be aborted).
enum imc_status imc_kld_writer_add_chunk(struct imc_kld_writer *w, const struct imc_exec *ex,
                                        const float *logits);
// The same for rows already encoded (imc_kld_encode_chunk): [n_scored][imc_kld_row_len].
enum imc_status imc_kld_writer_add_encoded(struct imc_kld_writer *w, const uint16_t *rows);
// Encodes the n_scored logits rows of one chunk into rows[n_scored][imc_kld_row_len(n_vocab)]
// on ex's pool (NULL: this thread): what the writer stores.
void imc_kld_encode_chunk(const struct imc_exec *ex, const float *logits, int64_t n_ctx,
                          int64_t n_vocab, uint16_t *rows);
// Renames the file into place. Returns IMC_ERR_INTERNAL (logged) if fewer chunks than announced
// were added, or the commit's IMC_ERR_IO. Always releases w.
enum imc_status imc_kld_writer_commit(struct imc_kld_writer *w);
// Removes the temporary file and releases w; safe on a zeroed or released writer.
void imc_kld_writer_abort(struct imc_kld_writer *w);

// ---- reader (--kld-base) ------------------------------------------------------------------------

struct imc_kld_base {
    struct imc_map map;    // the mapped file
    int64_t n_ctx;         // tokens per chunk
    int64_t n_vocab;       // entries per distribution
    int64_t n_chunk;       // chunks in the file
    const uint8_t *tokens; // int32[n_chunk · n_ctx] inside map
    const uint8_t *rows;   // uint16 rows inside map
};

// Maps and validates path: magic, positive sizes, exact file size. On failure logs
// "<path>: <cause>" and returns IMC_ERR_IO or IMC_ERR_FORMAT; b then needs no cleanup.
enum imc_status imc_kld_base_open(struct imc_kld_base *b, const char *path);
void imc_kld_base_close(struct imc_kld_base *b); // safe on a zeroed or closed base
// Copies the n_ctx tokens of chunk c into dst.
void imc_kld_base_tokens(const struct imc_kld_base *b, int64_t c, int32_t *dst);
// The imc_ppl_n_scored(n_ctx) encoded rows of chunk c, each imc_kld_row_len(n_vocab) long
// (borrowed from the mapping).
const uint16_t *imc_kld_base_rows(const struct imc_kld_base *b, int64_t c);

// ---- statistics --------------------------------------------------------------------------------

struct imc_kld_acc {
    double sum_nll;          // Σ nll of the new model
    double sum_nll2;         // Σ nll²
    double sum_nll_base;     // Σ nll of the base (decoded)
    double sum_nll_base2;    // Σ nll_base²
    double sum_nll_nll_base; // Σ nll·nll_base
    double sum_kld;          // Σ KLD
    double sum_kld2;         // Σ KLD²
    double sum_p_diff;       // Σ Δp
    double sum_p_diff2;      // Σ Δp²
    double sum_p_diff4;      // Σ Δp⁴
    double max_p_diff;       // max |Δp|
    int64_t n_same_top;      // tokens whose argmax agrees
    int64_t count;           // tokens added
    int64_t cap;             // capacity of kld / p_diff
    float *kld;              // [count] per-token KLD, owned
    float *p_diff;           // [count] per-token Δp, owned
};

// Prepares an accumulator for up to cap tokens. Returns IMC_ERR_NOMEM (logged) on failure.
enum imc_status imc_kld_acc_init(struct imc_kld_acc *a, int64_t cap);
void imc_kld_acc_free(struct imc_kld_acc *a); // safe on a zeroed accumulator

// One token's figures, computed from its row alone; imc_kld_add_row folds exactly these.
struct imc_kld_row {
    double nll, nll_base, kld, p_diff;
    bool same_top;
};
// The rows of one chunk (arguments as imc_kld_add_chunk) into out[imc_ppl_n_scored(n_ctx)], on
// ex's pool (NULL: this thread); imc_kld_add_rows then folds them as imc_kld_add_chunk would.
void imc_kld_chunk_rows(const struct imc_exec *ex, const float *logits, int64_t n_ctx,
                        int64_t n_vocab, const uint16_t *base_rows, const int32_t *tokens,
                        struct imc_kld_row *out);
void imc_kld_add_rows(struct imc_kld_acc *a, const struct imc_kld_row *rows, int64_t n);
// A token's figures from its scores (kernels/kernels.h imc_nll_row, with its base row): Δp =
// exp(−nll) − exp(−nll_base), same top = top == top_base. The per-token computation of
// imc_kld_add_row is imc_ref_nll_row then this, so scores from any op table (imc_engine_score)
// fold as the host's would.
struct imc_kld_row imc_kld_row_of(const struct imc_nll_row *s);
// Folds imc_kld_row_of(&scores[r]) for r < n in order.
void imc_kld_add_scored(struct imc_kld_acc *a, const struct imc_nll_row *scores, int64_t n);

// Adds one token: logits[n_vocab] of the new model, base_row its encoded base distribution,
// target the token that follows. Requires count < cap (programmer bug otherwise).
void imc_kld_add_row(struct imc_kld_acc *a, const float *logits, int64_t n_vocab,
                     const uint16_t *base_row, int32_t target);
// Adds a chunk: logits rows [n_ctx − n_ctx/2][n_vocab] for positions n_ctx/2 … n_ctx−1,
// base_rows as returned by imc_kld_base_rows, tokens the chunk's n_ctx tokens (targets are
// tokens[pos + 1]). The rows are computed on ex's pool (NULL: this thread) and added in
// position order, as imc_kld_add_row would: the same bits for any thread count.
void imc_kld_add_chunk(const struct imc_exec *ex, struct imc_kld_acc *a, const float *logits,
                       int64_t n_ctx, int64_t n_vocab, const uint16_t *base_rows,
                       const int32_t *tokens);

struct imc_kld_mean {
    double val; // mean
    double unc; // uncertainty of the mean
};
// llama-perplexity's mean_and_uncertainty: unc = sqrt((sum2/n − mean²)/(n−1)) when that variance
// is positive and n > 10, else 0; {0, 0} when n < 1.
struct imc_kld_mean imc_kld_mean_unc(double sum, double sum2, int64_t n);
// Covariance of the mean of a and b: (Σab/n − (Σa/n)(Σb/n))/(n−1); 0 when n < 10.
double imc_kld_cov(double sum_a, double sum_b, double sum_ab, int64_t n);
// Percentile of sorted[0..n) (n >= 1): linear interpolation at fraction·(n−1); the first / last
// value for fraction <= 0 / >= 1.
double imc_kld_percentile(const float *sorted, int64_t n, double fraction);
// Median of sorted[0..n) (n >= 1): middle value, or the mean of the two middle values.
double imc_kld_median(const float *sorted, int64_t n);

// The headline figures of an accumulator, as the summary prints them (fractions, not %).
struct imc_kld_headline {
    struct imc_kld_mean ppl;      // PPL(Q) and its uncertainty
    struct imc_kld_mean ppl_base; // PPL(base) and its uncertainty
    struct imc_kld_mean kld;      // mean KLD
    struct imc_kld_mean same_top; // fraction of tokens whose argmax agrees (llama-perplexity's
                                  // "Same top p" / 100), unc = sqrt(p(1-p)/(N-1))
};
struct imc_kld_headline imc_kld_headline(const struct imc_kld_acc *a);

// Prints the column header of the per-chunk table.
void imc_kld_print_header(FILE *f);
// Prints one running line of the per-chunk table after chunk number `chunk` (1-based).
void imc_kld_print_chunk(FILE *f, const struct imc_kld_acc *a, int64_t chunk);
// Prints the final "Perplexity / KL divergence / Token probability statistics" blocks. Sorts the
// per-token values in place. Returns IMC_ERR_ARG (logged) when no token was added.
enum imc_status imc_kld_print_summary(FILE *f, struct imc_kld_acc *a);

#endif // IMC_COORDINATOR_KLD_H
