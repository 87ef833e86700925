/*
 * model/gguf_read.c: parsing one GGUF v3 image (layout in model/gguf.h). Every count, length
 * and offset read from the bytes is bounds-checked before use; a failure logs one line naming
 * the file and the cause, and the caller returns IMC_ERR_FORMAT.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/size.h"
#include "model/gguf_priv.h"

// A cursor over untrusted bytes.
struct rd {
    const uint8_t *p; // image start
    uint64_t size;    // image bytes
    uint64_t off;     // current offset, <= size
    const char *name; // file name for messages
    const char *what; // what is being read (for messages)
    bool oom;         // set when an allocation failed (IMC_ERR_NOMEM rather than FORMAT)
};

static uint64_t rd_left(const struct rd *r) { return r->size - r->off; }

static bool rd_bytes(struct rd *r, void *dst, uint64_t n)
{
    if (n > rd_left(r)) {
        IMC_LOG_ERR("%s: file truncated while reading %s at offset %" PRIu64 " (%" PRIu64
                    " bytes needed, %" PRIu64 " left)",
                    r->name, r->what, r->off, n, rd_left(r));
        return false;
    }
    if (n > 0) {
        memcpy(dst, r->p + r->off, (size_t)n);
        r->off += n;
    }
    return true;
}

static bool rd_u32(struct rd *r, uint32_t *v) { return rd_bytes(r, v, 4); }
static bool rd_u64(struct rd *r, uint64_t *v) { return rd_bytes(r, v, 8); }

// Reads a GGUF string into a new NUL-terminated buffer, keeping NUL bytes inside unless ident
// (keys and tensor names), where a NUL byte is an error.
static bool rd_string(struct rd *r, char **out, uint64_t *len, bool ident)
{
    uint64_t n;
    *out = NULL;
    if (!rd_u64(r, &n)) {
        return false;
    }
    if (n > rd_left(r)) {
        IMC_LOG_ERR("%s: %s: string of %" PRIu64 " bytes at offset %" PRIu64
                    " runs past the end of the file (%" PRIu64 " bytes)",
                    r->name, r->what, n, r->off, r->size);
        return false;
    }
    const uint8_t *src = r->p + r->off;
    if (ident && n > 0 && memchr(src, 0, (size_t)n)) {
        IMC_LOG_ERR("%s: %s: name at offset %" PRIu64 " contains a NUL byte", r->name, r->what,
                    r->off);
        return false;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        IMC_LOG_ERR("%s: out of memory reading a string of %" PRIu64 " bytes", r->name, n);
        r->oom = true;
        return false;
    }
    if (n > 0) {
        memcpy(s, src, (size_t)n);
    }
    s[n] = '\0';
    r->off += n;
    *out = s;
    if (len) {
        *len = n;
    }
    return true;
}

static const uint64_t scalar_size[IMC_GGUF_VTYPE_COUNT] = {
    [IMC_GGUF_UINT8] = 1,  [IMC_GGUF_INT8] = 1,  [IMC_GGUF_UINT16] = 2,  [IMC_GGUF_INT16] = 2,
    [IMC_GGUF_UINT32] = 4, [IMC_GGUF_INT32] = 4, [IMC_GGUF_FLOAT32] = 4, [IMC_GGUF_BOOL] = 1,
    [IMC_GGUF_UINT64] = 8, [IMC_GGUF_INT64] = 8, [IMC_GGUF_FLOAT64] = 8,
};

uint64_t imc_gguf_scalar_size(enum imc_gguf_vtype t)
{
    return (unsigned)t < IMC_GGUF_VTYPE_COUNT ? scalar_size[t] : 0;
}

// Grows *p (elements of elem bytes, capacity *cap) to hold at least need; false on OOM.
static bool grow(void **p, int64_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap) {
        return true;
    }
    int64_t c = *cap ? *cap : 16;
    while (c < need) {
        c *= 2;
    }
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) {
        return false;
    }
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(c - *cap) * elem);
    *p = q;
    *cap = c;
    return true;
}

static bool read_vtype(struct rd *r, enum imc_gguf_vtype *t, const char *role)
{
    uint32_t v;
    if (!rd_u32(r, &v)) {
        return false;
    }
    if (v >= IMC_GGUF_VTYPE_COUNT) {
        IMC_LOG_ERR("%s: %s has unknown %s type %" PRIu32 " (known: 0..%d)", r->name,
                    r->what, role, v, IMC_GGUF_VTYPE_COUNT - 1);
        return false;
    }
    *t = (enum imc_gguf_vtype)v;
    return true;
}

// String arrays: one pass checks every length and sizes the blob, one pass copies.
static bool read_str_array(struct rd *r, struct imc_gguf_kv *k)
{
    uint64_t start = r->off, total = 0;
    for (uint64_t j = 0; j < k->arr_n; j++) {
        uint64_t n;
        if (!rd_u64(r, &n)) {
            return false;
        }
        if (n > rd_left(r)) {
            IMC_LOG_ERR("%s: %s: string %" PRIu64 " of %" PRIu64 " (%" PRIu64
                        " bytes at offset %" PRIu64 ") runs past the end of the file",
                        r->name, r->what, j, k->arr_n, n, r->off);
            return false;
        }
        r->off += n;
        total += n + 1; // bounded by the file size plus the count: cannot overflow
    }
    size_t n_ptr = (size_t)(k->arr_n ? k->arr_n : 1);
    k->arr_blob = malloc((size_t)(total ? total : 1));
    k->arr_strs = malloc(n_ptr * sizeof(*k->arr_strs));
    k->arr_lens = malloc(n_ptr * sizeof(*k->arr_lens));
    if (!k->arr_blob || !k->arr_strs || !k->arr_lens) {
        IMC_LOG_ERR("%s: out of memory for %s (%" PRIu64 " strings)", r->name, r->what,
                    k->arr_n);
        r->oom = true;
        return false;
    }
    r->off = start;
    char *dst = k->arr_blob;
    for (uint64_t j = 0; j < k->arr_n; j++) {
        uint64_t n;
        memcpy(&n, r->p + r->off, 8);
        r->off += 8;
        if (n > 0) {
            memcpy(dst, r->p + r->off, (size_t)n);
        }
        dst[n] = '\0';
        k->arr_strs[j] = dst;
        k->arr_lens[j] = n;
        dst += n + 1;
        r->off += n;
    }
    return true;
}

static bool read_array(struct rd *r, struct imc_gguf_kv *k)
{
    if (!read_vtype(r, &k->arr_type, "array element") || !rd_u64(r, &k->arr_n)) {
        return false;
    }
    if (k->arr_type == IMC_GGUF_ARRAY) {
        IMC_LOG_ERR("%s: %s is an array of arrays, which GGUF does not allow", r->name,
                    r->what);
        return false;
    }
    if (k->arr_type == IMC_GGUF_STRING) {
        // Each string needs at least its 8-byte length: bounds the count before any loop.
        if (k->arr_n > rd_left(r) / 8) {
            IMC_LOG_ERR("%s: %s claims %" PRIu64 " strings, more than the %" PRIu64
                        " bytes left in the file can hold", r->name, r->what, k->arr_n,
                        rd_left(r));
            return false;
        }
        return read_str_array(r, k);
    }
    uint64_t bytes;
    if (!imc_size_mul(k->arr_n, scalar_size[k->arr_type], &bytes) || bytes > rd_left(r)) {
        IMC_LOG_ERR("%s: %s claims %" PRIu64 " elements of %" PRIu64 " bytes, more than "
                    "the %" PRIu64 " bytes left in the file", r->name, r->what, k->arr_n,
                    scalar_size[k->arr_type], rd_left(r));
        return false;
    }
    k->arr_data = malloc((size_t)(bytes ? bytes : 1));
    if (!k->arr_data) {
        IMC_LOG_ERR("%s: out of memory for %s (%" PRIu64 " bytes)", r->name, r->what,
                    bytes);
        r->oom = true;
        return false;
    }
    return rd_bytes(r, k->arr_data, bytes);
}

static bool read_kv(struct rd *r, struct imc_gguf_kv *k, int64_t i)
{
    char what[160];
    snprintf(what, sizeof(what), "the key of metadata entry %" PRId64, i);
    r->what = what;
    if (!rd_string(r, &k->key, NULL, true)) {
        return false;
    }
    snprintf(what, sizeof(what), "key '%.128s%s'", k->key, strlen(k->key) > 128 ? "..." : "");
    if (!read_vtype(r, &k->type, "value")) {
        return false;
    }
    switch (k->type) {
    case IMC_GGUF_STRING:
        return rd_string(r, &k->str, &k->str_len, false);
    case IMC_GGUF_ARRAY:
        return read_array(r, k);
    default:
        return rd_bytes(r, k->scalar, scalar_size[k->type]);
    }
}

static bool read_header(struct rd *r, struct imc_gguf_part *pt, uint64_t *n_kv,
                        uint64_t *n_tensors)
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
    if (!rd_u32(r, &pt->version) || !rd_u64(r, n_tensors) || !rd_u64(r, n_kv)) {
        return false;
    }
    if (pt->version != 3) {
        const char *hint = pt->version == 0x03000000u ? " (a big-endian file?)"
                           : pt->version < 3          ? " (an old GGUF; convert it again)"
                                                      : "";
        IMC_LOG_ERR("%s: GGUF version %" PRIu32 " is not supported, expected 3%s", r->name,
                    pt->version, hint);
        return false;
    }
    // A key/value takes at least 13 bytes, a tensor info at least 32: reject absurd counts.
    uint64_t left = rd_left(r);
    if (*n_kv > left / 13 || *n_tensors > left / 32 || *n_kv * 13 + *n_tensors * 32 > left) {
        IMC_LOG_ERR("%s: header claims %" PRIu64 " keys and %" PRIu64 " tensors, more than the "
                    "%" PRIu64 "-byte file can hold", r->name, *n_kv, *n_tensors, r->size);
        return false;
    }
    return true;
}

// key_order is built by sorting pointers (qsort has no context argument for the kv array).
static int cmp_kv_ptr(const void *a, const void *b)
{
    const struct imc_gguf_kv *x = *(const struct imc_gguf_kv *const *)a;
    const struct imc_gguf_kv *y = *(const struct imc_gguf_kv *const *)b;
    return strcmp(x->key, y->key);
}

// Builds key_order and rejects duplicate keys (n log n even for hostile counts).
static bool index_keys(struct rd *r, struct imc_gguf_part *pt)
{
    int64_t n = pt->n_kv;
    const struct imc_gguf_kv **tmp = malloc((size_t)(n ? n : 1) * sizeof(*tmp));
    pt->key_order = malloc((size_t)(n ? n : 1) * sizeof(*pt->key_order));
    if (!tmp || !pt->key_order) {
        IMC_LOG_ERR("%s: out of memory indexing %" PRId64 " keys", r->name, n);
        free(tmp);
        r->oom = true;
        return false;
    }
    for (int64_t i = 0; i < n; i++) {
        tmp[i] = &pt->kv[i];
    }
    qsort(tmp, (size_t)n, sizeof(*tmp), cmp_kv_ptr);
    bool ok = true;
    for (int64_t i = 0; i < n; i++) {
        pt->key_order[i] = tmp[i] - pt->kv;
        if (ok && i > 0 && strcmp(tmp[i - 1]->key, tmp[i]->key) == 0) {
            IMC_LOG_ERR("%s: duplicate metadata key '%s'", r->name, tmp[i]->key);
            ok = false;
        }
    }
    free(tmp);
    return ok;
}

static bool read_alignment(struct rd *r, struct imc_gguf_part *pt)
{
    pt->alignment = IMC_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = imc_gguf_part_find_key(pt, "general.alignment");
    if (i < 0) {
        return true;
    }
    const struct imc_gguf_kv *k = &pt->kv[i];
    uint32_t a = 0;
    if (k->type != IMC_GGUF_UINT32) {
        IMC_LOG_ERR("%s: general.alignment has value type %d, expected uint32 (%d)", r->name,
                    (int)k->type, IMC_GGUF_UINT32);
        return false;
    }
    memcpy(&a, k->scalar, 4);
    if (a == 0 || (a & (a - 1)) != 0) {
        IMC_LOG_ERR("%s: general.alignment %" PRIu32 " is not a power of two", r->name, a);
        return false;
    }
    pt->alignment = a;
    return true;
}

static bool read_shape(struct rd *r, struct imc_tensor_info *t)
{
    uint32_t n_dims;
    if (!rd_u32(r, &n_dims)) {
        return false;
    }
    if (n_dims == 0 || n_dims > IMC_GGUF_MAX_DIMS) {
        IMC_LOG_ERR("%s: tensor '%s' has %" PRIu32 " dimensions, expected 1..%d", r->name,
                    t->name, n_dims, IMC_GGUF_MAX_DIMS);
        return false;
    }
    t->n_dims = (int)n_dims;
    uint64_t count = 1;
    for (int d = 0; d < IMC_GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && !rd_u64(r, &ne)) {
            return false;
        }
        if (ne > INT64_MAX) {
            IMC_LOG_ERR("%s: tensor '%s' dimension %d is negative (%" PRId64 ")", r->name,
                        t->name, d, (int64_t)ne);
            return false;
        }
        if (!imc_size_mul(count, ne, &count) || count > INT64_MAX) {
            IMC_LOG_ERR("%s: tensor '%s' element count overflows at dimension %d", r->name,
                        t->name, d);
            return false;
        }
        t->ne[d] = (int64_t)ne;
    }
    return true;
}

static bool read_tensor_info(struct rd *r, struct imc_tensor_info *t, int64_t i)
{
    char what[64];
    snprintf(what, sizeof(what), "the info of tensor %" PRId64, i);
    r->what = what;
    char *name = NULL;
    uint32_t type;
    if (!rd_string(r, &name, NULL, true)) {
        return false;
    }
    t->name = name;
    if (!read_shape(r, t) || !rd_u32(r, &type) || !rd_u64(r, &t->offset)) {
        return false;
    }
    if (!imc_type_is_known(type)) {
        const char *fn = imc_type_foreign_name(type);
        if (fn) {
            IMC_LOG_ERR("%s: tensor '%s' has type %" PRIu32 " (%s in the llama.cpp family), "
                        "which imc cannot read", r->name, name, type, fn);
        } else {
            IMC_LOG_ERR("%s: tensor '%s' has unknown type %" PRIu32, r->name, name, type);
        }
        return false;
    }
    t->type = (enum imc_type)type;
    uint64_t rows = 1, row_bytes;
    for (int d = 1; d < IMC_GGUF_MAX_DIMS; d++) {
        if (!imc_size_mul(rows, (uint64_t)t->ne[d], &rows)) { // ne[0] = 0 hides this from count
            IMC_LOG_ERR("%s: tensor '%s' row count overflows", r->name, name);
            return false;
        }
    }
    if (!imc_type_row_bytes(type, t->ne[0], &row_bytes)) {
        IMC_LOG_ERR("%s: tensor '%s' row length %" PRId64 " is not a multiple of the %s block "
                    "size %" PRId64, r->name, name, t->ne[0], imc_type_name(type),
                    imc_type_traits(type)->block_size);
        return false;
    }
    const int group = imc_type_traits(type)->rows;
    if (group > 1 && (t->ne[1] % group != 0)) {
        IMC_LOG_ERR("%s: tensor '%s' of type %s has %" PRId64 " rows, not a multiple of the %d "
                    "rows the type interleaves", r->name, name, imc_type_name(type), t->ne[1],
                    group);
        return false;
    }
    if (!imc_size_mul(rows, row_bytes, &t->nbytes)) {
        IMC_LOG_ERR("%s: tensor '%s' byte size overflows", r->name, name);
        return false;
    }
    return true;
}

static bool place_tensors(struct rd *r, struct imc_gguf_part *pt, int split)
{
    uint64_t data_start;
    if (pt->n_tensors == 0) {
        return true; // metadata-only file: the padding is optional
    }
    if (!imc_size_align(r->off, pt->alignment, &data_start) || data_start > r->size) {
        IMC_LOG_ERR("%s: file truncated before the tensor data (header ends at %" PRIu64
                    ", the data section starts at the next multiple of %" PRIu32
                    ", the file has %" PRIu64 " bytes)",
                    r->name, r->off, pt->alignment, r->size);
        return false;
    }
    for (int64_t i = 0; i < pt->n_tensors; i++) {
        struct imc_tensor_info *t = &pt->tensors[i];
        uint64_t abs, end;
        if (t->offset % pt->alignment != 0) {
            IMC_LOG_ERR("%s: tensor '%s' data offset %" PRIu64 " is not a multiple of the "
                        "alignment %" PRIu32, r->name, t->name, t->offset, pt->alignment);
            return false;
        }
        if (!imc_size_add(data_start, t->offset, &abs) || !imc_size_add(abs, t->nbytes, &end) ||
            end > r->size) {
            IMC_LOG_ERR("%s: tensor '%s' data [%" PRIu64 ", +%" PRIu64 ") lies outside the file "
                        "(%" PRIu64 " bytes, data section at %" PRIu64 ")",
                        r->name, t->name, t->offset, t->nbytes, r->size, data_start);
            return false;
        }
        t->offset = abs;
        t->data = r->p + abs;
        t->split = split;
    }
    return true;
}

static bool read_kvs(struct rd *r, struct imc_gguf_part *pt, uint64_t n_kv)
{
    int64_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        if (!grow((void **)&pt->kv, &cap, (int64_t)i + 1, sizeof(*pt->kv))) {
            IMC_LOG_ERR("%s: out of memory for %" PRIu64 " keys", r->name, n_kv);
            r->oom = true;
            return false;
        }
        pt->n_kv = (int64_t)i + 1; // so that imc_gguf_free releases a partial entry
        if (!read_kv(r, &pt->kv[i], (int64_t)i)) {
            return false;
        }
    }
    return true;
}

static bool read_tensor_infos(struct rd *r, struct imc_gguf_part *pt, uint64_t n_tensors)
{
    int64_t cap = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (!grow((void **)&pt->tensors, &cap, (int64_t)i + 1, sizeof(*pt->tensors))) {
            IMC_LOG_ERR("%s: out of memory for %" PRIu64 " tensors", r->name, n_tensors);
            r->oom = true;
            return false;
        }
        pt->n_tensors = (int64_t)i + 1;
        if (!read_tensor_info(r, &pt->tensors[i], (int64_t)i)) {
            return false;
        }
    }
    return true;
}

enum imc_status imc_gguf_parse_part(struct imc_gguf_part *pt, const char *name, int split)
{
    struct rd r = {pt->base, pt->size, 0, name, "", false};
    uint64_t n_kv, n_tensors;
    if (pt->size > 0 && !pt->base) {
        IMC_LOG_ERR("%s: no data (NULL image of %" PRIu64 " bytes)", name, pt->size);
        return IMC_ERR_ARG;
    }
    bool ok = read_header(&r, pt, &n_kv, &n_tensors) && read_kvs(&r, pt, n_kv) &&
              index_keys(&r, pt) && read_alignment(&r, pt) &&
              read_tensor_infos(&r, pt, n_tensors) && place_tensors(&r, pt, split);
    return ok ? IMC_OK : r.oom ? IMC_ERR_NOMEM : IMC_ERR_FORMAT;
}

int64_t imc_gguf_part_find_key(const struct imc_gguf_part *pt, const char *key)
{
    int64_t lo = 0, hi = pt->key_order ? pt->n_kv - 1 : -1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int64_t i = pt->key_order[mid];
        int c = strcmp(pt->kv[i].key, key);
        if (c == 0) {
            return i;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return -1;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    const struct imc_tensor_info *x = *(const struct imc_tensor_info *const *)a;
    const struct imc_tensor_info *y = *(const struct imc_tensor_info *const *)b;
    return strcmp(x->name, y->name);
}

enum imc_status imc_gguf_index_tensors(struct imc_gguf *g)
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
        return IMC_ERR_NOMEM;
    }
    int64_t k = 0;
    for (int p = 0; p < g->n_parts; p++) {
        for (int64_t i = 0; i < g->parts[p].n_tensors; i++) {
            g->tensors[k++] = &g->parts[p].tensors[i];
        }
    }
    if (n > 0) {
        memcpy(g->sorted, g->tensors, (size_t)n * sizeof(*g->sorted));
    }
    qsort(g->sorted, (size_t)n, sizeof(*g->sorted), cmp_tensor_name);
    for (int64_t i = 1; i < n; i++) {
        if (strcmp(g->sorted[i - 1]->name, g->sorted[i]->name) == 0) {
            IMC_LOG_ERR("%s: duplicate tensor name '%s'", g->path, g->sorted[i]->name);
            return IMC_ERR_FORMAT;
        }
    }
    return IMC_OK;
}

static void part_free(struct imc_gguf_part *pt)
{
    for (int64_t i = 0; pt->kv && i < pt->n_kv; i++) {
        struct imc_gguf_kv *k = &pt->kv[i];
        free(k->key);
        free(k->str);
        free(k->arr_data);
        free(k->arr_strs);
        free(k->arr_lens);
        free(k->arr_blob);
    }
    free(pt->kv);
    free(pt->key_order);
    for (int64_t i = 0; pt->tensors && i < pt->n_tensors; i++) {
        free((char *)pt->tensors[i].name);
    }
    free(pt->tensors);
    imc_map_close(&pt->map);
}

struct imc_gguf *imc_gguf_alloc(const char *path, int n_parts)
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

enum imc_status imc_gguf_open_memory(struct imc_gguf **out, const void *data, uint64_t size,
                                     const char *name)
{
    *out = NULL;
    struct imc_gguf *g = imc_gguf_alloc(name, 1);
    if (!g) {
        IMC_LOG_ERR("%s: out of memory", name);
        return IMC_ERR_NOMEM;
    }
    g->parts[0].base = data;
    g->parts[0].size = size;
    enum imc_status st = imc_gguf_parse_part(&g->parts[0], name, 0);
    if (st == IMC_OK) {
        st = imc_gguf_index_tensors(g);
    }
    if (st != IMC_OK) {
        imc_gguf_free(g);
        return st;
    }
    *out = g;
    return IMC_OK;
}
