/*
 * tests/kernels/test_qmm: the quantized-activation matmul (kernels/cpu/qmm.h, imc_cpu_matmul in
 * Q8 mode) for every weight type of the integer route: Q8_0, Q4_0, Q5_0, IQ4_NL (32-blocks) and
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS (256-blocks, q8_K-like activations).
 *
 *   - paths: the AVX2 tiles (where the CPU has them) give the generic kernel's bits, for every
 *     edge of the generic 2 × 4 micro-tile, the AVX2 groups of 8 repacked rows × 4 tokens and the
 *     32-token pass, with strided x and y; so do the VNNI tiles of the 32-block types in both
 *     encodings (AVX512-VNNI+VL, AVX-VNNI) and the AVX512 K tile where the CPU has them (a SKIP
 *     line names a missing one; the 512-bit tiles' pairs of 16-row groups, a pair's partial
 *     second group, a last group alone, passes of 30 and 32 tokens), and the matmul on the vnni
 *     path;
 *   - tolerance against the double product of the dequantized W and the ROUNDED activations
 *     (xr_i = d_b·q_i):
 *       |y − ref| <= 2^-22·(2·nb + 8)·Σ_i (|d·sc·wq_i| + |dmin·mn_i|)·|xr_i|
 *     (nb blocks; for the 32-block types the min term is 0 and d·sc·wq_i = w_i): per block at
 *     most two fmaf (the scale, the mins), the int32 -> float rounding of the K types' sums,
 *     the scale products and the decoder's own float rounding of W (three operations), each
 *     <= 2^-24 of the sum of term magnitudes, with a 4× margin. For the 32-block types also
 *     against the f32 x:
 *       |y − ref_f32| <= Σ_i |w_i|·|x_i − xr_i|  +  the bound above;
 *   - quantization: |q| <= 127, an all-zero block gives d = 0, x ≈ d·q within d/2 plus the f16
 *     rounding of d (127·2^-11·d) for 32-blocks; within d/2 and exact block sums for 256-blocks;
 *     exact ties rounded away from zero; the AVX2 quantizer gives the scalar bytes;
 *   - the AVX2 tile that reads W in place (few tokens) bitwise equal to the generic kernel and to
 *     the repacking AVX2 tile at 1..16 tokens, rows 1..19 (every tail of a group of 8);
 *   - the 32-block types' weights and activations at the ends of their ranges: the generic
 *     kernel gives the exact integer sums, every AVX2 and VNNI tile its bits; the K types' at
 *     theirs (weight bytes all 0x00 or 0xFF, scales at their largest): every tile the generic
 *     kernel's bits (catches int16 overflow);
 *   - imc_cpu_matmul in Q8 mode: each output row bitwise the same for 1, 2..16 and 37 tokens, on
 *     pools of 1 and 3 threads, on both paths; types without an integer route keep the F32 bits.
 */
#include <math.h>

#include "kcheck.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/qmm.h"
#include "types/types.h"

static uint8_t *quantize_rows(enum imc_type type, const float *w, int64_t rows, int64_t n,
                              uint64_t *rb)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    imc_type_row_bytes((uint32_t)type, n, rb);
    uint8_t *q = malloc((size_t)(*rb * (uint64_t)rows));
    for (int64_t r = 0; q && r < rows; r++) {
        tr->from_float(w + r * n, q + (uint64_t)r * *rb, n, NULL);
    }
    return q;
}

// Activations with the shapes that matter: an all-zero block, an outlier, small values.
static float *make_x(struct krng *r, int64_t rows, int64_t n)
{
    float *x = kalloc_rand(r, rows * n, 1.0f);
    for (int64_t t = 0; t < rows; t++) {
        if (n >= 64 && t % 3 == 0) {
            memset(x + t * n + 32, 0, 32 * sizeof(float)); // block 1 all zero
        }
        x[t * n + (t * 7) % n] *= 40.0f;
    }
    return x;
}

