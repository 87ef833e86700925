/*
 * tests/kernels/test_quant_roundtrip.c: the quantizers. Round trip of Gaussian rows within the
 * table's tol_rmse; weighted quantization (imatrix-style qw) lowers the weighted error
 * Σ qw·(x - x̂)² against qw = NULL; representable blocks come back exactly; edge rows (zeros,
 * constants, outliers) stay finite; the tolerance checker fails on a perturbed element.
 */
#include "types/types.h"
#include "tests/check.h"

#include <stdint.h>
#include <string.h>

#define N_ROW 4096

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double rng_unit(uint64_t *s) // (0, 1)
{
    return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

static void gaussian(uint64_t *s, float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(sqrt(-2 * log(rng_unit(s))) * cos(6.283185307179586 * rng_unit(s)));
    }
}

// RMS of (y - x) over RMS of x.
static double rel_rmse(const float *x, const float *y, int64_t n)
{
    double se = 0, s0 = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        s0 += (double)x[i] * x[i];
    }
    return s0 > 0 ? sqrt(se / s0) : sqrt(se);
}

// The round-trip criterion: finite and rel_rmse <= tol.
static bool within_tol(const float *x, const float *y, int64_t n, double tol)
{
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            return false;
        }
    }
    return rel_rmse(x, y, n) <= tol;
}

static double weighted_err(const float *x, const float *y, const float *w, int64_t n)
{
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        e += (double)w[i] * ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
    }
    return e;
}

static void roundtrip(const struct imc_type_traits *t, const float *x, float *y, int64_t n,
                      const float *qw, uint8_t *q)
{
    t->from_float(x, q, n, qw);
    t->to_float(q, y, n);
}

static uint8_t qbuf[N_ROW * 4];
static float xbuf[N_ROW], ybuf[N_ROW], wbuf[N_ROW];

static void test_gaussian(uint32_t type)
{
    const struct imc_type_traits *t = imc_type_traits(type);
    uint64_t s = 42;
    gaussian(&s, xbuf, N_ROW);
    roundtrip(t, xbuf, ybuf, N_ROW, NULL, qbuf);
    double r = rel_rmse(xbuf, ybuf, N_ROW);
    printf("  %-7s rmse/rms %.5f (tol %.3f)\n", t->name, r, t->tol_rmse);
    CHECK(within_tol(xbuf, ybuf, N_ROW, t->tol_rmse), "%s: rmse/rms %g > %g", t->name, r,
          t->tol_rmse);
    if (type == 0) {
        CHECK(memcmp(xbuf, ybuf, sizeof(xbuf)) == 0, "f32 is exact");
    }
    // The checker is not vacuous: one element pushed past the tolerance fails it.
    double norm = 0;
    for (int i = 0; i < N_ROW; i++) {
        norm += (double)xbuf[i] * xbuf[i];
    }
    ybuf[123] += (float)(2 * (t->tol_rmse + 1e-3) * sqrt(norm));
    CHECK(!within_tol(xbuf, ybuf, N_ROW, t->tol_rmse), "%s: perturbed row passes", t->name);
    ybuf[123] = NAN;
    CHECK(!within_tol(xbuf, ybuf, N_ROW, t->tol_rmse), "%s: nan passes", t->name);
    // Deterministic bytes.
    static uint8_t q2[N_ROW * 4];
    uint64_t bytes;
    CHECK(imc_type_row_bytes(type, N_ROW, &bytes), "row bytes");
    t->from_float(xbuf, q2, N_ROW, NULL);
    CHECK(memcmp(qbuf, q2, bytes) == 0, "%s: quantization is deterministic", t->name);
}

// qw: spikes = 1 everywhere and 1000 on a few columns; lognormal = exp(1.5 g).
static void make_qw(int pattern, uint64_t *s, float *w, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (pattern == 0) {
            w[i] = (i * 7) % 61 == 3 ? 1000.0f : 1.0f;
        } else {
            float g;
            gaussian(s, &g, 1);
            w[i] = expf(1.5f * g);
        }
    }
}

static void test_weighted(uint32_t type)
{
    const struct imc_type_traits *t = imc_type_traits(type);
    static const char *pname[2] = {"spikes", "lognormal"};
    for (int pattern = 0; pattern < 2; pattern++) {
        uint64_t s = 7 + (uint64_t)pattern;
        double e_w = 0, e_0 = 0;
        for (int row = 0; row < 4; row++) {
            gaussian(&s, xbuf, N_ROW);
            make_qw(pattern, &s, wbuf, N_ROW);
            roundtrip(t, xbuf, ybuf, N_ROW, wbuf, qbuf);
            e_w += weighted_err(xbuf, ybuf, wbuf, N_ROW);
            roundtrip(t, xbuf, ybuf, N_ROW, NULL, qbuf);
            e_0 += weighted_err(xbuf, ybuf, wbuf, N_ROW);
        }
        printf("  %-7s %-9s weighted error with qw / without: %.4f\n", t->name, pname[pattern],
               e_w / e_0);
        CHECK(e_w < (pattern == 0 ? 0.9 : 0.98) * e_0, "%s %s: weighted error %g vs %g without",
              t->name, pname[pattern], e_w, e_0);
    }
    // All-zero importance carries no information: same bytes as qw = NULL.
    static uint8_t q2[N_ROW * 4];
    uint64_t bytes;
    imc_type_row_bytes(type, N_ROW, &bytes);
    memset(wbuf, 0, sizeof(wbuf));
    t->from_float(xbuf, qbuf, N_ROW, wbuf);
    t->from_float(xbuf, q2, N_ROW, NULL);
    CHECK(memcmp(qbuf, q2, bytes) == 0, "%s: zero qw differs from NULL", t->name);
}

