/*
 * tests/gguf/test_roundtrip: the GGUF writer and reader against each other and against images
 * built byte by byte from the format description (tests/gguf/gguf_bytes.h):
 *   - an image holding every value type and every array type (strings with NUL bytes) is read,
 *     copied key by key with imc_gguf_set_from, written, and must come back byte-identical;
 *   - the typed setters and getters, including the exact-conversion rules of the getters;
 *   - insertion order, replace on re-set, remove;
 *   - tensors of several types with alignment 32 and 64: shapes, sizes (worked out from the
 *     ggml block sizes by hand), data bytes, aligned offsets; bad tensors are refused;
 *   - atomic output: no temporary file left behind; an unwritable path gives IMC_ERR_IO.
 */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/file.h"
#include "core/log.h"
#include "model/gguf.h"
#include "model/gguf_priv.h"
#include "tests/check.h"
#include "tests/gguf/gguf_bytes.h"

#define N_ARR(a) (sizeof(a) / sizeof((a)[0]))

static void quiet_sink(enum imc_log_level level, const char *line, void *user)
{
    (void)level, (void)line;
    ++*(int *)user;
}

// ---- every value type ------------------------------------------------------------------------

static const char nul_str[] = "hello\0world"; // 11 bytes
static const char *const arr_strs[] = {"", "a\0b", "tok"};
static const uint64_t arr_str_lens[] = {0, 3, 3};

static void scalar_kv(struct gb *b, const char *key, uint32_t type, const void *v, size_t n)
{
    gb_str(b, key);
    gb_u32(b, type);
    gb_put(b, v, n); // host order is little-endian on every machine imc supports
}

// Array "arr.<type>" of 3 elements: element j has bytes (j + 1) * 0x11 repeated.
static void scalar_arr(struct gb *b, uint32_t type, size_t size)
{
    char key[32];
    snprintf(key, sizeof(key), "arr.%u", type);
    gb_str(b, key);
    gb_u32(b, GB_ARR);
    gb_u32(b, type);
    gb_u64(b, 3);
    for (int j = 0; j < 3; j++) {
        gb_fill(b, (uint8_t)((j + 1) * 0x11), size);
    }
}

static const struct {
    uint32_t type;
    size_t size;
} scalar_types[] = {{GB_U8, 1},  {GB_I8, 1},  {GB_U16, 2},  {GB_I16, 2}, {GB_U32, 4},
                    {GB_I32, 4}, {GB_F32, 4}, {GB_BOOL, 1}, {GB_U64, 8}, {GB_I64, 8},
                    {GB_F64, 8}};

#define N_ALL_KV (12 + N_ARR(scalar_types) + 3)

static void build_all_types(struct gb *b)
{
    uint8_t u8 = 0xfe, bo = 1;
    int8_t i8 = -5;
    uint16_t u16 = 0xbeef;
    int16_t i16 = -300;
    uint32_t u32 = 0xdeadbeefu;
    int32_t i32 = -7;
    float f32 = 1.5f;
    uint64_t u64 = (UINT64_C(1) << 63) + 5;
    int64_t i64 = -(INT64_C(1) << 40);
    double f64 = 0.1;
    gb_header(b, 0, N_ALL_KV);
    scalar_kv(b, "u8", GB_U8, &u8, 1);
    scalar_kv(b, "i8", GB_I8, &i8, 1);
    scalar_kv(b, "u16", GB_U16, &u16, 2);
    scalar_kv(b, "i16", GB_I16, &i16, 2);
    scalar_kv(b, "u32", GB_U32, &u32, 4);
    scalar_kv(b, "i32", GB_I32, &i32, 4);
    scalar_kv(b, "f32", GB_F32, &f32, 4);
    scalar_kv(b, "bool", GB_BOOL, &bo, 1);
    gb_str(b, "str");
    gb_u32(b, GB_STR);
    gb_strn(b, nul_str, sizeof(nul_str) - 1);
    scalar_kv(b, "u64", GB_U64, &u64, 8);
    scalar_kv(b, "i64", GB_I64, &i64, 8);
    scalar_kv(b, "f64", GB_F64, &f64, 8);
    for (size_t t = 0; t < N_ARR(scalar_types); t++) {
        scalar_arr(b, scalar_types[t].type, scalar_types[t].size);
    }
    gb_str(b, "arr.str");
    gb_u32(b, GB_ARR);
    gb_u32(b, GB_STR);
    gb_u64(b, 3);
    for (int j = 0; j < 3; j++) {
        gb_strn(b, arr_strs[j], arr_str_lens[j]);
    }
    gb_str(b, "arr.empty");
    gb_u32(b, GB_ARR);
    gb_u32(b, GB_U8);
    gb_u64(b, 0);
    gb_str(b, "arr.str_empty");
    gb_u32(b, GB_ARR);
    gb_u32(b, GB_STR);
    gb_u64(b, 0);
}

