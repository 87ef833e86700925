/*
 * tests/unit/test_imatrix_file: model/imatrix_file (DESIGN.md §4 imatrix GGUF and legacy forms):
 * GGUF round trip (exact, and the layout llama.cpp writes), .dat bytes against hand-computed
 * values for each zero-count policy, .dat read back, GGUF→dat→GGUF, merge (halves == whole,
 * byte-identical; weights; broadcast; shape mismatch), output naming, and a catalogue of
 * truncated/corrupt files that must be rejected with the file named.
 *
 * Every expected number below is worked out by hand in the comment next to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/file.h"
#include "core/log.h"
#include "model/gguf.h"
#include "model/imatrix_file.h"
#include "tests/check.h"

// ---- helpers ------------------------------------------------------------------------------------

struct logcap {
    char text[8192]; // error lines, '\n'-separated
    int n_err;       // error lines seen
};

static void cap_sink(enum imc_log_level level, const char *line, void *user)
{
    struct logcap *c = user;
    if (level == IMC_LOG_ERROR) {
        size_t n = strlen(c->text);
        snprintf(c->text + n, sizeof(c->text) - n, "%s\n", line);
        c->n_err++;
    }
}

static void cap_start(struct logcap *c)
{
    memset(c, 0, sizeof(*c));
    imc_log_set_sink(cap_sink, c);
}

static void cap_stop(void)
{
    imc_log_set_sink(NULL, NULL);
}

static char g_dir[64];

static const char *tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", g_dir, name);
    return buf;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(p, 1, n, f) == n, "cannot write %s", path);
    if (f) {
        fclose(f);
    }
}

static void set_entry(struct imc_imatrix *im, const char *name, int64_t npr, int64_t nmat,
                      const double *sums, const double *counts)
{
    struct imc_imatrix_entry *e;
    CHECK(imc_imatrix_get_entry(im, name, npr, nmat, &e) == IMC_OK, "get_entry %s", name);
    memcpy(e->sums, sums, (size_t)(npr * nmat) * sizeof(double));
    memcpy(e->counts, counts, (size_t)nmat * sizeof(double));
}

/*
 * The reference imatrix (chunk_size 2, 5 chunks, dataset "wiki.train.raw"):
 *   blk.0.attn_q.weight       4x1  sums {3, 6, 9, 12}        counts {3}
 *   blk.0.ffn_up_exps.weight  2x3  sums {4,8 | 0,0 | 2,6}    counts {4, 0, 2}  (expert 1 unused)
 *   blk.1.ffn_down_exps.weight 2x2 sums {0,0 | 0,0}          counts {0, 0}     (never reached)
 */
static void make_ref(struct imc_imatrix *im)
{
    imc_imatrix_init(im);
    set_entry(im, "blk.1.ffn_down_exps.weight", 2, 2, (double[]){0, 0, 0, 0}, (double[]){0, 0});
    set_entry(im, "blk.0.ffn_up_exps.weight", 2, 3, (double[]){4, 8, 0, 0, 2, 6},
              (double[]){4, 0, 2});
    set_entry(im, "blk.0.attn_q.weight", 4, 1, (double[]){3, 6, 9, 12}, (double[]){3});
    imc_imatrix_add_dataset(im, "wiki.train.raw");
    im->chunk_count = 5;
    im->chunk_size = 2;
}

static bool same_imatrix(const struct imc_imatrix *a, const struct imc_imatrix *b)
{
    if (a->n_entries != b->n_entries || a->chunk_count != b->chunk_count ||
        a->chunk_size != b->chunk_size || a->n_datasets != b->n_datasets) {
        return false;
    }
    for (int64_t i = 0; i < a->n_datasets; i++) {
        if (strcmp(a->datasets[i], b->datasets[i]) != 0) {
            return false;
        }
    }
    for (int64_t i = 0; i < a->n_entries; i++) {
        const struct imc_imatrix_entry *x = &a->entries[i], *y = &b->entries[i];
        if (strcmp(x->name, y->name) != 0 || x->n_per_row != y->n_per_row ||
            x->n_mat != y->n_mat ||
            memcmp(x->sums, y->sums, (size_t)(x->n_per_row * x->n_mat) * sizeof(double)) != 0 ||
            memcmp(x->counts, y->counts, (size_t)x->n_mat * sizeof(double)) != 0) {
            return false;
        }
    }
    return true;
}

// ---- tests --------------------------------------------------------------------------------------

static void test_sorted_insert(void)
{
    struct imc_imatrix im;
    make_ref(&im);
    CHECK(im.n_entries == 3, "%lld entries", (long long)im.n_entries);
    CHECK(strcmp(im.entries[0].name, "blk.0.attn_q.weight") == 0 &&
              strcmp(im.entries[1].name, "blk.0.ffn_up_exps.weight") == 0 &&
              strcmp(im.entries[2].name, "blk.1.ffn_down_exps.weight") == 0,
          "entries not sorted");
    struct imc_imatrix_entry *e;
    struct logcap cap;
    cap_start(&cap);
    enum imc_status st = imc_imatrix_get_entry(&im, "blk.0.attn_q.weight", 2, 2, &e);
    cap_stop();
    // 4x1 can be viewed as 2x2 (broadcast of the single count 3).
    CHECK(st == IMC_OK && e->n_mat == 2 && e->counts[0] == 3 && e->counts[1] == 3,
          "broadcast reshape");
    cap_start(&cap);
    st = imc_imatrix_get_entry(&im, "blk.0.attn_q.weight", 3, 1, &e);
    cap_stop();
    CHECK(st == IMC_ERR_FORMAT && strstr(cap.text, "blk.0.attn_q.weight"), "mismatch: %s",
          cap.text);
    imc_imatrix_free(&im);
}

