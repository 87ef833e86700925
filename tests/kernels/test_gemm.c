/*
 * tests/kernels/test_gemm: the deterministic f32 GEMM under imc_cpu_matmul (kernels/cpu/gemm.h),
 * C[m][n] = Σ_k A[m][k]·B[n][k], on every path the CPU supports:
 *   - against a double-precision scalar reference over edge shapes (M, N, K from 1, 2, 5, 6, 7,
 *     15, 16, 17, 31, 33, 255, 257 and K = 4100, around MR = 6, NR = 16 and the 256-step K
 *     block), with strided A, B and C; the padding of C is left untouched;
 *   - exactly (bitwise) against the contract itself: one float accumulator per element, from +0,
 *     acc = fmaf(A[m][k], B[n][k], acc) for k ascending;
 *   - bitwise AVX2 == generic (a SKIP line on CPUs without AVX2/FMA);
 *   - row invariance: row m computed alone equals row m inside a batch of any M at any position;
 *   - column invariance: output n does not depend on N or on n's position among the B rows;
 *   - the packed API (imc_gemm_pack_b + imc_gemm_packed) equals imc_gemm_nt bitwise, also with
 *     K split into ascending ranges whose chains continue through C (accumulate).
 *
 * Tolerance vs the double reference: |c - ref| <= 8·2^-24·sqrt(K)·Σ_k |a_k b_k| (the bound of
 * test_matmul: K float roundings of random sign grow ~sqrt(K)·2^-24 relative to the magnitude;
 * 8 is margin). A dropped or doubled term (~Σ|ab| / K) exceeds it for every K tested.
 */
#include <math.h>

#include "kcheck.h"
#include "kernels/cpu/gemm.h"

#define SENTINEL 0x1.fedcbap+100f

struct gcase {
    int64_t m, n, k;
};

struct gdata {
    struct gcase g;
    int64_t lda, ldb, ldc;
    float *a, *b;
};

static struct gdata make_data(struct krng *r, struct gcase g, int64_t pad)
{
    struct gdata d = {g, g.k + pad, g.k + 2 * pad, g.n + 3 * pad, NULL, NULL};
    d.a = kalloc_rand(r, g.m * d.lda, 1.0f);
    d.b = kalloc_rand(r, g.n * d.ldb, 1.0f);
    return d;
}

static void free_data(struct gdata *d)
{
    free(d->a);
    free(d->b);
}

static float *new_c(const struct gdata *d)
{
    const int64_t n = d->g.m * d->ldc;
    float *c = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        c[i] = SENTINEL;
    }
    return c;
}

// C = A·B^T with rows [r0, r0 + m) of A and [j0, j0 + n) of B, through imc_gemm_nt.
static void gemm_sub(enum imc_gemm_path p, const struct gdata *d, float *c, int64_t ldc,
                     int64_t r0, int64_t m, int64_t j0, int64_t n)
{
    float *work = malloc((size_t)imc_gemm_nt_work_floats(d->g.k) * sizeof(float));
    imc_gemm_nt(p, c, ldc, d->a + r0 * d->lda, d->lda, m, d->b + j0 * d->ldb, d->ldb, n, d->g.k,
                work);
    free(work);
}

// The contract, written out: one fmaf chain per element.
static void spec_gemm(const struct gdata *d, float *c)
{
    for (int64_t i = 0; i < d->g.m; i++) {
        for (int64_t j = 0; j < d->g.n; j++) {
            float acc = 0.0f;
            for (int64_t kk = 0; kk < d->g.k; kk++) {
                acc = fmaf(d->a[i * d->lda + kk], d->b[j * d->ldb + kk], acc);
            }
            c[i * d->ldc + j] = acc;
        }
    }
}

// Double reference and per-element tolerance, both [m][n] contiguous.
static void ref_gemm(const struct gdata *d, double *ref, double *tol)
{
    for (int64_t i = 0; i < d->g.m; i++) {
        for (int64_t j = 0; j < d->g.n; j++) {
            double s = 0.0, mag = 0.0;
            for (int64_t kk = 0; kk < d->g.k; kk++) {
                const double p = (double)d->a[i * d->lda + kk] * d->b[j * d->ldb + kk];
                s += p;
                mag += fabs(p);
            }
            ref[i * d->g.n + j] = s;
            tol[i * d->g.n + j] = 8.0 * 0x1p-24 * sqrt((double)d->g.k) * mag;
        }
    }
}

static int64_t count_bad(const struct gdata *d, const float *c, const double *ref,
                         const double *tol)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < d->g.m; i++) {
        for (int64_t j = 0; j < d->g.n; j++) {
            const double e = fabs((double)c[i * d->ldc + j] - ref[i * d->g.n + j]);
            bad += !(e <= tol[i * d->g.n + j]);
        }
    }
    return bad;
}

