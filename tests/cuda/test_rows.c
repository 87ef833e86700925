/*
 * tests/cuda/test_rows: kernels/cuda/rows.cu against kernels/ref/rows.c and imc_find_nonfinite,
 * bit for bit (no tolerance: every output is a copy or the reference's own roundings), emulated
 * in every resume order and on the GPU where there is one (tests/cuda/ccheck.h):
 *   copy            head strides token-major, head-major and 0 (one source row for every head);
 *                   the destination's gaps keep their canary
 *   move_rows       gather, scatter, both and neither; rows the scatter misses keep the canary
 *   add             lengths that are and are not multiples of the block; rows with y rows
 *                   strided (gaps) and broadcast (ldy 0)
 *   moe_wsum        k = 1..8, with and without the shared-expert add, on floats of varied
 *                   exponents, where a fused multiply-add gives other bits (checked on the host)
 *   find_nonfinite  NaN, +inf, -inf alone at the ends and inside, NaN in the stride padding
 *                   (ignored), several at once (the smallest flat index wins), more rows than
 *                   a grid's y extent
 */
#include <float.h>
#include <math.h>

#include "ccheck.h"

#define CANARY_BITS 0x7fc0cafeu // a quiet NaN with a payload: what no kernel writes

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

// Returns n new floats with random mantissas, signs and exponents in 2^-21 .. 2^20.
static float *varied(struct krng *r, int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(*p));
    for (int64_t i = 0; p && i < n; i++) {
        p[i] = ldexpf(krng_unif(r), (int)(krng_next(r) % 41) - 20);
    }
    return p;
}

// Returns n new floats holding CANARY_BITS.
static float *canary(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(*p));
    const uint32_t c = CANARY_BITS;
    for (int64_t i = 0; p && i < n; i++) {
        memcpy(&p[i], &c, sizeof(c));
    }
    return p;
}

// got and ref hold the same n floats bit for bit (NaN payloads and -0 included).
static void check_bits(const char *what, const float *got, const float *ref, int64_t n)
{
    int64_t i = 0;
    while (i < n && fbits(got[i]) == fbits(ref[i])) {
        i++;
    }
    CHECK(i == n, "%s: element %lld of %lld is 0x%08x, the reference 0x%08x", what, (long long)i,
          (long long)n, i < n ? fbits(got[i]) : 0u, i < n ? fbits(ref[i]) : 0u);
}

// ---- copy -------------------------------------------------------------------------------------

// Floats an array addressed as base + t·ld_tok + h·ld_head + i spans.
static int64_t extent(const struct imc_copy_args *a, int64_t ld_tok, int64_t ld_head)
{
    return (a->n_tok - 1) * ld_tok + (a->n_head - 1) * ld_head + a->n;
}

static void copy_case(const struct cdev *d, struct krng *r, struct imc_copy_args a, int layout)
{
    const int64_t nd = extent(&a, a.d_ld_tok, a.d_ld_head) + 3;
    const int64_t ns = extent(&a, a.s_ld_tok, a.s_ld_head);
    float *src = varied(r, ns), *dst = canary(nd), *ref = canary(nd);
    a.src = src;
    a.dst = ref;
    imc_ref_copy(&a);
    struct imc_copy_args da = a;
    da.src = cdev_up(d, src, (size_t)ns * 4);
    da.dst = cdev_up(d, dst, (size_t)nd * 4);
    CHECK(CDEV_FN(d, copy)(NULL, &da) == IMC_OK, "copy launch");
    CDEV_FN(d, dev_free)((void *)da.src);
    cdev_down(d, dst, da.dst, (size_t)nd * 4);
    char what[96];
    snprintf(what, sizeof(what), "%s copy %lldx%lldx%lld layout %d", d->name, (long long)a.n_tok,
             (long long)a.n_head, (long long)a.n, layout);
    check_bits(what, dst, ref, nd); // the gaps too: still the canary
    free(src);
    free(dst);
    free(ref);
}

