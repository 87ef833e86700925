/*
 * types/quant_legacy.c: f32, f16, bf16 and the 32-element block types q4_0, q4_1, q5_0, q5_1,
 * q8_0 (byte layouts in types/quant_priv.h). One decode and one encode function per type; the
 * row loops are decode_rows / imc_qz_encode_rows. DESIGN.md §4.
 */
#include "types/quant_priv.h"

// --- plain floats (block size 1; quantization weights do not apply) ---

void imc_dequant_row_F32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void imc_quant_row_F32(const float *src, void *dst, int64_t n, const float *qw)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void imc_dequant_row_F16(const void *src, float *dst, int64_t n)
{
    const uint16_t *restrict s = src;
    float *restrict y = dst;
    for (int64_t i = 0; i < n; i++) {
        y[i] = fp16_to_fp32_inline(s[i]);
    }
}

void imc_quant_row_F16(const float *src, void *dst, int64_t n, const float *qw)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        d[i] = imc_fp32_to_fp16(src[i]);
    }
}

void imc_dequant_row_BF16(const void *src, float *dst, int64_t n)
{
    const uint16_t *restrict s = src;
    float *restrict y = dst;
    for (int64_t i = 0; i < n; i++) {
        y[i] = bits_to_f32((uint32_t)s[i] << 16);
    }
}

void imc_quant_row_BF16(const float *src, void *dst, int64_t n, const float *qw)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        d[i] = imc_fp32_to_bf16(src[i]);
    }
}

// --- decoders: element j < 16 is the low nibble of qs[j], element j + 16 the high nibble ---

// q4_0 {d; qs[16]}: x = d·(q - 8).
static void dec_q4_0(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((qs[j] & 15) - 8);
        y[j + 16] = d * (float)((qs[j] >> 4) - 8);
    }
}

// q4_1 {d; m; qs[16]}: x = d·q + m.
static void dec_q4_1(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b), m = load_fp16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(qs[j] & 15) + m;
        y[j + 16] = d * (float)(qs[j] >> 4) + m;
    }
}

// 1 << j (a table rather than a variable shift, so that the q5 loops vectorize on SSE2).
static const uint32_t bit32[32] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};

// q5_0 {d; qh[4]; qs[16]}: bit j of the u32 qh is bit 4 of element j; x = d·(q - 16).
static void dec_q5_0(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const uint32_t qh = load_u32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int q0 = (qs[j] & 15) | ((qh & bit32[j]) ? 16 : 0);
        int q1 = (qs[j] >> 4) | ((qh & bit32[j + 16]) ? 16 : 0);
        y[j] = d * (float)(q0 - 16);
        y[j + 16] = d * (float)(q1 - 16);
    }
}

// q5_1 {d; m; qh[4]; qs[16]}: x = d·q + m.
static void dec_q5_1(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b), m = load_fp16(b + 2);
    const uint32_t qh = load_u32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int q0 = (qs[j] & 15) | ((qh & bit32[j]) ? 16 : 0);
        int q1 = (qs[j] >> 4) | ((qh & bit32[j + 16]) ? 16 : 0);
        y[j] = d * (float)q0 + m;
        y[j + 16] = d * (float)q1 + m;
    }
}

// q8_0 {d; int8 qs[32]}: x = d·q.
static void dec_q8_0(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    for (int j = 0; j < 32; j++) {
        y[j] = d * (float)(int8_t)b[2 + j];
    }
}

IMC_DEFINE_DEQUANT_ROW(Q4_0, dec_q4_0)
IMC_DEFINE_DEQUANT_ROW(Q4_1, dec_q4_1)
IMC_DEFINE_DEQUANT_ROW(Q5_0, dec_q5_0)
IMC_DEFINE_DEQUANT_ROW(Q5_1, dec_q5_1)
IMC_DEFINE_DEQUANT_ROW(Q8_0, dec_q8_0)

// --- encoders ---

// Symmetric: stores d (fp16) at b and returns the codes q = L - lo in [0, hi - lo].
static void enc_sym32(const float *x, const float *w, int lo, int hi, int ntry, float step,
                      uint8_t *b, uint8_t *q)
{
    int8_t L[32];
    const float d = round_fp16(imc_qz_scale(32, x, w, lo, hi, (float)lo, ntry, step, L));
    const float id = d != 0 ? 1 / d : 0;
    store_fp16(b, d);
    for (int j = 0; j < 32; j++) {
        q[j] = (uint8_t)(round_clamp(x[j] * id, lo, hi) - lo);
    }
}

// Affine: stores d, m (fp16) at b and returns the codes q in [0, hi].
static void enc_aff32(const float *x, const float *w, int hi, uint8_t *b, uint8_t *q)
{
    float m;
    const float d = round_fp16(imc_qz_affine(32, x, w, hi, false, 18, 0.05f, q, &m));
    const float id = d != 0 ? 1 / d : 0;
    m = round_fp16(m);
    store_fp16(b, d);
    store_fp16(b + 2, m);
    for (int j = 0; j < 32; j++) {
        q[j] = (uint8_t)round_clamp((x[j] - m) * id, 0, hi);
    }
}

// Low nibbles of q[0..15], high nibbles of q[16..31]; bit 4 of q[j] into bit j of qh.
static void pack_nibbles(const uint8_t *q, uint8_t *qs, uint8_t *qh)
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
    }
    for (int j = 0; j < 32; j++) {
        h |= (uint32_t)(q[j] >> 4 & 1) << j;
    }
    if (qh) {
        for (int k = 0; k < 4; k++) {
            qh[k] = (uint8_t)(h >> 8 * k);
        }
    }
}

static void enc_q4_0(const float *x, const float *w, uint8_t *b)
{
    uint8_t q[32];
    enc_sym32(x, w, -8, 7, 9, 0.1f, b, q);
    pack_nibbles(q, b + 2, NULL);
}

static void enc_q4_1(const float *x, const float *w, uint8_t *b)
{
    uint8_t q[32];
    enc_aff32(x, w, 15, b, q);
    pack_nibbles(q, b + 4, NULL);
}

static void enc_q5_0(const float *x, const float *w, uint8_t *b)
{
    uint8_t q[32];
    enc_sym32(x, w, -16, 15, 9, 0.1f, b, q);
    pack_nibbles(q, b + 6, b + 2);
}

static void enc_q5_1(const float *x, const float *w, uint8_t *b)
{
    uint8_t q[32];
    enc_aff32(x, w, 31, b, q);
    pack_nibbles(q, b + 8, b + 4);
}

// q8_0 levels are symmetric [-127, 127] with the max-abs element near ±127.
static void enc_q8_0(const float *x, const float *w, uint8_t *b)
{
    uint8_t q[32];
    enc_sym32(x, w, -127, 127, 4, 1.0f, b, q);
    for (int j = 0; j < 32; j++) {
        b[2 + j] = (uint8_t)(int8_t)((int)q[j] - 127);
    }
}

IMC_DEFINE_QUANT_ROW(Q4_0, enc_q4_0)
IMC_DEFINE_QUANT_ROW(Q4_1, enc_q4_1)
IMC_DEFINE_QUANT_ROW(Q5_0, enc_q5_0)
IMC_DEFINE_QUANT_ROW(Q5_1, enc_q5_1)
IMC_DEFINE_QUANT_ROW(Q8_0, enc_q8_0)
