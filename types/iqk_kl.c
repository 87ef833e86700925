/*
 * types/iqk_kl.c: ik_llama.cpp's iq2_kl, read only: 2.69 bits per element, pairs of elements
 * coded together by a 5-bit index into a grid of 32 pairs (imc_iq2kl_values, types/nl_tables.h).
 * A row is an fp16 row scale d (the row meta) followed by 256-element super-blocks of eight
 * 32-element sub-blocks. DESIGN.md §4.
 *
 * Super-block layout, 86 B {u16 scales_h; u8 scales_l[4]; u8 qs[64]; u8 qh[32]}. Sub-block s
 * (< 8): scale = (nibble s/4 of scales_l[s%4] | bits 2s..2s+1 of scales_h << 4) - 32. Its
 * elements 2j and 2j + 1 (j < 16) are the pair iq2kl[i], i = nibble s%2 of qs[16·(s/2) + j]
 * | bit s of qh[j] << 4 (low byte of the grid entry first, both int8).
 * x = (d · scale) · value.
 */
#include "types/nl_tables.h"
#include "types/quant_priv.h"

static void dec_iq2_kl(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    const unsigned sh = b[0] | b[1] << 8;
    const uint8_t *sl = b + 2, *qs = b + 6, *qh = b + 70;
    for (int s = 0; s < 8; s++, y += 32) {
        const int ls = ((sl[s % 4] >> (4 * (s / 4))) & 15) | ((sh >> (2 * s)) & 3) << 4;
        const float dl = d * (float)(ls - 32);
        const uint8_t *q = qs + 16 * (s / 2);
        const int nib = 4 * (s % 2);
        for (int j = 0; j < 16; j++) {
            const unsigned v = imc_iq2kl_values[((q[j] >> nib) & 15) | ((qh[j] >> s) & 1) << 4];
            y[2 * j] = dl * (float)(int8_t)(v & 0xff);
            y[2 * j + 1] = dl * (float)(int8_t)(v >> 8);
        }
    }
}

IMC_DEFINE_DECODE(IQ2_KL, dec_iq2_kl)
