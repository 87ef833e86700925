/*
 * model/types.c: the type traits table generated from model/types.def, and half-precision
 * conversions. Interim version written by the lead so that everything links; the full set of
 * quantizers lands with the types work.
 */
#include "model/types.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

float imc_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { // subnormal: value = man * 2^-24
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
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

static void f32_to_float(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f32_from_float(const float *src, void *dst, int64_t n, const float *qw)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f16_to_float(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) {
        dst[i] = imc_fp16_to_fp32(s[i]);
    }
}

static void f16_from_float(const float *src, void *dst, int64_t n, const float *qw)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        d[i] = imc_fp32_to_fp16(src[i]);
    }
}

static void bf16_to_float(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) {
        dst[i] = imc_bf16_to_fp32(s[i]);
    }
}

static void bf16_from_float(const float *src, void *dst, int64_t n, const float *qw)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        d[i] = imc_fp32_to_bf16(src[i]);
    }
}

// q8_0: blocks of 32 as {fp16 d; int8 q[32]}, x = d * q.
static void q8_0_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += 32, b += 34) {
        uint16_t h;
        memcpy(&h, b, 2);
        float d = imc_fp16_to_fp32(h);
        for (int j = 0; j < 32; j++) {
            dst[i + j] = d * (float)(int8_t)b[2 + j];
        }
    }
}

static void q8_0_from_float(const float *src, void *dst, int64_t n, const float *qw)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += 32, b += 34) {
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            amax = fmaxf(amax, fabsf(src[i + j]));
        }
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0;
        uint16_t h = imc_fp32_to_fp16(d);
        memcpy(b, &h, 2);
        for (int j = 0; j < 32; j++) {
            b[2 + j] = (uint8_t)(int8_t)lrintf(src[i + j] * id);
        }
    }
}


static const struct imc_type_traits traits[IMC_TYPE_MAX_ID] = {
    [IMC_TYPE_F32] = {"f32", 1, 4, f32_to_float, f32_from_float, 0.0},
    [IMC_TYPE_F16] = {"f16", 1, 2, f16_to_float, f16_from_float, 0.001},
    [IMC_TYPE_BF16] = {"bf16", 1, 2, bf16_to_float, bf16_from_float, 0.008},
    [IMC_TYPE_Q8_0] = {"q8_0", 32, 34, q8_0_to_float, q8_0_from_float, 0.01},
#define X(NAME, id, nm, bs, ts, tol) X_##NAME(id, nm, bs, ts, tol)
#define X_F32(...)
#define X_F16(...)
#define X_BF16(...)
#define X_Q8_0(...)
#define X_Q4_0(id, nm, bs, ts, tol) [id] = {nm, bs, ts, NULL, NULL, tol},
#define X_Q4_1 X_Q4_0
#define X_Q5_0 X_Q4_0
#define X_Q5_1 X_Q4_0
#define X_Q2_K X_Q4_0
#define X_Q3_K X_Q4_0
#define X_Q4_K X_Q4_0
#define X_Q5_K X_Q4_0
#define X_Q6_K X_Q4_0
#define X_IQ4_NL X_Q4_0
#define X_IQ4_XS X_Q4_0
#include "model/types.def"
#undef X
};

const struct imc_type_traits *imc_type_traits(uint32_t t)
{
    return t < IMC_TYPE_MAX_ID && traits[t].name && traits[t].to_float ? &traits[t] : NULL;
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