static void test_quantize(void)
{
    struct krng r = {3};
    float *x = make_x(&r, 3, 96);
    struct imc_q8x q[16];
    bool ok = true;
    for (int t = 0; t < 3; t++) {
        imc_qmm_quantize_row(x + t * 96, 96, q + t * 3);
        for (int b = 0; b < 3; b++) {
            for (int i = 0; i < 32; i++) {
                const float v = x[t * 96 + b * 32 + i], d = q[t * 3 + b].d;
                ok = ok && q[t * 3 + b].q[i] != -128 &&
                     fabsf(v - d * (float)q[t * 3 + b].q[i]) <=
                         (0.5f + 127.0f / 2048.0f) * d * 1.001f;
            }
        }
    }
    CHECK(ok, "quantized blocks within half a step (and the f16 scale's rounding), |q| <= 127");
    CHECK(q[1].d == 0.0f && q[1].q[0] == 0 && q[1].q[31] == 0, "zero block: d = 0, q = 0");
    free(x);
    float *xk = make_x(&r, 1, 512);
    memset(xk + 256, 0, 256 * sizeof(float));
    struct imc_q8k k[2];
    imc_qmm_quantize_row_k(xk, 512, k);
    ok = k[1].d == 0.0f && k[1].bsum[15] == 0;
    for (int i = 0; i < 256; i++) {
        ok = ok && k[0].q[i] != -128 && fabsf(xk[i] - k[0].d * k[0].q[i]) <= 0.501f * k[0].d;
    }
    for (int g = 0; g < 16; g++) {
        int sum = 0;
        for (int i = 0; i < 16; i++) {
            sum += k[0].q[16 * g + i];
        }
        ok = ok && sum == k[0].bsum[g];
    }
    CHECK(ok, "256-blocks: within half a step, |q| <= 127, exact block sums, zero block d = 0");
    // exact ties (amax 127: d = 1, so x·id = x): roundf's away from zero on both paths
    for (int i = 0; i < 512; i++) {
        xk[i] = i % 64 == 0 ? 127.0f : (float)((i % 61) - 30) + (i % 2 ? 0.5f : -0.5f);
    }
    imc_qmm_quantize(IMC_GEMM_GENERIC, IMC_TYPE_Q4_K, xk, 512, k);
    imc_qmm_quantize(IMC_GEMM_GENERIC, IMC_TYPE_Q8_0, xk, 512, q);
    ok = k[0].q[1] == (int8_t)roundf(xk[1]) && k[0].q[2] == (int8_t)roundf(xk[2]);
    CHECK(ok, "ties rounded away from zero");
    // every vector quantizer gives the scalar bytes: the ties above, then random rows with a
    // zero block and a block whose amax is negative
    float *xr = make_x(&r, 1, 512);
    memset(xr + 32, 0, 32 * sizeof(float));
    xr[300] = -250.0f;
    const float *rows[2] = {xk, xr};
    for (int p = IMC_GEMM_AVX2; p <= IMC_GEMM_VNNI; p++) {
        if (!imc_gemm_path_supported((enum imc_gemm_path)p)) {
            continue;
        }
        for (int i = 0; i < 2; i++) {
            struct imc_q8k k2[2];
            struct imc_q8x b2[16];
            imc_qmm_quantize(IMC_GEMM_GENERIC, IMC_TYPE_Q4_K, rows[i], 512, k);
            imc_qmm_quantize(IMC_GEMM_GENERIC, IMC_TYPE_Q8_0, rows[i], 512, q);
            imc_qmm_quantize((enum imc_gemm_path)p, IMC_TYPE_Q4_K, rows[i], 512, k2);
            imc_qmm_quantize((enum imc_gemm_path)p, IMC_TYPE_Q8_0, rows[i], 512, b2);
            CHECK(memcmp(k, k2, sizeof k) == 0 && memcmp(q, b2, sizeof b2) == 0,
                  "%s quantizer, %s: not the scalar bytes", imc_gemm_path_name(p),
                  i ? "random row" : "ties");
        }
    }
    free(xr);
    free(xk);
}

struct qcase {
    enum imc_type type;
    int64_t n, nr, nt;
};

// The magnitude Σ_i (|d·sc·wq_i| + |dmin·mn_i|)·|xr_i| of one output (the bound's scale):
// for 256-blocks from the super-block's scales (qmm.h), else from the decoded weights.
static double term_mag(enum imc_type type, const uint8_t *wrow, uint64_t rb, const float *wd,
                       const float *xr, int64_t n)
{
    double mag = 0;
    if (!imc_qmm_is_k(type)) {
        for (int64_t i = 0; i < n; i++) {
            mag += fabs((double)wd[i] * xr[i]);
        }
        return mag;
    }
    const uint64_t bb = rb / (uint64_t)(n / 256);
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = wrow + (uint64_t)b * bb;
        int16_t sc[16], mn[16];
        imc_qmm_kscales(type, blk, sc, mn);
        const int off = imc_qmm_kd_offset(type) + 2; // dmin (read only for types with mins)
        const float dmin =
            imc_qmm_has_mins(type) ? imc_fp16_to_fp32(blk[off] | blk[off + 1] << 8) : 0.0f;
        for (int i = 0; i < 256; i++) {
            // |d·sc·wq| = |w + dmin·mn| (w decoded), |wq| <= 127
            const double m = fabs((double)dmin * mn[i / 16]);
            mag += (fabs((double)wd[b * 256 + i]) + 2 * m) * fabs((double)xr[b * 256 + i]);
        }
    }
    return mag;
}

