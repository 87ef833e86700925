/*
 * kernels/cpu/qmm_direct_avx2: the AVX2 tile of the quantized-activation matmul for few tokens
 * (kernels/cpu/qmm.h, imc_qmm_tile up to imc_qmm_direct_toks): the weight blocks are read where
 * they lie, with no repack into scratch, whose cost per call the repacking tile (qmm_avx2.c)
 * only earns back over many tokens. Compiled for AVX2+FMA+F16C by target attributes only.
 *
 * The same bits as the generic kernel and the repacking tile: per W row and token, each block's
 * integer sum I (and for the K types with mins M) is formed exactly in int32, then one float
 * accumulator per output takes, per block in ascending order, fmaf((float)I, dw·dx, acc) (and
 * fmaf(−(float)M, dmin·dx, acc)). Only the order of the exact integer additions differs:
 *
 * 8 W rows at a time, each row's block decoded to int8 in element order (qmm_avx2.h);
 * per row and token, maddubs (sign trick) and one madd (with ones for the 32-block types; for
 * the K types with the 16-element groups' scales, after one hadd_epi16 of two sub-blocks'
 * results but for iq4_xs, summed over the 8 sub-blocks) leave the row's
 * block sum spread over the 8 int32 lanes of one vector. A horizontal-add tree (hsum8) turns
 * the 8 rows' vectors into one vector whose lane r is row r's exact I (q3_k and q6_k take their
 * weights unsigned, wq + 4 and wq + 32, straight into maddubs, and subtract the exact
 * 4 or 32 · Σ_k sc[k]·bsum[k] before the tree: the same integer, every partial sum < 2^29);
 * the K types' M is one madd of the row's 16 mins with the token's 16 block sums, through the
 * same tree. Then, as in the repacking tile, one cvtepi32_ps and one fmadd (one fnmadd) per
 * block, token and 8 rows, lane r the fmaf of row r. Rows past nr (a tile's last partial group)
 * repeat row nr − 1 and are not stored.
 */
#if defined(__x86_64__) || defined(__i386__)

#include "kernels/cpu/qmm_avx2.h"

#define DTOK 4 // token rows per kernel call

// Lane r of the result = the sum of the 8 int32 lanes of v[r] (exact: |I| < 2^28, qmm.h).
AVX2 INLINE __m256i hsum8(const __m256i v[8])
{
    const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]), h23 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]), h67 = _mm256_hadd_epi32(v[6], v[7]);
    // per 128-bit half: rows 0-3 (lo) and 4-7 (hi), each the sum of that half's 4 lanes
    const __m256i lo = _mm256_hadd_epi32(h01, h23), hi = _mm256_hadd_epi32(h45, h67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20),
                            _mm256_permute2x128_si256(lo, hi, 0x31));
}

// The 8 f16 values at p + r·stride (r < 8) as floats.
AVX2 INLINE __m256 f16x8(const uint8_t *const *p, int off)
{
    uint16_t h[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) {
        memcpy(&h[r], p[r] + off, 2);
    }
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

// 8 rows of a 32-block type at row[0..8) (nr of them stored) × T <= DTOK tokens, nb blocks of
// bb bytes.
AVX2 INLINE void dir32(enum imc_type type, const uint8_t *const *row, uint64_t bb, int64_t nb,
                       const uint8_t *xq, uint64_t ldq, float *y, int64_t ldy, int nr, const int T)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[DTOK];
    zero_acc(acc, T);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk[8];
        __m256i xv[DTOK], s[DTOK][8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            blk[r] = row[r] + (uint64_t)b * bb;
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            xv[t] = _mm256_loadu_si256(
                (const __m256i *)((const struct imc_q8x *)(xq + t * ldq) + b)->q);
        }
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            float d;
            const __m256i wv = weights(type, blk[r], &d);
            const __m256i aw = _mm256_sign_epi8(wv, wv);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[t], wv));
                s[t][r] = _mm256_madd_epi16(p, ones);
            }
        }
        const __m256 dw = f16x8(blk, 0);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const float dx = ((const struct imc_q8x *)(xq + t * ldq) + b)->d;
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hsum8(s[t])),
                                     _mm256_mul_ps(dw, _mm256_set1_ps(dx)), acc[t]);
        }
    }
    store8(acc, y, ldy, nr, T);
}

