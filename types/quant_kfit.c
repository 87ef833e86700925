/*
 * types/quant_kfit.c: fitting a 256-element K-quant super-block (q2_k..q6_k, iq4_xs): per
 * sub-block scale (and min) searches, then the sub-block scales quantized against their
 * importance (Σ w·v(L)² for a scale, Σ w for a min), then alternating least-squares refits of
 * the super-block scales with nearest levels, and a final per-sub-block local search of the
 * integer scales against the fp16-rounded super-block scales. Everything minimizes
 * Σ w·(x - x̂)². DESIGN.md §4.
 */
#include "types/quant_priv.h"

struct sb_spec {
    int nsub, len;       // sub-blocks and their length
    int lo, hi;          // level range (unused with a grid)
    const int8_t *grid;  // non-linear grid or NULL
    int smin, smax;      // integer sub-block scale range (mins: [0, smax])
    bool affine;         // mins present
};

static inline float sb_val(const struct sb_spec *s, int l)
{
    return s->grid ? (float)s->grid[l] : (float)l;
}

// Nearest levels of sub-block x[len] for step dl and offset ml; returns the weighted error.
static float sub_requant(const struct sb_spec *s, const float *x, const float *w, float dl,
                         float ml, int8_t *L)
{
    const float id = dl != 0 ? 1 / dl : 0;
    float err = 0;
    for (int i = 0; i < s->len; i++) {
        float v = (x[i] + ml) * id;
        int l = s->grid ? imc_qz_grid_nearest(s->grid, v) : round_clamp(v, s->lo, s->hi);
        float e = dl * sb_val(s, l) - ml - x[i];
        L[i] = (int8_t)l;
        err += w[i] * e * e;
    }
    return err;
}

static float sb_requant(const float *x, const float *w, const struct sb_spec *s, struct sb_fit *f)
{
    float err = 0;
    for (int j = 0; j < s->nsub; j++) {
        const int o = j * s->len;
        err += sub_requant(s, x + o, w + o, f->d * (float)f->sc[j], f->dmin * (float)f->mn[j],
                           f->L + o);
    }
    return err;
}

// Least-squares d (and dmin when any min is nonzero) for f's integer scales and levels.
static void sb_refit(const float *x, const float *w, const struct sb_spec *s, struct sb_fit *f)
{
    double saa = 0, sab = 0, sbb = 0, sax = 0, sbx = 0; // x ≈ d·A + dmin·B
    for (int i = 0; i < IMC_QK_K; i++) {
        double a = (double)f->sc[i / s->len] * sb_val(s, f->L[i]), b = -(double)f->mn[i / s->len];
        saa += w[i] * a * a;
        sab += w[i] * a * b;
        sbb += w[i] * b * b;
        sax += w[i] * a * x[i];
        sbx += w[i] * b * x[i];
    }
    double det = saa * sbb - sab * sab;
    if (sbb > 0 && det > 1e-9 * saa * sbb) {
        f->d = (float)((sbb * sax - sab * sbx) / det);
        f->dmin = (float)((saa * sbx - sab * sax) / det);
    } else if (saa > 0) {
        f->d = (float)((sax - f->dmin * sab) / saa);
    }
}

// For fixed d, dmin: tries each sub-block's scale (and min) one step up and down; keeps the
// best. Returns the total error.
static float sb_tune(const float *x, const float *w, const struct sb_spec *s, struct sb_fit *f)
{
    int8_t t[64];
    float total = 0;
    for (int j = 0; j < s->nsub; j++) {
        const int o = j * s->len, sc0 = f->sc[j], mn0 = f->mn[j];
        float best =
            sub_requant(s, x + o, w + o, f->d * (float)sc0, f->dmin * (float)mn0, f->L + o);
        for (int ds = -1; ds <= 1; ds++) {
            for (int dm = s->affine ? -1 : 0; dm <= (s->affine ? 1 : 0); dm++) {
                const int sc = sc0 + ds, mn = mn0 + dm;
                if ((ds == 0 && dm == 0) || sc < s->smin || sc > s->smax || mn < 0 ||
                    mn > (s->affine ? s->smax : 0)) {
                    continue;
                }
                float e = sub_requant(s, x + o, w + o, f->d * (float)sc, f->dmin * (float)mn, t);
                if (e < best) {
                    best = e;
                    f->sc[j] = sc;
                    f->mn[j] = mn;
                    memcpy(f->L + o, t, (size_t)s->len);
                }
            }
        }
        total += best;
    }
    return total;
}

