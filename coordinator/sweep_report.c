/*
 * coordinator/sweep_report: results.csv, results.md and results.svg of `imc sweep` (sweep.h).
 *
 * The SVG is written by hand (no plotting dependency): two panels side by side, PPL against size
 * (error bars, the base's PPL dashed) and mean KLD against size (log scale), each with a light
 * grid, ticks at 1-2-5 steps (decades on the log axis), the recipes joined in order of size and
 * labelled with their names.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/sweep_priv.h"
#include "core/file.h"
#include "core/log.h"

#define MIB 1048576.0

// ---- csv / md ------------------------------------------------------------------------------

static enum imc_status write_csv(FILE *f, const struct imc_sweep *s,
                                 const struct imc_sweep_figures *fig)
{
    fprintf(f, "recipe,type,imatrix,size_bytes,bpw,ppl,ppl_err,kld,kld_err,same_top_p,"
               "same_top_p_err\n");
    for (int64_t i = 0; i < s->n; i++) {
        const struct imc_sweep_recipe *r = &s->rec[i];
        const struct imc_sweep_figures *x = &fig[i];
        fprintf(f, "%s,%s,%s,%llu,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n", r->name,
                imc_sweep_recipe_type(r), r->use_imatrix ? "yes" : "no",
                (unsigned long long)x->size_bytes, x->bpw, x->ppl, x->ppl_err, x->kld, x->kld_err,
                100.0 * x->same_top, 100.0 * x->same_top_err);
    }
    return IMC_OK;
}

static enum imc_status write_md(FILE *f, const struct imc_sweep *s,
                                const struct imc_sweep_figures *fig)
{
    const struct imc_sweep_figures *b = &s->base;
    fprintf(f, "| recipe | type | imatrix | size (MiB) | bpw | PPL | mean KLD | same top p (%%) "
               "|\n|:---|:---|:---|---:|---:|---:|---:|---:|\n");
    fprintf(f, "| base | — | — | %.2f | %.3f | %.4f ± %.5f | — | — |\n",
            (double)b->size_bytes / MIB, b->bpw, b->ppl, b->ppl_err);
    for (int64_t i = 0; i < s->n; i++) {
        const struct imc_sweep_recipe *r = &s->rec[i];
        const struct imc_sweep_figures *x = &fig[i];
        fprintf(f, "| %s | %s | %s | %.2f | %.3f | %.4f ± %.5f | %.6f ± %.6f | %.3f ± %.3f |\n",
                r->name, imc_sweep_recipe_type(r), r->use_imatrix ? "yes" : "no",
                (double)x->size_bytes / MIB, x->bpw, x->ppl, x->ppl_err, x->kld, x->kld_err,
                100.0 * x->same_top, 100.0 * x->same_top_err);
    }
    return IMC_OK;
}

// ---- svg -----------------------------------------------------------------------------------

struct axis {
    double lo, hi; // data range shown
    bool log;      // log10 scale
    double p0, p1; // pixel positions of lo and hi
};

static double axis_px(const struct axis *a, double v)
{
    double t = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo))
                      : (v - a->lo) / (a->hi - a->lo);
    return a->p0 + t * (a->p1 - a->p0);
}

// Linear range [lo, hi] padded by 8% (a point range gets ±1 or ±5%).
static void axis_linear(struct axis *a, double lo, double hi)
{
    double pad = hi > lo ? 0.08 * (hi - lo) : (fabs(lo) > 0 ? 0.05 * fabs(lo) : 1.0);
    *a = (struct axis){.lo = lo - pad, .hi = hi + pad};
}

// Log range around [lo, hi] (lo > 0), a factor 1.3 of room on each side.
static void axis_log(struct axis *a, double lo, double hi)
{
    lo = lo > 0 ? lo : 1e-9;
    hi = hi > lo ? hi : lo * 10;
    *a = (struct axis){.lo = lo / 1.3, .hi = hi * 1.3, .log = true};
}

// Tick step of 1, 2 or 5 times a power of ten giving about 5 ticks over [lo, hi].
static double nice_step(double lo, double hi)
{
    double raw = (hi - lo) / 5.0, p = pow(10.0, floor(log10(raw)));
    return raw / p < 1.5 ? p : raw / p < 3.5 ? 2 * p : raw / p < 7.5 ? 5 * p : 10 * p;
}

// The tick after v: +step on a linear axis; 1-2-5 per decade on a log axis when it spans less
// than 3 decades, else one per decade.
static double next_tick(const struct axis *a, double v, double step)
{
    if (!a->log) {
        v += step;
        return fabs(v) < step * 1e-9 ? 0 : v;
    }
    if (log10(a->hi / a->lo) >= 3) {
        return v * 10;
    }
    double p = pow(10.0, floor(log10(v) + 1e-9)), m = v / p;
    return m < 1.5 ? 2 * p : m < 3.5 ? 5 * p : 10 * p;
}

static double first_tick(const struct axis *a, double step)
{
    if (!a->log) {
        return ceil(a->lo / step) * step;
    }
    double v = pow(10.0, floor(log10(a->lo)));
    while (v < a->lo * (1 - 1e-12)) {
        v = next_tick(a, v, step);
    }
    return v;
}

// Ticks, grid lines and labels of axis a (x: horizontal; o0/o1: the span of the grid lines).
static void draw_ticks(FILE *f, const struct axis *a, bool x, double o0, double o1)
{
    double step = a->log ? 0 : nice_step(a->lo, a->hi);
    double v = first_tick(a, step);
    for (int k = 0; k < 40 && v <= a->hi * (1 + 1e-12); k++, v = next_tick(a, v, step)) {
        double p = axis_px(a, v);
        if (x) {
            fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' class='grid'/>\n", p, o0, p,
                    o1);
            fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle'>%g</text>\n", p, o0 + 14, v);
        } else {
            fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' class='grid'/>\n", o0, p, o1,
                    p);
            fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='end'>%g</text>\n", o0 - 4, p + 4, v);
        }
    }
}

struct series {
    const char *title;    // panel title and y label
    const double *x;      // [n] size in MiB
    const double *y;      // [n] values
    const double *err;    // [n] ± of y
    const int64_t *order; // [n] indices by increasing x
    const struct imc_sweep *s;
    double ref; // a dashed reference line at y = ref (NAN: none)
};

static void draw_points(FILE *f, const struct series *d, const struct axis *ax,
                        const struct axis *ay)
{
    fprintf(f, "<polyline class='line' points='");
    for (int64_t k = 0; k < d->s->n; k++) {
        int64_t i = d->order[k];
        fprintf(f, "%s%.1f,%.1f", k ? " " : "", axis_px(ax, d->x[i]), axis_px(ay, d->y[i]));
    }
    fprintf(f, "'/>\n");
    for (int64_t i = 0; i < d->s->n; i++) {
        double px = axis_px(ax, d->x[i]), py = axis_px(ay, d->y[i]);
        double lo = d->y[i] - d->err[i], hi = d->y[i] + d->err[i];
        lo = ay->log && lo <= ay->lo ? ay->lo : lo < ay->lo ? ay->lo : lo;
        hi = hi > ay->hi ? ay->hi : hi;
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' class='err'/>\n", px,
                axis_px(ay, lo), px, axis_px(ay, hi));
        fprintf(f,
                "<circle cx='%.1f' cy='%.1f' r='3.5'><title>%s: %.2f MiB, %g ± %g</title>"
                "</circle>\n",
                px, py, d->s->rec[i].name, d->x[i], d->y[i], d->err[i]);
        bool right = px > ax->p1 - 80; // near the right edge: the label goes left of the point
        fprintf(f, "<text x='%.1f' y='%.1f' class='name' text-anchor='%s'>%s</text>\n",
                right ? px - 6 : px + 6, py - 6, right ? "end" : "start", d->s->rec[i].name);
    }
}

// One panel with its top-left corner at (x0, y0), plot area w x h.
static void draw_panel(FILE *f, const struct series *d, double x0, double y0, double w, double h)
{
    struct axis ax, ay;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int64_t i = 0; i < d->s->n; i++) {
        xmin = fmin(xmin, d->x[i]);
        xmax = fmax(xmax, d->x[i]);
        ymin = fmin(ymin, isnan(d->ref) ? d->y[i] : d->y[i] - d->err[i]);
        ymax = fmax(ymax, d->y[i] + d->err[i]);
    }
    ymin = isnan(d->ref) ? ymin : fmin(ymin, d->ref);
    axis_linear(&ax, xmin, xmax);
    if (isnan(d->ref)) {
        axis_log(&ay, ymin, ymax);
    } else {
        axis_linear(&ay, ymin, ymax);
    }
    ax.p0 = x0;
    ax.p1 = x0 + w;
    ay.p0 = y0 + h;
    ay.p1 = y0;
    fprintf(f, "<text x='%.1f' y='%.1f' class='title'>%s</text>\n", x0, y0 - 10, d->title);
    draw_ticks(f, &ax, true, y0 + h, y0);
    draw_ticks(f, &ay, false, x0, x0 + w);
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' class='frame'/>\n", x0, y0, w,
            h);
    fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle'>size (MiB)</text>\n", x0 + w / 2,
            y0 + h + 32);
    if (!isnan(d->ref)) {
        double py = axis_px(&ay, d->ref);
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' class='ref'/>\n", x0, py, x0 + w,
                py);
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='end' class='name'>base %.4f</text>\n",
                x0 + w - 4, py - 4, d->ref);
    }
    draw_points(f, d, &ax, &ay);
}

// order[0..n) = indices of x by increasing value (insertion sort: a sweep has few recipes).
static void sort_by(const double *x, int64_t n, int64_t *order)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t k = i;
        for (; k > 0 && x[order[k - 1]] > x[i]; k--) {
            order[k] = order[k - 1];
        }
        order[k] = i;
    }
}

static void svg_header(FILE *f, double w, double h)
{
    fprintf(f,
            "<?xml version='1.0' encoding='UTF-8'?>\n"
            "<svg xmlns='http://www.w3.org/2000/svg' version='1.1' width='%.0f' height='%.0f' "
            "viewBox='0 0 %.0f %.0f'>\n"
            "<style>text{font-family:sans-serif;font-size:11px;fill:#222}"
            ".title{font-size:13px;font-weight:bold}.name{font-size:10px;fill:#444}"
            ".grid{stroke:#e4e4e4}.frame{fill:none;stroke:#666}"
            ".line{fill:none;stroke:#1f77b4;stroke-width:1.5}.err{stroke:#1f77b4}"
            "circle{fill:#1f77b4}.ref{stroke:#d62728;stroke-dasharray:6,4}</style>\n"
            "<rect width='100%%' height='100%%' fill='white'/>\n",
            w, h, w, h);
}

static enum imc_status write_svg(FILE *f, const struct imc_sweep *s,
                                 const struct imc_sweep_figures *fig)
{
    int64_t n = s->n;
    double *v = malloc((size_t)(5 * n) * sizeof(*v));
    int64_t *order = malloc((size_t)n * sizeof(*order));
    if (!v || !order) {
        free(v);
        free(order);
        IMC_LOG_ERR("sweep: out of memory");
        return IMC_ERR_NOMEM;
    }
    double *x = v, *ppl = v + n, *ppl_err = v + 2 * n, *kld = v + 3 * n, *kld_err = v + 4 * n;
    for (int64_t i = 0; i < n; i++) {
        x[i] = (double)fig[i].size_bytes / MIB;
        ppl[i] = fig[i].ppl;
        ppl_err[i] = fig[i].ppl_err;
        kld[i] = fig[i].kld;
        kld_err[i] = fig[i].kld_err;
    }
    sort_by(x, n, order);
    const double w = 460, h = 300, left = 70, top = 40;
    svg_header(f, 2 * (left + w) + 50, top + h + 50);
    struct series a = {
        "PPL against size (± err; dashed: the base)", x, ppl, ppl_err, order, s, s->base.ppl};
    struct series b = {
        "mean KLD to the base against size (log scale)", x, kld, kld_err, order, s, NAN};
    draw_panel(f, &a, left, top, w, h);
    draw_panel(f, &b, 2 * left + w + 30, top, w, h);
    fprintf(f, "</svg>\n");
    free(v);
    free(order);
    return IMC_OK;
}

// Writes one report file atomically with fn.
static enum imc_status write_file(const struct imc_sweep *s, const char *name,
                                  enum imc_status (*fn)(FILE *, const struct imc_sweep *,
                                                        const struct imc_sweep_figures *),
                                  const struct imc_sweep_figures *fig)
{
    char *path = imc_sweep_path(s, name, "");
    if (!path) {
        return IMC_ERR_NOMEM;
    }
    struct imc_afile af;
    enum imc_status st = imc_afile_open(&af, path);
    if (st == IMC_OK) {
        st = fn(af.f, s, fig);
        if (st == IMC_OK && ferror(af.f)) {
            IMC_LOG_ERR("%s: write failed", path);
            st = IMC_ERR_IO;
        }
        if (st == IMC_OK) {
            st = imc_afile_commit(&af);
        } else {
            imc_afile_abort(&af);
        }
    }
    free(path);
    return st;
}

enum imc_status imc_sweep_report(const struct imc_sweep *s, const struct imc_sweep_figures *f,
                                 FILE *out)
{
    IMC_TRY(write_file(s, "results.csv", write_csv, f));
    IMC_TRY(write_file(s, "results.md", write_md, f));
    IMC_TRY(write_file(s, "results.svg", write_svg, f));
    IMC_LOG_INF("sweep: wrote %s/results.csv, results.md and results.svg", s->o.out_dir);
    if (out) {
        write_md(out, s, f);
        fflush(out);
    }
    return IMC_OK;
}
