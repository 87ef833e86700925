/*
 * types/iq3.c: llama.cpp's iq3_xxs and iq3_s (256-element super-blocks of eight 32-element
 * sub-blocks; each group of 4 elements is one entry of a grid of magnitudes, types/iq3_grids.c,
 * with a sign per element). Read only: imc does not write these types. DESIGN.md §4.
 */
#include "types/iq3_grids.h"
#include "types/quant_priv.h"

// The sign byte of 7 stored sign bits s: bit 7 makes the number of negative elements of the
// 8 even (what ggml's ksigns_iq2xs table holds).
static inline unsigned even_signs(unsigned s)
{
    unsigned p = s ^ s >> 4;
    p ^= p >> 2;
    p ^= p >> 1;
    return s | (p & 1) << 7;
}

/*
 * iq3_xxs, 98 bytes: {fp16 d; u8 qs[64]; u32 sas[8]}. Sub-block ib: sas[ib] holds four 7-bit
 * sign fields (bits 7l..7l+6, l < 4) and the scale s in bits 28-31; the sub-block scale is
 * (d·(0.5 + s))·0.5. Elements 8l..8l+3 are grid entry qs[8·ib + 2l], 8l+4..8l+7 entry
 * qs[8·ib + 2l + 1]; element 8l + j is negative where bit j of even_signs(field l) is set.
 */
static void dec_iq3_xxs(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const uint8_t *qs = b + 2;
    for (int ib = 0; ib < 8; ib++, qs += 8) {
        const uint32_t sas = load_u32(b + 66 + 4 * ib);
        const float db = d * (0.5f + (float)(sas >> 28)) * 0.5f;
        for (int l = 0; l < 4; l++, y += 8) {
            const unsigned neg = even_signs((sas >> 7 * l) & 127);
            iq3_grid_put4(imc_iq3xxs_grid[qs[2 * l]], db, neg, y);
            iq3_grid_put4(imc_iq3xxs_grid[qs[2 * l + 1]], db, neg >> 4, y + 4);
        }
    }
}

/*
 * iq3_s, 110 bytes: {fp16 d; u8 qs[64]; u8 qh[8]; u8 signs[32]; u8 scales[4]}. Sub-block ib
 * has scale d·(1 + 2·s), s nibble ib % 2 of scales[ib / 2]. Its group g < 8 of 4 elements is
 * grid entry qs[8·ib + g] | bit g of qh[ib] << 8; element 4g + j is negative where bit
 * 4·(g % 2) + j of signs[4·ib + g / 2] is set.
 */
static void dec_iq3_s(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const uint8_t *qs = b + 2, *qh = b + 66, *signs = b + 74, *scales = b + 106;
    for (int ib = 0; ib < 8; ib++, qs += 8, signs += 4) {
        const float db = d * (float)(1 + 2 * ((scales[ib / 2] >> 4 * (ib % 2)) & 15));
        for (int g = 0; g < 8; g++, y += 4) {
            const unsigned idx = qs[g] | ((qh[ib] >> g) & 1u) << 8;
            iq3_grid_put4(imc_iq3s_grid[idx], db, signs[g / 2] >> 4 * (g % 2), y);
        }
    }
}

IMC_DEFINE_DEQUANT_ROW(IQ3_XXS, dec_iq3_xxs)
IMC_DEFINE_DEQUANT_ROW(IQ3_S, dec_iq3_s)
