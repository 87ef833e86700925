/*
 * kernels/cpu/bmm_x86: the vector micro-kernels of the bf16 matmul (kernels/cpu/bmm.h) and its
 * AVX2 activation converter. Compiled by target attributes only; handed out when the CPU has the
 * instructions.
 *
 * A 32-bit lane holds one pair of bf16 elements: the even one in its low half, the odd one in its
 * high half. vdpbf16ps adds both products into the lane (odd first, bmm.h). The emulations take
 * weights and activations split into f32 (odd: the lane masked to its high half; even: the lane
 * shifted left by 16, both exact), the activations once per matmul (imc_bmm_convert_rows), a
 * tile's weight rows once per tile (bmm.c), in one layout per kernel: per chunk, h-major for AVX2
 * (lane half h: its 8 odd parts, then its 8 even), p-major for AVX512 (the 16 odd, the 16 even).
 * They run two fmadds per lane and chunk, odd first, under the tile's MXCSR DAZ/FTZ: loads and
 * fmadds only, as the f32 GEMM. Register use: AVX512BF16 and AVX512 keep all 4 rows × 6 tokens of
 * accumulators (24 zmm) through one pass (AVX512: the rows' parts in 4 more, the tokens' read by
 * the fmadds); AVX2 four passes, one per lane half and 3 tokens, of 4 rows × 3 tokens (12 ymm of
 * accumulators, the tokens' parts in 3 more). The passes re-read the block's weights from L1
 * (bmm.c: a K block of 4 rows is 8 KiB as bf16, 16 KiB split). The lane tree of every kernel
 * runs in registers (red_512) where the CPU has AVX-512.
 */
#include "kernels/cpu/bmm.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#include "types/types.h"

#define T_AVX2 __attribute__((target("avx2,fma")))
#define T_512 __attribute__((target("avx2,fma,avx512f")))
#define T_BF16 __attribute__((target("avx2,fma,avx512f,avx512bf16")))
#define INLINE static inline __attribute__((always_inline))

#define NT IMC_BMM_NT
#define MR IMC_BMM_MR
#define L IMC_BMM_LANES

// The tail chunk of bf16 rows w[0..nr) (n elements, n not a multiple of 32) copied into tmp with
// +0 past n, where the chunks [c0, c1) reach it; returns the number of whole chunks of a row.
// Done before the accumulators are live (a call in the chunk loop would make them spill).
INLINE int64_t tails(const uint16_t *const *w, int nr, int64_t c1, int64_t n,
                     uint16_t tmp[][IMC_BMM_CHUNK])
{
    const int64_t whole = n / IMC_BMM_CHUNK;
    if (c1 > whole) {
        for (int i = 0; i < nr; i++) {
            memset(tmp[i], 0, IMC_BMM_CHUNK * sizeof(uint16_t));
            memcpy(tmp[i], w[i] + whole * IMC_BMM_CHUNK,
                   (size_t)(n - whole * IMC_BMM_CHUNK) * sizeof(uint16_t));
        }
    }
    return whole;
}

// ---- AVX512BF16 ---------------------------------------------------------------------------------

// The group's lane accumulators of 4 rows × nk tokens from acc (+0 when init), and back.
T_512 INLINE void acc_load512(int nk, __m512 a[MR][NT], const float *acc, bool init)
{
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < nk; j++) {
            a[i][j] = init ? _mm512_setzero_ps() : _mm512_loadu_ps(acc + (i * NT + j) * L);
        }
    }
}

T_512 INLINE void acc_store512(int nk, __m512 a[MR][NT], float *acc)
{
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < nk; j++) {
            _mm512_storeu_ps(acc + (i * NT + j) * L, a[i][j]);
        }
    }
}

// One chunk: rows at wp[i] + we against tokens at xp[j] + xe (element offsets), j < nk.
T_BF16 INLINE void step_bf16(int nk, __m512 a[MR][NT], const uint16_t *const wp[MR], int64_t we,
                             const uint16_t *const xp[NT], int64_t xe)
{
    __m512i wv[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        wv[i] = _mm512_loadu_si512(wp[i] + we);
    }
#pragma GCC unroll 8
    for (int j = 0; j < nk; j++) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(xp[j] + xe);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            a[i][j] = _mm512_dpbf16_ps(a[i][j], (__m512bh)wv[i], xv);
        }
    }
}

