/*
 * tests/kernels/kcheck.h: shared pieces of the kernel tests (optimized imc_cpu_* vs scalar
 * imc_ref_*): the tolerance table, a deterministic PRNG, and the comparison with its self-check
 * (the checker must fail when one element of the optimized output is perturbed: STYLE b.10 #12).
 *
 * Tolerances (cpu vs ref; |y - ref| <= atol + rtol |ref|, per element, inputs O(1)):
 *
 *   op         atol    rtol    why
 *   rmsnorm    1e-6    1e-6    scale from a double sum in both; cpu multiplies x·scale·w in float (<= 3 roundings)
 *   rope       2e-6    2e-6    same double angles; cpu rotates in float (2 products + 1 sum, |x| ~ 1..4)
 *   softmax    1e-8    2e-6    cpu: expf of a float difference (|x - max| <= ~10 -> ~10 ulp relative)
 *   swiglu     1e-7    1e-6    cpu: expf, one division and one product in float
 *   attention  2e-5    2e-5    float sgemm scores over dk <= 96 (~sqrt(dk)·eps·|q||k|), float softmax, float P·V
 *   moe_route  0 (ids) 1e-5    ids exact where the selection margin exceeds 1e-5; weights from float expf/sigmoid
 *   sqacc      0       0       same double arithmetic in the same row order (columns split over threads)
 *   matmul     see test_matmul.c: |y - ref| <= 8·2^-24·sqrt(n_in)·Σ_i|W_oi x_ti| (one float fma chain
 *              over n_in products; dequantization is the same table function in both)
 *   gemm       see test_gemm.c: the same bound with K for n_in, plus bitwise equality to the fmaf chain
 *   qmm        see test_qmm.c: the activation rounding itself plus 2^-22·(n/32 + 4)·Σ|w·x_q|; the AVX2
 *              path bitwise equal to the generic one
 */
#ifndef IMC_TESTS_KCHECK_H
#define IMC_TESTS_KCHECK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "kernels/kernels.h"

#define TOL_RMSNORM_ATOL 1e-6
#define TOL_RMSNORM_RTOL 1e-6
#define TOL_ROPE_ATOL 2e-6
#define TOL_ROPE_RTOL 2e-6
#define TOL_SOFTMAX_ATOL 1e-8
#define TOL_SOFTMAX_RTOL 2e-6
#define TOL_SWIGLU_ATOL 1e-7
#define TOL_SWIGLU_RTOL 1e-6
#define TOL_ATTN_ATOL 2e-5
#define TOL_ATTN_RTOL 2e-5
#define TOL_ROUTE_MARGIN 1e-5
#define TOL_ROUTE_RTOL 1e-5

struct krng {
    uint64_t s;
};

static inline uint64_t krng_next(struct krng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Uniform in [-1, 1).
static inline float krng_unif(struct krng *r)
{
    return (float)((double)(krng_next(r) >> 11) * 0x1p-52 - 1.0);
}

// Approximately N(0, std²) (sum of 4 uniforms).
static inline float krng_normal(struct krng *r, float std)
{
    float s = 0.0f;
    for (int i = 0; i < 4; i++) {
        s += krng_unif(r);
    }
    return s * 0.8660254f * std;
}

static inline float *kalloc_rand(struct krng *r, int64_t n, float std)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; p && i < n; i++) {
        p[i] = krng_normal(r, std);
    }
    return p;
}

// The finite fp16 value number i (mod 63488, the count of them, both signs): bit patterns
// 0x0000..0x7bff, then 0x8000..0xfbff.
static inline uint16_t kfinite_fp16(int64_t i)
{
    const int64_t j = i % 63488;
    return (uint16_t)(j < 31744 ? j : 0x8000 + (j - 31744));
}

// Random weights of interleaved type t, rows x n (whole groups and blocks), as a file holds them:
// every byte random except the scales, which are finite: the rows' meta leading each group (f32,
// or fp16 for 2 bytes), or each block's R fp16 scales (mxfp4_r8: e8m0 bytes 110 .. 139). With
// sweep, the blocks' fp16 scales are the finite fp16 values in turn from number *sweep (advanced).
// Free with free; NULL for a bad shape.
static inline uint8_t *kalloc_woven(struct krng *r, enum imc_type t, int64_t rows, int64_t n,
                                    int64_t *sweep)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)t);
    uint64_t rb = 0;
    if (!tr || !imc_type_row_bytes((uint32_t)t, n, &rb)) {
        return NULL;
    }
    const size_t bytes = (size_t)(rb * (uint64_t)rows), gb = (size_t)rb * (size_t)tr->rows;
    uint8_t *w = (uint8_t *)malloc(bytes + 1);
    for (size_t i = 0; w && i < bytes; i++) {
        w[i] = (uint8_t)krng_next(r);
    }
    for (size_t g = 0; w && tr->row_meta && g < bytes; g += gb) { // the rows' scales lead
        for (int k = 0; k < tr->rows; k++) {
            const float d = krng_normal(r, 0.05f);
            const uint16_t h = imc_fp32_to_fp16(d);
            memcpy(w + g + tr->row_meta * (size_t)k,
                   tr->row_meta == 2 ? (const void *)&h : (const void *)&d, tr->row_meta);
        }
    }
    const size_t blk = (size_t)tr->rows * tr->type_size;
    for (size_t off = 0; w && !tr->row_meta && off < bytes; off += blk) { // each block's scales
        for (int k = 0; k < tr->rows; k++) {
            if (t == IMC_TYPE_MXFP4_R8) {
                w[off + (size_t)k] = (uint8_t)(110 + krng_next(r) % 30);
                continue;
            }
            const uint16_t h =
                sweep ? kfinite_fp16((*sweep)++) : imc_fp32_to_fp16(krng_normal(r, 0.05f));
            memcpy(w + off + 2 * (size_t)k, &h, 2);
        }
    }
    return w;
}

static inline float *kdup(const float *x, int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (p) {
        memcpy(p, x, (size_t)n * sizeof(float));
    }
    return p;
}

// Compares y against ref; then, as a self-check of the checker, perturbs one element of y by
// 10× its tolerance and expects exactly that mismatch to be found. Returns mismatches of the
// real comparison. what names the case in failure messages.
static inline int kcompare(const char *what, float *y, const float *ref, int64_t n, double atol,
                           double rtol)
{
    int bad = check_array_close_impl(y, ref, n, atol, rtol, NULL);
    CHECK(bad == 0, "%s: %d of %lld elements outside tolerance", what, bad, (long long)n);
    if (n > 0) {
        const int64_t k = n / 2;
        const float keep = y[k];
        y[k] = (float)((double)ref[k] + 10.0 * (atol + rtol * (ref[k] < 0 ? -ref[k] : ref[k])) +
                       1e-30);
        printf("  self-check of the checker (one mismatch expected below):\n");
        const int caught = check_array_close_impl(y, ref, n, atol, rtol, NULL);
        y[k] = keep;
        CHECK(caught >= 1, "%s: checker missed a perturbed element", what);
    }
    return bad;
}

static inline struct imc_exec *kexec(int n_threads)
{
    struct imc_exec *ex = NULL;
    if (imc_exec_init(&ex, n_threads) != IMC_OK) {
        printf("cannot start %d threads\n", n_threads);
        exit(1);
    }
    return ex;
}

#endif // IMC_TESTS_KCHECK_H
