/*
 * worker/stats_collect: per-chunk Σx² partials per (weight, slice), folded into the imatrix in
 * fixed order at the end of each chunk (contract in worker/stats_collect.h).
 */
#include "worker/stats_collect.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kernels/backend.h"
#include "worker/stats_collect_priv.h"

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

enum imc_status imc_stats_collect_init(struct imc_stats_collect **out, struct imc_imatrix *im)
{
    struct imc_stats_collect *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (c) {
        c->cap = 256;
        c->table = calloc((size_t)c->cap, sizeof(*c->table));
    }
    if (!c || !c->table) {
        free(c);
        IMC_LOG_ERR("stats collector: out of memory");
        return IMC_ERR_NOMEM;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->im = im;
    c->chunk = im->chunk_count;
    *out = c;
    return IMC_OK;
}

static void free_slice(struct slice_acc *s)
{
    if (s) {
        pthread_mutex_destroy(&s->lock);
        free(s->sum);
        free(s);
    }
}

static void free_tensor(struct tensor_acc *t)
{
    for (int64_t i = 0; i < t->n_slice; i++) {
        free_slice(t->slice[i]);
    }
    free(t->slice);
    free(t->name);
    free(t);
}

void imc_stats_collect_free(struct imc_stats_collect *c)
{
    if (!c) {
        return;
    }
    for (int64_t i = 0; i < c->cap; i++) {
        if (c->table[i]) {
            free_tensor(c->table[i]);
        }
    }
    free(c->table);
    free(c->dev.stage); // the blocks went with imc_stats_collect_sync(release) or their table
    pthread_mutex_destroy(&c->lock);
    free(c);
}

// The engine hook: rows arrive in token order, which is all the collector needs of tok.
static enum imc_status hook_on_input(void *user, const struct imc_exec *ex,
                                     const struct imc_backend *be, const struct imc_tensor_info *w,
                                     int64_t layer, int64_t slice, const float *x, int64_t ldx,
                                     int64_t n_rows, int64_t n_in, const int32_t *tok)
{
    (void)tok;
    return imc_stats_collect_add(user, ex, be, w, layer, slice, x, ldx, n_rows, n_in);
}

static enum imc_status hook_on_sync(void *user, const struct imc_exec *ex,
                                    const struct imc_backend *be, bool release)
{
    return imc_stats_collect_sync(user, ex, be, release);
}

struct imc_stats_hooks imc_stats_collect_hooks(struct imc_stats_collect *c)
{
    return (struct imc_stats_hooks){.user = c, .on_input = hook_on_input, .on_sync = hook_on_sync};
}

// Slot of name in the table: the tensor's, or the empty one where it would go.
static int64_t find_slot(const struct imc_stats_collect *c, const char *name)
{
    int64_t i = (int64_t)(hash_name(name) & (uint64_t)(c->cap - 1));
    while (c->table[i] && strcmp(c->table[i]->name, name) != 0) {
        i = (i + 1) & (c->cap - 1);
    }
    return i;
}

static enum imc_status grow_table(struct imc_stats_collect *c)
{
    struct imc_stats_collect big = *c;
    big.cap = 2 * c->cap;
    big.table = calloc((size_t)big.cap, sizeof(*big.table));
    if (!big.table) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t i = 0; i < c->cap; i++) {
        if (c->table[i]) {
            big.table[find_slot(&big, c->table[i]->name)] = c->table[i];
        }
    }
    free(c->table);
    c->table = big.table;
    c->cap = big.cap;
    return IMC_OK;
}

void imc_stats_entry_shape(const struct imc_tensor_info *w, int64_t *n_per_row, int64_t *n_mat)
{
    *n_per_row = w->ne[0];
    *n_mat = w->ne[2] > 1 ? w->ne[2] : 1;
}

