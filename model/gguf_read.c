/*
 * model/gguf_read.c: the GGUF v3 reader (layout in model/gguf.h). Every count, length and
 * offset read from the file is bounds-checked before use; a failure logs one line naming the
 * file and the cause and returns IMC_ERR_FORMAT.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/log.h"
#include "core/size.h"
#include "model/gguf_priv.h"

// A cursor over untrusted bytes.
struct rd {
    const uint8_t *p;   // file start
    uint64_t size;      // file bytes
    uint64_t off;       // current offset
    const char *name;   // file name for messages
    const char *what;   // what is being read (for the truncation message)
};

static bool rd_bytes(struct rd *r, void *dst, uint64_t n)
{
    if (n > r->size - r->off) {
        IMC_LOG_ERR("%s: file truncated while reading %s at offset %" PRIu64 " (%" PRIu64
                    " bytes needed, %" PRIu64 " left)",
                    r->name, r->what, r->off, n, r->size - r->off);
        return false;
    }
    memcpy(dst, r->p + r->off, (size_t)n);
    r->off += n;
    return true;
}

#define RD_SCALAR(r, T, out) rd_bytes((r), (out), sizeof(T))

// Reads a GGUF string into a new NUL-terminated buffer (NULs inside are kept; *len its length).
static bool rd_string(struct rd *r, char **out, uint64_t *len)
{
    uint64_t n;
    *out = NULL;
    if (!RD_SCALAR(r, uint64_t, &n)) {
        return false;
    }
    if (n > r->size - r->off) {
        IMC_LOG_ERR("%s: string of %" PRIu64 " bytes at offset %" PRIu64 " runs past the end "
                    "of the file (%s)", r->name, n, r->off, r->what);
        return false;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        IMC_LOG_ERR("%s: out of memory reading a string of %" PRIu64 " bytes", r->name, n);
        return false;
    }
    memcpy(s, r->p + r->off, (size_t)n);
    s[n] = '\0';
    r->off += n;
    *out = s;
    if (len) {
        *len = n;
    }
    return true;
}

static const uint64_t scalar_size[IMC_GGUF_VTYPE_COUNT] = {
    [IMC_GGUF_UINT8] = 1,  [IMC_GGUF_INT8] = 1,    [IMC_GGUF_UINT16] = 2, [IMC_GGUF_INT16] = 2,
    [IMC_GGUF_UINT32] = 4, [IMC_GGUF_INT32] = 4,   [IMC_GGUF_FLOAT32] = 4, [IMC_GGUF_BOOL] = 1,
    [IMC_GGUF_UINT64] = 8, [IMC_GGUF_INT64] = 8,   [IMC_GGUF_FLOAT64] = 8,
};

uint64_t imc_gguf_scalar_size(enum imc_gguf_vtype t)
{
    return (unsigned)t < IMC_GGUF_VTYPE_COUNT ? scalar_size[t] : 0;
}

struct kv {
    char *key;
    enum imc_gguf_vtype type;
    uint8_t scalar[8];        // scalar value bytes (little-endian)
    char *str;                // STRING value (owned)
    enum imc_gguf_vtype arr_type;
    uint64_t arr_n;
    void *arr_data;           // scalar array bytes (owned)
    char **arr_strs;          // string array: pointers into arr_blob
    uint64_t *arr_lens;       // string array: byte lengths
    char *arr_blob;           // string array storage (owned)
};

struct part {
    struct imc_map map;       // the mapped file (zeroed for a memory image)
    const uint8_t *base;      // file bytes
    uint64_t size;
    int64_t n_kv;
    struct kv *kv;
    int64_t n_tensors;
    struct imc_tensor_info *tensors; // names owned (cast away const to free)
};

struct imc_gguf {
    char *path;
    uint32_t version;
    uint32_t alignment;
    int n_parts;
    struct part *parts;
    int64_t n_tensors;                 // over all parts
    const struct imc_tensor_info **tensors; // in file order over parts
    const struct imc_tensor_info **sorted;  // by name, for lookup
};

static void kv_free(struct kv *k)
{
    free(k->key);
    free(k->str);
    free(k->arr_data);
    free(k->arr_strs);
    free(k->arr_lens);
    free(k->arr_blob);
}

static bool read_vtype(struct rd *r, enum imc_gguf_vtype *t)
{
    uint32_t v;
    if (!RD_SCALAR(r, uint32_t, &v)) {
        return false;
    }
    if (v >= IMC_GGUF_VTYPE_COUNT) {
        IMC_LOG_ERR("%s: %s has unknown value type %" PRIu32, r->name, r->what, v);
        return false;
    }
    *t = (enum imc_gguf_vtype)v;
    return true;
}

// String arrays: one pass to size the blob, one to copy; every length is checked.
static bool read_str_array(struct rd *r, struct kv *k)
{
    uint64_t start = r->off, total = 0;
    for (uint64_t j = 0; j < k->arr_n; j++) {
        uint64_t n;
        if (!RD_SCALAR(r, uint64_t, &n)) {
            return false;
        }
        if (n > r->size - r->off) {
            IMC_LOG_ERR("%s: %s: element %" PRIu64 " (%" PRIu64 " bytes) runs past the end of "
                        "the file", r->name, r->what, j, n);
            return false;
        }
        r->off += n;
        total += n + 1; // cannot overflow: bounded by the file size plus the count
    }
    k->arr_blob = malloc((size_t)total ? (size_t)total : 1);
    k->arr_strs = malloc((size_t)(k->arr_n ? k->arr_n : 1) * sizeof(*k->arr_strs));
    k->arr_lens = malloc((size_t)(k->arr_n ? k->arr_n : 1) * sizeof(*k->arr_lens));
    if (!k->arr_blob || !k->arr_strs || !k->arr_lens) {
        IMC_LOG_ERR("%s: out of memory for %s (%" PRIu64 " strings)", r->name, r->what, k->arr_n);
        return false;
    }
    r->off = start;
    char *dst = k->arr_blob;
    for (uint64_t j = 0; j < k->arr_n; j++) {
        uint64_t n;
        memcpy(&n, r->p + r->off, 8);
        r->off += 8;
        memcpy(dst, r->p + r->off, (size_t)n);
        dst[n] = '\0';
        k->arr_strs[j] = dst;
        k->arr_lens[j] = n;
        dst += n + 1;
        r->off += n;
    }
    return true;
}

static bool read_array(struct rd *r, struct kv *k)
{
    if (!read_vtype(r, &k->arr_type) || !RD_SCALAR(r, uint64_t, &k->arr_n)) {
        return false;
    }
    if (k->arr_type == IMC_GGUF_ARRAY) {
        IMC_LOG_ERR("%s: %s is an array of arrays, which GGUF does not allow", r->name, r->what);
        return false;
    }
    if (k->arr_type == IMC_GGUF_STRING) {
        // Each string needs at least its 8-byte length: bounds the count before any loop.
        if (k->arr_n > (r->size - r->off) / 8) {
            IMC_LOG_ERR("%s: %s claims %" PRIu64 " strings, more than the file can hold",
                        r->name, r->what, k->arr_n);
            return false;
        }
        return read_str_array(r, k);
    }
    uint64_t bytes;
    if (!imc_size_mul(k->arr_n, scalar_size[k->arr_type], &bytes) ||
        bytes > r->size - r->off) {
        IMC_LOG_ERR("%s: %s claims %" PRIu64 " elements, more than the file can hold", r->name,
                    r->what, k->arr_n);
        return false;
    }
    k->arr_data = malloc((size_t)bytes ? (size_t)bytes : 1);
    if (!k->arr_data) {
        IMC_LOG_ERR("%s: out of memory for %s", r->name, r->what);
        return false;
    }
    return rd_bytes(r, k->arr_data, bytes);
}

static bool read_kv(struct rd *r, struct kv *k, int64_t i)
{
    char what[96];
    snprintf(what, sizeof(what), "the key of metadata entry %" PRId64, i);
    r->what = what;
    if (!rd_string(r, &k->key, NULL)) {
        return false;
    }
    r->what = k->key;
    if (!read_vtype(r, &k->type)) {
        return false;
    }
    switch (k->type) {
    case IMC_GGUF_STRING:
        return rd_string(r, &k->str, NULL);
    case IMC_GGUF_ARRAY:
        return read_array(r, k);
    default:
        return rd_bytes(r, k->scalar, scalar_size[k->type]);
    }
}

static int64_t part_find_key(const struct part *pt, const char *key)
{
    for (int64_t i = 0; i < pt->n_kv; i++) {
        if (strcmp(pt->kv[i].key, key) == 0) {
            return i;
        }
    }
    return -1;
}

static bool read_header(struct rd *r, struct part *pt, uint32_t *version)
{
    uint8_t magic[4];
    r->what = "the header";
    if (!rd_bytes(r, magic, 4)) {
        return false;
    }
    if (memcmp(magic, "GGUF", 4) != 0) {
        IMC_LOG_ERR("%s: not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")",
                    r->name, magic[0], magic[1], magic[2], magic[3]);
        return false;
    }
    uint64_t n_tensors, n_kv;
    if (!RD_SCALAR(r, uint32_t, version) || !RD_SCALAR(r, uint64_t, &n_tensors) ||
        !RD_SCALAR(r, uint64_t, &n_kv)) {
        return false;
    }
    if (*version != 3) {
        IMC_LOG_ERR("%s: GGUF version %" PRIu32 " is not supported (only version 3)", r->name,
                    *version);
        return false;
    }
    // A key/value takes at least 12 bytes, a tensor info at least 28: reject absurd counts.
    uint64_t left = r->size - r->off;
    if (n_kv > left / 12 || n_tensors > left / 28) {
        IMC_LOG_ERR("%s: header claims %" PRIu64 " keys and %" PRIu64 " tensors, more than the "
                    "%" PRIu64 "-byte file can hold", r->name, n_kv, n_tensors, r->size);
        return false;
    }
    pt->n_kv = (int64_t)n_kv;
    pt->n_tensors = (int64_t)n_tensors;
    pt->kv = calloc((size_t)(n_kv ? n_kv : 1), sizeof(*pt->kv));
    pt->tensors = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof(*pt->tensors));
    if (!pt->kv || !pt->tensors) {
        IMC_LOG_ERR("%s: out of memory for %" PRIu64 " keys and %" PRIu64 " tensors", r->name,
                    n_kv, n_tensors);
        return false;
    }
    return true;
}


static bool check_unique_keys(struct rd *r, struct part *pt)
{
    // n_kv is small in practice; a sort keeps huge hostile counts at n log n.
    int64_t n = pt->n_kv;
    const char **keys = malloc((size_t)(n ? n : 1) * sizeof(*keys));
    if (!keys) {
        return false;
    }
    for (int64_t i = 0; i < n; i++) {
        keys[i] = pt->kv[i].key;
    }
    qsort(keys, (size_t)n, sizeof(*keys), imc_gguf_cmp_str);
    bool ok = true;
    for (int64_t i = 1; i < n && ok; i++) {
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            IMC_LOG_ERR("%s: duplicate metadata key '%s'", r->name, keys[i]);
            ok = false;
        }
    }
    free(keys);
    return ok;
}

static bool read_alignment(struct rd *r, struct part *pt, uint32_t *alignment)
{
    *alignment = IMC_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = part_find_key(pt, "general.alignment");
    if (i < 0) {
        return true;
    }
    const struct kv *k = &pt->kv[i];
    uint32_t a = 0;
    if (k->type != IMC_GGUF_UINT32) {
        IMC_LOG_ERR("%s: general.alignment has value type %d, expected uint32", r->name, k->type);
        return false;
    }
    memcpy(&a, k->scalar, 4);
    if (a == 0 || (a & (a - 1)) != 0) {
        IMC_LOG_ERR("%s: general.alignment %" PRIu32 " is not a power of two", r->name, a);
        return false;
    }
    *alignment = a;
    return true;
}

static bool read_tensor_info(struct rd *r, struct imc_tensor_info *t, int64_t i)
{
    char what[64];
    snprintf(what, sizeof(what), "the info of tensor %" PRId64, i);
    r->what = what;
    char *name = NULL;
    uint32_t n_dims, type;
    if (!rd_string(r, &name, NULL)) {
        return false;
    }
    t->name = name;
    if (!RD_SCALAR(r, uint32_t, &n_dims)) {
        return false;
    }
    if (n_dims == 0 || n_dims > IMC_GGUF_MAX_DIMS) {
        IMC_LOG_ERR("%s: tensor '%s' has %" PRIu32 " dimensions (1..%d allowed)", r->name, name,
                    n_dims, IMC_GGUF_MAX_DIMS);
        return false;
    }
    t->n_dims = (int)n_dims;
    for (int d = 0; d < IMC_GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if ((uint32_t)d < n_dims && !RD_SCALAR(r, uint64_t, &ne)) {
            return false;
        }
        if (ne > INT64_MAX) {
            IMC_LOG_ERR("%s: tensor '%s' dimension %d is negative", r->name, name, d);
            return false;
        }
        t->ne[d] = (int64_t)ne;
    }
    if (!RD_SCALAR(r, uint32_t, &type) || !RD_SCALAR(r, uint64_t, &t->offset)) {
        return false;
    }
    if (!imc_type_is_known(type)) {
        IMC_LOG_ERR("%s: tensor '%s' has unknown type %" PRIu32, r->name, name, type);
        return false;
    }
    t->type = (enum imc_type)type;
    return true;
}

// Size of t; checks block divisibility and overflow.
static bool tensor_nbytes(struct rd *r, struct imc_tensor_info *t)
{
    uint64_t rows = 1, row_bytes;
    for (int d = 1; d < IMC_GGUF_MAX_DIMS; d++) {
        if (!imc_size_mul(rows, (uint64_t)t->ne[d], &rows)) {
            IMC_LOG_ERR("%s: tensor '%s' element count overflows", r->name, t->name);
            return false;
        }
    }
    if (!imc_type_row_bytes(t->type, t->ne[0], &row_bytes)) {
        IMC_LOG_ERR("%s: tensor '%s' row length %" PRId64 " is not a multiple of the %s block "
                    "size %" PRId64, r->name, t->name, t->ne[0], imc_type_name(t->type),
                    imc_type_traits(t->type)->block_size);
        return false;
    }
    if (!imc_size_mul(rows, row_bytes, &t->nbytes)) {
        IMC_LOG_ERR("%s: tensor '%s' byte size overflows", r->name, t->name);
        return false;
    }
    return true;
}

static bool place_tensors(struct rd *r, struct part *pt, uint32_t alignment, int split)
{
    uint64_t data_start;
    if (!imc_size_align(r->off, alignment, &data_start) || data_start > r->size) {
        if (pt->n_tensors == 0) {
            return true; // metadata-only file without padding
        }
        IMC_LOG_ERR("%s: file truncated before the tensor data (padding to %" PRIu32 ")",
                    r->name, alignment);
        return false;
    }
    for (int64_t i = 0; i < pt->n_tensors; i++) {
        struct imc_tensor_info *t = &pt->tensors[i];
        uint64_t abs, end;
        if (!tensor_nbytes(r, t)) {
            return false;
        }
        if (t->offset % alignment != 0) {
            IMC_LOG_ERR("%s: tensor '%s' data offset %" PRIu64 " is not a multiple of the "
                        "alignment %" PRIu32, r->name, t->name, t->offset, alignment);
            return false;
        }
        if (!imc_size_add(data_start, t->offset, &abs) || !imc_size_add(abs, t->nbytes, &end) ||
            end > r->size) {
            IMC_LOG_ERR("%s: tensor '%s' data [%" PRIu64 ", +%" PRIu64 ") lies outside the file "
                        "(%" PRIu64 " bytes)", r->name, t->name, t->offset, t->nbytes, r->size);
            return false;
        }
        t->offset = abs;
        t->data = r->p + abs;
        t->split = split;
    }
    return true;
}

static bool parse_part(struct part *pt, const char *name, int split, uint32_t *version,
                       uint32_t *alignment)
{
    struct rd r = {pt->base, pt->size, 0, name, ""};
    if (!read_header(&r, pt, version)) {
        return false;
    }
    for (int64_t i = 0; i < pt->n_kv; i++) {
        if (!read_kv(&r, &pt->kv[i], i)) {
            pt->n_kv = i + 1; // free what was read
            return false;
        }
    }
    if (!check_unique_keys(&r, pt) || !read_alignment(&r, pt, alignment)) {
        return false;
    }
    for (int64_t i = 0; i < pt->n_tensors; i++) {
        if (!read_tensor_info(&r, &pt->tensors[i], i)) {
            return false;
        }
    }
    return place_tensors(&r, pt, *alignment, split);
}

static void part_free(struct part *pt)
{
    for (int64_t i = 0; i < pt->n_kv; i++) {
        kv_free(&pt->kv[i]);
    }
    free(pt->kv);
    for (int64_t i = 0; pt->tensors && i < pt->n_tensors; i++) {
        free((char *)pt->tensors[i].name);
    }
    free(pt->tensors);
    imc_map_close(&pt->map);
}

int imc_gguf_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    const struct imc_tensor_info *x = *(const struct imc_tensor_info *const *)a;
    const struct imc_tensor_info *y = *(const struct imc_tensor_info *const *)b;
    return strcmp(x->name, y->name);
}

static bool index_tensors(struct imc_gguf *g)
{
    int64_t n = 0;
    for (int p = 0; p < g->n_parts; p++) {
        n += g->parts[p].n_tensors;
    }
    g->n_tensors = n;
    g->tensors = malloc((size_t)(n ? n : 1) * sizeof(*g->tensors));
    g->sorted = malloc((size_t)(n ? n : 1) * sizeof(*g->sorted));
    if (!g->tensors || !g->sorted) {
        IMC_LOG_ERR("%s: out of memory indexing %" PRId64 " tensors", g->path, n);
        return false;
    }
    int64_t k = 0;
    for (int p = 0; p < g->n_parts; p++) {
        for (int64_t i = 0; i < g->parts[p].n_tensors; i++) {
            g->tensors[k++] = &g->parts[p].tensors[i];
        }
    }
    memcpy(g->sorted, g->tensors, (size_t)n * sizeof(*g->sorted));
    qsort(g->sorted, (size_t)n, sizeof(*g->sorted), cmp_tensor_name);
    for (int64_t i = 1; i < n; i++) {
        if (strcmp(g->sorted[i - 1]->name, g->sorted[i]->name) == 0) {
            IMC_LOG_ERR("%s: duplicate tensor name '%s'", g->path, g->sorted[i]->name);
            return false;
        }
    }
    return true;
}

void imc_gguf_free(struct imc_gguf *g)
{
    if (!g) {
        return;
    }
    for (int p = 0; p < g->n_parts; p++) {
        part_free(&g->parts[p]);
    }
    free(g->parts);
    free(g->tensors);
    free(g->sorted);
    free(g->path);
    free(g);
}

static struct imc_gguf *gguf_new(const char *path, int n_parts)
{
    struct imc_gguf *g = calloc(1, sizeof(*g));
    if (!g) {
        return NULL;
    }
    g->path = strdup(path);
    g->parts = calloc((size_t)n_parts, sizeof(*g->parts));
    if (!g->path || !g->parts) {
        imc_gguf_free(g);
        return NULL;
    }
    g->n_parts = n_parts;
    return g;
}

enum imc_status imc_gguf_open_memory(struct imc_gguf **out, const void *data, uint64_t size,
                                     const char *name)
{
    *out = NULL;
    struct imc_gguf *g = gguf_new(name, 1);
    if (!g) {
        return IMC_ERR_NOMEM;
    }
    g->parts[0].base = data;
    g->parts[0].size = size;
    if (!parse_part(&g->parts[0], name, 0, &g->version, &g->alignment) || !index_tensors(g)) {
        imc_gguf_free(g);
        return IMC_ERR_FORMAT;
    }
    *out = g;
    return IMC_OK;
}

// Split names: "<base>-%05d-of-%05d.gguf". Returns the count (0 when path is not a split name)
// and fills base (without the suffix).
static int split_parse_name(const char *path, char *base, size_t cap)
{
    size_t n = strlen(path);
    const size_t suffix = strlen("-00001-of-00003.gguf");
    if (n < suffix || n - suffix >= cap) {
        return 0;
    }
    const char *s = path + n - suffix;
    int no, count;
    char tail[8];
    if (sscanf(s, "-%5d-of-%5d%7s", &no, &count, tail) != 3 || strcmp(tail, ".gguf") != 0 ||
        no < 1 || count < 1 || no > count) {
        return 0;
    }
    memcpy(base, path, n - suffix);
    base[n - suffix] = '\0';
    return count;
}

static bool split_check_part(struct imc_gguf *g, int p, int count, const char *name)
{
    const struct part *pt = &g->parts[p];
    int64_t i_no = part_find_key(pt, "split.no"), i_count = part_find_key(pt, "split.count");
    if (count == 1 && i_no < 0) {
        return true;
    }
    uint16_t no = 0, cnt = 0;
    if (i_no < 0 || i_count < 0 || pt->kv[i_no].type != IMC_GGUF_UINT16 ||
        pt->kv[i_count].type != IMC_GGUF_UINT16) {
        IMC_LOG_ERR("%s: split part lacks uint16 split.no / split.count", name);
        return false;
    }
    memcpy(&no, pt->kv[i_no].scalar, 2);
    memcpy(&cnt, pt->kv[i_count].scalar, 2);
    if (no != p || cnt != count) {
        IMC_LOG_ERR("%s: split.no %u of split.count %u, expected part %d of %d", name, no, cnt, p,
                    count);
        return false;
    }
    return true;
}

static bool split_check_total(struct imc_gguf *g)
{
    int64_t i = part_find_key(&g->parts[0], "split.tensors.count");
    if (i < 0) {
        return g->n_parts == 1;
    }
    const struct kv *k = &g->parts[0].kv[i];
    int64_t want = -1;
    if (k->type == IMC_GGUF_INT32 || k->type == IMC_GGUF_UINT32) {
        int32_t v;
        memcpy(&v, k->scalar, 4);
        want = v;
    } else if (k->type == IMC_GGUF_UINT16) {
        uint16_t v;
        memcpy(&v, k->scalar, 2);
        want = v;
    }
    if (want != g->n_tensors) {
        IMC_LOG_ERR("%s: split.tensors.count says %" PRId64 " tensors, the parts hold %" PRId64,
                    g->path, want, g->n_tensors);
        return false;
    }
    return true;
}

static enum imc_status open_part(struct imc_gguf *g, int p, const char *name)
{
    struct part *pt = &g->parts[p];
    uint32_t version, alignment;
    IMC_TRY(imc_map_open(&pt->map, name));
    pt->base = pt->map.data;
    pt->size = pt->map.size;
    if (!parse_part(pt, name, p, &version, &alignment)) {
        return IMC_ERR_FORMAT;
    }
    if (p == 0) {
        g->version = version;
        g->alignment = alignment;
    }
    return IMC_OK;
}

enum imc_status imc_gguf_open(struct imc_gguf **out, const char *path)
{
    *out = NULL;
    char base[4096], name[4200];
    int count = split_parse_name(path, base, sizeof(base));
    struct imc_gguf *g = gguf_new(path, count > 0 ? count : 1);
    if (!g) {
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = IMC_OK;
    for (int p = 0; p < g->n_parts && st == IMC_OK; p++) {
        if (count > 0) {
            snprintf(name, sizeof(name), "%s-%05d-of-%05d.gguf", base, p + 1, count);
        } else {
            snprintf(name, sizeof(name), "%s", path);
        }
        st = open_part(g, p, name);
        if (st == IMC_OK && count > 0 && !split_check_part(g, p, count, name)) {
            st = IMC_ERR_FORMAT;
        }
    }
    if (st == IMC_OK && (!index_tensors(g) || (count > 0 && !split_check_total(g)))) {
        st = IMC_ERR_FORMAT;
    }
    if (st != IMC_OK) {
        imc_gguf_free(g);
        return st;
    }
    *out = g;
    return IMC_OK;
}

// ---- accessors -------------------------------------------------------------------------------

const char *imc_gguf_path(const struct imc_gguf *g) { return g->path; }
uint32_t imc_gguf_version(const struct imc_gguf *g) { return g->version; }
uint32_t imc_gguf_alignment(const struct imc_gguf *g) { return g->alignment; }
int imc_gguf_n_splits(const struct imc_gguf *g) { return g->n_parts; }

uint64_t imc_gguf_file_size(const struct imc_gguf *g)
{
    uint64_t s = 0;
    for (int p = 0; p < g->n_parts; p++) {
        s += g->parts[p].size;
    }
    return s;
}

static const struct kv *kv_at(const struct imc_gguf *g, int64_t i)
{
    IMC_ASSERT(i >= 0 && i < g->parts[0].n_kv);
    return &g->parts[0].kv[i];
}

int64_t imc_gguf_n_kv(const struct imc_gguf *g) { return g->parts[0].n_kv; }
int64_t imc_gguf_find_key(const struct imc_gguf *g, const char *key)
{
    return part_find_key(&g->parts[0], key);
}
const char *imc_gguf_key(const struct imc_gguf *g, int64_t i) { return kv_at(g, i)->key; }
enum imc_gguf_vtype imc_gguf_kv_type(const struct imc_gguf *g, int64_t i)
{
    return kv_at(g, i)->type;
}
enum imc_gguf_vtype imc_gguf_arr_type(const struct imc_gguf *g, int64_t i)
{
    return kv_at(g, i)->arr_type;
}
uint64_t imc_gguf_arr_n(const struct imc_gguf *g, int64_t i) { return kv_at(g, i)->arr_n; }
const void *imc_gguf_arr_data(const struct imc_gguf *g, int64_t i)
{
    return kv_at(g, i)->arr_data;
}

const char *imc_gguf_arr_str(const struct imc_gguf *g, int64_t i, uint64_t j, uint64_t *len)
{
    const struct kv *k = kv_at(g, i);
    IMC_ASSERT(k->type == IMC_GGUF_ARRAY && k->arr_type == IMC_GGUF_STRING && j < k->arr_n);
    if (len) {
        *len = k->arr_lens[j];
    }
    return k->arr_strs[j];
}

const char *imc_gguf_str(const struct imc_gguf *g, int64_t i)
{
    const struct kv *k = kv_at(g, i);
    return k->type == IMC_GGUF_STRING ? k->str : NULL;
}

// Integer value of a scalar key as a signed/unsigned pair; false for non-integers.
static bool kv_int(const struct kv *k, int64_t *s, uint64_t *u, bool *is_signed)
{
    union {
        uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
        uint64_t u64; int64_t i64;
    } v;
    memcpy(&v, k->scalar, sizeof(v));
    *is_signed = true;
    switch (k->type) {
    case IMC_GGUF_UINT8: *s = v.u8; break;
    case IMC_GGUF_INT8: *s = v.i8; break;
    case IMC_GGUF_UINT16: *s = v.u16; break;
    case IMC_GGUF_INT16: *s = v.i16; break;
    case IMC_GGUF_UINT32: *s = v.u32; break;
    case IMC_GGUF_INT32: *s = v.i32; break;
    case IMC_GGUF_INT64: *s = v.i64; break;
    case IMC_GGUF_UINT64: *u = v.u64; *is_signed = false; return true;
    default: return false;
    }
    return true;
}

static bool get_int(const struct imc_gguf *g, const char *key, int64_t lo, uint64_t hi,
                    uint64_t *bits)
{
    int64_t i = imc_gguf_find_key(g, key), s = 0;
    uint64_t u = 0;
    bool is_signed;
    if (i < 0 || !kv_int(kv_at(g, i), &s, &u, &is_signed)) {
        return false;
    }
    if (is_signed) {
        if (s < lo || (s > 0 && (uint64_t)s > hi)) {
            return false;
        }
        *bits = (uint64_t)s;
        return true;
    }
    if (u > hi) {
        return false;
    }
    *bits = u;
    return true;
}

bool imc_gguf_get_u32(const struct imc_gguf *g, const char *key, uint32_t *out)
{
    uint64_t b;
    if (!get_int(g, key, 0, UINT32_MAX, &b)) {
        return false;
    }
    *out = (uint32_t)b;
    return true;
}

bool imc_gguf_get_u64(const struct imc_gguf *g, const char *key, uint64_t *out)
{
    return get_int(g, key, 0, UINT64_MAX, out);
}

bool imc_gguf_get_i64(const struct imc_gguf *g, const char *key, int64_t *out)
{
    uint64_t b;
    if (!get_int(g, key, INT64_MIN, INT64_MAX, &b)) {
        return false;
    }
    *out = (int64_t)b;
    return true;
}

bool imc_gguf_get_f32(const struct imc_gguf *g, const char *key, float *out)
{
    int64_t i = imc_gguf_find_key(g, key);
    if (i < 0) {
        return false;
    }
    const struct kv *k = kv_at(g, i);
    if (k->type == IMC_GGUF_FLOAT32) {
        memcpy(out, k->scalar, 4);
        return true;
    }
    if (k->type == IMC_GGUF_FLOAT64) {
        double d;
        memcpy(&d, k->scalar, 8);
        *out = (float)d;
        return true;
    }
    return false;
}

bool imc_gguf_get_bool(const struct imc_gguf *g, const char *key, bool *out)
{
    int64_t i = imc_gguf_find_key(g, key);
    if (i < 0 || kv_at(g, i)->type != IMC_GGUF_BOOL) {
        return false;
    }
    *out = kv_at(g, i)->scalar[0] != 0;
    return true;
}

const char *imc_gguf_get_str(const struct imc_gguf *g, const char *key)
{
    int64_t i = imc_gguf_find_key(g, key);
    return i < 0 ? NULL : imc_gguf_str(g, i);
}

const void *imc_gguf_scalar_bytes(const struct imc_gguf *g, int64_t i)
{
    return kv_at(g, i)->scalar;
}

int64_t imc_gguf_n_tensors(const struct imc_gguf *g) { return g->n_tensors; }

const struct imc_tensor_info *imc_gguf_tensor(const struct imc_gguf *g, int64_t i)
{
    IMC_ASSERT(i >= 0 && i < g->n_tensors);
    return g->tensors[i];
}

const struct imc_tensor_info *imc_gguf_find_tensor(const struct imc_gguf *g, const char *name)
{
    int64_t lo = 0, hi = g->n_tensors - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->sorted[mid]->name, name);
        if (c == 0) {
            return g->sorted[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return NULL;
}