// The shuffle control that puts int16 i of each 128-bit half in int16 lanes (lo: l0..l7 of the
// low half, hi: h0..h7 of the high half).
#define B16(i) (short)(2 * (i) | (2 * (i) + 1) << 8)
#define IDX16(l0, l1, l2, l3, l4, l5, l6, l7, h0, h1, h2, h3, h4, h5, h6, h7)                      \
    _mm256_set_epi16(B16(h7), B16(h6), B16(h5), B16(h4), B16(h3), B16(h2), B16(h1), B16(h0),       \
                     B16(l7), B16(l6), B16(l5), B16(l4), B16(l3), B16(l2), B16(l1), B16(l0))

// The 8 int16 scales of the super-block's half holding sub-block j, in both 128-bit halves.
AVX2 INLINE __m256i scale_half(__m256i sc, int j)
{
    return j < 4 ? _mm256_permute2x128_si256(sc, sc, 0x00)
                 : _mm256_permute2x128_si256(sc, sc, 0x11);
}

// Scale vector of sub-block j (constant after unrolling) from the 16 int16 scales sc (one per
// 16-element group g): g = 2j in every int16 of the low 128-bit half, 2j + 1 in the high half
// (the halves of the sub-block's 32 elements).
AVX2 INLINE __m256i pick_pair(__m256i sc, int j)
{
    const int o = 2 * (j % 4);
    return _mm256_shuffle_epi8(scale_half(sc, j), IDX16(o, o, o, o, o, o, o, o, o + 1, o + 1, o + 1,
                                                        o + 1, o + 1, o + 1, o + 1, o + 1));
}

// The scales of sub-blocks j0, j0 + 1 (j0 even, a constant after unrolling) lined up with their
// maddubs results after one hadd_epi16 (g: the super-block's 16-element groups): the low half
// g = 2j0 four times, then 2j0 + 2; the high half 2j0 + 1, then 2j0 + 3.
AVX2 INLINE __m256i pick_pair2(__m256i sc, int j0)
{
    const int o = 2 * (j0 % 4);
    return _mm256_shuffle_epi8(scale_half(sc, j0),
                               IDX16(o, o, o, o, o + 2, o + 2, o + 2, o + 2, o + 1, o + 1, o + 1,
                                     o + 1, o + 3, o + 3, o + 3, o + 3));
}

// 8 rows of a K type (a constant) at row[0..8) × T <= DTOK tokens.
AVX2 INLINE void dirk(enum imc_type type, const uint8_t *const *row, uint64_t bb, int64_t nb,
                      const uint8_t *xq, uint64_t ldq, float *y, int64_t ldy, int nr, const int T)
{
    // q3_k, q6_k: the weights kept unsigned (wq + 4, wq + 32: no sign trick) and the sum
    // corrected by the exact 2^bias_sh · Σ_k sc[k]·bsum[k]; iq4_xs: the sign trick
    const int bias_sh = type == IMC_TYPE_Q6_K ? 5 : type == IMC_TYPE_Q3_K ? 2 : 0;
    const bool sgn = type == IMC_TYPE_IQ4_XS, mins = imc_qmm_has_mins(type);
    // two sub-blocks' maddubs results added by one hadd_epi16 before one madd with their scales:
    // |sum| <= 4·127·max|wq| < 2^15 (q6_k unsigned 63: 32004); not iq4_xs (|wq| 127)
    const int lv = sgn ? 0 : 1;
    const int off = imc_qmm_kd_offset(type);
    __m256 acc[DTOK];
    zero_acc(acc, T);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk[8];
        const struct imc_q8k *xb[DTOK];
        __m256i s[DTOK][8], m[DTOK][8];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            xb[t] = (const struct imc_q8k *)(xq + t * ldq) + b;
        }
        for (int r = 0; r < 8; r++) {
            blk[r] = row[r] + (uint64_t)b * bb;
            __m256i sc, mn, is[DTOK];
            kscales16(type, blk[r], &sc, &mn);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                is[t] = _mm256_setzero_si256();
                if (mins) {
                    const __m256i bs = _mm256_loadu_si256((const __m256i *)xb[t]->bsum);
                    m[t][r] = _mm256_madd_epi16(mn, bs);
                }
            }
