/*
 * tests/unit/test_check: the test harness tests itself (SQLite's "deliberately induce a fault"):
 * a child run of this program with N failing checks exits 1 for N = 1, 77, 256 and 1000 (never
 * the count: 77 would read as a skip, 256 as a pass) and 0 for N = 0; check_skip_test exits 77;
 * CHECK_SKIP is not a failure; NaN fails every comparison (CHECK_CLOSE, the array checker, the
 * worst-error helper) and an infinity matches only itself.
 */
#include "tests/check.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// Runs "EXE MODE N" with stdout discarded; returns its exit status, or -1.
static int child_exit(const char *exe, const char *mode, int n)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' %s %d >/dev/null 2>&1", exe, mode, n);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The child: N failing checks and N passing ones, then the summary's exit code.
static int child(const char *mode, int n)
{
    if (strcmp(mode, "--skip") == 0) {
        return check_skip_test("deliberate skip of the harness test");
    }
    for (int i = 0; i < n; i++) {
        CHECK(i < 0, "deliberate failure %d", i);
        CHECK(i >= 0, "a passing check");
    }
    if (strcmp(mode, "--fail-skip") == 0) {
        CHECK_SKIP("a check without its precondition", "deliberate");
    }
    return check_summary();
}

// Runs fn with a fresh harness state and returns how many checks it failed (the outer state is
// restored, so the deliberate failures do not count against this test).
static int failures_of(void (*fn)(void))
{
    struct check_state saved = check_g;
    check_g = (struct check_state){0, 0, 0, 1};
    int saved_out = dup(1);
    fflush(stdout);
    (void)!freopen("/dev/null", "w", stdout);
    fn();
    fflush(stdout);
    dup2(saved_out, 1);
    close(saved_out);
    int failed = check_g.failed;
    check_g = saved;
    return failed;
}

static void nan_close(void)
{
    CHECK_CLOSE(NAN, NAN, 1, 1);
}
static void nan_vs_number(void)
{
    CHECK_CLOSE(1.0, NAN, 1e30, 1);
}
static void number_vs_nan(void)
{
    CHECK_CLOSE(NAN, 1.0, 1e30, 1);
}
static void inf_vs_inf(void)
{
    CHECK_CLOSE(INFINITY, INFINITY, 0, 0);
}
static void inf_vs_neg(void)
{
    CHECK_CLOSE(INFINITY, -INFINITY, 1e30, 1);
}
static void inf_vs_big(void)
{
    CHECK_CLOSE(INFINITY, 1e300, 1e30, 1);
}

static void nan_array(void)
{
    float y[4] = {1, 2, NAN, 4}, ref[4] = {1, 2, 3, 4};
    CHECK_ARRAY_CLOSE(y, ref, 4, 1e30, 1);
}

static void nan_ref_array(void)
{
    float y[4] = {1, 2, 3, 4}, ref[4] = {1, NAN, 3, 4};
    CHECK_ARRAY_CLOSE(y, ref, 4, 1e30, 1);
}

static void test_comparisons(void)
{
    CHECK(failures_of(nan_close) == 1, "NaN vs NaN passed");
    CHECK(failures_of(nan_vs_number) == 1, "1 vs NaN passed");
    CHECK(failures_of(number_vs_nan) == 1, "NaN vs 1 passed");
    CHECK(failures_of(inf_vs_inf) == 0, "inf vs inf failed");
    CHECK(failures_of(inf_vs_neg) == 1, "inf vs -inf passed");
    CHECK(failures_of(inf_vs_big) == 1, "inf vs 1e300 passed");
    CHECK(failures_of(nan_array) == 1, "an array with a NaN passed");
    CHECK(failures_of(nan_ref_array) == 1, "an array against a NaN reference passed");
    double w = 0;
    double xs[4] = {0.5, NAN, 0.25, 2};
    for (int i = 0; i < 4; i++) {
        w = check_worst(w, xs[i]);
    }
    CHECK(isnan(w), "check_worst dropped a NaN: %g", w);
    CHECK(check_worst(check_worst(0, 0.5), 2) == 2, "check_worst of plain numbers");
    CHECK(check_close_ok(1.0, 1.0 + 1e-9, 0, 1e-8) && !check_close_ok(1.0, 1.1, 0, 1e-3),
          "plain closeness");
}

static void test_exit_codes(const char *exe)
{
    const int fails[] = {1, 77, 256, 1000};
    for (size_t i = 0; i < sizeof(fails) / sizeof(fails[0]); i++) {
        int rc = child_exit(exe, "--fail", fails[i]);
        CHECK(rc == 1, "%d failed checks exit %d, not 1", fails[i], rc);
    }
    CHECK(child_exit(exe, "--fail", 0) == 0, "no failed check: not exit 0");
    CHECK(child_exit(exe, "--fail-skip", 0) == 0, "a skipped check is not a failure");
    CHECK(child_exit(exe, "--fail-skip", 77) == 1, "77 failures and a skipped check: not exit 1");
    CHECK(child_exit(exe, "--skip", 0) == CHECK_EXIT_SKIP, "check_skip_test: not exit 77");
}

int main(int argc, char **argv)
{
    if (argc == 3) {
        return child(argv[1], atoi(argv[2]));
    }
    test_comparisons();
    test_exit_codes(argv[0]);
    return check_summary();
}
