/*
 * kernels/cpu/qmm_avx2.h: the AVX2 pieces the two AVX2 tiles of the quantized-activation matmul
 * share (kernels/cpu/qmm.h; private to qmm_avx2.c, the repacking tile, and qmm_direct_avx2.c,
 * the small-batch tile that reads the weights in place): decoding a weight block to int8 lanes,
 * a K super-block's integer scales and mins as int16 vectors, storing 8 output lanes. Every
 * function is inline and compiled for AVX2+FMA+F16C by target attributes only; callers hand
 * them out only when the CPU has all three.
 */
#ifndef IMC_KERNELS_CPU_QMM_AVX2_H
#define IMC_KERNELS_CPU_QMM_AVX2_H

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/cpu/qmm.h"
#include "types/nl_tables.h"
#include "types/types.h"

// The K types of the route, as X(short name, type): one instantiation per type in both tiles.
#define IMC_QMM_K_TYPES(X)                                                                         \
    X(q2, IMC_TYPE_Q2_K)                                                                           \
    X(q3, IMC_TYPE_Q3_K)                                                                           \
    X(q4, IMC_TYPE_Q4_K)                                                                           \
    X(q5, IMC_TYPE_Q5_K)                                                                           \
    X(q6, IMC_TYPE_Q6_K)                                                                           \
    X(iq4, IMC_TYPE_IQ4_XS)

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
    if (type == IMC_TYPE_Q5_0) { // bit e of qh (at 2) is element e's bit 4; nibbles at 6
        uint32_t qh;
        memcpy(&qh, blk + 2, 4);
        const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2,
                                             2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
        const __m256i hb = _mm256_cmpeq_epi8(
            _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), sel), bit), bit);
        return _mm256_sub_epi8(
            _mm256_or_si256(nibbles(blk + 6), _mm256_and_si256(hb, _mm256_set1_epi8(0x10))),
            _mm256_set1_epi8(16));
    }
    const __m256i v = nibbles(blk + 2);
    if (type == IMC_TYPE_IQ4_NL) {
        return _mm256_shuffle_epi8(iq4_grid(), v);
    }
    return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
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

// The 16 integer scales (one per 16 elements) and mins of a K super-block as int16 vectors
// (*sc, *mn; mn zero for types without mins): imc_qmm_kscales' integers, by word arithmetic.
AVX2 INLINE void kscales16(enum imc_type type, const uint8_t *blk, __m256i *sc, __m256i *mn)
{
    const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t a, b, c;
    *mn = _mm256_setzero_si256();
    if (type == IMC_TYPE_Q4_K || type == IMC_TYPE_Q5_K) { // 8 × (6-bit scale, 6-bit min)
        memcpy(&a, blk + 4, 4);
        memcpy(&b, blk + 8, 4);
        memcpy(&c, blk + 12, 4);
        const uint32_t slo = a & 0x3f3f3f3f, mlo = b & 0x3f3f3f3f;
        const uint32_t shi = (c & m4) | ((a >> 6) & m2) << 4;
        const uint32_t mhi = ((c >> 4) & m4) | ((b >> 6) & m2) << 4;
        const __m128i sm = _mm_set_epi32((int)mhi, (int)mlo, (int)shi, (int)slo);
        const __m128i dup = _mm_set_epi8(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
        *sc = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, dup));
        *mn = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, _mm_add_epi8(dup, _mm_set1_epi8(8))));
    } else if (type == IMC_TYPE_Q6_K) { // 16 int8 at 192
        *sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 192)));
    } else if (type == IMC_TYPE_Q2_K) { // scale low nibble, min high nibble
        const __m128i v = _mm_loadu_si128((const __m128i *)blk), k4 = _mm_set1_epi8(0x0F);
        *sc = _mm256_cvtepu8_epi16(_mm_and_si128(v, k4));
        *mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(v, 4), k4));
    } else if (type == IMC_TYPE_Q3_K) { // 4 bits of bytes 96-103, top 2 bits of 104-107
        memcpy(&a, blk + 96, 4);
        memcpy(&b, blk + 100, 4);
        memcpy(&c, blk + 104, 4);
        const __m128i v =
            _mm_set_epi32((int)(((b >> 4) & m4) | ((c >> 6) & m2) << 4),
                          (int)(((a >> 4) & m4) | ((c >> 4) & m2) << 4),
                          (int)((b & m4) | ((c >> 2) & m2) << 4), (int)((a & m4) | (c & m2) << 4));
        *sc = _mm256_sub_epi16(_mm256_cvtepu8_epi16(v), _mm256_set1_epi16(32));
    } else { // IQ4_XS: scales_l (4 bytes of two nibbles) and scales_h (u16 of 2-bit pairs)
        memcpy(&a, blk + 4, 4);
        uint32_t h = (uint32_t)blk[2] | (uint32_t)blk[3] << 16; // byte 2i: nibbles 2i, 2i+1
        h = (h | h << 4) & m4;                                  // byte i = nibble i
        const uint32_t even = (a & m4) | (h & m2) << 4;
        const uint32_t odd = ((a >> 4) & m4) | ((h >> 2) & m2) << 4;
        const __m128i ls =
            _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)even), _mm_cvtsi32_si128((int)odd));
        const __m128i s8 = _mm_sub_epi16(_mm_cvtepu8_epi16(ls), _mm_set1_epi16(32));
        *sc = _mm256_set_m128i(_mm_unpackhi_epi16(s8, s8), _mm_unpacklo_epi16(s8, s8));
    }
}