// 4 rows × nk tokens (a constant where inlined: the accumulators of absent tokens are left out).
T_BF16 INLINE void body_bf16(int nk, const uint8_t *const *wb, const uint8_t *const *xb, int64_t c0,
                             int64_t c1, int64_t n, float *acc, bool init)
{
    _Static_assert(MR == 4 && NT == 6, "the pointer lists below");
    const uint16_t *const *w = (const uint16_t *const *)wb;
    const uint16_t *const *x = (const uint16_t *const *)xb;
    uint16_t tmp[MR][IMC_BMM_CHUNK];
    const int64_t whole = tails(w, MR, c1, n, tmp);
    const uint16_t *const wp[MR] = {w[0], w[1], w[2], w[3]};
    const uint16_t *const tp[MR] = {tmp[0], tmp[1], tmp[2], tmp[3]};
    const uint16_t *const xp[NT] = {x[0], x[1], x[2], x[3], x[4], x[5]};
    __m512 a[MR][NT];
    acc_load512(nk, a, acc, init);
    const int64_t e1 = (c1 < whole ? c1 : whole) * IMC_BMM_CHUNK;
    for (int64_t e = c0 * IMC_BMM_CHUNK; e < e1; e += IMC_BMM_CHUNK) {
        step_bf16(nk, a, wp, e, xp, e);
    }
    if (c1 > whole) {
        step_bf16(nk, a, tp, 0, xp, whole * IMC_BMM_CHUNK);
    }
    acc_store512(nk, a, acc);
}

// BODY(k, ...) with k nk as a constant (1..4, else NT): the micro-kernels' bodies are inlined
// once per token count, so that absent tokens' accumulators are left out.
#define BY_NK(nk, BODY, ...)                                                                       \
    do {                                                                                           \
        switch (nk) {                                                                              \
        case 1:                                                                                    \
            BODY(1, __VA_ARGS__);                                                                  \
            break;                                                                                 \
        case 2:                                                                                    \
            BODY(2, __VA_ARGS__);                                                                  \
            break;                                                                                 \
        case 3:                                                                                    \
            BODY(3, __VA_ARGS__);                                                                  \
            break;                                                                                 \
        case 4:                                                                                    \
            BODY(4, __VA_ARGS__);                                                                  \
            break;                                                                                 \
        default:                                                                                   \
            BODY(NT, __VA_ARGS__);                                                                 \
        }                                                                                          \
    } while (0)

T_BF16 static void uk_bf16(const uint8_t *const *w, const uint8_t *const *x, int nk, int64_t c0,
                           int64_t c1, int64_t n, float *acc, bool init)
{
    BY_NK(nk, body_bf16, w, x, c0, c1, n, acc, init);
}

