/*
 * types/iq1.c: llama.cpp's iq1_s and iq1_m (256-element super-blocks; each group of 8 elements
 * is one entry of the ternary grid of types/iq1_grid.c, shifted by ±1/8 and scaled). Read only:
 * imc does not write these types. DESIGN.md §4.
 */
#include "types/iq1_grid.h"
#include "types/quant_priv.h"

static inline unsigned load_u16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

/*
 * iq1_s, 50 bytes: {fp16 d; u8 qs[32]; u16 qh[8]}. Sub-block ib (32 elements): qh[ib] holds the
 * top 3 bits of its 4 grid indices (bits 3l..3l+2 for group l), the scale s in bits 12-14 and
 * the sign of the shift in bit 15. Group l is grid entry qs[4·ib + l] | those bits << 8;
 * element = d·(2s + 1)·(v + delta).
 */
static void dec_iq1_s(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *qs = b + 2 + 4 * ib;
        const unsigned qh = load_u16(b + 34 + 2 * ib);
        const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
        const float delta = qh & 0x8000 ? -IMC_IQ1_DELTA : IMC_IQ1_DELTA;
        for (int l = 0; l < 4; l++, y += 8) {
            iq1_grid_put8(qs[l] | ((qh >> 3 * l) & 7) << 8, dl, delta, y);
        }
    }
}

/*
 * iq1_m, 56 bytes: {u8 qs[32]; u8 qh[16]; u16 sc[4]}. The fp16 super-block scale d is the top
 * nibbles of sc[0..3] (sc[0]'s lowest). Sub-block ib: 3-bit scales s1, s2 at bits 6·(ib % 2)
 * and 6·(ib % 2) + 3 of sc[ib / 2] for its two halves of 16. Group l < 4 is grid entry
 * qs[4·ib + l] | bits 4·(l % 2)..+2 of qh[2·ib + l / 2] << 8, and bit 4·(l % 2) + 3 of that byte
 * is the sign of its shift; element = d·(2s + 1)·(v + delta), s = s1 for l < 2, else s2.
 */
static void dec_iq1_m(const uint8_t *restrict b, float *restrict y)
{
    const uint8_t *qs = b, *qh = b + 32;
    unsigned sc[4];
    for (int i = 0; i < 4; i++) {
        sc[i] = load_u16(b + 48 + 2 * i);
    }
    const unsigned dh = sc[0] >> 12 | (sc[1] >> 8 & 0xf0) | (sc[2] >> 4 & 0xf00) | (sc[3] & 0xf000);
    const float d = fp16_to_fp32_inline((uint16_t)dh);
    for (int ib = 0; ib < 8; ib++, qs += 4, qh += 2) {
        const unsigned s = sc[ib / 2] >> 6 * (ib % 2);
        const float dl[2] = {d * (float)(2 * (s & 7) + 1), d * (float)(2 * ((s >> 3) & 7) + 1)};
        for (int l = 0; l < 4; l++, y += 8) {
            const unsigned h = qh[l / 2] >> 4 * (l % 2);
            const float delta = h & 8 ? -IMC_IQ1_DELTA : IMC_IQ1_DELTA;
            iq1_grid_put8(qs[l] | (h & 7) << 8, dl[l / 2], delta, y);
        }
    }
}

IMC_DEFINE_DEQUANT_ROW(IQ1_S, dec_iq1_s)
IMC_DEFINE_DEQUANT_ROW(IQ1_M, dec_iq1_m)
