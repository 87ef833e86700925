/*
 * kernels/cpu/qmm_avx2: the repacking AVX2 tile of the quantized-activation matmul
 * (kernels/cpu/qmm.h), imc_qmm_tile's choice above imc_qmm_direct_toks tokens (fewer go to
 * qmm_direct_avx2.c), and the AVX2 activation quantizer; the weight decoders both tiles share
 * are in qmm_avx2.h. Compiled for AVX2+FMA+F16C by target attributes only; handed out when the
 * CPU has all three.
 *
 * A tile's W rows are first repacked, 8 at a time, into scratch (rows past nr as zeros): per
 * block the 8 rows' integer weights (decoded from the type to int8) interleaved 4 bytes at a
 * time, so 32-bit lane r of a vector holds row r's elements 4j..4j+3, and the rows' scales
 * (32-block types: the f32 d; K types: d, dmin, each 16-element group's integer scale as an
 * int16 pair, the integer mins as pairs). The repack is once per tile and call; every token of
 * the call then runs against it.
 *
 * Per block and token the activation's 16-byte halves are broadcast, each 4-byte group j to
 * every lane (shuffle), given the weights' signs (sign trick: |w| as unsigned bytes), and
 * _mm256_maddubs_epi16 gives per lane two pair sums w·x (|pair| <= 2·128·127 < 2^15). For
 * q8_0 and iq4_nl these are widened by madd with ones (exact) and added: lane r = I_b of row r.
 * Q4_0 (w in −8..7) needs no sign trick: the unsigned operand is the activation plus 128 (its
 * bytes xor 0x80, per block and token), the signed one w, so each maddubs lane is a pair sum
 * of (x + 128)·w, |pair| <= 2·255·8 = 4080; all 8 results of a block (16 products per int16
 * lane) are added as int16, |sum| <= 16·255·8 = 32640 < 2^15, then one madd with ones; the
 * repack stores per row −128·Σw of the block (int32), added to give exactly I_b. For K types up to
 * 4 maddubs results of a 16-element group are added as int16 where no sum can overflow (|w| <= 32:
 * 8·32·127 < 2^15; not iq4_xs), then one madd with the group's scales and int32 adds: lane r = I of
 * row r (qmm.h). Then one cvtepi32_ps and one fmadd with the rows' scales times the token's scale
 * (and for the mins one fnmadd) per block, token and 8 rows: per lane exactly the generic
 * kernel's float operations.
 */
#if defined(__x86_64__) || defined(__i386__)

#include "kernels/cpu/qmm_avx2.h"
#include "core/log.h"

#define NTOK 4      // token rows per kernel call
#define TOK_PASS 32 // token rows per pass over the tile's repacked rows (their blocks stay in L2)
#define G32 288     // bytes of 8 interleaved rows per 32-block: d[8], q[8 groups][8 rows][4]
#define G32U 320    // ... for q4_0: d[8], −128·Σw int32[8], q[8][8][4]
#define GK 2880     // ... per K super-block: d[8], dmin[8], sc[16][8], mn[8][8], q[8][8][8][4]
#define GK_SC 64    // offsets in a K group
#define GK_MN 576
#define GK_Q 832

// Rows w .. w + (nr−1)·rb (nr <= 8) of a 32-block type into nb groups of G32 bytes at out
// (q4_0: G32U, with the rows' −128·Σw of the block after d).
AVX2 INLINE void repack32(enum imc_type type, const uint8_t *w, uint64_t rb, int nr, int64_t nb,
                          uint8_t *out)
{
    const uint64_t bb = rb / (uint64_t)nb;
    const bool ux = type == IMC_TYPE_Q4_0;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *g = out + b * (ux ? G32U : G32);
        float d[8];
        __m256i v[8];
#pragma GCC unroll 16
        for (int r = 0; r < 8; r++) {
            d[r] = 0.0f;
            v[r] = r < nr ? weights(type, w + (uint64_t)r * rb + (uint64_t)b * bb, &d[r])
                          : _mm256_setzero_si256();
        }
        transpose8(v);
        _mm256_storeu_ps((float *)g, _mm256_loadu_ps(d));
        __m256i sw = _mm256_setzero_si256(); // lane r: Σw of row r (int32)
        const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
#pragma GCC unroll 16
        for (int j = 0; j < 8; j++) {
            _mm256_storeu_si256((__m256i *)(g + (ux ? 64 : 32) + 32 * j), v[j]);
            if (ux) {
                const __m256i s2 = _mm256_maddubs_epi16(ones8, v[j]);
                sw = _mm256_add_epi32(sw, _mm256_madd_epi16(s2, ones16));
            }
        }
        if (ux) {
            _mm256_storeu_si256((__m256i *)(g + 32),
                                _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), sw), 7));
        }
    }
}

