/*
 * model/synth_priv: internals of the synthetic model generator (synth.c, synth_bpe.c,
 * synth_tensors.c). See model/synth.h for the contract.
 */
#ifndef IMC_MODEL_SYNTH_PRIV_H
#define IMC_MODEL_SYNTH_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hash.h"
#include "model/gguf.h"
#include "model/synth.h"

// FNV-1a, used to derive per-tensor seeds and by the BPE trainer's hash tables.
static inline uint64_t imc_synth_hash(const void *p, size_t n)
{
    return imc_hash_fnv1a(IMC_HASH_FNV_INIT, p, n);
}

// Runs fn(args + i·size) for i < n (at most 256) on n threads, the caller's among them (it also
// runs the shares of threads that do not start); returns when all are done.
void imc_synth_parallel(int n, void *(*fn)(void *), void *args, size_t size);

// The weights' random numbers (model/synth_rng.c): a xoshiro256** stream per tensor.
struct imc_synth_rng {
    uint64_t s[4];
};
// The stream of tensor `name`: state from splitmix64(seed ^ imc_synth_hash(name)).
void imc_synth_rng_seed(struct imc_synth_rng *r, uint64_t seed, const char *name);
// The stream's next value: Irwin-Hall(4) of four draws, unit variance, times std.
float imc_synth_rng_normal(struct imc_synth_rng *r, double std);
// p[0 .. n) = the first n values of `name`'s stream, by up to n_threads threads (one per 2^20
// values at least; each jumps its copy of the stream to its share's first draw): the same bits
// for any count.
void imc_synth_randn(float *p, int64_t n, uint64_t seed, const char *name, double std,
                     int n_threads);

// GGUF token types (llama.cpp llama_token_type).
enum { IMC_SYNTH_TOK_NORMAL = 1, IMC_SYNTH_TOK_CONTROL = 3, IMC_SYNTH_TOK_UNUSED = 5 };

// A byte-level BPE vocabulary: tokens 0..255 are the GPT-2 byte tokens (byte b at id b), then
// the learned merges' results, then unused padding, then BOS and EOS (the last two ids).
struct imc_synth_vocab {
    int64_t n_tokens; // == the requested n_vocab
    char **tokens;    // n_tokens NUL-terminated UTF-8 strings (owned)
    int32_t *types;   // n_tokens token types
    int64_t n_merges;
    char **merges;    // n_merges "left right" strings (owned)
    int64_t bos, eos; // ids
};

// Builds a vocabulary of exactly n_vocab tokens, learning merges from text (may be NULL).
// Deterministic. Returns IMC_ERR_ARG for n_vocab < 258, IMC_ERR_NOMEM.
enum imc_status imc_synth_vocab_build(struct imc_synth_vocab *v, int64_t n_vocab,
                                      const char *text, size_t len);
void imc_synth_vocab_free(struct imc_synth_vocab *v);

// Adds every tensor of cfg's model to w. Tensor data (and names) are kept in *bufs, a growable
// array of malloc'd pointers that the caller frees after writing (imc_synth_bufs_free).
struct imc_synth_bufs {
    void **p;
    size_t n, cap;
};
enum imc_status imc_synth_add_tensors(const struct imc_synth_cfg *cfg,
                                      struct imc_gguf_writer *w, struct imc_synth_bufs *bufs);
void imc_synth_bufs_free(struct imc_synth_bufs *b);

#endif // IMC_MODEL_SYNTH_PRIV_H