// The rounded activations d·q of a quantized row (either form).
static void dequant_x(enum imc_type type, const uint8_t *xq, int64_t n, float *xr)
{
    for (int64_t i = 0; i < n; i++) {
        if (imc_qmm_is_k(type)) {
            const struct imc_q8k *b = (const struct imc_q8k *)xq + i / 256;
            xr[i] = b->d * (float)b->q[i % 256];
        } else {
            const struct imc_q8x *b = (const struct imc_q8x *)xq + i / 32;
            xr[i] = b->d * (float)b->q[i % 32];
        }
    }
}

// y from both paths (strided: x rows ldq = row + 1 block apart, y rows nr + 3 apart), the
// bound against the rounded and (32-blocks) the f32 activations, and the bits path to path.
// Runs tile (NULL: none, 0 returned) into y2, cleared first, and counts the outputs (rows < nr,
// tokens < nt) whose bits differ from y's.
static int tile_diff(imc_qmm_tile_fn tile, enum imc_type type, const uint8_t *w, uint64_t rb,
                     int64_t nr, const void *xq, uint64_t ldq, int64_t nt, int64_t nb,
                     const float *y, float *y2, int64_t ldy, void *scratch)
{
    if (!tile) {
        return 0;
    }
    memset(y2, 0, (size_t)(ldy * nt) * 4);
    tile(type, w, rb, nr, xq, ldq, nt, nb, y2, ldy, scratch);
    int bad = 0;
    for (int64_t t = 0; t < nt; t++) {
        for (int64_t r = 0; r < nr; r++) {
            bad += memcmp(&y2[t * ldy + r], &y[t * ldy + r], 4) != 0;
        }
    }
    return bad;
}

static void run_paths(struct krng *r, const struct qcase *c)
{
    float *wf = kalloc_rand(r, c->nr * c->n, 0.5f), *x = make_x(r, c->nt, c->n);
    uint64_t rb;
    uint8_t *w = quantize_rows(c->type, wf, c->nr, c->n, &rb);
    const uint64_t ldq = imc_qmm_xrow_bytes(c->type, c->n) + (imc_qmm_is_k(c->type) ? 292 : 36);
    const int64_t ldy = c->nr + 3, nb = c->n / (imc_qmm_is_k(c->type) ? 256 : 32);
    uint8_t *xq = calloc((size_t)c->nt, ldq), *xq2 = calloc((size_t)c->nt, ldq);
    for (int64_t t = 0; t < c->nt; t++) {
        imc_qmm_quantize(IMC_GEMM_GENERIC, c->type, x + t * c->n, c->n, xq + (uint64_t)t * ldq);
        imc_qmm_quantize(IMC_GEMM_AVX2, c->type, x + t * c->n, c->n, xq2 + (uint64_t)t * ldq);
    }
    CHECK(memcmp(xq, xq2, (size_t)((uint64_t)c->nt * ldq)) == 0,
          "%s n=%lld: avx2 quantized activations differ from the scalar ones",
          imc_type_name((uint32_t)c->type), (long long)c->n);
    float *y = calloc((size_t)(ldy * c->nt), 4), *y2 = calloc((size_t)(ldy * c->nt), 4);
    void *scratch = malloc((size_t)imc_qmm_scratch_bytes(c->type, c->nr, c->n));
    imc_qmm_tile(IMC_GEMM_GENERIC, c->type, w, rb, c->nr, xq, ldq, c->nt, c->n, y, ldy, scratch);
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)c->type);
    float *wd = malloc((size_t)c->n * 4), *xr = malloc((size_t)c->n * 4);
    int bad = 0;
    double worst = 0;
    for (int64_t o = 0; o < c->nr; o++) {
        tr->to_float(w + (uint64_t)o * rb, wd, c->n);
        for (int64_t t = 0; t < c->nt; t++) {
            dequant_x(c->type, xq + (uint64_t)t * ldq, c->n, xr);
            double ref = 0, ref32 = 0, qerr = 0;
            for (int64_t i = 0; i < c->n; i++) {
                ref += (double)wd[i] * xr[i];
                ref32 += (double)wd[i] * x[t * c->n + i];
                qerr += fabs((double)wd[i]) * fabs((double)x[t * c->n + i] - xr[i]);
            }
            const double mag = term_mag(c->type, w + (uint64_t)o * rb, rb, wd, xr, c->n);
            const double bound = 0x1p-22 * (double)(2 * nb + 8) * mag + 1e-30;
            const double yv = y[t * ldy + o];
            double e = fabs(yv - ref) / bound;
            if (!imc_qmm_is_k(c->type)) {
                const double e32 = fabs(yv - ref32) / (qerr + bound);
                e = e32 > e ? e32 : e;
            }
            bad += !(e <= 1.0);
            worst = check_worst(worst, e);
        }
    }
    CHECK(bad == 0, "%s n=%lld %lldx%lld: %d outputs beyond the bound (worst %.3g of it)",
          imc_type_name((uint32_t)c->type), (long long)c->n, (long long)c->nr, (long long)c->nt,
          bad, worst);
    if (imc_gemm_path_supported(IMC_GEMM_AVX2)) {
        imc_qmm_tile(IMC_GEMM_AVX2, c->type, w, rb, c->nr, xq, ldq, c->nt, c->n, y2, ldy, scratch);
        CHECK(memcmp(y, y2, (size_t)(ldy * c->nt) * 4) == 0,
              "%s n=%lld %lldx%lld: avx2 bits differ from generic",
              imc_type_name((uint32_t)c->type), (long long)c->n, (long long)c->nr,
              (long long)c->nt);
    }
    // the AVX512 K tile where the CPU has it
    const imc_qmm_tile_fn vk = imc_qmm_is_k(c->type) ? imc_qmm_tile_vnni_k() : NULL;
    if (vk) {
        const int bad_k =
            tile_diff(vk, c->type, w, rb, c->nr, xq, ldq, c->nt, nb, y, y2, ldy, scratch);
        CHECK(bad_k == 0, "%s n=%lld %lldx%lld: avx512 K tile bits differ from generic",
              imc_type_name((uint32_t)c->type), (long long)c->n, (long long)c->nr,
              (long long)c->nt);
    }
    // the VNNI tile of the 32-block types in each encoding the CPU has (main reports the others)
    for (int e = IMC_QMM_VNNI_EVEX; e <= IMC_QMM_VNNI_VEX && !imc_qmm_is_k(c->type); e++) {
        const imc_qmm_tile_fn vt = imc_qmm_tile_vnni((enum imc_qmm_vnni)e);
        if (vt) {
            const int bad_v =
                tile_diff(vt, c->type, w, rb, c->nr, xq, ldq, c->nt, nb, y, y2, ldy, scratch);
            CHECK(bad_v == 0, "%s n=%lld %lldx%lld: vnni (%s) bits differ from generic",
                  imc_type_name((uint32_t)c->type), (long long)c->n, (long long)c->nr,
                  (long long)c->nt, e == IMC_QMM_VNNI_EVEX ? "evex" : "vex");
        }
    }
    free(scratch);
    free(wd);
    free(xr);
    free(y);
    free(y2);
    free(xq);
    free(xq2);
    free(w);
    free(wf);
    free(x);
}

