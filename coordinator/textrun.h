/*
 * coordinator/textrun: the setup every "model over a text" run shares (DESIGN.md §3, §4
 * "Perplexity"; STYLE c.4 "logic duplicated across tools"): open the model (GGUF, architecture,
 * tokenizer), resolve the context length as llama-perplexity / llama-imatrix do, tokenize the
 * text into chunks, print the running PPL. Used by `imc imatrix`;
 * `imc perplexity` holds the same steps (to be switched over).
 *
 * Invariants: after imc_textrun_open_model, g, m and v are set and m, v borrow g; after
 * imc_textrun_load_text, ch holds >= 1 chunk of n_ctx tokens. imc_textrun_free releases all of
 * it and is safe on a zeroed or partly set up struct.
 */
#ifndef IMC_COORDINATOR_TEXTRUN_H
#define IMC_COORDINATOR_TEXTRUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "coordinator/chunks.h"
#include "core/status.h"

#define IMC_TEXTRUN_DEFAULT_CTX 512
#define IMC_TEXTRUN_DEFAULT_BATCH 2048 // -b: tokens per engine call

struct imc_gguf;
struct imc_model;
struct imc_vocab;

struct imc_textrun {
    struct imc_gguf *g;   // the model file (owned)
    struct imc_model *m;  // its architecture (owned; borrows g)
    struct imc_vocab *v;  // its tokenizer (owned; borrows g)
    struct imc_chunks ch; // the text's chunks (owned)
    int64_t n_ctx;        // tokens per chunk
};

// Opens path and reads its architecture and tokenizer into r (zeroed first). Errors as
// imc_gguf_open, imc_model_load, imc_vocab_load (logged there).
enum imc_status imc_textrun_open_model(struct imc_textrun *r, const char *path);

// IMC_TEXTRUN_DEFAULT_CTX lowered to m's n_ctx_train (where the file gives one).
int64_t imc_textrun_default_ctx(const struct imc_model *m);

// Sequences of n_ctx tokens per engine call for -b batch tokens (<= 0: the default): batch /
// n_ctx, at least one.
int64_t imc_textrun_seqs(int64_t batch, int64_t n_ctx);

// Sets r->n_ctx: `requested` when > 0, else IMC_TEXTRUN_DEFAULT_CTX lowered to the model's
// n_ctx_train with a warning. Returns IMC_ERR_ARG (logged as "<what>: <path>: ...") when the
// context is below 4 or above n_ctx_train.
enum imc_status imc_textrun_resolve_ctx(struct imc_textrun *r, const char *what, const char *path,
                                        int64_t requested);

// Tokenizes the text file (BOS first when the vocabulary adds it; special-token texts parsed
// when parse_special) and cuts at most max_chunks (<= 0: all) chunks of r->n_ctx into r->ch.
// Needs at least 2·n_ctx tokens, as llama-perplexity and llama-imatrix do: otherwise
// "<path>: text has N tokens, need at least 2*ctx = M" and IMC_ERR_ARG. IMC_ERR_IO for an
// unreadable file, tokenizer errors.
enum imc_status imc_textrun_load_text(struct imc_textrun *r, const char *path, int64_t max_chunks,
                                      bool parse_special);

// Prints llama-perplexity's running value "[i]%.4f," (i counts from 1) and flushes.
void imc_textrun_print_ppl(FILE *out, int64_t i, double ppl);

void imc_textrun_free(struct imc_textrun *r);

#endif // IMC_COORDINATOR_TEXTRUN_H
