/*
 * types/quant_search.c: the weighted scale searches shared by every quantizer, and the one
 * quantization row loop. Each search minimizes Σ w·(x - x̂)² over a small set of candidate
 * scales around the max-abs (or range) scale, refitting each candidate by least squares and
 * then polishing the best one by alternating "nearest level" and "refit" steps. DESIGN.md §4.
 */
#include "types/quant_priv.h"

#include <float.h>

void imc_qz_encode_rows(const float *src, void *dst, int64_t n, int64_t bs, size_t ts,
                        const float *qw, block_encode_fn enc)
{
    float w[IMC_QK_K];
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += bs, b += ts) {
        const float *x = src + i;
        float wmax = 0;
        if (qw) {
            for (int64_t j = 0; j < bs; j++) {
                w[j] = qw[i + j] > 0 ? qw[i + j] : 0; // NaN and negatives count as 0
                wmax = fmaxf(wmax, w[j]);
            }
        }
        if (wmax > 0 && isfinite(wmax)) { // scale-free objective: normalize against underflow
            for (int64_t j = 0; j < bs; j++) {
                w[j] /= wmax;
            }
        } else { // default: sigma² + x²
            float s2 = 0;
            for (int64_t j = 0; j < bs; j++) {
                s2 += x[j] * x[j];
            }
            s2 /= (float)bs;
            for (int64_t j = 0; j < bs; j++) {
                w[j] = s2 + x[j] * x[j];
            }
        }
        enc(x, w, b);
    }
}

int imc_qz_grid_nearest(const int8_t *g, float v)
{
    int lo = 0, hi = 15;
    if (!(v > g[0])) { // also NaN
        return 0;
    }
    if (v >= g[15]) {
        return 15;
    }
    while (hi - lo > 1) { // g[lo] < v <= g[hi]
        int mid = (lo + hi) / 2;
        if (v > g[mid]) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return v - g[lo] < g[hi] - v ? lo : hi;
}

// Largest-magnitude element of x (signed), 0 when none.
static float max_abs_elem(int n, const float *x)
{
    float amax = 0, xm = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            xm = x[i];
        }
    }
    return xm;
}

// Σ w·x·L and Σ w·L² for L = round(x·is) clamped to [lo, hi]; writes L.
static void sym_levels(int n, const float *x, const float *w, float is, int lo, int hi, int8_t *L,
                       float *slx, float *sll)
{
    float a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        int l = round_clamp(x[i] * is, lo, hi);
        L[i] = (int8_t)l;
        a += w[i] * x[i] * (float)l;
        b += w[i] * (float)(l * l);
    }
    *slx = a;
    *sll = b;
}

float imc_qz_scale(int n, const float *x, const float *w, int lo, int hi, float ref, int ntry,
               float step, int8_t *L)
{
    int8_t t[IMC_QK_K];
    float xm = max_abs_elem(n, x);
    if (fabsf(xm) < 1e-30f) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    // With a two-sided range, x_m may map to either end: ref, then the other end.
    const int sides = lo < 0 && hi > 0 ? 2 : 1;
    const float other = (float)(ref == (float)lo ? hi : lo);
    float best = -1, d = 0, slx, sll;
    for (int side = 0; side < sides; side++) {
        const float r = side == 0 ? ref : other;
        for (int k = -ntry; k <= ntry; k++) {
            sym_levels(n, x, w, (r + step * (float)k) / xm, lo, hi, t, &slx, &sll);
            if (sll > 0 && slx * slx > best * sll) { // max (Σwxl)²/Σwl² = min error
                best = slx * slx / sll;
                d = slx / sll;
                memcpy(L, t, (size_t)n);
            }
        }
    }
    if (best < 0) { // the weights see no nonzero level: plain max-abs scale
        d = xm / ref;
        sym_levels(n, x, w, 1 / d, lo, hi, L, &slx, &sll);
        return d;
    }
    for (int it = 0; it < 3 && d != 0; it++) { // polish: nearest levels for d, then refit
        sym_levels(n, x, w, 1 / d, lo, hi, t, &slx, &sll);
        if (!(sll > 0 && slx * slx > best * sll * (1 + 1e-6f))) {
            break;
        }
        best = slx * slx / sll;
        d = slx / sll;
        memcpy(L, t, (size_t)n);
    }
    return d;
}

