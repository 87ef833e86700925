/*
 * kernels/cpu/qmm_vnni: the repacking tiles of the quantized-activation matmul on CPUs with VNNI
 * dot products (kernels/cpu/qmm.h): vpdpbusd adds the 4 products of 4 unsigned bytes by 4
 * signed bytes into each int32 lane, with no intermediate int16 (which is what makes AVX2 spend
 * a sign and a widening madd on every maddubs). One operand must be unsigned; the integer is
 * the same exact I_b either way, so the float operations and the bits are those of every other
 * path.
 *
 * 32-block types (q8_0, q4_0, iq4_nl), two kernels chosen at run time:
 * - AVX512-VNNI (EVEX, 512-bit): the weights unsigned (w + 128), 16 rows per vector, each
 *   4-byte group of a token's activations one broadcast load, I_b = Σ (w + 128)·x − 128·Σ x
 *   from the activation block's c128; up to 8 tokens per call. Repacked group of 16 rows per
 *   block: GE bytes (below).
 * - AVX-VNNI (VEX, 256-bit): the activations unsigned (u = x + 128; x ^ 0x80, |x| <= 127),
 *   I_b = Σ u·w − 128·Σ w with the weights' correction computed once, at repack; 4 tokens per
 *   call. Repacked group of 8 rows per block (GV bytes): d[8] (f32), −128·Σw per row (int32),
 *   then the weights as in qmm_avx2.c (lane r of vector j = row r's elements 4j .. 4j+3).
 * K types but iq4_xs (AVX512 only): the AVX2 tile's repacked groups, two tokens per vector.
 * Compiled by target attributes only.
 */
#if defined(__x86_64__) || defined(__i386__)

#include "core/log.h"
#include "kernels/cpu/qmm_avx2.h"

#define NTOK 4 // token rows per kernel call
#define GV 320 // bytes of 8 interleaved rows per 32-block: d[8], nc[8], q[8 groups][8 rows][4]
#define GV_NC 32
#define GV_Q 64

_Static_assert(GV <= 2 * 160, "imc_qmm_scratch_bytes: 10/8 of a byte per weight");

#define VNNI_VEX __attribute__((target("avx2,fma,f16c,avxvnni")))
#define VNNI_EVEX                                                                                  \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

// Rows w .. w + (nr−1)·rb (nr <= 8) of a 32-block type into nb groups of GV bytes at out.
AVX2 static void repack(enum imc_type type, const uint8_t *w, uint64_t rb, int nr, int64_t nb,
                        uint8_t *out)
{
    const uint64_t bb = rb / (uint64_t)nb;
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *g = out + b * GV;
        float d[8];
        __m256i v[8];
        for (int r = 0; r < 8; r++) {
            d[r] = 0.0f;
            v[r] = r < nr ? weights(type, w + (uint64_t)r * rb + (uint64_t)b * bb, &d[r])
                          : _mm256_setzero_si256();
        }
        transpose8(v);
        __m256i s = _mm256_setzero_si256(); // lane r: Σ w of row r (exact: |Σ| <= 32·128)
        for (int j = 0; j < 8; j++) {
            _mm256_storeu_si256((__m256i *)(g + GV_Q + 32 * j), v[j]);
            s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v[j]), ones16));
        }
        _mm256_storeu_ps((float *)g, _mm256_loadu_ps(d));
        _mm256_storeu_si256((__m256i *)(g + GV_NC),
                            _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(s, 7)));
    }
}

