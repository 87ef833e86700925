/*
 * coordinator/chunks: calibration / evaluation text → tokens → chunks of n_ctx (DESIGN.md §4
 * "Perplexity"), as llama-perplexity and llama-imatrix cut them.
 *
 * The whole text is tokenized once, with BOS first when the vocabulary adds BOS and without
 * parsing special-token texts (llama.cpp's common_tokenize(ctx, text, true)). Chunk i is the
 * tokens [i·n_ctx, (i+1)·n_ctx), non-overlapping; the leftover tail is dropped. What the model
 * is fed replaces the first token of each chunk by BOS (when the vocabulary adds BOS); the
 * targets scored stay the text's tokens.
 *
 * Invariants: 1 <= n_chunk <= n_tokens / n_ctx after a successful build (and n_tokens >= 2·n_ctx
 * for a text file).
 */
#ifndef IMC_COORDINATOR_CHUNKS_H
#define IMC_COORDINATOR_CHUNKS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

struct imc_vocab;

struct imc_chunks {
    int32_t *tokens;  // [n_tokens] all tokens of the text, owned
    int64_t n_tokens; // tokens in the text
    int64_t n_ctx;    // tokens per chunk
    int64_t n_chunk;  // chunks in use
    int32_t bos;      // id put first in each chunk's input, or -1 (vocabulary adds no BOS)
};

// Reads path, tokenizes it with v (borrowed) and cuts at most max_chunks chunks (<= 0: all).
// Errors (logged, naming path): unreadable file IMC_ERR_IO; fewer than 2·n_ctx tokens
// "<path>: text has N tokens, need at least 2*ctx = M" IMC_ERR_ARG; tokenizer errors.
// On failure c needs no cleanup.
enum imc_status imc_chunks_from_file(struct imc_chunks *c, const struct imc_vocab *v,
                                     const char *path, int64_t n_ctx, int64_t max_chunks);

// Same from an existing token array (copied; e.g. the tokens of a KLD base file); source names
// it in messages; bos as above. Needs only n_tokens >= n_ctx (one chunk): "<source>: has N
// tokens, need at least ctx = M" IMC_ERR_ARG.
enum imc_status imc_chunks_from_tokens(struct imc_chunks *c, const int32_t *tokens,
                                       int64_t n_tokens, int64_t n_ctx, int64_t max_chunks,
                                       int32_t bos, const char *source);

// Chunk i as the model is fed: dst[0 .. n_ctx), the first token replaced by BOS when bos >= 0.
void imc_chunks_input(const struct imc_chunks *c, int64_t i, int32_t *dst);
// Chunk i's tokens as in the text (the targets), borrowed from c.
const int32_t *imc_chunks_text(const struct imc_chunks *c, int64_t i);

void imc_chunks_free(struct imc_chunks *c); // safe on a zeroed or freed struct

// In an MPI job of several ranks (comm, else a no-op returning st): rank 0 has built c (st its
// status; the other ranks pass IMC_OK and a zeroed c) and broadcasts the outcome and the
// tokens, so only rank 0 reads and tokenizes the text (chunks_share.c). Returns rank 0's
// status on every rank (logged by rank 0), IMC_ERR_NOMEM or IMC_ERR_MPI. Collective.
struct imc_comm;
enum imc_status imc_chunks_share(struct imc_chunks *c, const struct imc_comm *comm,
                                 enum imc_status st);

#endif // IMC_COORDINATOR_CHUNKS_H
