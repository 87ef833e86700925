/*
 * tests/kernels/test_nll: the scoring of logits rows (kernels/kernels.h imc_ref_nll_row,
 * imc_cpu_nll_rows), bitwise:
 *   - imc_ref_nll_row against the coordinator code it replaced (copied below as it was:
 *     coordinator/ppl.c imc_ppl_nll_row, coordinator/kld_stats.c kld_row and kld.c's decoder),
 *     so perplexity and KLD results stay the bits they were; nll, nll_base, kld, and top ==
 *     top_base against the old same_top;
 *   - imc_cpu_nll_rows on pools of 1 and 3 threads (and ex NULL) against imc_ref_nll_rows.
 * Rows: widths 1, 2, 33, 1000, 32000; spread, large-magnitude and tied logits; base rows of
 * random uint16 entries (ties for their top, entries at exactly the −16 cut), random targets.
 * Broken variants tried by hand: the sum starting at index 1, the KLD cut at >= −16, the decoder
 * in double: each fails the comparison with the old code.
 */
#include <math.h>

#include "kcheck.h"

// ---- the coordinator's code before the move (reference for the bits) ---------------------------

static float old_logp(const uint16_t *row, int64_t i)
{
    float head[2];
    memcpy(head, row, sizeof(head));
    return head[0] * (float)row[4 + i] + head[1];
}

static double old_nll_row(const float *logits, int64_t n_vocab, int32_t target)
{
    double max = logits[0];
    for (int64_t i = 1; i < n_vocab; i++) {
        if (logits[i] > max) {
            max = logits[i];
        }
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n_vocab; i++) {
        sum += exp((double)logits[i] - max);
    }
    return max + log(sum) - (double)logits[target];
}

struct old_row {
    double nll, nll_base, kld;
    bool same_top;
};

static struct old_row old_kld_row(const float *logits, int64_t n_vocab, const uint16_t *base_row,
                                  int32_t target)
{
    double max = logits[0];
    int64_t imax = 0, imax_base = 0;
    for (int64_t i = 1; i < n_vocab; i++) {
        if (logits[i] > max) {
            max = logits[i];
            imax = i;
        }
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n_vocab; i++) {
        sum += exp((double)logits[i] - max);
    }
    const double shift = max + log(sum);
    double kld = 0.0;
    float logp_base_max = 0.0f;
    for (int64_t i = 0; i < n_vocab; i++) {
        const float lp = old_logp(base_row, i);
        if (i == 0 || lp > logp_base_max) {
            logp_base_max = lp;
            imax_base = i;
        }
        if (lp > -16.0f) {
            kld += (double)expf(lp) * ((double)lp - ((double)logits[i] - shift));
        }
    }
    struct old_row r = {shift - (double)logits[target], -(double)old_logp(base_row, target), kld,
                        imax == imax_base};
    return r;
}

// ---- cases --------------------------------------------------------------------------------------

enum { ROWS = 7 };

static void run_case(struct imc_exec *const *ex, struct krng *r, int64_t n, int kind)
{
    const int64_t len = 2 * ((n + 1) / 2) + 4;
    float *l = kalloc_rand(r, ROWS * n, kind == 1 ? 500.0f : 3.0f);
    uint16_t *base = calloc((size_t)(ROWS * len), sizeof(uint16_t));
    int32_t tg[ROWS];
    for (int64_t k = 0; k < ROWS * n; k++) {
        l[k] = kind == 2 ? fminf(roundf(l[k]), 1.0f) : kind == 1 ? l[k] + 2e4f : l[k];
    }
    for (int64_t k = 0; k < ROWS; k++) {
        tg[k] = (int32_t)(krng_next(r) % (uint64_t)n);
        // kind 2: entries of exactly −16 (q = 0), at the cut
        const float head[2] = {20.0f / 65535.0f, kind == 2 ? -16.0f : -18.0f - logf((float)n)};
        memcpy(base + k * len, head, sizeof(head));
        for (int64_t i = 0; i < n; i++) {
            base[k * len + 4 + i] =
                (uint16_t)((krng_next(r) >> 48) & (kind == 2 ? 0xF000 : 0xFFFF));
        }
    }
    struct imc_nll_row ref[ROWS], nob[ROWS], got[ROWS];
    imc_ref_nll_rows(ref, l, ROWS, n, tg, base, len);
    imc_ref_nll_rows(nob, l, ROWS, n, tg, NULL, 0);
    int same_old = 1;
    for (int64_t k = 0; k < ROWS; k++) {
        const struct old_row o = old_kld_row(l + k * n, n, base + k * len, tg[k]);
        const double nll = old_nll_row(l + k * n, n, tg[k]);
        same_old = same_old && ref[k].nll == nll && nob[k].nll == nll && o.nll == nll &&
                   ref[k].nll_base == o.nll_base && ref[k].kld == o.kld &&
                   (ref[k].top == ref[k].top_base) == o.same_top && nob[k].top == ref[k].top &&
                   nob[k].top_base == -1 && nob[k].kld == 0.0 && nob[k].nll_base == 0.0 &&
                   imc_nll_base_logp(base + k * len, tg[k]) == old_logp(base + k * len, tg[k]);
    }
    CHECK(same_old, "n=%lld kind %d: imc_ref_nll_row differs from the old coordinator code",
          (long long)n, kind);
    for (int p = 0; p < 3; p++) {
        imc_cpu_nll_rows(ex[p], got, l, ROWS, n, tg, base, len);
        CHECK(memcmp(got, ref, sizeof(got)) == 0, "n=%lld kind %d pool %d: cpu differs from ref",
              (long long)n, kind, p);
        imc_cpu_nll_rows(ex[p], got, l, ROWS, n, tg, NULL, 0);
        CHECK(memcmp(got, nob, sizeof(got)) == 0, "n=%lld kind %d pool %d: cpu (no base) differs",
              (long long)n, kind, p);
    }
    got[ROWS / 2].kld = nextafter(got[ROWS / 2].kld, 1e300); // self-check of the comparison
    CHECK(memcmp(got, nob, sizeof(got)) != 0, "checker missed a perturbation");
    free(l);
    free(base);
}

int main(void)
{
    struct krng r = {17};
    struct imc_exec *ex[3] = {NULL, kexec(1), kexec(3)};
    const int64_t ns[] = {1, 2, 33, 1000, 32000};
    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
        for (int kind = 0; kind < 3; kind++) {
            run_case(ex, &r, ns[i], kind);
        }
    }
    imc_exec_free(ex[1]);
    imc_exec_free(ex[2]);
    return check_summary();
}
