/*
 * types/iqk_k_r4.c: decoders of ik_llama.cpp's row-interleaved iq2_k_r4, iq3_k_r4, iq4_k_r4 and
 * iq5_k_r4: groups of 4 rows whose super-blocks (256 elements each) are stored together, block
 * b of the group holding block b of all 4 rows (4 x the plain type's bytes, no row meta). The
 * values are those of the plain type (types/iqk_k.c); only the packing differs. DESIGN.md §4.
 *
 * Inside a group block, row r (< 4) and 32-element sub-block s (< 8) have two 16-element
 * halves p (elements 16·p ..): scale index i = 8·s + r + 4·p, grid half = bit s of
 * extra[r + 4·p] (extra: 8 bytes after d[4], the rows' fp16 scales). The 4-bit scale fields are
 * nibble i / 32 of byte i % 32 of their array, the 2-bit ones bits 2·(i / 16) of byte i % 16 and
 * iq3's sign bits bit i / 8 of byte i % 8. Levels, with l < 4 and x = 32·s + 4·r + l
 * (iq2/iq3) or x = 64·s + 4·r + l (iq4/iq5):
 *
 *   iq2_k_r4 (304)  d[4]@0 extra@8 sc[32]@16 qs[256]@48; scale nibble - 8
 *            bits 2f of qs[x + 16·p] = element 16·p + 4·f + l (f < 4)
 *   iq3_k_r4 (440)  d[4]@0 extra@8 sh[8]@16 sl[32]@24 qs[256]@56 qh[128]@312;
 *            scale (2·nibble + 1), negated by its sign bit; low 2 bits as iq2_k_r4,
 *            bit 2 of element e = 4·f + l (< 32) is bit f of qh[16·s + 4·r + l]
 *   iq4_k_r4 (576)  d[4]@0 extra@8 sh[16]@16 sl[32]@32 qs[512]@64;
 *            scale (nibble | 2 bits << 4) - 32; byte qs[x + 16·c] (c < 4) holds in its
 *            low / high nibble element o_c + l / o_c + 8 + l, o_c = 16·(c % 2) + 4·(c / 2)
 *   iq5_k_r4 (704)  as iq4_k_r4, and qh[128]@576: bit 4 of the level in nibble k (< 2) of
 *            qs[x + 16·c] is bit 2·c + k of qh[16·s + 4·r + l]
 */
#include "types/nl_tables.h"
#include "types/quant_priv.h"

// Nibble i / 32 of byte i % 32 of a 32-byte array of 4-bit fields.
static inline int nib64(const uint8_t *a, int i)
{
    return (a[i % 32] >> (4 * (i / 32))) & 15;
}

// Bits 2·(i / 16) of byte i % 16 of a 16-byte array of 2-bit fields.
static inline int crumb64(const uint8_t *a, int i)
{
    return (a[i % 16] >> (2 * (i / 16))) & 3;
}

// The 2-bit levels of row r, sub-block s of an iq2_k_r4 / iq3_k_r4 block: q[e] for e < 32.
static inline void levels2(const uint8_t *qs, int s, int r, uint8_t *q)
{
    for (int p = 0; p < 2; p++) {
        const uint8_t *src = qs + 32 * s + 16 * p + 4 * r;
        for (int f = 0; f < 4; f++) {
            for (int l = 0; l < 4; l++) {
                q[16 * p + 4 * f + l] = (src[l] >> (2 * f)) & 3;
            }
        }
    }
}

// The low nibbles of row r, sub-block s of an iq4_k_r4 / iq5_k_r4 block: q[e] for e < 32.
static inline void levels4(const uint8_t *qs, int s, int r, uint8_t *q)
{
    for (int c = 0; c < 4; c++) {
        const uint8_t *src = qs + 64 * s + 16 * c + 4 * r;
        const int o = 16 * (c % 2) + 4 * (c / 2);
        for (int l = 0; l < 4; l++) {
            q[o + l] = src[l] & 15;
            q[o + 8 + l] = src[l] >> 4;
        }
    }
}

// y[e] = dl_p · v_p[q[e]] over the two halves of a sub-block.
static inline void put_sub(const uint8_t *restrict q, const int8_t *const v[2], const float dl[2],
                           float *restrict y)
{
    for (int p = 0; p < 2; p++) {
        for (int j = 0; j < 16; j++) {
            y[16 * p + j] = dl[p] * (float)v[p][q[16 * p + j]];
        }
    }
}