// Where a K repack puts 8 rows' parts in a group: gb bytes per super-block, offsets of d[8],
// dmin[8], the scale pairs, the min pairs and the weights, vs bytes from one 32-byte vector of a
// part to the next, beta added to the weights (and then the min pairs are (−β·sc_2i, −β·sc_2i+1),
// for qmm_vnni.c's 16-row groups of q3_k and q6_k). A constant after inlining.
struct klayout {
    uint32_t gb, d, dmin, sc, mn, q, vs;
    int beta;
};

// Rows of a K type into nb groups of L (GK bytes in the 8-row layout; as repack32).
AVX2 INLINE void repackk(enum imc_type type, const uint8_t *w, uint64_t rb, int nr, int64_t nb,
                         uint8_t *out, const struct klayout L)
{
    const uint64_t bb = rb / (uint64_t)nb;
    const bool mins = imc_qmm_has_mins(type);
    const int off = imc_qmm_kd_offset(type);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *g = out + b * L.gb;
        float d[16] = {0}; // d[8], dmin[8]
        // per row: scale pairs of groups 0-3, 8-11 (lo) and 4-7, 12-15 (hi); min pairs 0-7
        __m256i lo[8], hi[8], mn[8];
#pragma GCC unroll 16
        for (int r = 0; r < 8; r++) {
            lo[r] = hi[r] = mn[r] = _mm256_setzero_si256();
            if (r < nr) {
                const uint8_t *blk = w + (uint64_t)r * rb + (uint64_t)b * bb;
                __m256i sc;
                kscales16(type, blk, &sc, &mn[r]);
                lo[r] = _mm256_unpacklo_epi16(sc, sc);
                hi[r] = _mm256_unpackhi_epi16(sc, sc);
                d[r] = f16(blk + off);
                d[8 + r] = mins ? f16(blk + off + 2) : 0.0f;
            }
        }
        memcpy(g + L.d, d, 32);
        memcpy(g + L.dmin, d + 8, 32);
        transpose8(lo);
        transpose8(hi);
        transpose8(mn);
#pragma GCC unroll 16
        for (int j = 0; j < 8; j++) { // lane j of lo: group j (j < 4) or j + 4; of hi: + 4
            const int k = j < 4 ? j : j + 4;
            _mm256_storeu_si256((__m256i *)(g + L.sc + L.vs * k), lo[j]);
            _mm256_storeu_si256((__m256i *)(g + L.sc + L.vs * (k + 4)), hi[j]);
            _mm256_storeu_si256((__m256i *)(g + L.mn + L.vs * j), mn[j]);
        }
        if (L.beta) { // the two groups' scale pairs blended: (sc_2i, sc_2i+1) per row, · −β
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                const __m256i a = _mm256_loadu_si256((const __m256i *)(g + L.sc + L.vs * 2 * i));
                const __m256i c =
                    _mm256_loadu_si256((const __m256i *)(g + L.sc + L.vs * (2 * i + 1)));
                _mm256_storeu_si256((__m256i *)(g + L.mn + L.vs * i),
                                    _mm256_mullo_epi16(_mm256_blend_epi16(a, c, 0xAA),
                                                       _mm256_set1_epi16((short)-L.beta)));
            }
        }
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) {
            __m256i v[8];
#pragma GCC unroll 16
            for (int r = 0; r < 8; r++) {
                v[r] = r < nr ? ksub(type, w + (uint64_t)r * rb + (uint64_t)b * bb, s)
                              : _mm256_setzero_si256();
            }
            transpose8(v);
#pragma GCC unroll 16
            for (int j = 0; j < 8; j++) {
                _mm256_storeu_si256((__m256i *)(g + L.q + L.vs * (8 * s + j)),
                                    _mm256_add_epi8(v[j], _mm256_set1_epi8((char)L.beta)));
            }
        }
    }
}