static const enum imc_type all_types[] = {
    IMC_TYPE_Q8_0, IMC_TYPE_Q4_0, IMC_TYPE_Q5_0, IMC_TYPE_IQ4_NL, IMC_TYPE_Q2_K,
    IMC_TYPE_Q3_K, IMC_TYPE_Q4_K, IMC_TYPE_Q5_K, IMC_TYPE_Q6_K,   IMC_TYPE_IQ4_XS};
#define N_TYPES ((int)(sizeof(all_types) / sizeof(all_types[0])))

static void test_paths(void)
{
    struct krng r = {11};
    const int64_t ns[] = {32, 96, 4096}, nks[] = {256, 768, 4096};
    // 19: 3 groups of 8 interleaved rows, one partial; a 16-row pair with a partial second;
    // 40: a pair of 16-row groups, then a partial group of 16 alone
    const int64_t nrs[] = {1, 2, 3, 5, 19, 40};
    const int64_t nts[] = {1, 3, 4, 9, 37};
    for (int ti = 0; ti < N_TYPES; ti++) {
        for (int ni = 0; ni < 3; ni++) {
            for (int ri = 0; ri < 6; ri++) {
                for (int ki = 0; ki < 5; ki++) {
                    const int64_t n = imc_qmm_is_k(all_types[ti]) ? nks[ni] : ns[ni];
                    const struct qcase c = {all_types[ti], n, nrs[ri], nts[ki]};
                    run_paths(&r, &c);
                }
            }
        }
    }
}

