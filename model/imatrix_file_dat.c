/*
 * model/imatrix_file_dat: the legacy .dat form of the imatrix (DESIGN.md §4 "imatrix, legacy
 * .dat"; layout and precision documented in model/imatrix_file.h). All integers little-endian
 * int32, as llama.cpp writes them on the hosts it runs on.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/log.h"
#include "model/imatrix_file.h"

// ---- reader ---------------------------------------------------------------------------------

struct cur {
    const uint8_t *p; // file bytes
    uint64_t size;    // bytes
    uint64_t off;     // read position
    const char *path; // for messages
};

static uint64_t left(const struct cur *c)
{
    return c->size - c->off;
}

static bool get_i32(struct cur *c, int32_t *v, const char *what)
{
    if (left(c) < 4) {
        IMC_LOG_ERR("%s: truncated: %s at offset %" PRIu64 " needs 4 bytes, %" PRIu64 " left",
                    c->path, what, c->off, left(c));
        return false;
    }
    memcpy(v, c->p + c->off, 4);
    c->off += 4;
    return true;
}

// Reads a length-prefixed name (no NUL inside) into a new string; min_len is 0 or 1.
static enum imc_status get_name(struct cur *c, int32_t min_len, const char *what, char **out)
{
    int32_t len;
    *out = NULL;
    if (!get_i32(c, &len, what)) {
        return IMC_ERR_FORMAT;
    }
    if (len < min_len || (uint64_t)len > left(c)) {
        IMC_LOG_ERR("%s: %s length %" PRId32 " at offset %" PRIu64 " is invalid (%" PRIu64
                    " bytes left)",
                    c->path, what, len, c->off - 4, left(c));
        return IMC_ERR_FORMAT;
    }
    if (memchr(c->p + c->off, 0, (size_t)len)) {
        IMC_LOG_ERR("%s: %s at offset %" PRIu64 " contains a NUL byte", c->path, what, c->off);
        return IMC_ERR_FORMAT;
    }
    *out = strndup((const char *)c->p + c->off, (size_t)len);
    if (!*out) {
        return IMC_ERR_NOMEM;
    }
    c->off += (uint64_t)len;
    return IMC_OK;
}

// Reads ncall, nval and the values of entry `name`; adds it to im with sums = value·cs and
// count = max(ncall, 1)·cs. *ncall_out receives ncall.
static enum imc_status read_values(struct cur *c, const char *name, uint32_t cs,
                                   struct imc_imatrix *im, int32_t *ncall_out)
{
    int32_t ncall, nval;
    if (!get_i32(c, &ncall, "ncall") || !get_i32(c, &nval, "nval")) {
        return IMC_ERR_FORMAT;
    }
    if (ncall < 0 || nval < 1 || (uint64_t)nval * 4 > left(c)) {
        IMC_LOG_ERR("%s: entry '%s': ncall %" PRId32 ", nval %" PRId32 " invalid (%" PRIu64
                    " bytes left)",
                    c->path, name, ncall, nval, left(c));
        return IMC_ERR_FORMAT;
    }
    if (imc_imatrix_find(im, name)) {
        IMC_LOG_ERR("%s: entry '%s' appears twice", c->path, name);
        return IMC_ERR_FORMAT;
    }
    if (ncall == 0) {
        IMC_LOG_WRN("%s: entry '%s' has ncall 0; reading its values as means", c->path, name);
    }
    struct imc_imatrix_entry *e;
    IMC_TRY(imc_imatrix_get_entry(im, name, nval, 1, &e));
    for (int32_t j = 0; j < nval; j++) {
        float v;
        memcpy(&v, c->p + c->off + 4 * (uint64_t)j, 4);
        if (!isfinite(v) || v < 0.0f) {
            IMC_LOG_ERR("%s: entry '%s' value %" PRId32 ": %g is not a finite value >= 0", c->path,
                        name, j, (double)v);
            return IMC_ERR_FORMAT;
        }
        e->sums[j] = (double)v * cs;
    }
    e->counts[0] = (double)(ncall > 0 ? ncall : 1) * cs;
    c->off += 4 * (uint64_t)nval;
    *ncall_out = ncall;
    return IMC_OK;
}

// Trailer: nothing (oldest files), int32 chunk count, or chunk count + dataset name.
static enum imc_status read_trailer(struct cur *c, int32_t max_ncall, struct imc_imatrix *im)
{
    im->chunk_count = (uint32_t)max_ncall;
    if (left(c) == 0) {
        return IMC_OK;
    }
    int32_t chunks;
    if (!get_i32(c, &chunks, "chunk count")) {
        return IMC_ERR_FORMAT;
    }
    if (chunks < 0) {
        IMC_LOG_ERR("%s: chunk count %" PRId32 " is negative", c->path, chunks);
        return IMC_ERR_FORMAT;
    }
    im->chunk_count = (uint32_t)chunks;
    if (left(c) == 0) {
        return IMC_OK;
    }
    char *dataset;
    IMC_TRY(get_name(c, 0, "dataset name", &dataset));
    enum imc_status st = dataset[0] ? imc_imatrix_add_dataset(im, dataset) : IMC_OK;
    free(dataset);
    if (st == IMC_OK && left(c) != 0) {
        IMC_LOG_ERR("%s: %" PRIu64 " unexpected bytes after the dataset name at offset %" PRIu64,
                    c->path, left(c), c->off);
        st = IMC_ERR_FORMAT;
    }
    return st;
}

static enum imc_status read_body(struct cur *c, uint32_t cs, struct imc_imatrix *im)
{
    int32_t n_entries, max_ncall = 0;
    if (!get_i32(c, &n_entries, "entry count")) {
        return IMC_ERR_FORMAT;
    }
    // Each entry takes at least 16 bytes (len, 1 name byte, ncall, nval) plus 4 per value.
    if (n_entries < 1 || (uint64_t)n_entries > left(c) / 17) {
        IMC_LOG_ERR("%s: entry count %" PRId32 " does not fit a file of %" PRIu64
                    " bytes (not a legacy imatrix?)",
                    c->path, n_entries, c->size);
        return IMC_ERR_FORMAT;
    }
    for (int32_t i = 0; i < n_entries; i++) {
        char *name;
        IMC_TRY(get_name(c, 1, "entry name", &name));
        int32_t ncall = 0;
        enum imc_status st = read_values(c, name, cs, im, &ncall);
        free(name);
        IMC_TRY(st);
        max_ncall = ncall > max_ncall ? ncall : max_ncall;
    }
    return read_trailer(c, max_ncall, im);
}

// Reads the .dat image data[0..size) of the file path into *out (initialized).
static enum imc_status read_dat_image(const void *data, uint64_t size, const char *path,
                                      uint32_t chunk_size, struct imc_imatrix *out)
{
    struct cur c = {.p = data, .size = size, .off = 0, .path = path};
    out->chunk_size = chunk_size ? chunk_size : IMC_IMATRIX_DEFAULT_CHUNK_SIZE;
    enum imc_status st = read_body(&c, out->chunk_size, out);
    if (st == IMC_OK) {
        st = imc_imatrix_set_source(out, path);
    }
    if (st == IMC_ERR_NOMEM) {
        IMC_LOG_ERR("%s: out of memory", path);
    }
    if (st != IMC_OK) {
        imc_imatrix_free(out);
    }
    return st;
}

enum imc_status imc_imatrix_read_dat(const char *path, uint32_t chunk_size,
                                     struct imc_imatrix *out)
{
    imc_imatrix_init(out);
    struct imc_map m;
    IMC_TRY(imc_map_open(&m, path));
    enum imc_status st = read_dat_image(m.data, m.size, path, chunk_size, out);
    imc_map_close(&m);
    return st;
}

enum imc_status imc_imatrix_read_memory(const void *data, uint64_t size, const char *path,
                                        uint32_t dat_chunk_size, struct imc_imatrix *out)
{
    imc_imatrix_init(out);
    if (size >= 4 && memcmp(data, "GGUF", 4) == 0) {
        return imc_imatrix_read_gguf_memory(data, size, path, out);
    }
    return read_dat_image(data, size, path, dat_chunk_size, out);
}

enum imc_status imc_imatrix_read(const char *path, uint32_t dat_chunk_size,
                                 struct imc_imatrix *out)
{
    imc_imatrix_init(out);
    struct imc_map m;
    IMC_TRY(imc_map_open(&m, path));
    bool gguf = m.size >= 4 && memcmp(m.data, "GGUF", 4) == 0;
    imc_map_close(&m);
    return gguf ? imc_imatrix_read_gguf(path, out) : imc_imatrix_read_dat(path, dat_chunk_size, out);
}

// ---- writer ---------------------------------------------------------------------------------

static int64_t zero_matrices(const struct imc_imatrix_entry *e, double *max_count)
{
    int64_t n_zero = 0;
    *max_count = 0.0;
    for (int64_t m = 0; m < e->n_mat; m++) {
        n_zero += !(e->counts[m] > 0.0);
        *max_count = e->counts[m] > *max_count ? e->counts[m] : *max_count;
    }
    return n_zero;
}

// Whether e goes into the file under policy; warns about skipped and partial entries.
static bool dat_keeps(const char *path, const struct imc_imatrix_entry *e,
                      enum imc_dat_zero_policy policy)
{
    double max_count;
    int64_t n_zero = zero_matrices(e, &max_count);
    if (n_zero == e->n_mat) {
        IMC_LOG_WRN("%s: entry '%s' has no data - skipping", path, e->name);
        return false;
    }
    if (n_zero > 0 && policy == IMC_DAT_ZERO_SKIP) {
        IMC_LOG_WRN("%s: entry '%s' has %" PRId64 " of %" PRId64 " matrices without data - "
                    "skipping (policy skip)",
                    path, e->name, n_zero, e->n_mat);
        return false;
    }
    if (n_zero > 0) {
        IMC_LOG_WRN("%s: entry '%s' has partial data (%.2f%%)", path, e->name,
                    100.0 * (double)(e->n_mat - n_zero) / (double)e->n_mat);
    }
    return true;
}

// fill[j] = the value for column j of a matrix without tokens: 1 (ONE), 0 (ZERO, SKIP), or the
// mean of x² over the matrices that saw tokens (FILL_MEAN).
static void zero_fill(const struct imc_imatrix_entry *e, enum imc_dat_zero_policy policy,
                      double *fill)
{
    int64_t n_seen = 0;
    for (int64_t j = 0; j < e->n_per_row; j++) {
        fill[j] = policy == IMC_DAT_ZERO_ONE ? 1.0 : 0.0;
    }
    for (int64_t m = 0; policy == IMC_DAT_ZERO_FILL_MEAN && m < e->n_mat; m++) {
        if (e->counts[m] > 0.0) {
            for (int64_t j = 0; j < e->n_per_row; j++) {
                fill[j] += e->sums[m * e->n_per_row + j] / e->counts[m];
            }
            n_seen++;
        }
    }
    for (int64_t j = 0; n_seen > 0 && j < e->n_per_row; j++) {
        fill[j] /= (double)n_seen;
    }
}

// Fills vals[n_per_row·n_mat] with mean·ncall per matrix, zero-count matrices by policy.
// fill is scratch of n_per_row doubles.
static enum imc_status dat_values(const char *path, const struct imc_imatrix_entry *e,
                                  int32_t ncall, enum imc_dat_zero_policy policy, float *vals,
                                  double *fill)
{
    zero_fill(e, policy, fill);
    for (int64_t m = 0; m < e->n_mat; m++) {
        const double c = e->counts[m];
        for (int64_t j = 0; j < e->n_per_row; j++) {
            double mean = c > 0.0 ? e->sums[m * e->n_per_row + j] / c : fill[j];
            float v = (float)(mean * ncall);
            if (!isfinite(v)) {
                IMC_LOG_ERR("%s: entry '%s' value %" PRId64 " does not fit float32", path, e->name,
                            m * e->n_per_row + j);
                return IMC_ERR_NUMERIC;
            }
            vals[m * e->n_per_row + j] = v;
        }
    }
    return IMC_OK;
}

static enum imc_status put_i32(struct imc_afile *a, int32_t v)
{
    return imc_afile_write(a, &v, sizeof(v));
}

static enum imc_status write_entry(struct imc_afile *a, const struct imc_imatrix_entry *e,
                                   uint32_t cs, enum imc_dat_zero_policy policy, float *vals,
                                   double *fill)
{
    double max_count;
    zero_matrices(e, &max_count);
    double ncall_d = ceil(max_count / cs);
    if (ncall_d > INT32_MAX) {
        IMC_LOG_ERR("%s: entry '%s': ncall %.0f does not fit int32", a->path, e->name, ncall_d);
        return IMC_ERR_FORMAT;
    }
    int32_t ncall = ncall_d < 1.0 ? 1 : (int32_t)ncall_d;
    int32_t nval = (int32_t)(e->n_per_row * e->n_mat);
    IMC_TRY(dat_values(a->path, e, ncall, policy, vals, fill));
    IMC_TRY(put_i32(a, (int32_t)strlen(e->name)));
    IMC_TRY(imc_afile_write(a, e->name, strlen(e->name)));
    IMC_TRY(put_i32(a, ncall));
    IMC_TRY(put_i32(a, nval));
    return imc_afile_write(a, vals, (size_t)nval * sizeof(float));
}

static enum imc_status write_body(struct imc_afile *a, const struct imc_imatrix *im,
                                  enum imc_dat_zero_policy policy, const bool *keep, float *vals,
                                  double *fill)
{
    uint32_t cs = im->chunk_size;
    if (cs == 0) {
        cs = IMC_IMATRIX_DEFAULT_CHUNK_SIZE;
        IMC_LOG_WRN("%s: chunk size unknown; computing ncall with %" PRIu32, a->path, cs);
    }
    int32_t n_keep = 0;
    for (int64_t i = 0; i < im->n_entries; i++) {
        n_keep += keep[i];
    }
    if (n_keep == 0) {
        IMC_LOG_WRN("%s: no entry has data; the file holds none (llama.cpp refuses such files)",
                    a->path);
    }
    IMC_TRY(put_i32(a, n_keep));
    for (int64_t i = 0; i < im->n_entries; i++) {
        if (keep[i]) {
            IMC_TRY(write_entry(a, &im->entries[i], cs, policy, vals, fill));
        }
    }
    if (im->chunk_count > INT32_MAX) {
        IMC_LOG_ERR("%s: chunk count %" PRIu32 " does not fit int32", a->path, im->chunk_count);
        return IMC_ERR_FORMAT;
    }
    const char *dataset = im->n_datasets ? im->datasets[im->n_datasets - 1] : "";
    IMC_TRY(put_i32(a, (int32_t)im->chunk_count));
    IMC_TRY(put_i32(a, (int32_t)strlen(dataset)));
    return imc_afile_write(a, dataset, strlen(dataset));
}

enum imc_status imc_imatrix_write_dat(const struct imc_imatrix *im, const char *path,
                                      enum imc_dat_zero_policy policy)
{
    int64_t max_vals = 1, max_row = 1;
    bool *keep = calloc((size_t)im->n_entries + 1, sizeof(bool));
    for (int64_t i = 0; keep && i < im->n_entries; i++) {
        const struct imc_imatrix_entry *e = &im->entries[i];
        keep[i] = dat_keeps(path, e, policy);
        max_vals = e->n_per_row * e->n_mat > max_vals ? e->n_per_row * e->n_mat : max_vals;
        max_row = e->n_per_row > max_row ? e->n_per_row : max_row;
    }
    float *vals = keep ? malloc((size_t)max_vals * sizeof(float)) : NULL;
    double *fill = vals ? malloc((size_t)max_row * sizeof(double)) : NULL;
    enum imc_status st = IMC_ERR_NOMEM;
    struct imc_afile a = {0};
    if (!fill) {
        IMC_LOG_ERR("%s: out of memory", path);
    } else {
        st = imc_afile_open(&a, path);
    }
    if (st == IMC_OK) {
        st = write_body(&a, im, policy, keep, vals, fill);
        st = st == IMC_OK ? imc_afile_commit(&a) : (imc_afile_abort(&a), st);
    }
    free(fill);
    free(vals);
    free(keep);
    return st;
}