// The products of 4 interleaved weight vectors qx (signed; sx = |qx|, or unsigned qx = sx when
// !sgn) with groups 0..3 of the 16 activation bytes at q: 4 maddubs results, each 16 int16 pairs.
AVX2 INLINE void dot4(const __m256i qx[4], const __m256i sx[4], const int8_t *q, bool sgn,
                      __m256i p[4])
{
    const __m256i y = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q));
    const __m256i y0 = _mm256_shuffle_epi32(y, 0x00), y1 = _mm256_shuffle_epi32(y, 0x55);
    const __m256i y2 = _mm256_shuffle_epi32(y, 0xaa), y3 = _mm256_shuffle_epi32(y, 0xff);
    p[0] = _mm256_maddubs_epi16(sx[0], sgn ? _mm256_sign_epi8(y0, qx[0]) : y0);
    p[1] = _mm256_maddubs_epi16(sx[1], sgn ? _mm256_sign_epi8(y1, qx[1]) : y1);
    p[2] = _mm256_maddubs_epi16(sx[2], sgn ? _mm256_sign_epi8(y2, qx[2]) : y2);
    p[3] = _mm256_maddubs_epi16(sx[3], sgn ? _mm256_sign_epi8(y3, qx[3]) : y3);
}

// Loads groups j0 .. j0+3 of interleaved weights at g (qx) and their magnitudes (sx).
AVX2 INLINE void load4(const uint8_t *g, int j0, bool sgn, __m256i qx[4], __m256i sx[4])
{
#pragma GCC unroll 16
    for (int j = 0; j < 4; j++) {
        qx[j] = _mm256_loadu_si256((const __m256i *)(g + 32 * (j0 + j)));
        sx[j] = sgn ? _mm256_sign_epi8(qx[j], qx[j]) : qx[j];
    }
}

// Sums of the 4 maddubs results: as int32 by madd with m (16-bit pairs: ones, or the group's
// scales); when s16, first as int16 (no overflow: see the file header), then one madd.
AVX2 INLINE __m256i widen4(const __m256i p[4], __m256i m, bool s16)
{
    if (s16) {
        const __m256i s =
            _mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3]));
        return _mm256_madd_epi16(s, m);
    }
    return _mm256_add_epi32(
        _mm256_add_epi32(_mm256_madd_epi16(p[0], m), _mm256_madd_epi16(p[1], m)),
        _mm256_add_epi32(_mm256_madd_epi16(p[2], m), _mm256_madd_epi16(p[3], m)));
}

// 8 repacked rows of q8_0 or iq4_nl (nb groups of G32 at g; nr of them real) × T tokens.
AVX2 INLINE void kern32(const uint8_t *g, int64_t nb, const uint8_t *xq, uint64_t ldq, float *y,
                        int64_t ldy, int nr, const int T)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[NTOK];
    zero_acc(acc, T);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *gb = g + b * G32;
        __m256i is[NTOK], qx[4], sx[4], p[4];
        load4(gb + 32, 0, true, qx, sx);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            dot4(qx, sx, ((const struct imc_q8x *)(xq + t * ldq) + b)->q, true, p);
            is[t] = widen4(p, ones, false);
        }
        load4(gb + 32, 4, true, qx, sx);
        const __m256 dw = _mm256_loadu_ps((const float *)gb);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const struct imc_q8x *xb = (const struct imc_q8x *)(xq + t * ldq) + b;
            dot4(qx, sx, xb->q + 16, true, p);
            is[t] = _mm256_add_epi32(is[t], widen4(p, ones, false));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]),
                                     _mm256_mul_ps(dw, _mm256_set1_ps(xb->d)), acc[t]);
        }
    }
    store8(acc, y, ldy, nr, T);
}

