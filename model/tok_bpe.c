/*
 * model/tok_bpe: byte-level BPE of one raw-text fragment (DESIGN.md §4 "Tokenizer"), as
 * llama.cpp's llm_tokenizer_bpe_session: invalid UTF-8 becomes U+FFFD, the pre-tokenizer cuts
 * words, each byte of a word is one symbol (the GPT-2 byte-level token of that byte), and the
 * adjacent pair with the lowest merge rank is merged first (ties: leftmost), until no pair of
 * the word is a merge. Symbols are token ids, so merges are looked up by (left id, right id).
 * A symbol that is no token (a byte missing from the vocabulary) falls back to the tokens of
 * the single bytes of its byte-level text, skipping bytes that are no token, as llama.cpp does.
 */
#include <stdlib.h>
#include <string.h>

#include "model/unicode.h"
#include "model/vocab_priv.h"

struct sym {
    int32_t id;   // token id of the symbol's bytes, -1 when none
    int32_t prev; // neighbours in the word, -1 at the ends
    int32_t next;
    uint32_t len; // raw bytes covered (0 once merged into the left neighbour)
};

struct bigram {
    int32_t rank;
    int32_t left, right;
    int32_t id_left, id_right, merged;
};

struct bpe_scratch {
    struct sym *sym;
    size_t sym_cap;
    struct bigram *heap;
    size_t heap_n, heap_cap;
    char *enc; // byte-level text of a word (2 bytes per raw byte at most)
    size_t enc_cap;
};

static bool less(const struct bigram *a, const struct bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static bool heap_push(struct bpe_scratch *s, const struct bigram *b)
{
    if (s->heap_n == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 256;
        struct bigram *h = realloc(s->heap, cap * sizeof(*h));
        if (!h) {
            return false;
        }
        s->heap = h;
        s->heap_cap = cap;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!less(b, &s->heap[p])) {
            break;
        }
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = *b;
    return true;
}

static struct bigram heap_pop(struct bpe_scratch *s)
{
    struct bigram top = s->heap[0];
    struct bigram last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && less(&s->heap[c + 1], &s->heap[c])) {
            c++;
        }
        if (!less(&s->heap[c], &last)) {
            break;
        }
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) {
        s->heap[i] = last;
    }
    return top;
}

static bool try_add(const struct imc_vocab *v, struct bpe_scratch *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0) {
        return true;
    }
    struct bigram b = {.left = left, .right = right};
    b.id_left = s->sym[left].id;
    b.id_right = s->sym[right].id;
    if (b.id_left < 0 || b.id_right < 0 ||
        !imc_vocab_merge(v, b.id_left, b.id_right, &b.rank, &b.merged)) {
        return true;
    }
    return heap_push(s, &b);
}

// Byte-level text of raw bytes w[0..n) into s->enc; returns its length.
static size_t encode_word(struct bpe_scratch *s, const unsigned char *w, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        o += imc_utf8_encode(imc_gpt2_byte_cp(w[i]), s->enc + o);
    }
    return o;
}

static enum imc_status emit_fallback(const struct imc_vocab *v, struct bpe_scratch *s,
                                     const unsigned char *w, size_t n, struct imc_ids *out)
{
    size_t e = encode_word(s, w, n);
    for (size_t i = 0; i < e; i++) {
        int32_t id = imc_vocab_find(v, s->enc + i, 1);
        if (id >= 0) {
            IMC_TRY(imc_ids_push(out, id));
        }
    }
    return IMC_OK;
}

static enum imc_status bpe_word(const struct imc_vocab *v, struct bpe_scratch *s,
                                const unsigned char *w, size_t n, struct imc_ids *out)
{
    if (v->ignore_merges) {
        int32_t id = imc_vocab_find(v, s->enc, encode_word(s, w, n));
        if (id >= 0) {
            return imc_ids_push(out, id);
        }
    }
    for (size_t i = 0; i < n; i++) {
        s->sym[i] = (struct sym){v->byte_tok[w[i]], (int32_t)i - 1,
                                 i + 1 < n ? (int32_t)i + 1 : -1, 1};
    }
    s->heap_n = 0;
    for (size_t i = 1; i < n; i++) {
        if (!try_add(v, s, (int32_t)i - 1, (int32_t)i)) {
            return IMC_ERR_NOMEM;
        }
    }
    while (s->heap_n > 0) {
        struct bigram b = heap_pop(s);
        struct sym *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (l->len == 0 || r->len == 0 || l->id != b.id_left || r->id != b.id_right) {
            continue; // outdated
        }
        l->id = b.merged;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) {
            s->sym[r->next].prev = b.left;
        }
        if (!try_add(v, s, l->prev, b.left) || !try_add(v, s, b.left, l->next)) {
            return IMC_ERR_NOMEM;
        }
    }
    size_t off = 0;
    for (int32_t i = 0; i >= 0; i = s->sym[i].next) {
        const struct sym *y = &s->sym[i];
        if (y->id >= 0) {
            IMC_TRY(imc_ids_push(out, y->id));
        } else {
            IMC_TRY(emit_fallback(v, s, w + off, y->len, out));
        }
        off += y->len;
    }
    return IMC_OK;
}

static enum imc_status words(const struct imc_vocab *v, const char *buf,
                             const struct imc_span *sp, size_t n_sp, struct imc_ids *out)
{
    size_t max = 1;
    for (size_t i = 0; i < n_sp; i++) {
        max = sp[i].len > max ? sp[i].len : max;
    }
    struct bpe_scratch s = {0};
    s.sym = malloc(max * sizeof(*s.sym));
    s.enc = malloc(2 * max);
    enum imc_status st = s.sym && s.enc ? IMC_OK : IMC_ERR_NOMEM;
    for (size_t i = 0; i < n_sp && st == IMC_OK; i++) {
        const unsigned char *w = (const unsigned char *)buf + sp[i].off;
        if (sp[i].len == 1 && v->byte_tok[w[0]] >= 0) {
            st = imc_ids_push(out, v->byte_tok[w[0]]); // the common one-byte word
        } else {
            st = bpe_word(v, &s, w, sp[i].len, out);
        }
    }
    free(s.sym);
    free(s.enc);
    free(s.heap);
    return st;
}

enum imc_status imc_bpe_tokenize(const struct imc_vocab *v, const char *text, size_t len,
                                 struct imc_ids *out)
{
    if (len == 0) {
        return IMC_OK;
    }
    if (len > SIZE_MAX / 3) {
        return IMC_ERR_NOMEM;
    }
    char *buf = malloc(3 * len);
    if (!buf) {
        return IMC_ERR_NOMEM;
    }
    size_t n = imc_utf8_sanitize(text, len, buf);
    struct imc_span *sp = NULL;
    size_t n_sp = 0;
    enum imc_status st = imc_pretok_split(v->pretok, buf, n, &sp, &n_sp);
    if (st == IMC_OK) {
        st = words(v, buf, sp, n_sp, out);
    }
    free(sp);
    free(buf);
    return st;
}
