/*
 * types/iqk_ks_r4.c: ik_llama.cpp's iq4_ks_r4 and iq5_ks_r4, read only: iq4_ks / iq5_ks
 * (types/iqk_ks.c) with four rows interleaved. A group of 4 rows is the 4 rows' f32 scales
 * d[4] (their row meta, 16 B) followed by one interleaved super-block per 256 columns, which
 * holds the 4 rows' super-blocks of that column range (4 x 136 B or 4 x 168 B). DESIGN.md §4.
 *
 * Interleaved super-block of iq4_ks_r4, 544 B {u8 scales[32]; u8 qs[512]}, and of iq5_ks_r4,
 * 672 B {u8 scales[32]; u8 qs[512]; u8 qh[128]}. For row r (< 4), 32-element sub-block s (< 8):
 *   sc = scales[4·s + r]; x = (d[r] · ((sc & 254) - 127)) · grid[half][q], half = sc & 1,
 *   grid iq4k (16 per half) or iq5nl (32 per half);
 *   for m, i < 4 the byte c = qs[64·s + 16·m + 4·r + i] holds in its low nibble element
 *   o + i and in its high nibble element o + 8 + i of the sub-block, o = 16·(m%2) + 4·(m/2);
 *   iq5_ks_r4's fifth bits: bit 2m (low nibble) and 2m + 1 (high) of qh[16·s + 4·r + i].
 */
#include "types/nl_tables.h"
#include "types/quant_priv.h"

// Row r of the interleaved super-block b; with_qh: iq5_ks_r4 (5-bit codes, grid iq5nl).
static inline __attribute__((always_inline)) void
dec_ks_r4(const uint8_t *restrict b, int r, float d, bool with_qh, float *restrict y)
{
    const uint8_t *qs = b + 32, *qh = b + 544;
    for (int s = 0; s < 8; s++, y += 32) {
        const int sc = b[4 * s + r];
        const float dl = d * (float)((sc & 254) - 127);
        const int8_t *g =
            with_qh ? imc_iq5nl_values + 32 * (sc & 1) : imc_iq4k_values + 16 * (sc & 1);
        for (int m = 0; m < 4; m++) {
            const uint8_t *q = qs + 64 * s + 16 * m + 4 * r;
            const int o = 16 * (m % 2) + 4 * (m / 2);
            for (int i = 0; i < 4; i++) {
                int lo = q[i] & 15, hi = q[i] >> 4;
                if (with_qh) {
                    const int h = qh[16 * s + 4 * r + i] >> (2 * m);
                    lo |= (h & 1) << 4;
                    hi |= (h & 2) << 3;
                }
                y[o + i] = dl * (float)g[lo];
                y[o + 8 + i] = dl * (float)g[hi];
            }
        }
    }
}

static void dec_iq4_ks_r4(const uint8_t *restrict b, int r, float d, float *restrict y)
{
    dec_ks_r4(b, r, d, false, y);
}

static void dec_iq5_ks_r4(const uint8_t *restrict b, int r, float d, float *restrict y)
{
    dec_ks_r4(b, r, d, true, y);
}

IMC_DEFINE_DECODE(IQ4_KS_R4, dec_iq4_ks_r4)
IMC_DEFINE_DECODE(IQ5_KS_R4, dec_iq5_ks_r4)
