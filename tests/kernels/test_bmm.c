/*
 * tests/kernels/test_bmm: the bf16 matmul (kernels/cpu/bmm.h, imc_cpu_matmul in Q8 mode for bf16
 * weights).
 *
 *   - conversion: imc_bmm_convert_rows gives imc_fp32_to_bf16's bits on every path, for every
 *     high half (all 65536: NaNs, infinities, denormals) with low halves at and around the
 *     rounding ties, and pads rows with +0 to 32 elements;
 *   - the specification, on hand-made lanes whose result tells the alternatives apart: the odd
 *     product of a pair added before the even one (even first, or one fused rounding, give
 *     another float), the lane tree (a left-to-right sum gives another float), denormal weights
 *     read as zero, denormal sums flushed; every kernel gives these values;
 *   - every kernel the CPU runs gives the generic kernel's bits for row counts around the row
 *     group (4), token counts around the token group (6), n around a chunk (32) and a K block
 *     (1024), strided rows and outputs, weights with zeros, ±0 and denormals (the AVX512BF16
 *     kernel only where imc_bmm_probe trusts vdpbf16ps: a SKIP line otherwise), and each output
 *     row the same bits as a one-token call;
 *   - tolerance against the double sum of the exact products W·xb (xb the bf16 activations):
 *       |y − ref| <= 2^-24·(2·nc + 4)·Σ_e |W_e·xb_e|       (nc chunks of 32)
 *     as each lane sees 2 roundings per chunk and the tree 4 more; against the f32 x the
 *     activation rounding Σ_e |W_e|·|x_e − xb_e| on top;
 *   - imc_cpu_matmul in Q8 mode on bf16 weights: the generic kernel's tile bits, each row the
 *     same for 1, 2..16 and 37 tokens, pools of 1 and 3 threads, every path; F32 mode unchanged.
 */
#include <float.h>
#include <math.h>

#include "core/log.h"
#include "kcheck.h"
#include "kernels/cpu/bmm.h"
#include "kernels/cpu/gemm.h"
#include "types/types.h"

static const enum imc_bmm_kernel all_kernels[] = {IMC_BMM_GENERIC, IMC_BMM_AVX2, IMC_BMM_AVX512,
                                                  IMC_BMM_AVX512BF16};

