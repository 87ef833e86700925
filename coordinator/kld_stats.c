/*
 * coordinator/kld_stats: KL-divergence accumulation and llama-perplexity's report
 * (coordinator/kld.h, "statistics"). The file format lives in kld.c.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/kld.h"
#include "coordinator/ppl.h"
#include "core/log.h"
#include "kernels/kernels.h"

enum imc_status imc_kld_acc_init(struct imc_kld_acc *a, int64_t cap)
{
    memset(a, 0, sizeof(*a));
    IMC_ASSERT(cap >= 0);
    size_t n = cap > 0 ? (size_t)cap : 1;
    a->kld = malloc(n * sizeof(float));
    a->p_diff = malloc(n * sizeof(float));
    if (!a->kld || !a->p_diff) {
        IMC_LOG_ERR("kld: out of memory for %lld per-token values", (long long)cap);
        imc_kld_acc_free(a);
        return IMC_ERR_NOMEM;
    }
    a->cap = cap;
    return IMC_OK;
}

void imc_kld_acc_free(struct imc_kld_acc *a)
{
    free(a->kld);
    free(a->p_diff);
    a->kld = a->p_diff = NULL;
    a->cap = 0;
}

struct imc_kld_row imc_kld_row_of(const struct imc_nll_row *s)
{
    struct imc_kld_row r = {
        .nll = s->nll, .nll_base = s->nll_base, .kld = s->kld, .same_top = s->top == s->top_base};
    r.p_diff = exp(-r.nll) - exp(-r.nll_base);
    return r;
}

static struct imc_kld_row kld_row(const float *logits, int64_t n_vocab, const uint16_t *base_row,
                                  int32_t target)
{
    const struct imc_nll_row s = imc_ref_nll_row(logits, n_vocab, target, base_row);
    return imc_kld_row_of(&s);
}

static void fold_row(struct imc_kld_acc *a, const struct imc_kld_row *r)
{
    IMC_ASSERT(a->count < a->cap);
    const double nll = r->nll, nll_base = r->nll_base, kld = r->kld, p_diff = r->p_diff;
    a->sum_nll += nll;
    a->sum_nll2 += nll * nll;
    a->sum_nll_base += nll_base;
    a->sum_nll_base2 += nll_base * nll_base;
    a->sum_nll_nll_base += nll * nll_base;
    a->sum_kld += kld;
    a->sum_kld2 += kld * kld;
    a->sum_p_diff += p_diff;
    a->sum_p_diff2 += p_diff * p_diff;
    a->sum_p_diff4 += p_diff * p_diff * p_diff * p_diff;
    a->max_p_diff = fmax(a->max_p_diff, fabs(p_diff));
    a->n_same_top += r->same_top;
    a->kld[a->count] = (float)kld;
    a->p_diff[a->count] = (float)p_diff;
    a->count++;
}

void imc_kld_add_row(struct imc_kld_acc *a, const float *logits, int64_t n_vocab,
                     const uint16_t *base_row, int32_t target)
{
    const struct imc_kld_row r = kld_row(logits, n_vocab, base_row, target);
    fold_row(a, &r);
}

struct kld_job {
    const float *logits;
    const uint16_t *base_rows;
    const int32_t *targets;
    int64_t n_vocab, len;
    struct imc_kld_row *out;
};

static void kld_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const struct kld_job *j = ctx;
    j->out[task] = kld_row(j->logits + task * j->n_vocab, j->n_vocab,
                           j->base_rows + task * j->len, j->targets[task]);
}

void imc_kld_chunk_rows(const struct imc_exec *ex, const float *logits, int64_t n_ctx,
                        int64_t n_vocab, const uint16_t *base_rows, const int32_t *tokens,
                        struct imc_kld_row *out)
{
    struct kld_job j = {logits,  base_rows, tokens + imc_ppl_first(n_ctx) + 1, n_vocab,
                        imc_kld_row_len(n_vocab), out};
    imc_exec_run(ex, imc_ppl_n_scored(n_ctx), kld_task, &j);
}

void imc_kld_add_rows(struct imc_kld_acc *a, const struct imc_kld_row *rows, int64_t n)
{
    for (int64_t r = 0; r < n; r++) {
        fold_row(a, &rows[r]);
    }
}

void imc_kld_add_scored(struct imc_kld_acc *a, const struct imc_nll_row *scores, int64_t n)
{
    for (int64_t r = 0; r < n; r++) {
        const struct imc_kld_row k = imc_kld_row_of(&scores[r]);
        fold_row(a, &k);
    }
}

void imc_kld_add_chunk(const struct imc_exec *ex, struct imc_kld_acc *a, const float *logits,
                       int64_t n_ctx, int64_t n_vocab, const uint16_t *base_rows,
                       const int32_t *tokens)
{
    enum { BLOCK = 256 }; // rows per pool job: their values on the stack, not the heap
    const int64_t first = imc_ppl_first(n_ctx), n = imc_ppl_n_scored(n_ctx);
    const int64_t len = imc_kld_row_len(n_vocab);
    struct imc_kld_row rows[BLOCK];
    for (int64_t r0 = 0; r0 < n; r0 += BLOCK) {
        const int64_t nb = n - r0 < BLOCK ? n - r0 : BLOCK;
        struct kld_job j = {logits + r0 * n_vocab, base_rows + r0 * len, tokens + first + 1 + r0,
                            n_vocab, len, rows};
        imc_exec_run(ex, nb, kld_task, &j);
        imc_kld_add_rows(a, rows, nb);
    }
}

struct imc_kld_mean imc_kld_mean_unc(double sum, double sum2, int64_t n)
{
    struct imc_kld_mean r = {0.0, 0.0};
    if (n < 1) {
        return r;
    }
    r.val = sum / (double)n;
    double var = sum2 / (double)n - r.val * r.val;
    r.unc = var > 0 && n > 10 ? sqrt(var / (double)(n - 1)) : 0.0;
    return r;
}

double imc_kld_cov(double sum_a, double sum_b, double sum_ab, int64_t n)
{
    if (n < 10) {
        return 0.0;
    }
    double c = (double)n;
    return (sum_ab / c - (sum_a / c) * (sum_b / c)) / (c - 1);
}

double imc_kld_percentile(const float *sorted, int64_t n, double fraction)
{
    IMC_ASSERT(n >= 1);
    if (fraction <= 0) {
        return sorted[0];
    }
    if (fraction >= 1) {
        return sorted[n - 1];
    }
    double p = fraction * (double)(n - 1);
    int64_t ip = (int64_t)p;
    p -= (double)ip;
    int64_t next = ip + 1 < n ? ip + 1 : n - 1;
    return (1 - p) * sorted[ip] + p * sorted[next];
}

double imc_kld_median(const float *sorted, int64_t n)
{
    IMC_ASSERT(n >= 1);
    return n % 2 == 0 ? 0.5 * ((double)sorted[n / 2] + sorted[n / 2 - 1]) : sorted[n / 2];
}

// Derived quantities shared by the per-chunk line and the summary.
struct derived {
    struct imc_kld_mean log_ppl, log_ppl_base, kld, p_diff, p_diff_mse;
    double log_cov;                  // covariance of the two mean nll
    double ratio_val, ratio_unc;     // ln(PPL(Q)/PPL(base))
    double rms_val, rms_unc;         // RMS Δp
    double top_val, top_unc;         // same top p
};

static struct derived derive(const struct imc_kld_acc *a)
{
    struct derived d;
    d.log_ppl = imc_kld_mean_unc(a->sum_nll, a->sum_nll2, a->count);
    d.log_ppl_base = imc_kld_mean_unc(a->sum_nll_base, a->sum_nll_base2, a->count);
    d.log_cov = imc_kld_cov(a->sum_nll, a->sum_nll_base, a->sum_nll_nll_base, a->count);
    d.ratio_val = d.log_ppl.val - d.log_ppl_base.val;
    double rv = d.log_ppl.unc * d.log_ppl.unc + d.log_ppl_base.unc * d.log_ppl_base.unc -
                2.0 * d.log_cov;
    d.ratio_unc = sqrt(rv > 0 ? rv : 0);
    d.kld = imc_kld_mean_unc(a->sum_kld, a->sum_kld2, a->count);
    d.p_diff = imc_kld_mean_unc(a->sum_p_diff, a->sum_p_diff2, a->count);
    d.p_diff_mse = imc_kld_mean_unc(a->sum_p_diff2, a->sum_p_diff4, a->count);
    d.rms_val = sqrt(d.p_diff_mse.val);
    d.rms_unc = d.rms_val > 0 ? 0.5 / d.rms_val * d.p_diff_mse.unc : 0.0;
    d.top_val = a->count > 0 ? (double)a->n_same_top / (double)a->count : 0.0;
    d.top_unc = a->count > 1 ? sqrt(d.top_val * (1 - d.top_val) / (double)(a->count - 1)) : 0.0;
    return d;
}

struct imc_kld_headline imc_kld_headline(const struct imc_kld_acc *a)
{
    struct derived d = derive(a);
    const double ppl = exp(d.log_ppl.val), base = exp(d.log_ppl_base.val);
    return (struct imc_kld_headline){
        .ppl = {ppl, ppl * d.log_ppl.unc},
        .ppl_base = {base, base * d.log_ppl_base.unc},
        .kld = d.kld,
        .same_top = {d.top_val, d.top_unc},
    };
}

void imc_kld_print_header(FILE *f)
{
    fprintf(f, "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence"
               "              Δp RMS            Same top p\n");
}

void imc_kld_print_chunk(FILE *f, const struct imc_kld_acc *a, int64_t chunk)
{
    struct derived d = derive(a);
    double ppl = exp(d.log_ppl.val);
    fprintf(f, "%4lld", (long long)chunk);
    fprintf(f, "    %9.4f ± %9.4f", ppl, ppl * d.log_ppl.unc);
    fprintf(f, "    %10.5f ± %10.5f", d.ratio_val, d.ratio_unc);
    fprintf(f, "    %10.5f ± %10.5f", d.kld.val, d.kld.unc);
    fprintf(f, "    %6.3f ± %6.3f %%", 100.0 * d.rms_val, 100.0 * d.rms_unc);
    fprintf(f, "    %6.3f ± %6.3f %%\n", 100.0 * d.top_val, 100.0 * d.top_unc);
    fflush(f);
}

static void print_ppl_block(FILE *f, const struct derived *d)
{
    const double ppl = exp(d->log_ppl.val), ppl_unc = ppl * d->log_ppl.unc;
    const double base = exp(d->log_ppl_base.val), base_unc = base * d->log_ppl_base.unc;
    const double den = d->log_ppl.unc * d->log_ppl_base.unc;
    fprintf(f, "====== Perplexity statistics ======\n");
    fprintf(f, "Mean PPL(Q)                   : %10.6f ± %10.6f\n", ppl, ppl_unc);
    fprintf(f, "Mean PPL(base)                : %10.6f ± %10.6f\n", base, base_unc);
    fprintf(f, "Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n",
            den > 0 ? 100.0 * d->log_cov / den : 0.0);
    fprintf(f, "Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", d->ratio_val, d->ratio_unc);
    const double ratio = exp(d->ratio_val);
    fprintf(f, "Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", ratio, ratio * d->ratio_unc);
    double dv = ppl_unc * ppl_unc + base_unc * base_unc - 2.0 * ppl * base * d->log_cov;
    fprintf(f, "Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", ppl - base,
            sqrt(dv > 0 ? dv : 0));
    fprintf(f, "\n");
}

static void print_kld_block(FILE *f, const struct derived *d, const float *v, int64_t n)
{
    static const struct {
        const char *label;
        double fraction;
    } rows[] = {{"99.9%", 0.999}, {"99.0%", 0.990}, {"95.0%", 0.950}, {"90.0%", 0.900},
                {NULL, 0.5},      {"10.0%", 0.100}, {" 5.0%", 0.050}, {" 1.0%", 0.010},
                {" 0.1%", 0.001}};
    fprintf(f, "====== KL divergence statistics ======\n");
    fprintf(f, "Mean    KLD: %10.6f ± %10.6f\n", d->kld.val, d->kld.unc);
    fprintf(f, "Maximum KLD: %10.6f\n", v[n - 1]);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].label) {
            fprintf(f, "%s   KLD: %10.6f\n", rows[i].label,
                    imc_kld_percentile(v, n, rows[i].fraction));
        } else {
            fprintf(f, "Median  KLD: %10.6f\n", imc_kld_median(v, n));
        }
    }
    fprintf(f, "Minimum KLD: %10.6f\n", v[0]);
    fprintf(f, "\n");
}

static void print_p_block(FILE *f, const struct derived *d, const float *v, int64_t n)
{
    static const struct {
        const char *label;
        double fraction;
    } rows[] = {{"99.9%", 0.999}, {"99.0%", 0.990}, {"95.0%", 0.950}, {"90.0%", 0.900},
                {"75.0%", 0.750}, {NULL, 0.5},      {"25.0%", 0.250}, {"10.0%", 0.100},
                {" 5.0%", 0.050}, {" 1.0%", 0.010}, {" 0.1%", 0.001}};
    fprintf(f, "====== Token probability statistics ======\n");
    fprintf(f, "Mean    Δp: %6.3f ± %5.3f %%\n", 100.0 * d->p_diff.val, 100.0 * d->p_diff.unc);
    fprintf(f, "Maximum Δp: %6.3f%%\n", 100.0 * v[n - 1]);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].label) {
            fprintf(f, "%s   Δp: %6.3f%%\n", rows[i].label,
                    100.0 * imc_kld_percentile(v, n, rows[i].fraction));
        } else {
            fprintf(f, "Median  Δp: %6.3f%%\n", 100.0 * imc_kld_median(v, n));
        }
    }
    fprintf(f, "Minimum Δp: %6.3f%%\n", 100.0 * v[0]);
    fprintf(f, "RMS Δp    : %6.3f ± %5.3f %%\n", 100.0 * d->rms_val, 100.0 * d->rms_unc);
    fprintf(f, "Same top p: %6.3f ± %5.3f %%\n", 100.0 * d->top_val, 100.0 * d->top_unc);
}

static int cmp_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

enum imc_status imc_kld_print_summary(FILE *f, struct imc_kld_acc *a)
{
    if (a->count < 1) {
        IMC_LOG_ERR("kld: no token was scored");
        return IMC_ERR_ARG;
    }
    if (a->count < 100) {
        IMC_LOG_WRN("kld: only %lld tokens scored; the statistics below are rough",
                    (long long)a->count);
    }
    struct derived d = derive(a);
    qsort(a->kld, (size_t)a->count, sizeof(float), cmp_float);
    qsort(a->p_diff, (size_t)a->count, sizeof(float), cmp_float);
    print_ppl_block(f, &d);
    print_kld_block(f, &d, a->kld, a->count);
    print_p_block(f, &d, a->p_diff, a->count);
    fflush(f);
    return IMC_OK;
}
