/*
 * model/vocab_special: special tokens (DESIGN.md §4 "Tokenizer"), as llama.cpp treats them:
 *   - control-looking texts (end-of-generation and fill-in-the-middle markers that llama.cpp
 *     recognizes by text) get the CONTROL attribute, gpt-oss's channel markers USER_DEFINED;
 *   - the special list: CONTROL, USER_DEFINED and UNKNOWN tokens, longest text first;
 *   - splitting of raw text: each special token in list order claims its non-overlapping
 *     occurrences, left to right, in the text that no earlier token claimed. USER_DEFINED tokens
 *     are always split out; CONTROL/UNKNOWN ones only with parse_special.
 * Not reproduced: llama.cpp's per-model LSTRIP/RSTRIP attributes (phi-3, jina, modern-bert) and
 * its o200k-harmony "<|end|>" / gemma4 "</s>" adjustments (not our models).
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/vocab_priv.h"

// Texts llama.cpp marks CONTROL: its EOT/EOM/EOG lists and its FIM marker lists.
static const char *const control_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence"
    "\xEF\xBD\x9C>", "<end_of_utterance>", "<|eom_id|>", "<|return|>", "<|call|>", "<|flush|>",
    "<|calls|>", "</s>", "<eos>", "<turn|>", "<|tool_response>", "[e~[",
    // FIM prefix / suffix / middle / pad / repo / file separator
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin"
    "\xEF\xBD\x9C>", "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>",
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole"
    "\xEF\xBD\x9C>", "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>",
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end"
    "\xEF\xBD\x9C>", "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>",
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
};

static const char *const user_defined_names[] = {
    "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>",
};

void imc_vocab_mark_special(struct imc_vocab *v)
{
    for (size_t i = 0; i < sizeof(control_names) / sizeof(control_names[0]); i++) {
        int32_t id = imc_vocab_find(v, control_names[i], strlen(control_names[i]));
        if (id >= 0 && !(v->tok[id].attr & IMC_TOKATTR_CONTROL)) {
            IMC_LOG_DBG("%s: control-looking token %d '%s' marked CONTROL", v->source, id,
                        v->tok[id].text);
            v->tok[id].attr |= IMC_TOKATTR_CONTROL;
        }
    }
    for (size_t i = 0; i < sizeof(user_defined_names) / sizeof(user_defined_names[0]); i++) {
        int32_t id = imc_vocab_find(v, user_defined_names[i], strlen(user_defined_names[i]));
        if (id >= 0) {
            v->tok[id].attr = IMC_TOKATTR_USER_DEFINED;
        }
    }
}

static int cmp_special(const void *a, const void *b, void *ctx)
{
    const struct imc_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (v->tok[x].len != v->tok[y].len) {
        return v->tok[x].len > v->tok[y].len ? -1 : 1;
    }
    return (x > y) - (x < y);
}

enum imc_status imc_vocab_build_special(struct imc_vocab *v)
{
    const uint32_t mask = IMC_TOKATTR_CONTROL | IMC_TOKATTR_USER_DEFINED | IMC_TOKATTR_UNKNOWN;
    size_t n = 0;
    for (int64_t i = 0; i < v->n_tokens; i++) {
        n += (v->tok[i].attr & mask) != 0;
    }
    v->special = malloc((n ? n : 1) * sizeof(*v->special));
    if (!v->special) {
        return IMC_ERR_NOMEM;
    }
    v->n_special = 0;
    for (int64_t i = 0; i < v->n_tokens; i++) {
        if (v->tok[i].attr & mask) {
            v->special[v->n_special++] = (int32_t)i;
        }
    }
    qsort_r(v->special, v->n_special, sizeof(*v->special), cmp_special, v);
    return IMC_OK;
}

struct frag_vec {
    struct imc_frag *a;
    size_t n, cap;
};

static bool frag_push(struct frag_vec *f, size_t off, size_t len, int32_t id)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct imc_frag *a = realloc(f->a, cap * sizeof(*a));
        if (!a) {
            return false;
        }
        f->a = a;
        f->cap = cap;
    }
    f->a[f->n++] = (struct imc_frag){off, len, id};
    return true;
}

// Splits every text fragment of cur at the occurrences of token id into next; returns false on
// allocation failure. *hit tells whether anything was split.
static bool split_by(const struct imc_vocab *v, int32_t id, const char *text,
                     const struct frag_vec *cur, struct frag_vec *next, bool *hit)
{
    const char *t = v->tok[id].text;
    size_t tl = v->tok[id].len;
    next->n = 0;
    *hit = false;
    for (size_t i = 0; i < cur->n; i++) {
        struct imc_frag f = cur->a[i];
        size_t pos = f.off, end = f.off + f.len;
        while (f.id < 0 && end - pos >= tl) {
            const char *m = memmem(text + pos, end - pos, t, tl);
            if (!m) {
                break;
            }
            size_t at = (size_t)(m - text);
            if ((at > pos && !frag_push(next, pos, at - pos, -1)) || !frag_push(next, at, tl, id)) {
                return false;
            }
            *hit = true;
            pos = at + tl;
        }
        if (f.id >= 0 ? !frag_push(next, f.off, f.len, f.id)
                      : (pos < end && !frag_push(next, pos, end - pos, -1))) {
            return false;
        }
    }
    return true;
}

enum imc_status imc_vocab_partition(const struct imc_vocab *v, const char *text, size_t len,
                                    bool parse_special, struct imc_frag **frags, size_t *n_frags)
{
    struct frag_vec cur = {0}, next = {0};
    *frags = NULL;
    *n_frags = 0;
    if (len > 0 && !frag_push(&cur, 0, len, -1)) {
        return IMC_ERR_NOMEM;
    }
    // Byte pairs present in the text: a cheap filter before searching for each special token.
    uint64_t *pairs = calloc(65536 / 64, sizeof(*pairs));
    bool bytes[256] = {0};
    if (!pairs) {
        free(cur.a);
        return IMC_ERR_NOMEM;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned a = (unsigned char)text[i];
        bytes[a] = true;
        if (i + 1 < len) {
            unsigned p = a << 8 | (unsigned char)text[i + 1];
            pairs[p >> 6] |= 1ull << (p & 63);
        }
    }
    enum imc_status st = IMC_OK;
    for (size_t k = 0; k < v->n_special && len > 0; k++) {
        const struct imc_vocab_tok *t = &v->tok[v->special[k]];
        if (!parse_special && (t->attr & (IMC_TOKATTR_CONTROL | IMC_TOKATTR_UNKNOWN))) {
            continue;
        }
        unsigned a = (unsigned char)t->text[0];
        unsigned p = t->len >= 2 ? (a << 8 | (unsigned char)t->text[1]) : 0;
        if (t->len > len || !bytes[a] || (t->len >= 2 && !(pairs[p >> 6] >> (p & 63) & 1))) {
            continue;
        }
        bool hit;
        if (!split_by(v, v->special[k], text, &cur, &next, &hit)) {
            st = IMC_ERR_NOMEM;
            break;
        }
        if (hit) {
            struct frag_vec tmp = cur;
            cur = next;
            next = tmp;
        }
    }
    free(pairs);
    free(next.a);
    if (st != IMC_OK) {
        free(cur.a);
        return st;
    }
    *frags = cur.a;
    *n_frags = cur.n;
    return IMC_OK;
}
