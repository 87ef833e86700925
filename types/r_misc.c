/*
 * types/r_misc.c: ik_llama.cpp's row-interleaved iq4_xs_r8 (groups of 8 rows of 256-element
 * super-blocks) and bf16_r16 (groups of 16 rows of bf16 values), read only. The byte layout and
 * the column order of each are at its decoder. DESIGN.md §4.
 */
#include "types/quant_priv.h"

// iq4_xs_r8: per 256 columns, one block of 8 x 136 = 1088 bytes:
//   fp16 d[8]; u8 scales_h[16]; u8 scales_l[32]; u8 qs[1024]
// Row k's sub-block j (32 columns, j = 0..7) has the 6-bit scale number s = 8j + k: low 4 bits
// are nibble s/32 of scales_l[s % 32], top 2 bits the pair at bit 2(s/16) of scales_h[s % 16];
// its scale is d[k]·(ls - 32). Its quants are 4 runs of 4 bytes, qs[128j + 32l + 4k + i]
// (l, i = 0..3): low nibble column 32j + 8l + i, high nibble 4 further on; x = scale·grid[q].
static void dec_iq4_xs_r8(const uint8_t *restrict b, int k, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * k);
    const uint8_t *sh = b + 16, *sl = b + 32, *qs = b + 64 + 4 * k;
    for (int j = 0; j < 8; j++) {
        const int s = 8 * j + k;
        const int lo = (sl[s % 32] >> (4 * (s / 32))) & 15, hi = (sh[s % 16] >> (2 * (s / 16))) & 3;
        const int ls = lo | hi << 4;
        const float dl = d * (float)(ls - 32);
        for (int l = 0; l < 4; l++) {
            for (int i = 0; i < 4; i++) {
                const uint8_t q = qs[128 * j + 32 * l + i];
                y[32 * j + 8 * l + i] = dl * (float)imc_iq4_grid[q & 15];
                y[32 * j + 8 * l + i + 4] = dl * (float)imc_iq4_grid[q >> 4];
            }
        }
    }
}

IMC_DEFINE_DECODE(IQ4_XS_R8, dec_iq4_xs_r8)

// bf16_r16: the 16 rows' values in pairs of columns: columns 2p, 2p + 1 of row k are the bf16
// values (u16, little-endian) number 32p + 2k and 32p + 2k + 1 of the group; x = bits << 16.
// Its own loop: a block is one column (types.def), but the layout goes by pairs of columns.
void imc_decode_BF16_R16(const uint8_t *grp, int lane, int64_t n_per_row, int64_t k0, int64_t kn,
                         float *dst)
{
    (void)n_per_row;
    const uint8_t *b = grp + 4 * lane;
    for (int64_t c = k0; c < k0 + kn; c++) {
        const uint8_t *v = b + 64 * (c >> 1) + 2 * (c & 1);
        dst[c - k0] = bits_to_f32((uint32_t)(v[0] | v[1] << 8) << 16);
    }
}