// The 4 maddubs results of the activation plus 128 (16 bytes at q, xor 0x80) with 4 interleaved
// signed weight vectors w, added as int16 to s (bounds: the file header).
AVX2 INLINE __m256i dot4u(const __m256i w[4], const int8_t *q, __m256i s)
{
    const __m256i y = _mm256_xor_si256(
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q)), _mm256_set1_epi8(-128));
    const __m256i p0 = _mm256_maddubs_epi16(_mm256_shuffle_epi32(y, 0x00), w[0]);
    const __m256i p1 = _mm256_maddubs_epi16(_mm256_shuffle_epi32(y, 0x55), w[1]);
    const __m256i p2 = _mm256_maddubs_epi16(_mm256_shuffle_epi32(y, 0xaa), w[2]);
    const __m256i p3 = _mm256_maddubs_epi16(_mm256_shuffle_epi32(y, 0xff), w[3]);
    return _mm256_add_epi16(s,
                            _mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3)));
}

// 8 repacked rows of q4_0 (nb groups of G32U at g; nr of them real) × T tokens.
AVX2 INLINE void kern32u(const uint8_t *g, int64_t nb, const uint8_t *xq, uint64_t ldq, float *y,
                         int64_t ldy, int nr, const int T)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[NTOK];
    zero_acc(acc, T);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *gb = g + b * G32U;
        __m256i s[NTOK], w[4];
#pragma GCC unroll 16
        for (int j = 0; j < 4; j++) {
            w[j] = _mm256_loadu_si256((const __m256i *)(gb + 64 + 32 * j));
        }
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            s[t] =
                dot4u(w, ((const struct imc_q8x *)(xq + t * ldq) + b)->q, _mm256_setzero_si256());
            __asm__("" : "+x"(s[t])); // the sum now: GCC would keep the 4 maddubs and spill
        }
#pragma GCC unroll 16
        for (int j = 0; j < 4; j++) {
            w[j] = _mm256_loadu_si256((const __m256i *)(gb + 192 + 32 * j));
        }
        const __m256 dw = _mm256_loadu_ps((const float *)gb);
        const __m256i corr = _mm256_loadu_si256((const __m256i *)(gb + 32));
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const struct imc_q8x *xb = (const struct imc_q8x *)(xq + t * ldq) + b;
            const __m256i is =
                _mm256_add_epi32(_mm256_madd_epi16(dot4u(w, xb->q + 16, s[t]), ones), corr);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is),
                                     _mm256_mul_ps(dw, _mm256_set1_ps(xb->d)), acc[t]);
        }
    }
    store8(acc, y, ldy, nr, T);
}

// 8 repacked rows of a K type × T tokens (the type a constant).
AVX2 INLINE void kernk(enum imc_type type, const uint8_t *g, int64_t nb, const uint8_t *xq,
                       uint64_t ldq, float *y, int64_t ldy, int nr, const int T)
{
    const bool sgn = type == IMC_TYPE_Q3_K || type == IMC_TYPE_Q6_K || type == IMC_TYPE_IQ4_XS;
    const bool s16 = type != IMC_TYPE_IQ4_XS, mins = imc_qmm_has_mins(type);
    __m256 acc[NTOK];
    zero_acc(acc, T);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *gb = g + b * GK;
        __m256i is[NTOK];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            is[t] = _mm256_setzero_si256();
        }
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++) { // 16-element groups: sub-block k / 2, half k % 2
            __m256i qx[4], sx[4], p[4];
            load4(gb + GK_Q + 128 * k, 0, sgn, qx, sx);
            const __m256i sv = _mm256_loadu_si256((const __m256i *)(gb + GK_SC + 32 * k));
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                const struct imc_q8k *xb = (const struct imc_q8k *)(xq + t * ldq) + b;
                dot4(qx, sx, xb->q + 16 * k, sgn, p);
                is[t] = _mm256_add_epi32(is[t], widen4(p, sv, s16));
            }
        }
        const __m256 d = _mm256_loadu_ps((const float *)gb);
        const __m256 dmin = _mm256_loadu_ps((const float *)gb + 8);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const struct imc_q8k *xb = (const struct imc_q8k *)(xq + t * ldq) + b;
            const __m256 dx = _mm256_set1_ps(xb->d);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[t]), _mm256_mul_ps(d, dx), acc[t]);
            if (mins) {
                __m256i m = _mm256_setzero_si256();
#pragma GCC unroll 16
                for (int i = 0; i < 8; i++) {
                    int32_t bs;
                    memcpy(&bs, &xb->bsum[2 * i], 4);
                    const __m256i mv = _mm256_loadu_si256((const __m256i *)(gb + GK_MN + 32 * i));
                    m = _mm256_add_epi32(m, _mm256_madd_epi16(mv, _mm256_set1_epi32(bs)));
                }
                acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(m), _mm256_mul_ps(dmin, dx), acc[t]);
            }
        }
    }
    store8(acc, y, ldy, nr, T);
}

