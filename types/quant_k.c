/*
 * types/quant_k.c: the K-quants q2_k, q3_k, q4_k, q5_k, q6_k (256-element super-blocks; byte
 * layouts in types/quant_priv.h). One decode and one encode function per type; the row loops
 * are decode_rows / imc_qz_encode_rows and the fits imc_qz_sb_* (types/quant_kfit.c).
 * DESIGN.md §4.
 *
 * Element order. q2_k and q3_k: element e = 128·h + 32·j + l (h < 2, j < 4, l < 32) is bits
 * 2j..2j+1 of qs[32·h + l]; q3_k's high bit is bit 4·h + j of hmask[l]. q4_k and q5_k: element
 * e = 64·p + 32·k + l is nibble k of qs[32·p + l]; q5_k's bit 4 is bit 2·p + k of qh[l]. q6_k:
 * e = 128·h + 32·k + l: low nibble (k < 2) or high nibble (k >= 2) of
 * ql[64·h + 32·(k & 1) + l], bits 4-5 from bits 2k..2k+1 of qh[32·h + l]. Sub-block of e:
 * e / 16 (q2, q3, q6), e / 32 (q4, q5).
 */
#include "types/quant_priv.h"

// 6-bit scale and min j (< 8) of q4_k / q5_k from the 12 packed bytes: j < 4 sit in the low 6
// bits of bytes j (scale) and j + 4 (min); j >= 4 take their low 4 bits from byte j + 4 and
// their top 2 bits from the top bits of bytes j - 4 (scale) and j (min).
static inline void get_scale_min(const uint8_t *s, int j, int *sc, int *mn)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

static void put_scale_min(uint8_t *s, const int *sc, const int *mn)
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
}

// q3_k's 6-bit scale i (< 16): low 4 bits in nibble i / 8 of byte i % 8, top 2 bits at bits
// 2·(i / 4) of byte 8 + i % 4; stored with offset 32.
static inline int q3_scale(const uint8_t *s, int i)
{
    int lo = (s[i % 8] >> (4 * (i / 8))) & 15, hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (lo | hi << 4) - 32;
}

static void dec_q2_k(const uint8_t *restrict b, float *restrict y)
{
    const uint8_t *sc = b, *qs = b + 16;
    const float d = load_fp16(b + 80), dmin = load_fp16(b + 82);
    for (int s = 0; s < 16; s++) { // sub-block s = 8h + 2j + half
        const int h = s / 8, j = (s % 8) / 2, half = s % 2;
        const float dl = d * (float)(sc[s] & 15), ml = dmin * (float)(sc[s] >> 4);
        const uint8_t *q = qs + 32 * h + 16 * half;
        for (int l = 0; l < 16; l++) {
            y[16 * s + l] = dl * (float)((q[l] >> (2 * j)) & 3) - ml;
        }
    }
}

static void dec_q3_k(const uint8_t *restrict b, float *restrict y)
{
    const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    const float d = load_fp16(b + 108);
    for (int s = 0; s < 16; s++) {
        const int h = s / 8, j = (s % 8) / 2, half = s % 2;
        const float dl = d * (float)q3_scale(sc, s);
        const uint8_t *q = qs + 32 * h + 16 * half, *m = hm + 16 * half;
        for (int l = 0; l < 16; l++) {
            int v = ((q[l] >> (2 * j)) & 3) | ((m[l] >> (4 * h + j)) & 1) << 2;
            y[16 * s + l] = dl * (float)(v - 4);
        }
    }
}

static void dec_q4_k(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b), dmin = load_fp16(b + 2);
    const uint8_t *qs = b + 16;
    for (int s = 0; s < 8; s++) { // sub-block s = 2p + k
        int sc, mn;
        get_scale_min(b + 4, s, &sc, &mn);
        const float dl = d * (float)sc, ml = dmin * (float)mn;
        const uint8_t *q = qs + 32 * (s / 2);
        const int shift = 4 * (s % 2);
        for (int l = 0; l < 32; l++) {
            y[32 * s + l] = dl * (float)((q[l] >> shift) & 15) - ml;
        }
    }
}

static void dec_q5_k(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b), dmin = load_fp16(b + 2);
    const uint8_t *qh = b + 16, *qs = b + 48;
    for (int s = 0; s < 8; s++) {
        int sc, mn;
        get_scale_min(b + 4, s, &sc, &mn);
        const float dl = d * (float)sc, ml = dmin * (float)mn;
        const uint8_t *q = qs + 32 * (s / 2);
        const int shift = 4 * (s % 2);
        for (int l = 0; l < 32; l++) {
            int v = ((q[l] >> shift) & 15) | ((qh[l] >> s) & 1) << 4;
            y[32 * s + l] = dl * (float)v - ml;
        }
    }
}

