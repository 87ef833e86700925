/*
 * tests/unit/test_stats_collect: worker/stats_collect (DESIGN.md §4 "What each tensor gets",
 * §6 per-chunk double accumulation). Hand-computed sums and counts for a dense 2D weight,
 * routed experts with an unused expert, MLA 3D per-head and 2D ik-layout (added over heads);
 * bitwise determinism over batch splits and threads; NaN/Inf detection naming tensor, chunk and
 * column; contract violations; imc_stats_collect_add on a pool with strided rows (what the
 * engine hands the hook) equal to the serial contiguous sums bitwise, through the cpu and the ref
 * op tables; the collector goes through the table it is handed (a table whose sqacc skips a row
 * changes the sums; one whose count is off is refused).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kernels/backend.h"
#include "model/imatrix_file.h"
#include "tests/check.h"
#include "worker/stats_collect.h"

struct logcap {
    char text[4096];
    int n_err;
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

static struct imc_tensor_info tinfo(const char *name, int64_t ne0, int64_t ne1, int64_t ne2)
{
    return (struct imc_tensor_info){
        .name = name, .type = IMC_TYPE_F32, .n_dims = ne2 > 1 ? 3 : 2, .ne = {ne0, ne1, ne2, 1}};
}

static bool entry_is(const struct imc_imatrix *im, const char *name, int64_t npr, int64_t nmat,
                     const double *sums, const double *counts)
{
    const struct imc_imatrix_entry *e = imc_imatrix_find(im, name);
    if (!e || e->n_per_row != npr || e->n_mat != nmat) {
        printf("  %s: missing or shape %lld x %lld\n", name, e ? (long long)e->n_per_row : -1LL,
               e ? (long long)e->n_mat : -1LL);
        return false;
    }
    for (int64_t j = 0; j < npr * nmat; j++) {
        if (e->sums[j] != sums[j]) {
            printf("  %s: sums[%lld] = %.17g, want %.17g\n", name, (long long)j, e->sums[j],
                   sums[j]);
            return false;
        }
    }
    for (int64_t m = 0; m < nmat; m++) {
        if (e->counts[m] != counts[m]) {
            printf("  %s: counts[%lld] = %g, want %g\n", name, (long long)m, e->counts[m],
                   counts[m]);
            return false;
        }
    }
    return true;
}

static void test_hand_cases(void)
{
    struct imc_imatrix im;
    struct imc_stats_collect *c;
    imc_imatrix_init(&im);
    CHECK(imc_stats_collect_init(&c, &im) == IMC_OK, "init");
    struct imc_stats_hooks h = imc_stats_collect_hooks(c);
    CHECK(h.user == c && h.on_input, "hooks");

    // Dense [3, 5]: rows {1,2,3},{4,5,6} then {1,1,1}: Σx² = {1+16+1, 4+25+1, 9+36+1}, 3 rows.
    const struct imc_tensor_info dense = tinfo("blk.0.attn_q.weight", 3, 5, 1);
    const float xd1[6] = {1, 2, 3, 4, 5, 6}, xd2[3] = {1, 1, 1};
    const int32_t tok[2] = {0, 1};
    CHECK(h.on_input(h.user, NULL, NULL, &dense, 0, -1, xd1, 3, 2, 3, tok) == IMC_OK,
          "dense 1 (hook)");
    CHECK(imc_stats_collect_on_input(c, &dense, 0, -1, xd2, 1, 3) == IMC_OK, "dense 2");

    // Experts [2, 4, 3]: e0 {1,2}; e2 {3,0},{1,1}; e1 unused → {1,4 | 0,0 | 10,1}, c {1,0,2}.
    const struct imc_tensor_info exps = tinfo("blk.0.ffn_up_exps.weight", 2, 4, 3);
    const float xe0[2] = {1, 2}, xe2[4] = {3, 0, 1, 1};
    CHECK(imc_stats_collect_on_input(c, &exps, 0, 2, xe2, 2, 2) == IMC_OK, "expert 2");
    CHECK(imc_stats_collect_on_input(c, &exps, 0, 0, xe0, 1, 2) == IMC_OK, "expert 0");

    // MLA 3D attn_k_b [qk_nope 2, kv_lora 4, n_head 2], 2 tokens: h0 {1,0},{0,2}; h1 {1,1},{2,2}
    // → {1,4 | 5,5}, counts {2,2}.
    const struct imc_tensor_info kb3 = tinfo("blk.0.attn_k_b.weight", 2, 4, 2);
    const float xh0[4] = {1, 0, 0, 2}, xh1[4] = {1, 1, 2, 2};
    CHECK(imc_stats_collect_on_input(c, &kb3, 0, 0, xh0, 2, 2) == IMC_OK, "3D head 0");
    CHECK(imc_stats_collect_on_input(c, &kb3, 0, 1, xh1, 2, 2) == IMC_OK, "3D head 1");

    // ik 2D attn_k_b [qk_nope 2, n_head·kv_lora = 3·2]: heads 0,1,2 each 2 tokens:
    // h0 {1,0},{0,1}; h1 {2,0},{0,2}; h2 {1,1},{1,1} → added over heads {1+4+2, 1+4+2}, count 2.
    const struct imc_tensor_info kb2 = tinfo("blk.1.attn_k_b.weight", 2, 6, 1);
    const float y0[4] = {1, 0, 0, 1}, y1[4] = {2, 0, 0, 2}, y2[4] = {1, 1, 1, 1};
    CHECK(imc_stats_collect_on_input(c, &kb2, 1, 0, y0, 2, 2) == IMC_OK, "2D head 0");
    CHECK(imc_stats_collect_on_input(c, &kb2, 1, 1, y1, 2, 2) == IMC_OK, "2D head 1");
    CHECK(imc_stats_collect_on_input(c, &kb2, 1, 2, y2, 2, 2) == IMC_OK, "2D head 2");

    // A weight that never sees a token is kept with count 0 when declared.
    const struct imc_tensor_info down = tinfo("blk.0.ffn_down_exps.weight", 3, 2, 3);
    CHECK(imc_stats_collect_declare(c, &down) == IMC_OK, "declare");

    CHECK(im.n_entries == 1, "nothing but the declared entry before end_chunk");
    CHECK(imc_stats_collect_end_chunk(c) == IMC_OK, "end chunk 0");
    CHECK(im.chunk_count == 1, "chunk_count %u", im.chunk_count);
    CHECK(entry_is(&im, "blk.0.attn_q.weight", 3, 1, (double[]){18, 30, 46}, (double[]){3}),
          "dense");
    CHECK(entry_is(&im, "blk.0.ffn_up_exps.weight", 2, 3, (double[]){1, 4, 0, 0, 10, 1},
                   (double[]){1, 0, 2}),
          "experts");
    CHECK(entry_is(&im, "blk.0.attn_k_b.weight", 2, 2, (double[]){1, 4, 5, 5}, (double[]){2, 2}),
          "3D heads");
    CHECK(entry_is(&im, "blk.1.attn_k_b.weight", 2, 1, (double[]){7, 7}, (double[]){2}),
          "2D heads added");
    CHECK(entry_is(&im, "blk.0.ffn_down_exps.weight", 3, 3, (double[9]){0}, (double[3]){0}),
          "declared, unused");

    // Chunk 1 adds to the totals: dense {2,0,0} once → {22, 30, 46}, 4 rows; an empty chunk
    // for the others leaves them as they were.
    const float xd3[3] = {2, 0, 0};
    CHECK(imc_stats_collect_on_input(c, &dense, 0, -1, xd3, 1, 3) == IMC_OK, "dense chunk 1");
    CHECK(imc_stats_collect_end_chunk(c) == IMC_OK, "end chunk 1");
    CHECK(entry_is(&im, "blk.0.attn_q.weight", 3, 1, (double[]){22, 30, 46}, (double[]){4}),
          "dense after 2 chunks");
    CHECK(entry_is(&im, "blk.1.attn_k_b.weight", 2, 1, (double[]){7, 7}, (double[]){2}),
          "2D heads unchanged by an empty chunk");
    CHECK(im.chunk_count == 2, "chunk_count 2");

    // Heads of a 2D weight that saw different row counts: an engine bug, caught at end_chunk.
    struct logcap cap;
    cap_start(&cap);
    CHECK(imc_stats_collect_on_input(c, &kb2, 1, 0, y0, 2, 2) == IMC_OK && imc_stats_collect_on_input(c, &kb2, 1, 1, y1, 1, 2) ==
                                                              IMC_OK,
          "uneven heads accepted per call");
    CHECK(imc_stats_collect_end_chunk(c) == IMC_ERR_INTERNAL, "uneven heads rejected");
    imc_log_set_sink(NULL, NULL);
    CHECK(strstr(cap.text, "blk.1.attn_k_b.weight") != NULL, "names the tensor: %s", cap.text);
    CHECK(entry_is(&im, "blk.0.attn_q.weight", 3, 1, (double[]){22, 30, 46}, (double[]){4}),
          "nothing folded on failure");
    imc_stats_collect_free(c);
    imc_imatrix_free(&im);
}

static void test_contract(void)
{
    struct imc_imatrix im;
    struct imc_stats_collect *c;
    imc_imatrix_init(&im);
    imc_stats_collect_init(&c, &im);
    const struct imc_tensor_info w3 = tinfo("blk.0.ffn_gate_exps.weight", 2, 4, 3);
    const float x[4] = {1, 1, 1, 1};
    struct {
        int64_t slice, n_in;
        const char *what;
    } bad[] = {{-1, 2, "slice -1 on 3D"}, {3, 2, "expert out of range"}, {0, 4, "n_in != ne0"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct imc_stats_collect *ci;
        imc_stats_collect_init(&ci, &im);
        struct logcap cap;
        cap_start(&cap);
        enum imc_status st = imc_stats_collect_on_input(ci, &w3, 0, bad[i].slice, x, 1, bad[i].n_in);
        imc_log_set_sink(NULL, NULL);
        CHECK(st == IMC_ERR_INTERNAL && cap.n_err == 1 && strstr(cap.text, w3.name), "%s: %d %s",
              bad[i].what, st, cap.text);
        CHECK(imc_stats_collect_end_chunk(ci) == IMC_ERR_INTERNAL, "%s: sticky", bad[i].what);
        imc_stats_collect_free(ci);
    }
    // Extending an imatrix: a one-matrix (legacy) entry of 2·3 values takes 3 experts by
    // broadcast; an entry of another size is refused with the tensor named.
    struct imc_imatrix_entry *e;
    imc_imatrix_get_entry(&im, "blk.0.ffn_gate_exps.weight", 6, 1, &e);
    e->counts[0] = 4;
    CHECK(imc_stats_collect_on_input(c, &w3, 0, 1, x, 2, 2) == IMC_OK, "broadcast extend");
    CHECK(imc_stats_collect_end_chunk(c) == IMC_OK, "fold into legacy entry");
    CHECK(entry_is(&im, "blk.0.ffn_gate_exps.weight", 2, 3, (double[]){0, 0, 2, 2, 0, 0},
                   (double[]){4, 6, 4}),
          "legacy entry extended");
    const struct imc_tensor_info other = tinfo("blk.0.ffn_up_exps.weight", 2, 4, 3);
    imc_imatrix_get_entry(&im, "blk.0.ffn_up_exps.weight", 5, 1, &e);
    struct logcap cap;
    cap_start(&cap);
    CHECK(imc_stats_collect_on_input(c, &other, 0, 0, x, 1, 2) == IMC_ERR_FORMAT,
          "mismatched entry");
    imc_log_set_sink(NULL, NULL);
    CHECK(strstr(cap.text, "blk.0.ffn_up_exps.weight") != NULL, "names it: %s", cap.text);
    imc_stats_collect_free(c);
    imc_imatrix_free(&im);
}

static void test_nonfinite(void)
{
    const float vals[2] = {NAN, INFINITY};
    for (int k = 0; k < 2; k++) {
        struct imc_imatrix im;
        struct imc_stats_collect *c;
        imc_imatrix_init(&im);
        im.chunk_count = 7; // resuming: messages count chunks from here
        imc_stats_collect_init(&c, &im);
        const struct imc_tensor_info w = tinfo("blk.4.ffn_down.weight", 4, 3, 1);
        float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        x[4 + 2] = vals[k]; // row 1, column 2
        struct logcap cap;
        cap_start(&cap);
        enum imc_status st = imc_stats_collect_on_input(c, &w, 4, -1, x, 2, 4);
        imc_log_set_sink(NULL, NULL);
        CHECK(st == IMC_ERR_NUMERIC, "%s detected: %d", k ? "inf" : "nan", st);
        CHECK(cap.n_err == 1 && strstr(cap.text, "blk.4.ffn_down.weight") &&
                  strstr(cap.text, "column 2") && strstr(cap.text, "chunk 7") &&
                  strstr(cap.text, "row 1"),
              "message: %s", cap.text);
        CHECK(imc_stats_collect_end_chunk(c) == IMC_ERR_NUMERIC && im.n_entries == 0 &&
                  im.chunk_count == 7,
              "chunk not folded");
        imc_stats_collect_free(c);
        imc_imatrix_free(&im);
    }
}

// ---- determinism --------------------------------------------------------------------------------

#define DT 96      // tokens per chunk
#define DN 37      // n_in
#define DE 5       // experts
#define DCHUNKS 3

struct feed {
    struct imc_stats_collect *c;
    const struct imc_tensor_info *w;
    const float *x;       // [DCHUNKS][DT][DN]
    const int *route;     // [DCHUNKS][DT] expert of each token
    int chunk;
    int e_begin, e_step;  // experts handled by this thread
    unsigned seed;        // batch split pattern; 0 = one call per expert
    enum imc_status st;
};

static unsigned lcg(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

// Feeds each of the thread's experts its tokens (in token order), in random-size batches.
static void *feed_experts(void *arg)
{
    struct feed *f = arg;
    float rows[DT * DN];
    for (int e = f->e_begin; e < DE; e += f->e_step) {
        int n = 0;
        for (int t = 0; t < DT; t++) {
            if (f->route[f->chunk * DT + t] == e) {
                memcpy(rows + n * DN, f->x + ((size_t)f->chunk * DT + t) * DN, sizeof(float) * DN);
                n++;
            }
        }
        unsigned s = f->seed + (unsigned)e;
        for (int r = 0; r < n && f->st == IMC_OK;) {
            int b = f->seed ? 1 + (int)(lcg(&s) % 7) : n;
            b = b > n - r ? n - r : b;
            f->st = imc_stats_collect_on_input(f->c, f->w, 0, e, rows + r * DN, b, DN);
            r += b;
        }
    }
    return NULL;
}

static void run_collect(struct imc_imatrix *im, const float *x, const int *route, int n_threads,
                        unsigned seed)
{
    struct imc_stats_collect *c;
    imc_imatrix_init(im);
    imc_stats_collect_init(&c, im);
    const struct imc_tensor_info w = tinfo("blk.2.ffn_up_exps.weight", DN, 8, DE);
    for (int ch = 0; ch < DCHUNKS; ch++) {
        pthread_t th[4];
        struct feed f[4];
        for (int i = 0; i < n_threads; i++) {
            f[i] = (struct feed){c, &w, x, route, ch, i, n_threads, seed, IMC_OK};
            pthread_create(&th[i], NULL, feed_experts, &f[i]);
        }
        for (int i = 0; i < n_threads; i++) {
            pthread_join(th[i], NULL);
            CHECK(f[i].st == IMC_OK, "feed %d", i);
        }
        CHECK(imc_stats_collect_end_chunk(c) == IMC_OK, "end chunk %d", ch);
    }
    imc_stats_collect_free(c);
}

static void test_determinism(void)
{
    static float x[DCHUNKS * DT * DN];
    static int route[DCHUNKS * DT];
    unsigned s = 12345;
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) {
        x[i] = ((float)lcg(&s) / 32768.0f - 0.5f) * 3.0f;
    }
    for (int i = 0; i < DCHUNKS * DT; i++) {
        route[i] = (int)(lcg(&s) % (DE - 1)); // expert DE-1 never routed
    }
    // The specification: per chunk, per expert, rows in token order summed in double; the chunk
    // partial then added to the running total.
    static double want[DE * DN], part[DE * DN];
    double want_c[DE] = {0};
    for (int ch = 0; ch < DCHUNKS; ch++) {
        memset(part, 0, sizeof(part));
        for (int t = 0; t < DT; t++) {
            int e = route[ch * DT + t];
            for (int j = 0; j < DN; j++) {
                double v = x[((size_t)ch * DT + t) * DN + j];
                part[e * DN + j] += v * v;
            }
            want_c[e] += 1;
        }
        for (int i = 0; i < DE * DN; i++) {
            want[i] += part[i];
        }
    }
    struct imc_imatrix ref;
    run_collect(&ref, x, route, 1, 0);
    CHECK(entry_is(&ref, "blk.2.ffn_up_exps.weight", DN, DE, want, want_c),
          "one call per expert equals the specification bitwise");
    const struct {
        int threads;
        unsigned seed;
    } runs[] = {{1, 7}, {2, 11}, {3, 0}, {4, 99}};
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        struct imc_imatrix im;
        run_collect(&im, x, route, runs[i].threads, runs[i].seed);
        const struct imc_imatrix_entry *a = &ref.entries[0], *b = &im.entries[0];
        CHECK(im.n_entries == 1 && memcmp(a->sums, b->sums, sizeof(double) * DE * DN) == 0 &&
                  memcmp(a->counts, b->counts, sizeof(double) * DE) == 0,
              "%d threads, batch seed %u: not bitwise equal", runs[i].threads, runs[i].seed);
        imc_imatrix_free(&im);
    }
    imc_imatrix_free(&ref);
}

// Broken op tables: sqacc skipping the last row (count right), or counting one row too many.
static void sqacc_skip_row(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x,
                           int64_t ldx, int64_t n_rows, int64_t n_in)
{
    imc_backend_ref()->sqacc(ex, sum2, count, x, ldx, n_rows - 1, n_in);
    *count += 1;
}

static void sqacc_count_off(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x,
                            int64_t ldx, int64_t n_rows, int64_t n_in)
{
    imc_backend_ref()->sqacc(ex, sum2, count, x, ldx, n_rows, n_in);
    *count += 1;
}

// One chunk of x (ROWS rows of stride ld, in two calls) through be on ex; status of the calls.
static enum imc_status collect_strided(struct imc_imatrix *im, const struct imc_exec *ex,
                                       const struct imc_backend *be,
                                       const struct imc_tensor_info *w, const float *x, int64_t ld,
                                       int64_t rows)
{
    struct imc_stats_collect *c;
    enum imc_status st = imc_stats_collect_init(&c, im);
    if (st == IMC_OK) {
        st = imc_stats_collect_add(c, ex, be, w, 0, -1, x, ld, 20, w->ne[0]);
    }
    if (st == IMC_OK) {
        st = imc_stats_collect_add(c, ex, be, w, 0, -1, x + 20 * ld, ld, rows - 20, w->ne[0]);
    }
    if (st == IMC_OK) {
        st = imc_stats_collect_end_chunk(c);
    }
    imc_stats_collect_free(c);
    return st;
}

// imc_stats_collect_add on pools of 1..4 threads, rows of stride ld > n_in, against the serial
// contiguous path: the same bits (imc_cpu_sqacc adds each column's rows in order, in double),
// with the cpu table (NULL) and the ref table. Broken tables show the table is what runs.
static void test_pool_strided(void)
{
    enum { N_IN = 300, LD = 333, ROWS = 37 };
    static float wide[ROWS * LD], dense[ROWS * N_IN];
    unsigned s = 4242;
    for (int i = 0; i < ROWS * LD; i++) {
        wide[i] = ((float)lcg(&s) / 32768.0f - 0.5f) * 7.0f;
    }
    for (int r = 0; r < ROWS; r++) {
        memcpy(dense + r * N_IN, wide + r * LD + 5, sizeof(float) * N_IN);
    }
    const struct imc_tensor_info w = tinfo("blk.0.ffn_down.weight", N_IN, 8, 1);
    struct imc_imatrix ref;
    imc_imatrix_init(&ref);
    struct imc_stats_collect *c;
    CHECK(imc_stats_collect_init(&c, &ref) == IMC_OK, "init");
    CHECK(imc_stats_collect_on_input(c, &w, 0, -1, dense, 20, N_IN) == IMC_OK &&
              imc_stats_collect_on_input(c, &w, 0, -1, dense + 20 * N_IN, ROWS - 20, N_IN) ==
                  IMC_OK &&
              imc_stats_collect_end_chunk(c) == IMC_OK,
          "serial");
    imc_stats_collect_free(c);
    for (int nt = 1; nt <= 4; nt++) {
        struct imc_exec *ex;
        CHECK(imc_exec_init(&ex, nt) == IMC_OK, "pool of %d", nt);
        for (int t = 0; t < 2; t++) {
            const struct imc_backend *be = t ? imc_backend_ref() : NULL;
            struct imc_imatrix im;
            imc_imatrix_init(&im);
            CHECK(collect_strided(&im, ex, be, &w, wide + 5, LD, ROWS) == IMC_OK,
                  "pooled, %d threads, table %s", nt, be ? be->name : "NULL");
            const struct imc_imatrix_entry *a = imc_imatrix_find(&ref, w.name);
            const struct imc_imatrix_entry *b = imc_imatrix_find(&im, w.name);
            CHECK(a && b && memcmp(a->sums, b->sums, sizeof(double) * N_IN) == 0 &&
                      a->counts[0] == b->counts[0] && b->counts[0] == ROWS,
                  "%d threads, stride %d, table %s: sums or count differ from the serial path", nt,
                  LD, be ? be->name : "NULL");
            imc_imatrix_free(&im);
        }
        imc_exec_free(ex);
    }
    struct imc_backend bad = *imc_backend_ref();
    bad.sqacc = sqacc_skip_row;
    struct imc_imatrix im;
    imc_imatrix_init(&im);
    CHECK(collect_strided(&im, NULL, &bad, &w, wide + 5, LD, ROWS) == IMC_OK, "skip-row table");
    const struct imc_imatrix_entry *a = imc_imatrix_find(&ref, w.name);
    const struct imc_imatrix_entry *b = imc_imatrix_find(&im, w.name);
    CHECK(a && b && memcmp(a->sums, b->sums, sizeof(double) * N_IN) != 0,
          "a table whose sqacc skips a row left the sums unchanged: the table is not used");
    imc_imatrix_free(&im);
    bad.sqacc = sqacc_count_off;
    imc_imatrix_init(&im);
    struct logcap cap;
    cap_start(&cap);
    const enum imc_status st = collect_strided(&im, NULL, &bad, &w, wide + 5, LD, ROWS);
    imc_log_set_sink(NULL, NULL);
    CHECK(st == IMC_ERR_INTERNAL && strstr(cap.text, "blk.0.ffn_down.weight") &&
              strstr(cap.text, "counted 21 rows of 20"),
          "a table counting one row too many: status %d, log '%s'", (int)st, cap.text);
    imc_imatrix_free(&im);
    imc_imatrix_free(&ref);
}

int main(void)
{
    test_hand_cases();
    test_pool_strided();
    test_contract();
    test_nonfinite();
    test_determinism();
    return check_summary();
}
