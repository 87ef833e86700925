/*
 * model/vocab: vocabulary construction, lookups, special-token splitting and the tokenize
 * entry point (see vocab.h). GGUF key reading lives in vocab_gguf.c, the tokenizers in
 * tok_bpe.c / tok_spm.c, the pre-tokenizer regexes in pretok.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/unicode.h"
#include "model/vocab_priv.h"

#define TOKEN_MAX ((int64_t)INT32_MAX - 1)

uint64_t imc_vocab_hash(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xBF58476D1CE4E5B9ull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x94D049BB133111EBull;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, s + i, n - i);
    h = (h ^ w) * 0x94D049BB133111EBull;
    return h ^ (h >> 31);
}

enum imc_status imc_ids_push(struct imc_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 256;
        int32_t *a = realloc(ids->a, cap * sizeof(*a));
        if (!a) {
            return IMC_ERR_NOMEM;
        }
        ids->a = a;
        ids->cap = cap;
    }
    ids->a[ids->n++] = id;
    return IMC_OK;
}

int32_t imc_vocab_find(const struct imc_vocab *v, const char *s, size_t len)
{
    size_t i = (size_t)imc_vocab_hash(s, len) & v->hash_mask;
    for (uint32_t e; (e = v->hash[i]) != 0; i = (i + 1) & v->hash_mask) {
        const struct imc_vocab_tok *t = &v->tok[e - 1];
        if (t->len == len && memcmp(t->text, s, len) == 0) {
            return (int32_t)(e - 1);
        }
    }
    return -1;
}

void imc_vocab_desc_init(struct imc_vocab_desc *d)
{
    memset(d, 0, sizeof(*d));
    d->bos_id = d->eos_id = d->unk_id = d->pad_id = -1;
    d->add_bos = d->add_eos = d->add_space_prefix = -1;
}

void imc_vocab_free(struct imc_vocab *v)
{
    if (!v) {
        return;
    }
    imc_pretok_free(v->pretok);
    free(v->source);
    free(v->pre_name);
    free(v->tok);
    free(v->pool);
    free(v->hash);
    free(v->merges);
    free(v->special);
    free(v);
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) {
        c *= 2;
    }
    return c;
}

static uint32_t attr_of_type(int32_t type)
{
    switch (type) {
    case IMC_TOKEN_UNKNOWN: return IMC_TOKATTR_UNKNOWN;
    case IMC_TOKEN_UNUSED: return IMC_TOKATTR_UNUSED;
    case IMC_TOKEN_NORMAL: return IMC_TOKATTR_NORMAL;
    case IMC_TOKEN_CONTROL: return IMC_TOKATTR_CONTROL;
    case IMC_TOKEN_USER_DEFINED: return IMC_TOKATTR_USER_DEFINED;
    case IMC_TOKEN_BYTE: return IMC_TOKATTR_BYTE;
    default: return 0; // undefined
    }
}

// Copies the token texts into one pool (an empty text becomes "[EMPTY_<i>]", as llama.cpp).
static enum imc_status copy_tokens(struct imc_vocab *v, const struct imc_vocab_desc *d)
{
    size_t total = 0;
    for (int64_t i = 0; i < d->n_tokens; i++) {
        if (!d->tokens[i]) {
            IMC_LOG_ERR("%s: tokenizer.ggml.tokens[%lld] is missing", v->source, (long long)i);
            return IMC_ERR_FORMAT;
        }
        size_t l = d->token_lens ? d->token_lens[i] : strlen(d->tokens[i]);
        total += (l ? l : 32) + 1;
    }
    v->tok = calloc((size_t)d->n_tokens, sizeof(*v->tok));
    v->pool = malloc(total ? total : 1);
    if (!v->tok || !v->pool) {
        return IMC_ERR_NOMEM;
    }
    char *p = v->pool;
    for (int64_t i = 0; i < d->n_tokens; i++) {
        size_t l = d->token_lens ? d->token_lens[i] : strlen(d->tokens[i]);
        struct imc_vocab_tok *t = &v->tok[i];
        t->text = p;
        if (l == 0) {
            IMC_LOG_WRN("%s: tokenizer.ggml.tokens[%lld] is empty", v->source, (long long)i);
            l = (size_t)snprintf(p, 32, "[EMPTY_%lld]", (long long)i);
        } else {
            memcpy(p, d->tokens[i], l);
        }
        p[l] = '\0';
        p += l + 1;
        t->len = (uint32_t)l;
        t->score = d->scores ? d->scores[i] : 0.0f;
        t->attr = d->types ? attr_of_type(d->types[i]) : IMC_TOKATTR_NORMAL;
    }
    return IMC_OK;
}

static enum imc_status build_hash(struct imc_vocab *v)
{
    size_t cap = pow2_at_least((size_t)v->n_tokens * 2);
    v->hash = calloc(cap, sizeof(*v->hash));
    if (!v->hash) {
        return IMC_ERR_NOMEM;
    }
    v->hash_mask = cap - 1;
    for (int64_t id = 0; id < v->n_tokens; id++) {
        const struct imc_vocab_tok *t = &v->tok[id];
        size_t i = (size_t)imc_vocab_hash(t->text, t->len) & v->hash_mask;
        for (uint32_t e; (e = v->hash[i]) != 0; i = (i + 1) & v->hash_mask) {
            const struct imc_vocab_tok *o = &v->tok[e - 1];
            if (o->len == t->len && memcmp(o->text, t->text, t->len) == 0) {
                IMC_LOG_ERR("%s: tokenizer.ggml.tokens: duplicate token '%s' at ids %u and %lld",
                            v->source, t->text, e - 1, (long long)id);
                return IMC_ERR_FORMAT;
            }
        }
        v->hash[i] = (uint32_t)id + 1;
    }
    return IMC_OK;
}

static enum imc_status add_merge(struct imc_vocab *v, int64_t rank, const char *m)
{
    const char *sp = m[0] ? strchr(m + 1, ' ') : NULL;
    if (!sp) {
        IMC_LOG_ERR("%s: tokenizer.ggml.merges[%lld]: '%s' is not \"left right\"", v->source,
                    (long long)rank, m);
        return IMC_ERR_FORMAT;
    }
    size_t ll = (size_t)(sp - m), rl = strlen(sp + 1);
    int32_t l = imc_vocab_find(v, m, ll), r = imc_vocab_find(v, sp + 1, rl);
    char *cat = malloc(ll + rl + 1);
    if (!cat) {
        return IMC_ERR_NOMEM;
    }
    memcpy(cat, m, ll);
    memcpy(cat + ll, sp + 1, rl);
    int32_t merged = imc_vocab_find(v, cat, ll + rl);
    free(cat);
    if (l < 0 || r < 0 || merged < 0) {
        IMC_LOG_ERR("%s: tokenizer.ggml.merges[%lld]: '%s': %s is not a token", v->source,
                    (long long)rank, m,
                    l < 0 ? "the left side" : r < 0 ? "the right side" : "the concatenation");
        return IMC_ERR_FORMAT;
    }
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & v->merge_mask;
    while (v->merges[i].key != UINT64_MAX) {
        if (v->merges[i].key == key) {
            return IMC_OK; // a repeated merge keeps its first (lowest) rank
        }
        i = (i + 1) & v->merge_mask;
    }
    v->merges[i] = (struct imc_merge_slot){key, (int32_t)rank, merged};
    return IMC_OK;
}

static enum imc_status build_merges(struct imc_vocab *v, const struct imc_vocab_desc *d)
{
    if (d->n_merges < 0 || d->n_merges > TOKEN_MAX || (d->n_merges > 0 && !d->merges)) {
        IMC_LOG_ERR("%s: tokenizer.ggml.merges: bad count %lld", v->source,
                    (long long)d->n_merges);
        return IMC_ERR_FORMAT;
    }
    size_t cap = pow2_at_least((size_t)d->n_merges * 2);
    v->merges = malloc(cap * sizeof(*v->merges));
    if (!v->merges) {
        return IMC_ERR_NOMEM;
    }
    for (size_t i = 0; i < cap; i++) {
        v->merges[i].key = UINT64_MAX;
    }
    v->merge_mask = cap - 1;
    for (int64_t i = 0; i < d->n_merges; i++) {
        IMC_TRY(add_merge(v, i, d->merges[i]));
    }
    v->n_merges = d->n_merges;
    return IMC_OK;
}

static void find_byte_tokens(struct imc_vocab *v)
{
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n;
        if (v->type == IMC_VOCAB_BPE) {
            n = imc_utf8_encode(imc_gpt2_byte_cp((uint8_t)b), s);
            v->byte_tok[b] = imc_vocab_find(v, s, n);
        } else {
            n = (size_t)snprintf(s, sizeof(s), "<0x%02X>", b);
            v->byte_tok[b] = imc_vocab_find(v, s, n);
            if (v->byte_tok[b] < 0) {
                s[0] = (char)b;
                v->byte_tok[b] = imc_vocab_find(v, s, 1);
            }
        }
    }
}

// One special id: the key's value when set and in range, else the model type's default (which
// becomes -1 when past the vocabulary), as llama.cpp.
static int32_t special_id(const struct imc_vocab *v, const char *key, int64_t given, int32_t dflt)
{
    if (dflt >= v->n_tokens) {
        dflt = -1;
    }
    if (given < 0) {
        return dflt;
    }
    if (given >= v->n_tokens) {
        IMC_LOG_WRN("%s: %s = %lld is past the vocabulary (%lld tokens); using %d", v->source, key,
                    (long long)given, (long long)v->n_tokens, dflt);
        return dflt;
    }
    return (int32_t)given;
}

static enum imc_status set_specials(struct imc_vocab *v, const struct imc_vocab_desc *d,
                                    bool pre_add_bos)
{
    bool spm = v->type == IMC_VOCAB_SPM;
    v->bos = special_id(v, "tokenizer.ggml.bos_token_id", d->bos_id, spm ? 1 : 11);
    v->eos = special_id(v, "tokenizer.ggml.eos_token_id", d->eos_id, spm ? 2 : 11);
    v->unk = special_id(v, "tokenizer.ggml.unknown_token_id", d->unk_id, spm ? 0 : -1);
    v->pad = special_id(v, "tokenizer.ggml.padding_token_id", d->pad_id, -1);
    v->add_bos = d->add_bos >= 0 ? d->add_bos != 0 : (spm || pre_add_bos);
    v->add_eos = d->add_eos >= 0 ? d->add_eos != 0 : false;
    v->add_space_prefix = d->add_space_prefix >= 0 ? d->add_space_prefix != 0 : spm;
    if (v->add_bos && v->bos < 0) {
        IMC_LOG_ERR("%s: tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id "
                    "is not set",
                    v->source);
        return IMC_ERR_FORMAT;
    }
    if (v->add_eos && v->eos < 0) {
        IMC_LOG_ERR("%s: tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id "
                    "is not set",
                    v->source);
        return IMC_ERR_FORMAT;
    }
    return IMC_OK;
}

static enum imc_status build_type(struct imc_vocab *v, const struct imc_vocab_desc *d,
                                  bool *pre_add_bos)
{
    *pre_add_bos = false;
    if (d->model && strcmp(d->model, "gpt2") == 0) {
        v->type = IMC_VOCAB_BPE;
        const char *pre = d->pre;
        if (!pre || !pre[0]) {
            IMC_LOG_WRN("%s: tokenizer.ggml.pre is missing; using 'default' (token ids may "
                        "differ from the model's own tokenizer)",
                        v->source);
            pre = "default";
        }
        v->pre_name = strdup(pre);
        if (!v->pre_name) {
            return IMC_ERR_NOMEM;
        }
        return imc_pretok_init(&v->pretok, pre, v->source, &v->ignore_merges, pre_add_bos);
    }
    if (d->model && strcmp(d->model, "llama") == 0) {
        v->type = IMC_VOCAB_SPM;
        v->pre_name = strdup("");
        return v->pre_name ? IMC_OK : IMC_ERR_NOMEM;
    }
    IMC_LOG_ERR("%s: tokenizer.ggml.model: unsupported tokenizer '%s' (supported: gpt2, llama)",
                v->source, d->model ? d->model : "(missing)");
    return IMC_ERR_UNSUPPORTED;
}

enum imc_status imc_vocab_build(struct imc_vocab **out, const struct imc_vocab_desc *d)
{
    *out = NULL;
    struct imc_vocab *v = calloc(1, sizeof(*v));
    if (!v || !(v->source = strdup(d->source ? d->source : "vocab"))) {
        free(v);
        return IMC_ERR_NOMEM;
    }
    bool pre_add_bos;
    enum imc_status st = build_type(v, d, &pre_add_bos);
    if (st == IMC_OK && (d->n_tokens <= 0 || d->n_tokens > TOKEN_MAX || !d->tokens)) {
        IMC_LOG_ERR("%s: tokenizer.ggml.tokens: bad token count %lld", v->source,
                    (long long)d->n_tokens);
        st = IMC_ERR_FORMAT;
    }
    if (st == IMC_OK) {
        v->n_tokens = d->n_tokens;
        st = copy_tokens(v, d);
    }
    if (st == IMC_OK) {
        st = build_hash(v);
    }
    if (st == IMC_OK && v->type == IMC_VOCAB_BPE) {
        st = build_merges(v, d);
    }
    if (st == IMC_OK) {
        find_byte_tokens(v);
        imc_vocab_mark_special(v);
        st = set_specials(v, d, pre_add_bos);
    }
    if (st == IMC_OK) {
        st = imc_vocab_build_special(v);
    }
    if (st != IMC_OK) {
        imc_vocab_free(v);
        return st;
    }
    *out = v;
    return IMC_OK;
}

static enum imc_status tokenize_frags(const struct imc_vocab *v, const char *text,
                                      const struct imc_frag *f, size_t n_f, struct imc_ids *out)
{
    bool prev_special = true; // SPM: a space before the first fragment and after specials
    for (size_t i = 0; i < n_f; i++) {
        if (f[i].id >= 0) {
            IMC_TRY(imc_ids_push(out, f[i].id));
            prev_special = true;
        } else if (v->type == IMC_VOCAB_BPE) {
            IMC_TRY(imc_bpe_tokenize(v, text + f[i].off, f[i].len, out));
        } else {
            IMC_TRY(imc_spm_tokenize(v, text + f[i].off, f[i].len,
                                     v->add_space_prefix && prev_special, out));
            prev_special = false;
        }
    }
    return IMC_OK;
}

enum imc_status imc_vocab_tokenize(const struct imc_vocab *v, const char *text, size_t len,
                                   bool add_bos, bool parse_special, int32_t **ids,
                                   size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    if (add_bos && v->bos < 0) {
        IMC_LOG_ERR("%s: BOS requested, but the vocabulary has no BOS token", v->source);
        return IMC_ERR_ARG;
    }
    struct imc_ids out = {0};
    struct imc_frag *f = NULL;
    size_t n_f = 0;
    enum imc_status st = imc_vocab_partition(v, text, len, parse_special, &f, &n_f);
    if (st == IMC_OK && add_bos) {
        st = imc_ids_push(&out, v->bos);
    }
    if (st == IMC_OK) {
        st = tokenize_frags(v, text, f, n_f, &out);
    }
    free(f);
    if (st != IMC_OK) {
        free(out.a);
        return st;
    }
    if (out.n == 0) {
        free(out.a);
        out.a = NULL;
    }
    *ids = out.a;
    *n_ids = out.n;
    return IMC_OK;
}

enum imc_vocab_type imc_vocab_type(const struct imc_vocab *v)
{
    return v->type;
}

const char *imc_vocab_pre(const struct imc_vocab *v)
{
    return v->pre_name;
}

int64_t imc_vocab_n_tokens(const struct imc_vocab *v)
{
    return v->n_tokens;
}

int64_t imc_vocab_n_merges(const struct imc_vocab *v)
{
    return v->n_merges;
}

int32_t imc_vocab_bos(const struct imc_vocab *v)
{
    return v->bos;
}

int32_t imc_vocab_eos(const struct imc_vocab *v)
{
    return v->eos;
}

int32_t imc_vocab_unk(const struct imc_vocab *v)
{
    return v->unk;
}

int32_t imc_vocab_pad(const struct imc_vocab *v)
{
    return v->pad;
}

bool imc_vocab_add_bos(const struct imc_vocab *v)
{
    return v->add_bos;
}

bool imc_vocab_add_eos(const struct imc_vocab *v)
{
    return v->add_eos;
}

const char *imc_vocab_token_text(const struct imc_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n_tokens ? v->tok[id].text : NULL;
}

uint32_t imc_vocab_token_attr(const struct imc_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n_tokens ? v->tok[id].attr : 0;
}

static size_t put(char *buf, size_t cap, size_t o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && o + i < cap; i++) {
        buf[o + i] = s[i];
    }
    return o + n;
}

// "<0xXX>" -> its byte, or -1.
static int byte_token_value(const struct imc_vocab_tok *t)
{
    unsigned x;
    if (t->len == 6 && sscanf(t->text, "<0x%2X>", &x) == 1) {
        return (int)x;
    }
    return -1;
}

size_t imc_vocab_token_to_piece(const struct imc_vocab *v, int32_t id, char *buf, size_t cap)
{
    if (id < 0 || id >= v->n_tokens) {
        return 0;
    }
    const struct imc_vocab_tok *t = &v->tok[id];
    size_t o = 0;
    if (t->attr & (IMC_TOKATTR_CONTROL | IMC_TOKATTR_USER_DEFINED | IMC_TOKATTR_UNKNOWN)) {
        o = put(buf, cap, 0, t->text, t->len);
    } else if ((t->attr & IMC_TOKATTR_BYTE) && byte_token_value(t) >= 0) {
        char c = (char)byte_token_value(t);
        o = put(buf, cap, 0, &c, 1);
    } else if ((t->attr & IMC_TOKATTR_NORMAL) && v->type == IMC_VOCAB_SPM) {
        for (size_t i = 0; i < t->len;) {
            bool sp = i + 3 <= t->len && memcmp(t->text + i, "\xE2\x96\x81", 3) == 0;
            o = put(buf, cap, o, sp ? " " : t->text + i, 1);
            i += sp ? 3 : 1;
        }
    } else if (t->attr & IMC_TOKATTR_NORMAL) { // byte-level BPE: code points -> bytes
        for (size_t i = 0; i < t->len;) {
            size_t adv;
            uint32_t cp = imc_utf8_decode(t->text + i, t->len - i, &adv);
            int b = cp == IMC_UTF8_INVALID ? -1 : imc_gpt2_cp_byte(cp);
            char c = (char)b;
            o = b >= 0 ? put(buf, cap, o, &c, 1) : put(buf, cap, o, t->text + i, adv);
            i += adv;
        }
    }
    if (o < cap) {
        buf[o] = '\0';
    }
    return o;
}
