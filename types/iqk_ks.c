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

static inline float load_f32(const uint8_t *p)
{
    return bits_to_f32((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                       (uint32_t)p[3] << 24);
}

static void dec_iq2_ks(const uint8_t *restrict b, float d, float *restrict y)
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

static void dec_iq3_ks(const uint8_t *restrict b, float d, float *restrict y)
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

static void dec_iq4_ks(const uint8_t *restrict b, float d, float *restrict y)
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

static void dec_iq5_ks(const uint8_t *restrict b, float d, float *restrict y)
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

// The row loop of a type with one row scale d: super-blocks of ts bytes from the first one of
// column k0 on, kn columns.
typedef void (*ks_block_fn)(const uint8_t *blk, float d, float *y);
static inline __attribute__((always_inline)) void decode_ks(const uint8_t *blocks, float d,
                                                            int64_t k0, int64_t kn, size_t ts,
                                                            float *dst, ks_block_fn dec)
{
    const uint8_t *b = blocks + (size_t)(k0 / IMC_QK_K) * ts;
    for (int64_t i = 0; i < kn; i += IMC_QK_K, b += ts) {
        dec(b, d, dst + i);
    }
}

void imc_decode_IQ2_KS(const uint8_t *grp, int lane, int64_t n_per_row, int64_t k0, int64_t kn,
                       float *dst)
{
    (void)lane;
    (void)n_per_row;
    decode_ks(grp + 2, load_fp16(grp), k0, kn, 70, dst, dec_iq2_ks);
}

void imc_decode_IQ3_KS(const uint8_t *grp, int lane, int64_t n_per_row, int64_t k0, int64_t kn,
                       float *dst)
{
    (void)lane;
    (void)n_per_row;
    decode_ks(grp + 2, load_fp16(grp), k0, kn, 102, dst, dec_iq3_ks);
}

void imc_decode_IQ4_KS(const uint8_t *grp, int lane, int64_t n_per_row, int64_t k0, int64_t kn,
                       float *dst)
{
    (void)lane;
    (void)n_per_row;
    decode_ks(grp + 4, load_f32(grp), k0, kn, 136, dst, dec_iq4_ks);
}

void imc_decode_IQ5_KS(const uint8_t *grp, int lane, int64_t n_per_row, int64_t k0, int64_t kn,
                       float *dst)
{
    (void)lane;
    (void)n_per_row;
    decode_ks(grp + 4, load_f32(grp), k0, kn, 168, dst, dec_iq5_ks);
}
