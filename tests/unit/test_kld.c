/*
 * tests/unit/test_kld: the `_logits_` base file (write -> read round trip, byte layout, bad
 * files) and the KL-divergence statistics (coordinator/kld.h) on hand-computed inputs; chunk
 * scoring (NLL, KLD, base rows) on pools of 1-4 threads equal bitwise to the row-by-row path.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/kld.h"
#include "coordinator/ppl.h"
#include "core/file.h"
#include "kernels/kernels.h"
#include "tests/check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void) // uniform in [-1, 1)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill_random(float *x, int64_t n, float amp)
{
    for (int64_t i = 0; i < n; i++) {
        x[i] = amp * frand();
    }
}

static float row_scale(const uint16_t *row)
{
    float s;
    memcpy(&s, row, sizeof(s));
    return s;
}

// Decoded log-probabilities match the exact log-softmax within half a quantization step.
static void test_encode(void)
{
    enum { V = 101 };
    float logits[V];
    fill_random(logits, V, 6.0f);
    logits[17] = 9.0f;   // the top
    logits[40] = -30.0f; // far below the e^-16 floor
    uint16_t row[2 * ((V + 1) / 2) + 4];
    CHECK(imc_kld_row_len(V) == 106 && imc_kld_row_len(100) == 104, "row lengths");
    memset(row, 0xff, sizeof(row));
    imc_kld_encode_row(logits, V, row);
    CHECK(row[4 + V] == 0, "pad element is zero");
    CHECK(row[4 + 17] == 65535, "top entry at the top of the range: %u", row[4 + 17]);
    CHECK(row[4 + 40] == 0, "entry below the floor clamps to 0");

    double sum = 0;
    for (int i = 0; i < V; i++) {
        sum += exp((double)logits[i] - 9.0);
    }
    const double lse = 9.0 + log(sum);
    const float half_step = 0.5f * row_scale(row);
    CHECK_CLOSE(row_scale(row), 16.0f / 65535.0f, 0, 1e-6);
    int bad = 0;
    for (int i = 0; i < V; i++) {
        double want = logits[i] - lse;
        double got = imc_kld_row_logp(row, i);
        if (i != 40 && fabs(got - want) > half_step + 1e-5) {
            bad++;
        }
    }
    CHECK(bad == 0, "%d entries off by more than half a step", bad);
    CHECK_CLOSE(imc_kld_row_logp(row, 40), 9.0 - 16.0 - lse, 1e-5, 0);

    const float flat[4] = {2.0f, 2.0f, 2.0f, 2.0f};
    imc_kld_encode_row(flat, 4, row);
    CHECK(row_scale(row) == 0.0f, "flat row: scale 0");
    CHECK_CLOSE(imc_kld_row_logp(row, 3), -log(4.0), 1e-6, 0);
}

static int64_t file_i32(const uint8_t *p)
{
    int32_t x;
    memcpy(&x, p, 4);
    return x;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot create %s", path);
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

// Writer -> reader round trip; the byte layout of llama-perplexity's file.
static void test_file(const char *dir)
{
    enum { CTX = 8, V = 5, NCH = 2, NS = 3, NV = 10 }; // NS = 8 - 1 - 4, NV = 2*3 + 4
    char path[512];
    snprintf(path, sizeof(path), "%s/base.kld", dir);
    int32_t tokens[NCH * CTX];
    for (int i = 0; i < NCH * CTX; i++) {
        tokens[i] = i % V;
    }
    float logits[NCH][CTX - CTX / 2][V];
    fill_random(&logits[0][0][0], NCH * (CTX - CTX / 2) * V, 4.0f);

    struct imc_kld_writer w;
    CHECK(imc_kld_writer_open(&w, path, CTX, V, NCH, tokens) == IMC_OK, "open writer");
    CHECK(imc_kld_writer_add_chunk(&w, NULL, &logits[0][0][0]) == IMC_OK, "chunk 0");
    CHECK(access(path, F_OK) != 0, "nothing at the final path before commit");
    CHECK(imc_kld_writer_add_chunk(&w, NULL, &logits[1][0][0]) == IMC_OK, "chunk 1");
    CHECK(imc_kld_writer_commit(&w) == IMC_OK, "commit");

    struct imc_map m;
    CHECK(imc_map_open(&m, path) == IMC_OK, "map");
    const uint64_t want_size = 8 + 12 + NCH * CTX * 4 + NCH * NS * NV * 2;
    CHECK(m.size == want_size, "size %llu, want %llu", (unsigned long long)m.size,
          (unsigned long long)want_size);
    if (m.size == want_size) {
        CHECK(memcmp(m.data, "_logits_", 8) == 0, "magic");
        CHECK(file_i32(m.data + 8) == CTX && file_i32(m.data + 12) == V &&
                  file_i32(m.data + 16) == NCH,
              "header ints");
        CHECK(file_i32(m.data + 20 + 4 * 9) == tokens[9], "token 9 at its offset");
        uint16_t row[NV];
        imc_kld_encode_row(logits[1][2], V, row);
        const uint8_t *at = m.data + 20 + NCH * CTX * 4 + (1 * NS + 2) * NV * 2;
        CHECK(memcmp(at, row, sizeof(row)) == 0, "chunk 1 row 2 at its offset");
    }
    imc_map_close(&m);

    struct imc_kld_base b;
    CHECK(imc_kld_base_open(&b, path) == IMC_OK, "open base");
    CHECK(b.n_ctx == CTX && b.n_vocab == V && b.n_chunk == NCH, "base dims");
    int32_t got[CTX];
    imc_kld_base_tokens(&b, 1, got);
    CHECK(memcmp(got, tokens + CTX, sizeof(got)) == 0, "tokens of chunk 1");
    uint16_t row[NV];
    imc_kld_encode_row(logits[0][1], V, row);
    CHECK(memcmp(imc_kld_base_rows(&b, 0) + NV, row, sizeof(row)) == 0, "chunk 0 row 1");
    imc_kld_base_close(&b);

    // A writer that announced more chunks than it got leaves nothing behind.
    char path2[512];
    snprintf(path2, sizeof(path2), "%s/short.kld", dir);
    CHECK(imc_kld_writer_open(&w, path2, CTX, V, NCH, tokens) == IMC_OK, "open writer 2");
    CHECK(imc_kld_writer_add_chunk(&w, NULL, &logits[0][0][0]) == IMC_OK, "chunk 0");
    CHECK(imc_kld_writer_commit(&w) != IMC_OK, "commit with a chunk missing fails");
    CHECK(access(path2, F_OK) != 0, "no file after a failed commit");
}

// Bad files: each fails with a status, not a crash.
static void test_bad_files(const char *dir)
{
    char path[512];
    struct imc_kld_base b;
    snprintf(path, sizeof(path), "%s/missing.kld", dir);
    CHECK(imc_kld_base_open(&b, path) == IMC_ERR_IO, "missing file");

    uint8_t buf[20 + 8 * 4 + 3 * 10 * 2];
    memset(buf, 0, sizeof(buf));
    memcpy(buf, "_logits_", 8);
    const int32_t hdr[3] = {8, 5, 1};
    memcpy(buf + 8, hdr, sizeof(hdr));
    snprintf(path, sizeof(path), "%s/ok.kld", dir);
    write_bytes(path, buf, sizeof(buf));
    CHECK(imc_kld_base_open(&b, path) == IMC_OK, "minimal valid file");
    imc_kld_base_close(&b);

    write_bytes(path, buf, sizeof(buf) - 1);
    CHECK(imc_kld_base_open(&b, path) == IMC_ERR_FORMAT, "truncated by one byte");
    write_bytes(path, buf, 12);
    CHECK(imc_kld_base_open(&b, path) == IMC_ERR_FORMAT, "truncated header");
    buf[0] = 'X';
    write_bytes(path, buf, sizeof(buf));
    CHECK(imc_kld_base_open(&b, path) == IMC_ERR_FORMAT, "bad magic");
    buf[0] = '_';
    const int32_t zero_ctx[3] = {0, 5, 1};
    memcpy(buf + 8, zero_ctx, sizeof(zero_ctx));
    write_bytes(path, buf, sizeof(buf));
    CHECK(imc_kld_base_open(&b, path) == IMC_ERR_FORMAT, "n_ctx 0");
    const int32_t huge[3] = {INT32_MAX, INT32_MAX, INT32_MAX};
    memcpy(buf + 8, huge, sizeof(huge));
    write_bytes(path, buf, sizeof(buf));
    CHECK(imc_kld_base_open(&b, path) == IMC_ERR_FORMAT, "sizes that do not match the file");
}

// Identical logits: KLD is 0 up to the quantization of the base, and the top token agrees.
static void test_identical(void)
{
    enum { V = 64, ROWS = 40 };
    struct imc_kld_acc a;
    CHECK(imc_kld_acc_init(&a, ROWS) == IMC_OK, "acc init");
    float logits[V];
    uint16_t row[V + 4];
    float worst = 0;
    for (int r = 0; r < ROWS; r++) {
        fill_random(logits, V, 5.0f);
        imc_kld_encode_row(logits, V, row);
        imc_kld_add_row(&a, logits, V, row, r % V);
        // |KLD| <= Σ p_i·|δ_i|·e^|δ| with |δ| <= half a step: a bound of about half a step
        worst = (float)check_worst(worst, fabsf(a.kld[r]) / (0.5f * row_scale(row)));
    }
    CHECK(worst <= 1.01f, "KLD of identical logits within the quantization bound (%g)", worst);
    CHECK(a.n_same_top == ROWS, "same top %lld of %d", (long long)a.n_same_top, ROWS);
    CHECK(fabs(a.sum_kld / ROWS) < 1e-4, "mean KLD %g", a.sum_kld / ROWS);
    CHECK(a.max_p_diff < 1e-3, "max |dp| %g", a.max_p_diff);

    FILE *f = tmpfile();
    CHECK(f != NULL, "tmpfile");
    if (f) {
        CHECK(imc_kld_print_summary(f, &a) == IMC_OK, "summary");
        char text[8192];
        rewind(f);
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        text[n] = 0;
        fclose(f);
        CHECK(strstr(text, "Same top p: 100.000 ± 0.000 %") != NULL, "same top line:\n%s", text);
        CHECK(strstr(text, "Mean    KLD:   0.0000") || strstr(text, "Mean    KLD:  -0.0000"),
              "mean KLD line:\n%s", text);
    }
    imc_kld_acc_free(&a);

    struct imc_kld_acc empty;
    CHECK(imc_kld_acc_init(&empty, 0) == IMC_OK, "empty acc");
    CHECK(imc_kld_print_summary(stderr, &empty) == IMC_ERR_ARG, "summary of nothing");
    imc_kld_acc_free(&empty);
}

// softmax(x)[i] in double, computed independently of the code under test.
static double softmax_at(const double *x, int n, int i)
{
    double s = 0;
    for (int j = 0; j < n; j++) {
        s += exp(x[j]);
    }
    return exp(x[i]) / s;
}

// Two tokens, three-token vocabulary. Base logits whose offsets from the minimum are exact
// multiples of the quantization step ((0 - -3)/65535 · 43690 = 2), so the file holds the base
// distribution up to float rounding.
static void test_hand(void)
{
    const double base[2][3] = {{0, -1, -3}, {-3, 0, -1}};
    const double mine[2][3] = {{0, 0, 0}, {1, 0, 0.5}};
    const int32_t target[2] = {1, 2};
    struct imc_kld_acc a;
    CHECK(imc_kld_acc_init(&a, 2) == IMC_OK, "acc init");
    double want_kld[2], want_dp[2];
    for (int t = 0; t < 2; t++) {
        float lb[3], ln[3];
        uint16_t row[8];
        want_kld[t] = 0;
        for (int i = 0; i < 3; i++) {
            lb[i] = (float)base[t][i];
            ln[i] = (float)mine[t][i];
            double p = softmax_at(base[t], 3, i), q = softmax_at(mine[t], 3, i);
            want_kld[t] += p * log(p / q);
        }
        want_dp[t] = softmax_at(mine[t], 3, target[t]) - softmax_at(base[t], 3, target[t]);
        imc_kld_encode_row(lb, 3, row);
        CHECK(row[4 + (t == 0 ? 1 : 2)] == 43690, "grid-exact base entry: %u",
              row[4 + (t == 0 ? 1 : 2)]);
        imc_kld_add_row(&a, ln, 3, row, target[t]);
    }
    CHECK_CLOSE(a.kld[0], want_kld[0], 1e-6, 0);
    CHECK_CLOSE(a.kld[1], want_kld[1], 1e-6, 0);
    CHECK_CLOSE(a.p_diff[0], want_dp[0], 1e-6, 0);
    CHECK_CLOSE(a.p_diff[1], want_dp[1], 1e-6, 0);
    CHECK(a.n_same_top == 1, "token 0: tie broken to index 0 = base top; token 1: 0 vs 1");
    CHECK_CLOSE(a.sum_nll, -log(softmax_at(mine[0], 3, 1)) - log(softmax_at(mine[1], 3, 2)),
                1e-9, 0);
    CHECK_CLOSE(a.sum_nll_base,
                -log(softmax_at(base[0], 3, 1)) - log(softmax_at(base[1], 3, 2)), 1e-6, 0);
    imc_kld_acc_free(&a);
}

static void test_percentiles(void)
{
    float v[101];
    for (int i = 0; i <= 100; i++) {
        v[i] = (float)i;
    }
    CHECK_CLOSE(imc_kld_percentile(v, 101, 0.999), 99.9, 1e-9, 0);
    CHECK_CLOSE(imc_kld_percentile(v, 101, 0.95), 95.0, 1e-9, 0);
    CHECK_CLOSE(imc_kld_percentile(v, 101, 0.001), 0.1, 1e-9, 0);
    CHECK(imc_kld_percentile(v, 101, 0.0) == 0.0 && imc_kld_percentile(v, 101, 1.0) == 100.0,
          "ends");
    CHECK(imc_kld_median(v, 101) == 50.0, "odd median");
    const float w[4] = {1, 2, 3, 4};
    CHECK(imc_kld_median(w, 4) == 2.5, "even median");
    CHECK_CLOSE(imc_kld_percentile(w, 4, 0.25), 1.75, 1e-12, 0);

    // 1..20: mean 10.5, population variance (20² − 1)/12 = 33.25.
    double s = 0, s2 = 0;
    for (int i = 1; i <= 20; i++) {
        s += i;
        s2 += (double)i * i;
    }
    struct imc_kld_mean m = imc_kld_mean_unc(s, s2, 20);
    CHECK_CLOSE(m.val, 10.5, 0, 1e-15);
    CHECK_CLOSE(m.unc, sqrt(33.25 / 19), 0, 1e-12);
    m = imc_kld_mean_unc(55, 385, 10); // n <= 10: no uncertainty
    CHECK(m.val == 5.5 && m.unc == 0.0, "n = 10");
    // cov of (i, 2i) over 1..20 = 2 · 33.25 / 19
    CHECK_CLOSE(imc_kld_cov(s, 2 * s, 2 * s2, 20), 2 * 33.25 / 19, 0, 1e-12);
    CHECK(imc_kld_cov(1, 1, 1, 9) == 0.0, "n < 10: no covariance");
}

static bool file_bytes_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    for (int ca = 0, cb = 0; same && ca != EOF; ) {
        ca = fgetc(fa);
        cb = fgetc(fb);
        same = ca == cb;
    }
    if (fa) {
        fclose(fa);
    }
    if (fb) {
        fclose(fb);
    }
    return same;
}

// A chunk long enough for several pool jobs (599 scored rows: blocks of 512 and 256), scored
// row by row (the specification) and by the chunk functions on no pool and pools of 1-4
// threads: every sum, every per-token value and every byte of the base file the same.
static void test_pooled(const char *dir)
{
    enum { CTX = 1200, V = 37, NS = CTX - 1 - CTX / 2, LEN = 2 * ((V + 1) / 2) + 4 };
    static float logits[(CTX - CTX / 2) * V], base[(CTX - CTX / 2) * V];
    static uint16_t rows[(CTX - CTX / 2) * LEN];
    static int32_t tokens[CTX];
    static double nll[NS];
    fill_random(logits, (CTX - CTX / 2) * V, 6.0f);
    fill_random(base, (CTX - CTX / 2) * V, 6.0f);
    for (int i = 0; i < CTX; i++) {
        tokens[i] = (int32_t)((i * 7919u + 13u) % V);
    }
    for (int r = 0; r < NS; r++) {
        imc_kld_encode_row(base + r * V, V, rows + r * LEN);
    }
    struct imc_ppl_acc pref;
    struct imc_kld_acc kref;
    imc_ppl_init(&pref);
    CHECK(imc_kld_acc_init(&kref, NS) == IMC_OK, "acc init");
    for (int r = 0; r < NS; r++) {
        const int32_t t = tokens[CTX / 2 + r + 1];
        imc_ppl_add(&pref, imc_ppl_nll_row(logits + r * V, V, t));
        imc_kld_add_row(&kref, logits + r * V, V, rows + r * LEN, t);
    }
    char ref_path[512], path[512];
    snprintf(ref_path, sizeof(ref_path), "%s/pooled_ref.kld", dir);
    snprintf(path, sizeof(path), "%s/pooled.kld", dir);
    for (int nt = 0; nt <= 4; nt++) {
        struct imc_exec *ex = NULL;
        if (nt > 0) {
            CHECK(imc_exec_init(&ex, nt) == IMC_OK, "pool of %d", nt);
        }
        struct imc_ppl_acc p;
        struct imc_kld_acc k;
        imc_ppl_init(&p);
        CHECK(imc_kld_acc_init(&k, NS) == IMC_OK, "acc init");
        imc_ppl_add_chunk(ex, &p, logits, CTX, V, tokens);
        imc_kld_add_chunk(ex, &k, logits, CTX, V, rows, tokens);
        imc_ppl_chunk_nll(ex, logits, CTX, V, tokens, nll);
        bool nll_same = true;
        for (int r = 0; r < NS; r++) {
            nll_same = nll_same && nll[r] == imc_ppl_nll_row(logits + r * V, V,
                                                             tokens[CTX / 2 + r + 1]);
        }
        CHECK(nll_same, "%d threads: imc_ppl_chunk_nll differs from imc_ppl_nll_row", nt);
        CHECK(memcmp(&p, &pref, sizeof(p)) == 0, "%d threads: PPL sums differ", nt);
        CHECK(k.count == NS && memcmp(k.kld, kref.kld, sizeof(float) * NS) == 0 &&
                  memcmp(k.p_diff, kref.p_diff, sizeof(float) * NS) == 0 &&
                  k.sum_nll == kref.sum_nll && k.sum_nll2 == kref.sum_nll2 &&
                  k.sum_nll_base == kref.sum_nll_base && k.sum_nll_base2 == kref.sum_nll_base2 &&
                  k.sum_nll_nll_base == kref.sum_nll_nll_base && k.sum_kld == kref.sum_kld &&
                  k.sum_kld2 == kref.sum_kld2 && k.sum_p_diff == kref.sum_p_diff &&
                  k.sum_p_diff2 == kref.sum_p_diff2 && k.sum_p_diff4 == kref.sum_p_diff4 &&
                  k.max_p_diff == kref.max_p_diff && k.n_same_top == kref.n_same_top,
              "%d threads: KLD values differ from the row-by-row path", nt);
        imc_kld_acc_free(&k);
        struct imc_kld_writer w;
        CHECK(imc_kld_writer_open(&w, nt ? path : ref_path, CTX, V, 1, tokens) == IMC_OK &&
                  imc_kld_writer_add_chunk(&w, ex, logits) == IMC_OK &&
                  imc_kld_writer_commit(&w) == IMC_OK,
              "%d threads: write a base file", nt);
        if (nt > 0) {
            CHECK(file_bytes_equal(path, ref_path), "%d threads: base file bytes differ", nt);
        }
        imc_exec_free(ex);
    }
    imc_kld_acc_free(&kref);
}

int main(void)
{
    char dir[] = "/tmp/imc_test_kld_XXXXXX";
    if (!mkdtemp(dir)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    test_encode();
    test_file(dir);
    test_bad_files(dir);
    test_identical();
    test_hand();
    test_percentiles();
    test_pooled(dir);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        printf("warning: could not remove %s\n", dir);
    }
    return check_summary();
}