// Alternates refit, nearest levels and scale tuning while the error drops; then rounds d, dmin
// to fp16 and tunes once more against the rounded values (the stored ones).
static void sb_polish(const float *x, const float *w, const struct sb_spec *s, struct sb_fit *f)
{
    float best = sb_tune(x, w, s, f);
    for (int it = 0; it < 4; it++) {
        struct sb_fit g = *f;
        sb_refit(x, w, s, &g);
        sb_requant(x, w, s, &g);
        float err = sb_tune(x, w, s, &g);
        if (!(err < best * (1 - 1e-6f))) {
            break;
        }
        best = err;
        *f = g;
    }
    f->d = round_fp16(f->d);
    f->dmin = round_fp16(f->dmin);
    sb_tune(x, w, s, f);
}

// Quantizes the sub-block scales v[nsub] (importance vw) to integers in [lo, hi].
static float sb_scales(int nsub, const float *v, const float *vw, int lo, int hi, float ref,
                       int *out)
{
    int8_t L[16];
    float d = imc_qz_scale(nsub, v, vw, lo, hi, ref, 9, lo < 0 ? 0.1f : 0.5f, L);
    for (int j = 0; j < nsub; j++) {
        out[j] = L[j];
    }
    return d;
}

void imc_qz_sb_affine(const float *x, const float *w, int nsub, int qmax, int smax,
                      struct sb_fit *f)
{
    const int len = IMC_QK_K / nsub;
    const struct sb_spec spec = {nsub, len, 0, qmax, NULL, 0, smax, true};
    float s[16] = {0}, m[16] = {0}, sw[16] = {0}, mw[16] = {0};
    uint8_t L[IMC_QK_K];
    for (int j = 0; j < nsub; j++) {
        const float *xj = x + j * len, *wj = w + j * len;
        uint8_t *lj = L + j * len;
        float mn;
        s[j] = imc_qz_affine(len, xj, wj, qmax, true, qmax < 4 ? 20 : 10, qmax < 4 ? 0.05f : 0.1f,
                         lj, &mn);
        m[j] = -mn;
        for (int i = 0; i < len; i++) {
            sw[j] += wj[i] * (float)(lj[i] * lj[i]);
            mw[j] += wj[i];
        }
    }
    f->d = sb_scales(nsub, s, sw, 0, smax, (float)smax, f->sc);
    f->dmin = sb_scales(nsub, m, mw, 0, smax, (float)smax, f->mn);
    sb_polish(x, w, &spec, f);
}

void imc_qz_sb_signed(const float *x, const float *w, int nsub, int lo, int hi,
                      const int8_t *grid, int smin, int smax, struct sb_fit *f)
{
    const int len = IMC_QK_K / nsub;
    const struct sb_spec spec = {nsub, len, lo, hi, grid, smin, smax, false};
    float s[16] = {0}, sw[16] = {0};
    for (int j = 0; j < nsub; j++) {
        const float *xj = x + j * len, *wj = w + j * len;
        int8_t *lj = f->L + j * len;
        if (grid) {
            s[j] = imc_qz_grid(len, xj, wj, grid, 7, (uint8_t *)lj);
        } else {
            s[j] = imc_qz_scale(len, xj, wj, lo, hi, (float)lo, 9, 0.1f, lj);
        }
        for (int i = 0; i < len; i++) {
            float v = sb_val(&spec, lj[i]);
            sw[j] += wj[i] * v * v;
        }
        f->mn[j] = 0;
    }
    f->d = sb_scales(nsub, s, sw, smin, smax, (float)smin, f->sc);
    f->dmin = 0;
    sb_polish(x, w, &spec, f);
}
