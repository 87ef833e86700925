/*
 * types/rk_kquant.c: ik_llama.cpp's four-row interleaved K-quants q2_k_r4, q3_k_r4, q4_k_r4,
 * q5_k_r4 and q6_k_r4 (read only). Each 256-column block of a group of 4 rows is one
 * interleaved block of 4 x type_size bytes (no per-row meta) that holds the 4 rows' scales
 * together and their quants in runs of 4 consecutive elements per row; the layouts are at the
 * decoders (r: the row inside the group; offsets in bytes from the interleaved block). The values
 * are the plain K-quants' (types/quant_k.c): same scales and formulas, other places.
 * DESIGN.md §4.
 */
#include "types/quant_priv.h"

/*
 * q2_k_r4, 336 bytes: fp16 d[4] @0, fp16 dmin[4] @8, u8 scales[64] @16, u8 qs[256] @80.
 * Sub-block s < 16 (16 elements) of row r: scale byte scales[4s + r] (low nibble: scale, high:
 * min). Element 16s + 4j + i (i, j < 4): bits 2j..2j+1 of qs[16s + 4r + i].
 * x = d·sc·q - dmin·m.
 */
static void dec_q2_k_r4(const uint8_t *restrict b, int r, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * r), dmin = load_fp16(b + 8 + 2 * r);
    for (int s = 0; s < 16; s++) {
        const uint8_t sc = b[16 + 4 * s + r];
        const float dl = d * (float)(sc & 15), ml = dmin * (float)(sc >> 4);
        const uint8_t *q = b + 80 + 16 * s + 4 * r;
        for (int j = 0; j < 4; j++) {
            for (int i = 0; i < 4; i++) {
                y[16 * s + 4 * j + i] = dl * (float)((q[i] >> (2 * j)) & 3) - ml;
            }
        }
    }
}

/*
 * q3_k_r4, 440 bytes: fp16 d[4] @0, u8 scales_h[16] @8, u8 scales_l[32] @24, u8 qh[128] @56,
 * u8 qs[256] @184. Sub-block s < 16 of row r, t = 4s + r: 6-bit scale with low 4 bits in nibble
 * t / 32 of scales_l[t % 32], top 2 bits at bits 2·(t / 16) of scales_h[t % 16], offset 32.
 * Element 16s + 4j + i: low 2 bits are bits 2j..2j+1 of qs[16s + 4r + i], bit 2 is bit
 * 4·(s % 2) + j of qh[16·(s / 2) + 4r + i]. x = d·(sc - 32)·(q - 4).
 */
static void dec_q3_k_r4(const uint8_t *restrict b, int r, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * r);
    const uint8_t *sh = b + 8, *sl = b + 24;
    for (int s = 0; s < 16; s++) {
        const int t = 4 * s + r;
        const int lo = (sl[t % 32] >> (4 * (t / 32))) & 15;
        const int sc = lo | ((sh[t % 16] >> (2 * (t / 16))) & 3) << 4;
        const float dl = d * (float)(sc - 32);
        const uint8_t *q = b + 184 + 16 * s + 4 * r, *h = b + 56 + 16 * (s / 2) + 4 * r;
        const int hs = 4 * (s % 2);
        for (int j = 0; j < 4; j++) {
            for (int i = 0; i < 4; i++) {
                const int v = ((q[i] >> (2 * j)) & 3) | ((h[i] >> (hs + j)) & 1) << 2;
                y[16 * s + 4 * j + i] = dl * (float)(v - 4);
            }
        }
    }
}

// The 6-bit scale and min of sub-block ib (32 elements) of row r in q4_k_r4 / q5_k_r4: t = 4·ib
// + r; low 4 bits are the nibbles of scales_l[t] (scale low, min high), top 2 bits of each come
// from nibble t / 16 of scales_h[t % 16] (bits 0-1: scale, bits 2-3: min).
static inline void k_r4_scale_min(const uint8_t *b, int ib, int r, int *sc, int *mn)
{
    const int t = 4 * ib + r, l = b[32 + t], h = b[16 + t % 16] >> (4 * (t / 16));
    *sc = (l & 15) | (h & 3) << 4;
    *mn = (l >> 4) | ((h >> 2) & 3) << 4;
}