// The AVX2 tile that reads W in place (qmm_direct_avx2.c, imc_qmm_tile's choice for at most
// imc_qmm_direct_toks tokens) against the generic kernel, the spec, and against the repacking
// AVX2 tile, bitwise, at every token count 1..16 (calls of 4, 2 and 1 tokens, each table entry),
// for rows 1, 3, 7, 9, 13, 19 (groups of 8 with every tail) and strided x and y; W and x from
// one seed per type, so each type covers 1, 2 and several blocks per row.
static void test_direct(void)
{
    const imc_qmm_tile_fn direct = imc_qmm_direct_avx2(), repack = imc_qmm_tile_avx2();
    const int64_t nrs[] = {1, 3, 7, 9, 13, 19};
    struct krng r = {17};
    int calls = 0;
    for (int ti = 0; ti < N_TYPES; ti++) {
        const enum imc_type type = all_types[ti];
        const bool k = imc_qmm_is_k(type);
        for (int64_t nb = 1; nb <= 3; nb++) {
            const int64_t n = nb * (k ? 256 : 32), nrmax = 19, ntmax = 16;
            float *wf = kalloc_rand(&r, nrmax * n, 0.5f), *x = make_x(&r, ntmax, n);
            uint64_t rb;
            uint8_t *w = quantize_rows(type, wf, nrmax, n, &rb);
            const uint64_t ldq = imc_qmm_xrow_bytes(type, n) + 4; // (rows stay 4-byte aligned)
            const int64_t ldy = nrmax + 5;
            uint8_t *xq = calloc((size_t)ntmax, ldq);
            for (int64_t t = 0; t < ntmax; t++) {
                imc_qmm_quantize(IMC_GEMM_GENERIC, type, x + t * n, n, xq + (uint64_t)t * ldq);
            }
            float *y = malloc((size_t)(ldy * ntmax) * 4), *yd = malloc((size_t)(ldy * ntmax) * 4);
            float *yr = malloc((size_t)(ldy * ntmax) * 4);
            void *scratch = malloc((size_t)imc_qmm_scratch_bytes(type, nrmax, n));
            bool same = true, same_rp = true, untouched = true;
            for (int ri = 0; ri < 6; ri++) {
                for (int64_t nt = 1; nt <= ntmax; nt++) {
                    memset(yd, 0x7f, (size_t)(ldy * ntmax) * 4); // a canary past the tile
                    imc_qmm_tile(IMC_GEMM_GENERIC, type, w, rb, nrs[ri], xq, ldq, nt, n, y, ldy,
                                 scratch);
                    direct(type, w, rb, nrs[ri], xq, ldq, nt, nb, yd, ldy, NULL);
                    repack(type, w, rb, nrs[ri], xq, ldq, nt, nb, yr, ldy, scratch);
                    for (int64_t t = 0; t < nt; t++) {
                        same = same && memcmp(y + t * ldy, yd + t * ldy, nrs[ri] * 4) == 0;
                        same_rp = same_rp && memcmp(yr + t * ldy, yd + t * ldy, nrs[ri] * 4) == 0;
                        untouched =
                            untouched && ((const uint8_t *)(yd + t * ldy + nrs[ri]))[0] == 0x7f;
                    }
                    calls++;
                }
            }
            CHECK(same, "%s n=%lld: the direct avx2 tile's bits differ from the generic kernel",
                  imc_type_name((uint32_t)type), (long long)n);
            CHECK(same_rp, "%s n=%lld: the direct and the repacking avx2 tiles' bits differ",
                  imc_type_name((uint32_t)type), (long long)n);
            CHECK(untouched, "%s n=%lld: the direct tile wrote past its rows",
                  imc_type_name((uint32_t)type), (long long)n);
            free(scratch);
            free(y);
            free(yd);
            free(yr);
            free(xq);
            free(w);
            free(wf);
            free(x);
        }
    }
    CHECK(calls == N_TYPES * 3 * 6 * 16, "direct tile: %d calls", calls);
}

// One of 4 patterns of a block's 32 values from lo and hi: all lo, all hi, alternating, halves.
static int extreme_val(int pat, int i, int lo, int hi)
{
    switch (pat % 4) {
    case 0:
        return lo;
    case 1:
        return hi;
    case 2:
        return i % 2 ? hi : lo;
    default:
        return i < 16 ? lo : hi;
    }
}

