/*
 * tests/e2e/test_reference_imatrix: `imc imatrix` against the reference llama-imatrix's values
 * pinned in tests/data/reference/imatrix.tsv (rows: preset, tensor, flat column, per-column
 * mean Σx²/count, relative tolerance; see that folder's README.md for how they were recorded).
 * For each preset named there: gen-model, then `imc imatrix -c 256 --chunks 8` on the bundled
 * text (the reference's n_ctx padding makes 256 its smallest chunk), and every pinned value
 * must match within its row's tolerance. The column index is flat over the matrices, as the
 * legacy .dat stores experts: column c of an expert tensor is expert c / n_per_row.
 *
 * Also the recorder (scripts/record-reference.sh): `--record FILE PRESET [PREFIX]` prints the
 * rows for the imatrix FILE (GGUF or .dat, read by imc's reader) at the sampled columns
 * 0, 1, n/3, n/2 and n-1 of every entry whose name starts with PREFIX.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/imatrix_file.h"
#include "tests/check.h"

#define ROWS_MAX 4096

struct row {
    char preset[32];
    char tensor[96];
    int64_t col;
    double value;
    double rtol;
};

// The per-column mean of entry e at flat column c (matrix c / n_per_row), or NAN.
static double mean_at(const struct imc_imatrix_entry *e, int64_t c)
{
    if (c < 0 || c >= e->n_per_row * e->n_mat) {
        return NAN;
    }
    double n = e->counts[c / e->n_per_row];
    return n > 0 ? e->sums[c] / n : NAN;
}

static int record(const char *path, const char *preset, const char *prefix)
{
    struct imc_imatrix im;
    if (imc_imatrix_read(path, 256, &im) != IMC_OK) {
        return 1;
    }
    for (int64_t i = 0; i < im.n_entries; i++) {
        const struct imc_imatrix_entry *e = &im.entries[i];
        if (strncmp(e->name, prefix, strlen(prefix)) != 0) {
            continue;
        }
        const int64_t n = e->n_per_row * e->n_mat;
        const int64_t cols[5] = {0, 1, n / 3, n / 2, n - 1};
        for (int k = 0; k < 5; k++) {
            if (k > 0 && cols[k] <= cols[k - 1]) {
                continue;
            }
            printf("%s\t%s\t%lld\t%.9g\n", preset, e->name, (long long)cols[k],
                   mean_at(e, cols[k]));
        }
    }
    imc_imatrix_free(&im);
    return 0;
}

static int load_rows(const char *path, struct row *rows)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f) && n < ROWS_MAX) {
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }
        struct row *r = &rows[n];
        long long col;
        if (sscanf(line, "%31s %95s %lld %lf %lf", r->preset, r->tensor, &col, &r->value,
                   &r->rtol) != 5) {
            printf("FAIL %s: bad line '%s'\n", path, line);
            fclose(f);
            return -1;
        }
        r->col = col;
        n++;
    }
    fclose(f);
    return n;
}

// gen-model + imatrix for preset into dir/preset.imatrix.gguf; returns 0 on success. With
// --matmul f32: the pinned values are llama-imatrix's on the f32 preset (exact f32 arithmetic),
// so imc's exact path is what must match them, whatever the default becomes for the preset's
// weight type.
static int run_imc(const char *bin, const char *src, const char *dir, const char *preset)
{
    char cmd[4096];
    int len =
        snprintf(cmd, sizeof(cmd),
                 "'%s' gen-model --preset '%s' -o '%s/%s.gguf' >/dev/null && "
                 "'%s' imatrix -m '%s/%s.gguf' -f '%s/data/text/calibration.txt' -c 256 --chunks 8 "
                 "--matmul f32 -o '%s/%s.imatrix.gguf' -q >/dev/null 2>&1",
                 bin, preset, dir, preset, bin, dir, preset, src, dir, preset);
    return len > 0 && (size_t)len < sizeof(cmd) ? system(cmd) : -1;
}

static void check_preset(const char *dir, const char *preset, const struct row *rows, int n)
{
    char path[1024];
    int len = snprintf(path, sizeof(path), "%s/%s.imatrix.gguf", dir, preset);
    struct imc_imatrix im;
    imc_imatrix_init(&im);
    const bool ok =
        len > 0 && (size_t)len < sizeof(path) && imc_imatrix_read(path, 0, &im) == IMC_OK;
    CHECK(ok, "%s: cannot read %s", preset, path);
    if (!ok) {
        return;
    }
    int checked = 0;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        if (strcmp(r->preset, preset) != 0) {
            continue;
        }
        const struct imc_imatrix_entry *e = imc_imatrix_find(&im, r->tensor);
        CHECK(e != NULL, "%s: no entry '%s'", preset, r->tensor);
        const double v = e ? mean_at(e, r->col) : NAN;
        const double rel = fabs(v - r->value) / fabs(r->value);
        worst = check_worst(worst, rel);
        CHECK(check_close_ok(v, r->value, 0, r->rtol),
              "%s %s[%lld]: %.9g vs reference %.9g (rel %.2g > %g)", preset, r->tensor,
              (long long)r->col, v, r->value, rel, r->rtol);
        checked++;
    }
    printf("%s: %d pinned values, worst relative difference %.3g\n", preset, checked, worst);
    imc_imatrix_free(&im);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--record") == 0) {
        return record(argv[2], argv[3], argc >= 5 ? argv[4] : "");
    }
    const char *bin = getenv("IMC_BIN"), *src = getenv("IMC_SOURCE_DIR");
    if (!bin || !src) {
        printf("FAIL: IMC_BIN and IMC_SOURCE_DIR must be set (ctest sets them)\n");
        return 1;
    }
    char path[1024], dir[] = "/tmp/imc_refimx_XXXXXX";
    snprintf(path, sizeof(path), "%s/tests/data/reference/imatrix.tsv", src);
    static struct row rows[ROWS_MAX];
    const int n = load_rows(path, rows);
    CHECK(n >= 100, "%d pinned rows in %s", n, path);
    if (n <= 0 || !mkdtemp(dir)) {
        return check_summary();
    }
    const char *done[16];
    int n_done = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int k = 0; k < n_done; k++) {
            seen |= strcmp(done[k], rows[i].preset) == 0;
        }
        if (seen || n_done == 16) {
            continue;
        }
        done[n_done++] = rows[i].preset;
        const int rc = run_imc(bin, src, dir, rows[i].preset);
        CHECK(rc == 0, "%s: gen-model + imatrix failed (%d)", rows[i].preset, rc);
        if (rc == 0) {
            check_preset(dir, rows[i].preset, rows, n);
        }
    }
    CHECK(n_done >= 3, "%d presets pinned", n_done);
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void)!system(cmd);
    return check_summary();
}