// 8 repacked rows (nb groups at g; nr of them real) × T tokens, DP the encoding's vpdpbusd.
#define DEFINE_KERN(NAME, TARGET, DP)                                                              \
    TARGET static inline __attribute__((always_inline)) void NAME(                                 \
        const uint8_t *g, int64_t nb, const uint8_t *xq, uint64_t ldq, float *y, int64_t ldy,      \
        int nr, const int T)                                                                       \
    {                                                                                              \
        const __m256i bias = _mm256_set1_epi8((char)0x80);                                         \
        __m256 acc[NTOK];                                                                          \
        zero_acc(acc, T);                                                                          \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            const uint8_t *gb = g + b * GV;                                                        \
            const __m256i nc = _mm256_loadu_si256((const __m256i *)(gb + GV_NC));                  \
            const __m256 dw = _mm256_loadu_ps((const float *)gb);                                  \
            _Pragma("GCC unroll 16") for (int t = 0; t < T; t++)                                   \
            {                                                                                      \
                const struct imc_q8x *xb = (const struct imc_q8x *)(xq + t * ldq) + b;             \
                __m256i is = nc;                                                                   \
                _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)                                \
                {                                                                                  \
                    const __m256i u =                                                              \
                        _mm256_xor_si256(_mm256_broadcastsi128_si256(                              \
                                             _mm_loadu_si128((const __m128i *)(xb->q + 16 * h))),  \
                                         bias);                                                    \
                    const __m256i *q = (const __m256i *)(gb + GV_Q + 128 * h);                     \
                    is = DP(is, _mm256_shuffle_epi32(u, 0x00), _mm256_loadu_si256(q));             \
                    is = DP(is, _mm256_shuffle_epi32(u, 0x55), _mm256_loadu_si256(q + 1));         \
                    is = DP(is, _mm256_shuffle_epi32(u, 0xaa), _mm256_loadu_si256(q + 2));         \
                    is = DP(is, _mm256_shuffle_epi32(u, 0xff), _mm256_loadu_si256(q + 3));         \
                }                                                                                  \
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is),                                   \
                                         _mm256_mul_ps(dw, _mm256_set1_ps(xb->d)), acc[t]);        \
            }                                                                                      \
        }                                                                                          \
        store8(acc, y, ldy, nr, T);                                                                \
    }
DEFINE_KERN(kern_vex, VNNI_VEX, _mm256_dpbusd_avx_epi32)

#define NTOK_E 8 // token rows per 512-bit kernel call (both 512-bit tiles)

// The T tokens' outputs of (T + 1) / 2 pair accumulators: lanes 0-7 token 2p, 8-15 token 2p + 1.
VNNI_EVEX static inline __attribute__((always_inline)) void
store_pairs(const __m512 *acc, float *y, int64_t ldy, int nr, const int T)
{
    const int P = (T + 1) / 2;
#pragma GCC unroll 8
    for (int p = 0; p < P; p++) {
        float v[16];
        _mm512_storeu_ps(v, acc[p]);
        memcpy(y + 2 * p * ldy, v, (size_t)nr * sizeof(float));
        if (2 * p + 1 < T) {
            memcpy(y + (2 * p + 1) * ldy, v + 8, (size_t)nr * sizeof(float));
        }
    }
}

// ---- 32-block types, AVX512-VNNI: 16 rows per vector, the activations broadcast from memory ----
//
// The weights enter unsigned, w + 128 (w ^ 0x80: q8_0 −128..127, q4_0 −8..7, iq4_nl −127..113
// all land in 0..255), the activations signed as they are, so each 4-byte group of a token's
// block is one broadcast load (no shuffle), and
//     I_b = Σ (w + 128)·x − 128·Σ x
// starts from the block's c128 (the quantizer's −128·Σ x). Repacked group of 16 rows per block
// (GE bytes): d[16] (f32), then 8 vectors of 64 bytes, lane r of vector j = row r's bytes
// 4j .. 4j+3 (+128). Per block and token: 8 vpdpbusd, then one cvt, one multiply and one fmadd
// per lane, the float operations of every path.
#define GE 576 // bytes of 16 interleaved rows per 32-block: d[16], q[8 groups][16 rows][4]
#define GE_Q 64
_Static_assert(GE <= 640, "imc_qmm_scratch_bytes: 640 bytes per 16 rows and block");

