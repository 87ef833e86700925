/*
 * types/kt.c: ik_llama.cpp's trellis types iq1_kt, iq2_kt, iq3_kt and iq4_kt. DESIGN.md §4.
 *
 * A row is one f32 scale d (4 bytes of meta, little-endian) followed by 256-element super-blocks.
 * Every group of 8 consecutive elements (4 for iq4_kt) comes from one integer seed: the state
 * x = seed + base (base 4096, or 4096 + 32768 for some iq4_kt blocks) is multiplied by
 * KT_MUL modulo 2^32 once per element, and the element's value v is the sum of the four bytes
 * of x & 0x3f3f3f3f, minus 126 (an integer in [-126, 126], so exact as a float). The element is
 * then sl * v (iq3_kt: sl * |v|, its sign bit flipped by a sign bit), with sl = d * (block
 * scale) rounded first, as the reference does. Two single multiplications and nothing to add:
 * the reference's scalar to_float (dequantize_row_iq*_kt; its AVX2 path is disabled) has no
 * expression an FMA could contract, so the values do not depend on FMA. The reference's
 * d = meta * 1.0f is left out: it only quiets a signaling NaN, which the next product does.
 *
 * Byte layouts of one super-block (32-element blocks ib = 0..7; group j = element / 8):
 *   iq1_kt  56 B {u8 sh[8]; u8 ql[32]; u8 qh[16]}
 *           sl = d * iq4k[sh[ib] & 15]; seed of group j (ib = j / 4) has 13 bits: ql[j], bits 8-11
 *           nibble j / 16 of qh[j % 16], bit 12 = bit 4 + j % 4 of sh[ib].
 *   iq2_kt  68 B {u8 scales[4]; u16 seed[32]}
 *           seed[j] for group j; block ib < 4 of the first half (elements 0..127) uses the low
 *           nibble of scales[ib], block ib of the second half the high one: sl = d * iq4k[..].
 *   iq3_kt  100 B {u8 scales[4]; u16 seed[32]; u8 qh[32]}
 *           as iq2_kt, but sl = d * nibble (no grid) and the element is sl * |v|, negated when
 *           bit ib + 4 h of qh[8 (j % 4) + t] is set (half h, block ib, element t of group j).
 *   iq4_kt  128 B {u32 sh[8]; u8 ql[64]; u8 qh[32]} groups of 4 (j = element / 4)
 *           sh[ib]: bit 0 selects base 4096 + 32768, bits 1-7 the scale (sl = d * (s - 64)),
 *           bits 8 + 3 g .. 10 + 3 g seed bits 12-14 of group g = j % 8 of the block; seed bits
 *           0-7 are ql[j], bits 8-11 nibble j / 32 of qh[j % 32].
 */
#include "types/nl_tables.h"
#include "types/quant_priv.h"

#define KT_MUL 0xCBAC1FEDu    // the generator's multiplier
#define KT_BASE 4096u         // added to every seed
#define KT_BASE_HI 36864u     // iq4_kt's other base (4096 + 32768)

static inline unsigned load_u16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

// The value of state x: the byte sum of x & 0x3f3f3f3f (each byte < 64, so the multiply's top
// byte holds the sum without carries) minus 126.
static inline int kt_value(uint32_t x)
{
    return (int)(((x & 0x3f3f3f3fu) * 0x01010101u) >> 24) - 126;
}

// KT_MUL^(k + 1) mod 2^32, constant expressions: state k after x is kt_pow[k] * x, so the
// states of a group are independent products (vectorizable) instead of a chain.
#define KT_P2 (KT_MUL * KT_MUL)
#define KT_P4 (KT_P2 * KT_P2)
static const uint32_t kt_pow[8] = {
    KT_MUL, KT_P2, KT_P2 * KT_MUL, KT_P4, KT_P4 * KT_MUL, KT_P4 * KT_P2, KT_P4 * KT_P2 * KT_MUL,
    KT_P4 * KT_P4,
};

