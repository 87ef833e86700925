/*
 * types/r_unweave_grid.c: the lattice i-quants' interleaved forms re-laid as their plain rows
 * (types/r_unweave.c dispatches): iq2_xxs_r4, iq2_xs_r4, iq2_s_r4 (layouts: types/iq2_r4.c; the
 * plain ones: types/iq2.c), iq3_xxs_r4, iq3_s_r4 (types/iq3_r4.c, types/iq3.c) and the ternary
 * iq2_bn_r4 (types/rk_bn.c, types/quant_misc_ternary.c).
 *
 * Why the plain decoders give the interleaved decoders' floats:
 *   - signs: the _r4 forms keep 7 bits in a chained form (iq2_xxs_r4 / iq3_xxs_r4: s_j = bit j
 *     of (t & ~1) ^ (t >> 1); iq2_xs_r4: s = c ^ c << 1) whose 8 signs always have an even
 *     count, as the plain types' 7 stored bits plus their parity bit do: the plain field is the
 *     first 7 signs;
 *   - scales: the _r4 decoders compute (d/8)·(2s + 1) (iq3_xxs_r4: (d/4)·(2s + 1)), the plain
 *     ones (d·(s + 1/2))/4 ((d·(s + 1/2))/2): the same product scaled by powers of two, which
 *     round alike in f32's normal range (an fp16 d times at most 31 and 2^-3 never leaves it);
 *     iq3_s and iq2_bn compute the same expressions in both forms;
 *   - grids and the per-element products: the same tables and helpers (iq2_put8, iq3_grid_put4).
 * kernels.unweave checks it on random groups, every fp16 scale value included.
 */
#include <string.h>

#include "types/quant_priv.h"
#include "types/r_unweave_priv.h"

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> 8 * i);
    }
}

// The 7 stored sign bits of byte t's chained signs (bit 0 of t is not a sign).
static inline uint32_t chained7(unsigned t)
{
    const unsigned c = t & 0xfe;
    return (c ^ c >> 1) & 127;
}

// iq2_xxs_r4 {d[4]; sas[128]; q[128]} -> iq2_xxs {d; per sub-block ib: q[4]; u32 a}: a holds the
// 4 groups' 7 sign bits at 7i and the scale (bit 0 of sas[16ib + 4k + i] is its bit i) at 28.
void imc_unweave_iq2_xxs_r4(const uint8_t *b, int k, uint8_t *p)
{
    memcpy(p, b + 2 * k, 2);
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *t = b + 8 + 16 * ib + 4 * k;
        uint8_t *q = p + 2 + 8 * ib;
        uint32_t a = 0;
        for (int i = 0; i < 4; i++) {
            q[i] = b[136 + 16 * ib + 4 * k + i];
            a |= chained7(t[i]) << 7 * i | (uint32_t)(t[i] & 1) << (28 + i);
        }
        put_u32(q + 4, a);
    }
}

// iq2_xs_r4 {d[4]; u16 q[128]; scales[32]} -> iq2_xs {d; u16 q[32]; scales[8]}: grid index in
// bits 0..8 of both, the chained signs c (bits 9..15) become the plain 7 sign bits.
void imc_unweave_iq2_xs_r4(const uint8_t *b, int k, uint8_t *p)
{
    memcpy(p, b + 2 * k, 2);
    for (int ib = 0; ib < 8; ib++) {
        for (int i = 0; i < 4; i++) {
            const uint8_t *v = b + 8 + 2 * (16 * ib + 4 * k + i);
            const unsigned x = v[0] | (unsigned)v[1] << 8, c = x >> 9;
            const unsigned plain = (x & 511) | ((c ^ c << 1) & 127) << 9;
            p[2 + 2 * (4 * ib + i)] = (uint8_t)(plain & 255);
            p[3 + 2 * (4 * ib + i)] = (uint8_t)(plain >> 8);
        }
        p[66 + ib] = b[264 + 4 * ib + k];
    }
}

// iq2_s_r4 {d[4]; qs[128]; qh[32]; signs[128]; scales[32]} -> iq2_s {d; qs[32]; signs[32];
// qh[8]; scales[8]}: every field moves as it is.
void imc_unweave_iq2_s_r4(const uint8_t *b, int k, uint8_t *p)
{
    memcpy(p, b + 2 * k, 2);
    for (int ib = 0; ib < 8; ib++) {
        for (int i = 0; i < 4; i++) {
            const int g = 16 * ib + 4 * k + i;
            p[2 + 4 * ib + i] = b[8 + g];
            p[34 + 4 * ib + i] = b[168 + g];
        }
        p[66 + ib] = b[136 + 4 * ib + k];
        p[74 + ib] = b[296 + 4 * ib + k];
    }
}

// iq3_xxs_r4 {d[4]; u32 sas[32]; qs[256]} -> iq3_xxs {d; qs[64]; u32 sas[8]}: byte m of the word
// sas[4ib + k] gives bit m of the scale (its bit 0) and group m's chained signs.
void imc_unweave_iq3_xxs_r4(const uint8_t *b, int k, uint8_t *p)
{
    memcpy(p, b + 2 * k, 2);
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *w = b + 8 + 4 * (4 * ib + k);
        uint32_t a = 0;
        for (int m = 0; m < 4; m++) {
            a |= chained7(w[m]) << 7 * m | (uint32_t)(w[m] & 1) << (28 + m);
        }
        put_u32(p + 66 + 4 * ib, a);
        memcpy(p + 2 + 8 * ib, b + 136 + 32 * ib + 8 * k, 8);
    }
}

// iq3_s_r4 {d[4]; qs[256]; qh[32]; signs[128]; scales[16]} -> iq3_s {d; qs[64]; qh[8];
// signs[32]; scales[4]}: sub-block ib of row k is number l = 4ib + k of the group; bit g of
// signs[16ib + 4k + j] (element 4g + j) is bit 4(g % 2) + j of the plain signs[4ib + g / 2].
void imc_unweave_iq3_s_r4(const uint8_t *b, int k, uint8_t *p)
{
    memset(p, 0, 110);
    memcpy(p, b + 2 * k, 2);
    for (int ib = 0; ib < 8; ib++) {
        const int l = 4 * ib + k;
        const int s = (b[424 + l % 16] >> 4 * (l / 16)) & 15;
        p[106 + ib / 2] |= (uint8_t)(s << 4 * (ib % 2));
        p[66 + ib] = b[264 + l];
        for (int g = 0; g < 8; g++) {
            p[2 + 8 * ib + g] = b[8 + 32 * ib + 8 * (g % 4) + 4 * (g / 4) + k];
            for (int j = 0; j < 4; j++) {
                const int bit = (b[296 + 16 * ib + 4 * k + j] >> g) & 1;
                p[74 + 4 * ib + g / 2] |= (uint8_t)(bit << (4 * (g % 2) + j));
            }
        }
    }
}

// iq2_bn_r4 (64 bytes per 64 columns of 4 rows) -> iq2_bn (16 bytes): column 16l + 4j + i is
// bits 2j of byte 16l + 4k + i there, bits 2l of byte 4j + i here (the f32 row scales are meta).
void imc_unweave_iq2_bn_r4(const uint8_t *b, int k, uint8_t *p)
{
    memset(p, 0, 16);
    for (int l = 0; l < 4; l++) {
        for (int j = 0; j < 4; j++) {
            for (int i = 0; i < 4; i++) {
                p[4 * j + i] |= (uint8_t)(((b[16 * l + 4 * k + i] >> 2 * j) & 3) << 2 * l);
            }
        }
    }
}
