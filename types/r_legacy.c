/*
 * types/r_legacy.c: ik_llama.cpp's row-interleaved forms of the 32-element block types,
 * q4_0_r8, q5_0_r4, q6_0_r4, q8_0_r8, iq4_nl_r4 and mxfp4_r8 (read only). A group of R rows
 * (R = 4 or 8) stores, for each 32-column block index ib, one interleaved block of R x type_size
 * bytes: the R scales (fp16, row k's at 2k; mxfp4_r8: one e8m0 byte each, row k's at k), then
 * the quants of the R rows woven together in runs of 4 bytes (row k's run of a chunk sits at
 * offset 4k inside it). Block ib of the group starts at ib·R·type_size. The byte layout and the
 * column order of each type are at its decoder. DESIGN.md §4.
 */
#include "types/nl_tables.h"
#include "types/quant_priv.h"

// q4_0_r8 (144 bytes: fp16 d[8]; u8 qs[128]). Chunk c (0..3) of 32 bytes holds 4 bytes per row;
// byte i (0..3) of row k's run, qs[32c + 4k + i], carries column 4c + i in its low nibble and
// column 4c + i + 16 in its high one; x = d·(q - 8).
static void dec_q4_0_r8(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * k);
    const uint8_t *qs = b + 16 + 4 * k;
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 4; i++) {
            const uint8_t q = qs[32 * c + i];
            y[4 * c + i] = d * (float)((q & 15) - 8);
            y[4 * c + i + 16] = d * (float)((q >> 4) - 8);
        }
    }
}

// q8_0_r8 (272 bytes: fp16 d[8]; i8 qs[256]). Columns 0..15 lie in the first 128 bytes, 16..31
// in the second: column 4c + i of row k is qs[32c + 4k + i], column 4c + i + 16 is 128 further
// on; x = d·q.
static void dec_q8_0_r8(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * k);
    const int8_t *qs = (const int8_t *)(b + 16 + 4 * k);
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 4; i++) {
            y[4 * c + i] = d * (float)qs[32 * c + i];
            y[4 * c + i + 16] = d * (float)qs[128 + 32 * c + i];
        }
    }
}

// Column of the low nibble of byte i of row k's run in 16-byte chunk c (0..3) of the 4-row
// nibble types (q5_0_r4, q6_0_r4, iq4_nl_r4): chunks 0, 1, 2, 3 start at columns 0, 16, 4, 20;
// the high nibble is the column 8 further on.
static inline int r4_col(int c, int i)
{
    return 16 * (c & 1) + 4 * (c >> 1) + i;
}

// q5_0_r4 (88 bytes: fp16 d[4]; u8 qh[16]; u8 qs[64]). Byte i of row k's run in chunk c is
// qs[16c + 4k + i]: its nibbles are the low 4 bits of columns r4_col(c, i) and that + 8; their
// 5th bits are bits c and c + 4 of qh[4k + i]; x = d·q - 16·d (the reference's form).
static void dec_q5_0_r4(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * k), m = -16.0f * d;
    const uint8_t *qh = b + 8 + 4 * k, *qs = b + 24 + 4 * k;
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 4; i++) {
            const int q0 = (qs[16 * c + i] & 15) | ((qh[i] >> c) & 1) << 4;
            const int q1 = (qs[16 * c + i] >> 4) | ((qh[i] >> (c + 4)) & 1) << 4;
            y[r4_col(c, i)] = d * (float)q0 + m;
            y[r4_col(c, i) + 8] = d * (float)q1 + m;
        }
    }
}

// q6_0_r4 (104 bytes: fp16 d[4]; u8 qh[32]; u8 qs[64]). Low 4 bits as in q5_0_r4; the top two
// bits of the two columns of byte qs[16c + 4k + i] are bits 2(c/2) and 2(c/2) + 4 (2 each) of
// qh[16(c%2) + 4k + i]; x = d·q - 32·d.
static void dec_q6_0_r4(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * k), m = -32.0f * d;
    const uint8_t *qh = b + 8 + 4 * k, *qs = b + 40 + 4 * k;
    for (int c = 0; c < 4; c++) {
        const int sh = 2 * (c >> 1);
        for (int i = 0; i < 4; i++) {
            const uint8_t h = qh[16 * (c & 1) + i];
            const int q0 = (qs[16 * c + i] & 15) | ((h >> sh) & 3) << 4;
            const int q1 = (qs[16 * c + i] >> 4) | ((h >> (sh + 4)) & 3) << 4;
            y[r4_col(c, i)] = d * (float)q0 + m;
            y[r4_col(c, i) + 8] = d * (float)q1 + m;
        }
    }
}

// iq4_nl_r4 (72 bytes: fp16 d[4]; u8 qs[64]). Nibbles placed as in q5_0_r4 (no 5th bit);
// x = d·grid[q], the iq4_nl grid.
static void dec_iq4_nl_r4(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * k);
    const uint8_t *qs = b + 8 + 4 * k;
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 4; i++) {
            y[r4_col(c, i)] = d * (float)imc_iq4_grid[qs[16 * c + i] & 15];
            y[r4_col(c, i) + 8] = d * (float)imc_iq4_grid[qs[16 * c + i] >> 4];
        }
    }
}

// The e8m0 exponent e as half its power of two, 2^(e - 128), the scale mxfp4's doubled e2m1
// values take: exponent field e - 1 for e >= 2; the subnormals 2^-127, 2^-128 for e = 1, 0.
static inline float e8m0_half(uint8_t e)
{
    return bits_to_f32(e >= 2 ? (uint32_t)(e - 1) << 23 : 0x00200000u << e);
}

// mxfp4_r8 (136 bytes: u8 e[8]; u8 qs[128]). Nibbles placed as in q4_0_r8;
// x = 2^(e - 128)·v[q], v the doubled e2m1 values (sign in bit 3).
static void dec_mxfp4_r8(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = e8m0_half(b[k]);
    const uint8_t *qs = b + 8 + 4 * k;
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 4; i++) {
            y[4 * c + i] = d * (float)imc_mxfp4_values[qs[32 * c + i] & 15];
            y[4 * c + i + 16] = d * (float)imc_mxfp4_values[qs[32 * c + i] >> 4];
        }
    }
}

IMC_DEFINE_DECODE(Q4_0_R8, dec_q4_0_r8)
IMC_DEFINE_DECODE(Q5_0_R4, dec_q5_0_r4)
IMC_DEFINE_DECODE(Q6_0_R4, dec_q6_0_r4)
IMC_DEFINE_DECODE(Q8_0_R8, dec_q8_0_r8)
IMC_DEFINE_DECODE(IQ4_NL_R4, dec_iq4_nl_r4)
IMC_DEFINE_DECODE(MXFP4_R8, dec_mxfp4_r8)
