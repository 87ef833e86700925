/*
 * tests/kernels/test_nonfinite: imc_cpu_find_nonfinite (the engine's check after every step)
 * against the reference imc_find_nonfinite: the same flat index, exactly, for NaN, +inf, -inf
 * (and not for the largest finite values or denormals) at the first, last and middle positions,
 * several bad values (the first one wins), a row stride wider than the row, shapes that are and
 * are not multiples of the task size, and 1, 2 and 3 threads.
 */
#include <float.h>
#include <math.h>

#include "kernels/kernels.h"
#include "tests/check.h"
#include "tests/kernels/kcheck.h"

static void one_case(struct imc_exec *ex, struct krng *r, int64_t rows, int64_t n, int64_t ld)
{
    float *x = kalloc_rand(r, rows * ld, 1.0f);
    if (!x) {
        CHECK(0, "out of memory");
        return;
    }
    const int64_t want0 = imc_find_nonfinite(x, ld, rows, n);
    CHECK(want0 == -1 && imc_cpu_find_nonfinite(ex, x, ld, rows, n) == -1, "%lldx%lld: clean",
          (long long)rows, (long long)n);
    x[0] = FLT_MAX;
    x[(rows - 1) * ld + n - 1] = FLT_TRUE_MIN; // extreme but finite
    CHECK(imc_cpu_find_nonfinite(ex, x, ld, rows, n) == -1, "FLT_MAX / denormal are finite");
    if (ld > n) {
        x[ld - 1] = NAN; // in the stride padding: not part of the rows
        CHECK(imc_cpu_find_nonfinite(ex, x, ld, rows, n) == -1, "padding ignored");
    }
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const int64_t spots[4][2] = {{rows - 1, n - 1}, {rows / 2, n / 3}, {0, n - 1}, {0, 0}};
    int64_t first = INT64_MAX;
    for (int s = 0; s < 4; s++) { // bad values accumulate: the first in row order wins
        x[spots[s][0] * ld + spots[s][1]] = bad[s % 3];
        first = spots[s][0] * n + spots[s][1] < first ? spots[s][0] * n + spots[s][1] : first;
        const int64_t want = imc_find_nonfinite(x, ld, rows, n);
        const int64_t got = imc_cpu_find_nonfinite(ex, x, ld, rows, n);
        CHECK(got == want && want == first,
              "%lldx%lld ld %lld spot %d: %lld vs reference %lld", (long long)rows, (long long)n,
              (long long)ld, s, (long long)got, (long long)want);
    }
    free(x);
}

int main(void)
{
    struct krng r = {5};
    const int64_t shapes[][3] = {{1, 1, 1},      {1, 7, 7},       {16, 64, 64}, {17, 64, 80},
                                 {33, 130, 130}, {100, 513, 520}, {257, 31, 31}};
    for (int nt = 1; nt <= 3; nt++) {
        struct imc_exec *ex = kexec(nt);
        for (size_t i = 0; ex && i < sizeof(shapes) / sizeof(shapes[0]); i++) {
            one_case(ex, &r, shapes[i][0], shapes[i][1], shapes[i][2]);
        }
        imc_exec_free(ex);
    }
    CHECK(imc_cpu_find_nonfinite(NULL, NULL, 1, 0, 5) == -1, "no rows");
    return check_summary();
}