// The 32-block types at the ends of their ranges (q8_0 −128 and 127, q4_0 −8 and 7, q5_0 −16
// and 15, iq4_nl −127 and 113; activations ±127), every pattern of row against token: scales 1, so
// each output is the exact integer Σ w·x, which the generic kernel must give and every AVX2 and
// VNNI tile bitwise (an int16 overflow, or a 512-bit tile's w + 128 or c128 off, shows here).
static void test_extreme(void)
{
    const enum imc_type types[] = {IMC_TYPE_Q8_0, IMC_TYPE_Q4_0, IMC_TYPE_Q5_0, IMC_TYPE_IQ4_NL};
    const int64_t nb = 8, n = nb * 32, nr = 19, nt = 37, ldy = nr + 1;
    const uint64_t ldq = imc_qmm_xrow_bytes(IMC_TYPE_Q8_0, n);
    struct imc_q8x *xq = malloc((size_t)ldq * nt);
    for (int64_t t = 0; t < nt; t++) {
        for (int64_t b = 0; b < nb; b++) {
            struct imc_q8x *xb = xq + t * nb + b;
            xb->d = 1.0f;
            for (int i = 0; i < 32; i++) {
                xb->q[i] = (int8_t)extreme_val((int)(t + b + t / 4), i, 127, -127);
            }
            xb->c128 = imc_qmm_c128(xb->q);
        }
    }
    for (int ti = 0; ti < 3; ti++) {
        const enum imc_type type = types[ti];
        uint64_t rb;
        imc_type_row_bytes((uint32_t)type, n, &rb);
        const uint64_t bb = rb / (uint64_t)nb;
        uint8_t *w = calloc((size_t)nr, rb);
        int *wi = malloc((size_t)(nr * n) * sizeof(int));
        for (int64_t r = 0; r < nr; r++) {
            for (int64_t b = 0; b < nb; b++) {
                uint8_t *blk = w + (uint64_t)r * rb + (uint64_t)b * bb;
                blk[0] = 0x00, blk[1] = 0x3c; // d = 1 (f16)
                for (int i = 0; i < 32; i++) {
                    const int pat = (int)(r + 2 * b + r / 4);
                    int v;
                    if (type == IMC_TYPE_Q8_0) {
                        v = extreme_val(pat, i, -128, 127);
                        blk[2 + i] = (uint8_t)(int8_t)v;
                    } else if (type == IMC_TYPE_Q5_0) { // 0 -> −16, 31 -> 15
                        const int q = extreme_val(pat, i, 0, 31);
                        blk[6 + i % 16] |= (uint8_t)((q & 15) << (i < 16 ? 0 : 4));
                        blk[2 + i / 8] |= (uint8_t)((q >> 4) << (i % 8));
                        v = q - 16;
                    } else { // nibble 0: −8 (q4_0), −127 (iq4_nl); 15: 7, 113
                        const int nib = extreme_val(pat, i, 0, 15);
                        blk[2 + i % 16] |= (uint8_t)(nib << (i < 16 ? 0 : 4));
                        v = type == IMC_TYPE_Q4_0 ? nib - 8 : (nib ? 113 : -127);
                    }
                    wi[r * n + b * 32 + i] = v;
                }
            }
        }
        float *y = malloc((size_t)(ldy * nt) * 4), *yv = malloc((size_t)(ldy * nt) * 4);
        void *scratch = malloc((size_t)imc_qmm_scratch_bytes(type, nr, n));
        imc_qmm_tile(IMC_GEMM_GENERIC, type, w, rb, nr, xq, ldq, nt, n, y, ldy, scratch);
        const uint8_t *xb = (const uint8_t *)xq;
        // (tiles the CPU lacks: NULL, nothing compared)
        const int bad_d =
            tile_diff(imc_qmm_direct_avx2(), type, w, rb, nr, xb, ldq, nt, nb, y, yv, ldy, scratch);
        const int bad_r =
            tile_diff(imc_qmm_tile_avx2(), type, w, rb, nr, xb, ldq, nt, nb, y, yv, ldy, scratch);
        const int bad_v[2] = {tile_diff(imc_qmm_tile_vnni(IMC_QMM_VNNI_EVEX), type, w, rb, nr, xb,
                                        ldq, nt, nb, y, yv, ldy, scratch),
                              tile_diff(imc_qmm_tile_vnni(IMC_QMM_VNNI_VEX), type, w, rb, nr, xb,
                                        ldq, nt, nb, y, yv, ldy, scratch)};
        CHECK(bad_v[0] == 0 && bad_v[1] == 0,
              "%s extremes: %d 512-bit and %d 256-bit vnni outputs differ from generic",
              imc_type_name((uint32_t)type), bad_v[0], bad_v[1]);
        int bad = 0;
        for (int64_t t = 0; t < nt; t++) {
            for (int64_t r = 0; r < nr; r++) {
                int64_t ref = 0;
                for (int64_t i = 0; i < n; i++) {
                    ref += (int64_t)wi[r * n + i] * xq[t * nb + i / 32].q[i % 32];
                }
                bad += y[t * ldy + r] != (float)ref;
            }
        }
        CHECK(bad == 0, "%s extremes: %d generic outputs differ from the exact integer sum",
              imc_type_name((uint32_t)type), bad);
        CHECK(bad_d == 0 && bad_r == 0,
              "%s extremes: %d direct and %d repacking avx2 outputs differ from generic",
              imc_type_name((uint32_t)type), bad_d, bad_r);
        free(scratch);
        free(y);
        free(yv);
        free(wi);
        free(w);
    }
    free(xq);
}

