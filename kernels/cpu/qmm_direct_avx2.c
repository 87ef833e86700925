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
 * per row and token, maddubs (sign trick) and one madd (with ones for the 32-block types, with
 * the 16-element groups' scales for the K types, summed over the 8 sub-blocks) leave the row's
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

#define DTOK 4 // token rows per kernel call of the 32-block types
#define KTOK 2 // ... of the K types (4 measured no faster: the per-token sums spill registers)

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

// Scale vector of sub-block j (constant after unrolling) from the 16 int16 scales sc: scale
// 2j in every int16 of the low 128-bit half, 2j + 1 in the high half (the halves of the
// sub-block's 32 elements).
AVX2 INLINE __m256i pick_pair(__m256i sc, int j)
{
    const __m256i half =
        j < 4 ? _mm256_permute2x128_si256(sc, sc, 0x00) : _mm256_permute2x128_si256(sc, sc, 0x11);
    const short a = (short)(0x0100 + 0x0404 * (j % 4)), c = (short)(a + 0x0202);
    return _mm256_shuffle_epi8(half,
                               _mm256_set_epi16(c, c, c, c, c, c, c, c, a, a, a, a, a, a, a, a));
}

// 8 rows of a K type (a constant) at row[0..8) × T <= KTOK tokens.
AVX2 INLINE void dirk(enum imc_type type, const uint8_t *const *row, uint64_t bb, int64_t nb,
                      const uint8_t *xq, uint64_t ldq, float *y, int64_t ldy, int nr, const int T)
{
    // q3_k, q6_k: the weights kept unsigned (wq + 4, wq + 32: no sign trick) and the sum
    // corrected by the exact 2^bias_sh · Σ_k sc[k]·bsum[k]; iq4_xs: the sign trick
    const int bias_sh = type == IMC_TYPE_Q6_K ? 5 : type == IMC_TYPE_Q3_K ? 2 : 0;
    const bool sgn = type == IMC_TYPE_IQ4_XS, mins = imc_qmm_has_mins(type);
    const int off = imc_qmm_kd_offset(type);
    __m256 acc[KTOK];
    zero_acc(acc, T);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk[8];
        const struct imc_q8k *xb[KTOK];
        __m256i s[KTOK][8], m[KTOK][8];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            xb[t] = (const struct imc_q8k *)(xq + t * ldq) + b;
        }
        for (int r = 0; r < 8; r++) {
            blk[r] = row[r] + (uint64_t)b * bb;
            __m256i sc, mn, is[KTOK];
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
            for (int j = 0; j < 8; j++) {
                __m256i wv = ksub(type, blk[r], j);
                if (bias_sh) {
                    wv = _mm256_add_epi8(wv, _mm256_set1_epi8((char)(1 << bias_sh)));
                }
                const __m256i aw = sgn ? _mm256_sign_epi8(wv, wv) : wv;
                const __m256i sv = pick_pair(sc, j);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    const __m256i xv = _mm256_loadu_si256((const __m256i *)(xb[t]->q + 32 * j));
                    const __m256i p = _mm256_maddubs_epi16(aw, sgn ? _mm256_sign_epi8(xv, wv) : xv);
                    is[t] = _mm256_add_epi32(is[t], _mm256_madd_epi16(p, sv));
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
#define KDIRS(NAME, TYPE)                                                                          \
    DIR_FN(NAME, dirk, TYPE, 1)                                                                    \
    DIR_FN(NAME, dirk, TYPE, 2)                                                                    \
    static const dir_fn NAME[KTOK] = {NAME##_1, NAME##_2};
_Static_assert(DTOK == 4 && KTOK == 2, "the tables below cover 1 to 4 (K types: 2) tokens");

DIRS(d32, dir32, type)
KDIRS(dq2, IMC_TYPE_Q2_K)
KDIRS(dq3, IMC_TYPE_Q3_K)
KDIRS(dq4, IMC_TYPE_Q4_K)
KDIRS(dq5, IMC_TYPE_Q5_K)
KDIRS(dq6, IMC_TYPE_Q6_K)
KDIRS(diq4, IMC_TYPE_IQ4_XS)

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
        const int step = imc_qmm_is_k(type) ? KTOK : DTOK;
        for (int64_t t = 0; t < nt; t += step) {
            const int tn = nt - t < step ? (int)(nt - t) : step;
            kern[tn - 1](type, row, bb, nb, xq + (uint64_t)t * ldq, ldq, y + t * ldy + r, ldy, rn);
        }
    }
}

imc_qmm_tile_fn imc_qmm_direct_avx2(void)
{
    return imc_qmm_tile_avx2() ? tile_direct : NULL;
}

#endif // x86
