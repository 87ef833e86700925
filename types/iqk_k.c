/*
 * types/iqk_k.c: decoders of ik_llama.cpp's non-linear K types iq2_k, iq3_k, iq4_k, iq5_k and
 * iq6_k (256-element super-blocks, plain rows, read only). DESIGN.md §4.
 *
 * Common ground. A super-block starts with its fp16 scale d and a u16 `extra`; it is cut into
 * sixteen 16-element slices, slice h covering elements 16·h .. 16·h + 15. Slice h has its own
 * integer scale s_h and takes its values from the first or (bit h of extra set) the second,
 * shifted half of its type's grid (types/nl_tables.h); element = (d·s_h)·grid[q], d·s_h rounded
 * to float first as the reference does. Byte layouts (offsets in bytes), with sb = h / 2 the
 * 32-element sub-block and p = h % 2 the slice inside it:
 *
 *   iq2_k  (76)  d@0 extra@2 sc[8]@4 qs[64]@12
 *          s_h = nibble p of sc[sb] - 8; q (2 bits) = bits 2·(sb % 4) of
 *          qs[32·(sb / 4) + 16·p + j]
 *   iq3_k  (110) d@0 extra@2 sh(u16)@4 sl[8]@6 qs[64]@14 qh[32]@78
 *          s_h = (2·nibble p of sl[sb] + 1), negated when bit h of sh is set; q (3 bits): the
 *          2 bits as iq2_k, bit 2 = bit sb of qh[16·p + j]
 *   iq4_k  (144) d@0 extra@2 sh[4]@4 sl[8]@8 qs[128]@16
 *          s_h = (nibble p of sl[sb] | bits 2·(h % 4) of sh[h / 4] << 4) - 32;
 *          q = nibble p of qs[16·sb + j]
 *   iq5_k  (176) d@0 extra@2 sh[4]@4 sl[8]@8 qs[128]@16 qh[32]@144
 *          s_h as iq4_k; with h = 4·t + u (t: 64-element quarter, u < 4): q (5 bits) = nibble
 *          u / 2 of qs[32·t + 16·(u % 2) + j], bit 4 = bit 2·t + u / 2 of qh[16·(u % 2) + j]
 *   iq6_k  (212) d@0 extra@2 sc[16](int8)@4 qs[128]@20 qh[64]@148
 *          s_h = sc[h]; h = 4·t + u: q (6 bits) = nibble u / 2 of qs[32·t + 16·(u % 2) + j],
 *          bits 4-5 = bits 4·(t % 2) + 2·(u / 2) of qh[32·(t / 2) + 16·(u % 2) + j]. No grid:
 *          the value is a cubic in q (below) plus 1 when bit h of extra is set.
 */
#include "types/nl_tables.h"
#include "types/quant_priv.h"

// One 16-element slice: y[j] = dl · v[q_j]; the caller has unpacked the levels into q.
static inline void put_slice(const uint8_t *restrict q, const int8_t *restrict v, float dl,
                             float *restrict y)
{
    for (int j = 0; j < 16; j++) {
        y[j] = dl * (float)v[q[j]];
    }
}

static inline unsigned load_u16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static void dec_iq2_k(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const unsigned extra = load_u16(b + 2);
    const uint8_t *sc = b + 4, *qs = b + 12;
    for (int h = 0; h < 16; h++) {
        const int sb = h / 2, p = h % 2, shift = 2 * (sb % 4);
        const uint8_t *src = qs + 32 * (sb / 4) + 16 * p;
        uint8_t q[16];
        for (int j = 0; j < 16; j++) {
            q[j] = (src[j] >> shift) & 3;
        }
        const float dl = d * (float)(((sc[sb] >> (4 * p)) & 15) - 8);
        put_slice(q, imc_iq2nl_values + 4 * ((extra >> h) & 1), dl, y + 16 * h);
    }
}

static void dec_iq3_k(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const unsigned extra = load_u16(b + 2), sh = load_u16(b + 4);
    const uint8_t *sl = b + 6, *qs = b + 14, *qh = b + 78;
    for (int h = 0; h < 16; h++) {
        const int sb = h / 2, p = h % 2, shift = 2 * (sb % 4);
        const uint8_t *lo = qs + 32 * (sb / 4) + 16 * p, *hi = qh + 16 * p;
        uint8_t q[16];
        for (int j = 0; j < 16; j++) {
            q[j] = (uint8_t)(((lo[j] >> shift) & 3) | ((hi[j] >> sb) & 1) << 2);
        }
        const int s = 2 * ((sl[sb] >> (4 * p)) & 15) + 1;
        const float dl = d * (float)((sh >> h) & 1 ? -s : s);
        put_slice(q, imc_iq3nl_values + 8 * ((extra >> h) & 1), dl, y + 16 * h);
    }
}

