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
#define NTOK_K2 6 // token rows per call of the K types' two-panel kernel (kern_ksub)

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

// The accumulators of P panels (1 or 2) × T tokens, zeroed.
VNNI_EVEX static inline __attribute__((always_inline)) void zero_panels(__m512 (*acc)[NTOK_E],
                                                                        const int P, const int T)
{
#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        zero16(acc[p], T);
    }
}

// The real rows (nr of 16·P) of P panels' accumulators to y + t·ldy.
VNNI_EVEX static inline __attribute__((always_inline)) void
store_panels(__m512 (*acc)[NTOK_E], float *y, int64_t ldy, int nr, const int P, const int T)
{
    store16(acc[0], y, ldy, nr < 16 ? nr : 16, T);
    if (P == 2) {
        store16(acc[1], y + 16, ldy, nr - 16, T);
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
    zero_panels(acc, P, T);
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
    store_panels(acc, y, ldy, nr, P, T);
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

static void tile_vex(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int64_t nr,
                     const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb, float *y, int64_t ldy,
                     void *scratch)
{
    const uint64_t gbytes = (uint64_t)nb * GV;
    imc_qmm_repack_rows(repack, 8, type, w, row_bytes, nr, nb, gbytes, scratch);
    const struct imc_qmm_calls calls = {.kern = kv, .ntok = NTOK, .mr = 8, .gr = 8};
    imc_qmm_run_passes(&calls, scratch, gbytes, nr, xq, ldq, nt, nb, y, ldy);
}

static void tile_evex(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int64_t nr,
                      const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb, float *y,
                      int64_t ldy, void *scratch)
{
    const uint64_t gbytes = (uint64_t)nb * GE;
    imc_qmm_repack_rows(repack16, 16, type, w, row_bytes, nr, nb, gbytes, scratch);
    const struct imc_qmm_calls calls = {
        .kern = ke2, .ntok = NTOK_2, .mr = 32, .gr = 16, .tail = ke, .ntok_tail = NTOK_E};
    imc_qmm_run_passes(&calls, scratch, gbytes, nr, xq, ldq, nt, nb, y, ldy);
}

// ---- K types (AVX512 BW/DQ/VL/VNNI): 16 rows per vector, two vectors per call -----------------
//
// As the 32-block tile: 16 rows per 512-bit vector, each 4-byte group of a token's activations
// one broadcast load feeding the vpdpbusd of two 16-row panels. The weights enter vpdpbusd
// unsigned: q2_k, q4_k, q5_k as they are, q3_k, q6_k and iq4_xs biased by β = 4, 32 and 128
// (0..7, 0..63, 1..241), the activations signed. Per sub-block j of SB elements with one scale
// (SB 32 for q4_k, q5_k, iq4_xs; 16 for the others) S_j = Σ (w + β)·x, then
//     I = Σ_j sc_j · S_j  −  β · Σ_k sc_k · bsum_k
// (vpmulld per sub-block), the second term by vpdpwssd of the rows' (−β·sc_2i, −β·sc_2i+1)
// pairs against the token's bsum pairs (16-element groups k); for the types with mins,
// M = Σ_k mn_k · bsum_k the same way, from the min pairs. I and M exact, then the fmadd (and
// fnmadd) per (row, token) of every path. (Before: maddubs pairs summed as int16 and vpdpwssd
// with the scale pairs, per 16 elements: two maddubs and an add where one vpdpbusd does.)
// Repacked group of 16 rows per super-block: qmm_avx2.h's imc_qmm_repack_k16_avx2 layout.
#define GK16 IMC_QMM_GK16
#define GK16_SC IMC_QMM_GK16_SC
#define GK16_MN IMC_QMM_GK16_MN
#define GK16_Q IMC_QMM_GK16_Q
_Static_assert(GK16 <= 2 * 2880, "imc_qmm_scratch_bytes: 2880 bytes per 8 rows and super-block");

// The end of super-block gb (and of gb + ps, the second panel, where P is 2) for T tokens x:
// the block-sum terms (M for the types with mins, −β·Σ sc·bsum into I for the others), then
// the float operations of every path into acc.
VNNI_EVEX static inline __attribute__((always_inline)) void
k_tail(enum imc_type type, const uint8_t *gb, uint64_t ps, const struct imc_q8k *const *x,
       __m512i (*is)[NTOK_E], __m512 (*acc)[NTOK_E], const int P, const int T)
{
    const bool mins = imc_qmm_has_mins(type);
    __m512i m[2][NTOK_E];
#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            m[p][t] = _mm512_setzero_si512();
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        __m512i mv[2];
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) {
            mv[p] = _mm512_loadu_si512((const void *)(gb + p * ps + GK16_MN + 64 * i));
        }
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const __m512i bs = bcast32(&x[t]->bsum[2 * i]);
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) {
                if (mins) {
                    m[p][t] = _mm512_dpwssd_epi32(m[p][t], mv[p], bs);
                } else {
                    is[p][t] = _mm512_dpwssd_epi32(is[p][t], mv[p], bs);
                }
            }
        }
    }