// Rows w .. w + (nr−1)·rb (nr <= 16) of a 32-block type into nb groups of GE bytes at out
// (rows past nr: zero weights, d 0).
AVX2 static void repack16(enum imc_type type, const uint8_t *w, uint64_t rb, int nr, int64_t nb,
                          uint8_t *out)
{
    const uint64_t bb = rb / (uint64_t)nb;
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *g = out + b * GE;
        float d[16];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i v[8];
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) {
                const int row = 8 * h + r;
                d[row] = 0.0f;
                v[r] = row < nr ? weights(type, w + (uint64_t)row * rb + (uint64_t)b * bb, &d[row])
                                : _mm256_setzero_si256();
                v[r] = _mm256_xor_si256(v[r], bias);
            }
            transpose8(v);
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                _mm256_storeu_si256((__m256i *)(g + GE_Q + 64 * j + 32 * h), v[j]);
            }
        }
        memcpy(g, d, sizeof d);
    }
}

// 16 repacked rows (nb groups of GE at g; nr of them real) × T tokens.
VNNI_EVEX static inline __attribute__((always_inline)) void
kern_evex(const uint8_t *g, int64_t nb, const uint8_t *xq, uint64_t ldq, float *y, int64_t ldy,
          int nr, const int T)
{
    __m512 acc[NTOK_E];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
        acc[t] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *gb = g + b * GE;
        __m512i q[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            q[j] = _mm512_loadu_si512((const void *)(gb + GE_Q + 64 * j));
        }
        const __m512 dw = _mm512_loadu_ps((const float *)gb);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const struct imc_q8x *xb = (const struct imc_q8x *)(xq + t * ldq) + b;
            // two chains of 4 (vpdpbusd's latency), added: the same exact integer
            __m512i is[2] = {_mm512_set1_epi32(xb->c128), _mm512_setzero_si512()};
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                int32_t x4;
                memcpy(&x4, xb->q + 4 * j, 4);
                is[j & 1] = _mm512_dpbusd_epi32(is[j & 1], q[j], _mm512_set1_epi32(x4));
            }
            is[0] = _mm512_add_epi32(is[0], is[1]);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[0]), _mm512_mul_ps(dw, _mm512_set1_ps(xb->d)),
                                     acc[t]);
        }
    }
    const __mmask16 m = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
        _mm512_mask_storeu_ps(y + t * ldy, m, acc[t]);
    }
}

typedef imc_qmm_kern_fn kern_fn;

// One function per (encoding, T): NAME_T calls CALL with T a constant.
#define KERN_FN(NAME, TARGET, CALL, T)                                                             \
    TARGET static void NAME##_##T(const uint8_t *g, int64_t nb, const uint8_t *xq, uint64_t ldq,   \
                                  float *y, int64_t ldy, int nr)                                   \
    {                                                                                              \
        CALL(g, nb, xq, ldq, y, ldy, nr, T);                                                       \
    }
#define KERNS(NAME, TARGET, CALL)                                                                  \
    KERN_FN(NAME, TARGET, CALL, 1)                                                                 \
    KERN_FN(NAME, TARGET, CALL, 2)                                                                 \
    KERN_FN(NAME, TARGET, CALL, 3)                                                                 \
    KERN_FN(NAME, TARGET, CALL, 4)
_Static_assert(NTOK == 4 && NTOK_E == 8, "the tables below cover 1 to 4 and 1 to 8 tokens");
KERNS(kv, VNNI_VEX, kern_vex)
static const kern_fn kv[NTOK] = {kv_1, kv_2, kv_3, kv_4};
KERNS(ke, VNNI_EVEX, kern_evex)
KERN_FN(ke, VNNI_EVEX, kern_evex, 5)
KERN_FN(ke, VNNI_EVEX, kern_evex, 6)
KERN_FN(ke, VNNI_EVEX, kern_evex, 7)
KERN_FN(ke, VNNI_EVEX, kern_evex, 8)
static const kern_fn ke[NTOK_E] = {ke_1, ke_2, ke_3, ke_4, ke_5, ke_6, ke_7, ke_8};