typedef imc_qmm_kern_fn kern_fn;

// One function per (kind, T): NAME_T calls CALL with T a constant; KERNS makes the table.
#define KERN_FN(NAME, CALL, T)                                                                     \
    AVX2 static void NAME##_##T(const uint8_t *g, int64_t nb, const uint8_t *xq, uint64_t ldq,     \
                                float *y, int64_t ldy, int nr)                                     \
    {                                                                                              \
        CALL(g, nb, xq, ldq, y, ldy, nr, T);                                                       \
    }
#define KERNS(NAME, CALL)                                                                          \
    KERN_FN(NAME, CALL, 1)                                                                         \
    KERN_FN(NAME, CALL, 2)                                                                         \
    KERN_FN(NAME, CALL, 3)                                                                         \
    KERN_FN(NAME, CALL, 4)                                                                         \
    static const kern_fn NAME[NTOK] = {NAME##_1, NAME##_2, NAME##_3, NAME##_4};
_Static_assert(NTOK == 4, "the tables below cover 1 to 4 tokens");

#define K32(g, nb, xq, ldq, y, ldy, nr, T) kern32(g, nb, xq, ldq, y, ldy, nr, T)
#define K32U(g, nb, xq, ldq, y, ldy, nr, T) kern32u(g, nb, xq, ldq, y, ldy, nr, T)
#define KQ2(g, nb, xq, ldq, y, ldy, nr, T) kernk(IMC_TYPE_Q2_K, g, nb, xq, ldq, y, ldy, nr, T)
#define KQ3(g, nb, xq, ldq, y, ldy, nr, T) kernk(IMC_TYPE_Q3_K, g, nb, xq, ldq, y, ldy, nr, T)
#define KQ4(g, nb, xq, ldq, y, ldy, nr, T) kernk(IMC_TYPE_Q4_K, g, nb, xq, ldq, y, ldy, nr, T)
#define KQ5(g, nb, xq, ldq, y, ldy, nr, T) kernk(IMC_TYPE_Q5_K, g, nb, xq, ldq, y, ldy, nr, T)
#define KQ6(g, nb, xq, ldq, y, ldy, nr, T) kernk(IMC_TYPE_Q6_K, g, nb, xq, ldq, y, ldy, nr, T)
#define KIQ4(g, nb, xq, ldq, y, ldy, nr, T) kernk(IMC_TYPE_IQ4_XS, g, nb, xq, ldq, y, ldy, nr, T)
KERNS(k32, K32)
KERNS(k32u, K32U)
KERNS(kq2, KQ2)
KERNS(kq3, KQ3)
KERNS(kq4, KQ4)
KERNS(kq5, KQ5)
KERNS(kq6, KQ6)
KERNS(kiq4, KIQ4)

// The repack of one type into its groups (the type a constant after inlining).
#define REPACK_FN(NAME, CALL, TYPE)                                                                \
    AVX2 static void NAME(enum imc_type type, const uint8_t *w, uint64_t rb, int nr, int64_t nb,   \
                          uint8_t *out)                                                            \
    {                                                                                              \
        (void)type;                                                                                \
        CALL(TYPE, w, rb, nr, nb, out);                                                            \
    }
REPACK_FN(rp32, repack32, type)
#define KL8 ((struct klayout){GK, 0, 32, GK_SC, GK_MN, GK_Q, 32, 0})
#define REPACK_K(NAME, TYPE)                                                                       \
    AVX2 static void rp##NAME(enum imc_type type, const uint8_t *w, uint64_t rb, int nr,           \
                              int64_t nb, uint8_t *out)                                            \
    {                                                                                              \
        (void)type;                                                                                \
        repackk(TYPE, w, rb, nr, nb, out, KL8);                                                    \
    }                                                                                              \
    AVX2 static void rp16##NAME(enum imc_type type, const uint8_t *w, uint64_t rb, int nr,         \
                                int64_t nb, uint8_t *out)                                          \
    {                                                                                              \
        (void)type;                                                                                \
        const int beta = TYPE == IMC_TYPE_Q3_K     ? 4                                             \
                         : TYPE == IMC_TYPE_Q6_K   ? 32                                            \
                         : TYPE == IMC_TYPE_IQ4_XS ? 128                                           \
                                                   : 0;                                            \
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)                                        \
        {                                                                                          \
            const uint32_t o = 32 * (uint32_t)h;                                                   \
            repackk(TYPE, nr > 8 * h ? w + (uint64_t)(8 * h) * rb : w, rb, nr - 8 * h, nb, out,    \
                    (struct klayout){IMC_QMM_GK16, o, 64 + o, IMC_QMM_GK16_SC + o,                 \
                                     IMC_QMM_GK16_MN + o, IMC_QMM_GK16_Q + o, 64, beta});          \
        }                                                                                          \
    }
