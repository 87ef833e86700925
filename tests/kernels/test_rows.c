/*
 * tests/kernels/test_rows: the moves and adds of activations (kernels/kernels.h imc_*_copy,
 * _move_rows, _add, _moe_wsum) and the cpu and ref tables' entries for them and for
 * find_nonfinite, bitwise:
 *   - imc_cpu_* on pools of 1 and 3 threads (and ex NULL) against imc_ref_*; destination gaps
 *     (between strided rows, rows a scatter skips) keep a canary;
 *   - moe_wsum against the arithmetic written out here (each product rounded to float, slots
 *     added in order from the first product, then the shared expert), and against a fused
 *     multiply-add, which must differ on these values (so the check can fail);
 *   - the tables' find_nonfinite: the index of imc_find_nonfinite and the value there.
 * Shapes: rows 1..70 (tasks of 16 rows: partial last tasks), widths 1..1100, head strides 0
 * (one source row in every head) and gaps, gathers with repeated rows, scatters by a permutation.
 * Broken variants tried by hand: the copy reading the source with the destination's head stride
 * (24 checks fail), a move_rows task stopping one row short (180), the weighted sum fused
 * (fmaf per slot: 18).
 */
#include <math.h>

#include "kcheck.h"
#include "kernels/backend.h"

#define CANARY (-12345.0f)

static float *filled(int64_t n, float v)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; p && i < n; i++) {
        p[i] = v;
    }
    return p;
}

