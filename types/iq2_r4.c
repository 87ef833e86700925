/*
 * types/iq2_r4.c: decoders of ik_llama.cpp's row-interleaved iq2_xxs_r4, iq2_xs_r4 and iq2_s_r4
 * (read only). A group is 4 rows; its super-block ibl (256 columns of each of the 4 rows) is one
 * interleaved block of 4 x the plain type's size, the groups' blocks following each other. The
 * grids and the group of 8 are those of the plain types (types/iq2.c, types/iq2_grids.h); here
 * element e = 32·ib + 8·i + j of row k is element j of group i of sub-block ib, the scale of
 * row k is dk = fp16 d[k] / 8 and a 4-bit sub-block scale s gives dl = dk·(2s + 1).
 *
 *   iq2_xxs_r4 {fp16 d[4]; u8 sas[128]; u8 q[128]}                           264 bytes
 *       q[16·ib + 4·k + i] = grid index; sas[16·ib + 4·k + i] = byte t: bit 0 = bit i of s,
 *       bits 1..7 = the 7 stored signs in a chained form: sign j = bit j of (t & ~1) ^ (t >> 1).
 *   iq2_xs_r4  {fp16 d[4]; u16 q[128]; u8 scales[32]}                        296 bytes
 *       q[16·ib + 4·k + i]: bits 0..8 grid index, bits 9..15 chained signs c: sign j = bit j of
 *       c ^ c << 1. scales[4·ib + k]: low nibble groups 0, 1, high nibble groups 2, 3.
 *   iq2_s_r4   {fp16 d[4]; u8 qs[128]; u8 qh[32]; u8 signs[128]; u8 scales[32]}   328 bytes
 *       grid index qs[16·ib + 4·k + i] | bits 2i..2i+1 of qh[4·ib + k] << 8; signs[16·ib +
 *       4·k + i] plain; scales as iq2_xs_r4.
 */
#include "types/iq2_grids.h"
#include "types/quant_priv.h"

// Row k's scale of an interleaved block: fp16 d[k] / 8, in the reference's order.
static inline float r4_d(const uint8_t *blk, int k)
{
    return 0.125f * load_fp16(blk + 2 * k);
}

static void dec_iq2_xxs_r4(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = r4_d(b, k);
    const uint8_t *sas = b + 8, *q = b + 136;
    for (int ib = 0; ib < 8; ib++, y += 32) {
        const uint8_t *t = sas + 16 * ib + 4 * k;
        const unsigned s = (t[0] & 1) | (t[1] & 1) << 1 | (t[2] & 1) << 2 | (t[3] & 1) << 3;
        const float dl = d * (float)(2 * s + 1);
        for (int i = 0; i < 4; i++) {
            const unsigned c = t[i] & 0xfe;
            iq2_put8(y + 8 * i, dl, imc_iq2xxs_grid[q[16 * ib + 4 * k + i]], c ^ c >> 1);
        }
    }
}

static void dec_iq2_xs_r4(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = r4_d(b, k);
    const uint8_t *q = b + 8, *sc = b + 264;
    for (int ib = 0; ib < 8; ib++, y += 32) {
        const unsigned s = sc[4 * ib + k];
        const float dl[2] = {d * (float)(2 * (s & 15) + 1), d * (float)(2 * (s >> 4) + 1)};
        for (int i = 0; i < 4; i++) {
            const uint8_t *p = q + 2 * (16 * ib + 4 * k + i);
            const unsigned v = p[0] | (unsigned)p[1] << 8, c = v >> 9;
            iq2_put8(y + 8 * i, dl[i / 2], imc_iq2xs_grid[v & 511], c ^ c << 1);
        }
    }
}

static void dec_iq2_s_r4(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = r4_d(b, k);
    const uint8_t *qs = b + 8, *qh = b + 136, *signs = b + 168, *sc = b + 296;
    for (int ib = 0; ib < 8; ib++, y += 32) {
        const unsigned s = sc[4 * ib + k], h = qh[4 * ib + k];
        const float dl[2] = {d * (float)(2 * (s & 15) + 1), d * (float)(2 * (s >> 4) + 1)};
        for (int i = 0; i < 4; i++) {
            const int g = 16 * ib + 4 * k + i;
            const unsigned idx = qs[g] | ((h >> 2 * i) & 3) << 8;
            iq2_put8(y + 8 * i, dl[i / 2], imc_iq2s_grid[idx], signs[g]);
        }
    }
}

IMC_DEFINE_DECODE(IQ2_XXS_R4, dec_iq2_xxs_r4)
IMC_DEFINE_DECODE(IQ2_XS_R4, dec_iq2_xs_r4)
IMC_DEFINE_DECODE(IQ2_S_R4, dec_iq2_s_r4)