// The 6-bit scale of slice h of iq4_k / iq5_k (offset 32 removed).
static inline int iq45_scale(const uint8_t *sh, const uint8_t *sl, int h)
{
    return (((sl[h / 2] >> (4 * (h % 2))) & 15) | ((sh[h / 4] >> (2 * (h % 4))) & 3) << 4) - 32;
}

static void dec_iq4_k(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const unsigned extra = load_u16(b + 2);
    const uint8_t *sh = b + 4, *sl = b + 8, *qs = b + 16;
    for (int h = 0; h < 16; h++) {
        const int p = h % 2;
        const uint8_t *src = qs + 16 * (h / 2);
        uint8_t q[16];
        for (int j = 0; j < 16; j++) {
            q[j] = (src[j] >> (4 * p)) & 15;
        }
        const float dl = d * (float)iq45_scale(sh, sl, h);
        put_slice(q, imc_iq4k_values + 16 * ((extra >> h) & 1), dl, y + 16 * h);
    }
}

static void dec_iq5_k(const uint8_t *restrict b, float *restrict y)
{
    const float d = load_fp16(b);
    const unsigned extra = load_u16(b + 2);
    const uint8_t *sh = b + 4, *sl = b + 8, *qs = b + 16, *qh = b + 144;
    for (int h = 0; h < 16; h++) {
        const int t = h / 4, u = h % 4, nib = u / 2, hbit = 2 * t + nib;
        const uint8_t *lo = qs + 32 * t + 16 * (u % 2), *hi = qh + 16 * (u % 2);
        uint8_t q[16];
        for (int j = 0; j < 16; j++) {
            q[j] = (uint8_t)(((lo[j] >> (4 * nib)) & 15) | ((hi[j] >> hbit) & 1) << 4);
        }
        const float dl = d * (float)iq45_scale(sh, sl, h);
        put_slice(q, imc_iq5nl_values + 32 * ((extra >> h) & 1), dl, y + 16 * h);
    }
}

IMC_DEFINE_DEQUANT_ROW(IQ2_K, dec_iq2_k)
IMC_DEFINE_DEQUANT_ROW(IQ3_K, dec_iq3_k)
IMC_DEFINE_DEQUANT_ROW(IQ4_K, dec_iq4_k)
IMC_DEFINE_DEQUANT_ROW(IQ5_K, dec_iq5_k)

// iq6_k's levels: the cubic a + q·(b + q·(c + q·e)) of the reference (its coefficients, data
// from ik_llama.cpp's iqk_quantize.cpp), evaluated as the reference's build does, with fused
// multiply-adds (gcc contracts its expression under -march=native), then + 1 for the second
// half. Computed once per row into lv[64 · half + q].
static void iq6_levels(float *lv)
{
    const float a = -127.f, b = 6.2568f, c = -0.11218f, e = 0.0011972f;
    for (int q = 0; q < 64; q++) {
        const float fq = (float)q;
        lv[q] = fmaf(fq, fmaf(fq, fmaf(fq, e, c), b), a);
        lv[64 + q] = lv[q] + 1.f;
    }
}

static void dec_iq6_k(const uint8_t *restrict b, const float *restrict lv, float *restrict y)
{
    const float d = load_fp16(b);
    const unsigned extra = load_u16(b + 2);
    const int8_t *sc = (const int8_t *)(b + 4);
    const uint8_t *qs = b + 20, *qh = b + 148;
    for (int h = 0; h < 16; h++) {
        const int t = h / 4, u = h % 4, nib = u / 2, hshift = 4 * (t % 2) + 2 * nib;
        const uint8_t *lo = qs + 32 * t + 16 * (u % 2), *hi = qh + 32 * (t / 2) + 16 * (u % 2);
        const float *v = lv + 64 * ((extra >> h) & 1);
        const float dl = d * (float)sc[h];
        for (int j = 0; j < 16; j++) {
            const int q = ((lo[j] >> (4 * nib)) & 15) | ((hi[j] >> hshift) & 3) << 4;
            y[16 * h + j] = dl * v[q];
        }
    }
}

void imc_dequant_row_IQ6_K(const void *src, float *dst, int64_t n)
{
    float lv[128];
    iq6_levels(lv);
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += IMC_QK_K, b += 212) {
        dec_iq6_k(b, lv, dst + i);
    }
}
