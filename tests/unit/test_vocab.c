/*
 * tests/unit/test_vocab: the tokenizer on tiny vocabularies built in memory (model/vocab.h).
 * Every expected id list and every expected pre-tokenizer split below was worked out by hand
 * from the merge ranks / scores / regexes, not produced by the code under test.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "model/gguf.h"
#include "model/unicode.h"
#include "model/vocab.h"
#include "model/vocab_priv.h"
#include "tests/check.h"

#define N_ARR(a) (sizeof(a) / sizeof((a)[0]))

// ---- log capture ---------------------------------------------------------------------------

struct capture {
    char last[512];
    int n_err;
};

static void capture_sink(enum imc_log_level level, const char *line, void *user)
{
    struct capture *c = user;
    if (level == IMC_LOG_ERROR) {
        c->n_err++;
        snprintf(c->last, sizeof(c->last), "%s", line);
    }
}

// ---- helpers -------------------------------------------------------------------------------

static int ids_equal(const struct imc_vocab *v, const char *text, size_t len, bool bos,
                     bool special, const int32_t *want, size_t n_want)
{
    int32_t *got = NULL;
    size_t n = 0;
    enum imc_status st = imc_vocab_tokenize(v, text, len, bos, special, &got, &n);
    int ok = st == IMC_OK && n == n_want && (n == 0 || memcmp(got, want, n * 4) == 0);
    if (!ok) {
        printf("  text '%.*s': status %d, got", (int)len, text, (int)st);
        for (size_t i = 0; i < n; i++) {
            printf(" %d", got[i]);
        }
        printf(", want");
        for (size_t i = 0; i < n_want; i++) {
            printf(" %d", want[i]);
        }
        printf("\n");
    }
    free(got);
    return ok;
}

#define CHECK_IDS(v, text, bos, special, ...)                                                      \
    do {                                                                                           \
        static const int32_t want_[] = {__VA_ARGS__};                                              \
        CHECK(ids_equal(v, text, strlen(text), bos, special, want_, N_ARR(want_)), "ids of '%s'", \
              text);                                                                               \
    } while (0)

// ---- a byte-level BPE vocabulary -----------------------------------------------------------

// Ids 0..255: the GPT-2 byte-level text of byte b has id b. Then merged tokens and specials.
enum {
    T_HE = 256, T_LL, T_HELL, T_HELLO, T_GW, T_OR, T_GWOR, T_EOT, T_USER, T_AA, T_XYZ, N_BPE
};

struct bpe_fixture {
    char byte_text[256][4];
    const char *tokens[N_BPE];
    int32_t types[N_BPE];
};

static const char *const bpe_merges[] = {
    "h e", "l l", "he ll", "hell o", "\xC4\xA0 w", "o r", "\xC4\xA0w or", "a a",
};

static void bpe_fixture_init(struct bpe_fixture *f, struct imc_vocab_desc *d, const char *pre)
{
    for (int b = 0; b < 256; b++) {
        size_t n = imc_utf8_encode(imc_gpt2_byte_cp((uint8_t)b), f->byte_text[b]);
        f->byte_text[b][n] = '\0';
        f->tokens[b] = f->byte_text[b];
        f->types[b] = IMC_TOKEN_NORMAL;
    }
    const char *more[] = {"he", "ll", "hell", "hello", "\xC4\xA0w", "or", "\xC4\xA0wor",
                          "<|endoftext|>", "<|user|>", "aa", "xyz"};
    for (int i = T_HE; i < N_BPE; i++) {
        f->tokens[i] = more[i - T_HE];
        f->types[i] = IMC_TOKEN_NORMAL;
    }
    f->types[T_EOT] = IMC_TOKEN_CONTROL;
    f->types[T_USER] = IMC_TOKEN_USER_DEFINED;
    imc_vocab_desc_init(d);
    d->source = "test-bpe";
    d->model = "gpt2";
    d->pre = pre;
    d->n_tokens = N_BPE;
    d->tokens = f->tokens;
    d->types = f->types;
    d->n_merges = (int64_t)N_ARR(bpe_merges);
    d->merges = bpe_merges;
    d->bos_id = T_EOT;
    d->eos_id = T_EOT;
}

static void test_bpe(void)
{
    struct bpe_fixture f;
    struct imc_vocab_desc d;
    struct imc_vocab *v = NULL;
    bpe_fixture_init(&f, &d, "gpt-2");
    CHECK(imc_vocab_build(&v, &d) == IMC_OK, "build");
    if (!v) {
        return;
    }
    CHECK(imc_vocab_n_tokens(v) == N_BPE && imc_vocab_n_merges(v) == 8, "counts");
    CHECK(imc_vocab_type(v) == IMC_VOCAB_BPE && !imc_vocab_add_bos(v), "type, add_bos default");
    // "hello" merges h+e (rank 0), l+l (1), he+ll (2), hell+o (3); " world": Ġ+w (4), o+r (5),
    // Ġw+or (6), then l and d stay bytes.
    CHECK_IDS(v, "hello world", false, false, T_HELLO, T_GWOR, 'l', 'd');
    CHECK_IDS(v, "hello world", true, false, T_EOT, T_HELLO, T_GWOR, 'l', 'd');
    // equal ranks: the leftmost pair first
    CHECK_IDS(v, "aaa", false, false, T_AA, 'a');
    // not a merge result: bytes (gpt-2 has no ignore_merges)
    CHECK_IDS(v, "xyz", false, false, 'x', 'y', 'z');
    // control tokens only with parse_special; user-defined always
    CHECK_IDS(v, "hello<|endoftext|>hello", false, true, T_HELLO, T_EOT, T_HELLO);
    CHECK_IDS(v, "hello<|endoftext|>hello", false, false, T_HELLO, '<', '|', 'e', 'n', 'd', 'o',
              'f', 't', 'e', 'x', 't', '|', '>', T_HELLO);
    CHECK_IDS(v, "hi<|user|>hello", false, false, 'h', 'i', T_USER, T_HELLO);
    // invalid UTF-8 -> U+FFFD (EF BF BD) bytes; space -> Ġ byte (id 0x20)
    CHECK_IDS(v, "\xFF", false, false, 0xEF, 0xBF, 0xBD);
    CHECK_IDS(v, " ", false, false, 0x20);
    int32_t *ids = (int32_t *)1;
    size_t n = 1;
    CHECK(imc_vocab_tokenize(v, "", 0, false, false, &ids, &n) == IMC_OK && n == 0 && !ids,
          "empty text");
    // pieces
    char buf[64];
    CHECK(imc_vocab_token_to_piece(v, T_GWOR, buf, sizeof(buf)) == 4 && strcmp(buf, " wor") == 0,
          "piece of Ġwor: '%s'", buf);
    CHECK(imc_vocab_token_to_piece(v, 0x0A, buf, sizeof(buf)) == 1 && buf[0] == '\n',
          "piece of the newline byte");
    CHECK(imc_vocab_token_to_piece(v, T_EOT, buf, 4) == 13, "truncated piece length");
    CHECK(imc_vocab_find(v, "hell", 4) == T_HELL && imc_vocab_find(v, "hel", 3) == -1, "find");
    imc_vocab_free(v);

    // llama-bpe: ignore_merges emits a word that is a whole token; BOS wanted by default
    bpe_fixture_init(&f, &d, "llama-bpe");
    CHECK(imc_vocab_build(&v, &d) == IMC_OK, "build llama-bpe");
    if (v) {
        CHECK(imc_vocab_add_bos(v), "llama-bpe wants BOS");
        CHECK_IDS(v, "xyz", false, false, T_XYZ);
        // " xyz" is one llama3 word and no token: bytes
        CHECK_IDS(v, "hello xyz", false, false, T_HELLO, 0x20, 'x', 'y', 'z');
        imc_vocab_free(v);
    }
}

// Round trip text -> ids -> pieces on a text with every byte value that forms valid UTF-8.
static void test_bpe_roundtrip(void)
{
    struct bpe_fixture f;
    struct imc_vocab_desc d;
    struct imc_vocab *v = NULL;
    bpe_fixture_init(&f, &d, "deepseek-llm");
    if (imc_vocab_build(&v, &d) != IMC_OK) {
        CHECK(0, "build deepseek-llm");
        return;
    }
    const char *text = "Hello,\tworld!\n\n  12345 \xE4\xB8\x96\xE7\x95\x8C caf\xC3\xA9 \x01\x7F "
                       "hello hello aaa";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(imc_vocab_tokenize(v, text, strlen(text), false, false, &ids, &n) == IMC_OK, "tok");
    char out[256];
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof(out); i++) {
        o += imc_vocab_token_to_piece(v, ids[i], out + o, sizeof(out) - o);
    }
    CHECK(o == strlen(text) && memcmp(out, text, o) == 0, "round trip: '%.*s'", (int)o, out);
    free(ids);
    imc_vocab_free(v);
}

// ---- an SPM vocabulary ---------------------------------------------------------------------

enum { S_SPACE = 259, S_A, S_B, S_C, S_AB, S_SA, S_SAB, S_BC, S_D, S_DD, N_SPM };

static void test_spm(void)
{
    static char byte_names[256][8];
    const char *tokens[N_SPM];
    float scores[N_SPM] = {0};
    int32_t types[N_SPM];
    tokens[0] = "<unk>";
    tokens[1] = "<s>";
    tokens[2] = "</s>";
    types[0] = IMC_TOKEN_UNKNOWN;
    types[1] = types[2] = IMC_TOKEN_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(byte_names[b], sizeof(byte_names[b]), "<0x%02X>", b);
        tokens[3 + b] = byte_names[b];
        types[3 + b] = IMC_TOKEN_BYTE;
    }
    const char *more[] = {"\xE2\x96\x81", "a", "b", "c", "ab", "\xE2\x96\x81" "a",
                          "\xE2\x96\x81" "ab", "bc", "d", "dd"};
    const float sc[] = {-1.0f, -2.0f, -2.0f, -3.0f, -0.5f, -0.8f, -0.1f, -0.3f, -2.0f, -1.0f};
    for (int i = S_SPACE; i < N_SPM; i++) {
        tokens[i] = more[i - S_SPACE];
        scores[i] = sc[i - S_SPACE];
        types[i] = IMC_TOKEN_NORMAL;
    }
    struct imc_vocab_desc d;
    imc_vocab_desc_init(&d);
    d.source = "test-spm";
    d.model = "llama";
    d.n_tokens = N_SPM;
    d.tokens = tokens;
    d.scores = scores;
    d.types = types;
    struct imc_vocab *v = NULL;
    CHECK(imc_vocab_build(&v, &d) == IMC_OK, "build spm");
    if (!v) {
        return;
    }
    CHECK(imc_vocab_add_bos(v) && imc_vocab_bos(v) == 1 && imc_vocab_eos(v) == 2 &&
              imc_vocab_unk(v) == 0,
          "SPM defaults");
    // "▁abc": bc (-0.3) beats ab (-0.5) and ▁a (-0.8); then ▁a; "abc"/"▁abc" are no tokens
    CHECK_IDS(v, "abc", false, false, S_SA, S_BC);
    CHECK_IDS(v, "abc", true, false, 1, S_SA, S_BC);
    // equal scores: leftmost first
    CHECK_IDS(v, "ddd", false, false, S_SPACE, S_DD, S_D);
    // spaces are U+2581; "▁b" is no token
    CHECK_IDS(v, "a b", false, false, S_SA, S_SPACE, S_B);
    // byte fallback of a character that is no token
    CHECK_IDS(v, "\xC3\xA9", false, false, S_SPACE, 3 + 0xC3, 3 + 0xA9);
    // a control token splits only with parse_special; the next fragment gets a space again
    CHECK_IDS(v, "a</s>b", false, true, S_SA, 2, S_SPACE, S_B);
    CHECK_IDS(v, "a</s>b", false, false, S_SA, 3 + '<', 3 + '/', 3 + 's', 3 + '>', S_B);
    char buf[16];
    CHECK(imc_vocab_token_to_piece(v, S_SAB, buf, sizeof(buf)) == 3 && strcmp(buf, " ab") == 0,
          "SPM piece '%s'", buf);
    CHECK(imc_vocab_token_to_piece(v, 3 + 'A', buf, sizeof(buf)) == 1 && buf[0] == 'A',
          "byte piece");
    imc_vocab_free(v);
}

// ---- pre-tokenizer splits --------------------------------------------------------------------

static void check_split(const char *pre, const char *text, const char *const *want, size_t n_want)
{
    struct imc_pretok *p = NULL;
    bool ign, bos;
    if (imc_pretok_init(&p, pre, "test", &ign, &bos) != IMC_OK) {
        CHECK(0, "pre-tokenizer %s", pre);
        return;
    }
    struct imc_span *sp = NULL;
    size_t n = 0;
    enum imc_status st = imc_pretok_split(p, text, strlen(text), &sp, &n);
    int ok = st == IMC_OK && n == n_want;
    for (size_t i = 0; ok && i < n; i++) {
        ok = sp[i].len == strlen(want[i]) && memcmp(text + sp[i].off, want[i], sp[i].len) == 0;
    }
    if (!ok) {
        printf("  %s split of '%s':", pre, text);
        for (size_t i = 0; i < n; i++) {
            printf(" [%.*s]", (int)sp[i].len, text + sp[i].off);
        }
        printf("\n");
    }
    CHECK(ok, "%s split", pre);
    free(sp);
    imc_pretok_free(p);
}

#define CHECK_SPLIT(pre, text, ...)                                                                \
    do {                                                                                           \
        static const char *const want_[] = {__VA_ARGS__};                                          \
        check_split(pre, text, want_, N_ARR(want_));                                               \
    } while (0)

static void test_pretok(void)
{
    CHECK_SPLIT("gpt-2", "Hello world's  123 !!", "Hello", " world", "'s", " ", " 123", " !!");
    CHECK_SPLIT("default", "a+b=3.14", "a", "+", "b", "=", "3", ".", "14");
    CHECK_SPLIT("default", "12345", "123", "45");
    CHECK_SPLIT("llama-bpe", "Hello WORLD'S 12345\n\n  x", "Hello", " WORLD", "'S", " ", "123",
                "45", "\n\n", " ", " x");
    CHECK_SPLIT("qwen2", "abc 2024", "abc", " ", "2", "0", "2", "4");
    CHECK_SPLIT("deepseek-coder", "foo.bar(x)\n  1984", "foo", ".", "bar", "(", "x", ")", "\n",
                "  ", "1", "9", "8", "4");
    CHECK_SPLIT("deepseek-llm", "Hello, \xE4\xB8\x96\xE7\x95\x8C! 12", "Hello", ",", " ",
                "\xE4\xB8\x96\xE7\x95\x8C", "!", " ", "12");
    // 日本語です: ideographs and hiragana form one piece
    CHECK_SPLIT("deepseek-v3", "Hi 12345 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xA7\xE3\x81\x99!\n",
                "Hi", " ", "123", "45", " ",
                "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xA7\xE3\x81\x99", "!\n");
    // llama.cpp's kimi-k2 splitter: letter runs are not split at case changes; Han apart
    CHECK_SPLIT("kimi-k2", "it's getUserName \xE4\xBD\xA0\xE5\xA5\xBDworld 1234", "it's",
                " getUserName", " ", "\xE4\xBD\xA0\xE5\xA5\xBD", "world", " ", "123", "4");
}

// ---- errors ----------------------------------------------------------------------------------

static enum imc_status build_expect(struct imc_vocab_desc *d, struct capture *c)
{
    struct imc_vocab *v = NULL;
    c->n_err = 0;
    c->last[0] = '\0';
    imc_log_set_sink(capture_sink, c);
    enum imc_status st = imc_vocab_build(&v, d);
    imc_log_set_sink(NULL, NULL);
    imc_vocab_free(v);
    return st;
}

static void test_errors(void)
{
    struct bpe_fixture f;
    struct imc_vocab_desc d;
    struct capture c;

    bpe_fixture_init(&f, &d, "no-such-pre");
    CHECK(build_expect(&d, &c) == IMC_ERR_UNSUPPORTED && strstr(c.last, "tokenizer.ggml.pre"),
          "unknown pre: '%s'", c.last);

    bpe_fixture_init(&f, &d, "gpt-2");
    d.model = "bert";
    CHECK(build_expect(&d, &c) == IMC_ERR_UNSUPPORTED && strstr(c.last, "tokenizer.ggml.model"),
          "unknown model: '%s'", c.last);

    bpe_fixture_init(&f, &d, "gpt-2");
    f.tokens[T_XYZ] = "hello";
    CHECK(build_expect(&d, &c) == IMC_ERR_FORMAT && strstr(c.last, "duplicate") &&
              strstr(c.last, "test-bpe"),
          "duplicate token: '%s'", c.last);

    static const char *const bad_side[] = {"h e", "q\xC4\xA0 z"};
    static const char *const bad_cat[] = {"x y"};
    static const char *const no_space[] = {"hello"};
    const char *const *bad[] = {bad_side, bad_cat, no_space};
    const int64_t n_bad[] = {2, 1, 1};
    for (int i = 0; i < 3; i++) {
        bpe_fixture_init(&f, &d, "gpt-2");
        d.merges = bad[i];
        d.n_merges = n_bad[i];
        CHECK(build_expect(&d, &c) == IMC_ERR_FORMAT && strstr(c.last, "tokenizer.ggml.merges"),
              "bad merge %d: '%s'", i, c.last);
    }

    // BOS wanted but none: a 1-token SPM vocabulary has no id 1
    const char *one[] = {"a"};
    imc_vocab_desc_init(&d);
    d.model = "llama";
    d.n_tokens = 1;
    d.tokens = one;
    CHECK(build_expect(&d, &c) == IMC_ERR_FORMAT && strstr(c.last, "add_bos_token"),
          "BOS missing: '%s'", c.last);
    d.add_bos = 0;
    CHECK(build_expect(&d, &c) == IMC_OK, "no BOS wanted");

    // a special id past the vocabulary is ignored (llama.cpp warns and keeps the default)
    bpe_fixture_init(&f, &d, "gpt-2");
    d.bos_id = 1 << 20;
    struct imc_vocab *v = NULL;
    CHECK(imc_vocab_build(&v, &d) == IMC_OK && v && imc_vocab_bos(v) == 11, "bos out of range");
    imc_vocab_free(v);
}

// ---- loading from GGUF ---------------------------------------------------------------------

// Writes a small gpt2 vocabulary (the BPE fixture) with w; the caller may then change keys.
static struct imc_gguf_writer *fixture_writer(struct bpe_fixture *f)
{
    struct imc_vocab_desc d;
    bpe_fixture_init(f, &d, "gpt-2");
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    int32_t bos = T_EOT;
    if (!w || imc_gguf_set_str(w, "general.architecture", "llama") != IMC_OK ||
        imc_gguf_set_str(w, "tokenizer.ggml.model", "gpt2") != IMC_OK ||
        imc_gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2") != IMC_OK ||
        imc_gguf_set_arr_str(w, "tokenizer.ggml.tokens", f->tokens, N_BPE) != IMC_OK ||
        imc_gguf_set_arr(w, "tokenizer.ggml.token_type", IMC_GGUF_INT32, f->types, N_BPE) !=
            IMC_OK ||
        imc_gguf_set_arr_str(w, "tokenizer.ggml.merges", bpe_merges, N_ARR(bpe_merges)) !=
            IMC_OK ||
        imc_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos) != IMC_OK ||
        imc_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", true) != IMC_OK) {
        imc_gguf_writer_free(w);
        return NULL;
    }
    return w;
}

// Writes w to a temporary file and loads its vocabulary; the log is captured in c.
static enum imc_status load_written(struct imc_gguf_writer *w, struct capture *c,
                                    struct imc_vocab **v, char *path, size_t path_size)
{
    snprintf(path, path_size, "/tmp/imc-test-vocab-%d.gguf", (int)getpid());
    *v = NULL;
    if (imc_gguf_write(w, path) != IMC_OK) {
        return IMC_ERR_IO;
    }
    imc_gguf_writer_free(w);
    struct imc_gguf *g = NULL;
    enum imc_status st = imc_gguf_open(&g, path);
    c->n_err = 0;
    c->last[0] = '\0';
    imc_log_set_sink(capture_sink, c);
    if (st == IMC_OK) {
        st = imc_vocab_load(v, g);
    }
    imc_log_set_sink(NULL, NULL);
    imc_gguf_free(g);
    unlink(path);
    return st;
}

static void test_gguf(void)
{
    struct bpe_fixture f;
    struct capture c;
    struct imc_vocab *v = NULL;
    char path[128];
    struct imc_gguf_writer *w = fixture_writer(&f);
    CHECK(w && load_written(w, &c, &v, path, sizeof(path)) == IMC_OK && v, "load: '%s'", c.last);
    if (v) {
        CHECK(imc_vocab_add_bos(v) && imc_vocab_bos(v) == T_EOT && imc_vocab_n_merges(v) == 8,
              "keys read");
        CHECK_IDS(v, "hello world", true, false, T_EOT, T_HELLO, T_GWOR, 'l', 'd');
        imc_vocab_free(v);
    }
    struct {
        const char *key; // removed (or replaced by a u32 when bad_type)
        bool bad_type;
    } cases[] = {
        {"tokenizer.ggml.model", false},      {"tokenizer.ggml.tokens", false},
        {"tokenizer.ggml.tokens", true},      {"tokenizer.ggml.merges", false},
        {"tokenizer.ggml.token_type", true},  {"tokenizer.ggml.add_bos_token", true},
        {"tokenizer.ggml.pre", true},
    };
    for (size_t i = 0; i < N_ARR(cases); i++) {
        w = fixture_writer(&f);
        if (!w) {
            CHECK(0, "writer");
            continue;
        }
        if (cases[i].bad_type) {
            imc_gguf_set_u32(w, cases[i].key, 7); // replaces the value in place
        } else {
            imc_gguf_remove_key(w, cases[i].key);
        }
        enum imc_status st = load_written(w, &c, &v, path, sizeof(path));
        CHECK(st == IMC_ERR_FORMAT && !v && strstr(c.last, cases[i].key) && strstr(c.last, path),
              "case %zu (%s): status %d, '%s'", i, cases[i].key, (int)st, c.last);
        imc_vocab_free(v);
    }
    // token_type shorter than tokens
    w = fixture_writer(&f);
    if (w) {
        imc_gguf_set_arr(w, "tokenizer.ggml.token_type", IMC_GGUF_INT32, f.types, N_BPE - 1);
        CHECK(load_written(w, &c, &v, path, sizeof(path)) == IMC_ERR_FORMAT &&
                  strstr(c.last, "token_type"),
              "short token_type: '%s'", c.last);
        imc_vocab_free(v);
    }
}

// ---- threads ---------------------------------------------------------------------------------

struct job {
    const struct imc_vocab *v;
    const char *text;
    int32_t *ids;
    size_t n;
    enum imc_status st;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    for (int rep = 0; rep < 20; rep++) {
        free(j->ids);
        j->st = imc_vocab_tokenize(j->v, j->text, strlen(j->text), true, true, &j->ids, &j->n);
    }
    return NULL;
}

static void test_threads(void)
{
    struct bpe_fixture f;
    struct imc_vocab_desc d;
    struct imc_vocab *v = NULL;
    bpe_fixture_init(&f, &d, "deepseek-llm");
    if (imc_vocab_build(&v, &d) != IMC_OK) {
        CHECK(0, "build");
        return;
    }
    char text[4096];
    size_t o = 0;
    while (o + 40 < sizeof(text)) {
        o += (size_t)snprintf(text + o, sizeof(text) - o, "hello world<|endoftext|> aaa %zu\n", o);
    }
    struct job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){.v = v, .text = text};
        CHECK(pthread_create(&th[i], NULL, run_job, &jobs[i]) == 0, "thread");
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 1; i < 4; i++) {
        CHECK(jobs[i].st == IMC_OK && jobs[i].n == jobs[0].n && jobs[0].n > 100 &&
                  memcmp(jobs[i].ids, jobs[0].ids, jobs[0].n * 4) == 0,
              "thread %d result", i);
    }
    for (int i = 0; i < 4; i++) {
        free(jobs[i].ids);
    }
    imc_vocab_free(v);
}

static void test_unicode(void)
{
    int ok = 1;
    for (int b = 0; b < 256; b++) {
        ok &= imc_gpt2_cp_byte(imc_gpt2_byte_cp((uint8_t)b)) == b;
    }
    CHECK(ok, "GPT-2 byte map is a bijection");
    CHECK(imc_gpt2_byte_cp(' ') == 0x120 && imc_gpt2_byte_cp('\n') == 0x10A &&
              imc_gpt2_byte_cp(0xAD) == 0x143 && imc_gpt2_byte_cp('A') == 'A',
          "GPT-2 byte map values");
    char out[32];
    // bad lead, truncated 3-byte, overlong NUL, surrogate, valid é
    const char in[] = "\x80" "a\xE2\x82" "b\xC0\x80\xED\xA0\x80\xC3\xA9";
    size_t n = imc_utf8_sanitize(in, sizeof(in) - 1, out);
    const char want[] = "\xEF\xBF\xBD" "a\xEF\xBF\xBD\xEF\xBF\xBD" "b\x00\xEF\xBF\xBD\xC3\xA9";
    CHECK(n == sizeof(want) - 1 && memcmp(out, want, n) == 0, "sanitize (%zu bytes)", n);
}

int main(void)
{
    test_unicode();
    test_bpe();
    test_bpe_roundtrip();
    test_spm();
    test_pretok();
    test_errors();
    test_gguf();
    test_threads();
    return check_summary();
}