// The K types at the ends of their ranges: per row and super-block the weight bytes all 0x00 or
// all 0xFF (the type's smallest or largest weight in every element: q6_k −32 or 31, iq4_xs −127
// or 113, ...), the scales at their largest magnitude (q6_k ±127/−128 by row, the 6-bit packed
// scales and mins 63), d = dmin = 1; activations ±127 in the patterns of test_extreme. Every
// AVX2 and AVX512 tile bitwise against the generic kernel (an int16 sum that overflows shows).
static void test_extreme_k(void)
{
    static const struct {
        enum imc_type type;
        int sc_off, sc_len; // the scale bytes
    } ks[] = {{IMC_TYPE_Q2_K, 0, 16}, {IMC_TYPE_Q3_K, 96, 12},  {IMC_TYPE_Q4_K, 4, 12},
              {IMC_TYPE_Q5_K, 4, 12}, {IMC_TYPE_Q6_K, 192, 16}, {IMC_TYPE_IQ4_XS, 2, 6}};
    const int64_t nb = 2, n = nb * 256, nr = 19, nt = 37, ldy = nr + 1;
    const uint64_t ldq = imc_qmm_xrow_bytes(IMC_TYPE_Q4_K, n);
    struct imc_q8k *xq = malloc((size_t)ldq * nt);
    for (int64_t t = 0; t < nt; t++) {
        for (int64_t b = 0; b < nb; b++) {
            struct imc_q8k *xb = xq + t * nb + b;
            xb->d = 1.0f;
            for (int k = 0; k < 16; k++) {
                int sum = 0;
                for (int i = 0; i < 16; i++) {
                    xb->q[16 * k + i] =
                        (int8_t)extreme_val((int)(t + b + k), (k % 2) * 16 + i, 127, -127);
                    sum += xb->q[16 * k + i];
                }
                xb->bsum[k] = (int16_t)sum;
            }
        }
    }
    for (size_t ti = 0; ti < sizeof ks / sizeof ks[0]; ti++) {
        const enum imc_type type = ks[ti].type;
        uint64_t rb;
        imc_type_row_bytes((uint32_t)type, n, &rb);
        const uint64_t bb = rb / (uint64_t)nb;
        uint8_t *w = malloc((size_t)(nr * rb));
        for (int64_t r = 0; r < nr; r++) {
            for (int64_t b = 0; b < nb; b++) {
                uint8_t *blk = w + (uint64_t)r * rb + (uint64_t)b * bb;
                memset(blk, (r + b + r / 3) % 2 ? 0xFF : 0x00, bb);
                const uint8_t scb = type != IMC_TYPE_Q6_K ? 0xFF : (r / 2) % 2 ? 0x80 : 0x7F;
                memset(blk + ks[ti].sc_off, scb, (size_t)ks[ti].sc_len);
                const int dof = type == IMC_TYPE_IQ4_XS ? 0 : imc_qmm_kd_offset(type);
                blk[dof] = 0x00, blk[dof + 1] = 0x3c; // d = 1 (f16)
                if (imc_qmm_has_mins(type)) {
                    blk[dof + 2] = 0x00, blk[dof + 3] = 0x3c;
                }
            }
        }
        float *y = malloc((size_t)(ldy * nt) * 4), *yv = malloc((size_t)(ldy * nt) * 4);
        void *scratch = malloc((size_t)imc_qmm_scratch_bytes(type, nr, n));
        imc_qmm_tile(IMC_GEMM_GENERIC, type, w, rb, nr, xq, ldq, nt, n, y, ldy, scratch);
        const imc_qmm_tile_fn tiles[3] = {imc_qmm_direct_avx2(), imc_qmm_tile_avx2(),
                                          imc_qmm_tile_vnni_k()};
        int bad[3];
        for (int p = 0; p < 3; p++) {
            bad[p] = tile_diff(tiles[p], type, w, rb, nr, (const uint8_t *)xq, ldq, nt, nb, y, yv,
                               ldy, scratch);
        }
        CHECK(bad[0] == 0 && bad[1] == 0 && bad[2] == 0,
              "%s extremes: %d direct, %d repacking avx2, %d avx512 outputs differ from generic",
              imc_type_name((uint32_t)type), bad[0], bad[1], bad[2]);
        free(scratch);
        free(y);
        free(yv);
        free(w);
    }
    free(xq);
}

