/*
 * model/imatrix_file: the in-memory imatrix (sorted entries), merge, and output naming
 * (DESIGN.md §4). The GGUF form lives in imatrix_file_gguf.c, the legacy form in
 * imatrix_file_dat.c.
 */
#include "model/imatrix_file.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/size.h"

void imc_imatrix_init(struct imc_imatrix *im)
{
    memset(im, 0, sizeof(*im));
}

static void free_strs(char **s, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        free(s[i]);
    }
    free(s);
}

void imc_imatrix_free(struct imc_imatrix *im)
{
    for (int64_t i = 0; i < im->n_entries; i++) {
        free(im->entries[i].name);
        free(im->entries[i].sums);
        free(im->entries[i].counts);
    }
    free(im->entries);
    free_strs(im->datasets, im->n_datasets);
    free_strs(im->sources, im->n_sources);
    imc_imatrix_init(im);
}

// Index of name, or -(insertion point) - 1 when absent.
static int64_t find_index(const struct imc_imatrix *im, const char *name)
{
    int64_t lo = 0, hi = im->n_entries;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(im->entries[mid].name, name);
        if (c == 0) {
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -lo - 1;
}

struct imc_imatrix_entry *imc_imatrix_find(const struct imc_imatrix *im, const char *name)
{
    int64_t i = find_index(im, name);
    return i >= 0 ? &im->entries[i] : NULL;
}

static bool shape_ok(int64_t n_per_row, int64_t n_mat)
{
    return n_per_row >= 1 && n_mat >= 1 && n_per_row <= INT32_MAX && n_mat <= INT32_MAX &&
           n_per_row * n_mat <= INT32_MAX;
}

// Inserts a zeroed entry at position pos; returns it or NULL on allocation failure.
static struct imc_imatrix_entry *insert_at(struct imc_imatrix *im, int64_t pos, const char *name,
                                           int64_t n_per_row, int64_t n_mat)
{
    if (im->n_entries == im->cap_entries) {
        int64_t cap = im->cap_entries ? 2 * im->cap_entries : 64;
        void *p = realloc(im->entries, (size_t)cap * sizeof(*im->entries));
        if (!p) {
            return NULL;
        }
        im->entries = p;
        im->cap_entries = cap;
    }
    struct imc_imatrix_entry e = {
        .name = strdup(name),
        .n_per_row = n_per_row,
        .n_mat = n_mat,
        .sums = calloc((size_t)(n_per_row * n_mat), sizeof(double)),
        .counts = calloc((size_t)n_mat, sizeof(double)),
        .origin = -1,
    };
    if (!e.name || !e.sums || !e.counts) {
        free(e.name);
        free(e.sums);
        free(e.counts);
        return NULL;
    }
    memmove(&im->entries[pos + 1], &im->entries[pos],
            (size_t)(im->n_entries - pos) * sizeof(*im->entries));
    im->entries[pos] = e;
    im->n_entries++;
    return &im->entries[pos];
}

static const char *origin_name(const struct imc_imatrix *im, int32_t origin)
{
    return origin >= 0 && origin < im->n_sources ? im->sources[origin] : "(in memory)";
}

enum imc_status imc_imatrix_entry_reshape(struct imc_imatrix_entry *e, int64_t n_per_row,
                                          int64_t n_mat)
{
    if (e->n_per_row == n_per_row && e->n_mat == n_mat) {
        return IMC_OK;
    }
    if (e->n_mat != 1 || !shape_ok(n_per_row, n_mat) || e->n_per_row != n_per_row * n_mat) {
        return IMC_ERR_FORMAT;
    }
    double *counts = malloc((size_t)n_mat * sizeof(double));
    if (!counts) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t m = 0; m < n_mat; m++) {
        counts[m] = e->counts[0];
    }
    free(e->counts);
    e->counts = counts;
    e->n_per_row = n_per_row;
    e->n_mat = n_mat;
    return IMC_OK;
}

