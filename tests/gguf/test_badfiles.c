/*
 * tests/gguf/test_badfiles: a catalogue of malformed GGUF images, one per failure class of the
 * reader (model/gguf.h). Each is built byte by byte (tests/gguf/gguf_bytes.h), opened through
 * imc_gguf_open_memory and through a temporary file, and must give the exact status, a NULL
 * reader and exactly one error line "<name>: <cause>" containing the expected cause.
 * Also: every strict prefix of a valid file is rejected, and files that cannot be opened give
 * IMC_ERR_IO. With IMC_GGUF_DUMP_DIR set, the images are also written there (seed corpus).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "model/gguf.h"
#include "tests/check.h"
#include "tests/gguf/gguf_bytes.h"

#define N_ARR(a) (sizeof(a) / sizeof((a)[0]))

struct capture {
    int n_err;
    char last[1024];
};

static void capture_sink(enum imc_log_level level, const char *line, void *user)
{
    struct capture *c = user;
    if (level == IMC_LOG_ERROR) {
        c->n_err++;
        snprintf(c->last, sizeof(c->last), "%s", line);
    }
}

// ggml type ids used below (from the GGUF/ggml specification).
enum { T_F32 = 0, T_F16 = 1, T_Q8_0 = 8 };

// A valid image: 2 keys, tensors "a" (f32 [4, 2]) and "b" (q8_0 [32]) with 32-byte alignment.
static void build_valid(struct gb *b)
{
    const uint64_t ne_a[2] = {4, 2}, ne_b[1] = {32};
    gb_header(b, 2, 2);
    gb_kv_str(b, "general.architecture", "llama");
    gb_kv_u32(b, "general.alignment", 32);
    gb_tensor(b, "a", 2, ne_a, T_F32, 0);
    gb_tensor(b, "b", 1, ne_b, T_Q8_0, 32);
    gb_pad(b, 32);
    gb_fill(b, 0x3f, 32); // a: 32 bytes
    gb_fill(b, 0x11, 34); // b: one q8_0 block
}

// One tensor info after a header with no keys, followed by padding and `data` bytes.
static void one_tensor(struct gb *b, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                       uint64_t offset, size_t data)
{
    gb_header(b, 1, 0);
    gb_tensor(b, "t", n_dims, ne, type, offset);
    gb_pad(b, 32);
    gb_fill(b, 0, data);
}

static void c_empty(struct gb *b) { (void)b; }
static void c_short_header(struct gb *b) { gb_put(b, "GGUF\x03\x00\x00", 7); }
static void c_bad_magic(struct gb *b)
{
    gb_header(b, 0, 0);
    b->p[3] = 'G';
}
static void c_version_2(struct gb *b) { gb_header_v(b, 2, 0, 0); }
static void c_version_be(struct gb *b) { gb_header_v(b, 0x03000000u, 0, 0); }
static void c_n_kv_absurd(struct gb *b) { gb_header(b, 0, UINT64_C(1) << 62); }
static void c_n_tensors_absurd(struct gb *b) { gb_header(b, UINT64_MAX, 0); }

static void c_key_len_past_end(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_u64(b, 1000);
    gb_put(b, "abcdefghijklm", 13);
}

static void c_key_nul(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_strn(b, "a\0b", 3);
    gb_u32(b, GB_U8);
    gb_u8(b, 1);
}

static void c_vtype_unknown(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_str(b, "k");
    gb_u32(b, 13);
    gb_u64(b, 0);
}

static void c_vtype_huge(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_str(b, "k");
    gb_u32(b, 0xffffffffu);
    gb_u64(b, 0);
}

static void c_value_truncated(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_str(b, "k");
    gb_u32(b, GB_U64);
    gb_put(b, "\1\2\3", 3);
}

static void c_str_len_past_end(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_str(b, "k");
    gb_u32(b, GB_STR);
    gb_u64(b, UINT64_MAX - 3);
    gb_put(b, "abcdefgh", 8);
}

static void c_arr_of_arr(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_str(b, "k");
    gb_u32(b, GB_ARR);
    gb_u32(b, GB_ARR);
    gb_u64(b, 1);
    gb_u32(b, GB_U8);
    gb_u64(b, 1);
    gb_u8(b, 7);
}

static void c_arr_elem_unknown(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_str(b, "k");
    gb_u32(b, GB_ARR);
    gb_u32(b, 77);
    gb_u64(b, 1);
    gb_u64(b, 0);
}

static void c_arr_count_overflow(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_str(b, "k");
    gb_u32(b, GB_ARR);
    gb_u32(b, GB_U32);
    gb_u64(b, UINT64_C(1) << 62); // × 4 bytes overflows 64 bits
    gb_fill(b, 0, 16);
}

static void c_arr_count_too_big(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_str(b, "k");
    gb_u32(b, GB_ARR);
    gb_u32(b, GB_F64);
    gb_u64(b, 1000);
    gb_fill(b, 0, 64);
}

static void c_arr_str_count_absurd(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_str(b, "k");
    gb_u32(b, GB_ARR);
    gb_u32(b, GB_STR);
    gb_u64(b, UINT64_C(1) << 60);
    gb_str(b, "x");
    gb_str(b, "y");
}

static void c_arr_str_elem_past_end(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_str(b, "k");
    gb_u32(b, GB_ARR);
    gb_u32(b, GB_STR);
    gb_u64(b, 3);
    gb_str(b, "x");
    gb_u64(b, 100);
    gb_put(b, "abcdefghijklmnopqrstuvwxyz", 26);
}

static void c_dup_key(struct gb *b)
{
    gb_header(b, 0, 3);
    gb_kv_u32(b, "a", 1);
    gb_kv_u32(b, "b", 2);
    gb_kv_str(b, "a", "again");
}

static void c_align_zero(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_kv_u32(b, "general.alignment", 0);
}

static void c_align_48(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_kv_u32(b, "general.alignment", 48);
}

static void c_align_type(struct gb *b)
{
    gb_header(b, 0, 1);
    gb_str(b, "general.alignment");
    gb_u32(b, GB_U64);
    gb_u64(b, 32);
}

static void c_tensor_name_past_end(struct gb *b)
{
    gb_header(b, 1, 0);
    gb_u64(b, 50);
    gb_fill(b, 'x', 40);
}

static void c_tensor_name_nul(struct gb *b)
{
    const uint64_t ne[1] = {8};
    gb_header(b, 1, 0);
    gb_strn(b, "t\0u", 3);
    gb_u32(b, 1);
    gb_u64(b, ne[0]);
    gb_u32(b, T_F32);
    gb_u64(b, 0);
    gb_pad(b, 32);
    gb_fill(b, 0, 32);
}

static void c_n_dims_0(struct gb *b) { one_tensor(b, 0, NULL, T_F32, 0, 32); }

static void c_n_dims_5(struct gb *b)
{
    const uint64_t ne[5] = {1, 1, 1, 1, 1};
    one_tensor(b, 5, ne, T_F32, 0, 32);
}

static void c_ne_negative(struct gb *b)
{
    const uint64_t ne[2] = {4, (uint64_t)-2};
    one_tensor(b, 2, ne, T_F32, 0, 32);
}

static void c_ne_overflow(struct gb *b)
{
    const uint64_t ne[3] = {UINT64_C(1) << 32, UINT64_C(1) << 31, 4};
    one_tensor(b, 3, ne, T_F32, 0, 32);
}

static void c_rows_overflow(struct gb *b)
{
    const uint64_t ne[4] = {0, UINT64_C(1) << 40, UINT64_C(1) << 40, 1};
    one_tensor(b, 4, ne, T_F32, 0, 32);
}

static void c_byte_size_overflow(struct gb *b)
{
    const uint64_t ne[2] = {UINT64_C(1) << 40, UINT64_C(1) << 22}; // 2^62 f32 = 2^64 bytes
    one_tensor(b, 2, ne, T_F32, 0, 32);
}

static void c_type_unknown(struct gb *b)
{
    const uint64_t ne[1] = {32};
    one_tensor(b, 1, ne, 4, 0, 64); // 4 was Q4_2, removed from ggml
}

static void c_type_unnamed(struct gb *b)
{
    const uint64_t ne[1] = {32};
    one_tensor(b, 1, ne, 1000, 0, 64); // no type of the llama.cpp family has this id
}

static void c_type_huge(struct gb *b)
{
    const uint64_t ne[1] = {32};
    one_tensor(b, 1, ne, 0xffffffffu, 0, 64);
}

static void c_ne0_block(struct gb *b)
{
    const uint64_t ne[2] = {33, 1};
    one_tensor(b, 2, ne, T_Q8_0, 0, 64);
}

static void c_rows_interleave(struct gb *b)
{
    const uint64_t ne[2] = {32, 3}; // q4_0_r8 (202) stores groups of 8 rows
    one_tensor(b, 2, ne, 202, 0, 8 * 18);
}

static void c_data_past_end_meta(struct gb *b)
{
    const uint64_t ne[2] = {256, 2}; // iq4_ks (144): 4 bytes of row scale + 136 per row
    one_tensor(b, 2, ne, 144, 0, 2 * 136);
}

static void c_offset_unaligned(struct gb *b)
{
    const uint64_t ne[1] = {4};
    one_tensor(b, 1, ne, T_F32, 8, 64);
}

static void c_offset_unaligned_64(struct gb *b)
{
    const uint64_t ne[1] = {4};
    gb_header(b, 1, 1);
    gb_kv_u32(b, "general.alignment", 64);
    gb_tensor(b, "t", 1, ne, T_F32, 32);
    gb_pad(b, 64);
    gb_fill(b, 0, 128);
}

static void c_data_outside(struct gb *b)
{
    const uint64_t ne[1] = {4};
    one_tensor(b, 1, ne, T_F32, UINT64_C(1) << 20, 64);
}

static void c_data_end_past(struct gb *b)
{
    const uint64_t ne[2] = {16, 2}; // 64 bytes, 40 present
    one_tensor(b, 2, ne, T_F16, 0, 40);
}

static void c_offset_overflow(struct gb *b)
{
    const uint64_t ne[1] = {4};
    one_tensor(b, 1, ne, T_F32, UINT64_MAX - 31, 64);
}

static void c_dup_tensor(struct gb *b)
{
    const uint64_t ne[1] = {8};
    gb_header(b, 2, 0);
    gb_tensor(b, "w", 1, ne, T_F32, 0);
    gb_tensor(b, "w", 1, ne, T_F32, 32);
    gb_pad(b, 32);
    gb_fill(b, 0, 64);
}

static void c_no_data_padding(struct gb *b)
{
    const uint64_t ne[1] = {0}; // even an empty tensor needs the padded data section
    gb_header(b, 1, 0);
    gb_tensor(b, "t", 1, ne, T_F32, 0);
}

struct bad_case {
    const char *name;
    void (*build)(struct gb *b);
    const char *cause; // substring of the error line
};

static const struct bad_case cases[] = {
    {"empty", c_empty, "truncated while reading the header"},
    {"short_header", c_short_header, "truncated while reading the header"},
    {"bad_magic", c_bad_magic, "not a GGUF file"},
    {"version_2", c_version_2, "version 2 is not supported"},
    {"version_big_endian", c_version_be, "big-endian"},
    {"n_kv_absurd", c_n_kv_absurd, "header claims 4611686018427387904 keys"},
    {"n_tensors_absurd", c_n_tensors_absurd, "18446744073709551615 tensors"},
    {"key_len_past_end", c_key_len_past_end, "string of 1000 bytes"},
    {"key_nul", c_key_nul, "contains a NUL byte"},
    {"vtype_unknown", c_vtype_unknown, "unknown value type 13"},
    {"vtype_huge", c_vtype_huge, "unknown value type 4294967295"},
    {"value_truncated", c_value_truncated, "truncated while reading k"},
    {"str_len_past_end", c_str_len_past_end, "runs past the end"},
    {"arr_of_arr", c_arr_of_arr, "array of arrays"},
    {"arr_elem_unknown", c_arr_elem_unknown, "unknown array element type 77"},
    {"arr_count_overflow", c_arr_count_overflow, "claims 4611686018427387904 elements"},
    {"arr_count_too_big", c_arr_count_too_big, "claims 1000 elements"},
    {"arr_str_count_absurd", c_arr_str_count_absurd, "claims 1152921504606846976 strings"},
    {"arr_str_elem_past_end", c_arr_str_elem_past_end, "string 1 of 3"},
    {"dup_key", c_dup_key, "duplicate metadata key 'a'"},
    {"align_zero", c_align_zero, "general.alignment 0 is not a power of two"},
    {"align_48", c_align_48, "general.alignment 48 is not a power of two"},
    {"align_type", c_align_type, "general.alignment has value type 10"},
    {"tensor_name_past_end", c_tensor_name_past_end, "string of 50 bytes"},
    {"tensor_name_nul", c_tensor_name_nul, "contains a NUL byte"},
    {"n_dims_0", c_n_dims_0, "has 0 dimensions"},
    {"n_dims_5", c_n_dims_5, "has 5 dimensions"},
    {"ne_negative", c_ne_negative, "dimension 1 is negative (-2)"},
    {"ne_overflow", c_ne_overflow, "element count overflows"},
    {"rows_overflow", c_rows_overflow, "row count overflows"},
    {"byte_size_overflow", c_byte_size_overflow, "byte size overflows"},
    {"type_unknown", c_type_unknown,
     "has type 4 (q4_2 in the llama.cpp family), which imc cannot read"},
    {"type_unnamed", c_type_unnamed, "has unknown type 1000"},
    {"type_huge", c_type_huge, "unknown type 4294967295"},
    {"rows_interleave", c_rows_interleave,
     "tensor 't' of type q4_0_r8 has 3 rows, not a multiple of the 8 rows the type interleaves"},
    {"data_past_end_meta", c_data_past_end_meta, "data [0, +280) lies outside the file"},
    {"ne0_block", c_ne0_block, "row length 33 is not a multiple of the q8_0 block size 32"},
    {"offset_unaligned", c_offset_unaligned, "offset 8 is not a multiple of the alignment 32"},
    {"offset_unaligned_64", c_offset_unaligned_64, "offset 32 is not a multiple of the alignment 64"},
    {"data_outside", c_data_outside, "data [1048576, +16) lies outside the file"},
    {"data_end_past", c_data_end_past, "data [0, +64) lies outside the file"},
    {"offset_overflow", c_offset_overflow, "lies outside the file"},
    {"dup_tensor", c_dup_tensor, "duplicate tensor name 'w'"},
    {"no_data_padding", c_no_data_padding, "truncated before the tensor data"},
};

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

// Opens b both ways; checks status, NULL reader, one error line "<name>: ...cause...".
static void expect_bad(const struct gb *b, const char *name, const char *cause,
                       enum imc_status want, const char *tmpdir)
{
    struct capture cap = {0};
    imc_log_set_sink(capture_sink, &cap);
    struct imc_gguf *g = (struct imc_gguf *)&cap; // must be overwritten with NULL
    enum imc_status st = imc_gguf_open_memory(&g, b->p, b->n, name);
    imc_log_set_sink(NULL, NULL);
    char prefix[1024];
    snprintf(prefix, sizeof(prefix), "%s: ", name);
    CHECK(st == want, "%s (memory): status %s, expected %s", name, imc_status_str(st),
          imc_status_str(want));
    CHECK(g == NULL, "%s (memory): reader not NULL", name);
    CHECK(cap.n_err == 1, "%s (memory): %d error lines, expected 1", name, cap.n_err);
    CHECK(has_prefix(cap.last, prefix) && strstr(cap.last, cause), "%s (memory): message '%s'",
          name, cap.last);
    imc_gguf_free(g);

    char path[512];
    snprintf(path, sizeof(path), "%s/%s.gguf", tmpdir, name);
    CHECK(gb_save(b, path) == 0, "cannot write %s", path);
    memset(&cap, 0, sizeof(cap));
    imc_log_set_sink(capture_sink, &cap);
    g = (struct imc_gguf *)&cap;
    st = imc_gguf_open(&g, path);
    imc_log_set_sink(NULL, NULL);
    snprintf(prefix, sizeof(prefix), "%s: ", path);
    CHECK(st == want, "%s (file): status %s, expected %s", name, imc_status_str(st),
          imc_status_str(want));
    CHECK(g == NULL, "%s (file): reader not NULL", name);
    CHECK(cap.n_err == 1, "%s (file): %d error lines, expected 1", name, cap.n_err);
    CHECK(has_prefix(cap.last, prefix) && strstr(cap.last, cause), "%s (file): message '%s'",
          name, cap.last);
    imc_gguf_free(g);
    unlink(path);
}

static void dump(const struct gb *b, const char *dir, const char *prefix, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s%s.gguf", dir, prefix, name);
    CHECK(gb_save(b, path) == 0, "cannot write %s", path);
}

static void test_catalogue(const char *tmpdir, const char *dump_dir)
{
    for (size_t i = 0; i < N_ARR(cases); i++) {
        struct gb b = {0};
        cases[i].build(&b);
        expect_bad(&b, cases[i].name, cases[i].cause, IMC_ERR_FORMAT, tmpdir);
        if (dump_dir) {
            dump(&b, dump_dir, "bad_", cases[i].name);
        }
        gb_free(&b);
    }
}

// The valid image opens; every strict prefix of it is rejected with IMC_ERR_FORMAT.
static void test_truncation(const char *dump_dir)
{
    struct gb b = {0};
    build_valid(&b);
    struct imc_gguf *g = NULL;
    CHECK(imc_gguf_open_memory(&g, b.p, b.n, "valid") == IMC_OK, "valid image rejected");
    if (g) {
        CHECK(imc_gguf_n_tensors(g) == 2 && imc_gguf_n_kv(g) == 2, "counts");
        const struct imc_tensor_info *t = imc_gguf_find_tensor(g, "b");
        CHECK(t && t->nbytes == 34 && t->offset == b.n - 34, "tensor b placement");
        imc_gguf_free(g);
    }
    if (dump_dir) {
        dump(&b, dump_dir, "valid_", "two_tensors");
    }
    int bad = 0;
    struct capture cap = {0};
    imc_log_set_sink(capture_sink, &cap);
    for (size_t n = 0; n < b.n; n++) {
        // A copy of exactly n bytes, so that ASan sees any read past the end.
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, b.p, n);
        g = NULL;
        int before = cap.n_err;
        enum imc_status st = imc_gguf_open_memory(&g, p, n, "prefix");
        if (st != IMC_ERR_FORMAT || g != NULL || cap.n_err != before + 1) {
            printf("  prefix of %zu bytes: %s, %d messages\n", n, imc_status_str(st),
                   cap.n_err - before);
            bad++;
        }
        imc_gguf_free(g);
        free(p);
    }
    imc_log_set_sink(NULL, NULL);
    CHECK(bad == 0, "%d of %zu prefixes not rejected as format errors", bad, b.n);
    gb_free(&b);
}

static void test_io_errors(const char *tmpdir)
{
    char path[512];
    struct capture cap = {0};
    struct imc_gguf *g = (struct imc_gguf *)&cap;
    snprintf(path, sizeof(path), "%s/does-not-exist.gguf", tmpdir);
    imc_log_set_sink(capture_sink, &cap);
    enum imc_status st = imc_gguf_open(&g, path);
    CHECK(st == IMC_ERR_IO && g == NULL, "missing file: %s", imc_status_str(st));
    CHECK(cap.n_err == 1 && strstr(cap.last, path), "missing file message '%s'", cap.last);
    g = (struct imc_gguf *)&cap;
    st = imc_gguf_open(&g, tmpdir);
    CHECK(st == IMC_ERR_IO && g == NULL, "directory: %s", imc_status_str(st));
    imc_log_set_sink(NULL, NULL);
}

int main(void)
{
    char tmpdir[] = "/tmp/imc_gguf_bad_XXXXXX";
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    const char *dump_dir = getenv("IMC_GGUF_DUMP_DIR");
    test_catalogue(tmpdir, dump_dir);
    test_truncation(dump_dir);
    test_io_errors(tmpdir);
    rmdir(tmpdir);
    return check_summary();
}