static void dec_q6_k(const uint8_t *restrict b, float *restrict y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const float d = load_fp16(b + 208);
    for (int s = 0; s < 16; s++) { // sub-block s = 8h + 2k + half
        const int h = s / 8, k = (s % 8) / 2, half = s % 2;
        const float dl = d * (float)(int8_t)b[192 + s];
        const uint8_t *lo = ql + 64 * h + 32 * (k & 1) + 16 * half, *hi = qh + 32 * h + 16 * half;
        const int shift = 4 * (k >> 1);
        for (int l = 0; l < 16; l++) {
            int v = ((lo[l] >> shift) & 15) | ((hi[l] >> (2 * k)) & 3) << 4;
            y[16 * s + l] = dl * (float)(v - 32);
        }
    }
}

IMC_DEFINE_DEQUANT_ROW(Q2_K, dec_q2_k)
IMC_DEFINE_DEQUANT_ROW(Q3_K, dec_q3_k)
IMC_DEFINE_DEQUANT_ROW(Q4_K, dec_q4_k)
IMC_DEFINE_DEQUANT_ROW(Q5_K, dec_q5_k)
IMC_DEFINE_DEQUANT_ROW(Q6_K, dec_q6_k)

// --- encoders: the inverse of the decoders' element order ---

static void enc_q2_k(const float *x, const float *w, uint8_t *b)
{
    struct sb_fit f;
    imc_qz_sb_affine(x, w, 16, 3, 15, &f);
    memset(b, 0, 84);
    for (int s = 0; s < 16; s++) {
        b[s] = (uint8_t)(f.sc[s] | f.mn[s] << 4);
    }
    for (int e = 0; e < IMC_QK_K; e++) {
        const int h = e / 128, j = (e % 128) / 32, l = e % 32;
        b[16 + 32 * h + l] |= (uint8_t)(f.L[e] << (2 * j));
    }
    store_fp16(b + 80, f.d);
    store_fp16(b + 82, f.dmin);
}

static void enc_q3_k(const float *x, const float *w, uint8_t *b)
{
    struct sb_fit f;
    imc_qz_sb_signed(x, w, 16, -4, 3, NULL, -32, 31, &f);
    memset(b, 0, 110);
    for (int e = 0; e < IMC_QK_K; e++) {
        const int h = e / 128, j = (e % 128) / 32, l = e % 32, v = f.L[e] + 4;
        b[32 + 32 * h + l] |= (uint8_t)((v & 3) << (2 * j));
        b[l] |= (uint8_t)((v >> 2) << (4 * h + j));
    }
    for (int i = 0; i < 16; i++) {
        const int v = f.sc[i] + 32;
        b[96 + i % 8] |= (uint8_t)((v & 15) << (4 * (i / 8)));
        b[104 + i % 4] |= (uint8_t)((v >> 4) << (2 * (i / 4)));
    }
    store_fp16(b + 108, f.d);
}

// q4_k (qbits 4) and q5_k (qbits 5) share all but qh.
static void enc_q45_k(const float *x, const float *w, uint8_t *b, int qbits)
{
    struct sb_fit f;
    imc_qz_sb_affine(x, w, 8, (1 << qbits) - 1, 63, &f);
    uint8_t *qh = b + 16, *qs = qbits == 5 ? b + 48 : b + 16;
    memset(b, 0, qbits == 5 ? 176 : 144);
    store_fp16(b, f.d);
    store_fp16(b + 2, f.dmin);
    put_scale_min(b + 4, f.sc, f.mn);
    for (int e = 0; e < IMC_QK_K; e++) {
        const int s = e / 32, l = e % 32;
        qs[32 * (s / 2) + l] |= (uint8_t)((f.L[e] & 15) << (4 * (s % 2)));
        if (qbits == 5) {
            qh[l] |= (uint8_t)((f.L[e] >> 4) << s);
        }
    }
}

static void enc_q4_k(const float *x, const float *w, uint8_t *b)
{
    enc_q45_k(x, w, b, 4);
}

static void enc_q5_k(const float *x, const float *w, uint8_t *b)
{
    enc_q45_k(x, w, b, 5);
}

static void enc_q6_k(const float *x, const float *w, uint8_t *b)
{
    struct sb_fit f;
    imc_qz_sb_signed(x, w, 16, -32, 31, NULL, -128, 127, &f);
    memset(b, 0, 210);
    for (int e = 0; e < IMC_QK_K; e++) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32, v = f.L[e] + 32;
        b[64 * h + 32 * (k & 1) + l] |= (uint8_t)((v & 15) << (4 * (k >> 1)));
        b[128 + 32 * h + l] |= (uint8_t)((v >> 4) << (2 * k));
    }
    for (int s = 0; s < 16; s++) {
        b[192 + s] = (uint8_t)(int8_t)f.sc[s];
    }
    store_fp16(b + 208, f.d);
}

IMC_DEFINE_QUANT_ROW(Q2_K, enc_q2_k)
IMC_DEFINE_QUANT_ROW(Q3_K, enc_q3_k)
IMC_DEFINE_QUANT_ROW(Q4_K, enc_q4_k)
IMC_DEFINE_QUANT_ROW(Q5_K, enc_q5_k)
IMC_DEFINE_QUANT_ROW(Q6_K, enc_q6_k)