/*
 * q4_k_r4, 576 bytes: fp16 d[4] @0, fp16 dmin[4] @8, u8 scales_h[16] @16, u8 scales_l[32] @32
 * (k_r4_scale_min), u8 qs[512] @64. Sub-block ib < 8 of row r: for c < 4, nibble n < 2 of
 * qs[64·ib + 16c + 4r + i] (i < 4) is element 32·ib + 16·(c % 2) + 4·(c / 2) + 8n + i.
 * x = d·sc·q - dmin·m.
 */
static void dec_q4_k_r4(const uint8_t *restrict b, int r, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * r), dmin = load_fp16(b + 8 + 2 * r);
    for (int ib = 0; ib < 8; ib++) {
        int sc, mn;
        k_r4_scale_min(b, ib, r, &sc, &mn);
        const float dl = d * (float)sc, ml = dmin * (float)mn;
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = b + 64 + 64 * ib + 16 * c + 4 * r;
            float *yc = y + 32 * ib + 16 * (c % 2) + 4 * (c / 2);
            for (int i = 0; i < 4; i++) {
                yc[i] = dl * (float)(q[i] & 15) - ml;
                yc[i + 8] = dl * (float)(q[i] >> 4) - ml;
            }
        }
    }
}

/*
 * q5_k_r4, 704 bytes: as q4_k_r4 with u8 qh[128] @64 and qs[512] @192. Bit 4 of the element of
 * nibble n of qs[64·ib + 16c + 4r + i] is bit 4·(c % 2) + 2·(c / 2) + n of qh[16·ib + 4r + i].
 */
static void dec_q5_k_r4(const uint8_t *restrict b, int r, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * r), dmin = load_fp16(b + 8 + 2 * r);
    for (int ib = 0; ib < 8; ib++) {
        int sc, mn;
        k_r4_scale_min(b, ib, r, &sc, &mn);
        const float dl = d * (float)sc, ml = dmin * (float)mn;
        const uint8_t *h = b + 64 + 16 * ib + 4 * r;
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = b + 192 + 64 * ib + 16 * c + 4 * r;
            const int hs = 4 * (c % 2) + 2 * (c / 2);
            float *yc = y + 32 * ib + 16 * (c % 2) + 4 * (c / 2);
            for (int i = 0; i < 4; i++) {
                const int lo = (q[i] & 15) | ((h[i] >> hs) & 1) << 4;
                const int hi = (q[i] >> 4) | ((h[i] >> (hs + 1)) & 1) << 4;
                yc[i] = dl * (float)lo - ml;
                yc[i + 8] = dl * (float)hi - ml;
            }
        }
    }
}

/*
 * q6_k_r4, 840 bytes: fp16 d[4] @0, i8 scales[64] @8, u8 qh[256] @72, u8 ql[512] @328.
 * Sub-block ib < 8 of row r, c < 4, n < 2, i < 4: element 32·ib + 16·(c % 2) + 4·(c / 2) + 8n +
 * i has low 4 bits nibble n of ql[64·ib + 16c + 4r + i], bits 4-5 bits 2·(2·(c / 2) + n) of
 * qh[32·ib + 16·(c % 2) + 4r + i], scale scales[8·ib + 4·(c % 2) + r]. x = d·sc·(q - 32).
 */
static void dec_q6_k_r4(const uint8_t *restrict b, int r, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * r);
    for (int ib = 0; ib < 8; ib++) {
        for (int c = 0; c < 4; c++) {
            const float dl = d * (float)(int8_t)b[8 + 8 * ib + 4 * (c % 2) + r];
            const uint8_t *q = b + 328 + 64 * ib + 16 * c + 4 * r;
            const uint8_t *h = b + 72 + 32 * ib + 16 * (c % 2) + 4 * r;
            const int hs = 4 * (c / 2);
            float *yc = y + 32 * ib + 16 * (c % 2) + 4 * (c / 2);
            for (int i = 0; i < 4; i++) {
                const int lo = (q[i] & 15) | ((h[i] >> hs) & 3) << 4;
                const int hi = (q[i] >> 4) | ((h[i] >> (hs + 2)) & 3) << 4;
                yc[i] = dl * (float)(lo - 32);
                yc[i + 8] = dl * (float)(hi - 32);
            }
        }
    }
}

IMC_DEFINE_DECODE(Q2_K_R4, dec_q2_k_r4)
IMC_DEFINE_DECODE(Q3_K_R4, dec_q3_k_r4)
IMC_DEFINE_DECODE(Q4_K_R4, dec_q4_k_r4)
IMC_DEFINE_DECODE(Q5_K_R4, dec_q5_k_r4)
IMC_DEFINE_DECODE(Q6_K_R4, dec_q6_k_r4)
