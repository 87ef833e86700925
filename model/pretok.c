/*
 * model/pretok: BPE pre-tokenizers (DESIGN.md §4 "Tokenizer"). Each pre-tokenizer is an ordered
 * list of regexes, as llama.cpp's llm_tokenizer_bpe lists them (HF "Split ... Isolated"
 * sequences): every regex splits every current piece into its matches and the text between
 * them, and the next regex works on the pieces. Regexes run with PCRE2 (UTF + UCP, JIT when
 * available) on strict UTF-8; each piece is its own subject, so lookaheads and '$' stop at the
 * piece's end, as in llama.cpp and HF.
 *
 * Where llama.cpp replaces the tokenizer.json regex by a hand-written splitter (gpt2, llama3,
 * kimi-k2), the regex below states what that splitter does (case-insensitive contractions as
 * explicit [sS] classes; kimi-k2's Han ranges as llama.cpp's unicode_cpt_is_han).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/unicode.h"
#include "model/vocab_priv.h"

#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"

static const char *const re_gpt2[] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    NULL,
};

static const char *const re_default[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
    NULL,
};

static const char *const re_llama3[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                 "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

static const char *const re_qwen2[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                 "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

// CJK ideographs U+4E00-U+9FA5, U+0800-U+4E00 (sic, as in the model's tokenizer.json), Hangul.
#define DS_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

static const char *const re_deepseek_llm[] = {
    "[\\r\\n]",
    // cased letters (the tokenizer.json class, written as code points)
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
    "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"
    "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}"
    "\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}"
    "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
    "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}"
    "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}"
    "\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}"
    "\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}"
    "\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}"
    "\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"
    "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}"
    "\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    DS_CJK,
    "\\p{N}+",
    NULL,
};

static const char *const re_deepseek_coder[] = {
    "[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", DS_CJK, "\\p{N}", NULL,
};

static const char *const re_deepseek3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?"
    "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

// llama.cpp's unicode_cpt_is_han ranges.
#define HAN                                                                                        \
    "\\x{4E00}-\\x{9FFF}\\x{3400}-\\x{4DBF}\\x{20000}-\\x{2A6DF}\\x{2A700}-\\x{2B73F}"              \
    "\\x{2B740}-\\x{2B81F}\\x{2B820}-\\x{2CEAF}\\x{2CEB0}-\\x{2EBEF}\\x{F900}-\\x{FAFF}"            \
    "\\x{2F800}-\\x{2FA1F}"

// llama.cpp's kimi-k2 splitter: Han runs; non-Han letter runs with one optional leading
// non-letter/non-digit/non-newline and an optional contraction; digits by 3; the llama3 tail.
static const char *const re_kimi_k2[] = {
    "[" HAN "]+|[^\\r\\n\\p{L}\\p{N}]?[^\\P{L}" HAN "]+" CONTRACTIONS "?|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

struct pre_def {
    const char *const *names;
    const char *const *re;
    bool ignore_merges;
    bool add_bos;
};

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

// Names and settings as llama.cpp's llama_vocab::impl::load maps them.
static const struct pre_def pre_defs[] = {
    {NAMES("default"), re_default, false, false},
    {NAMES("gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
           "a.x-4.0", "mellum", "modern-bert", "exaone4", "mpt", "olmo", "jais", "trillion",
           "granite-docling"),
     re_gpt2, false, false},
    {NAMES("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
           "lfm2", "jina-v5-nano"),
     re_llama3, true, true},
    {NAMES("dbrx", "smaug-bpe"), re_llama3, false, false},
    {NAMES("deepseek-llm"), re_deepseek_llm, false, false},
    {NAMES("deepseek-coder"), re_deepseek_coder, false, false},
    {NAMES("deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"), re_deepseek3, false, false},
    {NAMES("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan",
           "solar-open"),
     re_qwen2, false, false},
    {NAMES("kimi-k2"), re_kimi_k2, false, false},
};

struct imc_pretok {
    size_t n;
    pcre2_code **code;
};

static const struct pre_def *find_def(const char *name)
{
    for (size_t i = 0; i < sizeof(pre_defs) / sizeof(pre_defs[0]); i++) {
        for (const char *const *n = pre_defs[i].names; *n; n++) {
            if (strcmp(*n, name) == 0) {
                return &pre_defs[i];
            }
        }
    }
    return NULL;
}

void imc_pretok_free(struct imc_pretok *p)
{
    if (!p) {
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        pcre2_code_free(p->code[i]);
    }
    free(p->code);
    free(p);
}

enum imc_status imc_pretok_init(struct imc_pretok **out, const char *name, const char *source,
                                bool *ignore_merges, bool *add_bos)
{
    *out = NULL;
    const struct pre_def *d = find_def(name);
    if (!d) {
        IMC_LOG_ERR("%s: tokenizer.ggml.pre: unknown pre-tokenizer '%s' (supported: default, "
                    "gpt-2, llama-bpe, deepseek-llm, deepseek-coder, deepseek-v3, qwen2, kimi-k2 "
                    "and llama.cpp's aliases of these)",
                    source, name);
        return IMC_ERR_UNSUPPORTED;
    }
    struct imc_pretok *p = calloc(1, sizeof(*p));
    size_t n = 0;
    while (d->re[n]) {
        n++;
    }
    if (!p || !(p->code = calloc(n, sizeof(*p->code)))) {
        free(p);
        return IMC_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int err;
        PCRE2_SIZE erroff;
        p->code[i] = pcre2_compile((PCRE2_SPTR)d->re[i], PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &erroff,
                                   NULL);
        if (!p->code[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof(msg));
            IMC_LOG_ERR("pre-tokenizer '%s' regex %zu: PCRE2 error at %zu: %s", name, i,
                        (size_t)erroff, (const char *)msg);
            p->n = i;
            imc_pretok_free(p);
            return IMC_ERR_INTERNAL;
        }
        (void)pcre2_jit_compile(p->code[i], PCRE2_JIT_COMPLETE); // interpreter when unavailable
    }
    p->n = n;
    *ignore_merges = d->ignore_merges;
    *add_bos = d->add_bos;
    *out = p;
    return IMC_OK;
}

struct span_vec {
    struct imc_span *a;
    size_t n, cap;
};

static bool span_push(struct span_vec *v, size_t off, size_t len)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        struct imc_span *a = realloc(v->a, cap * sizeof(*a));
        if (!a) {
            return false;
        }
        v->a = a;
        v->cap = cap;
    }
    v->a[v->n++] = (struct imc_span){off, len};
    return true;
}

// Splits one piece by one regex, appending matches and the gaps between them to out.
static enum imc_status split_piece(const pcre2_code *re, pcre2_match_data *md, const char *text,
                                   struct imc_span s, struct span_vec *out)
{
    PCRE2_SPTR subj = (PCRE2_SPTR)(text + s.off);
    size_t pos = 0, last = 0;
    while (pos < s.len) {
        int rc = pcre2_match(re, subj, s.len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) { // very long run: the interpreter uses the heap
            rc = pcre2_match(re, subj, s.len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        }
        if (rc == PCRE2_ERROR_NOMATCH) {
            break;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            IMC_LOG_ERR("pre-tokenizer: regex match failed on a %zu-byte piece: %s", s.len,
                        (const char *)msg);
            return IMC_ERR_INTERNAL;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { // empty match: step over one character
            pos = ms + imc_utf8_len((unsigned char)subj[ms]);
            continue;
        }
        if ((ms > last && !span_push(out, s.off + last, ms - last)) ||
            !span_push(out, s.off + ms, me - ms)) {
            return IMC_ERR_NOMEM;
        }
        last = pos = me;
    }
    if (last < s.len && !span_push(out, s.off + last, s.len - last)) {
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

enum imc_status imc_pretok_split(const struct imc_pretok *p, const char *text, size_t len,
                                 struct imc_span **spans, size_t *n_spans)
{
    *spans = NULL;
    *n_spans = 0;
    struct span_vec cur = {0}, next = {0};
    enum imc_status st = IMC_OK;
    if (len > 0 && !span_push(&cur, 0, len)) {
        return IMC_ERR_NOMEM;
    }
    for (size_t r = 0; r < p->n && cur.n > 0; r++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->code[r], NULL);
        if (!md) {
            st = IMC_ERR_NOMEM;
            break;
        }
        next.n = 0;
        for (size_t i = 0; i < cur.n && st == IMC_OK; i++) {
            st = split_piece(p->code[r], md, text, cur.a[i], &next);
        }
        pcre2_match_data_free(md);
        if (st != IMC_OK) {
            break;
        }
        struct span_vec t = cur;
        cur = next;
        next = t;
    }
    free(next.a);
    if (st != IMC_OK) {
        free(cur.a);
        return st;
    }
    *spans = cur.a;
    *n_spans = cur.n;
    return IMC_OK;
}
