/*
 * tests/cuda/test_nll: kernels/cuda/nll.cu against imc_ref_nll_rows (kernels/ref/nll.c), emulated
 * in every resume order and on the GPU where there is one (tests/cuda/ccheck.h). Widths 1, 2,
 * 31, 32, 33, 255, 1023, 32000, 129280; rows of spread logits, of large magnitude (±3·10⁴
 * offset, std 10³), of ties (logits on a grid of 1/4 capped at 1/4, base entries of 4 values:
 * the first index must be the top; there min_log_prob is −16, so q = 0 decodes to exactly the
 * cut); with and without a base row (llama.cpp's uint16 row, coordinator/kld.h: random q_i with
 * scale 20/65535 and min_log_prob −18 − ln n, so part of the entries are above the −16 cut),
 * random targets. No coordinator header: the test also runs in the kernels-only build of a GPU
 * machine (cmake/imc_kernels_only.cmake).
 *
 * Exact: top, top_base and nll_base (the same float compares of the same decoded floats).
 * Bounded (u = 2⁻⁵³, u_f = 2⁻²⁴, γ_k = k·u/(1 − k·u), n = the row width), derived per row, not
 * tuned:
 *   nll = (max + ln S) − l_t with S = Σ exp(l_i − max) in double. Each side: the sum of n
 *   positive terms in any order is within γ_{n−1}·S of the exact sum of its terms, each term
 *   within 2u (exp: <= 1 ulp in glibc, <= 2 ulp on the device... counted as 2u relative); ln of
 *   a value with relative error e moves by <= 1.01·e; ln, the addition and the subtraction
 *   each round once: <= u·|ln S|, u·(|max| + |ln S|), u·(|max + ln S| + |l_t|). Per side
 *     E = 1.01·(γ_{n−1} + 2u) + 3u·(|max| + |ln S| + |l_t|),   |Δnll| <= 2E.
 *   shift = max + ln S alone: per side E_s = 1.01·(γ_{n−1} + 2u) + 2u·(|max| + |ln S|).
 *   kld = Σ_{lp_i > −16} p_i·(lp_i − (l_i − shift)), p_i = expf(lp_i) in float then double:
 *     shift enters with weight P = Σ p_i:                          2·E_s·P
 *     expf, device against glibc, <= 3 float ulp, <= 3·2u_f relative: 6u_f·T,  T = Σ |t_i|
 *     sum of the terms in double, any order, each side:           2·1.01·γ_{n−1}·T
 *     the term's subtraction, subtraction and product, each side:  2·3u·Σ p_i(|lp_i| + |l_i| +
 *                                                                  |shift|)
 *   the sum of these is the bound. The emulator runs glibc's exp and expf, the reference's: there
 *   the expf term is 0 and the differences come from the order of the sums only.
 * The test prints the worst |Δ| / bound of each quantity (emulated: nll 0.069, kld 0.035). Broken
 * variants tried by hand, each failing: Σ exp or the KLD loop one entry short (inf / 8e14 of the
 * bound), Σ exp or the KLD sum in float (5e7 / 4e7), the base decode fused into fmaf (4e8), the
 * last index of ties as top or top_base (top 19 vs 1, 24897 vs 5).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ccheck.h"

#define U 0x1p-53
#define UF 0x1p-24

struct worst {
    double nll, kld; // max |Δ| / bound
};

static double gamma_n(int64_t n)
{
    const double k = (double)(n > 1 ? n - 1 : 0) * U;
    return k / (1.0 - k);
}

// The bounds of row l (width n, target t, base row b or NULL) as derived above.
static void bounds(const float *l, int64_t n, int32_t t, const uint16_t *b, int emu, double *b_nll,
                   double *b_kld)
{
    double max = l[0], s = 0.0;
    for (int64_t i = 1; i < n; i++) {
        max = l[i] > max ? l[i] : max;
    }
    for (int64_t i = 0; i < n; i++) {
        s += exp((double)l[i] - max);
    }
    const double ls = fabs(log(s)), g = gamma_n(n), e_sum = 1.01 * (g + 2 * U);
    const double shift = fabs(max + log(s));
    *b_nll = 2 * (e_sum + 3 * U * (fabs(max) + ls + fabs((double)l[t])));
    *b_kld = 0.0;
    if (!b) {
        return;
    }
    const double e_s = e_sum + 2 * U * (fabs(max) + ls);
    double p_sum = 0.0, t_sum = 0.0, a_sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float lp = imc_nll_base_logp(b, i);
        if (lp > -16.0f) {
            const double p = (double)expf(lp);
            p_sum += p;
            t_sum += fabs(p * ((double)lp - ((double)l[i] - (max + log(s)))));
            a_sum += p * (fabs((double)lp) + fabs((double)l[i]) + shift);
        }
    }
    *b_kld = 2 * e_s * p_sum + (emu ? 0.0 : 6 * UF * t_sum) + 2 * 1.01 * g * t_sum + 6 * U * a_sum;
}

enum { ROWS = 4 };

// One call of n_rows = ROWS rows of width n of the given kind, with or without base rows.
static void one(const struct cdev *d, struct krng *r, int64_t n, int kind, int with_base,
                struct worst *w)
{
    const int64_t len = 2 * ((n + 1) / 2) + 4; // coordinator/kld.h imc_kld_row_len
    float *l = kalloc_rand(r, ROWS * n, kind == 1 ? 1000.0f : 3.0f);
    uint16_t *base = calloc((size_t)(ROWS * len), sizeof(uint16_t));
    int32_t tg[ROWS];
    for (int64_t k = 0; k < ROWS * n; k++) {
        l[k] += kind == 1 ? ((k / n) % 2 ? 3e4f : -3e4f) : 0.0f;
        l[k] = kind == 2 ? fminf(roundf(l[k]), 1.0f) / 4 : l[k]; // ties at the top
    }
    for (int64_t k = 0; k < ROWS; k++) {
        tg[k] = (int32_t)(krng_next(r) % (uint64_t)n);
        // kind 2: q = 0 decodes to exactly −16, the cut
        const float head[2] = {20.0f / 65535.0f, kind == 2 ? -16.0f : -18.0f - logf((float)n)};
        uint16_t *b = base + k * len;
        memcpy(b, head, sizeof(head));
        for (int64_t i = 0; i < n; i++) {
            const uint64_t q = krng_next(r) >> 48;
            b[4 + i] = (uint16_t)(kind == 2 ? q % 4 * 21845 : q); // kind 2: ties
        }
    }
    const uint16_t *bh = with_base ? base : NULL;
    struct imc_nll_row ref[ROWS], got[ROWS];
    imc_ref_nll_rows(ref, l, ROWS, n, tg, bh, len);
    float *dl = cdev_up(d, l, (size_t)(ROWS * n) * sizeof(float));
    int32_t *dt = cdev_up(d, tg, sizeof(tg));
    uint16_t *db = bh ? cdev_up(d, base, (size_t)(ROWS * len) * sizeof(uint16_t)) : NULL;
    struct imc_nll_row *dout = cdev_up(d, NULL, sizeof(got));
    CHECK(CDEV_FN(d, nll_rows)(NULL, dout, dl, ROWS, n, dt, db, len) == IMC_OK, "launch");
    cdev_down(d, got, dout, sizeof(got));
    CDEV_FN(d, dev_free)(dl);
    CDEV_FN(d, dev_free)(dt);
    CDEV_FN(d, dev_free)(db);
    for (int64_t k = 0; k < ROWS; k++) {
        double b_nll, b_kld;
        bounds(l + k * n, n, tg[k], bh ? base + k * len : NULL, d->emu, &b_nll, &b_kld);
        const double d_nll = fabs(got[k].nll - ref[k].nll), d_kld = fabs(got[k].kld - ref[k].kld);
        const double e_nll = d_nll == 0.0 ? 0.0 : d_nll / b_nll; // bounds may be 0 (no terms)
        const double e_kld = !bh || d_kld == 0.0 ? 0.0 : d_kld / b_kld;
        w->nll = fmax(w->nll, e_nll);
        w->kld = fmax(w->kld, e_kld);
        CHECK(e_nll <= 1.0 && e_kld <= 1.0 && got[k].top == ref[k].top &&
                  got[k].top_base == ref[k].top_base && got[k].nll_base == ref[k].nll_base &&
                  (bh || got[k].kld == 0.0),
              "%s n=%lld kind %d base %d row %lld: nll %.17g vs %.17g (%.3g of bound), kld %.17g "
              "vs %.17g (%.3g of bound), top %d/%d base top %d/%d, nll_base %.9g/%.9g",
              d->name, (long long)n, kind, with_base, (long long)k, got[k].nll, ref[k].nll, e_nll,
              got[k].kld, ref[k].kld, e_kld, got[k].top, ref[k].top, got[k].top_base,
              ref[k].top_base, got[k].nll_base, ref[k].nll_base);
    }
    free(l);
    free(base);
}

static void run(const struct cdev *d, void *ctx)
{
    (void)ctx;
    static const int64_t widths[] = {1, 2, 31, 32, 33, 255, 1023, 32000, 129280};
    struct krng r = {11};
    struct worst w = {0, 0};
    for (size_t a = 0; a < sizeof(widths) / sizeof(widths[0]); a++) {
        for (int kind = 0; kind < 3; kind++) {
            one(d, &r, widths[a], kind, kind != 2 || a % 2, &w);
        }
        one(d, &r, widths[a], 0, 0, &w);
    }
    printf("%-12s worst |Δ| / bound: nll %.3g, kld %.3g\n", d->name, w.nll, w.kld);
}

int main(void)
{
    cdev_run(run, NULL);
    return check_summary();
}