// y[t·ldy + r] = lane r of acc[t], r < nr.
AVX2 INLINE void store8(const __m256 *acc, float *y, int64_t ldy, int nr, const int T)
{
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
        if (nr == 8) {
            _mm256_storeu_ps(y + t * ldy, acc[t]);
        } else {
            float v[8];
            _mm256_storeu_ps(v, acc[t]);
            memcpy(y + t * ldy, v, (size_t)nr * sizeof(float));
        }
    }
}

// The 8 × 8 transpose of 32-bit lanes: v[j] lane r = v[r] lane j before.
AVX2 INLINE void transpose8(__m256i v[8])
{
    __m256i t[8], u[8];
#pragma GCC unroll 16
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
        t[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
        v[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
    }
}

// Rows w .. w + (nr−1)·rb (nr <= 16) of a K type into nb groups of 16 rows per super-block at
// out (the AVX2 tile's K repack, qmm_avx2.c, writing its parts interleaved), qmm_vnni.c's layout
// (IMC_QMM_GK16 bytes): d[16], dmin[16] (f32); the 16 groups' scale pairs at IMC_QMM_GK16_SC (64
// bytes each: lane r = row r's (sc_k, sc_k)); 8 vectors of block-sum multipliers at
// IMC_QMM_GK16_MN (lane r = row r's min pairs (mn_2i, mn_2i+1), for q3_k, q6_k, iq4_xs
// (−β·sc_2i, −β·sc_2i+1)); the weights at IMC_QMM_GK16_Q, 256 bytes per group k, vector j lane
// r = row r's elements 16k + 4j .. + 3, unsigned: + β for q3_k (4), q6_k (32), iq4_xs (128).
#define IMC_QMM_GK16 5760
#define IMC_QMM_GK16_SC 128
#define IMC_QMM_GK16_MN 1152
#define IMC_QMM_GK16_Q 1664
void imc_qmm_repack_k16_avx2(enum imc_type type, const uint8_t *w, uint64_t rb, int nr, int64_t nb,
                             uint8_t *out);

// A repacking tile's kernel: a group of repacked rows (8, or 16 in qmm_vnni.c's 512-bit tile of
// the 32-block types; nb blocks at g, nr of them real) × one call's tokens (a constant per
// function), outputs y[t·ldy + r].
typedef void (*imc_qmm_kern_fn)(const uint8_t *g, int64_t nb, const uint8_t *xq, uint64_t ldq,
                                float *y, int64_t ldy, int nr);

// A tile's repack: nr <= mr rows from w (rb bytes apart) into nb blocks' groups at out.
typedef void (*imc_qmm_repack_fn)(enum imc_type type, const uint8_t *w, uint64_t rb, int nr,
                                  int64_t nb, uint8_t *out);

// A tile's nr rows at w into groups of mr rows, gbytes each, from rp on.
void imc_qmm_repack_rows(imc_qmm_repack_fn repack, int mr, enum imc_type type, const uint8_t *w,
                         uint64_t row_bytes, int64_t nr, int64_t nb, uint64_t gbytes, uint8_t *rp);

// How a repacking tile calls its kernels over its repacked rows (groups of gr rows, gbytes
// apart): mr rows (a multiple of gr) × up to ntok tokens per call, kern[tn − 1] for tn tokens;
// where tail is set, a last call of at most gr rows takes tail (up to ntok_tail tokens).
struct imc_qmm_calls {
    const imc_qmm_kern_fn *kern;
    int ntok, mr, gr;
    const imc_qmm_kern_fn *tail; // NULL: kern for every call
    int ntok_tail;
};

// The kernel calls of a repacking tile over its repacked rows rp: passes of the largest multiple
// of c->ntok tokens up to 32 (their blocks stay in L2), each over all the tile's rows.
void imc_qmm_run_passes(const struct imc_qmm_calls *c, const uint8_t *rp, uint64_t gbytes,
                        int64_t nr, const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb,
                        float *y, int64_t ldy);

AVX2 INLINE void zero_acc(__m256 *acc, const int T)
{
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
        acc[t] = _mm256_setzero_ps();
    }
}

#endif // x86

#endif // IMC_KERNELS_CPU_QMM_AVX2_H
