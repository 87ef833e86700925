/*
 * model/gguf_write.c: the GGUF v3 writer (layout in model/gguf.h). Values are serialized when
 * set; tensors are borrowed and streamed at write time through an atomic output file.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/log.h"
#include "core/size.h"
#include "model/gguf_priv.h"

struct wkv {
    char *key;
    uint8_t *val;   // serialized: u32 type + value bytes, as in the file (owned)
    size_t val_len;
};

struct wtensor {
    char *name;
    enum imc_type type;
    int n_dims;
    int64_t ne[IMC_GGUF_MAX_DIMS];
    uint64_t nbytes;
    const void *data; // borrowed
};

struct imc_gguf_writer {
    struct wkv *kv;
    int64_t n_kv, cap_kv;
    struct wtensor *t;
    int64_t n_t, cap_t;
};

// A growable byte buffer for serializing one value.
struct buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
};

static void buf_put(struct buf *b, const void *src, size_t n)
{
    if (b->oom || n == 0) {
        return;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->n + n) {
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void buf_u32(struct buf *b, uint32_t v) { buf_put(b, &v, 4); }
static void buf_u64(struct buf *b, uint64_t v) { buf_put(b, &v, 8); }
static void buf_str(struct buf *b, const char *s, uint64_t n)
{
    buf_u64(b, n);
    buf_put(b, s, (size_t)n);
}

struct imc_gguf_writer *imc_gguf_writer_init(void)
{
    return calloc(1, sizeof(struct imc_gguf_writer));
}

void imc_gguf_writer_free(struct imc_gguf_writer *w)
{
    if (!w) {
        return;
    }
    for (int64_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (int64_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

static int64_t wfind(const struct imc_gguf_writer *w, const char *key)
{
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            return i;
        }
    }
    return -1;
}

// Takes ownership of b's bytes (a serialized type + value).
static enum imc_status wset(struct imc_gguf_writer *w, const char *key, struct buf *b)
{
    IMC_ASSERT(w && key);
    if (b->oom) {
        free(b->p);
        return IMC_ERR_NOMEM;
    }
    int64_t i = wfind(w, key);
    if (i < 0) {
        if (w->n_kv == w->cap_kv) {
            int64_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
            struct wkv *kv = realloc(w->kv, (size_t)cap * sizeof(*kv));
            if (!kv) {
                free(b->p);
                return IMC_ERR_NOMEM;
            }
            w->kv = kv;
            w->cap_kv = cap;
        }
        i = w->n_kv++;
        w->kv[i].key = strdup(key);
        w->kv[i].val = NULL;
        if (!w->kv[i].key) {
            w->n_kv--;
            free(b->p);
            return IMC_ERR_NOMEM;
        }
    }
    free(w->kv[i].val);
    w->kv[i].val = b->p;
    w->kv[i].val_len = b->n;
    return IMC_OK;
}

static enum imc_status set_scalar(struct imc_gguf_writer *w, const char *key,
                                  enum imc_gguf_vtype t, const void *v)
{
    struct buf b = {0};
    buf_u32(&b, (uint32_t)t);
    buf_put(&b, v, (size_t)imc_gguf_scalar_size(t));
    return wset(w, key, &b);
}

enum imc_status imc_gguf_set_u8(struct imc_gguf_writer *w, const char *key, uint8_t v)
{
    return set_scalar(w, key, IMC_GGUF_UINT8, &v);
}
enum imc_status imc_gguf_set_u16(struct imc_gguf_writer *w, const char *key, uint16_t v)
{
    return set_scalar(w, key, IMC_GGUF_UINT16, &v);
}
enum imc_status imc_gguf_set_u32(struct imc_gguf_writer *w, const char *key, uint32_t v)
{
    return set_scalar(w, key, IMC_GGUF_UINT32, &v);
}
enum imc_status imc_gguf_set_i32(struct imc_gguf_writer *w, const char *key, int32_t v)
{
    return set_scalar(w, key, IMC_GGUF_INT32, &v);
}
enum imc_status imc_gguf_set_u64(struct imc_gguf_writer *w, const char *key, uint64_t v)
{
    return set_scalar(w, key, IMC_GGUF_UINT64, &v);
}
enum imc_status imc_gguf_set_f32(struct imc_gguf_writer *w, const char *key, float v)
{
    return set_scalar(w, key, IMC_GGUF_FLOAT32, &v);
}
enum imc_status imc_gguf_set_bool(struct imc_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, IMC_GGUF_BOOL, &b);
}

enum imc_status imc_gguf_set_str(struct imc_gguf_writer *w, const char *key, const char *v)
{
    IMC_ASSERT(v);
    struct buf b = {0};
    buf_u32(&b, IMC_GGUF_STRING);
    buf_str(&b, v, strlen(v));
    return wset(w, key, &b);
}

enum imc_status imc_gguf_set_arr(struct imc_gguf_writer *w, const char *key,
                                 enum imc_gguf_vtype t, const void *data, uint64_t n)
{
    uint64_t es = imc_gguf_scalar_size(t), bytes;
    if (es == 0 || !imc_size_mul(es, n, &bytes) || bytes > SIZE_MAX) {
        IMC_LOG_ERR("gguf writer: key '%s': bad array element type %d or count %" PRIu64, key,
                    (int)t, n);
        return IMC_ERR_ARG;
    }
    struct buf b = {0};
    buf_u32(&b, IMC_GGUF_ARRAY);
    buf_u32(&b, (uint32_t)t);
    buf_u64(&b, n);
    buf_put(&b, data, (size_t)bytes);
    return wset(w, key, &b);
}

enum imc_status imc_gguf_set_arr_str(struct imc_gguf_writer *w, const char *key,
                                     const char *const *strs, uint64_t n)
{
    struct buf b = {0};
    buf_u32(&b, IMC_GGUF_ARRAY);
    buf_u32(&b, IMC_GGUF_STRING);
    buf_u64(&b, n);
    for (uint64_t j = 0; j < n; j++) {
        buf_str(&b, strs[j], strlen(strs[j]));
    }
    return wset(w, key, &b);
}

enum imc_status imc_gguf_set_from(struct imc_gguf_writer *w, const struct imc_gguf *g, int64_t i)
{
    enum imc_gguf_vtype t = imc_gguf_kv_type(g, i);
    const char *key = imc_gguf_key(g, i);
    if (t == IMC_GGUF_STRING) { // may hold NUL bytes: copy with its length
        struct buf b = {0};
        buf_u32(&b, IMC_GGUF_STRING);
        buf_str(&b, imc_gguf_str(g, i), imc_gguf_str_len(g, i));
        return wset(w, key, &b);
    }
    if (t != IMC_GGUF_ARRAY) {
        return set_scalar(w, key, t, imc_gguf_scalar_bytes(g, i));
    }
    enum imc_gguf_vtype at = imc_gguf_arr_type(g, i);
    uint64_t n = imc_gguf_arr_n(g, i);
    if (at != IMC_GGUF_STRING) {
        return imc_gguf_set_arr(w, key, at, imc_gguf_arr_data(g, i), n);
    }
    struct buf b = {0}; // strings may hold NUL bytes: copy with their lengths
    buf_u32(&b, IMC_GGUF_ARRAY);
    buf_u32(&b, IMC_GGUF_STRING);
    buf_u64(&b, n);
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len;
        const char *s = imc_gguf_arr_str(g, i, j, &len);
        buf_str(&b, s, len);
    }
    return wset(w, key, &b);
}

enum imc_status imc_gguf_remove_key(struct imc_gguf_writer *w, const char *key)
{
    int64_t i = wfind(w, key);
    if (i >= 0) {
        free(w->kv[i].key);
        free(w->kv[i].val);
        memmove(&w->kv[i], &w->kv[i + 1], (size_t)(w->n_kv - i - 1) * sizeof(*w->kv));
        w->n_kv--;
    }
    return IMC_OK;
}

enum imc_status imc_gguf_add_tensor(struct imc_gguf_writer *w, const char *name,
                                    enum imc_type type, int n_dims, const int64_t *ne,
                                    const void *data)
{
    struct wtensor t = {.type = type, .n_dims = n_dims, .data = data};
    uint64_t rows = 1, row_bytes;
    if (n_dims < 1 || n_dims > IMC_GGUF_MAX_DIMS || !imc_type_is_known(type)) {
        IMC_LOG_ERR("gguf writer: tensor '%s': bad dimension count %d or type %d", name, n_dims,
                    (int)type);
        return IMC_ERR_ARG;
    }
    for (int d = 0; d < IMC_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 0 || (d > 0 && !imc_size_mul(rows, (uint64_t)t.ne[d], &rows))) {
            IMC_LOG_ERR("gguf writer: tensor '%s': dimension %d is %" PRId64
                        " (negative, or the row count overflows)", name, d, t.ne[d]);
            return IMC_ERR_ARG;
        }
    }
    if (!imc_type_row_bytes(type, t.ne[0], &row_bytes) ||
        !imc_size_mul(rows, row_bytes, &t.nbytes)) {
        IMC_LOG_ERR("gguf writer: tensor '%s': row length %" PRId64 " does not fit type %s", name,
                    t.ne[0], imc_type_name(type));
        return IMC_ERR_ARG;
    }
    if (!data && t.nbytes > 0) {
        IMC_LOG_ERR("gguf writer: tensor '%s': no data for %" PRIu64 " bytes", name, t.nbytes);
        return IMC_ERR_ARG;
    }
    for (int64_t i = 0; i < w->n_t; i++) {
        if (strcmp(w->t[i].name, name) == 0) {
            IMC_LOG_ERR("gguf writer: duplicate tensor '%s'", name);
            return IMC_ERR_ARG;
        }
    }
    if (w->n_t == w->cap_t) {
        int64_t cap = w->cap_t ? w->cap_t * 2 : 64;
        struct wtensor *nt = realloc(w->t, (size_t)cap * sizeof(*nt));
        if (!nt) {
            return IMC_ERR_NOMEM;
        }
        w->t = nt;
        w->cap_t = cap;
    }
    t.name = strdup(name);
    if (!t.name) {
        return IMC_ERR_NOMEM;
    }
    w->t[w->n_t++] = t;
    return IMC_OK;
}

static uint32_t writer_alignment(const struct imc_gguf_writer *w)
{
    int64_t i = wfind(w, "general.alignment");
    uint32_t type, a;
    if (i < 0 || w->kv[i].val_len != 8) {
        return IMC_GGUF_DEFAULT_ALIGNMENT;
    }
    memcpy(&type, w->kv[i].val, 4);
    memcpy(&a, w->kv[i].val + 4, 4);
    return type == IMC_GGUF_UINT32 && a != 0 && (a & (a - 1)) == 0 ? a
                                                                     : IMC_GGUF_DEFAULT_ALIGNMENT;
}

static uint64_t pad_to(uint64_t x, uint32_t a) { return (x + a - 1) / a * a; }

// The split keys are written by imc_gguf_write_split only: a writer filled from a split model
// (imc_gguf_set_from) must not carry them into a single file or duplicate them in a part.
static bool is_split_key(const char *key)
{
    return strcmp(key, "split.no") == 0 || strcmp(key, "split.count") == 0 ||
           strcmp(key, "split.tensors.count") == 0;
}

// Keys added to one file besides the writer's own (split keys).
struct extra_kv {
    const char *key;
    struct buf val; // serialized type + value
};

static void put_kv(struct buf *h, const char *key, const uint8_t *val, size_t len)
{
    buf_str(h, key, strlen(key));
    buf_put(h, val, len);
}

// Serializes the header of a file holding tensors [t0, t1), w's keys (when with_kv) and extra,
// padded to the alignment.
static void build_header(const struct imc_gguf_writer *w, struct buf *h, int64_t t0, int64_t t1,
                         bool with_kv, const struct extra_kv *extra, int n_extra)
{
    uint32_t align = writer_alignment(w);
    uint64_t n_kv = (uint64_t)n_extra;
    for (int64_t i = 0; with_kv && i < w->n_kv; i++) {
        n_kv += !is_split_key(w->kv[i].key);
    }
    buf_put(h, "GGUF", 4);
    buf_u32(h, 3);
    buf_u64(h, (uint64_t)(t1 - t0));
    buf_u64(h, n_kv);
    for (int64_t i = 0; with_kv && i < w->n_kv; i++) {
        if (!is_split_key(w->kv[i].key)) {
            put_kv(h, w->kv[i].key, w->kv[i].val, w->kv[i].val_len);
        }
    }
    for (int i = 0; i < n_extra; i++) {
        put_kv(h, extra[i].key, extra[i].val.p, extra[i].val.n);
    }
    uint64_t off = 0;
    for (int64_t i = t0; i < t1; i++) {
        const struct wtensor *t = &w->t[i];
        buf_str(h, t->name, strlen(t->name));
        buf_u32(h, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) {
            buf_u64(h, (uint64_t)t->ne[d]);
        }
        buf_u32(h, (uint32_t)t->type);
        buf_u64(h, off);
        off = pad_to(off + t->nbytes, align);
    }
    static const uint8_t zeros[256];
    size_t hpad = (size_t)(pad_to(h->n, align) - h->n);
    for (size_t k = 0; k < hpad; k += sizeof(zeros)) {
        buf_put(h, zeros, hpad - k < sizeof(zeros) ? hpad - k : sizeof(zeros));
    }
}

// Writes tensors [t0, t1) of w with the extra keys (and w's keys when with_kv), atomically.
static enum imc_status write_file(const struct imc_gguf_writer *w, const char *path, int64_t t0,
                                  int64_t t1, bool with_kv, const struct extra_kv *extra,
                                  int n_extra, const struct imc_pulse *pulse)
{
    static const uint8_t zeros[256];
    uint32_t align = writer_alignment(w);
    struct buf h = {0};
    build_header(w, &h, t0, t1, with_kv, extra, n_extra);
    if (h.oom) {
        free(h.p);
        IMC_LOG_ERR("%s: out of memory building the GGUF header", path);
        return IMC_ERR_NOMEM;
    }
    struct imc_afile a = {0};
    enum imc_status st = imc_afile_open(&a, path);
    if (st != IMC_OK) {
        free(h.p);
        return st;
    }
    st = imc_afile_write(&a, h.p, h.n);
    free(h.p);
    for (int64_t i = t0; i < t1 && st == IMC_OK; i++) {
        const struct wtensor *t = &w->t[i];
        size_t pad = (size_t)(pad_to(t->nbytes, align) - t->nbytes);
        st = imc_afile_write(&a, t->data, (size_t)t->nbytes);
        for (size_t k = 0; k < pad && st == IMC_OK; k += sizeof(zeros)) {
            st = imc_afile_write(&a, zeros, pad - k < sizeof(zeros) ? pad - k : sizeof(zeros));
        }
        if (st == IMC_OK) {
            imc_pulse_emit(pulse);
        }
    }
    if (st != IMC_OK) {
        imc_afile_abort(&a);
        return st;
    }
    return imc_afile_commit(&a);
}

enum imc_status imc_gguf_write(const struct imc_gguf_writer *w, const char *path)
{
    return write_file(w, path, 0, w->n_t, true, NULL, 0, NULL);
}

enum imc_status imc_gguf_write_pulse(const struct imc_gguf_writer *w, const char *path,
                                     const struct imc_pulse *pulse)
{
    return write_file(w, path, 0, w->n_t, true, NULL, 0, pulse);
}

static void extra_scalar(struct extra_kv *e, const char *key, enum imc_gguf_vtype t,
                         const void *v)
{
    e->key = key;
    memset(&e->val, 0, sizeof(e->val));
    buf_u32(&e->val, (uint32_t)t);
    buf_put(&e->val, v, (size_t)imc_gguf_scalar_size(t));
}

// Part p of n_split: the split keys, and general.alignment in parts after the first (which
// carry no other keys) so that they are read with the same alignment.
static enum imc_status write_part(const struct imc_gguf_writer *w, const char *path, int p,
                                  int n_split)
{
    int64_t t0 = w->n_t * p / n_split, t1 = w->n_t * (p + 1) / n_split;
    uint16_t no = (uint16_t)p, count = (uint16_t)n_split;
    int32_t total = (int32_t)w->n_t;
    uint32_t align = writer_alignment(w);
    struct extra_kv e[4];
    int n_e = 3;
    extra_scalar(&e[0], "split.no", IMC_GGUF_UINT16, &no);
    extra_scalar(&e[1], "split.count", IMC_GGUF_UINT16, &count);
    extra_scalar(&e[2], "split.tensors.count", IMC_GGUF_INT32, &total);
    if (p > 0 && align != IMC_GGUF_DEFAULT_ALIGNMENT) {
        extra_scalar(&e[n_e++], "general.alignment", IMC_GGUF_UINT32, &align);
    }
    bool oom = false;
    for (int k = 0; k < n_e; k++) {
        oom |= e[k].val.oom;
    }
    enum imc_status st = oom ? IMC_ERR_NOMEM : write_file(w, path, t0, t1, p == 0, e, n_e, NULL);
    for (int k = 0; k < n_e; k++) {
        free(e[k].val.p);
    }
    return st;
}

enum imc_status imc_gguf_write_split(const struct imc_gguf_writer *w, const char *base,
                                     int n_split)
{
    if (n_split < 1 || n_split > 99999 || n_split > (w->n_t > 0 ? w->n_t : 1) ||
        w->n_t > INT32_MAX) {
        IMC_LOG_ERR("%s: cannot split %" PRId64 " tensors into %d files", base, w->n_t, n_split);
        return IMC_ERR_ARG;
    }
    size_t n = strlen(base) + 32;
    char *path = malloc(n);
    if (!path) {
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = IMC_OK;
    for (int p = 0; p < n_split && st == IMC_OK; p++) {
        snprintf(path, n, "%s-%05d-of-%05d.gguf", base, p + 1, n_split);
        st = write_part(w, path, p, n_split);
    }
    free(path);
    return st;
}
