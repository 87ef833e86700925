/*
 * model/types.c: the type traits table generated from model/types.def (the row functions live in
 * model/quant_*.c), name lookup, row sizes, and the fp16/bf16 conversions. DESIGN.md §4.
 */
#include "model/types.h"

#include "model/quant_priv.h"

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

static const struct imc_type_traits traits[IMC_TYPE_MAX_ID] = {
#define X(NAME, id, nm, bs, ts, tol)                                                               \
    [id] = {nm, bs, ts, imc_dequant_row_##NAME, imc_quant_row_##NAME, tol},
#include "model/types.def"
#undef X
};

#define X(NAME, id, nm, bs, ts, tol)                                                               \
    _Static_assert(id < IMC_TYPE_MAX_ID && (bs == 1 || bs == 32 || bs == IMC_QK_K), nm);
#include "model/types.def"
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

bool imc_type_row_bytes(uint32_t t, int64_t n, uint64_t *out)
{
    const struct imc_type_traits *x = imc_type_traits(t);
    if (!x || n < 0 || n % x->block_size != 0) {
        return false;
    }
    *out = (uint64_t)(n / x->block_size) * x->type_size;
    return true;
}