static void tile_vex(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int64_t nr,
                     const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb, float *y, int64_t ldy,
                     void *scratch)
{
    const uint64_t gbytes = (uint64_t)nb * GV;
    imc_qmm_repack_rows(repack, 8, type, w, row_bytes, nr, nb, gbytes, scratch);
    imc_qmm_run_passes(kv, NTOK, 8, scratch, gbytes, nr, xq, ldq, nt, nb, y, ldy);
}

static void tile_evex(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int64_t nr,
                      const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb, float *y,
                      int64_t ldy, void *scratch)
{
    const uint64_t gbytes = (uint64_t)nb * GE;
    imc_qmm_repack_rows(repack16, 16, type, w, row_bytes, nr, nb, gbytes, scratch);
    imc_qmm_run_passes(ke, NTOK_E, 16, scratch, gbytes, nr, xq, ldq, nt, nb, y, ldy);
}

// ---- K types (AVX512 only): the AVX2 tile's repacked groups, two tokens per 512-bit vector ----

#define GK 2880  // qmm_avx2.h imc_qmm_repack_k_avx2's layout
#define GK_NC 32 // q3_k, q6_k (no mins): −128·Σ_k sc_k·Σ w of each row, int32, in dmin's place
#define GK_SC 64
#define GK_MN 576
#define GK_Q 832

// After the repack, for the signed types (q3_k, q6_k): each row's 128·Σ_k sc_k · Σ_{e in k} w_e
// of a super-block, negated, into the group's dmin slot (those types have no dmin).
AVX2 static void k_correction(uint8_t *g, int64_t nb)
{
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    const __m256i lo16 = _mm256_set1_epi32(0xffff);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *gb = g + b * GK;
        __m256i c = _mm256_setzero_si256();
        for (int k = 0; k < 16; k++) {
            __m256i s = _mm256_setzero_si256(); // lane r: Σ w of group k (|s| <= 16·32)
            for (int j = 0; j < 4; j++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(gb + GK_Q + 128 * k) + j);
                s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16));
            }
            const __m256i sv = _mm256_loadu_si256((const __m256i *)(gb + GK_SC + 32 * k));
            c = _mm256_add_epi32(c, _mm256_madd_epi16(sv, _mm256_and_si256(s, lo16)));
        }
        _mm256_storeu_si256((__m256i *)(gb + GK_NC),
                            _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(c, 7)));
    }
}

// Two tokens' 16 activation bytes of group k in the 128-bit lanes (a, a, b, b), as unsigned
// x + 128 when ux.
VNNI_EVEX static inline __attribute__((always_inline)) __m512i
pair_k(const struct imc_q8k *a, const struct imc_q8k *b, int k, bool ux)
{
    const __m256i lo =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(a->q + 16 * k)));
    const __m256i hi =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b->q + 16 * k)));
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    return ux ? _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80)) : v;
}

