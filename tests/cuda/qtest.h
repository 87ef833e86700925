/*
 * tests/cuda/qtest.h: shared pieces of the weight-kernel tests (test_dequant, test_get_rows,
 * test_mmv, test_mmq): the ways to run the kernels (the emulator in each thread order, the device
 * when there is one), device buffers, and weight matrices of every type made valid per type.
 *
 * Weights: even rows come from imc's own quantizer (types/quant_*.c) on a Gaussian row with an
 * outlier; odd rows are random bytes whose fp16 scale fields are overwritten with finite values
 * (so every code, sub-scale and sign pattern occurs, not only those a quantizer picks).
 */
#ifndef IMC_TESTS_CUDA_QTEST_H
#define IMC_TESTS_CUDA_QTEST_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kcheck.h"
#include "kernels/cuda/emu/cuemu_api.h"
#include "types/types.h"

#undef IMC_CUDA_FN // launch.h's default, if an earlier header brought it
#define IMC_CUDA_FN(name) imc_cuemu_##name
#include "kernels/cuda/kern_decl.h"
#undef IMC_CUDA_FN
#if IMC_HAVE_CUDA
#define IMC_CUDA_FN(name) imc_cuda_##name
#include "kernels/cuda/kern_decl.h"
#undef IMC_CUDA_FN
#endif // IMC_HAVE_CUDA

// One way to run the launchers: the emulator, or the device.
struct kt_backend {
    const char *name;
    enum imc_status (*dev_alloc)(size_t bytes, void **p);
    void (*dev_free)(void *p);
    enum imc_status (*copy_to_dev)(void *stream, void *dst, const void *src, size_t bytes);
    enum imc_status (*copy_to_host)(void *stream, void *dst, const void *src, size_t bytes);
    enum imc_status (*sync)(void *stream);
    bool (*supports_type)(enum imc_type type);
    enum imc_status (*dequantize)(void *stream, enum imc_type type, const void *w,
                                  int64_t n_per_row, int64_t r0, int64_t nr, enum imc_type dst_type,
                                  void *dst);
    enum imc_status (*get_rows)(void *stream, enum imc_type type, const void *w, int64_t n_rows,
                                int64_t n_per_row, const int32_t *ids, int64_t n_ids, float *dst);
    enum imc_status (*mmv)(void *stream, enum imc_type type, const void *w, int64_t n_out,
                           int64_t n_in, const float *x, int n_tok, float *y);
    enum imc_status (*mmq_group)(void *stream, enum imc_type type,
                                 const struct imc_cuda_mmv_job *jobs, int n_jobs, int64_t n_out,
                                 int64_t n_in, int64_t ldx, int64_t ldy);
};

#define KT_BACKEND(label, p)                                                                       \
    {                                                                                              \
        label, p##dev_alloc, p##dev_free, p##copy_to_dev, p##copy_to_host, p##sync,                \
            p##supports_type, p##dequantize, p##get_rows, p##mmv, p##mmq_group                     \
    }

static const struct kt_backend kt_emu = KT_BACKEND("emu", imc_cuemu_);

// The device backend, or NULL (with a "SKIP-PART: no GPU" line) when the build or host has none.
static inline const struct kt_backend *kt_device(void)
{
#if IMC_HAVE_CUDA
    static const struct kt_backend dev = KT_BACKEND("gpu", imc_cuda_);
    int n = 0;
    if (imc_cuda_device_count(&n) == IMC_OK && n > 0) {
        return &dev;
    }
#endif // IMC_HAVE_CUDA
    printf("SKIP-PART: no GPU (the emulated kernels ran; the device part did not)\n");
    return NULL;
}

// The emulator orders every emulated case runs in.
static const enum cuemu_order kt_orders[CUEMU_ORDER_COUNT] = {CUEMU_FORWARD, CUEMU_REVERSE,
                                                              CUEMU_SHUFFLE};