static inline __attribute__((always_inline)) void kt_states(uint32_t x, int n, uint32_t *st)
{
    for (int k = 0; k < n; k++) {
        st[k] = kt_pow[k] * x;
    }
}

// Group of 8 elements from state x: sl * v, or sl * |v| (is_abs).
static inline __attribute__((always_inline)) void kt_group8(uint32_t x, float sl, bool is_abs,
                                                            float *restrict y)
{
    uint32_t st[8];
    kt_states(x, 8, st);
    for (int k = 0; k < 8; k++) {
        const float v = (float)kt_value(st[k]);
        y[k] = sl * (is_abs ? fabsf(v) : v);
    }
}

static void dec_iq1_kt(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    const uint8_t *sh = b, *ql = b + 8, *qh = b + 40;
    for (int ib = 0; ib < 8; ib++) {
        const float sl = d * (float)imc_iq4k_values[sh[ib] & 15];
        for (int g = 0; g < 4; g++) {
            const int j = 4 * ib + g;
            const uint32_t seed = ql[j] | ((qh[j % 16] >> (4 * (j / 16))) & 15u) << 8 |
                                  ((sh[ib] >> (4 + g)) & 1u) << 12;
            kt_group8(seed + KT_BASE, sl, false, y + 8 * j);
        }
    }
}

static void dec_iq2_kt(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    const uint8_t *seed = b + 4;
    for (int h = 0; h < 2; h++) {
        for (int ib = 0; ib < 4; ib++) {
            const float sl = d * (float)imc_iq4k_values[(b[ib] >> (4 * h)) & 15];
            for (int g = 0; g < 4; g++) {
                const int j = 16 * h + 4 * ib + g;
                kt_group8(load_u16(seed + 2 * j) + KT_BASE, sl, false, y + 8 * j);
            }
        }
    }
}

static void dec_iq3_kt(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    const uint8_t *seed = b + 4, *qh = b + 68;
    for (int h = 0; h < 2; h++) {
        for (int ib = 0; ib < 4; ib++) {
            const float sl = d * (float)((b[ib] >> (4 * h)) & 15);
            const int sb = ib + 4 * h;
            for (int g = 0; g < 4; g++) {
                const int j = 16 * h + 4 * ib + g;
                kt_group8(load_u16(seed + 2 * j) + KT_BASE, sl, true, y + 8 * j);
                // the sign: a flip of the sign bit, as the reference's negation
                for (int t = 0; t < 8; t++) {
                    const uint32_t neg = ((uint32_t)qh[8 * g + t] << (31 - sb)) & 0x80000000u;
                    y[8 * j + t] = bits_to_f32(f32_to_bits(y[8 * j + t]) ^ neg);
                }
            }
        }
    }
}

static void dec_iq4_kt(const uint8_t *restrict b, int lane, float d, float *restrict y)
{
    const uint8_t *ql = b + 32, *qh = b + 96;
    for (int ib = 0; ib < 8; ib++) {
        const uint32_t sh = load_u32(b + 4 * ib);
        const uint32_t base = (sh & 1) ? KT_BASE_HI : KT_BASE;
        const float sl = d * (float)((int)((sh & 0xff) >> 1) - 64);
        for (int g = 0; g < 8; g++) {
            const int j = 8 * ib + g;
            const uint32_t seed = ql[j] | ((qh[j % 32] >> (4 * (j / 32))) & 15u) << 8 |
                                  ((sh >> (8 + 3 * g)) & 7u) << 12;
            uint32_t st[4];
            kt_states(seed + base, 4, st);
            for (int k = 0; k < 4; k++) {
                y[4 * j + k] = sl * (float)kt_value(st[k]);
            }
        }
    }
}

IMC_DEFINE_DECODE(IQ1_KT, dec_iq1_kt)
IMC_DEFINE_DECODE(IQ2_KT, dec_iq2_kt)
IMC_DEFINE_DECODE(IQ3_KT, dec_iq3_kt)
IMC_DEFINE_DECODE(IQ4_KT, dec_iq4_kt)