// True when kernel k is to be compared here: the CPU runs it and, for vdpbf16ps, the probe
// trusts it (imc_cpu_matmul never uses it otherwise).
static bool testable(enum imc_bmm_kernel k, bool probe)
{
    return imc_bmm_kernel_supported(k) && (k != IMC_BMM_AVX512BF16 || probe);
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

// Element e (bf16 bits) of a row converted for kernel k: bf16 as it is, or in the split forms
// (bmm_x86.c) the f32 at its place, whose low half must be 0 (else 0xffff is returned, no bf16
// NaN the conversion makes). Odd elements are part 0, even ones part 1; lane l = (e % 32) / 2.
static uint16_t elem(enum imc_bmm_kernel k, const uint8_t *row, int64_t e)
{
    if (k == IMC_BMM_GENERIC || k == IMC_BMM_AVX512BF16) {
        uint16_t b;
        memcpy(&b, row + 2 * e, 2);
        return b;
    }
    const int64_t c = e / 32, r = e % 32, part = (e & 1) ? 0 : 1, l = r / 2;
    const int64_t f =
        k == IMC_BMM_AVX2 ? c * 32 + (l / 8) * 16 + part * 8 + l % 8 : c * 32 + part * 16 + l;
    uint32_t u;
    memcpy(&u, row + 4 * f, 4);
    return (u & 0xffff) ? 0xffff : (uint16_t)(u >> 16);
}

static void test_convert(void)
{
    static const uint32_t lows[] = {0x0000, 0x0001, 0x7ffe, 0x7fff, 0x8000, 0x8001, 0xffff};
    enum { NL = sizeof(lows) / sizeof(lows[0]), N = 65536 * NL };
    float *x = malloc(N * sizeof(float));
    uint16_t *want = malloc(N * 2);
    uint8_t *got = malloc(4 * N);
    for (uint32_t h = 0; h < 65536; h++) {
        for (int l = 0; l < NL; l++) {
            x[h * NL + (uint32_t)l] = from_bits(h << 16 | lows[l]);
            want[h * NL + (uint32_t)l] = imc_fp32_to_bf16(x[h * NL + (uint32_t)l]);
        }
    }
    CHECK(want[0x3f80 * NL + 4] == 0x3f80 && want[0x3f81 * NL + 4] == 0x3f82,
          "ties round to even (1.0 + half an ulp stays, the next one rounds up)");
    for (int ki = 0; ki < 4; ki++) {
        const enum imc_bmm_kernel k = all_kernels[ki];
        if (!imc_bmm_kernel_supported(k)) {
            continue;
        }
        const bool split = k == IMC_BMM_AVX2 || k == IMC_BMM_AVX512;
        CHECK(imc_bmm_xrow_bytes(k, N) >= (split ? 4u : 2u) * N, "%s: row bytes",
              imc_bmm_kernel_name(k));
        imc_bmm_convert_rows(k, x, N, 1, N, got, 0);
        bool all = true;
        for (int64_t e = 0; e < N; e++) {
            all = all && elem(k, got, e) == want[e];
        }
        CHECK(all, "%s: conversion of every high half", imc_bmm_kernel_name(k));
        bool pad = true, tail = true;
        for (int64_t n = 1; n <= 70; n++) { // every tail of the vector loops, 1..3 chunks
            uint8_t row[4 * 96 + 64];
            memset(row, 0xab, sizeof(row));
            imc_bmm_convert_rows(k, x + 3 * 65536 + 5, n, 1, n, row, 0);
            for (int64_t e = 0; e < n; e++) {
                tail = tail && elem(k, row, e) == want[3 * 65536 + 5 + e];
            }
            const int64_t np = (n + 31) / 32 * 32;
            for (int64_t e = n; e < np; e++) {
                pad = pad && elem(k, row, e) == 0;
            }
            pad = pad && imc_bmm_xrow_bytes(k, n) >= (uint64_t)np * (split ? 4 : 2) &&
                  imc_bmm_xrow_bytes(k, n) <= (uint64_t)np * (split ? 4 : 2) + 64;
        }
        CHECK(tail && pad, "%s: rows of 1..70 converted and padded with +0 to 32",
              imc_bmm_kernel_name(k));
    }
    free(x);
    free(want);
    free(got);
}

// y of one row and one token (n elements given as bf16 bits) on kernel k.
static float dot1(enum imc_bmm_kernel k, const uint16_t *w, const uint16_t *xb, int64_t n)
{
    float *xf = malloc((size_t)n * sizeof(float));
    for (int64_t e = 0; e < n; e++) {
        xf[e] = imc_bf16_to_fp32(xb[e]); // exact: converts back to xb[e]
    }
    uint8_t *xr = malloc(imc_bmm_xrow_bytes(k, n));
    imc_bmm_convert_rows(k, xf, n, 1, n, xr, 0);
    void *s = aligned_alloc(64, imc_bmm_scratch_bytes(k, 1, n));
    float y = NAN;
    imc_bmm_tile(k, (const uint8_t *)w, (uint64_t)n * 2, 1, xr, 0, 1, n, &y, 1, s);
    free(s);
    free(xr);
    free(xf);
    return y;
}

static uint16_t bf(float f)
{
    const uint16_t b = imc_fp32_to_bf16(f);
    IMC_ASSERT(imc_bf16_to_fp32(b) == f); // exact in bf16
    return b;
}

#define U 0x1p-24f // half an ulp of 1

// The hand-made lanes: each case's expected float follows from bmm.h's order and flushes alone.
// Up to 3 terms (element e of a row of 64, its weight and activation, all exact in bf16); the
// other elements are +0.
struct lane_case {
    const char *what;
    float want;
    struct {
        int e;
        float w, x;
    } t[3];
};

static const struct lane_case lane_cases[] = {
    // lane 0: chunk 0 makes a = 1 (odd element 1); chunk 1 adds the odd 3u/2 (element 33), then
    // the even u (element 32). Odd first: 1 + 3u/2 → 1 + 2u, + u: a tie → 1 + 4u. Even first:
    // 1 + u → 1 (tie), + 3u/2 → 1 + 2u; one rounding: 1 + 5u/2 → 1 + 2u.
    {"the odd product of a pair first",
     1.0f + 4 * U,
     {{1, 1.0f, 1.0f}, {33, 1.5f, U}, {32, 1.0f, U}}},
    // the tree: lane 0 = 1, lane 8 = 3u/2 (element 17), lane 1 = u (element 3): s0 = 1 + 2u,
    // s1 = u, then (1 + 2u) + u: a tie → 1 + 4u. Left to right: 1 + u → 1, + 3u/2 → 1 + 2u.
    {"the lane tree", 1.0f + 4 * U, {{1, 1.0f, 1.0f}, {17, 1.5f, U}, {3, 1.0f, U}}},
    // the tree's last level pairs v0 = u0 + u2 with v1 = u1 + u3: lane 0 = 1, lane 2 = u
    // (element 5), lane 1 = 3u/2 (element 3) give 1 + u → 1, then 1 + 3u/2 → 1 + 2u (pairs 0+1,
    // 2+3: 1 + 4u)
    {"the tree's last pairs", 1.0f + 2 * U, {{1, 1.0f, 1.0f}, {5, 1.0f, U}, {3, 1.5f, U}}},
    // a denormal weight (2^-133, bf16 0x0001) times 2^100: read as 0 (else 2^-33)
    {"a denormal weight is read as zero", 0.0f, {{5, 0x1p-133f, 0x1p100f}}},
    // a lane sum of 2^-130 (chunk 0) is flushed before chunk 1 adds 2^-126 (else 2^-126 +
    // 2^-130, a normal float)
    {"a denormal lane sum is flushed",
     0x1p-126f,
     {{0, 0x1p-70f, 0x1p-60f}, {32, 0x1p-63f, 0x1p-63f}}},
    // a denormal activation likewise (imc_fp32_to_bf16 keeps it denormal)
    {"a denormal activation is read as zero", 0.0f, {{9, 0x1p100f, 0x1p-130f}}},
    // a product of 2^-130 alone in its lane: a denormal sum, flushed
    {"a denormal lane sum alone is flushed", 0.0f, {{2, 0x1p-70f, 0x1p-60f}}},
    // two lanes of 2^-126·1.5 and −2^-126: the tree's sum 2^-127 is flushed
    {"a denormal tree sum is flushed",
     0.0f,
     {{0, 0x1.8p-63f, 0x1p-63f}, {16, -0x1p-63f, 0x1p-63f}}},
};

static void test_spec(bool probe)
{
    enum { N = 64, NC = sizeof(lane_cases) / sizeof(lane_cases[0]) };
    for (int ki = 0; ki < 4; ki++) {
        const enum imc_bmm_kernel k = all_kernels[ki];
        if (!testable(k, probe)) {
            continue;
        }
        const char *kn = imc_bmm_kernel_name(k);
        for (int ci = 0; ci < NC; ci++) {
            const struct lane_case *c = &lane_cases[ci];
            uint16_t w[N] = {0}, x[N] = {0};
            for (int i = 0; i < 3 && c->t[i].w != 0.0f; i++) {
                w[c->t[i].e] = bf(c->t[i].w);
                x[c->t[i].e] = bf(c->t[i].x);
            }
            const float y = dot1(k, w, x, N);
            CHECK(y == c->want, "%s: %s (%a, want %a)", kn, c->what, y, c->want);
        }
        // n = 3 (a tail chunk): the weights past n are read as zero even if the row goes on
        uint16_t wl[40];
        for (int e = 0; e < 40; e++) {
            wl[e] = bf(1.0f);
        }
        uint16_t xl[32] = {bf(1.0f), bf(2.0f), bf(4.0f)};
        const float y = dot1(k, wl, xl, 3);
        CHECK(y == 7.0f, "%s: n = 3 of a longer row (%a)", kn, y);
    }
}

// Random bf16 weights with zeros, −0 and denormals sprinkled in.
static uint16_t *make_w(struct krng *r, int64_t rows, uint64_t rb, int64_t n)
{
    uint16_t *w = malloc(rows * rb);
    for (int64_t i = 0; i < rows * (int64_t)rb / 2; i++) {
        w[i] = 0x7fc1; // past n: must not be read (a NaN would show)
    }
    for (int64_t o = 0; o < rows; o++) {
        for (int64_t e = 0; e < n; e++) {
            const uint64_t v = krng_next(r);
            uint16_t b = imc_fp32_to_bf16(krng_normal(r, 0.5f));
            b = v % 97 == 0   ? 0x0000
                : v % 89 == 0 ? 0x8000
                : v % 83 == 0 ? (uint16_t)(v >> 40) & 0x807f
                              : b;
            w[o * (int64_t)rb / 2 + e] = b;
        }
    }
    return w;
}

static void test_kernels(bool probe)
{
    static const int64_t nrs[] = {1, 3, 4, 5, 9, 37};
    static const int64_t nts[] = {13, 2, 3, 4, 5, 6, 9, 10, 1}; // token groups of 1..6 (nk)
    static const int64_t ns[] = {1, 2, 31, 32, 33, 100, 1024, 1056, 2500};
    struct krng r = {11};
    bool batch = true, tol = true, tol32 = true;
    for (int ni = 0; ni < 9; ni++) {
        const int64_t n = ns[ni], nr = nrs[ni % 6], nt = nts[ni];
        const uint64_t rb = 2 * (uint64_t)n + 6, ldq = imc_bmm_xrow_bytes(IMC_BMM_AVX2, n) + 64;
        const int64_t ldy = nr + 3;
        uint16_t *w = make_w(&r, nr, rb, n);
        float *x = kalloc_rand(&r, nt * n, 1.0f);
        for (int64_t t = 0; t < nt; t++) {
            x[t * n + (t * 7) % n] *= 300.0f;
        }
        uint8_t *xb = malloc(nt * ldq);
        imc_bmm_convert_rows(IMC_BMM_GENERIC, x, n, nt, n, xb, ldq);
        float *y0 = malloc(nt * ldy * 4), *y = malloc(nt * ldy * 4);
        const size_t sb = imc_bmm_scratch_bytes(IMC_BMM_AVX512, nr, n);
        void *s = aligned_alloc(64, sb);
        imc_bmm_tile(IMC_BMM_GENERIC, (const uint8_t *)w, rb, nr, xb, ldq, nt, n, y0, ldy, s);
        for (int64_t t = 0; t < nt; t++) {
            const uint16_t *xt = (const uint16_t *)(const void *)(xb + t * ldq);
            for (int64_t o = 0; o < nr; o++) {
                double ref = 0.0, mag = 0.0, err = 0.0, ref32 = 0.0;
                for (int64_t e = 0; e < n; e++) {
                    float we = imc_bf16_to_fp32(w[o * (int64_t)rb / 2 + e]);
                    we = fabsf(we) < FLT_MIN ? 0.0f : we;
                    const double p = (double)we * imc_bf16_to_fp32(xt[e]);
                    ref += p;
                    mag += fabs(p);
                    ref32 += (double)we * x[t * n + e];
                    err += fabs((double)we) * fabs((double)x[t * n + e] - imc_bf16_to_fp32(xt[e]));
                }
                const double bound = 0x1p-24 * (double)(2 * ((n + 31) / 32) + 4) * mag;
                tol = tol && fabs(y0[t * ldy + o] - ref) <= bound;
                tol32 = tol32 && fabs(y0[t * ldy + o] - ref32) <= bound + err;
            }
        }
        for (int ki = 1; ki < 4; ki++) {
            const enum imc_bmm_kernel k = all_kernels[ki];
            if (!testable(k, probe)) {
                continue;
            }
            uint8_t *xk = malloc(nt * ldq);
            imc_bmm_convert_rows(k, x, n, nt, n, xk, ldq);
            memset(y, 0, nt * ldy * 4);
            memset(s, 0xff, sb); // NaN: no accumulator may survive from the last kernel's call
            imc_bmm_tile(k, (const uint8_t *)w, rb, nr, xk, ldq, nt, n, y, ldy, s);
            bool same = true;
            for (int64_t t = 0; t < nt; t++) {
                same = same && memcmp(y + t * ldy, y0 + t * ldy, (size_t)nr * 4) == 0;
            }
            CHECK(same, "%s: the generic bits (%lld rows, %lld tokens, n %lld)",
                  imc_bmm_kernel_name(k), (long long)nr, (long long)nt, (long long)n);
            for (int64_t t = 0; t < nt; t++) { // one token at a time
                float y1[64];
                memset(s, 0xff, sb);
                imc_bmm_tile(k, (const uint8_t *)w, rb, nr, xk + t * ldq, ldq, 1, n, y1, nr, s);
                batch = batch && memcmp(y1, y0 + t * ldy, (size_t)nr * 4) == 0;
            }
            free(xk);
        }
        free(w);
        free(x);
        free(xb);
        free(y0);
        free(y);
        free(s);
    }
    CHECK(tol, "generic within 2^-24·(2·nc + 4)·Σ|w·xb| of the double sum");
    CHECK(tol32, "generic within that plus Σ|w|·|x − xb| of the f32 activations' sum");
    CHECK(batch, "every kernel: a row of a one-token call has the bits of the batch's");
}

// imc_cpu_matmul in Q8 mode on bf16 weights: bmm's generic tile bits on every path and pool,
// each row independent of the batch; F32 mode keeps the f32 GEMM's bits (another float).
static void test_matmul(void)
{
    enum { N_IN = 700, N_OUT = 70, N_TOK = 37 };
    struct krng r = {5};
    const uint64_t rb = 2 * N_IN;
    uint16_t *w = make_w(&r, N_OUT, rb, N_IN);
    float *x = kalloc_rand(&r, N_TOK * N_IN, 1.0f);
    float *y = malloc(N_TOK * N_OUT * 4), *yg = malloc(N_TOK * N_OUT * 4);
    float *yf = malloc(N_TOK * N_OUT * 4), *ym = malloc(16 * N_OUT * 4), y1[N_OUT];
    const uint64_t ldq = imc_bmm_xrow_bytes(IMC_BMM_GENERIC, N_IN);
    uint8_t *xb = malloc(N_TOK * ldq);
    void *s = aligned_alloc(64, imc_bmm_scratch_bytes(IMC_BMM_AVX2, N_OUT, N_IN));
    imc_bmm_convert_rows(IMC_BMM_GENERIC, x, N_IN, N_TOK, N_IN, xb, ldq);
    imc_bmm_tile(IMC_BMM_GENERIC, (const uint8_t *)w, rb, N_OUT, xb, ldq, N_TOK, N_IN, yg, N_OUT,
                 s);
    for (int nt = 1; nt <= 3; nt += 2) {
        struct imc_exec *ex = kexec(nt);
        static const enum imc_gemm_path paths[] = {IMC_GEMM_GENERIC, IMC_GEMM_AVX2, IMC_GEMM_VNNI};
        for (int p = 0; p < 3; p++) {
            if (!imc_gemm_path_supported(paths[p]) ||
                imc_exec_set_gemm_path(ex, paths[p]) != IMC_OK) {
                continue;
            }
            const char *pn = imc_gemm_path_name(paths[p]);
            imc_exec_set_matmul(ex, IMC_MATMUL_Q8);
            CHECK(imc_cpu_matmul(ex, y, N_OUT, w, IMC_TYPE_BF16, N_OUT, N_IN, x, N_IN, N_TOK) ==
                      IMC_OK,
                  "matmul");
            CHECK(memcmp(y, yg, N_TOK * N_OUT * 4) == 0, "%d threads, %s path: bmm's bits", nt, pn);
            bool same = true;
            for (int t = 0; t < N_TOK; t++) {
                imc_cpu_matmul(ex, y1, N_OUT, w, IMC_TYPE_BF16, N_OUT, N_IN, x + t * N_IN, N_IN, 1);
                same = same && memcmp(y1, y + t * N_OUT, N_OUT * 4) == 0;
            }
            static const int ms[] = {2, 3, 5, 8, 9, 16};
            for (int mi = 0; mi < 6; mi++) {
                const int m = ms[mi], t0 = (7 * m) % (N_TOK - m);
                imc_cpu_matmul(ex, ym, N_OUT, w, IMC_TYPE_BF16, N_OUT, N_IN, x + t0 * N_IN, N_IN,
                               m);
                same = same && memcmp(ym, y + t0 * N_OUT, (size_t)m * N_OUT * 4) == 0;
            }
            CHECK(same, "%d threads, %s path: a row's bits depend on the batch", nt, pn);
            imc_exec_set_matmul(ex, IMC_MATMUL_F32);
            imc_cpu_matmul(ex, yf, N_OUT, w, IMC_TYPE_BF16, N_OUT, N_IN, x, N_IN, N_TOK);
            CHECK(memcmp(yf, y, N_TOK * N_OUT * 4) != 0, "%s path: f32 mode is another route", pn);
        }
        imc_exec_free(ex);
    }
    free(w);
    free(x);
    free(y);
    free(yg);
    free(yf);
    free(ym);
    free(xb);
    free(s);
}

int main(void)
{
    const bool probe = imc_bmm_probe();
    if (!imc_bmm_kernel_supported(IMC_BMM_AVX2)) {
        CHECK_SKIP("avx2 kernel", "this CPU lacks AVX2/FMA: only the generic kernel runs");
    }
    if (!imc_bmm_kernel_supported(IMC_BMM_AVX512)) {
        CHECK_SKIP("avx512 kernel", "this CPU lacks AVX512F");
    }
    if (!imc_bmm_kernel_supported(IMC_BMM_AVX512BF16)) {
        CHECK_SKIP("avx512bf16 kernel", "this CPU lacks AVX512-BF16");
    } else if (!probe) {
        CHECK_SKIP("avx512bf16 kernel", "vdpbf16ps failed imc_bmm_probe: the vnni path "
                                        "emulates it");
    }
    test_convert();
    test_spec(probe);
    test_kernels(probe);
    test_matmul();
    return check_summary();
}
