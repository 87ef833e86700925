/*
 * tests/check.h: the test harness (STYLE b.7). Numbered PASS/FAIL lines with file:line; the exit
 * code is the failure count (check_summary). Header-only; one test program per file.
 */
#ifndef IMC_TESTS_CHECK_H
#define IMC_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

struct check_state {
    int n;      // checks run
    int failed; // checks failed
    int quiet;  // print only failures
};
static struct check_state check_g = {0, 0, 1};

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        check_g.n++;                                                                               \
        if (!(cond)) {                                                                             \
            check_g.failed++;                                                                      \
            printf("FAIL %d %s:%d: %s: ", check_g.n, __FILE__, __LINE__, #cond);                   \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        } else if (!check_g.quiet) {                                                               \
            printf("PASS %d %s:%d\n", check_g.n, __FILE__, __LINE__);                              \
        }                                                                                          \
    } while (0)

// |a - b| <= atol + rtol * |b| (b is the reference).
static inline int check_close_ok(double a, double b, double atol, double rtol)
{
    return fabs(a - b) <= atol + rtol * fabs(b) && !isnan(a) == !isnan(b);
}

#define CHECK_CLOSE(a, b, atol, rtol)                                                              \
    CHECK(check_close_ok((a), (b), (atol), (rtol)), "%.9g vs %.9g (atol %g rtol %g)",              \
          (double)(a), (double)(b), (double)(atol), (double)(rtol))

// Compares n floats; prints the first 5 mismatches and the worst; returns the mismatch count.
static inline int check_array_close_impl(const float *y, const float *ref, long n, double atol,
                                         double rtol, double *nmse_out)
{
    int bad = 0;
    long worst = -1;
    double worst_excess = 0, se = 0, s0 = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)y[i] - (double)ref[i]);
        double tol = atol + rtol * fabs((double)ref[i]);
        se += d * d;
        s0 += (double)ref[i] * (double)ref[i];
        if (!(d <= tol)) {
            if (bad < 5) {
                printf("  mismatch [%ld]: %.9g vs ref %.9g\n", i, y[i], ref[i]);
            }
            if (worst < 0 || d - tol > worst_excess) {
                worst = i;
                worst_excess = d - tol;
            }
            bad++;
        }
    }
    if (worst >= 0) {
        printf("  worst [%ld]: %.9g vs ref %.9g; %d of %ld outside tolerance\n", worst, y[worst],
               ref[worst], bad, n);
    }
    if (nmse_out) {
        *nmse_out = s0 > 0 ? se / s0 : se;
    }
    return bad;
}

#define CHECK_ARRAY_CLOSE(y, ref, n, atol, rtol)                                                   \
    CHECK(check_array_close_impl((y), (ref), (n), (atol), (rtol), NULL) == 0,                      \
          "arrays differ (atol %g rtol %g)", (double)(atol), (double)(rtol))

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", check_g.n - check_g.failed, check_g.failed);
    return check_g.failed;
}

// Returns the directory of the shared data, or NULL (the test should then skip with 77).
static inline const char *check_shared_dir(void)
{
    const char *d = getenv("IMC_SHARED_DIR");
    return d && *d ? d : NULL;
}

#endif // IMC_TESTS_CHECK_H
