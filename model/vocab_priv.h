/*
 * model/vocab_priv: the inside of struct imc_vocab, shared by vocab.c (build, load, special
 * tokens), tok_bpe.c, tok_spm.c and pretok.c. Not for other modules (use model/vocab.h); tests
 * may include it to exercise the pieces directly.
 *
 * Invariants (after imc_vocab_build): tok[i].text is NUL-terminated and unique; the token hash
 * maps every text to its id; every merge (left id, right id) maps to its rank and to the id of
 * the concatenated text; special[] lists the CONTROL/USER_DEFINED/UNKNOWN ids by decreasing text
 * length (ties by id). Nothing changes after build.
 */
#ifndef IMC_MODEL_VOCAB_PRIV_H
#define IMC_MODEL_VOCAB_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "model/vocab.h"

struct imc_vocab_tok {
    const char *text; // NUL-terminated, in the vocabulary's pool
    uint32_t len;     // bytes
    uint32_t attr;    // IMC_TOKATTR_* bits
    float score;      // SPM merge priority (higher first)
};

struct imc_merge_slot {
    uint64_t key;   // (left id << 32) | right id; UINT64_MAX = empty
    int32_t rank;   // lower merges first
    int32_t merged; // id of left text + right text
};

struct imc_pretok; // compiled pre-tokenizer (pretok.c)

struct imc_vocab {
    char *source;              // name for messages (file path)
    enum imc_vocab_type type;
    char *pre_name;            // BPE pre-tokenizer name as given ("" for SPM)
    struct imc_pretok *pretok; // BPE only
    bool ignore_merges;        // BPE: a word that is a whole token is emitted directly (llama3)
    bool add_bos, add_eos, add_space_prefix;
    int32_t bos, eos, unk, pad; // -1 = none

    int64_t n_tokens;
    struct imc_vocab_tok *tok;
    char *pool; // all token texts, NUL-separated

    uint32_t *hash; // open addressing: id + 1, 0 = empty
    size_t hash_mask;

    struct imc_merge_slot *merges;
    size_t merge_mask;
    int64_t n_merges;

    int32_t byte_tok[256]; // BPE: id of the byte-level text of byte b; SPM: <0xXX> (or the raw
                           // single byte); -1 when absent
    int32_t *special;      // ids of special tokens, longest text first
    size_t n_special;
};

// A growable id array.
struct imc_ids {
    int32_t *a;
    size_t n, cap;
};
enum imc_status imc_ids_push(struct imc_ids *ids, int32_t id);

// A byte range of a text.
struct imc_span {
    size_t off, len;
};

// 64-bit hash of s[0..n).
uint64_t imc_vocab_hash(const char *s, size_t n);

// Merge lookup: true and *rank / *merged set when (left, right) is a merge.
static inline bool imc_vocab_merge(const struct imc_vocab *v, int32_t left, int32_t right,
                                   int32_t *rank, int32_t *merged)
{
    if (!v->merges) {
        return false;
    }
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 20) & v->merge_mask;
    for (;;) {
        const struct imc_merge_slot *s = &v->merges[i];
        if (s->key == key) {
            *rank = s->rank;
            *merged = s->merged;
            return true;
        }
        if (s->key == UINT64_MAX) {
            return false;
        }
        i = (i + 1) & v->merge_mask;
    }
}

// ---- pre-tokenizer (pretok.c) -----------------------------------------------------------------

// Compiles the regexes of pre-tokenizer name. *ignore_merges and *add_bos receive llama.cpp's
// settings for it. Unknown name: logs "<source>: tokenizer.ggml.pre: ..." and returns
// IMC_ERR_UNSUPPORTED.
enum imc_status imc_pretok_init(struct imc_pretok **out, const char *name, const char *source,
                                bool *ignore_merges, bool *add_bos);
void imc_pretok_free(struct imc_pretok *p);
// Splits text[0..len) (strict UTF-8) into words: each regex in turn splits every current piece
// into its matches and the text between them. Returns a new array of spans (free()).
enum imc_status imc_pretok_split(const struct imc_pretok *p, const char *text, size_t len,
                                 struct imc_span **spans, size_t *n_spans);

// ---- special tokens (vocab_special.c) ---------------------------------------------------------

// A piece of the input: raw text (id -1) or one special token.
struct imc_frag {
    size_t off, len;
    int32_t id;
};

// Adds CONTROL to the control-looking texts llama.cpp recognizes (build time only).
void imc_vocab_mark_special(struct imc_vocab *v);
// Fills v->special (build time only).
enum imc_status imc_vocab_build_special(struct imc_vocab *v);
// Splits text into raw fragments and special tokens. Returns a new array (free()).
enum imc_status imc_vocab_partition(const struct imc_vocab *v, const char *text, size_t len,
                                    bool parse_special, struct imc_frag **frags, size_t *n_frags);

// ---- tokenizers of one raw-text fragment -------------------------------------------------------

// BPE: sanitizes the UTF-8, pre-tokenizes, merges; appends ids to out.
enum imc_status imc_bpe_tokenize(const struct imc_vocab *v, const char *text, size_t len,
                                 struct imc_ids *out);
// SPM: space_prefix puts a space before the text (first fragment, after a special token).
enum imc_status imc_spm_tokenize(const struct imc_vocab *v, const char *text, size_t len,
                                 bool space_prefix, struct imc_ids *out);

#endif // IMC_MODEL_VOCAB_PRIV_H