// Affine levels L = round((x - mn0)·is) in [0, hi], then the weighted least-squares (d, mn)
// for them (mn <= 0 if nonpos). Returns the weighted error, FLT_MAX if the fit is degenerate.
static float aff_fit(int n, const float *x, const float *w, float is, float mn0, int hi,
                     bool nonpos, uint8_t *L, float *d, float *mn)
{
    float sw = 0, sl = 0, sll = 0, sx = 0, slx = 0;
    for (int i = 0; i < n; i++) {
        int l = round_clamp((x[i] - mn0) * is, 0, hi);
        L[i] = (uint8_t)l;
        sw += w[i];
        sl += w[i] * (float)l;
        sll += w[i] * (float)(l * l);
        sx += w[i] * x[i];
        slx += w[i] * (float)l * x[i];
    }
    float det = sw * sll - sl * sl;
    if (!(det > 1e-12f * sw * sll)) {
        return FLT_MAX;
    }
    float dd = (sw * slx - sl * sx) / det, m = (sll * sx - sl * slx) / det;
    if (nonpos && m > 0) {
        m = 0;
        dd = slx / sll;
    }
    dd = fmaxf(dd, 0);
    float err = 0;
    for (int i = 0; i < n; i++) {
        float e = dd * (float)L[i] + m - x[i];
        err += w[i] * e * e;
    }
    *d = dd;
    *mn = m;
    return err;
}

float imc_qz_affine(int n, const float *x, const float *w, int hi, bool nonpos_min, int ntry,
                float step, uint8_t *L, float *mn)
{
    uint8_t t[IMC_QK_K];
    float lo = x[0], up = x[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, x[i]);
        up = fmaxf(up, x[i]);
    }
    if (nonpos_min && lo > 0) {
        lo = 0;
    }
    if (!(up > lo)) { // constant block
        memset(L, 0, (size_t)n);
        *mn = lo;
        return 0;
    }
    float best = FLT_MAX, d = 0, m = lo, td, tm;
    for (int k = -ntry; k <= ntry; k++) {
        float err = aff_fit(n, x, w, ((float)hi + step * (float)k) / (up - lo), lo, hi,
                            nonpos_min, t, &td, &tm);
        if (err < best) {
            best = err;
            d = td;
            m = tm;
            memcpy(L, t, (size_t)n);
        }
    }
    if (best == FLT_MAX) { // degenerate weights: the plain range scale
        d = (up - lo) / (float)hi;
        for (int i = 0; i < n; i++) {
            L[i] = (uint8_t)round_clamp((x[i] - lo) / d, 0, hi);
        }
        *mn = lo;
        return d;
    }
    for (int it = 0; it < 3 && d > 0; it++) { // polish
        float err = aff_fit(n, x, w, 1 / d, m, hi, nonpos_min, t, &td, &tm);
        if (!(err < best * (1 - 1e-6f))) {
            break;
        }
        best = err;
        d = td;
        m = tm;
        memcpy(L, t, (size_t)n);
    }
    *mn = m;
    return d;
}

// Grid levels L = nearest(x·is); Σ w·x·g and Σ w·g².
static void grid_levels(int n, const float *x, const float *w, const int8_t *g, float is,
                        uint8_t *L, float *sqx, float *sqq)
{
    float a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        int l = imc_qz_grid_nearest(g, x[i] * is);
        float v = g[l];
        L[i] = (uint8_t)l;
        a += w[i] * x[i] * v;
        b += w[i] * v * v;
    }
    *sqx = a;
    *sqq = b;
}

float imc_qz_grid(int n, const float *x, const float *w, const int8_t *g, int ntry, uint8_t *L)
{
    uint8_t t[IMC_QK_K];
    float xm = max_abs_elem(n, x), best = -1, d = 0, sqx, sqq;
    if (fabsf(xm) < 1e-30f) {
        memset(L, imc_qz_grid_nearest(g, 0), (size_t)n);
        return 0;
    }
    for (int side = 0; side < 2; side++) { // x_m near the negative end, then the positive one
        const float r = side == 0 ? (float)g[0] : (float)g[15];
        for (int k = -ntry; k <= ntry; k++) {
            grid_levels(n, x, w, g, (r + (float)k) / xm, t, &sqx, &sqq);
            if (sqq > 0 && sqx * sqx > best * sqq) {
                best = sqx * sqx / sqq;
                d = sqx / sqq;
                memcpy(L, t, (size_t)n);
            }
        }
    }
    if (best < 0) {
        d = xm / (float)g[0];
        grid_levels(n, x, w, g, 1 / d, L, &sqx, &sqq);
        return d;
    }
    for (int it = 0; it < 3 && d != 0; it++) {
        grid_levels(n, x, w, g, 1 / d, t, &sqx, &sqq);
        if (!(sqq > 0 && sqx * sqx > best * sqq * (1 + 1e-6f))) {
            break;
        }
        best = sqx * sqx / sqq;
        d = sqx / sqq;
        memcpy(L, t, (size_t)n);
    }
    return d;
}