static void test_copy(const struct cdev *d, struct krng *r)
{
    static const int64_t shapes[][3] = {{1, 1, 1},   {3, 2, 17},  {5, 4, 300},
                                        {300, 1, 7}, {2, 200, 3}, {37, 8, 129}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const int64_t t = shapes[s][0], h = shapes[s][1], n = shapes[s][2];
        const struct imc_copy_args layouts[3] = {
            // token-major both, gaps after each head and token
            {NULL, h * (n + 3) + 5, n + 3, NULL, h * (n + 1) + 2, n + 1, t, h, n},
            // one source row per token for every head
            {NULL, h * (n + 3) + 5, n + 3, NULL, n + 2, 0, t, h, n},
            // head-major both
            {NULL, n + 2, t * (n + 2) + 1, NULL, n + 1, t * (n + 1) + 4, t, h, n},
        };
        for (int l = 0; l < 3; l++) {
            copy_case(d, r, layouts[l], l);
        }
    }
    const struct imc_copy_args none = {NULL, 1, 1, NULL, 1, 1, 3, 2, 0};
    CHECK(CDEV_FN(d, copy)(NULL, &none) == IMC_OK, "copy of empty rows");
}

// ---- move_rows --------------------------------------------------------------------------------

// mode bit 0: gather (src_idx), bit 1: scatter (dst_idx, distinct).
static void move_case(const struct cdev *d, struct krng *r, int64_t n, int64_t dd, int mode)
{
    const int64_t n_src = n + 7, n_dst = n + 9;
    int32_t *si = malloc((size_t)n * sizeof(*si)), *di = malloc((size_t)n_dst * sizeof(*di));
    for (int64_t i = 0; i < n_dst; i++) {
        di[i] = (int32_t)i;
    }
    for (int64_t i = 0; i < n; i++) { // the first n of a shuffle of the destination rows
        const int64_t j = i + (int64_t)(krng_next(r) % (uint64_t)(n_dst - i));
        const int32_t v = di[i];
        di[i] = di[j];
        di[j] = v;
        si[i] = (int32_t)(krng_next(r) % (uint64_t)n_src);
    }
    const int32_t *hsi = (mode & 1) ? si : NULL, *hdi = (mode & 2) ? di : NULL;
    float *src = varied(r, n_src * dd), *dst = canary(n_dst * dd), *ref = canary(n_dst * dd);
    imc_ref_move_rows(ref, hdi, src, hsi, n, dd);
    float *dsrc = cdev_up(d, src, (size_t)(n_src * dd) * 4);
    float *ddst = cdev_up(d, dst, (size_t)(n_dst * dd) * 4);
    int32_t *dsi = hsi ? cdev_up(d, si, (size_t)n * 4) : NULL;
    int32_t *ddi = hdi ? cdev_up(d, di, (size_t)n * 4) : NULL;
    CHECK(CDEV_FN(d, move_rows)(NULL, ddst, ddi, dsrc, dsi, n, dd) == IMC_OK, "move_rows launch");
    cdev_down(d, dst, ddst, (size_t)(n_dst * dd) * 4);
    CDEV_FN(d, dev_free)(dsrc);
    CDEV_FN(d, dev_free)(dsi);
    CDEV_FN(d, dev_free)(ddi);
    char what[96];
    snprintf(what, sizeof(what), "%s move_rows n %lld d %lld mode %d", d->name, (long long)n,
             (long long)dd, mode);
    check_bits(what, dst, ref, n_dst * dd);
    free(si);
    free(di);
    free(src);
    free(dst);
    free(ref);
}

static void test_move_rows(const struct cdev *d, struct krng *r)
{
    static const int64_t shapes[][2] = {{1, 1}, {5, 3}, {40, 64}, {300, 257}, {7, 1000}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        for (int mode = 0; mode < 4; mode++) {
            move_case(d, r, shapes[s][0], shapes[s][1], mode);
        }
    }
}

// ---- add --------------------------------------------------------------------------------------

