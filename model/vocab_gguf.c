/*
 * model/vocab_gguf: reads the tokenizer.ggml.* keys of a GGUF file into a struct
 * imc_vocab_desc and builds the vocabulary (see vocab.h for the keys and defaults). Every
 * message names the file and the key.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/gguf.h"
#include "model/vocab_priv.h"

struct loaded {
    const char **tokens;
    uint32_t *token_lens;
    float *scores;
    int32_t *types;
    const char **merges;
};

static void loaded_free(struct loaded *l)
{
    free(l->tokens);
    free(l->token_lens);
    free(l->scores);
    free(l->types);
    free(l->merges);
}

// Key index of an array of element type et (or et2), or -1 when absent; -2 after logging a type
// error.
static int64_t find_array(const struct imc_gguf *g, const char *key, enum imc_gguf_vtype et,
                          enum imc_gguf_vtype et2)
{
    int64_t k = imc_gguf_find_key(g, key);
    if (k < 0) {
        return -1;
    }
    if (imc_gguf_kv_type(g, k) != IMC_GGUF_ARRAY ||
        (imc_gguf_arr_type(g, k) != et && imc_gguf_arr_type(g, k) != et2)) {
        IMC_LOG_ERR("%s: %s: expected an array of type %d, found type %d", imc_gguf_path(g), key,
                    (int)et, (int)(imc_gguf_kv_type(g, k) == IMC_GGUF_ARRAY
                                       ? imc_gguf_arr_type(g, k)
                                       : imc_gguf_kv_type(g, k)));
        return -2;
    }
    return k;
}

static enum imc_status read_strings(const struct imc_gguf *g, int64_t k, const char ***out,
                                    uint32_t **lens, uint64_t *n_out)
{
    uint64_t n = imc_gguf_arr_n(g, k);
    *n_out = n;
    *out = malloc((n ? n : 1) * sizeof(**out));
    if (lens) {
        *lens = malloc((n ? n : 1) * sizeof(**lens));
    }
    if (!*out || (lens && !*lens)) {
        return IMC_ERR_NOMEM;
    }
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len = 0;
        (*out)[j] = imc_gguf_arr_str(g, k, j, &len);
        if (lens) {
            if (len > UINT32_MAX) {
                IMC_LOG_ERR("%s: %s[%llu]: string of %llu bytes", imc_gguf_path(g),
                            imc_gguf_key(g, k), (unsigned long long)j, (unsigned long long)len);
                return IMC_ERR_FORMAT;
            }
            (*lens)[j] = (uint32_t)len;
        }
    }
    return IMC_OK;
}

// Copies the first n entries of a 4-byte numeric array key (f32 or i32) into a new array.
static enum imc_status read_numeric(const struct imc_gguf *g, const char *key, int64_t n,
                                    bool to_float, void **out)
{
    *out = NULL;
    int64_t k = find_array(g, key, to_float ? IMC_GGUF_FLOAT32 : IMC_GGUF_INT32, IMC_GGUF_INT32);
    if (k == -1) {
        return IMC_OK;
    }
    if (k < 0) {
        return IMC_ERR_FORMAT;
    }
    if (imc_gguf_arr_n(g, k) < (uint64_t)n) {
        IMC_LOG_ERR("%s: %s: %llu entries for %lld tokens", imc_gguf_path(g), key,
                    (unsigned long long)imc_gguf_arr_n(g, k), (long long)n);
        return IMC_ERR_FORMAT;
    }
    const unsigned char *src = imc_gguf_arr_data(g, k);
    bool is_int = imc_gguf_arr_type(g, k) == IMC_GGUF_INT32;
    void *dst = malloc((size_t)n * 4 + 4);
    if (!dst) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t iv = 0;
        float fv = 0.0f;
        memcpy(is_int ? (void *)&iv : (void *)&fv, src + 4 * i, 4); // may be unaligned
        if (to_float) {
            ((float *)dst)[i] = is_int ? (float)iv : fv;
        } else {
            ((int32_t *)dst)[i] = iv;
        }
    }
    *out = dst;
    return IMC_OK;
}

// Optional integer key into *out (left as is when absent); a present key of a wrong type or
// negative value is an error.
static enum imc_status read_id(const struct imc_gguf *g, const char *key, int64_t *out)
{
    if (imc_gguf_find_key(g, key) < 0) {
        return IMC_OK;
    }
    int64_t v;
    if (!imc_gguf_get_i64(g, key, &v) || v < 0) {
        IMC_LOG_ERR("%s: %s: expected a non-negative integer token id", imc_gguf_path(g), key);
        return IMC_ERR_FORMAT;
    }
    *out = v;
    return IMC_OK;
}

static enum imc_status read_flag(const struct imc_gguf *g, const char *key, int *out)
{
    if (imc_gguf_find_key(g, key) < 0) {
        return IMC_OK;
    }
    bool b;
    if (!imc_gguf_get_bool(g, key, &b)) {
        IMC_LOG_ERR("%s: %s: expected a bool", imc_gguf_path(g), key);
        return IMC_ERR_FORMAT;
    }
    *out = b;
    return IMC_OK;
}

static enum imc_status read_token_arrays(const struct imc_gguf *g, struct imc_vocab_desc *d,
                                         struct loaded *l)
{
    const char *path = imc_gguf_path(g);
    int64_t k = find_array(g, "tokenizer.ggml.tokens", IMC_GGUF_STRING, IMC_GGUF_STRING);
    if (k < 0) {
        if (k == -1) {
            IMC_LOG_ERR("%s: tokenizer.ggml.tokens: missing", path);
        }
        return IMC_ERR_FORMAT;
    }
    uint64_t n = imc_gguf_arr_n(g, k);
    if (n == 0 || n >= INT32_MAX) {
        IMC_LOG_ERR("%s: tokenizer.ggml.tokens: %llu tokens (expected 1 to %d)", path,
                    (unsigned long long)n, INT32_MAX - 1);
        return IMC_ERR_FORMAT;
    }
    IMC_TRY(read_strings(g, k, &l->tokens, &l->token_lens, &n));
    d->n_tokens = (int64_t)n;
    d->tokens = l->tokens;
    d->token_lens = l->token_lens;
    IMC_TRY(read_numeric(g, "tokenizer.ggml.scores", d->n_tokens, true, (void **)&l->scores));
    IMC_TRY(read_numeric(g, "tokenizer.ggml.token_type", d->n_tokens, false,
                         (void **)&l->types));
    d->scores = l->scores;
    d->types = l->types;
    if (strcmp(d->model, "gpt2") != 0) {
        return IMC_OK; // merges belong to BPE only
    }
    k = find_array(g, "tokenizer.ggml.merges", IMC_GGUF_STRING, IMC_GGUF_STRING);
    if (k == -2) {
        return IMC_ERR_FORMAT;
    }
    if (k == -1) {
        if (d->pre && strcmp(d->pre, "kimi-k2") == 0) {
            return IMC_OK; // llama.cpp accepts kimi-k2 without merges
        }
        IMC_LOG_ERR("%s: tokenizer.ggml.merges: missing (required by the gpt2 tokenizer)", path);
        return IMC_ERR_FORMAT;
    }
    IMC_TRY(read_strings(g, k, &l->merges, NULL, &n));
    d->n_merges = (int64_t)n;
    d->merges = l->merges;
    return IMC_OK;
}

static enum imc_status read_desc(const struct imc_gguf *g, struct imc_vocab_desc *d,
                                 struct loaded *l)
{
    d->source = imc_gguf_path(g);
    d->model = imc_gguf_get_str(g, "tokenizer.ggml.model");
    if (!d->model) {
        IMC_LOG_ERR("%s: tokenizer.ggml.model: missing (the file has no tokenizer)", d->source);
        return IMC_ERR_FORMAT;
    }
    d->pre = imc_gguf_get_str(g, "tokenizer.ggml.pre");
    if (!d->pre && imc_gguf_find_key(g, "tokenizer.ggml.pre") >= 0) {
        IMC_LOG_ERR("%s: tokenizer.ggml.pre: expected a string", d->source);
        return IMC_ERR_FORMAT;
    }
    IMC_TRY(read_token_arrays(g, d, l));
    IMC_TRY(read_id(g, "tokenizer.ggml.bos_token_id", &d->bos_id));
    IMC_TRY(read_id(g, "tokenizer.ggml.eos_token_id", &d->eos_id));
    IMC_TRY(read_id(g, "tokenizer.ggml.unknown_token_id", &d->unk_id));
    IMC_TRY(read_id(g, "tokenizer.ggml.padding_token_id", &d->pad_id));
    IMC_TRY(read_flag(g, "tokenizer.ggml.add_bos_token", &d->add_bos));
    IMC_TRY(read_flag(g, "tokenizer.ggml.add_eos_token", &d->add_eos));
    IMC_TRY(read_flag(g, "tokenizer.ggml.add_space_prefix", &d->add_space_prefix));
    return IMC_OK;
}

enum imc_status imc_vocab_load(struct imc_vocab **out, const struct imc_gguf *g)
{
    *out = NULL;
    struct imc_vocab_desc d;
    struct loaded l = {0};
    imc_vocab_desc_init(&d);
    enum imc_status st = read_desc(g, &d, &l);
    if (st == IMC_OK) {
        st = imc_vocab_build(out, &d);
    }
    loaded_free(&l);
    return st;
}