// The first plain type id >= t that b has kernels for, or IMC_TYPE_MAX_ID: iterate with
// for (t = kt_next_type(b, 0); t < IMC_TYPE_MAX_ID; t = kt_next_type(b, t + 1)). The interleaved
// types' decoders read row forms, not file rows (test_dequant's rowforms, test_table).
static inline uint32_t kt_next_type(const struct kt_backend *b, uint32_t t)
{
    while (t < IMC_TYPE_MAX_ID && !(imc_type_traits(t) && imc_type_traits(t)->rows == 1 &&
                                    b->supports_type((enum imc_type)t))) {
        t++;
    }
    return t;
}

// A test's cases for one type, run on b; how names the run in messages ("forward", "gpu").
typedef void (*kt_type_fn)(const struct kt_backend *b, enum imc_type type, const char *how);

// Runs fn for every type with kernels: in the emulator once per thread order, then on dev
// (when not NULL).
static inline void kt_run_types(const struct kt_backend *dev, kt_type_fn fn)
{
    for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
        cuemu_set_order(kt_orders[o], 7u + (unsigned)o);
        for (uint32_t t = kt_next_type(&kt_emu, 0); t < IMC_TYPE_MAX_ID;
             t = kt_next_type(&kt_emu, t + 1)) {
            fn(&kt_emu, (enum imc_type)t, cuemu_order_name(kt_orders[o]));
        }
    }
    for (uint32_t t = dev ? kt_next_type(dev, 0) : IMC_TYPE_MAX_ID; t < IMC_TYPE_MAX_ID;
         t = kt_next_type(dev, t + 1)) {
        fn(dev, (enum imc_type)t, "gpu");
    }
}

// A copy of n host bytes in device memory of b (free with b->dev_free), or NULL.
static inline void *kt_upload(const struct kt_backend *b, const void *src, size_t n)
{
    void *p = NULL;
    if (b->dev_alloc(n > 0 ? n : 1, &p) != IMC_OK) {
        return NULL;
    }
    if (n > 0 && b->copy_to_dev(NULL, p, src, n) != IMC_OK) {
        b->dev_free(p);
        return NULL;
    }
    return p;
}

// Copies n bytes of device memory src back to host dst, after the stream's work; IMC_OK or not.
static inline enum imc_status kt_download(const struct kt_backend *b, void *dst, const void *src,
                                          size_t n)
{
    IMC_TRY(b->sync(NULL));
    IMC_TRY(b->copy_to_host(NULL, dst, src, n));
    return b->sync(NULL);
}

// The scale fields of one block (the rest of a block is codes and small scales): where, and
// what they hold.
struct kt_scale_fields {
    enum imc_type type;
    int n;      // fields
    int off[2]; // their byte offsets
    int width;  // 2: fp16, 4: f32, 1: an E8M0 exponent byte
};