// The tree of bmm.h on each accumulator, in registers: the halves' sum is s, its halves' sum u,
// then u0 + u2 and u1 + u3, then their sum.
T_512 static void red_512(const float *acc, int64_t nr, int nk, float *y, int64_t ldy)
{
    for (int j = 0; j < nk; j++) {
        for (int64_t r = 0; r < nr; r++) {
            const __m512 a = _mm512_loadu_ps(acc + (r * NT + j) * L);
            const __m256 s8 =
                _mm256_add_ps(_mm512_castps512_ps256(a),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
            const __m128 u4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
            const __m128 v2 = _mm_add_ps(u4, _mm_movehl_ps(u4, u4));
            const __m128 v = _mm_add_ss(v2, _mm_shuffle_ps(v2, v2, 1));
            y[j * ldy + r] = _mm_cvtss_f32(v);
        }
    }
}

// ---- AVX512 emulation (split rows, p-major) -----------------------------------------------------

T_512 INLINE void body_512(int nk, const uint8_t *const *wb, const uint8_t *const *xb, int64_t c0,
                           int64_t c1, float *acc, bool init)
{
    const float *const *w = (const float *const *)wb;
    const float *const *x = (const float *const *)xb;
    const float *const wp[MR] = {w[0], w[1], w[2], w[3]};
    const float *const xp[NT] = {x[0], x[1], x[2], x[3], x[4], x[5]};
    __m512 a[MR][NT];
    acc_load512(nk, a, acc, init);
    for (int64_t f = c0 * IMC_BMM_CHUNK; f < c1 * IMC_BMM_CHUNK; f += IMC_BMM_CHUNK) {
#pragma GCC unroll 2
        for (int part = 0; part < 2; part++) { // the odd products, then the even
            __m512 wv[MR];
#pragma GCC unroll 8
            for (int i = 0; i < MR; i++) {
                wv[i] = _mm512_loadu_ps(wp[i] + f + 16 * part);
            }
#pragma GCC unroll 8
            for (int j = 0; j < nk; j++) {
                const __m512 xv = _mm512_loadu_ps(xp[j] + f + 16 * part);
#pragma GCC unroll 8
                for (int i = 0; i < MR; i++) {
                    a[i][j] = _mm512_fmadd_ps(wv[i], xv, a[i][j]);
                }
            }
        }
    }
    acc_store512(nk, a, acc);
}

T_512 static void uk_512(const uint8_t *const *w, const uint8_t *const *x, int nk, int64_t c0,
                         int64_t c1, int64_t n, float *acc, bool init)
{
    (void)n; // split rows are padded
    BY_NK(nk, body_512, w, x, c0, c1, acc, init);
}

// ---- AVX2 emulation (split rows, h-major) -------------------------------------------------------

// Lane half h (lanes 8h .. 8h+7) of the 4 rows × tokens j0 .. j0+2 (one pass): 12 accumulators,
// the 3 tokens' parts held, each row's part loaded once for them.
T_AVX2 INLINE void pass_avx2(const float *const *w, const float *const *x, int h, int j0,
                             int64_t c0, int64_t c1, float *acc, bool init)
{
    __m256 a[MR][3];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < 3; j++) {
            const float *p = acc + (i * NT + j0 + j) * L + 8 * h;
            a[i][j] = init ? _mm256_setzero_ps() : _mm256_loadu_ps(p);
        }
    }
    const float *const wp[MR] = {w[0] + 16 * h, w[1] + 16 * h, w[2] + 16 * h, w[3] + 16 * h};
    const float *x0 = x[j0] + 16 * h, *x1 = x[j0 + 1] + 16 * h, *x2 = x[j0 + 2] + 16 * h;
    for (int64_t f = c0 * IMC_BMM_CHUNK; f < c1 * IMC_BMM_CHUNK; f += IMC_BMM_CHUNK) {
#pragma GCC unroll 2
        for (int part = 0; part < 2; part++) { // odd, then even
            const int64_t o = f + 8 * part;
            const __m256 xa = _mm256_loadu_ps(x0 + o), xb = _mm256_loadu_ps(x1 + o),
                         xc = _mm256_loadu_ps(x2 + o);
#pragma GCC unroll 8
            for (int i = 0; i < MR; i++) {
                const __m256 wv = _mm256_loadu_ps(wp[i] + o);
                a[i][0] = _mm256_fmadd_ps(wv, xa, a[i][0]);
                a[i][1] = _mm256_fmadd_ps(wv, xb, a[i][1]);
                a[i][2] = _mm256_fmadd_ps(wv, xc, a[i][2]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < 3; j++) {
            _mm256_storeu_ps(acc + (i * NT + j0 + j) * L + 8 * h, a[i][j]);
        }
    }
}

T_AVX2 static void uk_avx2(const uint8_t *const *wb, const uint8_t *const *xb, int nk, int64_t c0,
                           int64_t c1, int64_t n, float *acc, bool init)
{
    _Static_assert(MR == 4 && NT % 3 == 0, "passes of 4 rows × 3 tokens");
    (void)n; // split rows are padded
    const float *const *w = (const float *const *)wb;
    const float *const *x = (const float *const *)xb;
    for (int h = 0; h < 2; h++) {
        for (int j0 = 0; j0 < nk; j0 += 3) { // a pass past nk repeats a token: harmless
            pass_avx2(w, x, h, j0, c0, c1, acc, init);
        }
    }
}

// ---- activations --------------------------------------------------------------------------------

// The f32 bits of imc_fp32_to_bf16(x) for 8 floats: round to nearest even on the bits, NaN lanes
// the high half with the quiet bit set.
T_AVX2 INLINE __m256i round_bf16(__m256i u)
{
    const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u), quiet = _mm256_set1_epi32(0x400000);
    const __m256i rne = _mm256_and_si256(
        _mm256_add_epi32(u,
                         _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one))),
        hi);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);
    return _mm256_blendv_epi8(rne, _mm256_or_si256(_mm256_and_si256(u, hi), quiet), nan);
}

// imc_fp32_to_bf16 of x[0..n) into out[0..n), 16 at a time.
T_AVX2 static void cvt_avx2(const float *x, int64_t n, uint16_t *out)
{
    int64_t e = 0;
    for (; e + 16 <= n; e += 16) {
        const __m256i a =
            _mm256_srli_epi32(round_bf16(_mm256_loadu_si256((const __m256i *)(x + e))), 16);
        const __m256i b =
            _mm256_srli_epi32(round_bf16(_mm256_loadu_si256((const __m256i *)(x + e + 8))), 16);
        // packus interleaves 128-bit halves: elements 0-3, 8-11, 4-7, 12-15; reorder them
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
        _mm256_storeu_si256((__m256i *)(out + e), p);
    }
    for (; e < n; e++) {
        out[e] = imc_fp32_to_bf16(x[e]);
    }
}

