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
 *   from the activation block's c128; two vectors (32 rows) × up to 6 tokens per call, a last
 *   group of 16 rows × up to 8. Repacked group of 16 rows per block: GE bytes (below).
 * - AVX-VNNI (VEX, 256-bit): the activations unsigned (u = x + 128; x ^ 0x80, |x| <= 127),
 *   I_b = Σ u·w − 128·Σ w with the weights' correction computed once, at repack; 4 tokens per
 *   call. Repacked group of 8 rows per block (GV bytes): d[8] (f32), −128·Σw per row (int32),
 *   then the weights as in qmm_avx2.c (lane r of vector j = row r's elements 4j .. 4j+3).
 * K types (AVX512 only): 16 rows per vector likewise, the AVX2 K repack's parts interleaved.
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

#define NTOK_E 8  // token rows per 512-bit kernel call of one 16-row panel (both 512-bit tiles)
#define NTOK_2 6  // token rows per call of the two-panel (32-row) kernels
#define PASS_2 30 // token rows per pass over the repacked rows, a multiple of NTOK_2

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

// The 4 bytes at p in every int32 lane (a broadcast load).
VNNI_EVEX static inline __attribute__((always_inline)) __m512i bcast32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

VNNI_EVEX static inline __attribute__((always_inline)) void zero16(__m512 *acc, const int T)
{
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
        acc[t] = _mm512_setzero_ps();
    }
}

// Lanes 0 .. nr−1 (the group's real rows) of T accumulators to y + t·ldy.
VNNI_EVEX static inline __attribute__((always_inline)) void
store16(const __m512 *acc, float *y, int64_t ldy, int nr, const int T)
{
    const __mmask16 m = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) {
        _mm512_mask_storeu_ps(y + t * ldy, m, acc[t]);
    }
}

// P panels of 16 repacked rows (panel p: nb groups of GE at g + p·nb·GE, consecutive 16-row
// groups of the tile; nr of the 16·P rows real) × T tokens. With two panels each broadcast of
// a token's 4 activation bytes feeds two vpdpbusd: the kernel is bound by the load ports (two
// loads per cycle, broadcasts included, against two vpdpbusd), and one panel spends a load per
// vpdpbusd. The float operations per (row, token, block) are those of every path.
VNNI_EVEX static inline __attribute__((always_inline)) void
kern_evex(const uint8_t *g, int64_t nb, const uint8_t *xq, uint64_t ldq, float *y, int64_t ldy,
          int nr, const int P, const int T)
{
    const uint64_t ps = (uint64_t)nb * GE; // bytes between panels
    __m512 acc[2][NTOK_E];
#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        zero16(acc[p], T);
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *gb = g + b * GE;
        const struct imc_q8x *xb[NTOK_E];
        __m512i is[2][NTOK_E];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            xb[t] = (const struct imc_q8x *)(xq + t * ldq) + b;
            is[0][t] = is[1][t] = _mm512_set1_epi32(xb[t]->c128);
        }
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i q[2];
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) {
                q[p] = _mm512_loadu_si512((const void *)(gb + p * ps + GE_Q + 64 * j));
            }
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                const __m512i x = bcast32(xb[t]->q + 4 * j);
#pragma GCC unroll 2
                for (int p = 0; p < P; p++) {
                    is[p][t] = _mm512_dpbusd_epi32(is[p][t], q[p], x);
                }
            }
        }
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) {
            const __m512 dw = _mm512_loadu_ps((const float *)(gb + p * ps));
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                acc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[p][t]),
                                            _mm512_mul_ps(dw, _mm512_set1_ps(xb[t]->d)), acc[p][t]);
            }
        }
    }
    store16(acc[0], y, ldy, nr < 16 ? nr : 16, T);
    if (P == 2) {
        store16(acc[1], y + 16, ldy, nr - 16, T);
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
#define KERN_E1(g, nb, xq, ldq, y, ldy, nr, T) kern_evex(g, nb, xq, ldq, y, ldy, nr, 1, T)
#define KERN_E2(g, nb, xq, ldq, y, ldy, nr, T) kern_evex(g, nb, xq, ldq, y, ldy, nr, 2, T)
KERNS(ke, VNNI_EVEX, KERN_E1)
KERN_FN(ke, VNNI_EVEX, KERN_E1, 5)
KERN_FN(ke, VNNI_EVEX, KERN_E1, 6)
KERN_FN(ke, VNNI_EVEX, KERN_E1, 7)
KERN_FN(ke, VNNI_EVEX, KERN_E1, 8)
static const kern_fn ke[NTOK_E] = {ke_1, ke_2, ke_3, ke_4, ke_5, ke_6, ke_7, ke_8};
_Static_assert(NTOK_2 == 6, "the table below covers 1 to 6 tokens");
KERNS(ke2, VNNI_EVEX, KERN_E2)
KERN_FN(ke2, VNNI_EVEX, KERN_E2, 5)
KERN_FN(ke2, VNNI_EVEX, KERN_E2, 6)
static const kern_fn ke2[NTOK_2] = {ke2_1, ke2_2, ke2_3, ke2_4, ke2_5, ke2_6};

// The tile's rows (nr, in 16-row groups of gbytes at rp) × nt tokens, by passes of PASS_2
// tokens over the groups (their blocks stay in L2): 32 rows at a time by ke2 (up to NTOK_2
// tokens per call), a last group of 16 or fewer rows by ke (up to NTOK_E).
static void run_pairs(const uint8_t *rp, uint64_t gbytes, int64_t nr, const uint8_t *xq,
                      uint64_t ldq, int64_t nt, int64_t nb, float *y, int64_t ldy)
{
    for (int64_t t0 = 0; t0 < nt; t0 += PASS_2) {
        const int64_t t1 = t0 + PASS_2 < nt ? t0 + PASS_2 : nt;
        for (int64_t r = 0; r < nr; r += 32) {
            const int rn = nr - r < 32 ? (int)(nr - r) : 32;
            const kern_fn *kern = rn > 16 ? ke2 : ke;
            const int ntok = rn > 16 ? NTOK_2 : NTOK_E;
            for (int64_t t = t0; t < t1; t += ntok) {
                const int tn = t1 - t < ntok ? (int)(t1 - t) : ntok;
                kern[tn - 1](rp + (uint64_t)(r / 16) * gbytes, nb, xq + (uint64_t)t * ldq, ldq,
                             y + t * ldy + r, ldy, rn);
            }
        }
    }
}

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
    run_pairs(scratch, gbytes, nr, xq, ldq, nt, nb, y, ldy);
}

