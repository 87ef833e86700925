/*
 * model/synth_bpe: a small deterministic byte-level BPE trainer for the synthetic models'
 * vocabularies (model/synth.h). Tokens are GPT-2 byte-level strings (each byte mapped to a
 * printable code point, as GPT-2's bytes_to_unicode), so llama.cpp's "gpt2" BPE tokenizer with
 * pre-tokenizer "default" covers any text.
 *
 * Training: the text is split into words by an ASCII rendering of the GPT-2 pre-tokenizer
 * regex; each round merges the most frequent adjacent pair (ties: the smaller (left, right) id
 * pair), until the vocabulary is full or no pair is left. Cost: O(rounds × symbols); for the
 * bundled ~35 KB text and 4096 tokens well under a second.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/synth_priv.h"

// ---- small open-addressing hash tables ---------------------------------------------------------

// String -> int64 index map; keys are borrowed (they live in the caller's arrays).
struct strmap {
    const char **keys;
    size_t *lens;
    int64_t *vals;
    size_t cap; // power of two
    size_t n;
};

static bool strmap_init(struct strmap *m, size_t cap)
{
    m->cap = cap;
    m->n = 0;
    m->keys = calloc(cap, sizeof(*m->keys));
    m->lens = calloc(cap, sizeof(*m->lens));
    m->vals = calloc(cap, sizeof(*m->vals));
    return m->keys && m->lens && m->vals;
}

static void strmap_free(struct strmap *m)
{
    free(m->keys);
    free(m->lens);
    free(m->vals);
}

// Returns the slot of key (occupied when keys[slot] != NULL).
static size_t strmap_slot(const struct strmap *m, const char *key, size_t len)
{
    size_t i = imc_synth_hash(key, len) & (m->cap - 1);
    while (m->keys[i] && (m->lens[i] != len || memcmp(m->keys[i], key, len) != 0)) {
        i = (i + 1) & (m->cap - 1);
    }
    return i;
}

// ---- vocabulary under construction -------------------------------------------------------------

struct word {
    int32_t *sym; // symbol (token) ids
    int32_t n;
    int64_t count;
};

struct trainer {
    struct imc_synth_vocab *v;
    int64_t cap_tokens;   // n_vocab - 2 (BOS/EOS appended at the end)
    struct strmap tokmap; // token string -> id
    struct word *words;
    size_t n_words;
};

static char *dup_mem(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = '\0';
    }
    return r;
}

// Appends token s (copied) with type t; returns its id or -1 on allocation failure.
static int64_t add_token(struct trainer *tr, const char *s, size_t len, int32_t t)
{
    struct imc_synth_vocab *v = tr->v;
    char *c = dup_mem(s, len);
    if (!c) {
        return -1;
    }
    int64_t id = v->n_tokens++;
    v->tokens[id] = c;
    v->types[id] = t;
    size_t slot = strmap_slot(&tr->tokmap, c, len);
    tr->tokmap.keys[slot] = c;
    tr->tokmap.lens[slot] = len;
    tr->tokmap.vals[slot] = id;
    tr->tokmap.n++;
    return id;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the others to 256+k.
static size_t byte_token(int b, char out[4])
{
    int cp = b;
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    if (!printable) {
        int k = 0;
        for (int x = 0; x < b; x++) {
            bool px = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE);
            k += !px;
        }
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

// ---- pre-tokenization ---------------------------------------------------------------------------

static bool is_letter(unsigned char c)
{
    return isalpha(c) || c >= 0x80;
}

// Length of the GPT-2 pre-token starting at t[i] (ASCII rendering of the regex
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+).
static size_t pretoken_len(const unsigned char *t, size_t n, size_t i)
{
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t k = 0; k < sizeof(contractions) / sizeof(contractions[0]); k++) {
        size_t cl = strlen(contractions[k]);
        if (i + cl <= n && memcmp(t + i, contractions[k], cl) == 0) {
            return cl;
        }
    }
    size_t j = i;
    if (t[j] == ' ' && j + 1 < n && !isspace(t[j + 1])) {
        j++;
    }
    if (is_letter(t[j])) {
        while (j < n && is_letter(t[j])) {
            j++;
        }
    } else if (isdigit(t[j])) {
        while (j < n && isdigit(t[j])) {
            j++;
        }
    } else if (!isspace(t[j])) {
        while (j < n && !isspace(t[j]) && !is_letter(t[j]) && !isdigit(t[j])) {
            j++;
        }
    } else {
        while (j < n && isspace(t[j])) {
            j++;
        }
        if (j < n && j - i > 1) {
            j--; // leave the last whitespace to the next token
        }
    }
    return j - i;
}

// Collects the distinct words of text with their counts, as byte-token symbol sequences.
static enum imc_status collect_words(struct trainer *tr, const char *text, size_t len)
{
    struct strmap wm;
    size_t cap = 1024; // > distinct words: at most 256 of length 1, at most len/2 longer
    while (cap < len + 512) {
        cap *= 2;
    }
    tr->words = calloc(cap, sizeof(*tr->words));
    if (!tr->words || !strmap_init(&wm, cap)) {
        strmap_free(&wm);
        return IMC_ERR_NOMEM;
    }
    const unsigned char *t = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t wl = pretoken_len(t, len, i);
        size_t slot = strmap_slot(&wm, text + i, wl);
        if (!wm.keys[slot]) {
            struct word *w = &tr->words[tr->n_words];
            w->sym = malloc(wl * sizeof(*w->sym));
            if (!w->sym) {
                strmap_free(&wm);
                return IMC_ERR_NOMEM;
            }
            for (size_t k = 0; k < wl; k++) {
                w->sym[k] = t[i + k];
            }
            w->n = (int32_t)wl;
            wm.keys[slot] = text + i;
            wm.lens[slot] = wl;
            wm.vals[slot] = (int64_t)tr->n_words++;
        }
        tr->words[wm.vals[slot]].count++;
        i += wl;
    }
    strmap_free(&wm);
    return IMC_OK;
}

// ---- merge rounds -------------------------------------------------------------------------------

// Pair-count table keyed by (left << 32 | right) + 1 (0 marks an empty slot).
struct pairmap {
    uint64_t *keys;
    int64_t *counts;
    size_t cap;
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

// Finds the most frequent adjacent pair; false when there is none.
static bool best_pair(const struct trainer *tr, struct pairmap *pm, int32_t *a, int32_t *b)
{
    memset(pm->keys, 0, pm->cap * sizeof(*pm->keys));
    uint64_t best_key = 0;
    int64_t best = 0;
    for (size_t wi = 0; wi < tr->n_words; wi++) {
        const struct word *w = &tr->words[wi];
        for (int32_t k = 0; k + 1 < w->n; k++) {
            uint64_t key = ((uint64_t)w->sym[k] << 32 | (uint32_t)w->sym[k + 1]) + 1;
            size_t s = mix64(key) & (pm->cap - 1);
            while (pm->keys[s] && pm->keys[s] != key) {
                s = (s + 1) & (pm->cap - 1);
            }
            if (!pm->keys[s]) {
                pm->keys[s] = key;
                pm->counts[s] = 0;
            }
            pm->counts[s] += w->count;
            if (pm->counts[s] > best || (pm->counts[s] == best && key < best_key)) {
                best = pm->counts[s];
                best_key = key;
            }
        }
    }
    if (best == 0) {
        return false;
    }
    *a = (int32_t)((best_key - 1) >> 32);
    *b = (int32_t)((best_key - 1) & 0xffffffffu);
    return true;
}

static void apply_merge(struct trainer *tr, int32_t a, int32_t b, int32_t id)
{
    for (size_t wi = 0; wi < tr->n_words; wi++) {
        struct word *w = &tr->words[wi];
        int32_t o = 0;
        for (int32_t k = 0; k < w->n; k++) {
            if (k + 1 < w->n && w->sym[k] == a && w->sym[k + 1] == b) {
                w->sym[o++] = id;
                k++;
            } else {
                w->sym[o++] = w->sym[k];
            }
        }
        w->n = o;
    }
}

// One merge round: records "left right" and adds the joined token unless it exists; *done
// when no pair is left.
static enum imc_status merge_round(struct trainer *tr, struct pairmap *pm, bool *done)
{
    struct imc_synth_vocab *v = tr->v;
    int32_t a = 0, b = 0;
    *done = !best_pair(tr, pm, &a, &b);
    if (*done) {
        return IMC_OK;
    }
    size_t la = strlen(v->tokens[a]), lb = strlen(v->tokens[b]);
    char *m = malloc(la + lb + 2);
    if (!m) {
        return IMC_ERR_NOMEM;
    }
    memcpy(m, v->tokens[a], la);
    m[la] = ' ';
    memcpy(m + la + 1, v->tokens[b], lb + 1);
    v->merges[v->n_merges++] = m;
    memmove(m + la, m + la + 1, lb + 1); // joined string, temporarily
    size_t slot = strmap_slot(&tr->tokmap, m, la + lb);
    int64_t id = tr->tokmap.keys[slot] ? tr->tokmap.vals[slot]
                                       : add_token(tr, m, la + lb, IMC_SYNTH_TOK_NORMAL);
    memmove(m + la + 1, m + la, lb + 1); // back to "left right"
    m[la] = ' ';
    if (id < 0) {
        return IMC_ERR_NOMEM;
    }
    apply_merge(tr, a, b, (int32_t)id);
    return IMC_OK;
}

static enum imc_status train(struct trainer *tr, const char *text, size_t len)
{
    IMC_TRY(collect_words(tr, text, len));
    size_t n_sym = 0;
    for (size_t i = 0; i < tr->n_words; i++) {
        n_sym += (size_t)tr->words[i].n;
    }
    struct pairmap pm = {NULL, NULL, 64};
    while (pm.cap < 2 * n_sym + 64) {
        pm.cap *= 2;
    }
    pm.keys = malloc(pm.cap * sizeof(*pm.keys));
    pm.counts = malloc(pm.cap * sizeof(*pm.counts));
    enum imc_status st = pm.keys && pm.counts ? IMC_OK : IMC_ERR_NOMEM;
    bool done = false;
    // Every round adds at most one token; the merge array holds up to cap_tokens entries.
    while (st == IMC_OK && !done && tr->v->n_tokens < tr->cap_tokens &&
           tr->v->n_merges < tr->cap_tokens) {
        st = merge_round(tr, &pm, &done);
    }
    free(pm.keys);
    free(pm.counts);
    return st;
}

static enum imc_status build(struct trainer *tr, int64_t n_vocab, const char *text, size_t len)
{
    struct imc_synth_vocab *v = tr->v;
    size_t cap = 64;
    while (cap < 2 * (size_t)n_vocab) {
        cap *= 2;
    }
    v->tokens = calloc((size_t)n_vocab, sizeof(*v->tokens));
    v->types = calloc((size_t)n_vocab, sizeof(*v->types));
    v->merges = calloc((size_t)n_vocab, sizeof(*v->merges));
    if (!v->tokens || !v->types || !v->merges || !strmap_init(&tr->tokmap, cap)) {
        return IMC_ERR_NOMEM;
    }
    for (int b = 0; b < 256; b++) {
        char s[4];
        if (add_token(tr, s, byte_token(b, s), IMC_SYNTH_TOK_NORMAL) < 0) {
            return IMC_ERR_NOMEM;
        }
    }
    if (text && len > 0) {
        IMC_TRY(train(tr, text, len));
    }
    for (int64_t k = 0; v->n_tokens < tr->cap_tokens; k++) {
        char s[40];
        int n = snprintf(s, sizeof(s), "<|unused_%lld|>", (long long)k);
        if (add_token(tr, s, (size_t)n, IMC_SYNTH_TOK_UNUSED) < 0) {
            return IMC_ERR_NOMEM;
        }
    }
    // llama.cpp recognizes "<|endoftext|>" as end-of-generation (GPT-2's EOS)
    static const char bos[] = "<|begin_of_text|>", eos[] = "<|endoftext|>";
    if (tr->tokmap.keys[strmap_slot(&tr->tokmap, bos, sizeof(bos) - 1)] ||
        tr->tokmap.keys[strmap_slot(&tr->tokmap, eos, sizeof(eos) - 1)]) {
        IMC_LOG_ERR("synth: the training text produced a token '%s' or '%s'", bos, eos);
        return IMC_ERR_ARG;
    }
    v->bos = add_token(tr, bos, sizeof(bos) - 1, IMC_SYNTH_TOK_CONTROL);
    v->eos = add_token(tr, eos, sizeof(eos) - 1, IMC_SYNTH_TOK_CONTROL);
    return v->bos < 0 || v->eos < 0 ? IMC_ERR_NOMEM : IMC_OK;
}

enum imc_status imc_synth_vocab_build(struct imc_synth_vocab *v, int64_t n_vocab,
                                      const char *text, size_t len)
{
    memset(v, 0, sizeof(*v));
    if (n_vocab < 258 || n_vocab > (1 << 24)) {
        IMC_LOG_ERR("synth: n_vocab %lld out of range [258, %d]", (long long)n_vocab, 1 << 24);
        return IMC_ERR_ARG;
    }
    struct trainer tr = {.v = v, .cap_tokens = n_vocab - 2};
    enum imc_status st = build(&tr, n_vocab, text, len);
    for (size_t i = 0; i < tr.n_words; i++) {
        free(tr.words[i].sym);
    }
    free(tr.words);
    strmap_free(&tr.tokmap);
    if (st == IMC_ERR_NOMEM) {
        IMC_LOG_ERR("synth: out of memory building a vocabulary of %lld tokens",
                    (long long)n_vocab);
    }
    if (st != IMC_OK) {
        imc_synth_vocab_free(v);
    }
    return st;
}

void imc_synth_vocab_free(struct imc_synth_vocab *v)
{
    if (!v) {
        return;
    }
    for (int64_t i = 0; i < v->n_tokens && v->tokens; i++) {
        free(v->tokens[i]);
    }
    for (int64_t i = 0; i < v->n_merges; i++) {
        free(v->merges[i]);
    }
    free(v->tokens);
    free(v->types);
    free(v->merges);
    memset(v, 0, sizeof(*v));
}