IMC_QMM_K_TYPES(REPACK_K)

void imc_qmm_repack_k16_avx2(enum imc_type type, const uint8_t *w, uint64_t rb, int nr, int64_t nb,
                             uint8_t *out)
{
    switch (type) {
#define REPACK_CASE(NAME, TYPE)                                                                    \
    case TYPE:                                                                                     \
        rp16##NAME(type, w, rb, nr, nb, out);                                                      \
        break;
        IMC_QMM_K_TYPES(REPACK_CASE)
#undef REPACK_CASE
    default:
        IMC_ASSERT(!"a K type");
    }
}

void imc_qmm_repack_rows(imc_qmm_repack_fn repack, int mr, enum imc_type type, const uint8_t *w,
                         uint64_t row_bytes, int64_t nr, int64_t nb, uint64_t gbytes, uint8_t *rp)
{
    for (int64_t r = 0; r < nr; r += mr) {
        const int rn = nr - r < mr ? (int)(nr - r) : mr;
        repack(type, w + (uint64_t)r * row_bytes, row_bytes, rn, nb,
               rp + (uint64_t)(r / mr) * gbytes);
    }
}

void imc_qmm_run_passes(const struct imc_qmm_calls *c, const uint8_t *rp, uint64_t gbytes,
                        int64_t nr, const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb,
                        float *y, int64_t ldy)
{
    const int64_t pass = TOK_PASS / c->ntok * c->ntok;
    for (int64_t t0 = 0; t0 < nt; t0 += pass) {
        const int64_t t1 = t0 + pass < nt ? t0 + pass : nt;
        for (int64_t r = 0; r < nr; r += c->mr) {
            const int rn = nr - r < c->mr ? (int)(nr - r) : c->mr;
            const bool lone = c->tail && rn <= c->gr;
            const imc_qmm_kern_fn *kern = lone ? c->tail : c->kern;
            const int ntok = lone ? c->ntok_tail : c->ntok;
            for (int64_t t = t0; t < t1; t += ntok) {
                const int tn = t1 - t < ntok ? (int)(t1 - t) : ntok;
                kern[tn - 1](rp + (uint64_t)(r / c->gr) * gbytes, nb, xq + (uint64_t)t * ldq, ldq,
                             y + t * ldy + r, ldy, rn);
            }
        }
    }
}

