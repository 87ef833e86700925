/*
 * model/imatrix_file_gguf: the GGUF form of the imatrix, read and written through model/gguf
 * (DESIGN.md §4 "imatrix, GGUF form"; layout documented in model/imatrix_file.h).
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/gguf.h"
#include "model/imatrix_file.h"

#define KEY_TYPE "general.type"
#define KEY_DATASETS "imatrix.datasets"
#define KEY_CHUNK_COUNT "imatrix.chunk_count"
#define KEY_CHUNK_SIZE "imatrix.chunk_size"
#define SUF_SUM2 ".in_sum2"
#define SUF_COUNTS ".counts"
#define SUF_SUM ".in_sum"
// llama.cpp's GGML_MAX_NAME: tensor names must be shorter than this to load there.
#define GGML_NAME_LIMIT 64

static bool has_suffix(const char *s, const char *suffix, size_t *base_len)
{
    size_t n = strlen(s), k = strlen(suffix);
    if (n <= k || strcmp(s + n - k, suffix) != 0) {
        return false;
    }
    *base_len = n - k;
    return true;
}

static enum imc_status read_u32_key(const struct imc_gguf *g, const char *path, const char *key,
                                    uint32_t *out)
{
    *out = 0;
    if (imc_gguf_find_key(g, key) < 0) {
        IMC_LOG_WRN("%s: no %s key (llama-quantize requires it)", path, key);
        return IMC_OK;
    }
    if (!imc_gguf_get_u32(g, key, out)) {
        IMC_LOG_ERR("%s: %s is not an unsigned 32-bit integer", path, key);
        return IMC_ERR_FORMAT;
    }
    return IMC_OK;
}

static enum imc_status read_keys(const struct imc_gguf *g, const char *path,
                                 struct imc_imatrix *im)
{
    int64_t k = imc_gguf_find_key(g, KEY_TYPE);
    if (k >= 0) {
        const char *type =
            imc_gguf_kv_type(g, k) == IMC_GGUF_STRING ? imc_gguf_str(g, k) : "(not a string)";
        if (strcmp(type, "imatrix") != 0) {
            IMC_LOG_ERR("%s: %s is '%s', not 'imatrix'", path, KEY_TYPE, type);
            return IMC_ERR_FORMAT;
        }
    }
    k = imc_gguf_find_key(g, KEY_DATASETS);
    if (k >= 0) {
        if (imc_gguf_kv_type(g, k) != IMC_GGUF_ARRAY ||
            imc_gguf_arr_type(g, k) != IMC_GGUF_STRING) {
            IMC_LOG_ERR("%s: %s is not an array of strings", path, KEY_DATASETS);
            return IMC_ERR_FORMAT;
        }
        uint64_t n = imc_gguf_arr_n(g, k);
        for (uint64_t j = 0; j < n; j++) {
            IMC_TRY(imc_imatrix_add_dataset(im, imc_gguf_arr_str(g, k, j, NULL)));
        }
    }
    IMC_TRY(read_u32_key(g, path, KEY_CHUNK_COUNT, &im->chunk_count));
    return read_u32_key(g, path, KEY_CHUNK_SIZE, &im->chunk_size);
}

// Copies n F32 values of t into dst (as double), checking each is finite and >= 0.
static enum imc_status load_values(const char *path, const struct imc_tensor_info *t, double *dst,
                                   int64_t n)
{
    const unsigned char *src = t->data;
    for (int64_t j = 0; j < n; j++) {
        float v;
        memcpy(&v, src + 4 * j, sizeof(v));
        if (!isfinite(v) || v < 0.0f) {
            IMC_LOG_ERR("%s: tensor '%s' element %" PRId64 ": %g is not a finite value >= 0", path,
                        t->name, j, (double)v);
            return IMC_ERR_FORMAT;
        }
        dst[j] = v;
    }
    return IMC_OK;
}

// Reads the pair "<base>.in_sum2" (sum) and "<base>.counts" into a new entry.
static enum imc_status read_pair(const struct imc_gguf *g, const char *path,
                                 const struct imc_tensor_info *sum, size_t base_len,
                                 struct imc_imatrix *im)
{
    char *name = strndup(sum->name, base_len);
    char *cname = name ? malloc(base_len + sizeof(SUF_COUNTS)) : NULL;
    if (!cname) {
        free(name);
        IMC_LOG_ERR("%s: out of memory", path);
        return IMC_ERR_NOMEM;
    }
    memcpy(cname, name, base_len);
    memcpy(cname + base_len, SUF_COUNTS, sizeof(SUF_COUNTS));
    const struct imc_tensor_info *cnt = imc_gguf_find_tensor(g, cname);
    enum imc_status st = IMC_ERR_FORMAT;
    struct imc_imatrix_entry *e;
    if (!cnt) {
        IMC_LOG_ERR("%s: tensor '%s' has no matching '%s'", path, sum->name, cname);
    } else if (sum->type != IMC_TYPE_F32 || cnt->type != IMC_TYPE_F32) {
        IMC_LOG_ERR("%s: tensors '%s'/'%s' must be F32, found %s/%s", path, sum->name, cname,
                    imc_type_name(sum->type), imc_type_name(cnt->type));
    } else if (sum->ne[2] != 1 || sum->ne[3] != 1 || imc_tensor_elems(cnt) != sum->ne[1]) {
        IMC_LOG_ERR("%s: tensor '%s' has shape [%" PRId64 ", %" PRId64 ", %" PRId64
                    "] and '%s' %" PRId64 " elements; expected [n, n_mat] and n_mat",
                    path, sum->name, sum->ne[0], sum->ne[1], sum->ne[2], cname,
                    imc_tensor_elems(cnt));
    } else if (imc_imatrix_find(im, name)) {
        IMC_LOG_ERR("%s: tensor '%s' appears twice", path, name);
    } else {
        st = imc_imatrix_get_entry(im, name, sum->ne[0], sum->ne[1], &e);
        if (st == IMC_OK) {
            st = load_values(path, sum, e->sums, e->n_per_row * e->n_mat);
        }
        if (st == IMC_OK) {
            st = load_values(path, cnt, e->counts, e->n_mat);
        }
    }
    free(cname);
    free(name);
    return st;
}

static enum imc_status read_tensors(const struct imc_gguf *g, const char *path,
                                    struct imc_imatrix *im)
{
    int64_t n = imc_gguf_n_tensors(g);
    for (int64_t i = 0; i < n; i++) {
        const struct imc_tensor_info *t = imc_gguf_tensor(g, i);
        size_t base_len;
        if (has_suffix(t->name, SUF_SUM2, &base_len)) {
            IMC_TRY(read_pair(g, path, t, base_len, im));
        } else if (has_suffix(t->name, SUF_COUNTS, &base_len)) {
            char *sname = malloc(base_len + sizeof(SUF_SUM2));
            if (!sname) {
                return IMC_ERR_NOMEM;
            }
            memcpy(sname, t->name, base_len);
            memcpy(sname + base_len, SUF_SUM2, sizeof(SUF_SUM2));
            bool paired = imc_gguf_find_tensor(g, sname) != NULL;
            free(sname);
            if (!paired) {
                IMC_LOG_ERR("%s: tensor '%s' has no matching '%.*s%s'", path, t->name,
                            (int)base_len, t->name, SUF_SUM2);
                return IMC_ERR_FORMAT;
            }
        } else if (has_suffix(t->name, SUF_SUM, &base_len)) {
            IMC_LOG_DBG("%s: dropping '%s' (imc keeps only the sums of squares)", path, t->name);
        } else {
            IMC_LOG_DBG("%s: ignoring tensor '%s'", path, t->name);
        }
    }
    if (im->n_entries == 0) {
        IMC_LOG_ERR("%s: no imatrix data (no '<weight>%s' tensors)", path, SUF_SUM2);
        return IMC_ERR_FORMAT;
    }
    return IMC_OK;
}

// Reads the opened GGUF g (of the file path) into *out and frees g.
static enum imc_status read_reader(struct imc_gguf *g, const char *path, struct imc_imatrix *out)
{
    enum imc_status st = read_keys(g, path, out);
    if (st == IMC_OK) {
        st = read_tensors(g, path, out);
    }
    if (st == IMC_OK) {
        st = imc_imatrix_set_source(out, path);
    }
    imc_gguf_free(g);
    if (st != IMC_OK) {
        imc_imatrix_free(out);
    }
    return st;
}

enum imc_status imc_imatrix_read_gguf(const char *path, struct imc_imatrix *out)
{
    imc_imatrix_init(out);
    struct imc_gguf *g;
    IMC_TRY(imc_gguf_open(&g, path));
    return read_reader(g, path, out);
}

enum imc_status imc_imatrix_read_gguf_memory(const void *data, uint64_t size, const char *path,
                                             struct imc_imatrix *out)
{
    imc_imatrix_init(out);
    struct imc_gguf *g;
    IMC_TRY(imc_gguf_open_memory(&g, data, size, path));
    return read_reader(g, path, out);
}

// ---- writer ---------------------------------------------------------------------------------

static enum imc_status write_keys(struct imc_gguf_writer *w, const struct imc_imatrix *im,
                                  const char *path)
{
    if (im->n_datasets == 0) {
        IMC_LOG_WRN("%s: no dataset names to record (llama-quantize prints the first one)", path);
    }
    IMC_TRY(imc_gguf_set_str(w, KEY_TYPE, "imatrix"));
    IMC_TRY(imc_gguf_set_arr_str(w, KEY_DATASETS, (const char *const *)im->datasets,
                                 (uint64_t)im->n_datasets));
    IMC_TRY(imc_gguf_set_u32(w, KEY_CHUNK_COUNT, im->chunk_count));
    return imc_gguf_set_u32(w, KEY_CHUNK_SIZE, im->chunk_size);
}

// Converts n doubles to F32 at dst; IMC_ERR_NUMERIC naming the tensor if one overflows.
static enum imc_status to_f32(const char *path, const char *name, const char *suffix,
                              const double *src, float *dst, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        dst[j] = (float)src[j];
        if (!isfinite(dst[j])) {
            IMC_LOG_ERR("%s: tensor '%s%s' element %" PRId64 ": %g does not fit F32", path, name,
                        suffix, j, src[j]);
            return IMC_ERR_NUMERIC;
        }
    }
    return IMC_OK;
}

// Adds "<e->name><suffix>" with shape [ne0, n_mat] (trailing 1 dropped, as ggml does).
static enum imc_status add_f32(struct imc_gguf_writer *w, const char *path,
                               const struct imc_imatrix_entry *e, const char *suffix, int64_t ne0,
                               const float *data)
{
    size_t n = strlen(e->name), k = strlen(suffix);
    char *tname = malloc(n + k + 1);
    if (!tname) {
        IMC_LOG_ERR("%s: out of memory", path);
        return IMC_ERR_NOMEM;
    }
    memcpy(tname, e->name, n);
    memcpy(tname + n, suffix, k + 1);
    if (n + k >= GGML_NAME_LIMIT) {
        IMC_LOG_WRN("%s: tensor name '%s' has %zu bytes; llama.cpp reads at most %d", path, tname,
                    n + k, GGML_NAME_LIMIT - 1);
    }
    const int64_t ne[2] = {ne0, e->n_mat};
    enum imc_status st = imc_gguf_add_tensor(w, tname, IMC_TYPE_F32, e->n_mat > 1 ? 2 : 1, ne, data);
    free(tname);
    return st;
}

static enum imc_status write_entries(struct imc_gguf_writer *w, const struct imc_imatrix *im,
                                     const char *path, float *buf)
{
    for (int64_t i = 0; i < im->n_entries; i++) {
        const struct imc_imatrix_entry *e = &im->entries[i];
        int64_t n = e->n_per_row * e->n_mat;
        IMC_TRY(to_f32(path, e->name, SUF_SUM2, e->sums, buf, n));
        IMC_TRY(to_f32(path, e->name, SUF_COUNTS, e->counts, buf + n, e->n_mat));
        IMC_TRY(add_f32(w, path, e, SUF_SUM2, e->n_per_row, buf));
        IMC_TRY(add_f32(w, path, e, SUF_COUNTS, 1, buf + n));
        buf += n + e->n_mat;
    }
    return IMC_OK;
}

enum imc_status imc_imatrix_write_gguf(const struct imc_imatrix *im, const char *path)
{
    size_t total = 0;
    for (int64_t i = 0; i < im->n_entries; i++) {
        total += (size_t)(im->entries[i].n_per_row * im->entries[i].n_mat + im->entries[i].n_mat);
    }
    if (im->n_entries == 0) {
        IMC_LOG_WRN("%s: writing an imatrix with no entries", path);
    }
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    float *buf = malloc((total ? total : 1) * sizeof(float));
    enum imc_status st = IMC_ERR_NOMEM;
    if (!w || !buf) {
        IMC_LOG_ERR("%s: out of memory for %zu imatrix values", path, total);
        goto out_free;
    }
    st = write_keys(w, im, path);
    if (st == IMC_OK) {
        st = write_entries(w, im, path, buf);
    }
    if (st == IMC_OK) {
        st = imc_gguf_write(w, path);
    }
out_free:
    free(buf);
    imc_gguf_writer_free(w);
    return st;
}