// Checks a call against the hook contract; logs and returns IMC_ERR_INTERNAL on a violation.
static enum imc_status check_call(const struct imc_tensor_info *w, int64_t slice, int64_t n_rows,
                                  int64_t n_in)
{
    const char *why = NULL;
    if (n_in != w->ne[0] || n_rows < 0) {
        why = "n_in differs from ne[0] or n_rows < 0";
    } else if (w->ne[3] != 1) {
        why = "4D weight";
    } else if (slice < 0 && w->ne[2] > 1) {
        why = "slice -1 on a 3D weight";
    } else if (w->ne[2] > 1 && slice >= w->ne[2]) {
        why = "slice beyond ne[2]";
    } else if (slice >= 0 && w->ne[2] == 1 && slice >= w->ne[1]) {
        why = "head beyond ne[1]";
    }
    if (why) {
        IMC_LOG_ERR("stats hook: tensor '%s' slice %" PRId64 " n_rows %" PRId64 " n_in %" PRId64
                    " (ne %" PRId64 "x%" PRId64 "x%" PRId64 "): %s",
                    w->name, slice, n_rows, n_in, w->ne[0], w->ne[1], w->ne[2], why);
        return IMC_ERR_INTERNAL;
    }
    return IMC_OK;
}

// Creates the accumulator of w (called with c->lock held). Checks an existing imatrix entry.
static enum imc_status new_tensor(struct imc_stats_collect *c, const struct imc_tensor_info *w,
                                  bool fold_heads, struct tensor_acc **out)
{
    int64_t n_per_row, n_mat;
    imc_stats_entry_shape(w, &n_per_row, &n_mat);
    const struct imc_imatrix_entry *e = imc_imatrix_find(c->im, w->name);
    if (e && !(e->n_per_row == n_per_row && e->n_mat == n_mat) &&
        !(e->n_mat == 1 && e->n_per_row == n_per_row * n_mat)) {
        IMC_LOG_ERR("tensor '%s': the imatrix being extended has shape %" PRId64 "x%" PRId64
                    " but the model gives %" PRId64 "x%" PRId64,
                    w->name, e->n_per_row, e->n_mat, n_per_row, n_mat);
        return IMC_ERR_FORMAT;
    }
    if (2 * (c->n + 1) > c->cap) {
        IMC_TRY(grow_table(c));
    }
    int64_t n_slice = fold_heads ? 0 : n_mat;
    struct tensor_acc *t = calloc(1, sizeof(*t));
    char *name = strdup(w->name);
    struct slice_acc **slice = n_slice ? calloc((size_t)n_slice, sizeof(*slice)) : NULL;
    if (!t || !name || (n_slice && !slice)) {
        free(t);
        free(name);
        free(slice);
        return IMC_ERR_NOMEM;
    }
    *t = (struct tensor_acc){.name = name, .n_per_row = n_per_row, .n_mat = n_mat,
                             .fold_heads = fold_heads, .slice = slice, .n_slice = n_slice};
    c->table[find_slot(c, w->name)] = t;
    c->n++;
    if (fold_heads && !c->told_2d) {
        c->told_2d = true;
        IMC_LOG_INF("tensor '%s' is 2D (ik layout): its imatrix holds the per-head sums added "
                    "over heads; rewriting the model to the 3D layout (imc mla-3d) gives "
                    "per-head data",
                    w->name);
    }
    *out = t;
    return IMC_OK;
}

// Returns the slice accumulator for (w, slice), creating what is missing (under c->lock).
static enum imc_status get_slice(struct imc_stats_collect *c, const struct imc_tensor_info *w,
                                 int64_t slice, struct slice_acc **out)
{
    struct tensor_acc *t = c->table[find_slot(c, w->name)];
    bool fold_heads = slice >= 0 && w->ne[2] == 1;
    if (!t) {
        IMC_TRY(new_tensor(c, w, fold_heads, &t));
    } else if (t->fold_heads != fold_heads) {
        IMC_LOG_ERR("stats hook: tensor '%s' reported both per head and as a whole", w->name);
        return IMC_ERR_INTERNAL;
    }
    int64_t s = slice < 0 ? 0 : slice;
    if (t->fold_heads && s >= t->n_slice) {
        void *p = realloc(t->slice, (size_t)(s + 1) * sizeof(*t->slice));
        if (!p) {
            return IMC_ERR_NOMEM;
        }
        t->slice = p;
        memset(&t->slice[t->n_slice], 0, (size_t)(s + 1 - t->n_slice) * sizeof(*t->slice));
        t->n_slice = s + 1;
    }
    if (!t->slice[s]) {
        struct slice_acc *a = calloc(1, sizeof(*a));
        double *sum = a ? calloc((size_t)t->n_per_row, sizeof(double)) : NULL;
        if (!sum) {
            free(a);
            return IMC_ERR_NOMEM;
        }
        pthread_mutex_init(&a->lock, NULL);
        a->sum = sum;
        t->slice[s] = a;
    }
    *out = t->slice[s];
    return IMC_OK;
}