// One chunk x32[0..32) split into the f32 parts of its bf16 values: h-major (AVX2: per lane half
// h, 8 odd then 8 even) or p-major (AVX512: the 16 odd, then the 16 even).
T_AVX2 INLINE void split_chunk(const float *x32, float *out, bool p_major)
{
    for (int h = 0; h < 2; h++) {
        const __m256 a =
            _mm256_castsi256_ps(round_bf16(_mm256_loadu_si256((const __m256i *)(x32 + 16 * h))));
        const __m256 b = _mm256_castsi256_ps(
            round_bf16(_mm256_loadu_si256((const __m256i *)(x32 + 16 * h + 8))));
        // shuffle_ps picks within 128-bit lanes: a1 a3 b1 b3 | a5 a7 b5 b7; permute to order
        const __m256 odd = _mm256_castpd_ps(
            _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xdd)), 0xd8));
        const __m256 even = _mm256_castpd_ps(
            _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xd8));
        _mm256_storeu_ps(out + (p_major ? 8 * h : 16 * h), odd);
        _mm256_storeu_ps(out + (p_major ? 16 + 8 * h : 16 * h + 8), even);
    }
}

T_AVX2 static void split_row(const float *x, int64_t n, float *out, bool p_major)
{
    int64_t e = 0;
    for (; e + IMC_BMM_CHUNK <= n; e += IMC_BMM_CHUNK) {
        split_chunk(x + e, out + e, p_major);
    }
    if (e < n) {
        float t[IMC_BMM_CHUNK] = {0};
        memcpy(t, x + e, (size_t)(n - e) * sizeof(float));
        split_chunk(t, out + e, p_major);
    }
}

T_AVX2 static void split_h(const float *x, int64_t n, void *out)
{
    split_row(x, n, out, false);
}

T_AVX2 static void split_p(const float *x, int64_t n, void *out)
{
    split_row(x, n, out, true);
}

// A bf16 weight row w[0..n) split into the f32 parts of its chunks (layout as split_chunk's),
// padded with +0 to whole chunks.
T_AVX2 static void wsplit_row(const uint16_t *w, int64_t n, float *out, bool p_major)
{
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    for (int64_t e = 0; e < n; e += IMC_BMM_CHUNK) {
        uint16_t t[IMC_BMM_CHUNK] = {0};
        const uint16_t *p = w + e;
        if (e + IMC_BMM_CHUNK > n) {
            memcpy(t, w + e, (size_t)(n - e) * sizeof(uint16_t));
            p = t;
        }
        for (int h = 0; h < 2; h++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(p + 16 * h));
            _mm256_storeu_si256((__m256i *)(out + e + (p_major ? 8 * h : 16 * h)),
                                _mm256_and_si256(v, hi));
            _mm256_storeu_si256((__m256i *)(out + e + (p_major ? 16 + 8 * h : 16 * h + 8)),
                                _mm256_slli_epi32(v, 16));
        }
    }
}

T_AVX2 static void wsplit_h(const uint16_t *w, int64_t n, float *out)
{
    wsplit_row(w, n, out, false);
}

T_AVX2 static void wsplit_p(const uint16_t *w, int64_t n, float *out)
{
    wsplit_row(w, n, out, true);
}

imc_bmm_uk_fn imc_bmm_uk_x86(enum imc_bmm_kernel k)
{
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const bool f512 = avx2 && __builtin_cpu_supports("avx512f");
    switch (k) {
    case IMC_BMM_AVX2:
        return avx2 ? uk_avx2 : NULL;
    case IMC_BMM_AVX512:
        return f512 ? uk_512 : NULL;
    case IMC_BMM_AVX512BF16:
        return f512 && __builtin_cpu_supports("avx512bf16") ? uk_bf16 : NULL;
    default:
        return NULL;
    }
}

imc_bmm_red_fn imc_bmm_red_avx512(void)
{
    return __builtin_cpu_supports("avx512f") ? red_512 : NULL;
}

imc_bmm_cvt_fn imc_bmm_cvt_avx2(void)
{
    return __builtin_cpu_supports("avx2") ? cvt_avx2 : NULL;
}

imc_bmm_split_fn imc_bmm_split_x86(enum imc_bmm_kernel k)
{
    if (!__builtin_cpu_supports("avx2")) {
        return NULL;
    }
    return k == IMC_BMM_AVX2 ? split_h : k == IMC_BMM_AVX512 ? split_p : NULL;
}

imc_bmm_wsplit_fn imc_bmm_wsplit_x86(enum imc_bmm_kernel k)
{
    if (!__builtin_cpu_supports("avx2")) {
        return NULL;
    }
    return k == IMC_BMM_AVX2 ? wsplit_h : k == IMC_BMM_AVX512 ? wsplit_p : NULL;
}

#endif
