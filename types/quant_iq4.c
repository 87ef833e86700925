/*
 * model/quant_iq4.c: iq4_nl (32-element blocks) and iq4_xs (256-element super-blocks of eight
 * 32-element sub-blocks with 6-bit scales), both on ggml's non-linear 4-bit grid. Inside each
 * 32 elements, element j < 16 is the low nibble of qs[j] and element j + 16 its high nibble.
 * iq4_xs sub-block scale ib: low 4 bits are nibble ib % 2 of scales_l[ib / 2], top 2 bits are
 * bits 2·ib of scales_h; stored with offset 32. DESIGN.md §4.
 */
#include "types/quant_priv.h"

const int8_t imc_iq4_grid[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                 1,    13,   25,  38,  53,  69,  89,  113};

static inline void dec_grid32(const uint8_t *restrict qs, float dl, float *restrict y)
{
    for (int j = 0; j < 16; j++) {
        y[j] = dl * (float)imc_iq4_grid[qs[j] & 15];
        y[j + 16] = dl * (float)imc_iq4_grid[qs[j] >> 4];
    }
}

static void dec_iq4_nl(const uint8_t *restrict b, float *restrict y)
{
    dec_grid32(b + 2, load_fp16(b), y);
}

static void dec_iq4_xs(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const unsigned sh = b[2] | b[3] << 8;
    for (int ib = 0; ib < 8; ib++) {
        const int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 15) | ((sh >> (2 * ib)) & 3) << 4;
        dec_grid32(b + 8 + 16 * ib, d * (float)(ls - 32), y + 32 * ib);
    }
}

IMC_DEFINE_DEQUANT_ROW(IQ4_NL, dec_iq4_nl)
IMC_DEFINE_DEQUANT_ROW(IQ4_XS, dec_iq4_xs)

static void pack_grid32(const int8_t *L, uint8_t *qs)
{
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
    }
}

static void enc_iq4_nl(const float *x, const float *w, uint8_t *b)
{
    uint8_t L[32];
    const float d = round_fp16(imc_qz_grid(32, x, w, imc_iq4_grid, 7, L));
    const float id = d != 0 ? 1 / d : 0;
    int8_t q[32];
    for (int j = 0; j < 32; j++) {
        q[j] = (int8_t)imc_qz_grid_nearest(imc_iq4_grid, x[j] * id);
    }
    store_fp16(b, d);
    pack_grid32(q, b + 2);
}

static void enc_iq4_xs(const float *x, const float *w, uint8_t *b)
{
    struct sb_fit f;
    imc_qz_sb_signed(x, w, 8, 0, 0, imc_iq4_grid, -32, 31, &f);
    unsigned sh = 0;
    store_fp16(b, f.d);
    memset(b + 4, 0, 4);
    for (int ib = 0; ib < 8; ib++) {
        const int ls = f.sc[ib] + 32;
        b[4 + ib / 2] |= (uint8_t)((ls & 15) << (4 * (ib % 2)));
        sh |= (unsigned)(ls >> 4) << (2 * ib);
        pack_grid32(f.L + 32 * ib, b + 8 + 16 * ib);
    }
    b[2] = (uint8_t)sh;
    b[3] = (uint8_t)(sh >> 8);
}

IMC_DEFINE_QUANT_ROW(IQ4_NL, enc_iq4_nl)
IMC_DEFINE_QUANT_ROW(IQ4_XS, enc_iq4_xs)
