/*
 * types/iqk_ks.c: ik_llama.cpp's iq2_ks, iq3_ks, iq4_ks and iq5_ks, read only. A row is one
 * scale for the whole row (the row meta: fp16 for iq2_ks / iq3_ks, f32 for iq4_ks / iq5_ks)
 * followed by 256-element super-blocks of eight 32-element sub-blocks. Each sub-block has its
 * own integer scale and picks one of the two halves of a non-linear grid (types/nl_tables.h):
 * x = (d · scale) · grid[half][q]. DESIGN.md §4.
 *
 * Super-block layouts (s < 8 is the sub-block, j < 32 the element inside it, e = 32·s + j):
 *   iq2_ks  70 B {u16 extra; u8 scales[4]; u8 qs[64]}
 *           q = bits 2·(s%4).. of qs[32·(s/4) + j] (2 bits), grid iq2nl;
 *           scale = (nibble s%2 of scales[s/2] | bit 8+s of extra << 4) - 16;
 *           half = bit s of extra
 *   iq3_ks  102 B {u16 extra; u8 scales[4]; u8 qs[64]; u8 qh[32]}
 *           q = bits 2·(s%4).. of qs[32·(s/4) + j] | bit s of qh[j] << 2 (3 bits), grid iq3nl;
 *           scale = (nibble s/4 of scales[s%4] | bit s of extra << 4) - 16;
 *           half = bit 8+s of extra
 *   iq4_ks  136 B {u8 scales[8]; u8 qs[128]}
 *           q = nibble j/16 of qs[16·s + j%16] (4 bits), grid iq4k;
 *           scale = (scales[s] & 254) - 127, half = bit 0 of scales[s]
 *   iq5_ks  168 B {u8 scales[8]; u8 qs[128]; u8 qh[32]}
 *           q = nibble s%2 of qs[32·(s/2) + j] | bit s of qh[j] << 4 (5 bits), grid iq5nl;
 *           scale and half as iq4_ks
 */
#include "types/nl_tables.h"
#include "types/quant_priv.h"

static void dec_iq2_ks(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    const unsigned extra = b[0] | b[1] << 8;
    const uint8_t *sc = b + 2, *qs = b + 6;
    for (int s = 0; s < 8; s++) {
        const int ls = ((sc[s / 2] >> (4 * (s % 2))) & 15) | ((extra >> (8 + s)) & 1) << 4;
        const float dl = d * (float)(ls - 16);
        const int8_t *g = imc_iq2nl_values + 4 * ((extra >> s) & 1);
        const uint8_t *q = qs + 32 * (s / 4);
        const int sh = 2 * (s % 4);
        for (int j = 0; j < 32; j++) {
            y[32 * s + j] = dl * (float)g[(q[j] >> sh) & 3];
        }
    }
}

static void dec_iq3_ks(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    const unsigned extra = b[0] | b[1] << 8;
    const uint8_t *sc = b + 2, *qs = b + 6, *qh = b + 70;
    for (int s = 0; s < 8; s++) {
        const int ls = ((sc[s % 4] >> (4 * (s / 4))) & 15) | ((extra >> s) & 1) << 4;
        const float dl = d * (float)(ls - 16);
        const int8_t *g = imc_iq3nl_values + 8 * ((extra >> (8 + s)) & 1);
        const uint8_t *q = qs + 32 * (s / 4);
        const int sh = 2 * (s % 4);
        for (int j = 0; j < 32; j++) {
            y[32 * s + j] = dl * (float)g[((q[j] >> sh) & 3) | ((qh[j] >> s) & 1) << 2];
        }
    }
}

static void dec_iq4_ks(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    const uint8_t *qs = b + 8;
    for (int s = 0; s < 8; s++) {
        const float dl = d * (float)((b[s] & 254) - 127);
        const int8_t *g = imc_iq4k_values + 16 * (b[s] & 1);
        const uint8_t *q = qs + 16 * s;
        for (int j = 0; j < 16; j++) {
            y[32 * s + j] = dl * (float)g[q[j] & 15];
            y[32 * s + j + 16] = dl * (float)g[q[j] >> 4];
        }
    }
}

static void dec_iq5_ks(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    const uint8_t *qs = b + 8, *qh = b + 136;
    for (int s = 0; s < 8; s++) {
        const float dl = d * (float)((b[s] & 254) - 127);
        const int8_t *g = imc_iq5nl_values + 32 * (b[s] & 1);
        const uint8_t *q = qs + 32 * (s / 2);
        const int sh = 4 * (s % 2);
        for (int j = 0; j < 32; j++) {
            y[32 * s + j] = dl * (float)g[((q[j] >> sh) & 15) | ((qh[j] >> s) & 1) << 4];
        }
    }
}

IMC_DEFINE_DECODE(IQ2_KS, dec_iq2_ks)
IMC_DEFINE_DECODE(IQ3_KS, dec_iq3_ks)
IMC_DEFINE_DECODE(IQ4_KS, dec_iq4_ks)
IMC_DEFINE_DECODE(IQ5_KS, dec_iq5_ks)
