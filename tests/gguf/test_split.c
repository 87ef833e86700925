/*
 * tests/gguf/test_split: split GGUF sets "<base>-0000K-of-0000N.gguf" (model/gguf.h).
 *   - imc_gguf_write_split output (alignment 32 and 64) opens from any part name with the same
 *     tensors (data, shapes, which part holds each) and keys as the writer was given;
 *   - a split reader copied into a writer (set_from) writes back as one file and as a new split;
 *   - a missing part gives IMC_ERR_IO with a message naming it;
 *   - handcrafted inconsistent sets (split.no, split.count, split.tensors.count, duplicate
 *     tensors across parts, a renamed part) give IMC_ERR_FORMAT and one message naming the part.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "model/gguf.h"
#include "tests/check.h"
#include "tests/gguf/gguf_bytes.h"

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

#define N_T 5
static const int64_t t_ne[N_T][2] = {{8, 2}, {32, 1}, {4, 4}, {64, 2}, {3, 1}};
static const enum imc_type t_type[N_T] = {IMC_TYPE_F32, IMC_TYPE_Q8_0, IMC_TYPE_F16,
                                          IMC_TYPE_Q8_0, IMC_TYPE_F32};
static const uint64_t t_bytes[N_T] = {64, 34, 32, 136, 12}; // by hand from block sizes
static const int t_part[N_T] = {0, 1, 1, 2, 2}; // tensors spread in order: 5·p/3 .. 5·(p+1)/3

static void fill_data(uint8_t data[N_T][160])
{
    for (int i = 0; i < N_T; i++) {
        for (int k = 0; k < 160; k++) {
            data[i][k] = (uint8_t)(i * 31 + k);
        }
    }
}

static void check_set(const struct imc_gguf *g, uint8_t data[N_T][160], int n_parts,
                      const char *what)
{
    CHECK(imc_gguf_n_splits(g) == n_parts && imc_gguf_n_tensors(g) == N_T, "%s: %d parts, %" PRId64
          " tensors", what, imc_gguf_n_splits(g), imc_gguf_n_tensors(g));
    for (int i = 0; i < N_T && i < imc_gguf_n_tensors(g); i++) {
        const struct imc_tensor_info *t = imc_gguf_tensor(g, i);
        char name[16];
        snprintf(name, sizeof(name), "t%d", i);
        int part = n_parts == 3 ? t_part[i] : n_parts == 1 ? 0 : (i >= N_T / 2);
        CHECK(strcmp(t->name, name) == 0 && t->type == t_type[i] && t->ne[0] == t_ne[i][0] &&
                  t->ne[1] == t_ne[i][1] && t->nbytes == t_bytes[i] && t->split == part &&
                  memcmp(t->data, data[i], t_bytes[i]) == 0,
              "%s: tensor %d (%s, part %d)", what, i, t->name, t->split);
        CHECK(imc_gguf_find_tensor(g, name) == t, "%s: find %s", what, name);
    }
    const char *s = imc_gguf_get_str(g, "general.name");
    uint32_t v = 0;
    CHECK(s && strcmp(s, "split-test") == 0 && imc_gguf_get_u32(g, "test.value", &v) && v == 42,
          "%s: keys of the first part", what);
}

static struct imc_gguf_writer *make_writer(uint8_t data[N_T][160], uint32_t align)
{
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    imc_gguf_set_str(w, "general.name", "split-test");
    if (align != 32) {
        imc_gguf_set_u32(w, "general.alignment", align);
    }
    imc_gguf_set_u32(w, "test.value", 42);
    for (int i = 0; i < N_T; i++) {
        char name[16];
        snprintf(name, sizeof(name), "t%d", i);
        CHECK(imc_gguf_add_tensor(w, name, t_type[i], 2, t_ne[i], data[i]) == IMC_OK, "add");
    }
    return w;
}

static void test_write_split(const char *dir, uint32_t align)
{
    uint8_t data[N_T][160];
    fill_data(data);
    struct imc_gguf_writer *w = make_writer(data, align);
    char base[512], path[600], what[64];
    snprintf(base, sizeof(base), "%s/m%u", dir, align);
    CHECK(imc_gguf_write_split(w, base, 3) == IMC_OK, "write_split");
    imc_gguf_writer_free(w);
    for (int p = 1; p <= 3; p++) {
        snprintf(path, sizeof(path), "%s-%05d-of-00003.gguf", base, p);
        snprintf(what, sizeof(what), "align %u, opened as part %d", align, p);
        struct imc_gguf *g = NULL;
        CHECK(imc_gguf_open(&g, path) == IMC_OK, "%s", what);
        if (!g) {
            continue;
        }
        check_set(g, data, 3, what);
        uint32_t count = 0, no = 9;
        int64_t total = 0;
        CHECK(imc_gguf_get_u32(g, "split.count", &count) && count == 3 &&
                  imc_gguf_get_u32(g, "split.no", &no) && no == 0 &&
                  imc_gguf_get_i64(g, "split.tensors.count", &total) && total == N_T &&
                  imc_gguf_alignment(g) == align, "%s: split keys", what);
        imc_gguf_free(g);
    }
}

// A split reader copied key by key into a writer writes back as one file and as 2 parts.
static void test_copy(const char *dir)
{
    uint8_t data[N_T][160];
    fill_data(data);
    char path[600];
    snprintf(path, sizeof(path), "%s/m64-00002-of-00003.gguf", dir);
    struct imc_gguf *g = NULL;
    CHECK(imc_gguf_open(&g, path) == IMC_OK, "open split");
    if (!g) {
        return;
    }
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    for (int64_t i = 0; i < imc_gguf_n_kv(g); i++) {
        CHECK(imc_gguf_set_from(w, g, i) == IMC_OK, "set_from");
    }
    for (int64_t i = 0; i < imc_gguf_n_tensors(g); i++) {
        const struct imc_tensor_info *t = imc_gguf_tensor(g, i);
        CHECK(imc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data) == IMC_OK,
              "add");
    }
    snprintf(path, sizeof(path), "%s/joined.gguf", dir);
    CHECK(imc_gguf_write(w, path) == IMC_OK, "write joined");
    char base[512];
    snprintf(base, sizeof(base), "%s/re", dir);
    CHECK(imc_gguf_write_split(w, base, 2) == IMC_OK, "write 2 parts");
    imc_gguf_writer_free(w);
    imc_gguf_free(g);

    CHECK(imc_gguf_open(&g, path) == IMC_OK, "open joined");
    if (g) {
        check_set(g, data, 1, "joined");
        CHECK(imc_gguf_find_key(g, "split.count") < 0 && imc_gguf_find_key(g, "split.no") < 0,
              "a single file carries no split keys");
        CHECK(imc_gguf_alignment(g) == 64, "alignment kept");
        imc_gguf_free(g);
    }
    snprintf(path, sizeof(path), "%s/re-00002-of-00002.gguf", dir);
    CHECK(imc_gguf_open(&g, path) == IMC_OK, "open re-split");
    if (g) {
        check_set(g, data, 2, "re-split");
        imc_gguf_free(g);
    }
}

static void test_missing_part(const char *dir)
{
    char path[600], gone[600];
    snprintf(gone, sizeof(gone), "%s/m32-00002-of-00003.gguf", dir);
    snprintf(path, sizeof(path), "%s/m32-00003-of-00003.gguf", dir);
    unlink(gone);
    struct capture cap = {0};
    struct imc_gguf *g = (struct imc_gguf *)&cap;
    imc_log_set_sink(capture_sink, &cap);
    enum imc_status st = imc_gguf_open(&g, path);
    imc_log_set_sink(NULL, NULL);
    CHECK(st == IMC_ERR_IO && g == NULL, "missing part: %s", imc_status_str(st));
    CHECK(cap.n_err == 1 && strstr(cap.last, gone) && strstr(cap.last, "part 2 of 3 is missing"),
          "message '%s'", cap.last);
}

// Part of a handcrafted set: one f32 tensor [8] named name, split keys as given (-1: absent).
static void craft_part(const char *path, int no, int count, int total, const char *name,
                       bool no_as_string)
{
    struct gb b = {0};
    const uint64_t ne[1] = {8};
    gb_header(&b, 1, (uint64_t)((no >= 0) + (count >= 0) + (total >= 0)));
    if (no >= 0 && no_as_string) {
        gb_kv_str(&b, "split.no", "zero");
    } else if (no >= 0) {
        gb_kv_u16(&b, "split.no", (uint16_t)no);
    }
    if (count >= 0) {
        gb_kv_u16(&b, "split.count", (uint16_t)count);
    }
    if (total >= 0) {
        gb_kv_i32(&b, "split.tensors.count", total);
    }
    gb_tensor(&b, name, 1, ne, 0, 0);
    gb_pad(&b, 32);
    gb_fill(&b, 0, 32);
    CHECK(gb_save(&b, path) == 0, "write %s", path);
    gb_free(&b);
}

struct craft {
    const char *name;
    int no[2], count[2], total[2];
    const char *tensor[2];
    bool no_as_string;
    int bad_part;      // 1-based part the message must name (0: the name opened)
    const char *cause; // substring of the message
};

static const struct craft crafts[] = {
    {"ok", {0, 1}, {2, 2}, {2, -1}, {"a", "b"}, false, 0, NULL},
    {"no_wrong", {0, 0}, {2, 2}, {2, -1}, {"a", "b"}, false, 2, "split.no 0 / split.count 2"},
    {"count_wrong", {0, 1}, {2, 3}, {2, -1}, {"a", "b"}, false, 2, "expected 1 / 2"},
    {"total_wrong", {0, 1}, {2, 2}, {7, -1}, {"a", "b"}, false, 1, "split.tensors.count is 7"},
    {"total_wrong_2", {0, 1}, {2, 2}, {2, 3}, {"a", "b"}, false, 2, "split.tensors.count is 3"},
    {"total_missing", {0, 1}, {2, 2}, {-1, -1}, {"a", "b"}, false, 1, "lacks the key split.tensors"},
    {"no_missing", {0, -1}, {2, 2}, {2, -1}, {"a", "b"}, false, 2, "lacks the key split.no"},
    {"no_type", {0, 1}, {2, 2}, {2, -1}, {"a", "b"}, true, 1, "split.no has value type 8"},
    {"dup_tensor", {0, 1}, {2, 2}, {2, -1}, {"a", "a"}, false, 0, "duplicate tensor name 'a'"},
};

static void test_crafted(const char *dir)
{
    for (size_t c = 0; c < sizeof(crafts) / sizeof(crafts[0]); c++) {
        const struct craft *k = &crafts[c];
        char path[2][600];
        for (int p = 0; p < 2; p++) {
            snprintf(path[p], sizeof(path[p]), "%s/%s-%05d-of-00002.gguf", dir, k->name, p + 1);
            craft_part(path[p], k->no[p], k->count[p], k->total[p], k->tensor[p],
                       k->no_as_string && p == 0);
        }
        struct capture cap = {0};
        struct imc_gguf *g = (struct imc_gguf *)&cap;
        imc_log_set_sink(capture_sink, &cap);
        enum imc_status st = imc_gguf_open(&g, path[1]);
        imc_log_set_sink(NULL, NULL);
        if (!k->cause) {
            CHECK(st == IMC_OK && g && imc_gguf_n_tensors(g) == 2 &&
                      imc_gguf_tensor(g, 1)->split == 1, "%s: %s", k->name, imc_status_str(st));
            imc_gguf_free(g);
            continue;
        }
        const char *named = path[k->bad_part ? k->bad_part - 1 : 1];
        CHECK(st == IMC_ERR_FORMAT && g == NULL, "%s: %s", k->name, imc_status_str(st));
        CHECK(cap.n_err == 1 && strncmp(cap.last, named, strlen(named)) == 0 &&
                  strstr(cap.last, k->cause), "%s: message '%s'", k->name, cap.last);
    }
}

// A part renamed to a plain name, and a lone file with a split-style name.
static void test_names(const char *dir)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/renamed.gguf", dir);
    craft_part(path, 0, 2, 2, "a", false);
    struct capture cap = {0};
    struct imc_gguf *g = (struct imc_gguf *)&cap;
    imc_log_set_sink(capture_sink, &cap);
    enum imc_status st = imc_gguf_open(&g, path);
    imc_log_set_sink(NULL, NULL);
    CHECK(st == IMC_ERR_FORMAT && g == NULL && strstr(cap.last, "open it by its split name"),
          "renamed part: %s '%s'", imc_status_str(st), cap.last);
    snprintf(path, sizeof(path), "%s/lone-00001-of-00001.gguf", dir);
    craft_part(path, -1, -1, -1, "a", false);
    CHECK(imc_gguf_open(&g, path) == IMC_OK && imc_gguf_n_splits(g) == 1, "lone split name");
    imc_gguf_free(g);
}

static void test_split_args(const char *dir)
{
    uint8_t data[N_T][160];
    fill_data(data);
    struct imc_gguf_writer *w = make_writer(data, 32);
    char base[512];
    snprintf(base, sizeof(base), "%s/args", dir);
    struct capture cap = {0};
    imc_log_set_sink(capture_sink, &cap);
    CHECK(imc_gguf_write_split(w, base, 0) == IMC_ERR_ARG, "0 parts");
    CHECK(imc_gguf_write_split(w, base, N_T + 1) == IMC_ERR_ARG, "more parts than tensors");
    imc_log_set_sink(NULL, NULL);
    CHECK(cap.n_err == 2, "%d messages", cap.n_err);
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
    char dir[] = "/tmp/imc_gguf_split_XXXXXX";
    if (!mkdtemp(dir)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    test_write_split(dir, 32);
    test_write_split(dir, 64);
    test_copy(dir);
    test_missing_part(dir);
    test_crafted(dir);
    test_names(dir);
    test_split_args(dir);
    remove_dir(dir);
    return check_summary();
}