static void test_gguf_roundtrip(void)
{
    char path[128];
    tmp_path(path, sizeof(path), "ref.gguf");
    struct imc_imatrix im, back;
    make_ref(&im);
    CHECK(imc_imatrix_write_gguf(&im, path) == IMC_OK, "write gguf");
    CHECK(imc_imatrix_read_gguf(path, &back) == IMC_OK, "read gguf");
    CHECK(same_imatrix(&im, &back), "GGUF round trip not exact");
    CHECK(back.n_sources == 1 && strcmp(back.sources[0], path) == 0, "source recorded");

    // The layout llama.cpp writes: keys, no architecture, tensor order and shapes.
    struct imc_gguf *g = NULL;
    CHECK(imc_gguf_open(&g, path) == IMC_OK, "open as gguf");
    if (g) {
        const char *type = imc_gguf_get_str(g, "general.type");
        uint32_t cc = 0, cs = 0;
        CHECK(type && strcmp(type, "imatrix") == 0, "general.type");
        CHECK(imc_gguf_find_key(g, "general.architecture") < 0, "no architecture key");
        int64_t k = imc_gguf_find_key(g, "imatrix.datasets");
        CHECK(k >= 0 && imc_gguf_arr_type(g, k) == IMC_GGUF_STRING && imc_gguf_arr_n(g, k) == 1 &&
                  strcmp(imc_gguf_arr_str(g, k, 0, NULL), "wiki.train.raw") == 0,
              "datasets");
        k = imc_gguf_find_key(g, "imatrix.chunk_count");
        CHECK(k >= 0 && imc_gguf_kv_type(g, k) == IMC_GGUF_UINT32, "chunk_count is u32");
        CHECK(imc_gguf_get_u32(g, "imatrix.chunk_count", &cc) && cc == 5, "chunk_count 5");
        CHECK(imc_gguf_get_u32(g, "imatrix.chunk_size", &cs) && cs == 2, "chunk_size 2");
        static const char *const names[] = {
            "blk.0.attn_q.weight.in_sum2",        "blk.0.attn_q.weight.counts",
            "blk.0.ffn_up_exps.weight.in_sum2",   "blk.0.ffn_up_exps.weight.counts",
            "blk.1.ffn_down_exps.weight.in_sum2", "blk.1.ffn_down_exps.weight.counts"};
        // ne as ggml writes: [n_per_row, n_mat] and [1, n_mat], trailing 1 dropped.
        static const int64_t ne[6][3] = {{4, 1, 1}, {1, 1, 1}, {2, 3, 2},
                                         {1, 3, 2}, {2, 2, 2}, {1, 2, 2}};
        CHECK(imc_gguf_n_tensors(g) == 6, "6 tensors");
        for (int i = 0; i < 6 && i < imc_gguf_n_tensors(g); i++) {
            const struct imc_tensor_info *t = imc_gguf_tensor(g, i);
            CHECK(strcmp(t->name, names[i]) == 0 && t->type == IMC_TYPE_F32 &&
                      t->ne[0] == ne[i][0] && t->ne[1] == ne[i][1] && t->n_dims == ne[i][2],
                  "tensor %d: %s [%lld,%lld] n_dims %d", i, t->name, (long long)t->ne[0],
                  (long long)t->ne[1], t->n_dims);
        }
        const struct imc_tensor_info *t = imc_gguf_find_tensor(g, "blk.0.ffn_up_exps.weight.in_sum2");
        const float want[6] = {4, 8, 0, 0, 2, 6};
        CHECK(t && memcmp(t->data, want, sizeof(want)) == 0, "in_sum2 raw floats");
        imc_gguf_free(g);
    }
    imc_imatrix_free(&back);
    imc_imatrix_free(&im);
}

struct dat_entry {
    const char *name;
    int32_t ncall;
    int32_t nval;
    float v[8];
};