enum imc_status imc_imatrix_get_entry(struct imc_imatrix *im, const char *name, int64_t n_per_row,
                                      int64_t n_mat, struct imc_imatrix_entry **out)
{
    *out = NULL;
    if (!shape_ok(n_per_row, n_mat)) {
        IMC_LOG_ERR("tensor '%s': bad imatrix shape %" PRId64 "x%" PRId64
                    " (each >= 1, product < 2^31)",
                    name, n_per_row, n_mat);
        return IMC_ERR_ARG;
    }
    int64_t i = find_index(im, name);
    if (i < 0) {
        *out = insert_at(im, -i - 1, name, n_per_row, n_mat);
        if (!*out) {
            IMC_LOG_ERR("tensor '%s': out of memory for %" PRId64 "x%" PRId64 " imatrix values",
                        name, n_per_row, n_mat);
            return IMC_ERR_NOMEM;
        }
        return IMC_OK;
    }
    struct imc_imatrix_entry *e = &im->entries[i];
    enum imc_status st = imc_imatrix_entry_reshape(e, n_per_row, n_mat);
    if (st == IMC_ERR_FORMAT) {
        IMC_LOG_ERR("tensor '%s': imatrix shape %" PRId64 "x%" PRId64 " in '%s' but %" PRId64
                    "x%" PRId64 " expected",
                    name, e->n_per_row, e->n_mat, origin_name(im, e->origin), n_per_row, n_mat);
        return st;
    }
    if (st == IMC_OK) {
        *out = e;
    }
    return st;
}

static enum imc_status push_str(char ***arr, int64_t *n, const char *s)
{
    char *copy = strdup(s);
    void *p = realloc(*arr, (size_t)(*n + 1) * sizeof(char *));
    if (!copy || !p) {
        free(copy);
        if (p) {
            *arr = p;
        }
        IMC_LOG_ERR("imatrix: out of memory");
        return IMC_ERR_NOMEM;
    }
    *arr = p;
    (*arr)[(*n)++] = copy;
    return IMC_OK;
}

enum imc_status imc_imatrix_add_dataset(struct imc_imatrix *im, const char *name)
{
    return push_str(&im->datasets, &im->n_datasets, name);
}

// Checks that every entry of src can be added to dst (same shape, or one-matrix broadcast).
static enum imc_status merge_check(const struct imc_imatrix *dst, const struct imc_imatrix *src)
{
    for (int64_t i = 0; i < src->n_entries; i++) {
        const struct imc_imatrix_entry *s = &src->entries[i];
        const struct imc_imatrix_entry *d = imc_imatrix_find(dst, s->name);
        if (!d || (d->n_per_row == s->n_per_row && d->n_mat == s->n_mat)) {
            continue;
        }
        bool d_bcast = d->n_mat == 1 && d->n_per_row == s->n_per_row * s->n_mat;
        bool s_bcast = s->n_mat == 1 && s->n_per_row == d->n_per_row * d->n_mat;
        if (!d_bcast && !s_bcast) {
            IMC_LOG_ERR("tensor '%s': imatrix shape %" PRId64 "x%" PRId64 " in '%s' but %" PRId64
                        "x%" PRId64 " in '%s'",
                        s->name, d->n_per_row, d->n_mat, origin_name(dst, d->origin), s->n_per_row,
                        s->n_mat, origin_name(src, s->origin));
            return IMC_ERR_FORMAT;
        }
    }
    return IMC_OK;
}

