/*
 * types/types.c: the type traits table generated from types/types.def (the row functions live in
 * model/quant_*.c), name lookup, row sizes, and the fp16/bf16 conversions. DESIGN.md §4.
 */
#include "types/types.h"

#include "types/quant_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

float imc_fp16_to_fp32(uint16_t h)
{
    return fp16_to_fp32_inline(h);
}

uint16_t imc_fp32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) { // inf or nan
        return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);
    }
    if (ax >= 0x477ff000u) { // rounds to >= 65520: overflow to inf
        return sign | 0x7c00;
    }
    if (ax < 0x38800000u) { // below the smallest normal half: round to a multiple of 2^-24
        float a;
        memcpy(&a, &ax, 4);
        return sign | (uint16_t)lrintf(ldexpf(a, 24));
    }
    uint32_t rounded = ax + 0xfffu + ((ax >> 13) & 1u); // round to nearest even
    return sign | (uint16_t)((rounded - 0x38000000u) >> 13);
}

float imc_bf16_to_fp32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t imc_fp32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((x >> 16) | 64); // quiet nan
    }
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

#define IMC_TR_DEC_ROW(NAME) imc_dequant_row_##NAME, NULL
#define IMC_TR_DEC_SEG(NAME) NULL, imc_decode_##NAME
#define IMC_TR_Q_Q(NAME) imc_quant_row_##NAME
#define IMC_TR_Q_NONE(NAME) NULL

static const struct imc_type_traits traits[IMC_TYPE_MAX_ID] = {
#define X(NAME, id, nm, bs, ts, rows, meta, dec, quant, tol)                                      \
    [id] = {nm, bs, ts, rows, meta, IMC_TR_DEC_##dec(NAME), IMC_TR_Q_##quant(NAME), tol},
#include "types/types.def"
#undef X
};

// Geometry the code relies on: plain ROW decoders take no meta and no interleave; block sizes
// are those of ggml's families; row meta, where there is any, is an fp16 (2 bytes) or f32 (4 or
// 8) row scale first (quant_priv.h: row_scale).
#define IMC_TR_IS_ROW_ROW 1
#define IMC_TR_IS_ROW_SEG 0
#define X(NAME, id, nm, bs, ts, rows, meta, dec, quant, tol)                                      \
    _Static_assert(id < IMC_TYPE_MAX_ID && (bs == 1 || bs == 32 || bs == 64 || bs == 128 ||      \
                                            bs == IMC_QK_K),                                    \
                   nm);                                                                            \
    _Static_assert(!IMC_TR_IS_ROW_##dec || (rows == 1 && meta == 0), nm);                        \
    _Static_assert(rows == 1 || rows == 4 || rows == 8 || rows == 16, nm);                      \
    _Static_assert(meta == 0 || meta == 2 || meta == 4 || meta == 8, nm);
#include "types/types.def"
#undef X

const struct imc_type_traits *imc_type_traits(uint32_t t)
{
    return t < IMC_TYPE_MAX_ID && traits[t].name ? &traits[t] : NULL;
}

bool imc_type_is_known(uint32_t t)
{
    return imc_type_traits(t) != NULL;
}

const char *imc_type_name(uint32_t t)
{
    return t < IMC_TYPE_MAX_ID && traits[t].name ? traits[t].name : "unknown";
}

int imc_type_from_name(const char *name)
{
    if (!name) {
        return -1;
    }
    for (int t = 0; t < IMC_TYPE_MAX_ID; t++) {
        if (imc_type_is_known((uint32_t)t) && strcasecmp(traits[t].name, name) == 0) {
            return t;
        }
    }
    return -1;
}

const char *imc_type_foreign_name(uint32_t t)
{
    static const struct {
        uint32_t id;
        const char *name;
    } names[] = {
#define N(id, name) {id, name},
#include "types/names.def"
#undef N
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].id == t) {
            return names[i].name;
        }
    }
    return NULL;
}

bool imc_type_row_bytes(uint32_t t, int64_t n, uint64_t *out)
{
    const struct imc_type_traits *x = imc_type_traits(t);
    if (!x || n < 0 || n % x->block_size != 0) {
        return false;
    }
    *out = (uint64_t)(n / x->block_size) * x->type_size + x->row_meta;
    return true;
}

void imc_type_decode(const struct imc_type_traits *tr, const void *mat, int64_t row,
                     int64_t n_per_row, int64_t k0, int64_t kn, float *dst)
{
    const uint64_t row_bytes =
        (uint64_t)(n_per_row / tr->block_size) * tr->type_size + tr->row_meta;
    const uint8_t *m = mat;
    if (tr->to_float) {
        const uint64_t off = (uint64_t)(k0 / tr->block_size) * tr->type_size;
        tr->to_float(m + (uint64_t)row * row_bytes + off, dst, kn);
        return;
    }
    const int64_t g = row / tr->rows;
    tr->seg(m + (uint64_t)g * (uint64_t)tr->rows * row_bytes, (int)(row - g * tr->rows), n_per_row,
            k0, kn, dst);
}

void imc_type_decode_rows(const struct imc_type_traits *tr, const void *mat, int64_t r0,
                          int64_t nr, int64_t n_per_row, float *dst)
{
    for (int64_t r = 0; r < nr; r++) {
        imc_type_decode(tr, mat, r0 + r, n_per_row, 0, n_per_row, dst + r * n_per_row);
    }
}