static void test_add(const struct cdev *d, struct krng *r)
{
    static const int64_t lens[] = {1, 31, 32, 255, 256, 257, 1000, 65537, 100003};
    for (size_t s = 0; s < sizeof(lens) / sizeof(lens[0]); s++) {
        // one row of n; rows of n / 7 with y rows strided (gaps) and broadcast (ldy 0)
        const int64_t n = lens[s], w = n / 7 > 0 ? n / 7 : 1, nr = n / w;
        const int64_t shapes[3][3] = {{1, n, n}, {nr, w, w + 3}, {nr, w, 0}};
        for (int c = 0; c < 3; c++) {
            const int64_t rows = shapes[c][0], cols = shapes[c][1], ldy = shapes[c][2];
            const int64_t ny = (rows - 1) * ldy + cols, nx = rows * cols;
            float *x = varied(r, nx), *y = varied(r, ny), *ref = kdup(x, nx);
            imc_ref_add(ref, y, rows, cols, ldy);
            float *dx = cdev_up(d, x, (size_t)nx * 4), *dy = cdev_up(d, y, (size_t)ny * 4);
            CHECK(CDEV_FN(d, add)(NULL, dx, dy, rows, cols, ldy) == IMC_OK, "add launch");
            cdev_down(d, x, dx, (size_t)nx * 4);
            CDEV_FN(d, dev_free)(dy);
            char what[80];
            snprintf(what, sizeof(what), "%s add rows %lld n %lld ldy %lld", d->name,
                     (long long)rows, (long long)cols, (long long)ldy);
            check_bits(what, x, ref, nx);
            free(x);
            free(y);
            free(ref);
        }
    }
}

// ---- moe_wsum ---------------------------------------------------------------------------------

// Elements of y where the slots summed as a chain of fmaf (the mutation the kernel must not
// make) differ from the reference ref: the data tells fused from unfused apart.
static int64_t fused_differs(const float *ref, const float *rows, const int32_t *pos,
                             const float *w, const float *add, int64_t n, int64_t k, int64_t d)
{
    int64_t diff = 0;
    for (int64_t t = 0; t < n; t++) {
        for (int64_t i = 0; i < d; i++) {
            float acc = 0.0f;
            for (int64_t s = 0; s < k; s++) {
                const float row = rows[(int64_t)pos[t * k + s] * d + i];
                acc = s == 0 ? w[t * k] * row : fmaf(w[t * k + s], row, acc);
            }
            acc = add ? acc + add[t * d + i] : acc;
            diff += fbits(acc) != fbits(ref[t * d + i]);
        }
    }
    return diff;
}

// Returns fused_differs of the case.
static int64_t moe_case(const struct cdev *d, struct krng *r, int64_t n, int64_t k, int64_t dd,
                        int with_add)
{
    const int64_t n_rows = n * k + 3;
    int32_t *pos = malloc((size_t)(n * k) * sizeof(*pos));
    for (int64_t i = 0; i < n * k; i++) {
        pos[i] = (int32_t)(krng_next(r) % (uint64_t)n_rows);
    }
    float *rows = varied(r, n_rows * dd), *w = varied(r, n * k);
    float *add = with_add ? varied(r, n * dd) : NULL, *y = canary(n * dd), *ref = canary(n * dd);
    imc_ref_moe_wsum(ref, rows, pos, w, add, n, k, dd);
    float *drows = cdev_up(d, rows, (size_t)(n_rows * dd) * 4),
          *dw = cdev_up(d, w, (size_t)n * k * 4);
    int32_t *dpos = cdev_up(d, pos, (size_t)(n * k) * 4);
    float *dadd = add ? cdev_up(d, add, (size_t)(n * dd) * 4) : NULL;
    float *dy = cdev_up(d, y, (size_t)(n * dd) * 4);
    CHECK(CDEV_FN(d, moe_wsum)(NULL, dy, drows, dpos, dw, dadd, n, k, dd) == IMC_OK,
          "moe_wsum launch");
    cdev_down(d, y, dy, (size_t)(n * dd) * 4);
    CDEV_FN(d, dev_free)(drows);
    CDEV_FN(d, dev_free)(dw);
    CDEV_FN(d, dev_free)(dpos);
    CDEV_FN(d, dev_free)(dadd);
    char what[96];
    snprintf(what, sizeof(what), "%s moe_wsum n %lld k %lld d %lld add %d", d->name, (long long)n,
             (long long)k, (long long)dd, with_add);
    check_bits(what, y, ref, n * dd);
    const int64_t fused = fused_differs(ref, rows, pos, w, add, n, k, dd);
    free(pos);
    free(rows);
    free(w);
    free(add);
    free(y);
    free(ref);
    return fused;
}

static void test_moe_wsum(const struct cdev *d, struct krng *r)
{
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {17, 256}, {5, 300}};
    int64_t fused = 0;
    for (int64_t k = 1; k <= 8; k++) {
        for (int with_add = 0; with_add < 2; with_add++) {
            const int64_t *s = shapes[(k + with_add) % 4];
            fused += moe_case(d, r, s[0], k, s[1], with_add);
        }
    }
    CHECK(fused > 0, "moe_wsum: no case where a fused multiply-add changes the bits");
}

