/*
 * model/vocab: the tokenizer of a GGUF model (DESIGN.md §4 "Tokenizer"): llama.cpp-compatible
 * token ids for `gpt2`-style byte-level BPE and `llama` SentencePiece (SPM) vocabularies.
 *
 * What is read (llama.cpp key names and defaults):
 *   tokenizer.ggml.model        "gpt2" (BPE) or "llama" (SPM); required
 *   tokenizer.ggml.pre          BPE pre-tokenizer: default, gpt-2 (gpt2), llama-bpe (llama3,
 *                               llama-v3, ...), deepseek-llm, deepseek-coder, deepseek-v3,
 *                               qwen2 (deepseek-r1-qwen, ...), kimi-k2 and llama.cpp's aliases
 *                               of these; absent: "default" with a warning; unknown: error
 *   tokenizer.ggml.tokens       string array; required; duplicates are an error
 *   tokenizer.ggml.scores       f32 (or i32) array, >= n_tokens entries; optional (0)
 *   tokenizer.ggml.token_type   i32 array, >= n_tokens entries; optional (NORMAL)
 *   tokenizer.ggml.merges       string array "left right" (BPE; required except kimi-k2); both
 *                               sides and their concatenation must be tokens
 *   tokenizer.ggml.{bos,eos,unknown,padding}_token_id   defaults: SPM 1/2/0/-1, BPE 11/11/-1/-1
 *                               (a default past the vocabulary becomes -1; a key past it is
 *                               ignored with a warning)
 *   tokenizer.ggml.add_bos_token / add_eos_token   defaults: SPM true/false; BPE false/false
 *                               except the llama3 family (true)
 *   tokenizer.ggml.add_space_prefix                SPM: default true
 *
 * Tokenization (imc_vocab_tokenize) follows llama.cpp's llama_tokenize: special tokens are split
 * out of the raw text first, longest text first — USER_DEFINED tokens always (as llama.cpp and
 * HF do), CONTROL and UNKNOWN tokens only with parse_special; the remaining fragments are
 * tokenized by BPE (pre-tokenizer regexes with PCRE2, GPT-2 byte mapping, merges by rank) or SPM
 * (spaces as U+2581, a leading space before the first fragment and after each special token,
 * bigram merges by score, <0xXX> byte fallback). Invalid UTF-8 becomes U+FFFD before BPE.
 *
 * Known divergences from llama.cpp (documented, rare input only): code points llama.cpp's own
 * category tables classify differently from PCRE2's Unicode tables (e.g. PCRE2 10.42's \s also
 * matches U+180E); UTF-8 surrogates and code points past U+10FFFF become U+FFFD (llama.cpp keeps
 * or rejects them). kimi-k2 follows
 * llama.cpp's splitter (camelCase words and combining marks are not split the way Moonshot's
 * tiktoken pattern splits them).
 *
 * Invariants: after a successful load or build the vocabulary is immutable; every function
 * below only reads it, so one vocabulary may be used from several threads at once (each call
 * allocates its own scratch memory; there are no caches inside).
 */
#ifndef IMC_MODEL_VOCAB_H
#define IMC_MODEL_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

struct imc_gguf;
struct imc_vocab;

enum imc_vocab_type {
    IMC_VOCAB_BPE, // tokenizer.ggml.model "gpt2"
    IMC_VOCAB_SPM, // tokenizer.ggml.model "llama"
};

// GGUF token types (tokenizer.ggml.token_type values, llama.cpp's llama_token_type).
enum imc_token_type {
    IMC_TOKEN_UNDEFINED = 0,
    IMC_TOKEN_NORMAL = 1,
    IMC_TOKEN_UNKNOWN = 2,
    IMC_TOKEN_CONTROL = 3,
    IMC_TOKEN_USER_DEFINED = 4,
    IMC_TOKEN_UNUSED = 5,
    IMC_TOKEN_BYTE = 6,
};

// Token attributes (bits, llama.cpp's llama_token_attr); derived from the token type, plus
// CONTROL for the control-looking texts llama.cpp recognizes ("<|endoftext|>", "<|im_end|>", ...).
enum {
    IMC_TOKATTR_UNKNOWN = 1 << 0,
    IMC_TOKATTR_UNUSED = 1 << 1,
    IMC_TOKATTR_NORMAL = 1 << 2,
    IMC_TOKATTR_CONTROL = 1 << 3,
    IMC_TOKATTR_USER_DEFINED = 1 << 4,
    IMC_TOKATTR_BYTE = 1 << 5,
};

