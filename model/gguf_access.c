/*
 * model/gguf_access.c: read accessors of struct imc_gguf (API in model/gguf.h). Keys are those
 * of the first (or only) part; lookups by name are binary searches over sorted indices.
 * Indices out of range are programmer bugs (IMC_ASSERT), never input errors.
 */
#include <string.h>

#include "core/log.h"
#include "model/gguf_priv.h"

const char *imc_gguf_path(const struct imc_gguf *g) { return g->path; }
uint32_t imc_gguf_version(const struct imc_gguf *g) { return g->parts[0].version; }
uint32_t imc_gguf_alignment(const struct imc_gguf *g) { return g->parts[0].alignment; }
int imc_gguf_n_splits(const struct imc_gguf *g) { return g->n_parts; }

uint64_t imc_gguf_file_size(const struct imc_gguf *g)
{
    uint64_t s = 0;
    for (int p = 0; p < g->n_parts; p++) {
        s += g->parts[p].size;
    }
    return s;
}

static const struct imc_gguf_kv *kv_at(const struct imc_gguf *g, int64_t i)
{
    IMC_ASSERT(i >= 0 && i < g->parts[0].n_kv);
    return &g->parts[0].kv[i];
}

int64_t imc_gguf_n_kv(const struct imc_gguf *g) { return g->parts[0].n_kv; }

int64_t imc_gguf_find_key(const struct imc_gguf *g, const char *key)
{
    return imc_gguf_part_find_key(&g->parts[0], key);
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
    const struct imc_gguf_kv *k = kv_at(g, i);
    IMC_ASSERT(k->type == IMC_GGUF_ARRAY && k->arr_type == IMC_GGUF_STRING && j < k->arr_n);
    if (len) {
        *len = k->arr_lens[j];
    }
    return k->arr_strs[j];
}

const char *imc_gguf_str(const struct imc_gguf *g, int64_t i)
{
    const struct imc_gguf_kv *k = kv_at(g, i);
    return k->type == IMC_GGUF_STRING ? k->str : NULL;
}

uint64_t imc_gguf_str_len(const struct imc_gguf *g, int64_t i)
{
    const struct imc_gguf_kv *k = kv_at(g, i);
    return k->type == IMC_GGUF_STRING ? k->str_len : 0;
}

const void *imc_gguf_scalar_bytes(const struct imc_gguf *g, int64_t i)
{
    return kv_at(g, i)->scalar;
}

// Integer value of a scalar key: signed in *s, or (UINT64 only) unsigned in *u.
static bool kv_int_parts(const struct imc_gguf_kv *k, int64_t *s, uint64_t *u, bool *is_signed)
{
    uint8_t u8;
    int8_t i8;
    uint16_t u16;
    int16_t i16;
    uint32_t u32;
    int32_t i32;
    *is_signed = true;
    switch (k->type) {
    case IMC_GGUF_UINT8: memcpy(&u8, k->scalar, 1); *s = u8; return true;
    case IMC_GGUF_INT8: memcpy(&i8, k->scalar, 1); *s = i8; return true;
    case IMC_GGUF_UINT16: memcpy(&u16, k->scalar, 2); *s = u16; return true;
    case IMC_GGUF_INT16: memcpy(&i16, k->scalar, 2); *s = i16; return true;
    case IMC_GGUF_UINT32: memcpy(&u32, k->scalar, 4); *s = u32; return true;
    case IMC_GGUF_INT32: memcpy(&i32, k->scalar, 4); *s = i32; return true;
    case IMC_GGUF_INT64: memcpy(s, k->scalar, 8); return true;
    case IMC_GGUF_UINT64: memcpy(u, k->scalar, 8); *is_signed = false; return true;
    default: return false;
    }
}

bool imc_gguf_kv_int(const struct imc_gguf_kv *k, int64_t *out)
{
    int64_t s = 0;
    uint64_t u = 0;
    bool is_signed;
    if (!kv_int_parts(k, &s, &u, &is_signed) || (!is_signed && u > INT64_MAX)) {
        return false;
    }
    *out = is_signed ? s : (int64_t)u;
    return true;
}

// Integer key in [lo, hi] (hi compared as unsigned) as raw 64-bit bits.
static bool get_int(const struct imc_gguf *g, const char *key, int64_t lo, uint64_t hi,
                    uint64_t *bits)
{
    int64_t i = imc_gguf_find_key(g, key), s = 0;
    uint64_t u = 0;
    bool is_signed;
    if (i < 0 || !kv_int_parts(kv_at(g, i), &s, &u, &is_signed)) {
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
    const struct imc_gguf_kv *k = kv_at(g, i);
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