// Elements of c [m][ldc] whose valid part differs from want, or whose padding was written.
static int64_t count_diff(const struct gdata *d, const float *c, const float *want)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < d->g.m; i++) {
        for (int64_t j = 0; j < d->ldc; j++) {
            const float w = j < d->g.n ? want[i * d->ldc + j] : SENTINEL;
            bad += memcmp(&c[i * d->ldc + j], &w, sizeof(float)) != 0;
        }
    }
    return bad;
}

// Self-check of the tolerance checker: one element moved by 10 bounds must be caught.
static void self_check(const struct gdata *d, float *c, const double *ref, const double *tol,
                       int64_t bad)
{
    const int64_t i = d->g.m / 2, j = d->g.n / 2;
    const float keep = c[i * d->ldc + j];
    c[i * d->ldc + j] = (float)(ref[i * d->g.n + j] + 10.0 * tol[i * d->g.n + j] + 1e-30);
    CHECK(count_bad(d, c, ref, tol) == bad + 1, "tolerance checker missed a perturbed element");
    c[i * d->ldc + j] = keep;
}

static void run_case(struct krng *r, struct gcase g, const enum imc_gemm_path *paths, int n_paths)
{
    struct gdata d = make_data(r, g, 3);
    const int64_t nc = g.m * g.n > 0 ? g.m * g.n : 1;
    double *ref = malloc((size_t)nc * sizeof(double)), *tol = malloc((size_t)nc * sizeof(double));
    float *spec = new_c(&d), *first = NULL;
    ref_gemm(&d, ref, tol);
    spec_gemm(&d, spec);
    for (int ip = 0; ip < n_paths; ip++) {
        const char *pn = imc_gemm_path_name(paths[ip]);
        float *c = new_c(&d);
        gemm_sub(paths[ip], &d, c, d.ldc, 0, g.m, 0, g.n);
        const int64_t bad = count_bad(&d, c, ref, tol);
        CHECK(bad == 0, "%s %lldx%lldx%lld: %lld elements outside the bound", pn, (long long)g.m,
              (long long)g.n, (long long)g.k, (long long)bad);
        const int64_t diff = count_diff(&d, c, spec);
        CHECK(diff == 0, "%s %lldx%lldx%lld: %lld elements differ from the fmaf chain (or padding "
              "written)", pn, (long long)g.m, (long long)g.n, (long long)g.k, (long long)diff);
        if (g.m > 0 && g.n > 0 && ip == 0) {
            self_check(&d, c, ref, tol, bad);
        }
        if (first) {
            CHECK(count_diff(&d, c, first) == 0, "%lldx%lldx%lld: %s and %s paths differ",
                  (long long)g.m, (long long)g.n, (long long)g.k, pn,
                  imc_gemm_path_name(paths[0]));
            free(c);
        } else {
            first = c;
        }
    }
    free(first);
    free(spec);
    free(ref);
    free(tol);
    free_data(&d);
}

// The block of rows [r0, r0 + m) of A × rows [j0, j0 + n) of B computed as its own call:
// its row segments that differ from the same block of full (the whole problem).
static int64_t block_differs(enum imc_gemm_path p, const struct gdata *d, const float *full,
                             int64_t r0, int64_t m, int64_t j0, int64_t n)
{
    float *c = malloc((size_t)(m * n) * sizeof(float));
    gemm_sub(p, d, c, n, r0, m, j0, n);
    int64_t bad = 0;
    for (int64_t i = 0; i < m; i++) {
        bad += memcmp(c + i * n, full + (r0 + i) * d->ldc + j0, (size_t)n * 4) != 0;
    }
    free(c);
    return bad;
}

// rows: every A row alone, and sub-batches of A rows of many sizes at many offsets (blocks[q] =
// {offset, count}); !rows: sub-ranges of B rows (outputs). Each against the full problem.
static void invariance(struct krng *r, enum imc_gemm_path p, bool rows)
{
    struct gdata d = make_data(r, rows ? (struct gcase){257, 37, 300} : (struct gcase){7, 257, 300},
                               rows ? 2 : 1);
    float *full = new_c(&d);
    gemm_sub(p, &d, full, d.ldc, 0, d.g.m, 0, d.g.n);
    const int64_t blocks[][2] = {{0, 1},   {1, 1},    {5, 17},  {16, 16}, {17, 33}, {100, 157},
                                 {240, 17}, {0, 256}, {3, 254}, {256, 1}, {6, 6},   {31, 13},
                                 {97, 100}, {1, 200}, {7, 5},   {0, 2}};
    const int64_t total = rows ? d.g.m : d.g.n;
    int64_t bad = 0;
    for (int64_t i = 0; rows && i < total; i++) {
        bad += block_differs(p, &d, full, i, 1, 0, d.g.n);
    }
    for (size_t q = 0; q < sizeof blocks / sizeof blocks[0]; q++) {
        const int64_t off = blocks[q][0], n = blocks[q][1];
        bad += rows ? block_differs(p, &d, full, off, n, 0, d.g.n)
                    : block_differs(p, &d, full, 0, d.g.m, off, n);
    }
    CHECK(bad == 0, "%s: %lld row segments differ when %s are computed alone or in sub-ranges",
          imc_gemm_path_name(p), (long long)bad, rows ? "A rows" : "B rows (outputs)");
    free(full);
    free_data(&d);
}