static const struct kt_scale_fields kt_fields[] = {
    {IMC_TYPE_Q4_0, 1, {0, 0}, 2},
    {IMC_TYPE_Q4_1, 2, {0, 2}, 2},
    {IMC_TYPE_Q5_0, 1, {0, 0}, 2},
    {IMC_TYPE_Q5_1, 2, {0, 2}, 2},
    {IMC_TYPE_Q8_0, 1, {0, 0}, 2},
    {IMC_TYPE_Q2_K, 2, {80, 82}, 2},
    {IMC_TYPE_Q3_K, 1, {108, 0}, 2},
    {IMC_TYPE_Q4_K, 2, {0, 2}, 2},
    {IMC_TYPE_Q5_K, 2, {0, 2}, 2},
    {IMC_TYPE_Q6_K, 1, {208, 0}, 2},
    {IMC_TYPE_IQ4_NL, 1, {0, 0}, 2},
    {IMC_TYPE_IQ4_XS, 1, {0, 0}, 2},
    {IMC_TYPE_IQ2_XXS, 1, {0, 0}, 2},
    {IMC_TYPE_IQ2_XS, 1, {0, 0}, 2},
    {IMC_TYPE_IQ2_S, 1, {0, 0}, 2},
    {IMC_TYPE_IQ3_XXS, 1, {0, 0}, 2},
    {IMC_TYPE_IQ3_S, 1, {0, 0}, 2},
    {IMC_TYPE_IQ1_S, 1, {0, 0}, 2},
    {IMC_TYPE_IQ2_K, 1, {0, 0}, 2},
    {IMC_TYPE_IQ3_K, 1, {0, 0}, 2},
    {IMC_TYPE_IQ4_K, 1, {0, 0}, 2},
    {IMC_TYPE_IQ5_K, 1, {0, 0}, 2},
    {IMC_TYPE_IQ6_K, 1, {0, 0}, 2},
    {IMC_TYPE_IQ2_KS, 0, {0, 0}, 2}, // these ten and q8_kv: the row scale (row meta) is set
    {IMC_TYPE_IQ3_KS, 0, {0, 0}, 2},
    {IMC_TYPE_IQ4_KS, 0, {0, 0}, 2},
    {IMC_TYPE_IQ5_KS, 0, {0, 0}, 2},
    {IMC_TYPE_IQ4_KSS, 0, {0, 0}, 2},
    {IMC_TYPE_IQ2_KL, 0, {0, 0}, 2},
    {IMC_TYPE_IQ1_KT, 0, {0, 0}, 2},
    {IMC_TYPE_IQ2_KT, 0, {0, 0}, 2},
    {IMC_TYPE_IQ3_KT, 0, {0, 0}, 2},
    {IMC_TYPE_IQ4_KT, 0, {0, 0}, 2},
    {IMC_TYPE_Q6_0, 1, {0, 0}, 2},
    {IMC_TYPE_Q8_K, 1, {0, 0}, 4},
    {IMC_TYPE_MXFP4, 1, {0, 0}, 1},
    {IMC_TYPE_Q8_KV, 0, {0, 0}, 2},
    {IMC_TYPE_TQ1_0, 1, {52, 0}, 2},
    {IMC_TYPE_TQ2_0, 1, {64, 0}, 2},
    {IMC_TYPE_IQ1_BN, 0, {0, 0}, 2},
    {IMC_TYPE_IQ2_BN, 0, {0, 0}, 2},
    {IMC_TYPE_IQ1_M, 0, {0, 0}, 2}, // its fp16 d is the top nibbles of bytes 49, 51, 53, 55
};

static inline const struct kt_scale_fields *kt_fields_of(enum imc_type type)
{
    for (size_t i = 0; i < sizeof(kt_fields) / sizeof(kt_fields[0]); i++) {
        if (kt_fields[i].type == type) {
            return &kt_fields[i];
        }
    }
    return NULL;
}

// Whether kt_weights can make rows of type: a quantizer, or known scale fields.
static inline bool kt_can_make(enum imc_type type)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    return tr && tr->rows == 1 && (tr->from_float || kt_fields_of(type));
}