#pragma GCC unroll 8
            for (int j0 = 0; j0 < 8; j0 += 1 << lv) {
                __m256i wv[2], aw[2];
                for (int g = 0; g < 1 << lv; g++) {
                    wv[g] = ksub(type, blk[r], j0 + g);
                    if (bias_sh) {
                        wv[g] = _mm256_add_epi8(wv[g], _mm256_set1_epi8((char)(1 << bias_sh)));
                    }
                    aw[g] = sgn ? _mm256_sign_epi8(wv[g], wv[g]) : wv[g];
                }
                const __m256i sv = lv ? pick_pair2(sc, j0) : pick_pair(sc, j0);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    __m256i p[2];
                    for (int g = 0; g < 1 << lv; g++) {
                        const __m256i xv =
                            _mm256_loadu_si256((const __m256i *)(xb[t]->q + 32 * (j0 + g)));
                        p[g] = _mm256_maddubs_epi16(aw[g], sgn ? _mm256_sign_epi8(xv, wv[g]) : xv);
                    }
                    if (lv) {
                        p[0] = _mm256_hadd_epi16(p[0], p[1]);
                    }
                    is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(p[0], sv));
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                if (bias_sh) {
                    const __m256i bs = _mm256_loadu_si256((const __m256i *)xb[t]->bsum);
                    is[t] = _mm256_sub_epi32(is[t],
                                             _mm256_slli_epi32(_mm256_madd_epi16(sc, bs), bias_sh));
                }
                s[t][r] = is[t];
            }
        }
        const __m256 d = f16x8(blk, off);
        const __m256 dmin = mins ? f16x8(blk, off + 2) : _mm256_setzero_ps();
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const __m256 dx = _mm256_set1_ps(xb[t]->d);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hsum8(s[t])), _mm256_mul_ps(d, dx), acc[t]);
            if (mins) {
                acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(hsum8(m[t])), _mm256_mul_ps(dmin, dx),
                                          acc[t]);
            }
        }
    }
    store8(acc, y, ldy, nr, T);
}

typedef void (*dir_fn)(enum imc_type type, const uint8_t *const *row, uint64_t bb, int64_t nb,
                       const uint8_t *xq, uint64_t ldq, float *y, int64_t ldy, int nr);

// One function per (kind, T): NAME_T calls CALL with T a constant; DIRS makes the table.
#define DIR_FN(NAME, CALL, TYPE, T)                                                                \
    AVX2 static void NAME##_##T(enum imc_type type, const uint8_t *const *row, uint64_t bb,        \
                                int64_t nb, const uint8_t *xq, uint64_t ldq, float *y,             \
                                int64_t ldy, int nr)                                               \
    {                                                                                              \
        (void)type;                                                                                \
        CALL(TYPE, row, bb, nb, xq, ldq, y, ldy, nr, T);                                           \
    }
#define DIRS(NAME, CALL, TYPE)                                                                     \
    DIR_FN(NAME, CALL, TYPE, 1)                                                                    \
    DIR_FN(NAME, CALL, TYPE, 2)                                                                    \
    DIR_FN(NAME, CALL, TYPE, 3)                                                                    \
    DIR_FN(NAME, CALL, TYPE, 4)                                                                    \
    static const dir_fn NAME[DTOK] = {NAME##_1, NAME##_2, NAME##_3, NAME##_4};
_Static_assert(DTOK == 4, "the tables below cover 1 to 4 tokens");

DIRS(d32, dir32, type)
#define DIRK(NAME, TYPE) DIRS(d##NAME, dirk, TYPE)
IMC_QMM_K_TYPES(DIRK)

static void tile_direct(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int64_t nr,
                        const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb, float *y,
                        int64_t ldy, void *scratch)
{
    (void)scratch;
    const dir_fn *kern = type == IMC_TYPE_Q2_K     ? dq2
                         : type == IMC_TYPE_Q3_K   ? dq3
                         : type == IMC_TYPE_Q4_K   ? dq4
                         : type == IMC_TYPE_Q5_K   ? dq5
                         : type == IMC_TYPE_Q6_K   ? dq6
                         : type == IMC_TYPE_IQ4_XS ? diq4
                                                   : d32;
    const uint64_t bb = row_bytes / (uint64_t)nb;
    for (int64_t r = 0; r < nr; r += 8) {
        const int rn = nr - r < 8 ? (int)(nr - r) : 8;
        const uint8_t *row[8];
        for (int i = 0; i < 8; i++) { // (rows past nr repeat the last one, not stored)
            row[i] = w + (uint64_t)(r + (i < rn ? i : rn - 1)) * row_bytes;
        }
        for (int64_t t = 0; t < nt; t += DTOK) {
            const int tn = nt - t < DTOK ? (int)(nt - t) : DTOK;
            kern[tn - 1](type, row, bb, nb, xq + (uint64_t)t * ldq, ldq, y + t * ldy + r, ldy, rn);
        }
    }
}

imc_qmm_tile_fn imc_qmm_direct_avx2(void)
{
    return imc_qmm_tile_avx2() ? tile_direct : NULL;
}

#endif // x86