// ---- find_nonfinite ---------------------------------------------------------------------------

// x[off] = v, on the host and in device memory dx.
static void poke(const struct cdev *d, float *x, float *dx, int64_t off, float v)
{
    x[off] = v;
    CHECK(CDEV_FN(d, copy_to_dev)(NULL, dx + off, &v, sizeof(v)) == IMC_OK, "poke");
}

// The device's answer, and the reference's on x, which must agree; returns the answer.
static int64_t find_both(const struct cdev *d, const float *x, const float *dx, int64_t ld,
                         int64_t rows, int64_t n, int64_t *didx, const char *what)
{
    int64_t got = 5; // to be overwritten
    CHECK(CDEV_FN(d, copy_to_dev)(NULL, didx, &got, sizeof(got)) == IMC_OK, "index upload");
    CHECK(CDEV_FN(d, find_nonfinite)(NULL, dx, ld, rows, n, didx) == IMC_OK, "launch");
    CHECK(CDEV_FN(d, copy_to_host)(NULL, &got, didx, sizeof(got)) == IMC_OK, "index download");
    const int64_t want = x ? imc_find_nonfinite(x, ld, rows, n) : -1;
    CHECK(got == want, "%s %s %lldx%lld ld %lld: %lld, the reference %lld", d->name, what,
          (long long)rows, (long long)n, (long long)ld, (long long)got, (long long)want);
    return got;
}

static void nonfinite_case(const struct cdev *d, struct krng *r, int64_t rows, int64_t n,
                           int64_t ld)
{
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    float *x = varied(r, rows * ld), *dx = cdev_up(d, NULL, (size_t)(rows * ld) * 4);
    int64_t *didx = cdev_up(d, NULL, sizeof(*didx));
    x[0] = FLT_MAX; // extreme but finite
    x[rows * ld - 1] = FLT_TRUE_MIN;
    CHECK(CDEV_FN(d, copy_to_dev)(NULL, dx, x, (size_t)(rows * ld) * 4) == IMC_OK, "upload");
    CHECK(find_both(d, x, dx, ld, rows, n, didx, "clean") == -1, "clean rows");
    for (int64_t p = n; p < ld; p++) { // padding of the first and the last row: not looked at
        poke(d, x, dx, p, NAN);
        poke(d, x, dx, (rows - 1) * ld + p, -INFINITY);
    }
    CHECK(find_both(d, x, dx, ld, rows, n, didx, "padding") == -1, "padding ignored");
    const int64_t spots[][2] = {{0, 0},
                                {0, n - 1},
                                {rows - 1, 0},
                                {rows - 1, n - 1},
                                {rows / 2, n / 2},
                                {(rows * 2) / 3, (n * 3) / 4}};
    const int n_spots = (int)(sizeof(spots) / sizeof(spots[0]));
    for (int s = 0; s < n_spots; s++) { // one bad value at a time
        const int64_t off = spots[s][0] * ld + spots[s][1];
        const float keep = x[off];
        poke(d, x, dx, off, bad[s % 3]);
        CHECK(find_both(d, x, dx, ld, rows, n, didx, "one") == spots[s][0] * n + spots[s][1],
              "spot %d", s);
        poke(d, x, dx, off, keep);
    }
    for (int s = n_spots - 1; s >= 0; s--) { // bad values accumulate: the smallest index wins
        poke(d, x, dx, spots[s][0] * ld + spots[s][1], bad[(s + 1) % 3]);
        find_both(d, x, dx, ld, rows, n, didx, "several");
    }
    CHECK(find_both(d, x, dx, ld, rows, 0, didx, "no columns") == -1, "no columns");
    CHECK(find_both(d, NULL, dx, ld, 0, n, didx, "no rows") == -1, "no rows");
    CDEV_FN(d, dev_free)(didx);
    CDEV_FN(d, dev_free)(dx);
    free(x);
}

static void test_find_nonfinite(const struct cdev *d, struct krng *r)
{
    static const int64_t shapes[][3] = {{1, 1, 1},    {1, 7, 9},       {3, 300, 301},
                                        {17, 64, 80}, {5, 1000, 1000}, {70000, 3, 4}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        nonfinite_case(d, r, shapes[s][0], shapes[s][1], shapes[s][2]);
    }
}