// imc_cpu_matmul in Q8 mode: row t of a 37-token call equals a 1-token call of row t and the
// same row in calls of 2..16 tokens, on pools of 1 and 3 threads and both paths, for every type;
// F16 weights (no integer route) give the F32 mode's bits.
static void test_matmul(void)
{
    enum { N_IN = 512, N_OUT = 70, N_TOK = 37 };
    struct krng r = {5};
    float *wf = kalloc_rand(&r, N_OUT * N_IN, 0.5f), *x = make_x(&r, N_TOK, N_IN);
    float *y = malloc(N_TOK * N_OUT * 4), *y1 = malloc(N_OUT * 4), *yf = malloc(N_TOK * N_OUT * 4);
    float *ym = malloc(16 * N_OUT * 4);
    for (int ti = 0; ti <= N_TYPES; ti++) {
        const enum imc_type type = ti < N_TYPES ? all_types[ti] : IMC_TYPE_F16;
        uint64_t rb;
        uint8_t *w = quantize_rows(type, wf, N_OUT, N_IN, &rb);
        for (int nt = 1; nt <= 3; nt += 2) {
            struct imc_exec *ex = kexec(nt);
            static const enum imc_gemm_path paths[] = {IMC_GEMM_GENERIC, IMC_GEMM_AVX2,
                                                       IMC_GEMM_VNNI};
            for (int p = 0; p < 3; p++) {
                if (!imc_gemm_path_supported(paths[p]) ||
                    imc_exec_set_gemm_path(ex, paths[p]) != IMC_OK) {
                    continue;
                }
                imc_exec_set_matmul(ex, IMC_MATMUL_Q8);
                CHECK(imc_cpu_matmul(ex, y, N_OUT, w, type, N_OUT, N_IN, x, N_IN, N_TOK) == IMC_OK,
                      "matmul");
                bool same = true;
                for (int t = 0; t < N_TOK; t++) {
                    imc_cpu_matmul(ex, y1, N_OUT, w, type, N_OUT, N_IN, x + t * N_IN, N_IN, 1);
                    same = same && memcmp(y1, y + t * N_OUT, N_OUT * 4) == 0;
                }
                // calls of 2..16 tokens (the direct tile up to imc_qmm_direct_toks, then the
                // repacking one) from odd positions of the batch
                static const int ms[] = {2, 3, 5, 8, 9, 16};
                for (int mi = 0; mi < 6; mi++) {
                    const int m = ms[mi], t0 = (7 * m) % (N_TOK - m);
                    imc_cpu_matmul(ex, ym, N_OUT, w, type, N_OUT, N_IN, x + t0 * N_IN, N_IN, m);
                    same = same && memcmp(ym, y + t0 * N_OUT, (size_t)m * N_OUT * 4) == 0;
                }
                CHECK(same, "%s, %d threads, %s path: a row's bits depend on the batch",
                      imc_type_name((uint32_t)type), nt, imc_gemm_path_name(paths[p]));
                imc_exec_set_matmul(ex, IMC_MATMUL_F32);
                imc_cpu_matmul(ex, yf, N_OUT, w, type, N_OUT, N_IN, x, N_IN, N_TOK);
                const bool differs = memcmp(yf, y, N_TOK * N_OUT * 4) != 0;
                CHECK(differs == imc_qmm_supports(type, N_IN), "%s: q8 mode %s the f32 bits",
                      imc_type_name((uint32_t)type), differs ? "changed" : "kept");
            }
            imc_exec_free(ex);
        }
        free(w);
    }
    free(wf);
    free(x);
    free(y);
    free(y1);
    free(ym);
    free(yf);
}

int main(void)
{
    test_quantize();
    if (!imc_gemm_path_supported(IMC_GEMM_AVX2)) {
        CHECK_SKIP("avx2 paths", "this CPU lacks AVX2/FMA: only the generic kernel runs");
    }
    if (!imc_qmm_tile_vnni(IMC_QMM_VNNI_EVEX)) {
        CHECK_SKIP("vnni evex tile", "this CPU lacks AVX512-VNNI/VL (or AVX2, FMA, F16C)");
    }
    if (!imc_qmm_tile_vnni_k()) {
        CHECK_SKIP("avx512 K tile", "this CPU lacks AVX512 BW/DQ/VL/VNNI (or AVX2, FMA, F16C)");
    }
    if (!imc_qmm_tile_vnni(IMC_QMM_VNNI_VEX)) {
        CHECK_SKIP("vnni vex tile", "this CPU lacks AVX-VNNI (or AVX2, FMA, F16C)");
    }
    test_paths();
    test_direct();
    test_extreme();
    test_extreme_k();
    test_matmul();
    return check_summary();
}