VNNI_EVEX static inline __attribute__((always_inline)) __m512i bcast256(const uint8_t *p)
{
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

// 8 repacked rows of a K type (not iq4_xs) × T tokens, two per vector (as kern_evex). Unsigned
// weights (q2_k, q4_k, q5_k) times signed x: maddubs pair sums, 4 added as int16 (8·31·127 <
// 2^15), vpdpwssd with the group's scales. Signed weights (q3_k, q6_k) times unsigned x + 128:
// 2 added as int16 (4·255·32 < 2^15; q3_k: 4), then the row's −128·Σ sc·w. Mins as the AVX2
// kernel: one madd of the min pairs with the block-sum pairs per 32 elements. I exact, then the
// same fmadd (and fnmadd) per (row, token) as every path.
VNNI_EVEX static inline __attribute__((always_inline)) void
kern_k512(enum imc_type type, const uint8_t *g, int64_t nb, const uint8_t *xq, uint64_t ldq,
          float *y, int64_t ldy, int nr, const int T)
{
    const bool sgn = type == IMC_TYPE_Q3_K || type == IMC_TYPE_Q6_K;
    const bool two = type == IMC_TYPE_Q6_K, mins = imc_qmm_has_mins(type);
    const int P = (T + 1) / 2;
    __m512 acc[NTOK_E / 2];
#pragma GCC unroll 8
    for (int p = 0; p < P; p++) {
        acc[p] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *gb = g + b * GK;
        __m512i is[NTOK_E / 2];
#pragma GCC unroll 8
        for (int p = 0; p < P; p++) {
            is[p] = sgn ? bcast256(gb + GK_NC) : _mm512_setzero_si512();
        }
        const struct imc_q8k *x0[NTOK_E / 2], *x1[NTOK_E / 2];
#pragma GCC unroll 8
        for (int p = 0; p < P; p++) {
            const int t1 = 2 * p + 1 < T ? 2 * p + 1 : 2 * p;
            x0[p] = (const struct imc_q8k *)(xq + 2 * p * ldq) + b;
            x1[p] = (const struct imc_q8k *)(xq + t1 * ldq) + b;
        }
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++) {
            const uint8_t *qk = gb + GK_Q + 128 * k;
            const __m512i q0 = bcast256(qk), q1 = bcast256(qk + 32), q2 = bcast256(qk + 64);
            const __m512i q3 = bcast256(qk + 96), sv = bcast256(gb + GK_SC + 32 * k);
#pragma GCC unroll 8
            for (int p = 0; p < P; p++) {
                const __m512i u = pair_k(x0[p], x1[p], k, sgn);
                const __m512i y0 = _mm512_shuffle_epi32(u, 0x00),
                              y1 = _mm512_shuffle_epi32(u, 0x55);
                const __m512i y2 = _mm512_shuffle_epi32(u, 0xaa),
                              y3 = _mm512_shuffle_epi32(u, 0xff);
                __m512i s01, s23;
                if (sgn) {
                    s01 = _mm512_add_epi16(_mm512_maddubs_epi16(y0, q0),
                                           _mm512_maddubs_epi16(y1, q1));
                    s23 = _mm512_add_epi16(_mm512_maddubs_epi16(y2, q2),
                                           _mm512_maddubs_epi16(y3, q3));
                } else {
                    s01 = _mm512_add_epi16(_mm512_maddubs_epi16(q0, y0),
                                           _mm512_maddubs_epi16(q1, y1));
                    s23 = _mm512_add_epi16(_mm512_maddubs_epi16(q2, y2),
                                           _mm512_maddubs_epi16(q3, y3));
                }
                if (two) {
                    is[p] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(is[p], s01, sv), s23, sv);
                } else {
                    is[p] = _mm512_dpwssd_epi32(is[p], _mm512_add_epi16(s01, s23), sv);
                }
            }
        }
        const __m512 d = _mm512_castpd_ps(
            _mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps((const float *)gb))));
        const __m512 dmin = _mm512_castpd_ps(
            _mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps((const float *)gb + 8))));
#pragma GCC unroll 8
        for (int p = 0; p < P; p++) {
            const __m512 dx = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(x0[p]->d)),
                                                 _mm256_set1_ps(x1[p]->d), 1);
            acc[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[p]), _mm512_mul_ps(d, dx), acc[p]);
            if (mins) {
                __m512i m = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++) {
                    int32_t b0, b1;
                    memcpy(&b0, &x0[p]->bsum[2 * i], 4);
                    memcpy(&b1, &x1[p]->bsum[2 * i], 4);
                    const __m512i bs = _mm512_inserti64x4(
                        _mm512_castsi256_si512(_mm256_set1_epi32(b0)), _mm256_set1_epi32(b1), 1);
                    m = _mm512_add_epi32(m, _mm512_madd_epi16(bcast256(gb + GK_MN + 32 * i), bs));
                }
                acc[p] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(dmin, dx), acc[p]);
            }
        }
    }
    store_pairs(acc, y, ldy, nr, T);
}

