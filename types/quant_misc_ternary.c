/*
 * types/quant_misc_ternary.c: decoders of the ternary types (weights in {-1, 0, 1} times a
 * scale): llama.cpp's tq1_0 and tq2_0 (one fp16 scale per 256 elements) and ik_llama.cpp's
 * iq1_bn and iq2_bn (one scale per row, in the row's meta bytes). Read only. DESIGN.md §4.
 *
 * Base-3 bytes (tq1_0, iq1_bn): a byte holds up to 5 trits t_0..t_4 (0..2, value t - 1) as the
 * fixed-point fraction b ≈ 256·0.t_0t_1t_2t_3t_4 (base 3), rounded up. Multiplying by 3^n modulo
 * 256 drops the first n trits, and then 3·b' >> 8 is the leading trit of what is left: t_n.
 * 2-bit bytes (tq2_0, iq2_bn): four values per byte, bits 2l..2l+1, value q - 1.
 */
#include "types/quant_priv.h"

// Trit at position n of base-3 byte b, given p3 = 3^n.
static inline int trit(uint8_t b, unsigned p3)
{
    return ((uint8_t)(b * p3) * 3) >> 8;
}

// tq1_0 {u8 qs[48]; u8 qh[4]; fp16 d}, 256 elements: element 32·n + m (n < 5, m < 32) is trit n
// of qs[m]; element 160 + 16·n + m (m < 16) trit n of qs[32 + m]; element 240 + 4·n + j
// (n < 4, j < 4) trit n of qh[j]. x = (t - 1)·d.
static void dec_tq1_0(const uint8_t *restrict b, float *restrict y)
{
    const uint8_t *qs = b, *qh = b + 48;
    const float d = load_fp16(b + 52);
    unsigned p3 = 1;
    for (int n = 0; n < 5; n++, p3 *= 3) {
        for (int m = 0; m < 32; m++) {
            y[32 * n + m] = (float)(trit(qs[m], p3) - 1) * d;
        }
        for (int m = 0; m < 16; m++) {
            y[160 + 16 * n + m] = (float)(trit(qs[32 + m], p3) - 1) * d;
        }
        if (n < 4) {
            for (int j = 0; j < 4; j++) {
                y[240 + 4 * n + j] = (float)(trit(qh[j], p3) - 1) * d;
            }
        }
    }
}

IMC_DEFINE_DEQUANT_ROW(TQ1_0, dec_tq1_0)

// tq2_0 {u8 qs[64]; fp16 d}, 256 elements: element 128·h + 32·l + m (h < 2, l < 4, m < 32) is
// bits 2l..2l+1 of qs[32·h + m]. x = (q - 1)·d.
static void dec_tq2_0(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b + 64);
    for (int h = 0; h < 2; h++) {
        for (int l = 0; l < 4; l++) {
            for (int m = 0; m < 32; m++) {
                y[128 * h + 32 * l + m] = (float)(((b[32 * h + m] >> (2 * l)) & 3) - 1) * d;
            }
        }
    }
}

IMC_DEFINE_DEQUANT_ROW(TQ2_0, dec_tq2_0)

// iq1_bn: a row is {fp16 d} and then 13-byte blocks {u8 ql[12]; u8 extra} of 64 elements. In
// quarter i (< 4) of a block, element 16·i + 5·k + j (k < 3, j < 5) is trit 4 - j of
// ql[3·i + k] and element 16·i + 15 is trit 4 - i of extra. x = d·(t - 1).
static void dec_iq1_bn(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    unsigned p3 = 1; // 3^n: trit n is element j = 4 - n
    for (int n = 0; n < 5; n++, p3 *= 3) {
        for (int q = 0; q < 4; q++) {
            for (int k = 0; k < 3; k++) {
                y[16 * q + 5 * k + 4 - n] = d * (float)(trit(b[3 * q + k], p3) - 1);
            }
        }
        if (n > 0) {
            y[16 * (4 - n) + 15] = d * (float)(trit(b[12], p3) - 1);
        }
    }
}

// iq2_bn: a row is {f32 d} and then 16-byte blocks of 64 elements: element 16·l + j (l < 4,
// j < 16) is bits 2l..2l+1 of byte j. x = d·(q - 1).
static void dec_iq2_bn(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    for (int l = 0; l < 4; l++) {
        for (int j = 0; j < 16; j++) {
            y[16 * l + j] = d * (float)(((b[j] >> (2 * l)) & 3) - 1);
        }
    }
}

IMC_DEFINE_DECODE(IQ1_BN, dec_iq1_bn)
IMC_DEFINE_DECODE(IQ2_BN, dec_iq2_bn)