// ---- K types (AVX512 BW/DQ/VL/VNNI): 16 rows per vector -----------------------------------------
//
// As the 32-block tile: 16 rows per 512-bit vector, each 4-byte group of a token's activations
// one broadcast load. The weights enter maddubs unsigned: q2_k, q4_k, q5_k as they are, q3_k
// and q6_k biased by β = 4 and 32 (0..7, 0..63), the activations signed. Per 16-element group k,
// the maddubs pair sums of its 4 byte groups added as int16 where they cannot overflow (pairs
// <= 2·max w·127: q2_k..q5_k all 4, q6_k 2 at a time, 4·63·127 < 2^15), then vpdpwssd with the
// rows' scale pairs (sc_k, sc_k):
//     I = Σ_k sc_k · Σ_{e in k} (w_e + β)·x_e  −  β · Σ_k sc_k · bsum_k
// the second term by vpdpwssd of the rows' (−β·sc_2i, −β·sc_2i+1) pairs against the token's
// bsum pairs; for the types with mins, M = Σ_k mn_k · bsum_k the same way, from the min pairs.
// iq4_xs (grid −127..113, β = 128: a maddubs pair would saturate) takes vpdpbusd instead: per
// 32-element sub-block j (one scale) S_j = Σ (w + 128)·x by 8 vpdpbusd, then I += sc_j · S_j
// (vpmulld; |S_j| <= 32·241·127, |I| < 2^31), the −128·Σ sc·bsum term as q3_k's.
// I and M exact, then the fmadd (and fnmadd) per (row, token) of every path.
// Repacked group of 16 rows per super-block: qmm_avx2.h's imc_qmm_repack_k16_avx2 layout.
#define GK16 IMC_QMM_GK16
#define GK16_SC IMC_QMM_GK16_SC
#define GK16_MN IMC_QMM_GK16_MN
#define GK16_Q IMC_QMM_GK16_Q
_Static_assert(GK16 <= 2 * 2880, "imc_qmm_scratch_bytes: 2880 bytes per 8 rows and super-block");