static void check_all_types(const struct imc_gguf *g)
{
    CHECK(imc_gguf_n_kv(g) == (int64_t)N_ALL_KV, "%" PRId64 " keys", imc_gguf_n_kv(g));
    static const char *const order[] = {"u8",  "i8",  "u16", "u32", "i32", "f32",
                                        "bool", "str", "u64", "i64", "f64"};
    for (size_t i = 0; i < N_ARR(order); i++) {
        CHECK(imc_gguf_find_key(g, order[i]) >= 0, "key %s missing", order[i]);
    }
    CHECK(strcmp(imc_gguf_key(g, 0), "u8") == 0 && strcmp(imc_gguf_key(g, 8), "str") == 0,
          "file order of keys");
    int64_t i;
    int64_t v = 0;
    uint64_t u = 0;
    float f = 0;
    bool bo = false;
    CHECK(imc_gguf_get_i64(g, "i8", &v) && v == -5, "i8 %" PRId64, v);
    CHECK(imc_gguf_get_i64(g, "i16", &v) && v == -300, "i16 %" PRId64, v);
    CHECK(imc_gguf_get_u64(g, "u16", &u) && u == 0xbeef, "u16");
    CHECK(imc_gguf_get_u64(g, "u32", &u) && u == 0xdeadbeefu, "u32");
    CHECK(imc_gguf_get_u64(g, "u64", &u) && u == (UINT64_C(1) << 63) + 5, "u64");
    CHECK(!imc_gguf_get_i64(g, "u64", &v), "u64 above INT64_MAX must not convert to i64");
    CHECK(imc_gguf_get_i64(g, "i64", &v) && v == -(INT64_C(1) << 40), "i64");
    CHECK(!imc_gguf_get_u64(g, "i64", &u), "negative i64 must not convert to u64");
    CHECK(imc_gguf_get_f32(g, "f32", &f) && f == 1.5f, "f32");
    CHECK(imc_gguf_get_f32(g, "f64", &f) && f == 0.1f, "f64 as f32 %g", (double)f);
    CHECK(imc_gguf_get_bool(g, "bool", &bo) && bo, "bool");
    CHECK(!imc_gguf_get_bool(g, "u8", &bo), "u8 is not a bool");
    CHECK(!imc_gguf_get_f32(g, "u32", &f), "u32 is not a float");
    i = imc_gguf_find_key(g, "str");
    CHECK(i >= 0 && imc_gguf_kv_type(g, i) == IMC_GGUF_STRING && imc_gguf_str_len(g, i) == 11 &&
              memcmp(imc_gguf_str(g, i), nul_str, 12) == 0,
          "string with a NUL byte");
    for (size_t t = 0; t < N_ARR(scalar_types); t++) {
        char key[32];
        snprintf(key, sizeof(key), "arr.%u", scalar_types[t].type);
        i = imc_gguf_find_key(g, key);
        const uint8_t *d = i >= 0 ? imc_gguf_arr_data(g, i) : NULL;
        bool ok = d && imc_gguf_kv_type(g, i) == IMC_GGUF_ARRAY &&
                  imc_gguf_arr_type(g, i) == (enum imc_gguf_vtype)scalar_types[t].type &&
                  imc_gguf_arr_n(g, i) == 3;
        for (size_t k = 0; ok && k < 3 * scalar_types[t].size; k++) {
            ok = d[k] == (uint8_t)((k / scalar_types[t].size + 1) * 0x11);
        }
        CHECK(ok, "array %s", key);
    }
    i = imc_gguf_find_key(g, "arr.str");
    CHECK(i >= 0 && imc_gguf_arr_type(g, i) == IMC_GGUF_STRING && imc_gguf_arr_n(g, i) == 3 &&
              imc_gguf_arr_data(g, i) == NULL, "string array");
    for (uint64_t j = 0; i >= 0 && j < 3; j++) {
        uint64_t len = 99;
        const char *s = imc_gguf_arr_str(g, i, j, &len);
        CHECK(len == arr_str_lens[j] && memcmp(s, arr_strs[j], len + 1) == 0, "string %" PRIu64,
              j);
    }
    i = imc_gguf_find_key(g, "arr.empty");
    CHECK(i >= 0 && imc_gguf_arr_n(g, i) == 0 && imc_gguf_arr_type(g, i) == IMC_GGUF_UINT8,
          "empty array");
    i = imc_gguf_find_key(g, "arr.str_empty");
    CHECK(i >= 0 && imc_gguf_arr_n(g, i) == 0 && imc_gguf_arr_type(g, i) == IMC_GGUF_STRING,
          "empty string array");
}

