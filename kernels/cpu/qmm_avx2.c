/*
 * kernels/cpu/qmm_avx2: the AVX2 micro-tile of the quantized-activation matmul
 * (kernels/cpu/qmm.h). Compiled for AVX2+FMA+F16C by target attributes only; handed out when
 * the CPU has all three.
 *
 * Per block and (row, token) pair: |w| as unsigned bytes and x with w's sign (sign trick), so
 * _mm256_maddubs_epi16 gives the 16 pair sums w·x (|pair| <= 2·128·127 < 2^15: no saturation),
 * _mm256_madd_epi16 with ones adds neighbouring pairs into 32-bit lane l = elements 4l..4l+3
 * (exact), _mm256_cvtepi32_ps and _mm256_fmadd_ps with the broadcast product dw·dx are, per
 * lane, (float)I and fmaf of the generic kernel. The final sum adds the halves, then the
 * pairs, then the two remaining values: the reduction order qmm.h states.
 *
 * 256-block types: per super-block, row and token, the 32 weights of each sub-block j are
 * unpacked into one register (unsigned for q2_k, q4_k, q5_k, which go straight into maddubs;
 * signed for the others, through the sign trick), _mm256_madd_epi16 with the sub-block's scales
 * (one int16 per 128-bit half: elements 32j..32j+15 and 32j+16..32j+31) leaves sc · (elements
 * 4l..4l+3) in lane l, summed over j in int32: I_l of qmm.h (pairs <= 2·127·127 < 2^15, lane
 * sums < 2^24: no saturation, no overflow). Tiles are one W row × up to 4 tokens. The mins are one
 * madd of the duplicated mins with the token's 16 block sums: M_l. Then fmadd and fnmadd with the
 * broadcast scale products, the two fmaf of the generic kernel. The sub-block scales and mins are
 * unpacked per super-block into int16 vectors by word and byte-shuffle arithmetic: the same
 * integers as imc_qmm_kscales gives the generic kernel.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/cpu/qmm.h"
#include "types/nl_tables.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

// The 32 nibbles of 16 bytes: low nibbles (elements 0..15), then high nibbles (16..31).
AVX2 INLINE __m256i nibbles(const uint8_t *p)
{
    const __m128i b = _mm_loadu_si128((const __m128i *)p);
    const __m128i m = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
    return _mm256_set_m128i(hi, lo);
}

// The iq4 grid in both 128-bit halves, for _mm256_shuffle_epi8.
AVX2 INLINE __m256i iq4_grid(void)
{
    const __m128i g = _mm_loadu_si128((const __m128i *)imc_iq4k_values);
    return _mm256_set_m128i(g, g);
}

AVX2 INLINE float f16(const uint8_t *p)
{
    return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8));
}

// The 32 signed weights of a block (nibbles − 8 for Q4_0, the grid for IQ4_NL) and its scale.
AVX2 INLINE __m256i weights(enum imc_type type, const uint8_t *blk, float *d)
{
    *d = f16(blk);
    if (type == IMC_TYPE_Q8_0) {
        return _mm256_loadu_si256((const __m256i *)(blk + 2));
    }
    const __m256i v = nibbles(blk + 2);
    if (type == IMC_TYPE_IQ4_NL) {
        return _mm256_shuffle_epi8(iq4_grid(), v);
    }
    return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

AVX2 INLINE float reduce8(__m256 v)
{
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

AVX2 INLINE void zero_acc(__m256 acc[IMC_QMM_MR][IMC_QMM_NT], const int R, const int T)
{
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            acc[r][t] = _mm256_setzero_ps();
        }
    }
}

// y[t·ldy + r] = the reduced lanes of acc[r][t].
AVX2 INLINE void store_acc(__m256 acc[IMC_QMM_MR][IMC_QMM_NT], float *y, int64_t ldy, const int R,
                           const int T)
{
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            y[t * ldy + r] = reduce8(acc[r][t]);
        }
    }
}

// The R × T micro-tile (R <= IMC_QMM_MR, T <= IMC_QMM_NT constants: the loops unroll into
// registers; 2 × 4 measured fastest of 1-4 × 1-4 on an AMD EPYC with AVX2).
AVX2 INLINE void tile(enum imc_type type, const uint8_t *w, uint64_t row_bytes, const uint8_t *xq,
                      uint64_t ldq, int64_t nb, float *y, int64_t ldy, const int R, const int T)
{
    const uint64_t bb = row_bytes / (uint64_t)nb; // the type's block size (types.def)
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[IMC_QMM_MR][IMC_QMM_NT];
    zero_acc(acc, R, T);
    for (int64_t b = 0; b < nb; b++) {
        __m256i wv[IMC_QMM_MR], ax[IMC_QMM_MR];
        __m256 dw[IMC_QMM_MR];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float d;
            wv[r] = weights(type, w + (uint64_t)r * row_bytes + (uint64_t)b * bb, &d);
            ax[r] = _mm256_sign_epi8(wv[r], wv[r]);
            dw[r] = _mm256_set1_ps(d);
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const struct imc_q8x *xb = (const struct imc_q8x *)(xq + t * ldq) + b;
            const __m256i xv = _mm256_loadu_si256((const __m256i *)xb->q);
            const __m256 dx = _mm256_broadcast_ss(&xb->d);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m256i p = _mm256_maddubs_epi16(ax[r], _mm256_sign_epi8(xv, wv[r]));
                const __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                acc[r][t] = _mm256_fmadd_ps(f, _mm256_mul_ps(dw[r], dx), acc[r][t]);
            }
        }
    }
    store_acc(acc, y, ldy, R, T);
}

// The 32 weights of sub-block j (< 8) of a K super-block b, in element order (qmm.h): unsigned
// for q2_k, q4_k, q5_k; signed for q3_k, q6_k, iq4_xs. j is a constant after unrolling.
AVX2 INLINE __m256i ksub(enum imc_type type, const uint8_t *b, int j)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    const int h = j / 4, k = j % 4;
#define LD(off) _mm256_loadu_si256((const __m256i *)(b + (off)))
#define BITS(v, sh, m) _mm256_and_si256(_mm256_srli_epi16((v), (sh)), (m))
    switch (type) {
    case IMC_TYPE_Q2_K:
        return BITS(LD(16 + 32 * h), 2 * k, m2);
    case IMC_TYPE_Q3_K: {
        const __m256i hb = _mm256_slli_epi16(BITS(LD(0), 4 * h + k, m1), 2);
        return _mm256_sub_epi8(_mm256_or_si256(BITS(LD(32 + 32 * h), 2 * k, m2), hb),
                               _mm256_set1_epi8(4));
    }
    case IMC_TYPE_Q4_K:
        return BITS(LD(16 + 32 * (j / 2)), 4 * (j % 2), m4);
    case IMC_TYPE_Q5_K: {
        const __m256i hb = _mm256_slli_epi16(BITS(LD(16), j, m1), 4);
        return _mm256_or_si256(BITS(LD(48 + 32 * (j / 2)), 4 * (j % 2), m4), hb);
    }
    case IMC_TYPE_Q6_K: {
        const __m256i hb = _mm256_slli_epi16(BITS(LD(128 + 32 * h), 2 * k, m2), 4);
        const __m256i lo = BITS(LD(64 * h + 32 * (k & 1)), 4 * (k >> 1), m4);
        return _mm256_sub_epi8(_mm256_or_si256(lo, hb), _mm256_set1_epi8(32));
    }
    default: // IQ4_XS
        return _mm256_shuffle_epi8(iq4_grid(), nibbles(b + 8 + 16 * j));
    }
#undef LD
#undef BITS
}

// q4_k / q5_k: the 8 scales as int16 in both 128-bit halves (*sc8) and the 8 mins, each twice,
// as 16 int16 (*mn16), from the 12 packed bytes by 32-bit word arithmetic: the integers of
// imc_qmm_kscales, without its per-scale loop.
AVX2 INLINE void kscales_q45(const uint8_t *blk, __m256i *sc8, __m256i *mn16)
{
    uint32_t a, b, c;
    memcpy(&a, blk + 4, 4);
    memcpy(&b, blk + 8, 4);
    memcpy(&c, blk + 12, 4);
    const uint32_t slo = a & 0x3f3f3f3f, mlo = b & 0x3f3f3f3f;
    const uint32_t shi = (c & 0x0f0f0f0f) | ((a >> 6) & 0x03030303) << 4;
    const uint32_t mhi = ((c >> 4) & 0x0f0f0f0f) | ((b >> 6) & 0x03030303) << 4;
    const __m128i sm = _mm_set_epi32((int)mhi, (int)mlo, (int)shi, (int)slo);
    *sc8 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
    const __m128i dup = _mm_set_epi8(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
    *mn16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, dup));
}

// iq4_xs: the 8 scales ls − 32 as int16 in both 128-bit halves, from scales_l (4 bytes of two
// nibbles) and scales_h (u16 of 2-bit pairs) by word arithmetic: imc_qmm_kscales' integers.
AVX2 INLINE __m256i kscales_iq4xs(const uint8_t *blk)
{
    uint32_t l;
    memcpy(&l, blk + 4, 4);
    uint32_t h = (uint32_t)blk[2] | (uint32_t)blk[3] << 16; // byte 2i: scales_h nibbles 2i, 2i+1
    h = (h | h << 4) & 0x0F0F0F0F;                          // byte i = nibble i of scales_h
    const uint32_t even = (l & 0x0f0f0f0f) | (h & 0x03030303) << 4;
    const uint32_t odd = ((l >> 4) & 0x0f0f0f0f) | ((h >> 2) & 0x03030303) << 4;
    const __m128i ls = _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)even), _mm_cvtsi32_si128((int)odd));
    return _mm256_broadcastsi128_si256(_mm_sub_epi16(_mm_cvtepu8_epi16(ls), _mm_set1_epi16(32)));
}

// q2_k / q3_k / q6_k: the 16 scales (per 16 elements) as int16, 0..7 in both halves of *lo and
// 8..15 in both halves of *hi; q2_k's 16 mins in order as 16 int16 (*mn16; zero for the others).
AVX2 INLINE void kscales_16(enum imc_type type, const uint8_t *blk, __m256i *lo, __m256i *hi,
                            __m256i *mn16)
{
    __m256i sc;
    if (type == IMC_TYPE_Q6_K) {
        sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 192)));
        *mn16 = _mm256_setzero_si256(); // (no mins)
    } else if (type == IMC_TYPE_Q3_K) { // 4 bits of bytes 0-7, top 2 bits of bytes 8-11
        uint32_t a, b, c;
        memcpy(&a, blk + 96, 4);
        memcpy(&b, blk + 100, 4);
        memcpy(&c, blk + 104, 4);
        const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
        const __m128i v =
            _mm_set_epi32((int)(((b >> 4) & m4) | ((c >> 6) & m2) << 4),
                          (int)(((a >> 4) & m4) | ((c >> 4) & m2) << 4),
                          (int)((b & m4) | ((c >> 2) & m2) << 4), (int)((a & m4) | (c & m2) << 4));
        sc = _mm256_sub_epi16(_mm256_cvtepu8_epi16(v), _mm256_set1_epi16(32));
        *mn16 = _mm256_setzero_si256();
    } else {
        const __m128i b = _mm_loadu_si128((const __m128i *)blk), m4 = _mm_set1_epi8(0x0F);
        sc = _mm256_cvtepu8_epi16(_mm_and_si128(b, m4));
        *mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(b, 4), m4));
    }
    *lo = _mm256_permute2x128_si256(sc, sc, 0x00);
    *hi = _mm256_permute2x128_si256(sc, sc, 0x11);
}

// The shuffle that puts int16 2j' (j' = j % 4) of a 128-bit half in every int16 of the low half
// and int16 2j' + 1 in every int16 of the high half.
AVX2 INLINE __m256i pick_pair(int j)
{
    const short a = (short)(0x0100 + 0x0404 * (j % 4)), b = (short)(a + 0x0202);
    return _mm256_set_epi16(b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a);
}

AVX2 INLINE bool ksigned(enum imc_type type)
{
    return type == IMC_TYPE_Q3_K || type == IMC_TYPE_Q6_K || type == IMC_TYPE_IQ4_XS;
}

// The R × T micro-tile of a K type (a constant: one copy per type). Scales per 16 elements
// (s16) differ between the 128-bit halves; per 32 they are the same in both.
AVX2 INLINE void ktile(enum imc_type type, const uint8_t *w, uint64_t row_bytes, const uint8_t *xq,
                       uint64_t ldq, int64_t nb, float *y, int64_t ldy, const int R, const int T)
{
    const uint64_t bb = row_bytes / (uint64_t)nb;
    const bool sgn = ksigned(type), mins = imc_qmm_has_mins(type);
    const bool q45 = type == IMC_TYPE_Q4_K || type == IMC_TYPE_Q5_K;
    const bool s16 = type == IMC_TYPE_Q2_K || type == IMC_TYPE_Q3_K || type == IMC_TYPE_Q6_K;
    __m256 acc[IMC_QMM_MR][IMC_QMM_NT];
    zero_acc(acc, R, T);
    for (int64_t b = 0; b < nb; b++) {
        // scales: per 32 elements all in sc8 (both halves); per 16 in slo and shi (kscales_16)
        __m256i sc8[IMC_QMM_MR], mn16[IMC_QMM_MR], slo[IMC_QMM_MR], shi[IMC_QMM_MR];
        float d[IMC_QMM_MR], dmin[IMC_QMM_MR];
        const uint8_t *blk[IMC_QMM_MR];
        const struct imc_q8k *xb[IMC_QMM_NT];
        __m256i is[IMC_QMM_MR][IMC_QMM_NT];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            blk[r] = w + (uint64_t)r * row_bytes + (uint64_t)b * bb;
            if (q45) {
                kscales_q45(blk[r], &sc8[r], &mn16[r]);
            } else if (s16) {
                kscales_16(type, blk[r], &slo[r], &shi[r], &mn16[r]);
            } else {
                sc8[r] = kscales_iq4xs(blk[r]);
                mn16[r] = _mm256_setzero_si256(); // (no mins)
            }
            d[r] = f16(blk[r] + imc_qmm_kd_offset(type));
            dmin[r] = mins ? f16(blk[r] + imc_qmm_kd_offset(type) + 2) : 0.0f;
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                is[r][t] = _mm256_setzero_si256();
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            xb[t] = (const struct imc_q8k *)(xq + t * ldq) + b;
        }
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m256i wv[IMC_QMM_MR], ax[IMC_QMM_MR], sv[IMC_QMM_MR];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                wv[r] = ksub(type, blk[r], j);
                ax[r] = sgn ? _mm256_sign_epi8(wv[r], wv[r]) : wv[r];
                if (s16) { // scales 2j, 2j + 1 in the low, high half
                    sv[r] = _mm256_shuffle_epi8(j < 4 ? slo[r] : shi[r], pick_pair(j));
                } else { // int16 j of sc8 in every lane
                    sv[r] = _mm256_shuffle_epi8(sc8[r],
                                                _mm256_set1_epi16((short)(0x0100 + 0x0202 * j)));
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(xb[t]->q + 32 * j));
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    const __m256i p =
                        _mm256_maddubs_epi16(ax[r], sgn ? _mm256_sign_epi8(xv, wv[r]) : xv);
                    is[r][t] = _mm256_add_epi32(is[r][t], _mm256_madd_epi16(p, sv[r]));
                }
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m256i mv = mn16[r];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const float dx = xb[t]->d;
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[r][t]), _mm256_set1_ps(d[r] * dx),
                                            acc[r][t]);
                if (mins) {
                    const __m256i bs = _mm256_loadu_si256((const __m256i *)xb[t]->bsum);
                    const __m256 m = _mm256_cvtepi32_ps(_mm256_madd_epi16(mv, bs));
                    acc[r][t] = _mm256_fnmadd_ps(m, _mm256_set1_ps(dmin[r] * dx), acc[r][t]);
                }
            }
        }
    }
    store_acc(acc, y, ldy, R, T);
}

typedef void (*tile_fn)(enum imc_type, const uint8_t *, uint64_t, const uint8_t *, uint64_t,
                        int64_t, float *, int64_t);

// One function per (type, R, T): NAME_R_T calls CALL (tile or ktile) with constant shapes;
// TILES makes the 2 × 4 table of a name.
#define TILE_FN(NAME, CALL, TYPE, R, T)                                                            \
    AVX2 static void NAME##_##R##_##T(enum imc_type type, const uint8_t *w, uint64_t rb,           \
                                      const uint8_t *xq, uint64_t ldq, int64_t nb, float *y,       \
                                      int64_t ldy)                                                 \
    {                                                                                              \
        (void)type;                                                                                \
        CALL(TYPE, w, rb, xq, ldq, nb, y, ldy, R, T);                                              \
    }
#define TILES(NAME, CALL, TYPE)                                                                    \
    TILE_FN(NAME, CALL, TYPE, 1, 1)                                                                \
    TILE_FN(NAME, CALL, TYPE, 1, 2)                                                                \
    TILE_FN(NAME, CALL, TYPE, 1, 3)                                                                \
    TILE_FN(NAME, CALL, TYPE, 1, 4)                                                                \
    TILE_FN(NAME, CALL, TYPE, 2, 1)                                                                \
    TILE_FN(NAME, CALL, TYPE, 2, 2)                                                                \
    TILE_FN(NAME, CALL, TYPE, 2, 3)                                                                \
    TILE_FN(NAME, CALL, TYPE, 2, 4)                                                                \
    static const tile_fn NAME[IMC_QMM_MR][IMC_QMM_NT] = {                                          \
        {NAME##_1_1, NAME##_1_2, NAME##_1_3, NAME##_1_4},                                          \
        {NAME##_2_1, NAME##_2_2, NAME##_2_3, NAME##_2_4}};
// The K types' tiles are one row high (1 × T): at 2 × T the integer sums spill registers, and
// one row at a time measured 5-25% faster on an AMD EPYC with AVX2.
#define KTILES(NAME, TYPE)                                                                         \
    TILE_FN(NAME, ktile, TYPE, 1, 1)                                                               \
    TILE_FN(NAME, ktile, TYPE, 1, 2)                                                               \
    TILE_FN(NAME, ktile, TYPE, 1, 3)                                                               \
    TILE_FN(NAME, ktile, TYPE, 1, 4)                                                               \
    static const tile_fn NAME[IMC_QMM_NT] = {NAME##_1_1, NAME##_1_2, NAME##_1_3, NAME##_1_4};
_Static_assert(IMC_QMM_MR == 2 && IMC_QMM_NT == 4, "the tables below cover 2 x 4 micro-tiles");

TILES(t32, tile, type)
KTILES(tq2k, IMC_TYPE_Q2_K)
KTILES(tq3k, IMC_TYPE_Q3_K)
KTILES(tq4k, IMC_TYPE_Q4_K)
KTILES(tq5k, IMC_TYPE_Q5_K)
KTILES(tq6k, IMC_TYPE_Q6_K)
KTILES(tiq4xs, IMC_TYPE_IQ4_XS)

static void kernel_avx2(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int nr,
                        const uint8_t *xq, uint64_t ldq, int nt, int64_t nb, float *y, int64_t ldy)
{
    const tile_fn *ktiles = type == IMC_TYPE_Q2_K     ? tq2k
                            : type == IMC_TYPE_Q3_K   ? tq3k
                            : type == IMC_TYPE_Q4_K   ? tq4k
                            : type == IMC_TYPE_Q5_K   ? tq5k
                            : type == IMC_TYPE_Q6_K   ? tq6k
                            : type == IMC_TYPE_IQ4_XS ? tiq4xs
                                                      : NULL;
    if (ktiles) {
        for (int r = 0; r < nr; r++) {
            ktiles[nt - 1](type, w + (uint64_t)r * row_bytes, row_bytes, xq, ldq, nb, y + r, ldy);
        }
        return;
    }
    t32[nr - 1][nt - 1](type, w, row_bytes, xq, ldq, nb, y, ldy);
}

imc_qmm_kernel_fn imc_qmm_kernel_avx2(void)
{
    __builtin_cpu_init();
    const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
    return ok ? kernel_avx2 : NULL;
}

#endif // x86