// Warns when dst already holds entries and the two name sets differ: files of different
// models (or of different tensor selections) are usually a mistake to add up.
static void warn_entry_sets(const struct imc_imatrix *dst, const struct imc_imatrix *src)
{
    if (dst->n_entries == 0 || src->n_entries == 0) {
        return;
    }
    int64_t only_src = 0, only_dst = 0;
    const char *first_src = NULL, *first_dst = NULL;
    for (int64_t i = 0; i < src->n_entries; i++) {
        if (!imc_imatrix_find(dst, src->entries[i].name)) {
            first_src = only_src++ ? first_src : src->entries[i].name;
        }
    }
    for (int64_t i = 0; i < dst->n_entries; i++) {
        if (!imc_imatrix_find(src, dst->entries[i].name)) {
            first_dst = only_dst++ ? first_dst : dst->entries[i].name;
        }
    }
    if (only_src + only_dst > 0) {
        IMC_LOG_WRN("imatrix merge: '%s' has %" PRId64 " entries the files before it lack (%s%s) "
                    "and lacks %" PRId64 " of theirs (%s%s): are they of the same model?",
                    origin_name(src, 0), only_src, only_src ? "first " : "none",
                    only_src ? first_src : "", only_dst, only_dst ? "first " : "none",
                    only_dst ? first_dst : "");
    }
}

// d += w·s, where s has d's shape or is one matrix of as many values (its count broadcast).
static void add_entry(struct imc_imatrix_entry *d, const struct imc_imatrix_entry *s, double w)
{
    int64_t n = d->n_per_row * d->n_mat;
    for (int64_t j = 0; j < n; j++) {
        d->sums[j] += w * s->sums[j];
    }
    for (int64_t m = 0; m < d->n_mat; m++) {
        d->counts[m] += w * s->counts[s->n_mat == d->n_mat ? m : 0];
    }
}

static enum imc_status merge_entries(struct imc_imatrix *dst, const struct imc_imatrix *src,
                                     double weight, int32_t origin_base)
{
    for (int64_t i = 0; i < src->n_entries; i++) {
        const struct imc_imatrix_entry *s = &src->entries[i];
        struct imc_imatrix_entry *d = imc_imatrix_find(dst, s->name);
        bool fresh = !d;
        int64_t n_per_row = s->n_per_row, n_mat = s->n_mat;
        if (d && s->n_mat == 1 && d->n_mat > 1) {
            n_per_row = d->n_per_row; // s broadcasts into d's matrices
            n_mat = d->n_mat;
        }
        IMC_TRY(imc_imatrix_get_entry(dst, s->name, n_per_row, n_mat, &d));
        if (fresh) {
            d->origin = s->origin >= 0 ? origin_base + s->origin : -1;
        }
        add_entry(d, s, weight);
    }
    return IMC_OK;
}

enum imc_status imc_imatrix_merge(struct imc_imatrix *dst, const struct imc_imatrix *src,
                                  double weight)
{
    if (!(weight >= 0.0) || !isfinite(weight)) {
        IMC_LOG_ERR("imatrix merge: weight %g must be finite and >= 0", weight);
        return IMC_ERR_ARG;
    }
    IMC_TRY(merge_check(dst, src));
    warn_entry_sets(dst, src);
    if (dst->chunk_size == 0) {
        dst->chunk_size = src->chunk_size;
    } else if (src->chunk_size != 0 && src->chunk_size != dst->chunk_size) {
        IMC_LOG_WRN("imatrix merge: chunk size %" PRIu32 " of '%s' differs from %" PRIu32
                    "; keeping %" PRIu32,
                    src->chunk_size, origin_name(src, 0), dst->chunk_size, dst->chunk_size);
    }
    uint64_t chunks = (uint64_t)dst->chunk_count + src->chunk_count;
    dst->chunk_count = chunks > UINT32_MAX ? UINT32_MAX : (uint32_t)chunks;
    int32_t origin_base = (int32_t)dst->n_sources;
    for (int64_t i = 0; i < src->n_sources; i++) {
        IMC_TRY(push_str(&dst->sources, &dst->n_sources, src->sources[i]));
    }
    for (int64_t i = 0; i < src->n_datasets; i++) {
        IMC_TRY(imc_imatrix_add_dataset(dst, src->datasets[i]));
    }
    return merge_entries(dst, src, weight, origin_base);
}