// ---- check_post -------------------------------------------------------------------------------

// Posts checks 0..n_chk-1 of the arrays x_c (rows x n at ld, a NaN or an infinity at bad[c] or
// none for bad[c] < 0) into a fresh record and compares it with the reference: the smallest id
// whose array has a non-finite value, its imc_find_nonfinite index and the value there.
static void check_post_case(const struct cdev *d, struct krng *r, int64_t rows, int64_t n,
                            int64_t ld, const int64_t *bad, int n_chk)
{
    struct imc_cuda_check_rec rec;
    memset(&rec, 0xFF, sizeof(rec));
    struct imc_cuda_check_rec *drec = cdev_up(d, &rec, sizeof(rec));
    int64_t want_id = -1, want_idx = -1;
    float want_v = 0.0f;
    for (int c = 0; c < n_chk; c++) {
        float *x = varied(r, rows * ld);
        for (int64_t p = n; p < ld; p++) { // padding: not looked at
            x[p] = NAN;
        }
        if (bad[c] >= 0) {
            x[(bad[c] / n) * ld + bad[c] % n] = c % 2 ? INFINITY : -NAN;
            x[rows * ld - 1 - (ld - n)] = NAN; // a later one in the same array
        }
        const int64_t idx = imc_find_nonfinite(x, ld, rows, n);
        if (idx >= 0 && want_id < 0) {
            want_id = c;
            want_idx = idx;
            want_v = x[(idx / n) * ld + idx % n];
        }
        float *dx = cdev_up(d, x, (size_t)(rows * ld) * 4);
        CHECK(CDEV_FN(d, check_post)(NULL, dx, ld, rows, n, c, drec) == IMC_OK, "post %d", c);
        CDEV_FN(d, dev_free)(dx); // the record holds no pointer into it
        free(x);
    }
    cdev_down(d, &rec, drec, sizeof(rec));
    const int64_t id = rec.key == ~0ull ? -1 : (int64_t)(rec.key >> IMC_CUDA_CHECK_INDEX_BITS);
    const int64_t idx = (int64_t)(rec.key & ((1ull << IMC_CUDA_CHECK_INDEX_BITS) - 1));
    uint32_t vb, wb;
    memcpy(&vb, &rec.value, 4);
    memcpy(&wb, &want_v, 4);
    CHECK(id == want_id && (id < 0 || (idx == want_idx && vb == wb)),
          "%s check_post %lldx%lld, %d checks: id %lld index %lld value %08x, the reference %lld "
          "%lld %08x",
          d->name, (long long)rows, (long long)n, n_chk, (long long)id, (long long)idx, vb,
          (long long)want_id, (long long)want_idx, wb);
}

static void test_check_post(const struct cdev *d, struct krng *r)
{
    static const int64_t none[4] = {-1, -1, -1, -1}, first[4] = {7, -1, 3, 0};
    static const int64_t later[4] = {-1, -1, 150, 2}, last[4] = {-1, -1, -1, 299};
    const int64_t *sets[] = {none, first, later, last};
    for (int s = 0; s < 4; s++) {
        check_post_case(d, r, 3, 100, 103, sets[s], 4);
        check_post_case(d, r, 3, 100, 100, sets[s], 4);
    }
    const int64_t one[1] = {64 * 1000 + 999};
    check_post_case(d, r, 70, 1000, 1001, one, 1);
    float x = NAN, *dx = cdev_up(d, &x, 4);
    struct imc_cuda_check_rec *drec = cdev_up(d, NULL, sizeof(struct imc_cuda_check_rec));
    CHECK(CDEV_FN(d, check_post)(NULL, dx, 1, 1, 1, IMC_CUDA_CHECK_MAX_ID, drec) == IMC_ERR_ARG,
          "an id beyond the key is refused");
    CDEV_FN(d, dev_free)(drec);
    CDEV_FN(d, dev_free)(dx);
}

static void run(const struct cdev *d, void *ctx)
{
    (void)ctx;
    struct krng r = {11};
    test_copy(d, &r);
    test_move_rows(d, &r);
    test_check_post(d, &r);
    test_add(d, &r);
    test_moe_wsum(d, &r);
    test_find_nonfinite(d, &r);
}

int main(void)
{
    cdev_run(run, NULL);
    return check_summary();
}
