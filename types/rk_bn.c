/*
 * types/rk_bn.c: ik_llama.cpp's iq2_bn_r4 (read only), the ternary iq2_bn (values -1, 0, 1 in
 * 2 bits, one fp32 scale per row) with 4 rows interleaved. DESIGN.md §4.
 *
 * A group of 4 rows: fp32 d[4] @0 (the rows' meta), then per 64 columns 64 bytes. Column
 * 64u + 16l + 4j + i (l, j, i < 4) of row r is bits 2j..2j+1 of byte 16 + 64u + 16l + 4r + i;
 * x = d·(q - 1).
 */
#include "types/rk_priv.h"

void imc_decode_IQ2_BN_R4(const uint8_t *grp, int lane, int64_t n_per_row, int64_t k0, int64_t kn,
                          float *dst)
{
    (void)n_per_row;
    const float d = load_f32(grp + 4 * lane);
    const uint8_t *q = grp + 16 + k0 + 4 * lane;
    for (int64_t u = 0; u < kn / 64; u++, q += 64) {
        for (int l = 0; l < 4; l++) {
            for (int j = 0; j < 4; j++) {
                for (int i = 0; i < 4; i++) {
                    const int v = (q[16 * l + i] >> (2 * j)) & 3;
                    dst[64 * u + 16 * l + 4 * j + i] = d * (float)(v - 1);
                }
            }
        }
    }
}
