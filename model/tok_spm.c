/*
 * model/tok_spm: SentencePiece-style BPE of one raw-text fragment (DESIGN.md §4 "Tokenizer"), as
 * llama.cpp's llm_tokenizer_spm_session: spaces become U+2581 (optionally one is put first), the
 * text is cut into UTF-8 characters by their lead byte (no validation), and the adjacent pair
 * whose concatenation is the token of highest score is merged first (ties: leftmost), until no
 * adjacent pair forms a token. A symbol that is no token is emitted as its bytes' <0xXX> tokens
 * (or single-byte tokens; the unknown token when neither exists).
 *
 * Merged symbols are always tokens (a pair is queued only when its text is one), so llama.cpp's
 * re-segmentation of non-token symbols reduces to the byte fallback of single characters.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/unicode.h"
#include "model/vocab_priv.h"

struct sym {
    uint32_t off, n; // bytes of the escaped text; n = 0 once merged into the left neighbour
    int32_t prev, next;
};

struct bigram {
    float score;
    int32_t left, right;
    uint32_t size;
};

struct spm {
    const struct imc_vocab *v;
    const char *text;
    struct sym *sym;
    struct bigram *heap;
    size_t heap_n, heap_cap;
};

static bool before(const struct bigram *a, const struct bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static bool heap_push(struct spm *s, const struct bigram *b)
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
    while (i > 0 && before(b, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = *b;
    return true;
}

static struct bigram heap_pop(struct spm *s)
{
    struct bigram top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (size_t c = 1; c < n; c = 2 * i + 1) {
        if (c + 1 < n && before(&s->heap[c + 1], &s->heap[c])) {
            c++;
        }
        if (!before(&s->heap[c], &last)) {
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

static bool try_add(struct spm *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0) {
        return true;
    }
    uint32_t size = s->sym[left].n + s->sym[right].n;
    int32_t id = imc_vocab_find(s->v, s->text + s->sym[left].off, size);
    if (id < 0) {
        return true;
    }
    struct bigram b = {s->v->tok[id].score, left, right, size};
    return heap_push(s, &b);
}

static enum imc_status emit(const struct spm *s, const struct sym *y, struct imc_ids *out)
{
    const struct imc_vocab *v = s->v;
    int32_t id = imc_vocab_find(v, s->text + y->off, y->n);
    if (id >= 0) {
        return imc_ids_push(out, id);
    }
    for (uint32_t j = 0; j < y->n; j++) {
        unsigned char b = (unsigned char)s->text[y->off + j];
        int32_t t = v->byte_tok[b] >= 0 ? v->byte_tok[b] : v->unk;
        if (t < 0) {
            IMC_LOG_ERR("%s: SPM byte fallback: no token <0x%02X> and no unknown token",
                        v->source, b);
            return IMC_ERR_FORMAT;
        }
        IMC_TRY(imc_ids_push(out, t));
    }
    return IMC_OK;
}

// Escapes text (optional leading space, ' ' -> U+2581) into a new buffer.
static char *escape(const char *text, size_t len, bool space_prefix, size_t *n_out)
{
    size_t n = space_prefix ? 3 : 0;
    for (size_t i = 0; i < len; i++) {
        n += text[i] == ' ' ? 3 : 1;
    }
    char *e = malloc(n ? n : 1);
    if (!e) {
        return NULL;
    }
    size_t o = 0;
    if (space_prefix) {
        memcpy(e, "\xE2\x96\x81", 3);
        o = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(e + o, "\xE2\x96\x81", 3);
            o += 3;
        } else {
            e[o++] = text[i];
        }
    }
    *n_out = n;
    return e;
}

static enum imc_status merge_all(struct spm *s, size_t n_sym)
{
    for (size_t i = 1; i < n_sym; i++) {
        if (!try_add(s, (int32_t)i - 1, (int32_t)i)) {
            return IMC_ERR_NOMEM;
        }
    }
    while (s->heap_n > 0) {
        struct bigram b = heap_pop(s);
        struct sym *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) {
            continue; // outdated
        }
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) {
            s->sym[r->next].prev = b.left;
        }
        if (!try_add(s, l->prev, b.left) || !try_add(s, b.left, l->next)) {
            return IMC_ERR_NOMEM;
        }
    }
    return IMC_OK;
}

enum imc_status imc_spm_tokenize(const struct imc_vocab *v, const char *text, size_t len,
                                 bool space_prefix, struct imc_ids *out)
{
    if (len > (SIZE_MAX - 3) / 3 || len > UINT32_MAX / 3 - 3) {
        IMC_LOG_ERR("%s: SPM fragment of %zu bytes is too long", v->source, len);
        return IMC_ERR_ARG;
    }
    size_t n = 0;
    char *e = escape(text, len, space_prefix, &n);
    struct spm s = {.v = v, .text = e};
    s.sym = malloc((n ? n : 1) * sizeof(*s.sym));
    enum imc_status st = e && s.sym ? IMC_OK : IMC_ERR_NOMEM;
    size_t n_sym = 0;
    for (size_t off = 0; st == IMC_OK && off < n; n_sym++) {
        size_t l = imc_utf8_len((unsigned char)e[off]);
        l = l < n - off ? l : n - off;
        s.sym[n_sym] = (struct sym){(uint32_t)off, (uint32_t)l, (int32_t)n_sym - 1,
                                    off + l < n ? (int32_t)n_sym + 1 : -1};
        off += l;
    }
    if (st == IMC_OK) {
        st = merge_all(&s, n_sym);
    }
    for (int32_t i = 0; st == IMC_OK && n_sym > 0 && i >= 0; i = s.sym[i].next) {
        st = emit(&s, &s.sym[i], out);
    }
    free(s.heap);
    free(s.sym);
    free(e);
    return st;
}
