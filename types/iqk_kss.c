/*
 * types/iqk_kss.c: ik_llama.cpp's iq4_kss, read only: iq4_ks (types/iqk_ks.c) squeezed to 4
 * bits per element by hiding each sub-block's 8-bit scale in the low bits of its codes. A row
 * is an f32 row scale d (the row meta) followed by 256-element super-blocks of 128 bytes.
 * DESIGN.md §4.
 *
 * Super-block layout: 64 little-endian u16 words, eight per 32-element sub-block s. Of word k
 * (< 8) of sub-block s, w = word[8·s + k]: bit 0 is bit k of the sub-block's byte `ls`; the
 * other bits, a = (w & ~1) ^ ((w & ~1) >> 1), are bytes 2k (low) and 2k + 1 (high) of the
 * sub-block's 16 bytes of codes p[16]. Element j < 16 of the sub-block is the low nibble of
 * p[j], element j + 16 its high nibble. x = (d · ((ls & 254) - 127)) · iq4k[16 · (ls & 1) + q].
 */
#include "types/nl_tables.h"
#include "types/quant_priv.h"

static void dec_iq4_kss(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    for (int s = 0; s < 8; s++, b += 16, y += 32) {
        uint8_t p[16];
        int ls = 0;
        for (int k = 0; k < 8; k++) {
            const unsigned w = b[2 * k] | b[2 * k + 1] << 8, m = w & 0xfffe, a = m ^ (m >> 1);
            ls |= (int)(w & 1) << k;
            p[2 * k] = (uint8_t)a;
            p[2 * k + 1] = (uint8_t)(a >> 8);
        }
        const float dl = d * (float)((ls & 254) - 127);
        const int8_t *g = imc_iq4k_values + 16 * (ls & 1);
        for (int j = 0; j < 16; j++) {
            y[j] = dl * (float)g[p[j] & 15];
            y[j + 16] = dl * (float)g[p[j] >> 4];
        }
    }
}

IMC_DEFINE_DECODE(IQ4_KSS, dec_iq4_kss)