int64_t scol_first_nonfinite(const double *sum, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        if (!isfinite(sum[j])) {
            return j;
        }
    }
    return -1;
}

enum imc_status scol_fail(struct imc_stats_collect *c, enum imc_status st)
{
    pthread_mutex_lock(&c->lock);
    if (c->failed == IMC_OK) {
        c->failed = st;
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

// Logs the first non-finite value of x in column col (found by the op table be: x may be its
// memory).
static void report_nonfinite(const struct imc_stats_collect *c, const struct imc_exec *ex,
                             const struct imc_backend *be, const struct imc_tensor_info *w,
                             int64_t layer, int64_t slice, const float *x, int64_t ldx,
                             int64_t n_rows, int64_t col)
{
    int64_t row = -1;
    float v = NAN;
    if (be->find_nonfinite(ex, x + col, ldx, n_rows, 1, &row, &v) != IMC_OK || row < 0) {
        IMC_LOG_ERR("tensor '%s' (layer %" PRId64 ", slice %" PRId64 "), chunk %" PRId64
                    ": non-finite sum of squares in column %" PRId64,
                    w->name, layer, slice, c->chunk, col);
        return;
    }
    IMC_LOG_ERR("tensor '%s' (layer %" PRId64 ", slice %" PRId64 "), chunk %" PRId64
                ": non-finite activation %g in column %" PRId64 " (row %" PRId64 " of this call)",
                w->name, layer, slice, c->chunk, (double)v, col, row);
}

enum imc_status imc_stats_collect_on_input(void *user, const struct imc_tensor_info *w,
                                           int64_t layer, int64_t slice, const float *x,
                                           int64_t n_rows, int64_t n_in)
{
    return imc_stats_collect_add(user, NULL, NULL, w, layer, slice, x, n_in, n_rows, n_in);
}

enum imc_status imc_stats_collect_add(struct imc_stats_collect *c, const struct imc_exec *ex,
                                      const struct imc_backend *be, const struct imc_tensor_info *w,
                                      int64_t layer, int64_t slice, const float *x, int64_t ldx,
                                      int64_t n_rows, int64_t n_in)
{
    IMC_ASSERT(ldx >= n_in);
    enum imc_status st = check_call(w, slice, n_rows, n_in);
    if (st != IMC_OK) {
        return scol_fail(c, st);
    }
    struct slice_acc *a = NULL;
    pthread_mutex_lock(&c->lock);
    st = c->failed != IMC_OK ? c->failed : get_slice(c, w, slice, &a);
    pthread_mutex_unlock(&c->lock);
    if (st != IMC_OK) {
        if (st == IMC_ERR_NOMEM) {
            IMC_LOG_ERR("stats collector: out of memory at tensor '%s'", w->name);
        }
        return scol_fail(c, st);
    }
    be = be ? be : imc_backend_cpu();
    int64_t count = 0, bad = -1;
    if (be->buf_alloc) { // the sums stay in the table's memory until the sync (checked there)
        st = scol_dev_add(c, a, ex, be, w, n_in, x, ldx, n_rows, &count);
        if (st != IMC_OK) {
            return scol_fail(c, st);
        }
    } else {
        pthread_mutex_lock(&a->lock);
        be->sqacc(ex, a->sum, &count, x, ldx, n_rows, n_in);
        a->rows += (double)count;
        bad = scol_first_nonfinite(a->sum, n_in);
        pthread_mutex_unlock(&a->lock);
    }
    if (count != n_rows) {
        IMC_LOG_ERR("tensor '%s' (layer %" PRId64 ", slice %" PRId64 "): the %s op table's sqacc "
                    "counted %" PRId64 " rows of %" PRId64,
                    w->name, layer, slice, be->name, count, n_rows);
        return scol_fail(c, IMC_ERR_INTERNAL);
    }
    if (bad >= 0) {
        report_nonfinite(c, ex, be, w, layer, slice, x, ldx, n_rows, bad);
        return scol_fail(c, IMC_ERR_NUMERIC);
    }
    return IMC_OK;
}

enum imc_status imc_stats_collect_declare(struct imc_stats_collect *c,
                                          const struct imc_tensor_info *w)
{
    int64_t n_per_row, n_mat;
    struct imc_imatrix_entry *e;
    imc_stats_entry_shape(w, &n_per_row, &n_mat);
    return imc_imatrix_get_entry(c->im, w->name, n_per_row, n_mat, &e);
}

// Checks before anything is folded: every head of a 2D weight saw the rows of head 0, and the
// imatrix entry can take the tensor's shape.
static enum imc_status check_tensor(const struct imc_stats_collect *c, const struct tensor_acc *t)
{
    const struct slice_acc *h0 = t->n_slice ? t->slice[0] : NULL;
    for (int64_t h = 1; t->fold_heads && h < t->n_slice; h++) {
        double rows = t->slice[h] ? t->slice[h]->rows : 0.0;
        if (!h0 || rows != h0->rows) {
            IMC_LOG_ERR("tensor '%s', chunk %" PRId64 ": head %" PRId64 " saw %.0f rows but "
                        "head 0 saw %.0f; all heads must see every token",
                        t->name, c->chunk, h, rows, h0 ? h0->rows : 0.0);
            return IMC_ERR_INTERNAL;
        }
    }
    const struct imc_imatrix_entry *e = imc_imatrix_find(c->im, t->name);
    if (e && !(e->n_per_row == t->n_per_row && e->n_mat == t->n_mat) &&
        !(e->n_mat == 1 && e->n_per_row == t->n_per_row * t->n_mat)) {
        IMC_LOG_ERR("tensor '%s': the imatrix has shape %" PRId64 "x%" PRId64
                    " but the model gives %" PRId64 "x%" PRId64,
                    t->name, e->n_per_row, e->n_mat, t->n_per_row, t->n_mat);
        return IMC_ERR_FORMAT;
    }
    return IMC_OK;
}

// Folds t's chunk partials into its imatrix entry (heads of a 2D weight added into head 0 in
// ascending order first) and clears them.
static enum imc_status fold_tensor(struct imc_stats_collect *c, struct tensor_acc *t)
{
    for (int64_t h = 1; t->fold_heads && h < t->n_slice; h++) {
        for (int64_t j = 0; t->slice[h] && j < t->n_per_row; j++) {
            t->slice[0]->sum[j] += t->slice[h]->sum[j];
        }
    }
    struct imc_imatrix_entry *e;
    IMC_TRY(imc_imatrix_get_entry(c->im, t->name, t->n_per_row, t->n_mat, &e));
    int64_t n_fold = t->fold_heads ? 1 : t->n_slice;
    for (int64_t s = 0; s < n_fold; s++) {
        const struct slice_acc *a = t->slice[s];
        if (!a) {
            continue;
        }
        double *dst = e->sums + s * t->n_per_row;
        for (int64_t j = 0; j < t->n_per_row; j++) {
            dst[j] += a->sum[j];
        }
        e->counts[s] += a->rows;
    }
    for (int64_t s = 0; s < t->n_slice; s++) {
        if (t->slice[s]) {
            memset(t->slice[s]->sum, 0, (size_t)t->n_per_row * sizeof(double));
            t->slice[s]->rows = 0.0;
        }
    }
    return IMC_OK;
}

enum imc_status imc_stats_collect_end_chunk(struct imc_stats_collect *c)
{
    if (c->failed != IMC_OK) {
        return c->failed;
    }
    if (c->dev.n_on_dev > 0) {
        IMC_LOG_ERR("stats collector: chunk %" PRId64 " ends with the sums of %" PRId64 " slices "
                    "still in the %s table's memory (imc_stats_collect_sync missing)",
                    c->chunk, c->dev.n_on_dev, c->dev.be->name);
        return scol_fail(c, IMC_ERR_INTERNAL);
    }
    for (int64_t i = 0; i < c->cap; i++) {
        enum imc_status st = c->table[i] ? check_tensor(c, c->table[i]) : IMC_OK;
        if (st != IMC_OK) {
            return scol_fail(c, st);
        }
    }
    for (int64_t i = 0; i < c->cap; i++) {
        enum imc_status st = c->table[i] ? fold_tensor(c, c->table[i]) : IMC_OK;
        if (st != IMC_OK) {
            return scol_fail(c, st);
        }
    }
    if (c->im->chunk_count < UINT32_MAX) {
        c->im->chunk_count++;
    }
    c->chunk++;
    return IMC_OK;
}
