/*
 * tests/gguf/test_vocabfiles: the vocabulary GGUFs of llama.cpp's tokenizer tests
 * ($IMC_SHARED_DIR/data/tokenizer/ggml-vocab-*.gguf; absent: a failure under CI, a skip
 * elsewhere) open, hold the token counts of the published models and known tokens, give fast
 * access to all strings, and survive a copy through imc_gguf_set_from + imc_gguf_write key for
 * key.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "model/gguf.h"
#include "model/gguf_priv.h"
#include "tests/check.h"

struct vocab_file {
    const char *file;
    uint64_t n_tokens; // vocabulary size of the published model
    uint64_t n_merges; // 0: not checked
    uint32_t tok_id;   // a token whose text is known
    const char *tok;
};

static const struct vocab_file files[] = {
    {"ggml-vocab-gpt-2.gguf", 50257, 50000, 50256, "<|endoftext|>"},
    {"ggml-vocab-llama-spm.gguf", 32000, 0, 1, "<s>"},
    {"ggml-vocab-deepseek-llm.gguf", 102400, 0, 0, NULL},
    {"ggml-vocab-deepseek-coder.gguf", 32256, 0, 0, NULL},
};

// Keys i of a and j of b have the same type and value (strings compared with their lengths).
static bool same_kv(const struct imc_gguf *a, int64_t i, const struct imc_gguf *b, int64_t j)
{
    enum imc_gguf_vtype t = imc_gguf_kv_type(a, i);
    if (t != imc_gguf_kv_type(b, j) || strcmp(imc_gguf_key(a, i), imc_gguf_key(b, j)) != 0) {
        return false;
    }
    if (t == IMC_GGUF_STRING) {
        return imc_gguf_str_len(a, i) == imc_gguf_str_len(b, j) &&
               memcmp(imc_gguf_str(a, i), imc_gguf_str(b, j), imc_gguf_str_len(a, i)) == 0;
    }
    if (t != IMC_GGUF_ARRAY) {
        return memcmp(imc_gguf_scalar_bytes(a, i), imc_gguf_scalar_bytes(b, j),
                      imc_gguf_scalar_size(t)) == 0;
    }
    enum imc_gguf_vtype et = imc_gguf_arr_type(a, i);
    uint64_t n = imc_gguf_arr_n(a, i);
    if (et != imc_gguf_arr_type(b, j) || n != imc_gguf_arr_n(b, j)) {
        return false;
    }
    if (et != IMC_GGUF_STRING) {
        return n == 0 || memcmp(imc_gguf_arr_data(a, i), imc_gguf_arr_data(b, j),
                                n * imc_gguf_scalar_size(et)) == 0;
    }
    for (uint64_t k = 0; k < n; k++) {
        uint64_t la, lb;
        const char *sa = imc_gguf_arr_str(a, i, k, &la), *sb = imc_gguf_arr_str(b, j, k, &lb);
        if (la != lb || memcmp(sa, sb, la) != 0) {
            return false;
        }
    }
    return true;
}

static void check_copy(const struct imc_gguf *g, const char *tmp)
{
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    for (int64_t i = 0; i < imc_gguf_n_kv(g); i++) {
        CHECK(imc_gguf_set_from(w, g, i) == IMC_OK, "set_from %s", imc_gguf_key(g, i));
    }
    CHECK(imc_gguf_write(w, tmp) == IMC_OK, "write %s", tmp);
    imc_gguf_writer_free(w);
    struct imc_gguf *c = NULL;
    CHECK(imc_gguf_open(&c, tmp) == IMC_OK, "reopen copy");
    if (!c) {
        return;
    }
    CHECK(imc_gguf_n_kv(c) == imc_gguf_n_kv(g), "key count");
    int64_t bad = 0;
    for (int64_t i = 0; i < imc_gguf_n_kv(g) && i < imc_gguf_n_kv(c); i++) {
        bad += !same_kv(g, i, c, i);
    }
    CHECK(bad == 0, "%" PRId64 " keys differ after the copy", bad);
    imc_gguf_free(c);
    unlink(tmp);
}

static void check_file(const char *dir, const struct vocab_file *f, const char *tmp)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/%s", dir, f->file);
    double t0 = imc_clock_now();
    struct imc_gguf *g = NULL;
    CHECK(imc_gguf_open(&g, path) == IMC_OK, "open %s", path);
    if (!g) {
        return;
    }
    double t1 = imc_clock_now();
    int64_t k = imc_gguf_find_key(g, "tokenizer.ggml.tokens");
    CHECK(k >= 0 && imc_gguf_kv_type(g, k) == IMC_GGUF_ARRAY &&
              imc_gguf_arr_type(g, k) == IMC_GGUF_STRING && imc_gguf_arr_n(g, k) == f->n_tokens,
          "%s: %" PRIu64 " tokens expected", f->file, f->n_tokens);
    uint64_t total = 0, n = k >= 0 ? imc_gguf_arr_n(g, k) : 0;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len;
        const char *s = imc_gguf_arr_str(g, k, j, &len);
        total += len + (s[len] == '\0' ? 0 : UINT64_C(1) << 40);
    }
    double t2 = imc_clock_now();
    CHECK(total > n && total < (UINT64_C(1) << 40), "%s: strings not NUL-terminated", f->file);
    if (f->tok && k >= 0 && f->tok_id < n) {
        CHECK(strcmp(imc_gguf_arr_str(g, k, f->tok_id, NULL), f->tok) == 0, "%s: token %u", f->file,
              f->tok_id);
    }
    if (f->n_merges) {
        int64_t m = imc_gguf_find_key(g, "tokenizer.ggml.merges");
        CHECK(m >= 0 && imc_gguf_arr_n(g, m) == f->n_merges, "%s: merges", f->file);
    }
    int64_t tt = imc_gguf_find_key(g, "tokenizer.ggml.token_type");
    CHECK(tt >= 0 && imc_gguf_arr_type(g, tt) == IMC_GGUF_INT32 && imc_gguf_arr_n(g, tt) == n,
          "%s: token types", f->file);
    uint32_t vs = 0;
    if (imc_gguf_get_u32(g, "llama.vocab_size", &vs)) {
        CHECK(vs == f->n_tokens, "%s: llama.vocab_size %u", f->file, vs);
    }
    CHECK(imc_gguf_n_tensors(g) == 0 && imc_gguf_version(g) == 3, "%s: no tensors", f->file);
    printf("%s: open %.1f ms, %" PRIu64 " strings (%" PRIu64 " bytes) walked in %.2f ms\n", f->file,
           (t1 - t0) * 1e3, n, total, (t2 - t1) * 1e3);
    CHECK(t2 - t0 < 2.0, "%s: open + walk took %.2f s", f->file, t2 - t0);
    check_copy(g, tmp);
    imc_gguf_free(g);
}

int main(void)
{
    char dir[1024];
    int rc = check_shared_dir("data/tokenizer", dir, sizeof(dir));
    if (rc != 0) {
        return rc;
    }
    char tmp[] = "/tmp/imc_gguf_vocab_XXXXXX";
    if (!mkdtemp(tmp)) {
        return 1;
    }
    char copy[64];
    snprintf(copy, sizeof(copy), "%s/copy.gguf", tmp);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        check_file(dir, &files[i], copy);
    }
    rmdir(tmp);
    return check_summary();
}
