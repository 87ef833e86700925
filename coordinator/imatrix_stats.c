/*
 * coordinator/imatrix_stats: per-tensor and per-layer statistics of an imatrix
 * (coordinator/imatrix_stats.h has the definitions).
 */
#include "coordinator/imatrix_stats.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static double value(const struct imc_imatrix_entry *e, int64_t m, int64_t j)
{
    const double c = e->counts[m];
    return c > 0 ? e->sums[m * e->n_per_row + j] / c : 0.0;
}

void imc_imstat_entry(const struct imc_imatrix_entry *e, struct imc_imstat *s)
{
    memset(s, 0, sizeof(*s));
    s->n = e->n_per_row * e->n_mat;
    for (int64_t m = 0; m < e->n_mat; m++) {
        for (int64_t j = 0; j < e->n_per_row; j++) {
            const double v = value(e, m, j);
            s->sum += e->sums[m * e->n_per_row + j];
            s->sum_v += v;
            s->max = v > s->max ? v : s->max;
        }
    }
    const double thr = IMC_IMSTATS_ACTIVE_REL * s->sum_v / (double)s->n;
    for (int64_t m = 0; m < e->n_mat; m++) {
        for (int64_t j = 0; j < e->n_per_row; j++) {
            const double v = value(e, m, j);
            s->n_active += v >= thr && v > 0;
            if (v > 0) {
                const double p = v / s->sum_v;
                s->entropy -= p * log2(p);
            }
        }
    }
    s->h_norm = s->n > 1 ? s->entropy / log2((double)s->n) : 1.0;
}

// Layer index of "blk.N.<...>", or -1.
static int64_t layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0) {
        return -1;
    }
    char *end = NULL;
    long long l = strtoll(name + 4, &end, 10);
    return end != name + 4 && *end == '.' && l >= 0 ? (int64_t)l : -1;
}

struct layer_acc {
    int64_t layer;       // block index, -1 for other tensors
    int64_t n_tensors;   // tensors of the layer
    struct imc_imstat s; // sums over its tensors (h_norm: sum, divided at print)
};

static void print_tensor(FILE *f, const struct imc_imatrix_entry *e, const struct imc_imstat *s)
{
    fprintf(f, "%-40s %6" PRId64 " %8" PRId64 " %12.5e %11.4e %11.4e %6.1f%% %8.3f %6.3f\n",
            e->name, e->n_mat, s->n, s->sum, s->sum_v / (double)s->n, s->max,
            100.0 * (double)s->n_active / (double)s->n, s->entropy, s->h_norm);
}

static void add_layer(struct layer_acc *la, const struct imc_imstat *s)
{
    la->n_tensors++;
    la->s.n += s->n;
    la->s.n_active += s->n_active;
    la->s.sum += s->sum;
    la->s.sum_v += s->sum_v;
    la->s.max = s->max > la->s.max ? s->max : la->s.max;
    la->s.h_norm += s->h_norm;
}

static void print_layer(FILE *f, const struct layer_acc *a)
{
    if (a->n_tensors == 0) {
        return;
    }
    char name[24];
    snprintf(name, sizeof(name), a->layer < 0 ? "-" : "%" PRId64, a->layer);
    fprintf(f, "%-6s %7" PRId64 " %9" PRId64 " %12.5e %11.4e %11.4e %6.1f%% %8.3f\n", name,
            a->n_tensors, a->s.n, a->s.sum, a->s.sum_v / (double)a->s.n, a->s.max,
            100.0 * (double)a->s.n_active / (double)a->s.n, a->s.h_norm / (double)a->n_tensors);
}

// la[0]: tensors outside blocks, la[1 + l]: block l; n_slots entries.
static void print_layers(FILE *f, const struct layer_acc *la, int64_t n_slots)
{
    fprintf(f, "\n%-6s %7s %9s %12s %11s %11s %7s %8s\n", "layer", "tensors", "values", "sum(x^2)",
            "mean", "max", "active", "H/Hmax");
    for (int64_t i = 1; i < n_slots; i++) {
        print_layer(f, &la[i]);
    }
    print_layer(f, &la[0]);
}

static enum imc_status print_all(const struct imc_imatrix *im, const char *path, FILE *f)
{
    int64_t max_layer = -1;
    for (int64_t i = 0; i < im->n_entries; i++) {
        int64_t l = layer_of(im->entries[i].name);
        max_layer = l > max_layer ? l : max_layer;
    }
    // slot 0: tensors outside blocks; slot l + 1: block l
    struct layer_acc *la = calloc((size_t)(max_layer + 2), sizeof(*la));
    if (!la) {
        IMC_LOG_ERR("%s: out of memory", path);
        return IMC_ERR_NOMEM;
    }
    fprintf(f, "imatrix %s: %" PRId64 " entries, %u chunks of %u tokens, dataset %s\n", path,
            im->n_entries, im->chunk_count, im->chunk_size,
            im->n_datasets > 0 ? im->datasets[0] : "(none)");
    fprintf(f, "%-40s %6s %8s %12s %11s %11s %7s %8s %6s\n", "tensor", "n_mat", "values",
            "sum(x^2)", "mean", "max", "active", "entropy", "H/Hmax");
    for (int64_t i = 0; i < im->n_entries; i++) {
        const struct imc_imatrix_entry *e = &im->entries[i];
        struct imc_imstat s;
        imc_imstat_entry(e, &s);
        print_tensor(f, e, &s);
        const int64_t l = layer_of(e->name);
        la[l + 1].layer = l; // slot 0 keeps -1
        add_layer(&la[l + 1], &s);
    }
    print_layers(f, la, max_layer + 2);
    free(la);
    fflush(f);
    return IMC_OK;
}

enum imc_status imc_imstat_print_file(const char *path, FILE *out)
{
    struct imc_imatrix im;
    IMC_TRY(imc_imatrix_read(path, 0, &im));
    enum imc_status st = print_all(&im, path, out);
    imc_imatrix_free(&im);
    return st;
}