#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        const __m512 d = _mm512_loadu_ps((const float *)(gb + p * ps));
        const __m512 dmin = _mm512_loadu_ps((const float *)(gb + p * ps) + 16);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const __m512 dx = _mm512_set1_ps(x[t]->d);
            acc[p][t] =
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[p][t]), _mm512_mul_ps(d, dx), acc[p][t]);
            if (mins) {
                acc[p][t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m[p][t]), _mm512_mul_ps(dmin, dx),
                                             acc[p][t]);
            }
        }
    }
}

// P panels of 16 repacked rows of a K type (panel p: nb groups of GK16 at g + p·nb·GK16; nr of
// the 16·P rows real) × T tokens, by sub-blocks of SB elements with one scale each (32: q4_k,
// q5_k, iq4_xs; 16: the others). Per sub-block j, S_j = Σ w·x by vpdpbusd (the weights
// unsigned, the activations signed), with two panels each broadcast of a token's 4 activation
// bytes feeding both (as kern_evex), then I += sc_j · S_j (vpmulld). Exact: |S_j| <=
// 32·241·127 (iq4_xs), 16·63·127 (q6_k), and |I| < 2^31 for every type (q6_k, the largest:
// 16 · 128 · 16·63·127 plus its −32·Σ sc·bsum term).
VNNI_EVEX static inline __attribute__((always_inline)) void
kern_ksub(enum imc_type type, const int SB, const uint8_t *g, int64_t nb, const uint8_t *xq,
          uint64_t ldq, float *y, int64_t ldy, int nr, const int P, const int T)
{
    const uint64_t ps = (uint64_t)nb * GK16; // bytes between panels
    // (outside the loop's condition: a division there, instrumented by UBSan, would detach
    // the unroll pragma from the loop, which GCC reports as an error under -Werror)
    const int n_sub = 256 / SB;
    __m512 acc[2][NTOK_E];
    zero_panels(acc, P, T);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *gb = g + b * GK16;
        const struct imc_q8k *x[NTOK_E];
        __m512i is[2][NTOK_E];
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            x[t] = (const struct imc_q8k *)(xq + t * ldq) + b;
            is[0][t] = is[1][t] = _mm512_setzero_si512();
        }
