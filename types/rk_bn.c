/*
 * types/rk_bn.c: ik_llama.cpp's iq2_bn_r4 (read only), the ternary iq2_bn (values -1, 0, 1 in
 * 2 bits, one fp32 scale per row) with 4 rows interleaved. DESIGN.md §4.
 *
 * A group of 4 rows: fp32 d[4] @0 (the rows' meta), then per 64 columns 64 bytes. Column
 * 64u + 16l + 4j + i (l, j, i < 4) of row r is bits 2j..2j+1 of byte 16 + 64u + 16l + 4r + i;
 * x = d·(q - 1).
 */
#include "types/quant_priv.h"

static void dec_iq2_bn_r4(const uint8_t *restrict b, int r, float d, float *restrict y)
{
    const uint8_t *q = b + 4 * r;
    for (int l = 0; l < 4; l++) {
        for (int j = 0; j < 4; j++) {
            for (int i = 0; i < 4; i++) {
                const int v = (q[16 * l + i] >> (2 * j)) & 3;
                y[16 * l + 4 * j + i] = d * (float)(v - 1);
            }
        }
    }
}

IMC_DEFINE_DECODE(IQ2_BN_R4, dec_iq2_bn_r4)
