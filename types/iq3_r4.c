/*
 * types/iq3_r4.c: ik_llama.cpp's iq3_xxs_r4 and iq3_s_r4, groups of 4 rows whose 256-element
 * super-blocks are interleaved: block ibl of the group holds block ibl of each of the 4 rows
 * (4 x the plain block's bytes, no per-row meta), re-arranged so that the 4 rows' sub-blocks
 * sit side by side. Same grids as iq3_xxs / iq3_s (types/iq3_grids.c). Read only. DESIGN.md §4.
 */
#include "types/iq3_grids.h"
#include "types/quant_priv.h"

/*
 * iq3_xxs_r4, 392 bytes per block of 4 rows: {fp16 d[4]; u32 sas[32]; u8 qs[256]}. Row k,
 * sub-block ib: word w = sas[4·ib + k]; bit 8i of w is bit i of the scale s (i < 4), and the
 * other bits, after w &= 0xfefefefe and w ^= w >> 1, are the signs: element 4i + j (i < 8) of
 * the sub-block is grid entry qs[32·ib + 8k + i] byte j, negative where bit 4i + j of w is
 * set. The sub-block scale is (0.25·d[k])·(2s + 1).
 */
static void dec_iq3_xxs_r4(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = 0.25f * load_fp16(b + 2 * k);
    for (int ib = 0; ib < 8; ib++) {
        uint32_t w = load_u32(b + 8 + 4 * (4 * ib + k));
        const unsigned s = (w & 1) | (w >> 7 & 2) | (w >> 14 & 4) | (w >> 21 & 8);
        const float dl = d * (float)(2 * s + 1);
        w &= 0xfefefefeu;
        w ^= w >> 1;
        const uint8_t *qs = b + 136 + 32 * ib + 8 * k;
        for (int i = 0; i < 8; i++, y += 4) {
            iq3_grid_put4(imc_iq3xxs_grid[qs[i]], dl, w >> 4 * i, y);
        }
    }
}

/*
 * iq3_s_r4, 440 bytes per block of 4 rows: {fp16 d[4]; u8 qs[256]; u8 qh[32]; u8 signs[128];
 * u8 scales[16]}. Row k, sub-block ib, l = 4·ib + k: scale d[k]·(1 + 2s), s nibble l / 16 of
 * scales[l % 16]. Its group g < 8 of 4 elements (elements 4g..4g+3) is grid entry
 * qs[32·ib + 8·(g % 4) + 4·(g / 4) + k] | bit g of qh[l] << 8; element 4g + j is negative where
 * bit g of signs[16·ib + 4k + j] is set.
 */
static void dec_iq3_s_r4(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * k);
    for (int ib = 0; ib < 8; ib++) {
        const int l = 4 * ib + k;
        const float dl = d * (float)(1 + 2 * ((b[424 + l % 16] >> 4 * (l / 16)) & 15));
        const uint8_t *qs = b + 8 + 32 * ib + k, *sg = b + 296 + 16 * ib + 4 * k;
        const unsigned qh = b[264 + l];
        for (int g = 0; g < 8; g++, y += 4) {
            const unsigned idx = qs[8 * (g % 4) + 4 * (g / 4)] | ((qh >> g) & 1u) << 8;
            unsigned neg = 0;
            for (int j = 0; j < 4; j++) {
                neg |= ((sg[j] >> g) & 1u) << j;
            }
            iq3_grid_put4(imc_iq3s_grid[idx], dl, neg, y);
        }
    }
}

IMC_DEFINE_DECODE(IQ3_XXS_R4, dec_iq3_xxs_r4)
IMC_DEFINE_DECODE(IQ3_S_R4, dec_iq3_s_r4)