// Returns a new matrix of rows x n elements of type (free with free); *rb: bytes per row.
static inline uint8_t *kt_weights(struct krng *r, enum imc_type type, int64_t rows, int64_t n,
                                  uint64_t *rb)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    const struct kt_scale_fields *ff = kt_fields_of(type);
    if (!imc_type_row_bytes((uint32_t)type, n, rb)) {
        return NULL;
    }
    uint8_t *w = malloc((size_t)(*rb * (uint64_t)rows) + 1);
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; w && x && i < rows; i++) {
        uint8_t *row = w + (uint64_t)i * *rb;
        if (tr->from_float && (i % 2 == 0 || !ff)) {
            for (int64_t j = 0; j < n; j++) {
                x[j] = krng_normal(r, 0.02f * (float)(1 + i % 5));
            }
            x[(i * 13) % n] *= 30.0f;
            tr->from_float(x, row, n, NULL);
            continue;
        }
        for (uint64_t j = 0; j < *rb; j++) {
            row[j] = (uint8_t)krng_next(r);
        }
        if (tr->row_meta > 0) { // a finite row scale: fp16 (2 bytes of meta) or f32 (4 or 8)
            const float d = krng_normal(r, 0.01f);
            const uint16_t h = imc_fp32_to_fp16(d);
            memcpy(row, tr->row_meta == 2 ? (const void *)&h : (const void *)&d,
                   tr->row_meta == 2 ? 2 : 4);
        }
        for (int64_t b = 0; b < n / tr->block_size; b++) {
            uint8_t *blk = row + tr->row_meta + (size_t)b * tr->type_size;
            for (int f = 0; f < ff->n; f++) {
                const float d = krng_normal(r, 0.01f);
                const uint16_t h = imc_fp32_to_fp16(d);
                if (ff->width == 1) { // 2^(e - 128) for e in [100, 131]: 2^-28 .. 2^3
                    blk[ff->off[f]] = (uint8_t)(100 + krng_next(r) % 32);
                } else {
                    memcpy(blk + ff->off[f], ff->width == 2 ? (const void *)&h : (const void *)&d,
                           (size_t)ff->width);
                }
            }
            const uint16_t h = imc_fp32_to_fp16(krng_normal(r, 0.01f));
            for (int k = 0; type == IMC_TYPE_IQ1_M && k < 4; k++) {
                blk[49 + 2 * k] = (uint8_t)((blk[49 + 2 * k] & 15) | ((h >> 4 * k) & 15) << 4);
            }
        }
    }
    free(x);
    return w;
}

// Returns a new array of n floats, N(0, 1) with a zero run and an outlier (free with free).
static inline float *kt_acts(struct krng *r, int64_t n)
{
    float *x = kalloc_rand(r, n, 1.0f);
    for (int64_t i = 0; x && i < n / 3 && i < 40; i++) {
        x[n / 3 + i] = 0.0f;
    }
    if (x && n > 0) {
        x[(n * 5) / 7] *= 50.0f;
    }
    return x;
}

// Bitwise equality of n 4-byte values (so NaN payloads and -0 count); reports the first few.
static inline int kt_cmp_bits32(const char *what, const void *a, const void *b, int64_t n)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u, v;
        memcpy(&u, (const uint8_t *)a + 4 * i, 4);
        memcpy(&v, (const uint8_t *)b + 4 * i, 4);
        if (u != v && bad++ < 3) {
            printf("  %s [%lld]: 0x%08x vs ref 0x%08x\n", what, (long long)i, u, v);
        }
    }
    return bad;
}

static inline int kt_cmp_bits16(const char *what, const uint16_t *a, const uint16_t *b, int64_t n)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (a[i] != b[i] && bad++ < 3) {
            printf("  %s [%lld]: 0x%04x vs ref 0x%04x\n", what, (long long)i, a[i], b[i]);
        }
    }
    return bad;
}

// Values of y (n) outside ref ± tol: their number (the first 3 printed, prefixed by what).
static inline int kt_outside(const char *what, const float *y, const double *ref, const double *tol,
                             int64_t n)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)y[i] - ref[i]);
        if (!(d <= tol[i]) && bad++ < 3) {
            printf("  %s [%lld]: %.9g vs ref %.9g (|d| %.3g > tol %.3g)\n", what, (long long)i,
                   y[i], ref[i], d, tol[i]);
        }
    }
    return bad;
}

// kt_outside passes exact values and catches one moved by twice its tolerance.
static inline void kt_test_checker(void)
{
    const double ref[2] = {1.0, -3.0}, tol[2] = {1e-6, 2e-6};
    float y[2] = {1.0f, -3.0f};
    CHECK(kt_outside("self", y, ref, tol, 2) == 0, "checker: exact values pass");
    y[1] = (float)(ref[1] - 2 * tol[1]);
    printf("  self-check of the checker (one mismatch expected below):\n");
    CHECK(kt_outside("self", y, ref, tol, 2) == 1, "checker: twice the tolerance is caught");
}

#endif // IMC_TESTS_CUDA_QTEST_H