// Parses a .dat independently of the reader and compares with the expected entries/trailer.
static void check_dat_bytes(const char *path, const struct dat_entry *want, int n, int32_t chunks,
                            const char *dataset)
{
    char *buf = NULL;
    size_t size = 0;
    CHECK(imc_file_read_all(path, &buf, &size) == IMC_OK, "read %s", path);
    if (!buf) {
        return;
    }
    size_t off = 0;
    int32_t v = -1;
#define TAKE(dst, k) (off + (k) <= size ? (memcpy((dst), buf + off, (k)), off += (k), 1) : 0)
    CHECK(TAKE(&v, 4) && v == n, "n_entries %d, want %d", v, n);
    for (int i = 0; i < n; i++) {
        int32_t len = 0, ncall = 0, nval = 0;
        char name[64] = {0};
        float vals[8] = {0};
        CHECK(TAKE(&len, 4) && len < 64 && TAKE(name, (size_t)len), "entry %d name", i);
        CHECK(TAKE(&ncall, 4) && TAKE(&nval, 4) && nval <= 8 && TAKE(vals, 4 * (size_t)nval),
              "entry %d header", i);
        CHECK(strcmp(name, want[i].name) == 0 && ncall == want[i].ncall && nval == want[i].nval,
              "entry %d: %s ncall %d nval %d", i, name, ncall, nval);
        CHECK(memcmp(vals, want[i].v, 4 * (size_t)want[i].nval) == 0,
              "entry %d values %g %g %g %g %g %g", i, vals[0], vals[1], vals[2], vals[3], vals[4],
              vals[5]);
    }
    int32_t cc = -1, dl = -1;
    char ds[64] = {0};
    CHECK(TAKE(&cc, 4) && cc == chunks, "chunk count %d", cc);
    CHECK(TAKE(&dl, 4) && dl == (int32_t)strlen(dataset) && TAKE(ds, (size_t)dl) &&
              strcmp(ds, dataset) == 0,
          "dataset '%s'", ds);
    CHECK(off == size, "%zu trailing bytes", size - off);
#undef TAKE
    free(buf);
}

