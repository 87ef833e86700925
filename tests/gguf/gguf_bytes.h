/*
 * tests/gguf/gguf_bytes.h: a byte builder for handcrafted GGUF images, written from the format
 * description in model/gguf.h and independent of the writer under test. Header-only, shared by
 * the tests in tests/gguf/. Allocation failure aborts (test code).
 */
#ifndef IMC_TESTS_GGUF_BYTES_H
#define IMC_TESTS_GGUF_BYTES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gb {
    uint8_t *p;
    size_t n, cap;
};

static inline void gb_put(struct gb *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) {
            cap *= 2;
        }
        b->p = realloc(b->p, cap);
        if (!b->p) {
            abort();
        }
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->p + b->n, src, n);
    }
    b->n += n;
}

static inline void gb_u8(struct gb *b, uint8_t v) { gb_put(b, &v, 1); }
static inline void gb_u16(struct gb *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    gb_put(b, x, 2);
}
static inline void gb_u32(struct gb *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++) {
        x[i] = (uint8_t)(v >> (8 * i));
    }
    gb_put(b, x, 4);
}
static inline void gb_u64(struct gb *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) {
        x[i] = (uint8_t)(v >> (8 * i));
    }
    gb_put(b, x, 8);
}
static inline void gb_strn(struct gb *b, const char *s, uint64_t n)
{
    gb_u64(b, n);
    gb_put(b, s, (size_t)n);
}
static inline void gb_str(struct gb *b, const char *s) { gb_strn(b, s, strlen(s)); }

// "GGUF", version, n_tensors, n_kv.
static inline void gb_header_v(struct gb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    gb_put(b, "GGUF", 4);
    gb_u32(b, version);
    gb_u64(b, n_tensors);
    gb_u64(b, n_kv);
}
static inline void gb_header(struct gb *b, uint64_t n_tensors, uint64_t n_kv)
{
    gb_header_v(b, 3, n_tensors, n_kv);
}

// Value type ids as in the GGUF specification (not taken from model/gguf.h on purpose).
enum { GB_U8 = 0, GB_I8, GB_U16, GB_I16, GB_U32, GB_I32, GB_F32, GB_BOOL, GB_STR, GB_ARR,
       GB_U64, GB_I64, GB_F64 };

static inline void gb_kv_u32(struct gb *b, const char *key, uint32_t v)
{
    gb_str(b, key);
    gb_u32(b, GB_U32);
    gb_u32(b, v);
}
static inline void gb_kv_u16(struct gb *b, const char *key, uint16_t v)
{
    gb_str(b, key);
    gb_u32(b, GB_U16);
    gb_u16(b, v);
}
static inline void gb_kv_i32(struct gb *b, const char *key, int32_t v)
{
    gb_str(b, key);
    gb_u32(b, GB_I32);
    gb_u32(b, (uint32_t)v);
}
static inline void gb_kv_str(struct gb *b, const char *key, const char *v)
{
    gb_str(b, key);
    gb_u32(b, GB_STR);
    gb_str(b, v);
}

// Tensor info: name, n_dims, ne[n_dims], type, offset.
static inline void gb_tensor(struct gb *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                             uint32_t type, uint64_t offset)
{
    gb_str(b, name);
    gb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) {
        gb_u64(b, ne[d]);
    }
    gb_u32(b, type);
    gb_u64(b, offset);
}

// Zero bytes up to a multiple of align.
static inline void gb_pad(struct gb *b, size_t align)
{
    static const uint8_t z[64];
    while (b->n % align != 0) {
        size_t k = align - b->n % align;
        gb_put(b, z, k < sizeof(z) ? k : sizeof(z));
    }
}

// n bytes of value v.
static inline void gb_fill(struct gb *b, uint8_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        gb_u8(b, v);
    }
}

static inline void gb_free(struct gb *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

// Writes bytes to path; returns 0 on success.
static inline int gb_save(const struct gb *b, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        return -1;
    }
    int ok = b->n == 0 || fwrite(b->p, 1, b->n, f) == b->n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

#endif // IMC_TESTS_GGUF_BYTES_H
