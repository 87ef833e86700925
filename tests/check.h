/*
 * tests/check.h: the test harness (STYLE b.7). Numbered PASS/FAIL lines with file:line.
 * Exit codes, whatever the number of checks: 0 every check passed, 1 any failed
 * (check_summary), 77 the whole test skipped with an announced reason (check_skip_test), which
 * scripts/test.sh accepts only where tests/skips.txt expects it on this machine. A check whose
 * precondition this machine lacks (AVX2, mpirun) prints a SKIP line (CHECK_SKIP) and the rest
 * of the test runs. NaN fails every comparison. Header-only; one test program per file.
 * Tested by tests/unit/test_check.c.
 */
#ifndef IMC_TESTS_CHECK_H
#define IMC_TESTS_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHECK_EXIT_SKIP 77 // ctest's SKIP_RETURN_CODE

struct check_state {
    int n;       // checks run
    int failed;  // checks failed
    int skipped; // checks not run for a missing precondition (CHECK_SKIP)
    int quiet;   // print only failures
};
static struct check_state check_g = {0, 0, 0, 1};

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

// A check that cannot run on this machine: one "SKIP <what>: <why>" line; not a failure.
#define CHECK_SKIP(what, ...)                                                                      \
    do {                                                                                           \
        check_g.skipped++;                                                                         \
        printf("SKIP %s:%d %s: ", __FILE__, __LINE__, (what));                                     \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

// |a - b| <= atol + rtol * |b| (b is the reference); false when either is NaN (NaN never
// matches, not even NaN) and for an infinite a or b unless both are the same infinity.
static inline int check_close_ok(double a, double b, double atol, double rtol)
{
    if (isnan(a) || isnan(b)) {
        return 0;
    }
    if (isinf(a) || isinf(b)) {
        return a == b;
    }
    return fabs(a - b) <= atol + rtol * fabs(b);
}

// max(m, x) that keeps a NaN: once any x is NaN the result is NaN, so a worst-error loop
// reports it (fmax drops NaN operands and would hide it).
static inline double check_worst(double m, double x)
{
    return isnan(m) || isnan(x) ? NAN : (x > m ? x : m);
}

#define CHECK_CLOSE(a, b, atol, rtol)                                                              \
    CHECK(check_close_ok((a), (b), (atol), (rtol)), "%.9g vs %.9g (atol %g rtol %g)", (double)(a), \
          (double)(b), (double)(atol), (double)(rtol))

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
        if (!(d <= tol) || isnan(y[i]) || isnan(ref[i])) { // a NaN in either fails
            if (bad < 5) {
                printf("  mismatch [%ld]: %.9g vs ref %.9g\n", i, y[i], ref[i]);
            }
            if (worst < 0 || !(d - tol <= worst_excess)) {
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

// Prints "N passed, M failed" (", K skipped" when checks were skipped) and returns the exit
// code: 0 when no check failed, else 1 (never the count: 77 would read as a skip, 256 as 0).
static inline int check_summary(void)
{
    printf("%d passed, %d failed", check_g.n - check_g.failed, check_g.failed);
    if (check_g.skipped > 0) {
        printf(", %d skipped", check_g.skipped);
    }
    printf("\n");
    return check_g.failed > 0 ? 1 : 0;
}

// Skips the whole test: prints "SKIP: <why>" and returns 77 for main to return. Only for a
// precondition listed in tests/skips.txt; scripts/test.sh fails on any other skip.
static inline int check_skip_test(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int check_skip_test(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("SKIP: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    return CHECK_EXIT_SKIP;
}

// True under CI (CI set and not "false"/"0"), where every precondition of the suite is met.
static inline int check_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && *ci && strcmp(ci, "false") != 0 && strcmp(ci, "0") != 0;
}

// The steering repo's shared/ data folder SUB ($IMC_SHARED_DIR/SUB, which ctest sets to
// ../shared/SUB) written to buf. Returns 0 when it exists. Otherwise returns the exit code for
// main: 1 with a FAIL line under CI (CI always has ../shared: its absence is a broken setup),
// 77 with a SKIP line elsewhere (a clone without ../shared).
static inline int check_shared_dir(const char *sub, char *buf, size_t len)
{
    const char *d = getenv("IMC_SHARED_DIR");
    struct stat st;
    snprintf(buf, len, "%s/%s", d && *d ? d : "../shared", sub);
    if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode)) {
        return 0;
    }
    if (check_in_ci()) {
        printf("FAIL: %s is missing (CI always has ../shared; set IMC_SHARED_DIR)\n", buf);
        return 1;
    }
    return check_skip_test("no %s (a clone without ../shared; set IMC_SHARED_DIR)", buf);
}

#endif // IMC_TESTS_CHECK_H