// imc_gemm_pack_b + imc_gemm_packed (unaligned panels) give the bits of imc_gemm_nt, in one
// call and with K split into ascending ranges continued through C (accumulate).
static void packed_api(struct krng *r, enum imc_gemm_path p)
{
    struct gdata d = make_data(r, (struct gcase){19, 45, 531}, 1);
    float *nt = new_c(&d), *c = new_c(&d);
    gemm_sub(p, &d, nt, d.ldc, 0, d.g.m, 0, d.g.n);
    float *bp = malloc((size_t)(imc_gemm_packed_floats(d.g.n, d.g.k) + 1) * sizeof(float));
    imc_gemm_pack_b(p, bp + 1, d.b, d.ldb, d.g.n, d.g.k);
    imc_gemm_packed(p, c, d.ldc, d.a, d.lda, d.g.m, bp + 1, d.g.n, d.g.k, false);
    CHECK(count_diff(&d, c, nt) == 0, "%s: packed API differs from imc_gemm_nt",
          imc_gemm_path_name(p));
    const int64_t cuts[] = {0, 1, 7, 100, 256, 300, 531};
    for (size_t q = 0; q + 1 < sizeof cuts / sizeof cuts[0]; q++) {
        const int64_t k0 = cuts[q], kn = cuts[q + 1] - k0;
        imc_gemm_pack_b(p, bp + 1, d.b + k0, d.ldb, d.g.n, kn);
        imc_gemm_packed(p, c, d.ldc, d.a + k0, d.lda, d.g.m, bp + 1, d.g.n, kn, k0 > 0);
    }
    CHECK(count_diff(&d, c, nt) == 0, "%s: K split into ranges (accumulate) differs from one call",
          imc_gemm_path_name(p));
    free(bp);
    free(nt);
    free(c);
    free_data(&d);
}

int main(void)
{
    struct krng r = {11};
    enum imc_gemm_path paths[3] = {IMC_GEMM_GENERIC, IMC_GEMM_AVX2, IMC_GEMM_VNNI};
    int n_paths = 3; // vnni runs the AVX2 GEMM: checked as a path of its own all the same
    if (!imc_gemm_path_supported(IMC_GEMM_VNNI)) {
        CHECK_SKIP("vnni path", "this CPU has no AVX512-VNNI+VL or AVX-VNNI");
        n_paths = 2;
    }
    if (!imc_gemm_path_supported(IMC_GEMM_AVX2)) {
        CHECK_SKIP("GEMM AVX2 path (== generic, invariance)", "this CPU has no AVX2/FMA");
        n_paths = 1;
    }
    CHECK(imc_gemm_path_best() == paths[n_paths - 1], "best path is %s",
          imc_gemm_path_name(imc_gemm_path_best()));
    const int64_t dims[] = {1, 2, 5, 6, 7, 15, 16, 17, 31, 33, 255, 257};
    const size_t nd = sizeof dims / sizeof dims[0];
    for (size_t i = 0; i < nd; i++) {
        run_case(&r, (struct gcase){dims[i], 33, 257}, paths, n_paths);
        run_case(&r, (struct gcase){7, dims[i], 257}, paths, n_paths);
        run_case(&r, (struct gcase){17, 31, dims[i]}, paths, n_paths);
    }
    const struct gcase extra[] = {{1, 1, 1},     {6, 16, 256},   {96, 16, 512}, {97, 17, 513},
                                  {255, 257, 33}, {31, 33, 4100}, {1, 255, 4100}, {3, 5, 0},
                                  {0, 5, 7},      {4, 0, 7}};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        run_case(&r, extra[i], paths, n_paths);
    }
    for (int ip = 0; ip < n_paths; ip++) {
        invariance(&r, paths[ip], true);
        invariance(&r, paths[ip], false);
        packed_api(&r, paths[ip]);
    }
    return check_summary();
}
