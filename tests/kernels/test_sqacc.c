/*
 * tests/kernels/test_sqacc: imc_cpu_sqacc against imc_ref_sqacc (bitwise: same double
 * arithmetic, same row order; columns split over threads, the column task sized by the thread
 * count) on pools of 1, 3 and 8 threads over column counts 1, odd, not a multiple of any column
 * task and large, with strided rows and accumulation over calls, on every path the CPU has
 * (generic, AVX2, AVX-512: vectorized across columns); and the reference against exactly
 * representable sums.
 */
#include "kcheck.h"
#include "kernels/cpu/gemm.h"

static void run_case(struct imc_exec *ex, struct krng *r, int64_t rows, int64_t n)
{
    const int64_t ld = n + 2;
    float *x = kalloc_rand(r, rows * ld, 2.0f);
    double *s = calloc((size_t)n, 8), *ref = calloc((size_t)n, 8);
    int64_t c = 3, cref = 3;
    for (int rep = 0; rep < 2; rep++) { // accumulates across calls
        imc_cpu_sqacc(ex, s, &c, x, ld, rows, n);
        imc_ref_sqacc(ref, &cref, x, ld, rows, n);
    }
    CHECK(memcmp(s, ref, (size_t)n * 8) == 0, "sqacc rows=%lld n=%lld differs", (long long)rows,
          (long long)n);
    CHECK(c == cref && c == 3 + 2 * rows, "count %lld vs %lld", (long long)c, (long long)cref);
    s[n / 2] += 1e-12; // self-check: the comparison notices one changed sum
    CHECK(memcmp(s, ref, (size_t)n * 8) != 0, "checker missed a perturbation");
    free(x);
    free(s);
    free(ref);
}

int main(void)
{
    struct krng r = {6};
    const int pools[] = {1, 3, 8};
    const int64_t ns[] = {1, 7, 17, 256, 300, 2000, 7168};
    const int64_t rows[] = {1, 5, 64};
    const enum imc_gemm_path paths[] = {IMC_GEMM_GENERIC, IMC_GEMM_AVX2, IMC_GEMM_VNNI};
    for (size_t q = 0; q < 3; q++) {
        if (!imc_gemm_path_supported(paths[q])) {
            CHECK_SKIP(imc_gemm_path_name(paths[q]), "path not supported by this CPU");
            continue;
        }
        for (size_t p = 0; p < 3; p++) {
            struct imc_exec *ex = kexec(pools[p]);
            CHECK(imc_exec_set_gemm_path(ex, paths[q]) == IMC_OK, "set path");
            for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
                for (size_t j = 0; j < 3; j++) {
                    run_case(ex, &r, rows[j], ns[i]);
                }
            }
            imc_exec_free(ex);
        }
    }
    // Spec: x = [[1, 2], [3, -0.5]] -> sums [10, 4.25], count 2.
    const float x[4] = {1.0f, 2.0f, 3.0f, -0.5f};
    double s[2] = {0, 0};
    int64_t c = 0;
    imc_ref_sqacc(s, &c, x, 2, 2, 2);
    CHECK(s[0] == 10.0 && s[1] == 4.25 && c == 2, "sums %g %g count %lld", s[0], s[1],
          (long long)c);
    return check_summary();
}