// One table of NTOK_E functions per K type.
#define KK_FN(NAME, TYPE, T)                                                                       \
    VNNI_EVEX static void kk##NAME##_##T(const uint8_t *g, int64_t nb, const uint8_t *xq,          \
                                         uint64_t ldq, float *y, int64_t ldy, int nr)              \
    {                                                                                              \
        kern_k512(TYPE, g, nb, xq, ldq, y, ldy, nr, T);                                            \
    }
#define KK_TABLE(NAME, TYPE)                                                                       \
    KK_FN(NAME, TYPE, 1)                                                                           \
    KK_FN(NAME, TYPE, 2)                                                                           \
    KK_FN(NAME, TYPE, 3)                                                                           \
    KK_FN(NAME, TYPE, 4)                                                                           \
    KK_FN(NAME, TYPE, 5)                                                                           \
    KK_FN(NAME, TYPE, 6)                                                                           \
    KK_FN(NAME, TYPE, 7)                                                                           \
    KK_FN(NAME, TYPE, 8)                                                                           \
    static const kern_fn kk##NAME[NTOK_E] = {kk##NAME##_1, kk##NAME##_2, kk##NAME##_3,             \
                                             kk##NAME##_4, kk##NAME##_5, kk##NAME##_6,             \
                                             kk##NAME##_7, kk##NAME##_8};
KK_TABLE(q2, IMC_TYPE_Q2_K)
KK_TABLE(q3, IMC_TYPE_Q3_K)
KK_TABLE(q4, IMC_TYPE_Q4_K)
KK_TABLE(q5, IMC_TYPE_Q5_K)
KK_TABLE(q6, IMC_TYPE_Q6_K)

static void tile_k512(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int64_t nr,
                      const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb, float *y,
                      int64_t ldy, void *scratch)
{
    const kern_fn *kern = type == IMC_TYPE_Q2_K   ? kkq2
                          : type == IMC_TYPE_Q3_K ? kkq3
                          : type == IMC_TYPE_Q4_K ? kkq4
                          : type == IMC_TYPE_Q5_K ? kkq5
                                                  : kkq6;
    IMC_ASSERT(imc_qmm_is_k(type) && type != IMC_TYPE_IQ4_XS);
    const uint64_t gbytes = (uint64_t)nb * GK;
    uint8_t *rp = scratch;
    for (int64_t r = 0; r < nr; r += 8) {
        const int rn = nr - r < 8 ? (int)(nr - r) : 8;
        uint8_t *g = rp + (uint64_t)(r / 8) * gbytes;
        imc_qmm_repack_k_avx2(type, w + (uint64_t)r * row_bytes, row_bytes, rn, nb, g);
        if (type == IMC_TYPE_Q3_K || type == IMC_TYPE_Q6_K) {
            k_correction(g, nb);
        }
    }
    imc_qmm_run_passes(kern, NTOK_E, 8, rp, gbytes, nr, xq, ldq, nt, nb, y, ldy);
}

imc_qmm_tile_fn imc_qmm_tile_vnni_k(void)
{
    __builtin_cpu_init();
    const bool ok = imc_qmm_tile_avx2() && __builtin_cpu_supports("avx512vnni") &&
                    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512dq");
    return ok ? tile_k512 : NULL;
}

imc_qmm_tile_fn imc_qmm_tile_vnni(enum imc_qmm_vnni enc)
{
    __builtin_cpu_init();
    if (!imc_qmm_tile_avx2()) {
        return NULL;
    }
    const bool evex = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
    const bool vex = __builtin_cpu_supports("avxvnni");
    switch (enc) {
    case IMC_QMM_VNNI_EVEX:
        return evex ? tile_evex : NULL;
    case IMC_QMM_VNNI_VEX:
        return vex ? tile_vex : NULL;
    default:
        return evex ? tile_evex : vex ? tile_vex : NULL;
    }
}

#endif // x86
