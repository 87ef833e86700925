/*
 * types/iq2.c: decoders of llama.cpp's 2-bit lattice i-quants iq2_xxs, iq2_xs and iq2_s
 * (read only). A 256-element super-block has an fp16 scale d and eight 32-element sub-blocks;
 * each sub-block is four groups of 8 elements, a group being one entry of the type's grid
 * (types/iq2_grids.h) with a sign byte. Element e = 32·ib + 8·l + j is element j of group l of
 * sub-block ib. Little-endian throughout. DESIGN.md §4.
 *
 *   iq2_xxs {fp16 d; u8 q[64]}                          66 bytes
 *       sub-block ib owns q[8·ib .. 8·ib + 8): bytes 0..3 are the grid indices of groups 0..3;
 *       bytes 4..7 form a u32 a: bits 7l..7l+6 = sign bits 0..6 of group l (bit 7 makes an even
 *       count), bits 28..31 = scale s. dl = d·(s + 1/2)/4.
 *   iq2_xs  {fp16 d; u16 q[32]; u8 scales[8]}           74 bytes
 *       group l of ib: q[4·ib + l] bits 0..8 = grid index, bits 9..15 = 7 sign bits (as above).
 *       scales[ib]: low nibble for groups 0, 1, high nibble for groups 2, 3; dl = d·(s + 1/2)/4.
 *   iq2_s   {fp16 d; u8 qs[32]; u8 signs[32]; u8 qh[8]; u8 scales[8]}   82 bytes
 *       group l of ib: grid index qs[4·ib + l] | bits 2l..2l+1 of qh[ib] << 8 (10 bits), the
 *       8 signs signs[4·ib + l]; scales as iq2_xs.
 */
#include "types/iq2_grids.h"
#include "types/quant_priv.h"

// d·(s + 1/2)·(1/4), in the reference's order.
static inline float iq2_dl(float d, unsigned s)
{
    return d * (0.5f + (float)s) * 0.25f;
}

static void dec_iq2_xxs(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    for (int ib = 0; ib < 8; ib++, y += 32) {
        const uint8_t *q = b + 2 + 8 * ib;
        const uint32_t a = q[4] | (uint32_t)q[5] << 8 | (uint32_t)q[6] << 16 | (uint32_t)q[7] << 24;
        const float dl = iq2_dl(d, a >> 28);
        for (int l = 0; l < 4; l++) {
            iq2_put8(y + 8 * l, dl, imc_iq2xxs_grid[q[l]], iq2_even_signs((a >> 7 * l) & 127));
        }
    }
}

static void dec_iq2_xs(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const uint8_t *sc = b + 66;
    for (int ib = 0; ib < 8; ib++, y += 32) {
        const float dl[2] = {iq2_dl(d, sc[ib] & 15), iq2_dl(d, sc[ib] >> 4)};
        for (int l = 0; l < 4; l++) {
            const uint8_t *q = b + 2 + 8 * ib + 2 * l;
            const unsigned v = q[0] | (unsigned)q[1] << 8;
            iq2_put8(y + 8 * l, dl[l / 2], imc_iq2xs_grid[v & 511], iq2_even_signs(v >> 9));
        }
    }
}

static void dec_iq2_s(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const uint8_t *qs = b + 2, *signs = b + 34, *qh = b + 66, *sc = b + 74;
    for (int ib = 0; ib < 8; ib++, y += 32) {
        const float dl[2] = {iq2_dl(d, sc[ib] & 15), iq2_dl(d, sc[ib] >> 4)};
        for (int l = 0; l < 4; l++) {
            const unsigned idx = qs[4 * ib + l] | ((qh[ib] >> 2 * l) & 3) << 8;
            iq2_put8(y + 8 * l, dl[l / 2], imc_iq2s_grid[idx], signs[4 * ib + l]);
        }
    }
}

IMC_DEFINE_DEQUANT_ROW(IQ2_XXS, dec_iq2_xxs)
IMC_DEFINE_DEQUANT_ROW(IQ2_XS, dec_iq2_xs)
IMC_DEFINE_DEQUANT_ROW(IQ2_S, dec_iq2_s)
