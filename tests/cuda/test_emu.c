/*
 * tests/cuda/test_emu: the CUDA emulator's own tests (kernels/cuda/emu; kernels in
 * tests/cuda/kern_emu.cu): a barrier-dependent block reduction in every resume order, a kernel
 * missing a __syncthreads that one order exposes, a cross-warp hazard (partials overwritten by
 * a warp that runs ahead) that one order exposes, every shuffle and vote against values
 * computed here, disjoint-mask warp ops, atomics, dynamic shared memory (poison, opt-in limit),
 * the messages of each divergence and deadlock and of bad launch dimensions, the wmma subset
 * (layouts, accumulate, the device's alignment rules, divergence, a lane's share of the stored
 * accumulator), the emulated cuBLAS's contract (cublas below), and the fp16/bf16
 * conversions bit for bit against types/ over all 65536 half values and edge floats (NaN: both
 * sides NaN; the device writes the canonical 0x7fff). Needs no GPU.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "../logcap.h"
#include "kernels/cuda/emu/cuemu_api.h"
#include "kernels/cuda/kern_decl.h"
#include "types/types.h"

enum imc_status imc_cuemu_test_block_sum(const int *x, int *out, int blocks, int n, int racy);
enum imc_status imc_cuemu_test_two_sums(const int *x, int *out, int n, int racy);
enum imc_status imc_cuemu_test_warp_ops(const int *v, int *out, int bx, int by);
enum imc_status imc_cuemu_test_half_warp(const int *v, int *out);
enum imc_status imc_cuemu_test_atomics(int *acc, int blocks, int n);
enum imc_status imc_cuemu_test_dyn_reverse(const float *x, float *out, int *first, int blocks,
                                           int n, size_t shmem, int optin);
enum imc_status imc_cuemu_test_broken(int mode, int *out, int n);
enum imc_status imc_cuemu_test_launch_dims(int *out, unsigned gx, unsigned gy, unsigned bx,
                                           unsigned by, unsigned bz);
enum imc_status imc_cuemu_test_wmma(const unsigned short *a, const unsigned short *b,
                                    const float *c, float *out, int mode);
enum imc_status imc_cuemu_test_convert(const float *f, unsigned short *h16, unsigned short *b16,
                                       float *fh, float *fb, int n);
int imc_cuemu_test_gemm_ex(int math, int transa, int transb, int m, int n, int k, float alpha,
                           const void *a, int atype, int lda, const void *b, int btype, int ldb,
                           float beta, void *c, int ctype, int ldc, int compute);
int imc_cuemu_test_last_error(void);

// cuBLAS's values (cublas_api.h, library_types.h), as kern_emu.cu's wrapper takes them.
enum { OP_N = 0, OP_T = 1, R32F = 0, R16F = 2, R16BF = 14, COMPUTE_32F = 68 };
enum { COMPUTE_32F_PEDANTIC = 69, COMPUTE_32F_FAST_TF32 = 77, MATH_DEFAULT = 0, MATH_TF32 = 3 };
enum { ST_OK = 0, ST_INVALID = 7, ST_EXEC_FAILED = 13, ST_NOT_SUPPORTED = 15 };

static uint32_t rng = 12345;
static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void *dev(size_t bytes)
{
    void *p = NULL;
    CHECK(imc_cuemu_dev_alloc(bytes, &p) == IMC_OK && p, "dev_alloc %zu", bytes);
    return p;
}

// Returns the number of orders in which the block sums came out right.
static int block_sums(int blocks, int n, int racy)
{
    int *x = dev((size_t)blocks * n * sizeof(int)), *out = dev((size_t)blocks * sizeof(int));
    int right = 0;
    for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
        cuemu_set_order((enum cuemu_order)o, 7);
        long want_total = 0;
        for (int i = 0; i < blocks * n; i++) {
            x[i] = (int)(next_u32() % 1000) - 300;
        }
        CHECK(imc_cuemu_test_block_sum(x, out, blocks, n, racy) == IMC_OK, "launch");
        int ok = 1;
        for (int b = 0; b < blocks; b++) {
            long want = 0;
            for (int i = 0; i < n; i++) {
                want += x[b * n + i];
            }
            want_total += want;
            ok &= out[b] == want;
        }
        right += ok;
        if (!racy) {
            CHECK(ok, "block sums, %d blocks of %d, order %s", blocks, n,
                  cuemu_order_name((enum cuemu_order)o));
        }
        (void)want_total;
    }
    imc_cuemu_dev_free(x);
    imc_cuemu_dev_free(out);
    return right;
}

// Returns the number of orders in which every thread saw both sums right.
static int two_sums(int n, int racy)
{
    int *x = dev((size_t)n * sizeof(int)), *out = dev((size_t)n * 2 * sizeof(int));
    int s = 0, s2 = 0, right = 0;
    for (int i = 0; i < n; i++) {
        x[i] = (int)(next_u32() % 100) + 1;
        s += x[i];
        s2 += x[i] * x[i];
    }
    for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
        cuemu_set_order((enum cuemu_order)o, 21);
        CHECK(imc_cuemu_test_two_sums(x, out, n, racy) == IMC_OK, "launch");
        int ok = 1;
        for (int t = 0; t < n; t++) {
            ok &= out[2 * t] == s && out[2 * t + 1] == s2;
        }
        right += ok;
    }
    imc_cuemu_dev_free(x);
    imc_cuemu_dev_free(out);
    return right;
}

static int src_or_own(int l, int src, int lo, int hi)
{
    return src >= lo && src < hi ? src : l;
}

static void warp_ops(int bx, int by)
{
    int n = bx * by;
    int *v = dev((size_t)n * sizeof(int)), *out = dev((size_t)n * 12 * sizeof(int));
    for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
        cuemu_set_order((enum cuemu_order)o, 99);
        for (int i = 0; i < n; i++) {
            v[i] = (int)(next_u32() % 105) - 5;
        }
        CHECK(imc_cuemu_test_warp_ops(v, out, bx, by) == IMC_OK, "launch");
        int bad = 0;
        for (int t = 0; t < n && !bad; t++) {
            int l = t % 32, b = t - l;
            const int *w = v + b;
            unsigned ballot = 0;
            int any = 0, all = 1, sum = 0;
            for (int k = 0; k < 32; k++) {
                ballot |= (unsigned)(w[k] & 1) << k;
                any |= w[k] > 90;
                all &= w[k] >= 0;
                sum += w[k];
            }
            int want[12] = {
                w[5],
                w[(l & ~7) + ((l + 3) & 7)],
                w[src_or_own(l, l - 3, 0, 32)],
                w[src_or_own(l, l - 2, l & ~15, 32)],
                w[src_or_own(l, l + 7, 0, 32)],
                w[src_or_own(l, l + 1, 0, (l & ~3) + 4)],
                w[l ^ 16],
                w[l ^ 3],
                (int)ballot,
                any,
                all,
                sum,
            };
            for (int k = 0; k < 12; k++) {
                if (out[12 * t + k] != want[k]) {
                    CHECK(0, "warp op %d, thread %d of %dx%d, order %s: %d, want %d", k, t, bx, by,
                          cuemu_order_name((enum cuemu_order)o), out[12 * t + k], want[k]);
                    bad = 1;
                    break;
                }
            }
        }
        CHECK(!bad, "warp ops %dx%d", bx, by);
    }
    int *hv = v, *hout = out;
    for (int i = 0; i < 32; i++) {
        hv[i] = i * i;
    }
    CHECK(imc_cuemu_test_half_warp(hv, hout) == IMC_OK, "half-warp launch");
    int lo = 0, hi = 0;
    for (int i = 0; i < 16; i++) {
        lo += i * i;
        hi += (i + 16) * (i + 16);
    }
    int ok = 1;
    for (int i = 0; i < 32; i++) {
        ok &= hout[i] == (i < 16 ? lo : hi);
    }
    CHECK(ok, "disjoint-mask half-warp sums: %d %d, want %d %d", hout[0], hout[16], lo, hi);
    imc_cuemu_dev_free(v);
    imc_cuemu_dev_free(out);
}

static void atomics(void)
{
    int *acc = dev(10 * sizeof(int));
    for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
        cuemu_set_order((enum cuemu_order)o, 3);
        CHECK(imc_cuemu_dev_memset(NULL, acc, 0, 10 * sizeof(int)) == IMC_OK, "memset");
        acc[8] = -1;
        acc[9] = 1000000;
        CHECK(imc_cuemu_test_atomics(acc, 3, 100) == IMC_OK, "launch");
        unsigned long long u64;
        float f;
        double d;
        memcpy(&u64, &acc[2], 8);
        memcpy(&f, &acc[4], 4);
        memcpy(&d, &acc[6], 8);
        int mx = 0;
        for (int g = 0; g < 300; g++) {
            mx = g * 7 % 1000 > mx ? g * 7 % 1000 : mx;
        }
        CHECK(acc[0] == 299 * 300 / 2 && (unsigned)acc[1] == 600u && u64 == 300ull << 33 &&
                  f == 150.0f && d == 75.0 && acc[8] == mx && acc[9] == 701,
              "atomics: %d %u %llu %g %g %d %d", acc[0], (unsigned)acc[1], u64, f, d, acc[8],
              acc[9]);
    }
    imc_cuemu_dev_free(acc);
}

static void dyn_shared(void)
{
    int blocks = 3, n = 64;
    float *x = dev((size_t)blocks * n * 4), *out = dev((size_t)blocks * n * 4);
    int *first = dev((size_t)blocks * sizeof(int));
    float *hx = malloc((size_t)blocks * n * 4);
    for (int i = 0; i < blocks * n; i++) {
        hx[i] = (float)i * 0.5f;
    }
    CHECK(imc_cuemu_copy_to_dev(NULL, x, hx, (size_t)blocks * n * 4) == IMC_OK, "copy");
    for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
        cuemu_set_order((enum cuemu_order)o, 5);
        CHECK(imc_cuemu_test_dyn_reverse(x, out, first, blocks, n, (size_t)n * 4, 0) == IMC_OK,
              "launch");
        int ok = 1;
        for (int b = 0; b < blocks; b++) {
            ok &= first[b] == 0xff;
            for (int t = 0; t < n; t++) {
                ok &= out[b * n + t] == hx[b * n + n - 1 - t];
            }
        }
        CHECK(ok, "dynamic shared reverse and 0xFF poison, order %s",
              cuemu_order_name((enum cuemu_order)o));
    }
    struct logcap cap;
    logcap_start(&cap);
    enum imc_status st = imc_cuemu_test_dyn_reverse(x, out, first, 1, n, 49 * 1024, 0);
    logcap_stop();
    CHECK(st == IMC_ERR_CUDA && strstr(cap.text, "dyn_reverse_kernel") &&
              strstr(cap.text, "50176 bytes of dynamic shared memory") &&
              strstr(cap.text, "cudaFuncSetAttribute"),
          "49 KiB of dynamic shared memory without opt-in: %s", cap.text);
    CHECK(imc_cuemu_test_dyn_reverse(x, out, first, 1, n, 64 * 1024, 64 * 1024) == IMC_OK,
          "64 KiB after opting in");
    logcap_start(&cap);
    st = imc_cuemu_test_dyn_reverse(x, out, first, 1, n, 64 * 1024, 200000);
    logcap_stop();
    CHECK(st == IMC_ERR_CUDA && strstr(cap.text, "the most is"), "opt-in past 163 KiB: %s",
          cap.text);
    free(hx);
    imc_cuemu_dev_free(x);
    imc_cuemu_dev_free(out);
    imc_cuemu_dev_free(first);
}

// Each broken kernel fails with its message in every order, and the emulator recovers.
static void broken(void)
{
    static const char *const want[7][2] = {
        {"deadlock", "16 threads exited"},
        {"barrier divergence", "__syncthreads at"},
        {"leaves the lane out", "mask 0x00000001"},
        {"reads lane 16, which is not in the mask 0x0000ffff", "__shfl_down_sync"},
        {"warp divergence", "__a"},
        {"names lanes warp 1 lacks", "16 threads"},
        {"warp 0 lanes 0x0000ffff wait at __shfl_sync with mask 0xffffffff for lanes 0xffff0000",
         "16 threads exited"},
    };
    static const int nthreads[7] = {32, 64, 32, 32, 32, 48, 32};
    int *out = dev(64 * sizeof(int));
    for (int mode = 0; mode < 7; mode++) {
        for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
            cuemu_set_order((enum cuemu_order)o, 11);
            struct logcap cap;
            logcap_start(&cap);
            enum imc_status st = imc_cuemu_test_broken(mode, out, nthreads[mode]);
            logcap_stop();
            if (o == CUEMU_FORWARD) {
                printf("broken mode %d: %s", mode, cap.text);
            }
            CHECK(st == IMC_ERR_CUDA && cap.n_err == 1 && strstr(cap.text, "broken_kernel") &&
                      strstr(cap.text, "block (0,0,0)") && strstr(cap.text, want[mode][0]) &&
                      strstr(cap.text, want[mode][1]),
                  "broken mode %d, order %s: status %d, log: %s", mode,
                  cuemu_order_name((enum cuemu_order)o), (int)st, cap.text);
        }
    }
    static const unsigned dims[4][5] = {
        {1, 1, 1025, 1, 1}, {1, 1, 32, 32, 2}, {1, 65536, 32, 1, 1}, {0, 1, 32, 1, 1}};
    for (int k = 0; k < 4; k++) {
        struct logcap cap;
        logcap_start(&cap);
        const unsigned *d = dims[k];
        enum imc_status st = imc_cuemu_test_launch_dims(out, d[0], d[1], d[2], d[3], d[4]);
        logcap_stop();
        CHECK(st == IMC_ERR_CUDA && strstr(cap.text, "outside the limits"),
              "grid (%u,%u) block (%u,%u,%u): %s", d[0], d[1], d[2], d[3], d[4], cap.text);
    }
    CHECK(block_sums(2, 128, 0) == CUEMU_ORDER_COUNT, "a good launch after the failed ones");
    imc_cuemu_dev_free(out);
}

static int same_f32(float a, float b)
{
    return isnan(a) ? isnan(b) != 0 : memcmp(&a, &b, 4) == 0;
}

static int half_is_nan(unsigned short h)
{
    return (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
}

static void conversions(void)
{
    enum { N_EDGE = 40, N_RAND = 200000 };
    int n = 2 * 65536 + N_EDGE + N_RAND;
    float *f = dev((size_t)n * 4), *fh = dev(65536 * 4), *fb = dev(65536 * 4);
    unsigned short *h16 = dev((size_t)n * 2), *b16 = dev((size_t)n * 2);
    int k = 0;
    for (int i = 0; i < 65536; i++) { // every half, and the midpoint to its successor (ties)
        float a = imc_fp16_to_fp32((uint16_t)i);
        f[k++] = a;
        if ((i & 0x7c00) == 0) { // subnormal: (m + 1/2) * 2^-24, exact in f32
            f[k++] = ldexpf((float)(i & 0x3ff) + 0.5f, -24) * ((i & 0x8000) ? -1.0f : 1.0f);
            continue;
        }
        uint32_t bits;
        memcpy(&bits, &a, 4);
        bits += 1u << 12; // normal: halfway to the next half in f32 bits
        memcpy(&f[k++], &bits, 4);
    }
    const float edge[N_EDGE] = {
        0.0f,          -0.0f,          INFINITY,     -INFINITY,     NAN,           -NAN,
        FLT_MAX,       -FLT_MAX,       FLT_MIN,      -FLT_MIN,      1e-45f,        -1e-45f,
        65504.0f,      65519.996f,     65520.0f,     -65520.0f,     5.9604645e-8f, 2.9802322e-8f,
        2.9802326e-8f, 8.940697e-8f,   6.097555e-5f, 6.1035156e-5f, 1.0f,          -1.0f,
        1.0009766f,    1.00048828125f, 1.0014648f,   3.3895314e38f, 3.3961776e38f, 1e-40f,
        0.1f,          3.14159265f,    2047.5f,      2048.5f,       4097.0f,       65536.0f,
        1e10f,         -1e-10f,        5.96e-8f,     1.5e-5f};
    for (int i = 0; i < N_EDGE; i++) {
        f[k++] = edge[i];
    }
    for (int i = 0; i < N_RAND; i++) {
        uint32_t bits = next_u32();
        memcpy(&f[k++], &bits, 4);
    }
    CHECK(imc_cuemu_test_convert(f, h16, b16, fh, fb, n) == IMC_OK, "launch");
    int bad_h = 0, bad_b = 0, bad_fh = 0, bad_fb = 0;
    for (int i = 0; i < n; i++) {
        uint16_t rh = imc_fp32_to_fp16(f[i]), rb = imc_fp32_to_bf16(f[i]);
        int ok_h = isnan(f[i]) ? h16[i] == 0x7fff && half_is_nan(rh) : h16[i] == rh;
        int ok_b =
            isnan(f[i]) ? b16[i] == 0x7fff && (rb & 0x7f80) == 0x7f80 && (rb & 0x7f) : b16[i] == rb;
        if (!ok_h && bad_h++ < 5) {
            printf("f32->f16 %a: 0x%04x, types/ 0x%04x\n", f[i], h16[i], rh);
        }
        if (!ok_b && bad_b++ < 5) {
            printf("f32->bf16 %a: 0x%04x, types/ 0x%04x\n", f[i], b16[i], rb);
        }
    }
    for (int i = 0; i < 65536; i++) {
        bad_fh += !same_f32(fh[i], imc_fp16_to_fp32((uint16_t)i));
        bad_fb += !same_f32(fb[i], imc_bf16_to_fp32((uint16_t)i));
    }
    CHECK(bad_h == 0, "f32->f16: %d of %d differ from imc_fp32_to_fp16", bad_h, n);
    CHECK(bad_b == 0, "f32->bf16: %d of %d differ from imc_fp32_to_bf16", bad_b, n);
    CHECK(bad_fh == 0, "f16->f32: %d of 65536 differ from imc_fp16_to_fp32", bad_fh);
    CHECK(bad_fb == 0, "bf16->f32: %d of 65536 differ from imc_bf16_to_fp32", bad_fb);
    imc_cuemu_dev_free(f);
    imc_cuemu_dev_free(fh);
    imc_cuemu_dev_free(fb);
    imc_cuemu_dev_free(h16);
    imc_cuemu_dev_free(b16);
}

// The wmma subset (kern_emu.cu wmma_kernel): in every order and each layout, C (+)= A·B bitwise
// a scalar fmaf chain over k from C's value; a misaligned pointer, a divergent lane and lanes with
// different pointers refused with one message each; a lane that reads another lane's stored
// element without __syncwarp reads it stale in some order, and right after __syncwarp.
static void wmma(void)
{
    unsigned short *a = dev(256 * 2), *b = dev(256 * 2);
    float *c = dev(256 * 4), *out = dev(288 * 4);
    float want[2][256];
    for (int e = 0; e < 256; e++) {
        a[e] = imc_fp32_to_bf16((float)((int)(next_u32() % 2001) - 1000) / 37.0f);
        b[e] = imc_fp32_to_bf16((float)((int)(next_u32() % 2001) - 1000) / 53.0f);
        c[e] = (float)((int)(next_u32() % 2001) - 1000) / 7.0f;
    }
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 16; j++) {
            for (int m = 0; m < 2; m++) {
                float s = m ? c[i * 16 + j] : 0.0f;
                for (int k = 0; k < 16; k++) {
                    s = fmaf(imc_bf16_to_fp32(a[i * 16 + k]), imc_bf16_to_fp32(b[k * 16 + j]), s);
                }
                want[m][i * 16 + j] = s;
            }
        }
    }
    for (int mode = 0; mode < 3; mode++) {
        for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
            cuemu_set_order((enum cuemu_order)o, 3);
            memset(out, 0, 288 * 4);
            const enum imc_status st = imc_cuemu_test_wmma(a, b, c, out, mode);
            CHECK(st == IMC_OK && memcmp(out, want[mode == 2], sizeof(want[0])) == 0,
                  "wmma mode %d, order %s: C %s= A·B, the fmaf chain's bits", mode,
                  cuemu_order_name((enum cuemu_order)o), mode == 2 ? "+" : "");
        }
    }
    static const char *const refused[3] = {
        "wmma::load_matrix_sync: threadIdx (0,0,0) passes",
        "calls __syncwarp while lanes 0x0000ffff wait at a wmma op",
        "wmma::load_matrix_sync: lane "};
    cuemu_set_order(CUEMU_FORWARD, 3); // the lanes that wait, in the messages
    for (int mode = 3; mode < 6; mode++) {
        struct logcap cap;
        logcap_start(&cap);
        const enum imc_status st = imc_cuemu_test_wmma(a, b, c, out, mode);
        logcap_stop();
        printf("wmma mode %d: %s", mode, cap.text);
        CHECK(st == IMC_ERR_CUDA && cap.n_err == 1 && strstr(cap.text, refused[mode - 3]),
              "wmma mode %d refused: %s", mode, cap.text);
    }
    int stale = 0;
    for (int mode = 6; mode < 8; mode++) {
        for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
            cuemu_set_order((enum cuemu_order)o, 3);
            const enum imc_status st = imc_cuemu_test_wmma(a, b, c, out, mode);
            const bool right = st == IMC_OK && out[256] == want[0][31];
            stale += mode == 6 && !right;
            CHECK(mode == 6 || right,
                  "wmma: lane 0 reads lane 31's element after __syncwarp "
                  "(order %s)",
                  cuemu_order_name((enum cuemu_order)o));
        }
    }
    CHECK(stale > 0,
          "wmma: a read of another lane's element without __syncwarp is stale in %d "
          "of %d orders",
          stale, CUEMU_ORDER_COUNT);
    imc_cuemu_dev_free(a);
    imc_cuemu_dev_free(b);
    imc_cuemu_dev_free(c);
    imc_cuemu_dev_free(out);
}

// The emulated cuBLAS's contract (kernels/cuda/emu/cuemu_cublas.h), which blas.cu's calls meet in
// every other test: C = alpha·op(A)·op(B) + beta·C column-major, all four operations, small
// integers (exact in any order) against a product computed here, leading dimensions past the
// rows whose gaps keep their values; beta = 0 does not read C (NaN there vanishes); the argument
// checks (INVALID_VALUE, NOT_SUPPORTED); a host pointer or an extent past its allocation fails
// as a fault (EXECUTION_FAILED, the sticky illegal address, C unwritten); TF32 only where asked
// for; the emulator's order of sums ((s0 + s1) + (s2 + s3) over k mod 4), which is not one chain.
static void cublas(void)
{
    enum { M = 3, N = 4, K = 5, LA = 6, LB = 7, LC = 5 };
    float *a = dev(sizeof(float) * LA * LA), *b = dev(sizeof(float) * LB * LB);
    float *c = dev(sizeof(float) * LC * N);
    int bad_ops = 0;
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            float av[M][K], bv[K][N];
            for (int i = 0; i < M; i++) {
                for (int p = 0; p < K; p++) { // op(A)[i][p], stored where the operation reads it
                    av[i][p] = (float)((int)(next_u32() % 9) - 4);
                    a[ta ? i * LA + p : p * LA + i] = av[i][p];
                }
            }
            for (int p = 0; p < K; p++) {
                for (int j = 0; j < N; j++) {
                    bv[p][j] = (float)((int)(next_u32() % 9) - 4);
                    b[tb ? p * LB + j : j * LB + p] = bv[p][j];
                }
            }
            for (int i = 0; i < LC * N; i++) {
                c[i] = i % LC < M ? NAN : -7.0f;
            }
            int st = imc_cuemu_test_gemm_ex(MATH_DEFAULT, ta, tb, M, N, K, 2.0f, a, R32F, LA, b,
                                            R32F, LB, 0.0f, c, R32F, LC, COMPUTE_32F);
            for (int j = 0; j < N; j++) { // then beta = 1 adds 1·C: 3x the product
                for (int i = 0; i < LC; i++) {
                    float want = -7.0f;
                    if (i < M) {
                        want = 0.0f;
                        for (int p = 0; p < K; p++) {
                            want += av[i][p] * bv[p][j];
                        }
                        want *= 2.0f;
                    }
                    bad_ops += c[j * LC + i] != want;
                }
            }
            st |= imc_cuemu_test_gemm_ex(MATH_DEFAULT, ta, tb, M, N, K, 1.0f, a, R32F, LA, b, R32F,
                                         LB, 1.0f, c, R32F, LC, COMPUTE_32F);
            for (int j = 0; j < N; j++) {
                for (int i = 0; i < M; i++) {
                    float want = 0.0f;
                    for (int p = 0; p < K; p++) {
                        want += av[i][p] * bv[p][j];
                    }
                    bad_ops += c[j * LC + i] != 3.0f * want;
                }
            }
            bad_ops += st != ST_OK;
        }
    }
    CHECK(bad_ops == 0, "cublasGemmEx N/T x N/T: %d outputs or statuses wrong", bad_ops);
    // Argument checks: leading dimensions below their minimum, a negative size, an operation.
    struct {
        int ta, tb, m, lda, ldb, ldc, want;
        const char *what;
    } args[] = {
        {OP_N, OP_N, M, M - 1, K, M, ST_INVALID, "lda < m (A not transposed)"},
        {OP_T, OP_N, M, K - 1, K, M, ST_INVALID, "lda < k (A transposed)"},
        {OP_N, OP_N, M, M, K - 1, M, ST_INVALID, "ldb < k (B not transposed)"},
        {OP_N, OP_T, M, M, N - 1, M, ST_INVALID, "ldb < n (B transposed)"},
        {OP_N, OP_N, M, M, K, M - 1, ST_INVALID, "ldc < m"},
        {OP_N, OP_N, -1, M, K, M, ST_INVALID, "m < 0"},
        {5, OP_N, M, M, K, M, ST_INVALID, "operation 5"},
        {OP_T, OP_N, M, K, K, M, ST_OK, "the minimum leading dimensions"},
    };
    for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
        const int st = imc_cuemu_test_gemm_ex(MATH_DEFAULT, args[i].ta, args[i].tb, args[i].m, N, K,
                                              1.0f, a, R32F, args[i].lda, b, R32F, args[i].ldb,
                                              0.0f, c, R32F, args[i].ldc, COMPUTE_32F);
        CHECK(st == args[i].want, "cublasGemmEx with %s: status %d, want %d", args[i].what, st,
              args[i].want);
    }
    uint16_t *h = dev(sizeof(uint16_t) * LA * LA);
    CHECK(imc_cuemu_test_gemm_ex(MATH_DEFAULT, OP_N, OP_N, M, N, K, 1.0f, a, R32F, LA, h, R16BF, LB,
                                 0.0f, c, R32F, LC, COMPUTE_32F) == ST_NOT_SUPPORTED &&
              imc_cuemu_test_gemm_ex(MATH_DEFAULT, OP_N, OP_N, M, N, K, 1.0f, a, R32F, LA, b, R32F,
                                     LB, 0.0f, h, R16BF, LC, COMPUTE_32F) == ST_NOT_SUPPORTED &&
              imc_cuemu_test_gemm_ex(MATH_DEFAULT, OP_N, OP_N, M, N, K, 1.0f, h, R16F, LA, h, R16F,
                                     LB, 0.0f, c, R32F, LC, COMPUTE_32F) == ST_OK,
          "cublasGemmEx's type combinations: 32F with 16BF refused, 16F in with 32F out taken");
    // Device memory: a host A, and an extent past the allocation (ldc past c's 20 floats).
    float host_a[LA * LA] = {0};
    for (int i = 0; i < LC * N; i++) {
        c[i] = -7.0f;
    }
    (void)imc_cuemu_test_last_error();
    int st = imc_cuemu_test_gemm_ex(MATH_DEFAULT, OP_N, OP_N, M, N, K, 1.0f, host_a, R32F, LA, b,
                                    R32F, LB, 0.0f, c, R32F, LC, COMPUTE_32F);
    const int sticky = imc_cuemu_test_last_error();
    const int st2 = imc_cuemu_test_gemm_ex(MATH_DEFAULT, OP_N, OP_N, M, N, K, 1.0f, a, R32F, LA, b,
                                           R32F, LB, 0.0f, c, R32F, LC + 1, COMPUTE_32F);
    const int sticky2 = imc_cuemu_test_last_error();
    int written = 0;
    for (int i = 0; i < LC * N; i++) {
        written += c[i] != -7.0f;
    }
    CHECK(st == ST_EXEC_FAILED && sticky == 700 && st2 == ST_EXEC_FAILED && sticky2 == 700 &&
              written == 0,
          "cublasGemmEx on a host A: status %d, sticky error %d; C past its allocation: status "
          "%d, sticky error %d (700: illegal address); %d outputs written",
          st, sticky, st2, sticky2, written);
    // TF32: 1 + 2^-12 is 1 in TF32 (10 bits of mantissa); k = 1, B = 1.
    a[0] = 1.0f + 0x1p-12f;
    b[0] = 1.0f;
    float got[4];
    const int modes[4][2] = {{MATH_DEFAULT, COMPUTE_32F},
                             {MATH_TF32, COMPUTE_32F},
                             {MATH_DEFAULT, COMPUTE_32F_FAST_TF32},
                             {MATH_TF32, COMPUTE_32F_PEDANTIC}};
    for (int i = 0; i < 4; i++) {
        (void)imc_cuemu_test_gemm_ex(modes[i][0], OP_N, OP_N, 1, 1, 1, 1.0f, a, R32F, 1, b, R32F, 1,
                                     0.0f, c, R32F, 1, modes[i][1]);
        got[i] = c[0];
    }
    CHECK(got[0] == 1.0f + 0x1p-12f && got[1] == 1.0f && got[2] == 1.0f &&
              got[3] == 1.0f + 0x1p-12f,
          "TF32 only where asked for: default %a, TF32 math %a, FAST_TF32 %a, pedantic %a", got[0],
          got[1], got[2], got[3]);
    // The order: (1 + 0) + (2^-24 + 2^-24) = 1 + 2^-23; one chain from 0 gives 1.
    const float col[4] = {1.0f, 0.0f, 0x1p-24f, 0x1p-24f};
    for (int p = 0; p < 4; p++) {
        a[p] = col[p];
        b[p] = 1.0f;
    }
    (void)imc_cuemu_test_gemm_ex(MATH_DEFAULT, OP_N, OP_N, 1, 1, 4, 1.0f, a, R32F, 1, b, R32F, 4,
                                 0.0f, c, R32F, 1, COMPUTE_32F);
    CHECK(c[0] == 1.0f + 0x1p-23f, "the order of sums over k mod 4: %a (a chain gives 0x1p+0)",
          c[0]);
    imc_cuemu_dev_free(a);
    imc_cuemu_dev_free(b);
    imc_cuemu_dev_free(c);
    imc_cuemu_dev_free(h);
}

int main(void)
{
    int devs = 0;
    CHECK(imc_cuemu_device_count(&devs) == IMC_OK && devs == 1, "one emulated device: %d", devs);
    char bus[20] = "";
    CHECK(imc_cuemu_pci_bus_id(0, bus, (int)sizeof(bus)) == IMC_OK &&
              strcmp(bus, "00000000:00:00.0") == 0,
          "device 0's PCI bus id: '%s'", bus);
    CHECK(imc_cuemu_pci_bus_id(1, bus, (int)sizeof(bus)) != IMC_OK, "no device 1");
    CHECK(block_sums(5, 256, 0) == CUEMU_ORDER_COUNT, "barrier reduction in every order");
    CHECK(block_sums(3, 64, 0) == CUEMU_ORDER_COUNT, "barrier reduction, 64 threads");
    int racy = block_sums(5, 256, 1);
    CHECK(racy < CUEMU_ORDER_COUNT,
          "the kernel missing a __syncthreads is exposed (right in %d "
          "of %d orders)",
          racy, CUEMU_ORDER_COUNT);
    CHECK(two_sums(128, 0) == CUEMU_ORDER_COUNT, "two block sums through one array");
    racy = two_sums(128, 1);
    CHECK(racy < CUEMU_ORDER_COUNT,
          "a warp running ahead into the second sum is exposed (right "
          "in %d of %d orders)",
          racy, CUEMU_ORDER_COUNT);
    warp_ops(32, 2);
    warp_ops(8, 8);
    atomics();
    dyn_shared();
    broken();
    conversions();
    wmma();
    cublas();
    printf("emulator: %llu context switches\n", cuemu_switch_count());
    return check_summary();
}
