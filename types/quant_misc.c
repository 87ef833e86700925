/*
 * types/quant_misc.c: decoders of four plain types outside the legacy / K / i-quant families
 * (read only: imc does not write them). DESIGN.md §4.
 *   q8_k   256-element blocks of 296 bytes {f32 d; f32 sum; i8 qs[256]; i16 bsums[16]}:
 *          x[j] = d·qs[j]; sum and bsums (sums of the quants) are for dot products only.
 *   mxfp4  32-element blocks of 17 bytes {u8 e; u8 qs[16]}: e an E8M0 exponent; the scale is
 *          s = 2^(e - 128), half of 2^(e - 127) as the grid is stored doubled;
 *          x[j] = s·v[lo(qs[j])], x[j + 16] = s·v[hi(qs[j])], v the doubled e2m1 values of
 *          types/nl_tables.h.
 *   q6_0   32-element blocks of 26 bytes {fp16 d; u8 qh[8]; u8 qs[16]}: 6-bit quants with
 *          offset 32; x[j] = d·(q - 32) (details at dec_q6_0).
 *   q8_kv  ik_llama.cpp's row-scaled int8: each row is 8 bytes of meta {f32 d; i32 sum of the
 *          quants} and then one i8 per element; x[j] = d·q[j]. The block size (32) only fixes
 *          the row length's granularity.
 */
#include "types/nl_tables.h"
#include "types/quant_priv.h"

// q8_k: d, then the 256 quants from byte 8.
static void dec_q8_k(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_f32(b);
    const int8_t *qs = (const int8_t *)(b + 8);
    for (int j = 0; j < IMC_QK_K; j++) {
        y[j] = d * (float)qs[j];
    }
}

IMC_DEFINE_DEQUANT_ROW(Q8_K, dec_q8_k)

// mxfp4: the E8M0 half scale as float bits. e >= 2 gives the normal 2^(e - 128), exponent field
// e - 1; e = 1 and e = 0 give the subnormals 2^-127 and 2^-128 (mantissa bits 22 and 21).
static inline float e8m0_half(uint8_t e)
{
    return bits_to_f32(e >= 2 ? (uint32_t)(e - 1) << 23 : 0x200000u << e);
}

static void dec_mxfp4(const uint8_t *restrict b, float *restrict y)
{
    const float s = e8m0_half(b[0]);
    const uint8_t *qs = b + 1;
    for (int j = 0; j < 16; j++) {
        y[j] = s * (float)imc_mxfp4_values[qs[j] & 15];
        y[j + 16] = s * (float)imc_mxfp4_values[qs[j] >> 4];
    }
}

IMC_DEFINE_DEQUANT_ROW(MXFP4, dec_mxfp4)

// q6_0: element j < 16 takes its low 4 bits from the low nibble of qs[j], element j + 16 from
// the high nibble. Their bits 4-5 sit in byte qh[j % 8], in its low nibble for j < 8 and its
// high nibble for j >= 8: bits 0-1 of that nibble for element j, bits 2-3 for element j + 16.
static void dec_q6_0(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const uint8_t *qh = b + 2, *qs = b + 10;
    for (int j = 0; j < 16; j++) {
        const int h = qh[j % 8] >> (4 * (j / 8));
        y[j] = (float)(((qs[j] & 15) | (h & 3) << 4) - 32) * d;
        y[j + 16] = (float)(((qs[j] >> 4) | (h & 12) << 2) - 32) * d;
    }
}

IMC_DEFINE_DEQUANT_ROW(Q6_0, dec_q6_0)

// q8_kv: the row is its own group (rows == 1): d at byte 0, quant k at byte 8 + k, taken in
// blocks of 32.
static void dec_q8_kv(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    const int8_t *q = (const int8_t *)b;
    for (int j = 0; j < 32; j++) {
        y[j] = d * (float)q[j];
    }
}

IMC_DEFINE_DECODE(Q8_KV, dec_q8_kv)