// Rows that are exactly representable come back exactly: the dequantization of random bytes
// (with a modest fp16 scale) is requantized and dequantized again.
static void test_representable(uint32_t type, double tol)
{
    const struct imc_type_traits *t = imc_type_traits(type);
    const int64_t n = 8 * t->block_size;
    uint64_t s = 99 + type;
    uint64_t bytes;
    imc_type_row_bytes(type, n, &bytes);
    for (uint64_t i = 0; i < bytes; i++) {
        qbuf[i] = (uint8_t)rng_next(&s);
    }
    for (int64_t b = 0; b < 8; b++) { // the fp16 scales: 0.5 (and min 0.25) for every block
        uint8_t *blk = qbuf + b * t->type_size;
        size_t off = type == 10 ? 80 : type == 11 ? 108 : type == 14 ? 208 : 0;
        blk[off] = 0x00, blk[off + 1] = 0x38;
        if (type == 3 || type == 7 || type == 10 || type == 12 || type == 13) {
            blk[off + 2] = 0x00, blk[off + 3] = 0x34;
        }
    }
    for (int64_t b = 0; b < 8 && (type == 3 || type == 7); b++) { // affine: cover the range
        uint8_t *blk = qbuf + b * t->type_size, *qs = blk + (type == 3 ? 4 : 8);
        qs[0] &= 0xf0;
        qs[1] |= 0x0f;
        if (type == 7) {
            blk[4] = (uint8_t)((blk[4] & ~3) | 2); // element 0: code 0, element 1: code 31
        }
    }
    for (int64_t b = 0; b < 8 && type == 8; b++) { // q8_0 levels: [-127, 127], full range
        for (int j = 0; j < 32; j++) {
            uint8_t *q = qbuf + b * t->type_size + 2 + j;
            *q = j == 0 ? 0x7f : *q == 0x80 ? 0x81 : *q;
        }
    }
    t->to_float(qbuf, xbuf, n);
    roundtrip(t, xbuf, ybuf, n, NULL, qbuf);
    double r = rel_rmse(xbuf, ybuf, n);
    CHECK(r <= tol, "%s: representable row: rmse/rms %g > %g", t->name, r, tol);
}

static void test_edges(uint32_t type)
{
    const struct imc_type_traits *t = imc_type_traits(type);
    const int64_t n = 1024;
    memset(xbuf, 0, sizeof(xbuf));
    roundtrip(t, xbuf, ybuf, n, NULL, qbuf);
    bool zero = true;
    for (int64_t i = 0; i < n; i++) {
        zero = zero && ybuf[i] == 0;
    }
    CHECK(zero, "%s: zeros", t->name);
    for (int64_t i = 0; i < n; i++) {
        xbuf[i] = 0.75f;
    }
    roundtrip(t, xbuf, ybuf, n, NULL, qbuf);
    CHECK(within_tol(xbuf, ybuf, n, 0.02), "%s: constant row: %g", t->name,
          rel_rmse(xbuf, ybuf, n));
    // Outliers (one positive, one negative, in different blocks) are reproduced and do not
    // disturb the blocks without one.
    uint64_t s = 5;
    gaussian(&s, xbuf, n);
    roundtrip(t, xbuf, ybuf, n, NULL, qbuf);
    const double clean = rel_rmse(xbuf, ybuf, n);
    xbuf[300] = 1000.0f;
    xbuf[700] = -400.0f;
    roundtrip(t, xbuf, ybuf, n, NULL, qbuf);
    CHECK(fabsf(ybuf[300] - 1000.0f) < 10.0f && fabsf(ybuf[700] + 400.0f) < 4.0f,
          "%s: outliers %g %g", t->name, ybuf[300], ybuf[700]);
    const int64_t bs = t->block_size, b1 = 300 / bs * bs, b2 = 700 / bs * bs;
    float *xs = wbuf;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) { // residuals of the blocks without an outlier
        if ((i < b1 || i >= b1 + bs) && (i < b2 || i >= b2 + bs)) {
            xs[m] = xbuf[i];
            ybuf[m++] = ybuf[i];
        }
    }
    CHECK(within_tol(xs, ybuf, m, 1.2 * clean), "%s: outlier-free blocks %g, %g before",
          t->name, rel_rmse(xs, ybuf, m), clean);
    for (int64_t i = 0; i < n; i++) {
        xbuf[i] *= 1e-4f;
        wbuf[i] = i % 2 ? 0 : 1e-30f; // tiny and zero weights
    }
    roundtrip(t, xbuf, ybuf, n, wbuf, qbuf);
    CHECK(within_tol(xbuf, ybuf, n, 0.1), "%s: small row, tiny weights: %g", t->name,
          rel_rmse(xbuf, ybuf, n));
}

int main(void)
{
    const uint32_t all[] = {0, 1, 30, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 20, 23};
    const uint32_t quant[] = {2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 20, 23};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        test_gaussian(all[i]);
    }
    for (size_t i = 0; i < sizeof(quant) / sizeof(quant[0]); i++) {
        test_weighted(quant[i]);
        test_edges(quant[i]);
    }
    // Legacy and iq4_nl blocks of random bytes are representable exactly.
    const uint32_t exact[] = {2, 3, 6, 7, 8, 20};
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        test_representable(exact[i], 1e-6);
    }
    return check_summary();
}