#pragma GCC unroll 1
        for (int j = 0; j < n_sub; j++) {
            __m512i sj[2][NTOK_E];
#pragma GCC unroll 16
            for (int t = 0; t < T; t++) {
                sj[0][t] = sj[1][t] = _mm512_setzero_si512();
            }
#pragma GCC unroll 8
            for (int v = 0; v < SB / 4; v++) { // 16 rows × 4 bytes per vector (GK16_Q)
                const uint8_t *q = gb + GK16_Q + 16 * SB * j + 64 * v;
                __m512i qv[2];
#pragma GCC unroll 2
                for (int p = 0; p < P; p++) {
                    qv[p] = _mm512_loadu_si512((const void *)(q + p * ps));
                }
#pragma GCC unroll 16
                for (int t = 0; t < T; t++) {
                    const __m512i xv = bcast32(x[t]->q + SB * j + 4 * v);
#pragma GCC unroll 2
                    for (int p = 0; p < P; p++) {
                        sj[p][t] = _mm512_dpbusd_epi32(sj[p][t], qv[p], xv);
                    }
                }
            }
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) {
                // sc_j as int32: the high half of its first 16-element group's (sc, sc) pair
                const uint8_t *sc = gb + p * ps + GK16_SC + 4 * SB * j;
                const __m512i scj = _mm512_srai_epi32(_mm512_loadu_si512((const void *)sc), 16);
#pragma GCC unroll 16
                for (int t = 0; t < T; t++) {
                    is[p][t] = _mm512_add_epi32(is[p][t], _mm512_mullo_epi32(sj[p][t], scj));
                }
            }
        }
        k_tail(type, gb, ps, x, is, acc, P, T);
    }
    store_panels(acc, y, ldy, nr, P, T);
}

// Per K type: ks<name>, two panels (1..NTOK_K2 tokens), and ks1<name>, one (1..NTOK_E).
#define KSUB_FN(NAME, TYPE, SB, P, T)                                                              \
    VNNI_EVEX static void ks##P##NAME##_##T(const uint8_t *g, int64_t nb, const uint8_t *xq,       \
                                            uint64_t ldq, float *y, int64_t ldy, int nr)           \
    {                                                                                              \
        kern_ksub(TYPE, SB, g, nb, xq, ldq, y, ldy, nr, P, T);                                     \
    }
#define KSUB_TABLES(NAME, TYPE, SB)                                                                \
    KSUB_FN(NAME, TYPE, SB, 2, 1)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 2, 2)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 2, 3)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 2, 4)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 2, 5)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 2, 6)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 1, 1)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 1, 2)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 1, 3)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 1, 4)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 1, 5)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 1, 6)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 1, 7)                                                                  \
    KSUB_FN(NAME, TYPE, SB, 1, 8)                                                                  \
    static const kern_fn ks2##NAME[NTOK_K2] = {ks2##NAME##_1, ks2##NAME##_2, ks2##NAME##_3,        \
                                               ks2##NAME##_4, ks2##NAME##_5, ks2##NAME##_6};       \
    static const kern_fn ks1##NAME[NTOK_E] = {ks1##NAME##_1, ks1##NAME##_2, ks1##NAME##_3,         \
                                              ks1##NAME##_4, ks1##NAME##_5, ks1##NAME##_6,         \
                                              ks1##NAME##_7, ks1##NAME##_8};
_Static_assert(NTOK_K2 == 6 && NTOK_E == 8, "KSUB_TABLES covers 1 to 6 and 1 to 8 tokens");
KSUB_TABLES(q2, IMC_TYPE_Q2_K, 16)
KSUB_TABLES(q3, IMC_TYPE_Q3_K, 16)
KSUB_TABLES(q4, IMC_TYPE_Q4_K, 32)
KSUB_TABLES(q5, IMC_TYPE_Q5_K, 32)
KSUB_TABLES(q6, IMC_TYPE_Q6_K, 16)
KSUB_TABLES(iq4, IMC_TYPE_IQ4_XS, 32)

static void tile_k512(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int64_t nr,
                      const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb, float *y,
                      int64_t ldy, void *scratch)
{
    const kern_fn *k2, *k1;
    switch (type) {
#define K_CASE(NAME, TYPE)                                                                         \
    case TYPE:                                                                                     \
        k2 = ks2##NAME, k1 = ks1##NAME;                                                            \
        break;
        IMC_QMM_K_TYPES(K_CASE)
#undef K_CASE
    default:
        IMC_ASSERT(!"a K type");
        return;
    }
    const uint64_t gbytes = (uint64_t)nb * GK16;
    imc_qmm_repack_rows(imc_qmm_repack_k16_avx2, 16, type, w, row_bytes, nr, nb, gbytes, scratch);
    const struct imc_qmm_calls calls = {
        .kern = k2, .ntok = NTOK_K2, .mr = 32, .gr = 16, .tail = k1, .ntok_tail = NTOK_E};
    imc_qmm_run_passes(&calls, scratch, gbytes, nr, xq, ldq, nt, nb, y, ldy);
}