enum imc_status imc_imatrix_merge_files(struct imc_imatrix *out, const char *const *paths,
                                        const double *weights, int n, uint32_t chunk_size)
{
    imc_imatrix_init(out);
    enum imc_status st = IMC_OK;
    for (int i = 0; i < n && st == IMC_OK; i++) {
        struct imc_imatrix one;
        st = imc_imatrix_read(paths[i], chunk_size, &one);
        if (st == IMC_OK) {
            st = imc_imatrix_merge(out, &one, weights ? weights[i] : 1.0);
        }
        imc_imatrix_free(&one);
    }
    if (st != IMC_OK) {
        imc_imatrix_free(out);
    }
    return st;
}

// Records path as the only source of a freshly read imatrix; every entry's origin is 0.
enum imc_status imc_imatrix_set_source(struct imc_imatrix *im, const char *path)
{
    IMC_TRY(push_str(&im->sources, &im->n_sources, path));
    for (int64_t i = 0; i < im->n_entries; i++) {
        im->entries[i].origin = (int32_t)(im->n_sources - 1);
    }
    return IMC_OK;
}

int imc_imatrix_parse_format(const char *s)
{
    static const char *const names[] = {"auto", "gguf", "dat", "both"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int imc_imatrix_parse_zero_policy(const char *s)
{
    static const char *const names[] = {"one", "skip", "zero", "mean"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

// Returns a new string: the first n bytes of s followed by suffix.
static char *concat(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    char *r = malloc(n + k + 1);
    if (r) {
        memcpy(r, s, n);
        memcpy(r + n, suffix, k + 1);
    }
    return r;
}

enum imc_status imc_imatrix_out_paths(const char *out, enum imc_imatrix_format fmt,
                                      char **gguf_path, char **dat_path)
{
    *gguf_path = NULL;
    *dat_path = NULL;
    size_t n = strlen(out);
    if (fmt == IMC_IMATRIX_FMT_AUTO) {
        fmt = ends_with(out, ".dat") ? IMC_IMATRIX_FMT_DAT : IMC_IMATRIX_FMT_GGUF;
    }
    if (fmt == IMC_IMATRIX_FMT_BOTH) {
        size_t base = ends_with(out, ".gguf") ? n - 5 : ends_with(out, ".dat") ? n - 4 : n;
        *gguf_path = concat(out, base, ".gguf");
        *dat_path = concat(out, base, ".dat");
    } else if (fmt == IMC_IMATRIX_FMT_GGUF) {
        *gguf_path = concat(out, n, "");
    } else if (fmt == IMC_IMATRIX_FMT_DAT) {
        *dat_path = concat(out, n, "");
    } else {
        IMC_LOG_ERR("imatrix: unknown output format %d", (int)fmt);
        return IMC_ERR_ARG;
    }
    bool want_gguf = fmt != IMC_IMATRIX_FMT_DAT, want_dat = fmt != IMC_IMATRIX_FMT_GGUF;
    if ((want_gguf && !*gguf_path) || (want_dat && !*dat_path)) {
        free(*gguf_path);
        free(*dat_path);
        *gguf_path = *dat_path = NULL;
        IMC_LOG_ERR("%s: out of memory", out);
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

enum imc_status imc_imatrix_write(const struct imc_imatrix *im, const char *out,
                                  enum imc_imatrix_format fmt, enum imc_dat_zero_policy policy)
{
    char *gguf_path, *dat_path;
    IMC_TRY(imc_imatrix_out_paths(out, fmt, &gguf_path, &dat_path));
    enum imc_status st = IMC_OK;
    if (gguf_path) {
        if (fmt == IMC_IMATRIX_FMT_GGUF && !ends_with(gguf_path, ".gguf")) {
            IMC_LOG_WRN("%s: writing a GGUF imatrix to a name without .gguf", gguf_path);
        }
        st = imc_imatrix_write_gguf(im, gguf_path);
    }
    if (st == IMC_OK && dat_path) {
        st = imc_imatrix_write_dat(im, dat_path, policy);
    }
    free(gguf_path);
    free(dat_path);
    return st;
}