static bool same_bits(const float *a, const float *b, int64_t n)
{
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

static void check_copy(struct imc_exec *const *ex, struct krng *r)
{
    static const int64_t shapes[][3] = {{1, 1, 1},    {3, 2, 5},  {17, 4, 64},
                                        {33, 1, 512}, {70, 3, 7}, {16, 8, 1}};
    for (size_t c = 0; c < sizeof(shapes) / sizeof(shapes[0]); c++) {
        const int64_t nt = shapes[c][0], nh = shapes[c][1], n = shapes[c][2];
        for (int bcast = 0; bcast < 2; bcast++) {
            const int64_t s_head = bcast ? 0 : n + 3, s_tok = nh * (n + 3) + 1;
            const int64_t d_head = n + 2, d_tok = nh * d_head + 5, nd = nt * d_tok;
            float *src = kalloc_rand(r, nt * s_tok, 1.0f);
            float *ref = filled(nd, CANARY);
            const struct imc_copy_args a0 = {ref, d_tok, d_head, src, s_tok, s_head, nt, nh, n};
            imc_ref_copy(&a0);
            int64_t written = 0, kept = 0;
            for (int64_t i = 0; i < nd; i++) {
                written += ref[i] != CANARY;
                kept += ref[i] == CANARY;
            }
            CHECK(written == nt * nh * n && kept == nd - nt * nh * n,
                  "ref copy case %zu: %lld written, %lld canaries", c, (long long)written,
                  (long long)kept);
            const float *s0 = src + (nt - 1) * s_tok + (nh - 1) * s_head;
            CHECK(ref[(nt - 1) * d_tok + (nh - 1) * d_head + n - 1] == s0[n - 1],
                  "ref copy case %zu: last element", c);
            for (int e = 0; e < 3; e++) {
                float *y = filled(nd, CANARY);
                struct imc_copy_args a = a0;
                a.dst = y;
                imc_cpu_copy(ex[e], &a);
                CHECK(same_bits(y, ref, nd), "cpu copy case %zu bcast %d exec %d", c, bcast, e);
                free(y);
            }
            free(src);
            free(ref);
        }
    }
}

static void check_move_rows(struct imc_exec *const *ex, struct krng *r)
{
    static const int64_t ns[] = {1, 15, 16, 17, 70};
    static const int64_t ds[] = {1, 7, 1100};
    for (size_t a = 0; a < 5; a++) {
        for (size_t b = 0; b < 3; b++) {
            const int64_t n = ns[a], d = ds[b], m = n + 4; // m rows on either side
            float *src = kalloc_rand(r, m * d, 1.0f);
            int32_t *gi = malloc((size_t)n * sizeof(int32_t)), *si = malloc((size_t)n * 4);
            for (int64_t i = 0; i < n; i++) {
                gi[i] = (int32_t)(krng_next(r) % (uint64_t)m); // repeats allowed
                si[i] = (int32_t)i;
            }
            for (int64_t i = n - 1; i > 0; i--) { // a permutation of [0, n) shifted by 2
                const int64_t j = (int64_t)(krng_next(r) % (uint64_t)(i + 1));
                const int32_t t = si[i];
                si[i] = si[j];
                si[j] = t;
            }
            for (int64_t i = 0; i < n; i++) {
                si[i] += 2;
            }
            for (int kind = 0; kind < 4; kind++) { // none, gather, scatter, both
                const int32_t *sx = kind & 1 ? gi : NULL, *dx = kind & 2 ? si : NULL;
                float *ref = filled(m * d, CANARY);
                imc_ref_move_rows(ref, dx, src, sx, n, d);
                const int64_t r0 = dx ? 2 : 0;
                CHECK(ref[r0 * d] != CANARY && (dx || ref[n * d] == CANARY) &&
                          (!dx || (ref[0] == CANARY && ref[(n + 2) * d] == CANARY)),
                      "ref move_rows n %lld d %lld kind %d: rows written", (long long)n,
                      (long long)d, kind);
                for (int e = 0; e < 3; e++) {
                    float *y = filled(m * d, CANARY);
                    imc_cpu_move_rows(ex[e], y, dx, src, sx, n, d);
                    CHECK(same_bits(y, ref, m * d), "cpu move_rows n %lld d %lld kind %d exec %d",
                          (long long)n, (long long)d, kind, e);
                    free(y);
                }
                free(ref);
            }
            free(src);
            free(gi);
            free(si);
        }
    }
}

// Rows of n with y rows at stride ldy (n: the residual add, n + 5: gaps, 0: a bias row); row
// counts whose elements end inside a task of 65536 and across tasks.
static void check_add(struct imc_exec *const *ex, struct krng *r)
{
    static const int64_t shapes[][2] = {{1, 1}, {1, 1000}, {1, 65537}, {7, 9363}, {70, 3001}};
    for (size_t c = 0; c < 5; c++) {
        const int64_t rows = shapes[c][0], n = shapes[c][1];
        const int64_t lds[3] = {n, n + 5, 0};
        for (int l = 0; l < 3; l++) {
            const int64_t ldy = lds[l], nx = rows * n;
            float *x = kalloc_rand(r, nx, 3.0f), *y = kalloc_rand(r, (rows - 1) * ldy + n, 1e-3f);
            float *ref = kdup(x, nx);
            imc_ref_add(ref, y, rows, n, ldy);
            int64_t exact = 0;
            for (int64_t t = 0; t < rows; t++) {
                for (int64_t i = 0; i < n; i++) {
                    exact += ref[t * n + i] == x[t * n + i] + y[t * ldy + i];
                }
            }
            CHECK(exact == nx, "ref add rows %lld n %lld ldy %lld: %lld of the sums",
                  (long long)rows, (long long)n, (long long)ldy, (long long)exact);
            for (int e = 0; e < 3; e++) {
                float *z = kdup(x, nx);
                imc_cpu_add(ex[e], z, y, rows, n, ldy);
                CHECK(same_bits(z, ref, nx), "cpu add rows %lld n %lld ldy %lld exec %d",
                      (long long)rows, (long long)n, (long long)ldy, e);
                free(z);
            }
            free(x);
            free(y);
            free(ref);
        }
    }
}

// The weighted sum written out (the spec), or with one fused multiply-add per slot after the
// first (what must not be done).
static void wsum_spec(float *y, const float *rows, const int32_t *pos, const float *w,
                      const float *add, int64_t n, int64_t k, int64_t d, bool fused)
{
    for (int64_t t = 0; t < n; t++) {
        for (int64_t i = 0; i < d; i++) {
            volatile float acc = w[t * k] * rows[(int64_t)pos[t * k] * d + i];
            for (int64_t s = 1; s < k; s++) {
                const float wv = w[t * k + s], xv = rows[(int64_t)pos[t * k + s] * d + i];
                if (fused) {
                    acc = fmaf(wv, xv, acc);
                } else {
                    volatile float v = wv * xv;
                    acc = acc + v;
                }
            }
            y[t * d + i] = add ? acc + add[t * d + i] : acc;
        }
    }
}

static void check_wsum(struct imc_exec *const *ex, struct krng *r)
{
    static const int64_t shapes[][3] = {{1, 1, 1}, {5, 2, 33}, {16, 8, 64}, {37, 6, 300}};
    for (size_t c = 0; c < 4; c++) {
        const int64_t n = shapes[c][0], k = shapes[c][1], d = shapes[c][2], np = n * k;
        float *rows = kalloc_rand(r, np * d, 1.0f), *w = kalloc_rand(r, np, 0.5f);
        float *add = kalloc_rand(r, n * d, 1.0f);
        int32_t *pos = malloc((size_t)np * sizeof(int32_t));
        for (int64_t q = 0; q < np; q++) {
            pos[q] = (int32_t)((q * 7 + 3) % np); // every row once, out of order
        }
        for (int with_add = 0; with_add < 2; with_add++) {
            const float *ad = with_add ? add : NULL;
            float *ref = filled(n * d, CANARY), *spec = filled(n * d, CANARY);
            float *fused = filled(n * d, CANARY);
            imc_ref_moe_wsum(ref, rows, pos, w, ad, n, k, d);
            wsum_spec(spec, rows, pos, w, ad, n, k, d, false);
            wsum_spec(fused, rows, pos, w, ad, n, k, d, true);
            CHECK(same_bits(ref, spec, n * d), "ref moe_wsum case %zu add %d: the spec", c,
                  with_add);
            if (k > 1 && n * d > 100) {
                CHECK(!same_bits(ref, fused, n * d),
                      "case %zu add %d: a fused sum gives the same bits (the check cannot fail)", c,
                      with_add);
            }
            for (int e = 0; e < 3; e++) {
                float *y = filled(n * d, CANARY);
                imc_cpu_moe_wsum(ex[e], y, rows, pos, w, ad, n, k, d);
                CHECK(same_bits(y, ref, n * d), "cpu moe_wsum case %zu add %d exec %d", c, with_add,
                      e);
                free(y);
            }
            free(ref);
            free(spec);
            free(fused);
        }
        free(rows);
        free(w);
        free(add);
        free(pos);
    }
}

static void check_tables_nonfinite(struct imc_exec *ex)
{
    const struct imc_backend *tb[2] = {imc_backend_cpu(), imc_backend_ref()};
    const int64_t rows = 9, n = 70, ld = 75;
    float *x = filled(rows * ld, 0.5f);
    for (int t = 0; t < 2; t++) {
        int64_t idx = 7;
        float v = 1.0f;
        CHECK(tb[t]->find_nonfinite(ex, x, ld, rows, n, &idx, &v) == IMC_OK && idx == -1,
              "%s: all finite gives %lld", tb[t]->name, (long long)idx);
    }
    x[3 * ld + 72] = NAN; // in a gap: not part of the rows
    x[6 * ld + 11] = -INFINITY;
    x[8 * ld + 2] = NAN;
    for (int t = 0; t < 2; t++) {
        int64_t idx = -1;
        float v = 0.0f;
        CHECK(tb[t]->find_nonfinite(ex, x, ld, rows, n, &idx, &v) == IMC_OK && idx == 6 * n + 11 &&
                  v == -INFINITY,
              "%s: index %lld value %g", tb[t]->name, (long long)idx, (double)v);
    }
    free(x);
}

static void check_table_entries(void)
{
    const struct imc_backend *tb[2] = {imc_backend_cpu(), imc_backend_ref()};
    for (int t = 0; t < 2; t++) {
        CHECK(tb[t]->copy && tb[t]->move_rows && tb[t]->add && tb[t]->moe_wsum &&
                  tb[t]->find_nonfinite && tb[t]->upload && tb[t]->download && tb[t]->zero &&
                  !tb[t]->buf_alloc && !tb[t]->check_post,
              "%s: an entry is NULL, or a host table claims memory of its own", tb[t]->name);
        const int32_t src[3] = {7, -1, 1 << 30};
        int32_t dst[3] = {0, 0, 0};
        CHECK(tb[t]->upload(NULL, dst, src, sizeof(src)) == IMC_OK &&
                  memcmp(dst, src, sizeof(src)) == 0,
              "%s: upload", tb[t]->name);
        int32_t back[3] = {0, 0, 0};
        CHECK(tb[t]->download(NULL, back, dst, sizeof(dst)) == IMC_OK &&
                  memcmp(back, src, sizeof(src)) == 0,
              "%s: download", tb[t]->name);
        CHECK(tb[t]->zero(NULL, back + 1, sizeof(back[1])) == IMC_OK && back[0] == 7 &&
                  back[1] == 0 && back[2] == 1 << 30,
              "%s: zero (one element, its neighbours kept)", tb[t]->name);
    }
}

int main(void)
{
    struct krng r = {20261205};
    struct imc_exec *ex[3] = {NULL, kexec(1), kexec(3)};
    check_table_entries();
    check_copy(ex, &r);
    check_move_rows(ex, &r);
    check_add(ex, &r);
    check_wsum(ex, &r);
    check_tables_nonfinite(ex[2]);
    imc_exec_free(ex[1]);
    imc_exec_free(ex[2]);
    return check_summary();
}