static void tile_avx2(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int64_t nr,
                      const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb, float *y,
                      int64_t ldy, void *scratch)
{
    const kern_fn *kern;
    imc_qmm_repack_fn repack;
    switch (type) {
    case IMC_TYPE_Q2_K:
        kern = kq2, repack = rpq2;
        break;
    case IMC_TYPE_Q3_K:
        kern = kq3, repack = rpq3;
        break;
    case IMC_TYPE_Q4_K:
        kern = kq4, repack = rpq4;
        break;
    case IMC_TYPE_Q5_K:
        kern = kq5, repack = rpq5;
        break;
    case IMC_TYPE_Q6_K:
        kern = kq6, repack = rpq6;
        break;
    case IMC_TYPE_IQ4_XS:
        kern = kiq4, repack = rpiq4;
        break;
    default:
        kern = type == IMC_TYPE_Q4_0 ? k32u : k32, repack = rp32;
        break;
    }
    const uint64_t gbytes = (uint64_t)nb * (imc_qmm_is_k(type)      ? GK
                                            : type == IMC_TYPE_Q4_0 ? G32U
                                                                    : G32);
    imc_qmm_repack_rows(repack, 8, type, w, row_bytes, nr, nb, gbytes, scratch);
    const struct imc_qmm_calls calls = {.kern = kern, .ntok = NTOK, .mr = 8, .gr = 8};
    imc_qmm_run_passes(&calls, scratch, gbytes, nr, xq, ldq, nt, nb, y, ldy);
}

// ---- activation quantization (qmm.h's rule; the scalar functions' bits) -------------------

// roundf(v) for |v| < 2^23: ties away from zero (v − trunc(v) is exact).
AVX2 INLINE __m256 round_away(__m256 v)
{
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sgn, _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, sgn));
    return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

// max |x_i| over n (a multiple of 8) floats: the scalar loop's value (max is exact; a NaN
// element is skipped, as there: maxps returns its second operand when one is NaN).
AVX2 INLINE float amax8(const float *x, int n)
{
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) {
        m = _mm256_max_ps(_mm256_andnot_ps(sgn, _mm256_loadu_ps(x + i)), m);
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

// The 32 int8 of roundf(x[0..32) · id), clamped to ±lim, in element order.
AVX2 INLINE __m256i quant32(const float *x, float id, float lim)
{
    const __m256 vid = _mm256_set1_ps(id), hi = _mm256_set1_ps(lim), lo = _mm256_set1_ps(-lim);
    __m256i v[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        const __m256 r = round_away(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid));
        v[k] = _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(r, hi), lo));
    }
    const __m256i p =
        _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

AVX2 static void quantize_avx2(enum imc_type t, const float *x, int64_t n, void *out)
{
    const int bs = imc_qmm_is_k(t) ? IMC_QMM_KBLOCK : IMC_QMM_BLOCK;
    for (int64_t b = 0; b < n / bs; b++) {
        const float *xb = x + b * bs;
        const float d = amax8(xb, bs) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        if (bs == IMC_QMM_BLOCK) { // (no clamp: |x·id| rounds to at most 127)
            struct imc_q8x *o = (struct imc_q8x *)out + b;
            o->d = imc_fp16_to_fp32(imc_fp32_to_fp16(d)); // the scale as q8_0 stores it
            const __m256i q = quant32(xb, id, 128.0f);
            _mm256_storeu_si256((__m256i *)o->q, q);
            // Σ q = Σ (q + 128) − 32·128, the unsigned sums by sad against zero (4 × 8 bytes)
            const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)),
                                              _mm256_setzero_si256());
            const __m128i h =
                _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            const int32_t sum =
                (int32_t)_mm_cvtsi128_si32(_mm_add_epi64(h, _mm_unpackhi_epi64(h, h)));
            o->c128 = -128 * (sum - 32 * 128);
            continue;
        }
        struct imc_q8k *o = (struct imc_q8k *)out + b;
        o->d = d;
        const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
        for (int j = 0; j < 8; j++) {
            const __m256i q = quant32(xb + 32 * j, id, 127.0f);
            _mm256_storeu_si256((__m256i *)(o->q + 32 * j), q);
            // 4-element sums (exact), then the two 16-element sums of this 32
            const __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
            int32_t v[8];
            _mm256_storeu_si256((__m256i *)v, s4);
            o->bsum[2 * j] = (int16_t)(v[0] + v[1] + v[2] + v[3]);
            o->bsum[2 * j + 1] = (int16_t)(v[4] + v[5] + v[6] + v[7]);
        }
    }
}

imc_qmm_quant_fn imc_qmm_quantize_avx2(void)
{
    return imc_qmm_tile_avx2() ? quantize_avx2 : NULL;
}

imc_qmm_tile_fn imc_qmm_tile_avx2(void)
{
    __builtin_cpu_init();
    const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
    return ok ? tile_avx2 : NULL;
}

#endif // x86