// 16 repacked rows of a K type (nb groups of GK16 at g, nr real) × T tokens.
VNNI_EVEX static inline __attribute__((always_inline)) void
kern_k16(enum imc_type type, const uint8_t *g, int64_t nb, const uint8_t *xq, uint64_t ldq,
         float *y, int64_t ldy, int nr, const int T)
{
    const bool two = type == IMC_TYPE_Q6_K, mins = imc_qmm_has_mins(type);
    const bool iq4 = type == IMC_TYPE_IQ4_XS;
    __m512 acc[NTOK_E];
    zero16(acc, T);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *gb = g + b * GK16;
        const struct imc_q8k *x[NTOK_E];
        __m512i is[NTOK_E], m[NTOK_E];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            x[t] = (const struct imc_q8k *)(xq + t * ldq) + b;
            is[t] = m[t] = _mm512_setzero_si512();
        }
        if (iq4) { // per 32-element sub-block j: S_j by 8 vpdpbusd (two chains), then sc_j · S_j
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                const __m512i *qj = (const __m512i *)(gb + GK16_Q + 512 * j);
                __m512i q[8];
#pragma GCC unroll 8
                for (int v = 0; v < 8; v++) {
                    q[v] = _mm512_loadu_si512(qj + v);
                }
                // sc_j as int32: the high half of group 2j's (sc, sc) pair
                const __m512i sc = _mm512_srai_epi32(
                    _mm512_loadu_si512((const void *)(gb + GK16_SC + 128 * j)), 16);
#pragma GCC unroll 16
                for (int t = 0; t < T; t++) {
                    const int8_t *xj = x[t]->q + 32 * j;
                    __m512i sa = _mm512_setzero_si512(), sb = _mm512_setzero_si512();
#pragma GCC unroll 4
                    for (int v = 0; v < 4; v++) {
                        sa = _mm512_dpbusd_epi32(sa, q[v], bcast32(xj + 4 * v));
                        sb = _mm512_dpbusd_epi32(sb, q[4 + v], bcast32(xj + 16 + 4 * v));
                    }
                    is[t] =
                        _mm512_add_epi32(is[t], _mm512_mullo_epi32(_mm512_add_epi32(sa, sb), sc));
                }
            }
        }
#pragma GCC unroll 16
        for (int k = 0; k < 16 && !iq4; k++) {
            const __m512i *qk = (const __m512i *)(gb + GK16_Q + 256 * k);
            const __m512i q0 = _mm512_loadu_si512(qk), q1 = _mm512_loadu_si512(qk + 1);
            const __m512i q2 = _mm512_loadu_si512(qk + 2), q3 = _mm512_loadu_si512(qk + 3);
            const __m512i sv = _mm512_loadu_si512((const void *)(gb + GK16_SC + 64 * k));
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                const int8_t *xk = x[t]->q + 16 * k;
                const __m512i s01 = _mm512_add_epi16(_mm512_maddubs_epi16(q0, bcast32(xk)),
                                                     _mm512_maddubs_epi16(q1, bcast32(xk + 4)));
                const __m512i s23 = _mm512_add_epi16(_mm512_maddubs_epi16(q2, bcast32(xk + 8)),
                                                     _mm512_maddubs_epi16(q3, bcast32(xk + 12)));
                is[t] = two ? _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(is[t], s01, sv), s23, sv)
                            : _mm512_dpwssd_epi32(is[t], _mm512_add_epi16(s01, s23), sv);
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) { // the block-sum terms: M (mins) or −β·Σ sc·bsum (into I)
            const __m512i mv = _mm512_loadu_si512((const void *)(gb + GK16_MN + 64 * i));
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                const __m512i bs = bcast32(&x[t]->bsum[2 * i]);
                if (mins) {
                    m[t] = _mm512_dpwssd_epi32(m[t], mv, bs);
                } else {
                    is[t] = _mm512_dpwssd_epi32(is[t], mv, bs);
                }
            }
        }
        const __m512 d = _mm512_loadu_ps((const float *)gb);
        const __m512 dmin = _mm512_loadu_ps((const float *)gb + 16);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const __m512 dx = _mm512_set1_ps(x[t]->d);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t]), _mm512_mul_ps(d, dx), acc[t]);
            if (mins) {
                acc[t] =
                    _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m[t]), _mm512_mul_ps(dmin, dx), acc[t]);
            }
        }
    }
    store16(acc, y, ldy, nr, T);
}

// One table of NTOK_E functions per K type.
#define KK_FN(NAME, TYPE, T)                                                                       \
    VNNI_EVEX static void kk##NAME##_##T(const uint8_t *g, int64_t nb, const uint8_t *xq,          \
                                         uint64_t ldq, float *y, int64_t ldy, int nr)              \
    {                                                                                              \
        kern_k16(TYPE, g, nb, xq, ldq, y, ldy, nr, T);                                             \
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
KK_TABLE(iq4, IMC_TYPE_IQ4_XS)

static void tile_k512(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int64_t nr,
                      const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb, float *y,
                      int64_t ldy, void *scratch)
{
    const kern_fn *kern = type == IMC_TYPE_Q2_K   ? kkq2
                          : type == IMC_TYPE_Q3_K ? kkq3
                          : type == IMC_TYPE_Q4_K ? kkq4
                          : type == IMC_TYPE_Q5_K ? kkq5
                          : type == IMC_TYPE_Q6_K ? kkq6
                                                  : kkiq4;
    IMC_ASSERT(imc_qmm_is_k(type));
    const uint64_t gbytes = (uint64_t)nb * GK16;
    imc_qmm_repack_rows(imc_qmm_repack_k16_avx2, 16, type, w, row_bytes, nr, nb, gbytes, scratch);
    imc_qmm_run_passes(kern, NTOK_E, 16, scratch, gbytes, nr, xq, ldq, nt, nb, y, ldy);
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