// Everything a vocabulary is made of, as plain arrays (all borrowed; copied by imc_vocab_build).
// imc_vocab_load fills one from GGUF keys; tests build small vocabularies from it directly.
struct imc_vocab_desc {
    const char *source;        // name used in messages (file path); NULL: "vocab"
    const char *model;         // "gpt2" or "llama"
    const char *pre;           // pre-tokenizer name (BPE); NULL: "default" with a warning
    int64_t n_tokens;          // entries in tokens
    const char *const *tokens; // token texts (NUL-terminated)
    const uint32_t *token_lens; // byte lengths (may differ from strlen); NULL: strlen
    const float *scores;       // n_tokens scores or NULL (0)
    const int32_t *types;      // n_tokens enum imc_token_type values or NULL (NORMAL)
    int64_t n_merges;          // entries in merges (BPE)
    const char *const *merges; // "left right", rank = index; NULL when n_merges is 0
    // Special ids: -1 = "not set, use the default of the model type".
    int64_t bos_id, eos_id, unk_id, pad_id;
    int add_bos, add_eos;      // -1 = default, else 0/1
    int add_space_prefix;      // -1 = default, else 0/1 (SPM)
};

// Fills d with "unset" values (ids -1, flags -1, arrays NULL).
void imc_vocab_desc_init(struct imc_vocab_desc *d);

// Builds a vocabulary from d (copied). Returns a new object in *out; free with imc_vocab_free.
// On inconsistent input logs "<source>: <key>: <cause>" once and returns IMC_ERR_FORMAT (or
// IMC_ERR_UNSUPPORTED for an unknown model/pre-tokenizer, IMC_ERR_NOMEM); *out is then NULL.
enum imc_status imc_vocab_build(struct imc_vocab **out, const struct imc_vocab_desc *d);

// Reads the tokenizer.ggml.* keys of g (borrowed; not needed after the call) and builds the
// vocabulary. Returns a new object in *out; free with imc_vocab_free. Errors as imc_vocab_build,
// naming the file and the key.
enum imc_status imc_vocab_load(struct imc_vocab **out, const struct imc_gguf *g);

void imc_vocab_free(struct imc_vocab *v); // NULL is a no-op

// Tokenizes text[0..len) (any bytes). add_bos: put the BOS token first (IMC_ERR_ARG if the vocab
// has none). parse_special: also split out CONTROL/UNKNOWN token texts. Returns a new array of
// *n_ids ids in *ids (free with free(); NULL when *n_ids is 0). No EOS is added.
enum imc_status imc_vocab_tokenize(const struct imc_vocab *v, const char *text, size_t len,
                                   bool add_bos, bool parse_special, int32_t **ids,
                                   size_t *n_ids);

enum imc_vocab_type imc_vocab_type(const struct imc_vocab *v);
const char *imc_vocab_pre(const struct imc_vocab *v); // pre-tokenizer name ("" for SPM)
int64_t imc_vocab_n_tokens(const struct imc_vocab *v);
int64_t imc_vocab_n_merges(const struct imc_vocab *v);
int32_t imc_vocab_bos(const struct imc_vocab *v); // -1 when none
int32_t imc_vocab_eos(const struct imc_vocab *v); // -1 when none
int32_t imc_vocab_unk(const struct imc_vocab *v); // -1 when none
int32_t imc_vocab_pad(const struct imc_vocab *v); // -1 when none
bool imc_vocab_add_bos(const struct imc_vocab *v); // whether the model wants BOS first
bool imc_vocab_add_eos(const struct imc_vocab *v);

// Text of token id as stored in the vocabulary (byte-level or U+2581 form), NUL-terminated;
// borrowed, valid until imc_vocab_free. NULL when id is out of range.
const char *imc_vocab_token_text(const struct imc_vocab *v, int32_t id);
// Attribute bits (IMC_TOKATTR_*) of id; 0 when out of range.
uint32_t imc_vocab_token_attr(const struct imc_vocab *v, int32_t id);
// Id of the token whose text is exactly s[0..len), or -1.
int32_t imc_vocab_find(const struct imc_vocab *v, const char *s, size_t len);

// The bytes token id stands for (detokenized piece; control/user-defined tokens as their text).
// Writes at most cap bytes to buf, NUL-terminated when the piece is shorter than cap; returns
// the piece length (so a result >= cap means truncated), or 0 for an id out of range.
size_t imc_vocab_token_to_piece(const struct imc_vocab *v, int32_t id, char *buf, size_t cap);

#endif // IMC_MODEL_VOCAB_H