static void dec_iq2_k_r4(const uint8_t *restrict b, int r, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * r);
    const uint8_t *extra = b + 8, *sc = b + 16, *qs = b + 48;
    for (int s = 0; s < 8; s++) {
        uint8_t q[32];
        levels2(qs, s, r, q);
        float dl[2];
        const int8_t *v[2];
        for (int p = 0; p < 2; p++) {
            dl[p] = d * (float)(nib64(sc, 8 * s + r + 4 * p) - 8);
            v[p] = imc_iq2nl_values + 4 * ((extra[r + 4 * p] >> s) & 1);
        }
        put_sub(q, v, dl, y + 32 * s);
    }
}

static void dec_iq3_k_r4(const uint8_t *restrict b, int r, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * r);
    const uint8_t *extra = b + 8, *sh = b + 16, *sl = b + 24, *qs = b + 56, *qh = b + 312;
    for (int s = 0; s < 8; s++) {
        uint8_t q[32];
        levels2(qs, s, r, q);
        for (int f = 0; f < 8; f++) {
            for (int l = 0; l < 4; l++) {
                q[4 * f + l] |= (uint8_t)(((qh[16 * s + 4 * r + l] >> f) & 1) << 2);
            }
        }
        float dl[2];
        const int8_t *v[2];
        for (int p = 0; p < 2; p++) {
            const int i = 8 * s + r + 4 * p, m = 2 * nib64(sl, i) + 1;
            dl[p] = d * (float)((sh[i % 8] >> (i / 8)) & 1 ? -m : m);
            v[p] = imc_iq3nl_values + 8 * ((extra[r + 4 * p] >> s) & 1);
        }
        put_sub(q, v, dl, y + 32 * s);
    }
}

// Scales and grid halves of row r, sub-block s of an iq4_k_r4 / iq5_k_r4 block; grid is
// the type's grid of 2 x half values.
static inline void scales45(const uint8_t *b, int r, int s, const int8_t *grid, int half,
                            float dl[2], const int8_t *v[2])
{
    const float d = load_fp16(b + 2 * r);
    const uint8_t *extra = b + 8, *sh = b + 16, *sl = b + 32;
    for (int p = 0; p < 2; p++) {
        const int i = 8 * s + r + 4 * p;
        dl[p] = d * (float)((nib64(sl, i) | crumb64(sh, i) << 4) - 32);
        v[p] = grid + half * ((extra[r + 4 * p] >> s) & 1);
    }
}

static void dec_iq4_k_r4(const uint8_t *restrict b, int r, float row_d, float *restrict y)
{
    const uint8_t *qs = b + 64;
    for (int s = 0; s < 8; s++) {
        uint8_t q[32];
        levels4(qs, s, r, q);
        float dl[2];
        const int8_t *v[2];
        scales45(b, r, s, imc_iq4k_values, 16, dl, v);
        put_sub(q, v, dl, y + 32 * s);
    }
}

static void dec_iq5_k_r4(const uint8_t *restrict b, int r, float row_d, float *restrict y)
{
    const uint8_t *qs = b + 64, *qh = b + 576;
    for (int s = 0; s < 8; s++) {
        uint8_t q[32];
        levels4(qs, s, r, q);
        for (int c = 0; c < 4; c++) {
            const int o = 16 * (c % 2) + 4 * (c / 2);
            for (int l = 0; l < 4; l++) {
                const int h = qh[16 * s + 4 * r + l] >> (2 * c);
                q[o + l] |= (uint8_t)((h & 1) << 4);
                q[o + 8 + l] |= (uint8_t)((h & 2) << 3);
            }
        }
        float dl[2];
        const int8_t *v[2];
        scales45(b, r, s, imc_iq5nl_values, 32, dl, v);
        put_sub(q, v, dl, y + 32 * s);
    }
}

IMC_DEFINE_DECODE(IQ2_K_R4, dec_iq2_k_r4)
IMC_DEFINE_DECODE(IQ3_K_R4, dec_iq3_k_r4)
IMC_DEFINE_DECODE(IQ4_K_R4, dec_iq4_k_r4)
IMC_DEFINE_DECODE(IQ5_K_R4, dec_iq5_k_r4)