imc_qmm_tile_fn imc_qmm_tile_vnni_k(void)
{
    __builtin_cpu_init();
    const bool ok = imc_qmm_tile_avx2() && __builtin_cpu_supports("avx512vnni") &&
                    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512dq");
    return ok ? tile_k512 : NULL;
}

// ---- activation quantization, 512-bit (qmm.h's rule; the scalar functions' bytes) ------------

// roundf(v) for |v| < 2^23: ties away from zero (v − trunc(v) is exact), as qmm_avx2.c's.
VNNI_EVEX static inline __m512 round_away16(__m512 v)
{
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up =
        _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN));
    const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_set1_epi32(0x3f800000)));
    return _mm512_mask_add_ps(t, up, t, one);
}

// max |x_i| over n (a multiple of 16) floats: the scalar loop's value (a NaN element skipped,
// as there: maxps returns its second operand when one is NaN).
VNNI_EVEX static inline float amax16(const float *x, int n)
{
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), m);
    }
    return _mm512_reduce_max_ps(m);
}

// roundf(x[0..16) · id) clamped to [lo, hi] (integers within int8), as int32 lanes.
VNNI_EVEX static inline __m512i quant16(const float *x, __m512 id, __m512 lo, __m512 hi)
{
    const __m512 r = round_away16(_mm512_mul_ps(_mm512_loadu_ps(x), id));
    return _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(r, hi), lo));
}

// The bytes of imc_qmm_quantize_row / _row_k (qmm_avx2.c's quantize_avx2 gives the same): the
// values clamped to [−128, 127] (32-blocks; |x·id| rounds to at most 127) or ±127 before the
// narrowing, so no lane saturates and the int32 lanes sum to the bytes' sums.
VNNI_EVEX static void quantize_avx512(enum imc_type t, const float *x, int64_t n, void *out)
{
    const bool k = imc_qmm_is_k(t);
    const int bs = k ? IMC_QMM_KBLOCK : IMC_QMM_BLOCK;
    const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(k ? -127.0f : -128.0f);
    for (int64_t b = 0; b < n / bs; b++) {
        const float *xb = x + b * bs;
        const float d = amax16(xb, bs) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m512 vid = _mm512_set1_ps(id);
        if (!k) {
            struct imc_q8x *o = (struct imc_q8x *)out + b;
            o->d = imc_fp16_to_fp32(imc_fp32_to_fp16(d)); // the scale as q8_0 stores it
            const __m512i q0 = quant16(xb, vid, lo, hi), q1 = quant16(xb + 16, vid, lo, hi);
            _mm_storeu_si128((__m128i *)o->q, _mm512_cvtepi32_epi8(q0));
            _mm_storeu_si128((__m128i *)(o->q + 16), _mm512_cvtepi32_epi8(q1));
            o->c128 = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
            continue;
        }
        struct imc_q8k *o = (struct imc_q8k *)out + b;
        o->d = d;
        for (int g = 0; g < 16; g++) {
            const __m512i q = quant16(xb + 16 * g, vid, lo, hi);
            _mm_storeu_si128((__m128i *)(o->q + 16 * g), _mm512_cvtepi32_epi8(q));
            o->bsum[g] = (int16_t)_mm512_reduce_add_epi32(q);
        }
    }
}

imc_qmm_quant_fn imc_qmm_quantize_avx512(void)
{
    __builtin_cpu_init();
    const bool ok = imc_qmm_tile_avx2() && __builtin_cpu_supports("avx512f") &&
                    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    return ok ? quantize_avx512 : NULL;
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
