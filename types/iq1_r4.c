/*
 * types/iq1_r4.c: ik_llama.cpp's iq1_s_r4 and iq1_m_r4, groups of 4 rows in 32-element blocks.
 * A group starts with the 4 rows' fp16 scales d[4] (each row's 2 bytes of meta), then block
 * ib of the group holds block ib of each of the 4 rows, interleaved (4 x 6 or 4 x 7 bytes).
 * Same ternary grid as iq1_s / iq1_m (types/iq1_grid.c). Read only. DESIGN.md §4.
 */
#include "types/iq1_grid.h"
#include "types/quant_priv.h"

/*
 * iq1_s_r4, 24 bytes per block of 4 rows: {u8 qs[16]; u16 qh[4]}. Row k: qh[k] holds the top 3
 * bits of its 4 grid indices (bits 3i..3i+2 for group i), the scale s in bits 12-14 and the
 * sign of the shift in bit 15; group i (elements 8i..8i+7) is grid entry qs[4i + k] | those
 * bits << 8; element = d[k]·(2s + 1)·(v + delta).
 */
static void dec_iq1_s_r4(const uint8_t *restrict b, int k, float d, float *restrict y)
{
    const unsigned qh = (unsigned)b[16 + 2 * k] | (unsigned)b[17 + 2 * k] << 8;
    const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
    const float delta = qh & 0x8000 ? -IMC_IQ1_DELTA : IMC_IQ1_DELTA;
    for (int i = 0; i < 4; i++) {
        iq1_grid_put8(b[4 * i + k] | ((qh >> 3 * i) & 7) << 8, dl, delta, y + 8 * i);
    }
}

/*
 * iq1_m_r4, 28 bytes per block of 4 rows: {u8 qs[16]; u8 qh[8]; u8 scales[4]}. Row k, half
 * i < 2 (elements 16i..16i+15): scale d[k]·s, s nibble i of scales[k] (no 2s + 1 here); its
 * two groups of 8 are grid entries qs[8i + k] | (qh[4i + k] & 7) << 8 and
 * qs[8i + k + 4] | (qh[4i + k] >> 4 & 7) << 8, their shifts negative where bit 3 resp. bit 7
 * of qh[4i + k] is set.
 */
static void dec_iq1_m_r4(const uint8_t *restrict b, int k, float d, float *restrict y)
{
    for (int i = 0; i < 2; i++, y += 16) {
        const float dl = d * (float)((b[24 + k] >> 4 * i) & 15);
        const unsigned qh = b[16 + 4 * i + k];
        const float delta1 = qh & 0x08 ? -IMC_IQ1_DELTA : IMC_IQ1_DELTA;
        const float delta2 = qh & 0x80 ? -IMC_IQ1_DELTA : IMC_IQ1_DELTA;
        iq1_grid_put8(b[8 * i + k] | (qh & 7) << 8, dl, delta1, y);
        iq1_grid_put8(b[8 * i + k + 4] | (qh >> 4 & 7) << 8, dl, delta2, y + 8);
    }
}

IMC_DEFINE_DECODE(IQ1_S_R4, dec_iq1_s_r4)
IMC_DEFINE_DECODE(IQ1_M_R4, dec_iq1_m_r4)