static void test_all_types(const char *dir)
{
    struct gb b = {0};
    build_all_types(&b);
    const char *dump = getenv("IMC_GGUF_DUMP_DIR"); // seed corpus for tests/fuzz
    if (dump) {
        char seed[512];
        snprintf(seed, sizeof(seed), "%s/valid_all_types.gguf", dump);
        CHECK(gb_save(&b, seed) == 0, "write %s", seed);
    }
    struct imc_gguf *g = NULL;
    CHECK(imc_gguf_open_memory(&g, b.p, b.n, "all-types") == IMC_OK, "all-types image rejected");
    if (!g) {
        gb_free(&b);
        return;
    }
    check_all_types(g);
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    for (int64_t i = 0; i < imc_gguf_n_kv(g); i++) {
        CHECK(imc_gguf_set_from(w, g, i) == IMC_OK, "set_from %s", imc_gguf_key(g, i));
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/all.gguf", dir);
    CHECK(imc_gguf_write(w, path) == IMC_OK, "write %s", path);
    imc_gguf_writer_free(w);
    imc_gguf_free(g);

    // The writer's bytes are the handcrafted image plus zero padding to 32 bytes.
    char *data = NULL;
    size_t n = 0;
    CHECK(imc_file_read_all(path, &data, &n) == IMC_OK, "read back");
    size_t padded = (b.n + 31) / 32 * 32;
    bool zeros = true;
    for (size_t k = b.n; data && k < n; k++) {
        zeros = zeros && data[k] == 0;
    }
    CHECK(data && n == padded && memcmp(data, b.p, b.n) == 0 && zeros,
          "written bytes differ from the handcrafted image (%zu vs %zu bytes)", n, padded);
    free(data);
    CHECK(imc_gguf_open(&g, path) == IMC_OK, "reopen");
    if (g) {
        check_all_types(g);
        imc_gguf_free(g);
    }
    gb_free(&b);
}

// ---- setters, order, replace, remove ---------------------------------------------------------

static void test_setters(const char *dir)
{
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    const uint32_t u32s[3] = {1, 2, 3};
    const char *const strs[2] = {"x", "yz"};
    CHECK(imc_gguf_set_u32(w, "a", 1) == IMC_OK, "set a");
    CHECK(imc_gguf_set_str(w, "b", "bee") == IMC_OK, "set b");
    CHECK(imc_gguf_set_u8(w, "c.u8", 200) == IMC_OK && imc_gguf_set_u16(w, "c.u16", 60000) == 0 &&
              imc_gguf_set_i32(w, "c.i32", -42) == 0 &&
              imc_gguf_set_u64(w, "c.u64", UINT64_C(1) << 40) == 0 &&
              imc_gguf_set_f32(w, "c.f32", -2.25f) == 0 && imc_gguf_set_bool(w, "c.bool", true) == 0,
          "scalar setters");
    CHECK(imc_gguf_set_arr(w, "c.arr", IMC_GGUF_UINT32, u32s, 3) == IMC_OK, "set_arr");
    CHECK(imc_gguf_set_arr_str(w, "c.strs", strs, 2) == IMC_OK, "set_arr_str");
    CHECK(imc_gguf_set_u32(w, "a", 7) == IMC_OK, "replace a");
    CHECK(imc_gguf_set_str(w, "gone", "x") == IMC_OK && imc_gguf_remove_key(w, "gone") == 0 &&
              imc_gguf_remove_key(w, "never-set") == IMC_OK, "remove");
    CHECK(imc_gguf_set_str(w, "c.u8", "now a string") == IMC_OK, "replace with another type");
    int n_err = 0;
    imc_log_set_sink(quiet_sink, &n_err);
    CHECK(imc_gguf_set_arr(w, "bad", IMC_GGUF_STRING, strs, 2) == IMC_ERR_ARG, "string via set_arr");
    CHECK(imc_gguf_set_arr(w, "bad", IMC_GGUF_ARRAY, u32s, 1) == IMC_ERR_ARG, "nested via set_arr");
    imc_log_set_sink(NULL, NULL);
    char path[512];
    snprintf(path, sizeof(path), "%s/setters.gguf", dir);
    CHECK(imc_gguf_write(w, path) == IMC_OK, "write");
    imc_gguf_writer_free(w);

    struct imc_gguf *g = NULL;
    CHECK(imc_gguf_open(&g, path) == IMC_OK, "reopen");
    if (!g) {
        return;
    }
    static const char *const order[] = {"a", "b", "c.u8", "c.u16", "c.i32", "c.u64",
                                        "c.f32", "c.bool", "c.arr", "c.strs"};
    CHECK(imc_gguf_n_kv(g) == (int64_t)N_ARR(order), "%" PRId64 " keys", imc_gguf_n_kv(g));
    for (int64_t i = 0; i < imc_gguf_n_kv(g) && i < (int64_t)N_ARR(order); i++) {
        CHECK(strcmp(imc_gguf_key(g, i), order[i]) == 0, "key %" PRId64 " is %s, expected %s", i,
              imc_gguf_key(g, i), order[i]);
    }
    uint32_t u = 0;
    int64_t v = 0;
    uint64_t u64 = 0;
    float f = 0;
    bool bo = false;
    CHECK(imc_gguf_get_u32(g, "a", &u) && u == 7, "a = %u", u);
    CHECK(imc_gguf_get_str(g, "b") && strcmp(imc_gguf_get_str(g, "b"), "bee") == 0, "b");
    CHECK(imc_gguf_get_str(g, "c.u8") && strcmp(imc_gguf_get_str(g, "c.u8"), "now a string") == 0,
          "c.u8 replaced by a string");
    CHECK(imc_gguf_get_u32(g, "c.u16", &u) && u == 60000, "u16 as u32");
    CHECK(imc_gguf_get_i64(g, "c.i32", &v) && v == -42, "i32 as i64");
    CHECK(!imc_gguf_get_u32(g, "c.i32", &u), "negative i32 must not convert to u32");
    CHECK(!imc_gguf_get_u32(g, "c.u64", &u), "2^40 must not convert to u32");
    CHECK(imc_gguf_get_u64(g, "c.u64", &u64) && u64 == UINT64_C(1) << 40, "u64");
    CHECK(imc_gguf_get_f32(g, "c.f32", &f) && f == -2.25f, "f32");
    CHECK(imc_gguf_get_bool(g, "c.bool", &bo) && bo, "bool");
    CHECK(!imc_gguf_get_u32(g, "b", &u) && !imc_gguf_get_u32(g, "absent", &u), "not integers");
    CHECK(imc_gguf_get_str(g, "a") == NULL && imc_gguf_get_str(g, "absent") == NULL, "not strings");
    int64_t i = imc_gguf_find_key(g, "c.arr");
    const uint32_t *d = i >= 0 ? imc_gguf_arr_data(g, i) : NULL;
    CHECK(d && imc_gguf_arr_n(g, i) == 3 && d[0] == 1 && d[1] == 2 && d[2] == 3, "u32 array");
    i = imc_gguf_find_key(g, "c.strs");
    CHECK(i >= 0 && imc_gguf_arr_n(g, i) == 2 && strcmp(imc_gguf_arr_str(g, i, 1, NULL), "yz") == 0,
          "string array");
    CHECK(imc_gguf_alignment(g) == 32 && imc_gguf_version(g) == 3 && imc_gguf_n_splits(g) == 1,
          "defaults");
    imc_gguf_free(g);
}

// ---- tensors ---------------------------------------------------------------------------------

struct tcase {
    const char *name;
    enum imc_type type;
    int n_dims;
    int64_t ne[4];
    uint64_t nbytes; // worked out by hand from ggml's block sizes
};

static const struct tcase tcases[] = {
    {"f32", IMC_TYPE_F32, 2, {7, 3, 1, 1}, 7 * 3 * 4},
    {"f16", IMC_TYPE_F16, 1, {5, 1, 1, 1}, 10},
    {"bf16.3d", IMC_TYPE_BF16, 3, {3, 2, 2, 1}, 24},
    {"q8_0", IMC_TYPE_Q8_0, 2, {64, 3, 1, 1}, 2 * 34 * 3},
    {"q4_0.4d", IMC_TYPE_Q4_0, 4, {32, 2, 1, 2}, 18 * 4},
    {"q4_k", IMC_TYPE_Q4_K, 2, {256, 2, 1, 1}, 144 * 2},
    {"q6_k", IMC_TYPE_Q6_K, 1, {512, 1, 1, 1}, 210 * 2},
    {"iq4_xs", IMC_TYPE_IQ4_XS, 2, {256, 1, 1, 1}, 136},
    {"empty", IMC_TYPE_F32, 2, {0, 4, 1, 1}, 0},
};

static void test_tensors(const char *dir, uint32_t align)
{
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    uint8_t *data[N_ARR(tcases)];
    if (align != 32) {
        imc_gguf_set_u32(w, "general.alignment", align);
    }
    imc_gguf_set_str(w, "general.architecture", "test");
    for (size_t i = 0; i < N_ARR(tcases); i++) {
        const struct tcase *c = &tcases[i];
        data[i] = malloc(c->nbytes + 1);
        for (uint64_t k = 0; k < c->nbytes; k++) {
            data[i][k] = (uint8_t)(k * 7 + i * 13 + 1);
        }
        CHECK(imc_gguf_add_tensor(w, c->name, c->type, c->n_dims, c->ne, data[i]) == IMC_OK,
              "add %s", c->name);
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/tensors-%u.gguf", dir, align);
    CHECK(imc_gguf_write(w, path) == IMC_OK, "write %s", path);
    imc_gguf_writer_free(w);
    struct imc_gguf *g = NULL;
    CHECK(imc_gguf_open(&g, path) == IMC_OK, "reopen %s", path);
    CHECK(g && imc_gguf_n_tensors(g) == (int64_t)N_ARR(tcases) && imc_gguf_alignment(g) == align,
          "tensor count / alignment %u", align);
    const uint8_t *base = NULL;
    for (size_t i = 0; g && i < N_ARR(tcases) && i < (size_t)imc_gguf_n_tensors(g); i++) {
        const struct tcase *c = &tcases[i];
        const struct imc_tensor_info *t = imc_gguf_tensor(g, (int64_t)i);
        bool same_shape = t->n_dims == c->n_dims;
        for (int d = 0; d < 4; d++) {
            same_shape = same_shape && t->ne[d] == c->ne[d];
        }
        base = i == 0 ? (const uint8_t *)t->data - t->offset : base;
        CHECK(strcmp(t->name, c->name) == 0 && t->type == c->type && same_shape &&
                  t->nbytes == c->nbytes && t->split == 0,
              "tensor %zu (%s): type %d, %d dims, %" PRIu64 " bytes", i, t->name, (int)t->type,
              t->n_dims, t->nbytes);
        CHECK(t->offset % align == 0 && (const uint8_t *)t->data == base + t->offset,
              "%s at offset %" PRIu64 " not aligned to %u", c->name, t->offset, align);
        CHECK(c->nbytes == 0 || memcmp(t->data, data[i], c->nbytes) == 0, "%s data", c->name);
        CHECK(imc_gguf_find_tensor(g, c->name) == t, "find %s", c->name);
    }
    CHECK(!g || imc_gguf_find_tensor(g, "nope") == NULL, "absent tensor");
    imc_gguf_free(g);
    for (size_t i = 0; i < N_ARR(tcases); i++) {
        free(data[i]);
    }
}

static void test_bad_tensors(void)
{
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    const int64_t ne[5] = {32, 2, 1, 1, 1}, ne_bad[2] = {33, 1}, ne_neg[2] = {32, -1};
    float data[64] = {0};
    int n_err = 0;
    imc_log_set_sink(quiet_sink, &n_err);
    CHECK(imc_gguf_add_tensor(w, "t", IMC_TYPE_F32, 2, ne, data) == IMC_OK, "good tensor");
    CHECK(imc_gguf_add_tensor(w, "t", IMC_TYPE_F32, 2, ne, data) == IMC_ERR_ARG, "duplicate");
    CHECK(imc_gguf_add_tensor(w, "u", IMC_TYPE_F32, 0, ne, data) == IMC_ERR_ARG, "0 dims");
    CHECK(imc_gguf_add_tensor(w, "u", IMC_TYPE_F32, 5, ne, data) == IMC_ERR_ARG, "5 dims");
    CHECK(imc_gguf_add_tensor(w, "u", IMC_TYPE_Q8_0, 2, ne_bad, data) == IMC_ERR_ARG, "block");
    CHECK(imc_gguf_add_tensor(w, "u", IMC_TYPE_F32, 2, ne_neg, data) == IMC_ERR_ARG, "negative");
    CHECK(imc_gguf_add_tensor(w, "u", (enum imc_type)4, 2, ne, data) == IMC_ERR_ARG, "type 4");
    CHECK(imc_gguf_add_tensor(w, "u", IMC_TYPE_F32, 2, ne, NULL) == IMC_ERR_ARG, "no data");
    imc_log_set_sink(NULL, NULL);
    CHECK(n_err == 7, "%d error lines, expected 7", n_err);
    const int64_t ne0[2] = {0, 3};
    CHECK(imc_gguf_add_tensor(w, "zero", IMC_TYPE_F32, 2, ne0, NULL) == IMC_OK, "empty tensor");
    imc_gguf_writer_free(w);
}

// ---- atomic output ---------------------------------------------------------------------------

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        n += e->d_name[0] != '.';
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void test_atomic(const char *dir)
{
    int before = count_entries(dir);
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    imc_gguf_set_str(w, "k", "v");
    char path[512];
    snprintf(path, sizeof(path), "%s/no-such-dir/x.gguf", dir);
    int n_err = 0;
    imc_log_set_sink(quiet_sink, &n_err);
    CHECK(imc_gguf_write(w, path) == IMC_ERR_IO, "unwritable path");
    imc_log_set_sink(NULL, NULL);
    CHECK(n_err == 1, "%d error lines", n_err);
    snprintf(path, sizeof(path), "%s/atomic.gguf", dir);
    CHECK(imc_gguf_write(w, path) == IMC_OK && imc_gguf_write(w, path) == IMC_OK, "overwrite");
    CHECK(count_entries(dir) == before + 1, "temporary files left behind");
    imc_gguf_writer_free(w);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    char path[1024];
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    if (d) {
        closedir(d);
    }
    rmdir(dir);
}

int main(void)
{
    char dir[] = "/tmp/imc_gguf_rt_XXXXXX";
    if (!mkdtemp(dir)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    test_all_types(dir);
    test_setters(dir);
    test_tensors(dir, 32);
    test_tensors(dir, 64);
    test_bad_tensors();
    test_atomic(dir);
    remove_dir(dir);
    return check_summary();
}