static void test_dat_write(void)
{
    char path[128];
    struct imc_imatrix im;
    make_ref(&im);
    // chunk_size 2: attn_q max count 3 → ncall ceil(3/2) = 2, values = sums/3·2 = {2,4,6,8}.
    // ffn_up_exps max count 4 → ncall 2: expert 0 = {4/4, 8/4}·2 = {2,4}; expert 2 = {2/2, 6/2}·2
    // = {2,6}; expert 1 (count 0) by policy: one → {1·2, 1·2}; zero → {0,0}; mean of the seen
    // experts' means per column → {(1+1)/2, (2+3)/2}·2 = {2, 5}. ffn_down_exps (no data) never.
    const struct dat_entry q = {"blk.0.attn_q.weight", 2, 4, {2, 4, 6, 8}};
    const struct dat_entry one = {"blk.0.ffn_up_exps.weight", 2, 6, {2, 4, 2, 2, 2, 6}};
    const struct dat_entry zero = {"blk.0.ffn_up_exps.weight", 2, 6, {2, 4, 0, 0, 2, 6}};
    const struct dat_entry mean = {"blk.0.ffn_up_exps.weight", 2, 6, {2, 4, 2, 5, 2, 6}};
    struct {
        enum imc_dat_zero_policy p;
        const char *file;
        struct dat_entry e[2];
        int n;
    } cases[] = {
        {IMC_DAT_ZERO_ONE, "one.dat", {q, one}, 2},
        {IMC_DAT_ZERO_ZERO, "zero.dat", {q, zero}, 2},
        {IMC_DAT_ZERO_FILL_MEAN, "mean.dat", {q, mean}, 2},
        {IMC_DAT_ZERO_SKIP, "skip.dat", {q}, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tmp_path(path, sizeof(path), cases[i].file);
        CHECK(imc_imatrix_write_dat(&im, path, cases[i].p) == IMC_OK, "write %s", path);
        check_dat_bytes(path, cases[i].e, cases[i].n, 5, "wiki.train.raw");
    }
    CHECK(imc_imatrix_parse_zero_policy("one") == IMC_DAT_ZERO_ONE &&
              imc_imatrix_parse_zero_policy("mean") == IMC_DAT_ZERO_FILL_MEAN &&
              imc_imatrix_parse_zero_policy("fill") == -1,
          "policy names");

    // Reading one.dat back (chunk size 2): sums = value·2, count = ncall·2 = 4, n_mat 1.
    struct imc_imatrix back;
    tmp_path(path, sizeof(path), "one.dat");
    CHECK(imc_imatrix_read_dat(path, 2, &back) == IMC_OK, "read dat");
    const struct imc_imatrix_entry *e = imc_imatrix_find(&back, "blk.0.attn_q.weight");
    CHECK(e && e->n_per_row == 4 && e->n_mat == 1 && e->counts[0] == 4 && e->sums[0] == 4 &&
              e->sums[3] == 16,
          "attn_q from dat");
    e = imc_imatrix_find(&back, "blk.0.ffn_up_exps.weight");
    CHECK(e && e->n_per_row == 6 && e->n_mat == 1 && e->counts[0] == 4 && e->sums[5] == 12,
          "exps from dat");
    CHECK(back.n_entries == 2 && back.chunk_count == 5 && back.chunk_size == 2 &&
              back.n_datasets == 1 && strcmp(back.datasets[0], "wiki.train.raw") == 0,
          "dat metadata");
    imc_imatrix_free(&back);
    // Auto-detection by content, not by name.
    tmp_path(path, sizeof(path), "ref.gguf");
    CHECK(imc_imatrix_read(path, 0, &back) == IMC_OK && back.n_entries == 3, "read() gguf");
    imc_imatrix_free(&back);
    imc_imatrix_free(&im);
}

// GGUF → dat → GGUF: per-column means survive within float precision; shapes via broadcast.
static void test_conversion(void)
{
    char g1[128], d[128], g2[128];
    tmp_path(g1, sizeof(g1), "conv.gguf");
    tmp_path(d, sizeof(d), "conv.dat");
    tmp_path(g2, sizeof(g2), "conv2.gguf");
    struct imc_imatrix im, mid, back;
    imc_imatrix_init(&im);
    // Expert 0 (count 3) sums {1, 6/7}, expert 1 (count 9) sums {10, 0.7}: means 1/3, 2/7, 10/9,
    // 0.7/9, none representable in float, so the precision loss is exercised.
    set_entry(&im, "blk.0.ffn_gate_exps.weight", 2, 2, (double[]){1, 6.0 / 7, 10, 0.7},
              (double[]){3, 9});
    struct imc_imatrix_entry *e;
    im.chunk_count = 3;
    im.chunk_size = 4;
    imc_imatrix_add_dataset(&im, "d.txt");
    CHECK(imc_imatrix_write_gguf(&im, g1) == IMC_OK, "write gguf");
    struct imc_imatrix r1;
    CHECK(imc_imatrix_read(g1, 0, &r1) == IMC_OK, "read gguf");
    CHECK(imc_imatrix_write_dat(&r1, d, IMC_DAT_ZERO_ONE) == IMC_OK, "gguf -> dat");
    CHECK(imc_imatrix_read(d, 4, &mid) == IMC_OK, "read dat");
    CHECK(imc_imatrix_write_gguf(&mid, g2) == IMC_OK, "dat -> gguf");
    CHECK(imc_imatrix_read(g2, 0, &back) == IMC_OK, "read converted gguf");
    e = imc_imatrix_find(&back, "blk.0.ffn_gate_exps.weight");
    CHECK(e && e->n_mat == 1 && e->n_per_row == 4, "dat flattens to one matrix");
    CHECK(e && imc_imatrix_entry_reshape(e, 2, 2) == IMC_OK && e->n_mat == 2, "broadcast back");
    // dat: max count 9, chunk 4 → ncall 3; read back count = 3·4 = 12 for both experts. Means
    // pass through two float roundings (the F32 sum, the .dat value): relative 2·2^-24.
    CHECK(e && e->counts[0] == 12 && e->counts[1] == 12, "counts ncall·chunk_size");
    const double want[4] = {1.0 / 3, 2.0 / 7, 10.0 / 9, 0.7 / 9};
    for (int j = 0; e && j < 4; j++) {
        CHECK_CLOSE(e->sums[j] / e->counts[j / 2], want[j], 0, 1.25e-7);
    }
    CHECK(back.chunk_count == 3 && back.n_datasets == 1 && strcmp(back.datasets[0], "d.txt") == 0,
          "metadata through dat");
    imc_imatrix_free(&back);
    imc_imatrix_free(&mid);
    imc_imatrix_free(&r1);
    imc_imatrix_free(&im);
}

/*
 * Two halves and their hand-summed whole:
 *   attn_q   A {1,2,3,4} c{2}          B {0.5,0.25,3,4} c{3}     whole {1.5,2.25,6,8} c{5}
 *   up_exps  A {1,1|0,0|2,2} c{1,0,2}  B {3,7|1,1|0,4} c{3,1,0}  whole {4,8|1,1|2,6} c{4,1,2}
 *   attn_k   only A {5,5} c{1};  blk.1.attn_q only B {9} c{4}
 *   chunks 2 + 3 = 5, datasets {a.txt} + {b.txt}.
 */
static void make_halves(struct imc_imatrix *a, struct imc_imatrix *b, struct imc_imatrix *whole)
{
    imc_imatrix_init(a);
    imc_imatrix_init(b);
    imc_imatrix_init(whole);
    set_entry(a, "blk.0.attn_q.weight", 4, 1, (double[]){1, 2, 3, 4}, (double[]){2});
    set_entry(a, "blk.0.ffn_up_exps.weight", 2, 3, (double[]){1, 1, 0, 0, 2, 2},
              (double[]){1, 0, 2});
    set_entry(a, "blk.0.attn_k.weight", 2, 1, (double[]){5, 5}, (double[]){1});
    set_entry(b, "blk.0.attn_q.weight", 4, 1, (double[]){0.5, 0.25, 3, 4}, (double[]){3});
    set_entry(b, "blk.0.ffn_up_exps.weight", 2, 3, (double[]){3, 7, 1, 1, 0, 4},
              (double[]){3, 1, 0});
    set_entry(b, "blk.1.attn_q.weight", 1, 1, (double[]){9}, (double[]){4});
    set_entry(whole, "blk.0.attn_q.weight", 4, 1, (double[]){1.5, 2.25, 6, 8}, (double[]){5});
    set_entry(whole, "blk.0.ffn_up_exps.weight", 2, 3, (double[]){4, 8, 1, 1, 2, 6},
              (double[]){4, 1, 2});
    set_entry(whole, "blk.0.attn_k.weight", 2, 1, (double[]){5, 5}, (double[]){1});
    set_entry(whole, "blk.1.attn_q.weight", 1, 1, (double[]){9}, (double[]){4});
    a->chunk_count = 2;
    b->chunk_count = 3;
    whole->chunk_count = 5;
    a->chunk_size = b->chunk_size = whole->chunk_size = 2;
    imc_imatrix_add_dataset(a, "a.txt");
    imc_imatrix_add_dataset(b, "b.txt");
    imc_imatrix_add_dataset(whole, "a.txt");
    imc_imatrix_add_dataset(whole, "b.txt");
}

static bool files_equal(const char *p, const char *q)
{
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    bool eq = imc_file_read_all(p, &a, &na) == IMC_OK && imc_file_read_all(q, &b, &nb) == IMC_OK &&
              na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    return eq;
}

static void test_merge(void)
{
    char pa[128], pb[128], pw[128], pm[128];
    tmp_path(pa, sizeof(pa), "a.gguf");
    tmp_path(pb, sizeof(pb), "b.gguf");
    tmp_path(pw, sizeof(pw), "whole.gguf");
    tmp_path(pm, sizeof(pm), "merged.gguf");
    struct imc_imatrix a, b, whole, m;
    make_halves(&a, &b, &whole);
    CHECK(imc_imatrix_write_gguf(&a, pa) == IMC_OK && imc_imatrix_write_gguf(&b, pb) == IMC_OK &&
              imc_imatrix_write_gguf(&whole, pw) == IMC_OK,
          "write halves");
    const char *const paths[2] = {pa, pb};
    CHECK(imc_imatrix_merge_files(&m, paths, NULL, 2, 0) == IMC_OK, "merge");
    CHECK(same_imatrix(&m, &whole), "merge of halves != whole");
    CHECK(imc_imatrix_write_gguf(&m, pm) == IMC_OK && files_equal(pm, pw),
          "merged file not byte-identical to the whole");
    imc_imatrix_free(&m);

    // Weights 2 and 0.5 (hand-computed): attn_q {2.25,4.125,7.5,10} c 5.5;
    // up_exps {3.5,5.5|0.5,0.5|4,6} c {3.5,0.5,4}; attn_k {10,10} c 2; blk.1 {4.5} c 2.
    const double w[2] = {2.0, 0.5};
    struct imc_imatrix want;
    imc_imatrix_init(&want);
    set_entry(&want, "blk.0.attn_q.weight", 4, 1, (double[]){2.25, 4.125, 7.5, 10},
              (double[]){5.5});
    set_entry(&want, "blk.0.ffn_up_exps.weight", 2, 3, (double[]){3.5, 5.5, 0.5, 0.5, 4, 6},
              (double[]){3.5, 0.5, 4});
    set_entry(&want, "blk.0.attn_k.weight", 2, 1, (double[]){10, 10}, (double[]){2});
    set_entry(&want, "blk.1.attn_q.weight", 1, 1, (double[]){4.5}, (double[]){2});
    want.chunk_count = 5;
    want.chunk_size = 2;
    imc_imatrix_add_dataset(&want, "a.txt");
    imc_imatrix_add_dataset(&want, "b.txt");
    CHECK(imc_imatrix_merge_files(&m, paths, w, 2, 0) == IMC_OK, "weighted merge");
    CHECK(same_imatrix(&m, &want), "weighted merge differs from hand sums");
    imc_imatrix_free(&m);
    struct logcap cap;
    cap_start(&cap);
    CHECK(imc_imatrix_merge(&a, &b, -1.0) == IMC_ERR_ARG, "negative weight rejected");
    cap_stop();
    imc_imatrix_free(&want);
    imc_imatrix_free(&whole);
    imc_imatrix_free(&b);
    imc_imatrix_free(&a);
}

static void test_merge_shapes(void)
{
    char pc[128], pd[128], pe[128];
    tmp_path(pc, sizeof(pc), "c.gguf");
    tmp_path(pd, sizeof(pd), "d.gguf");
    tmp_path(pe, sizeof(pe), "e.gguf");
    struct imc_imatrix c, d, e, m;
    imc_imatrix_init(&c);
    imc_imatrix_init(&d);
    imc_imatrix_init(&e);
    // C: llama.cpp's one-count form of a 3D weight, 4x1 c{3}; D: per head 2x2 c{5,5}.
    // Either order gives 2x2 sums {1+1, 2+1, 3+1, 4+1} counts {8, 8}.
    set_entry(&c, "blk.0.attn_k_b.weight", 4, 1, (double[]){1, 2, 3, 4}, (double[]){3});
    set_entry(&d, "blk.0.attn_k_b.weight", 2, 2, (double[]){1, 1, 1, 1}, (double[]){5, 5});
    set_entry(&e, "blk.0.attn_k_b.weight", 3, 1, (double[]){1, 1, 1}, (double[]){1});
    CHECK(imc_imatrix_write_gguf(&c, pc) == IMC_OK && imc_imatrix_write_gguf(&d, pd) == IMC_OK &&
              imc_imatrix_write_gguf(&e, pe) == IMC_OK,
          "write c d e");
    const double want_s[4] = {2, 3, 4, 5}, want_c[2] = {8, 8};
    for (int order = 0; order < 2; order++) {
        const char *const paths[2] = {order ? pd : pc, order ? pc : pd};
        CHECK(imc_imatrix_merge_files(&m, paths, NULL, 2, 0) == IMC_OK, "broadcast merge %d",
              order);
        const struct imc_imatrix_entry *x = m.n_entries == 1 ? &m.entries[0] : NULL;
        CHECK(x && x->n_per_row == 2 && x->n_mat == 2 && memcmp(x->sums, want_s, 32) == 0 &&
                  memcmp(x->counts, want_c, 16) == 0,
              "broadcast result, order %d", order);
        imc_imatrix_free(&m);
    }
    struct logcap cap;
    const char *const bad[2] = {pd, pe};
    cap_start(&cap);
    enum imc_status st = imc_imatrix_merge_files(&m, bad, NULL, 2, 0);
    cap_stop();
    CHECK(st == IMC_ERR_FORMAT && m.n_entries == 0, "mismatch rejected");
    CHECK(cap.n_err == 1 && strstr(cap.text, "blk.0.attn_k_b.weight") && strstr(cap.text, pd) &&
              strstr(cap.text, pe),
          "message names the tensor and both files: %s", cap.text);
    imc_imatrix_free(&e);
    imc_imatrix_free(&d);
    imc_imatrix_free(&c);
}

static void test_out_paths(void)
{
    struct {
        const char *out;
        enum imc_imatrix_format fmt;
        const char *gguf, *dat;
    } cases[] = {
        {"x.gguf", IMC_IMATRIX_FMT_AUTO, "x.gguf", NULL},
        {"x.dat", IMC_IMATRIX_FMT_AUTO, NULL, "x.dat"},
        {"x.bin", IMC_IMATRIX_FMT_AUTO, "x.bin", NULL},
        {"x.dat", IMC_IMATRIX_FMT_GGUF, "x.dat", NULL},
        {"x.gguf", IMC_IMATRIX_FMT_DAT, NULL, "x.gguf"},
        {"x.gguf", IMC_IMATRIX_FMT_BOTH, "x.gguf", "x.dat"},
        {"x.dat", IMC_IMATRIX_FMT_BOTH, "x.gguf", "x.dat"},
        {"out/x", IMC_IMATRIX_FMT_BOTH, "out/x.gguf", "out/x.dat"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *g = NULL, *d = NULL;
        CHECK(imc_imatrix_out_paths(cases[i].out, cases[i].fmt, &g, &d) == IMC_OK, "paths %zu", i);
        bool ok_g = cases[i].gguf ? g && strcmp(g, cases[i].gguf) == 0 : !g;
        bool ok_d = cases[i].dat ? d && strcmp(d, cases[i].dat) == 0 : !d;
        CHECK(ok_g && ok_d, "case %zu: %s -> %s, %s", i, cases[i].out, g ? g : "-", d ? d : "-");
        free(g);
        free(d);
    }
    CHECK(imc_imatrix_parse_format("both") == IMC_IMATRIX_FMT_BOTH &&
              imc_imatrix_parse_format("gguf") == IMC_IMATRIX_FMT_GGUF &&
              imc_imatrix_parse_format("GGUF") == -1,
          "format names");
    char out[128];
    tmp_path(out, sizeof(out), "both");
    struct imc_imatrix im, r;
    make_ref(&im);
    CHECK(imc_imatrix_write(&im, out, IMC_IMATRIX_FMT_BOTH, IMC_DAT_ZERO_ONE) == IMC_OK, "both");
    tmp_path(out, sizeof(out), "both.gguf");
    CHECK(imc_imatrix_read(out, 0, &r) == IMC_OK && same_imatrix(&r, &im), "both.gguf");
    imc_imatrix_free(&r);
    tmp_path(out, sizeof(out), "both.dat");
    CHECK(imc_imatrix_read(out, 0, &r) == IMC_OK && r.n_entries == 2, "both.dat");
    imc_imatrix_free(&r);
    imc_imatrix_free(&im);
}

// Expects path to be rejected with status want and one error line naming path.
static void expect_reject(const char *path, enum imc_status want, const char *what)
{
    struct imc_imatrix im;
    struct logcap cap;
    cap_start(&cap);
    enum imc_status st = imc_imatrix_read(path, 0, &im);
    cap_stop();
    CHECK(st == want && im.n_entries == 0, "%s: status %d, want %d", what, st, want);
    CHECK(cap.n_err >= 1 && strstr(cap.text, path), "%s: message must name the file: %s", what,
          cap.text);
}

static void test_corrupt_dat(void)
{
    char good[128], bad[128];
    tmp_path(good, sizeof(good), "one.dat");
    tmp_path(bad, sizeof(bad), "bad.dat");
    char *buf = NULL;
    size_t size = 0;
    CHECK(imc_file_read_all(good, &buf, &size) == IMC_OK && size > 40, "read one.dat");
    if (!buf) {
        return;
    }
    // Every proper prefix is truncated, except the two shapes of an older trailer: none, or the
    // chunk count alone. The trailer is 4 + 4 + strlen("wiki.train.raw") bytes.
    size_t end_entries = size - 8 - strlen("wiki.train.raw");
    int n_bad = 0;
    for (size_t len = 0; len < size; len++) {
        write_bytes(bad, buf, len);
        struct imc_imatrix im;
        struct logcap cap;
        cap_start(&cap);
        enum imc_status st = imc_imatrix_read(bad, 0, &im);
        cap_stop();
        bool legal = len == end_entries || len == end_entries + 4;
        bool ok = legal ? st == IMC_OK && im.n_entries == 2
                        : st == IMC_ERR_FORMAT && cap.n_err == 1 && strstr(cap.text, bad);
        n_bad += !ok;
        if (!ok && n_bad < 4) {
            CHECK(ok, "prefix of %zu bytes: status %d, log: %s", len, st, cap.text);
        }
        imc_imatrix_free(&im);
    }
    CHECK(n_bad == 0, "%d prefixes mishandled", n_bad);
    char *mod = malloc(size + 1);
    int32_t v = -1;
    memcpy(mod, buf, size);
    mod[size] = 'x';
    write_bytes(bad, mod, size + 1);
    expect_reject(bad, IMC_ERR_FORMAT, "trailing byte");
    v = -1;
    memcpy(mod, &v, 4);
    write_bytes(bad, mod, size);
    expect_reject(bad, IMC_ERR_FORMAT, "negative entry count");
    memcpy(mod, buf, size);
    v = 0x7fffffff; // nval of entry 0 (after n_entries, len, 19 name bytes, ncall)
    memcpy(mod + 4 + 4 + 19 + 4, &v, 4);
    write_bytes(bad, mod, size);
    expect_reject(bad, IMC_ERR_FORMAT, "huge nval");
    memcpy(mod, buf, size);
    mod[4 + 4 + 3] = '\0'; // NUL inside the first name
    write_bytes(bad, mod, size);
    expect_reject(bad, IMC_ERR_FORMAT, "NUL in a name");
    memcpy(mod, buf, size);
    const float nan = NAN;
    memcpy(mod + 4 + 4 + 19 + 8 + 4, &nan, 4); // the second value of entry 0
    write_bytes(bad, mod, size);
    expect_reject(bad, IMC_ERR_FORMAT, "NaN value");
    // Two entries with the same name, built by hand: n=2, {len 1 "a", ncall 1, nval 1, 1.0} × 2.
    unsigned char dup[4 + 2 * 17];
    size_t off = 0;
    v = 2;
    memcpy(dup + off, &v, 4), off += 4;
    for (int k = 0; k < 2; k++) {
        const int32_t hdr[1] = {1};
        const int32_t cn[2] = {1, 1};
        const float one = 1.0f;
        memcpy(dup + off, hdr, 4), off += 4;
        dup[off++] = 'a';
        memcpy(dup + off, cn, 8), off += 8;
        memcpy(dup + off, &one, 4), off += 4;
    }
    write_bytes(bad, dup, off);
    expect_reject(bad, IMC_ERR_FORMAT, "duplicate entry");
    free(mod);
    free(buf);
}

// Writes a GGUF with general.type `type` (NULL: none) and up to 4 F32/F16 tensors.
struct tspec {
    const char *name;
    enum imc_type type;
    int64_t ne0, ne1;
    const void *data;
};

static void write_gguf(const char *path, const char *type, const struct tspec *t, int n)
{
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    if (type) {
        imc_gguf_set_str(w, "general.type", type);
    }
    for (int i = 0; i < n; i++) {
        const int64_t ne[2] = {t[i].ne0, t[i].ne1};
        CHECK(imc_gguf_add_tensor(w, t[i].name, t[i].type, 2, ne, t[i].data) == IMC_OK, "add %s",
              t[i].name);
    }
    CHECK(imc_gguf_write(w, path) == IMC_OK, "write %s", path);
    imc_gguf_writer_free(w);
}

static void test_corrupt_gguf(void)
{
    char p[128];
    const float s4[4] = {1, 2, 3, 4}, c2[2] = {1, 1}, c3[3] = {1, 1, 1}, c1[1] = {2};
    const float nan4[4] = {1, NAN, 3, 4};
    const uint16_t h4[4] = {0x3c00, 0x3c00, 0x3c00, 0x3c00};
    const struct tspec sum = {"x.in_sum2", IMC_TYPE_F32, 2, 2, s4};
    const struct tspec cnt = {"x.counts", IMC_TYPE_F32, 1, 2, c2};
    struct {
        const char *file, *type;
        struct tspec t[3];
        int n;
    } cases[] = {
        {"model.gguf", "model", {sum, cnt}, 2},
        {"nocounts.gguf", "imatrix", {sum}, 1},
        {"nosums.gguf", "imatrix", {cnt}, 1},
        {"badcount.gguf", "imatrix", {sum, {"x.counts", IMC_TYPE_F32, 1, 3, c3}}, 2},
        {"f16.gguf", "imatrix", {{"x.in_sum2", IMC_TYPE_F16, 2, 2, h4}, cnt}, 2},
        {"nan.gguf", "imatrix", {{"x.in_sum2", IMC_TYPE_F32, 2, 2, nan4}, cnt}, 2},
        {"empty.gguf", "imatrix", {{"y.weight", IMC_TYPE_F32, 2, 2, s4}}, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tmp_path(p, sizeof(p), cases[i].file);
        write_gguf(p, cases[i].type, cases[i].t, cases[i].n);
        expect_reject(p, IMC_ERR_FORMAT, cases[i].file);
    }
    // Tolerated: no general.type, llama.cpp's Σx tensor and unrelated tensors.
    tmp_path(p, sizeof(p), "extra.gguf");
    const struct tspec extra[4] = {sum, cnt, {"x.in_sum", IMC_TYPE_F32, 2, 2, s4},
                                   {"z.weight", IMC_TYPE_F32, 1, 1, c1}};
    write_gguf(p, NULL, extra, 4);
    struct imc_imatrix im;
    CHECK(imc_imatrix_read(p, 0, &im) == IMC_OK && im.n_entries == 1 && im.entries[0].n_mat == 2 &&
              im.entries[0].sums[3] == 4 && im.entries[0].counts[1] == 1,
          "extra tensors tolerated");
    imc_imatrix_free(&im);

    // Truncations of a valid GGUF imatrix (short ones fall to the .dat reader: still FORMAT).
    char good[128];
    tmp_path(good, sizeof(good), "ref.gguf");
    tmp_path(p, sizeof(p), "trunc.gguf");
    char *buf = NULL;
    size_t size = 0;
    CHECK(imc_file_read_all(good, &buf, &size) == IMC_OK, "read ref.gguf");
    // (The last tensor may be followed by up to 31 bytes of alignment padding.)
    const size_t lens[] = {0, 3, 20, size / 2, size - 33};
    for (size_t i = 0; buf && i < sizeof(lens) / sizeof(lens[0]); i++) {
        write_bytes(p, buf, lens[i]);
        char what[64];
        snprintf(what, sizeof(what), "gguf cut at %zu of %zu", lens[i], size);
        expect_reject(p, IMC_ERR_FORMAT, what);
    }
    free(buf);
    tmp_path(p, sizeof(p), "does-not-exist.gguf");
    expect_reject(p, IMC_ERR_IO, "missing file");
}

// Runs "$IMC_BIN merge <args>" in the test directory; returns the exit code.
static int run_merge(const char *bin, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' merge %s >/dev/null 2>&1", g_dir, bin, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The imc merge command, when the binary is known (ctest sets IMC_BIN). Uses the files written
// by the tests above.
static void test_cli(void)
{
    const char *bin = getenv("IMC_BIN");
    if (!bin || !*bin) {
        printf("IMC_BIN not set: imc merge checks not run\n");
        return;
    }
    char p[128], q[128];
    CHECK(run_merge(bin, "a.gguf b.gguf -o cli.gguf") == 0, "imc merge a b");
    CHECK(files_equal(tmp_path(p, sizeof(p), "cli.gguf"), tmp_path(q, sizeof(q), "whole.gguf")),
          "imc merge a b == whole, byte for byte");
    struct imc_imatrix im;
    CHECK(run_merge(bin, "a.gguf b.gguf -o w.gguf --weights 2,0.5") == 0, "weights");
    CHECK(imc_imatrix_read(tmp_path(p, sizeof(p), "w.gguf"), 0, &im) == IMC_OK &&
              imc_imatrix_find(&im, "blk.0.attn_q.weight") &&
              imc_imatrix_find(&im, "blk.0.attn_q.weight")->counts[0] == 5.5,
          "weighted count 2·2 + 0.5·3");
    imc_imatrix_free(&im);
    CHECK(run_merge(bin, "a.gguf b.gguf -o cli --format both --dat-zero mean") == 0, "both");
    CHECK(imc_imatrix_read(tmp_path(p, sizeof(p), "cli.dat"), 0, &im) == IMC_OK, "cli.dat");
    imc_imatrix_free(&im);
    CHECK(imc_imatrix_read(tmp_path(p, sizeof(p), "cli.gguf"), 0, &im) == IMC_OK, "cli.gguf");
    imc_imatrix_free(&im);
    CHECK(run_merge(bin, "one.dat --chunk-size 2 -o conv.gguf") == 0, "dat to gguf");
    CHECK(imc_imatrix_read(tmp_path(p, sizeof(p), "conv.gguf"), 0, &im) == IMC_OK &&
              im.n_entries == 2 && im.chunk_size == 2,
          "converted");
    imc_imatrix_free(&im);
    CHECK(run_merge(bin, "a.gguf b.gguf -o x.gguf --weights 1") != 0, "too few weights");
    CHECK(run_merge(bin, "a.gguf b.gguf -o x.gguf --weights 1,-2") != 0, "negative weight");
    CHECK(run_merge(bin, "a.gguf b.gguf") != 0, "no -o");
    CHECK(run_merge(bin, "a.gguf d.gguf e.gguf -o x.gguf") != 0, "shape mismatch");
    CHECK(run_merge(bin, "a.gguf -o x.gguf --format xml") != 0, "bad format");
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/imc_imf_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_sorted_insert();
    test_gguf_roundtrip();
    test_dat_write();
    test_conversion();
    test_merge();
    test_merge_shapes();
    test_out_paths();
    test_corrupt_dat();
    test_corrupt_gguf();
    test_cli();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) {
        printf("warning: could not remove %s\n", g_dir);
    }
    return check_summary();
}
