/*
 * tests/cuda/test_sqacc: kernels/cuda/elementwise.cu's sqacc against imc_ref_sqacc, bitwise (the
 * same double sums in the same row order), accumulating twice onto nonzero sums over odd shapes
 * and a row stride, emulated in every resume order and on the GPU where there is one; and
 * sqacc_group: 1, 5 and 200 jobs (three launches of 96) over consecutive rows of one array as
 * an MoE layer's experts (0 .. 6 rows each, some without), each job bitwise imc_ref_sqacc on its
 * rows, with its count, and the sums of no other job touched.
 */
#include "ccheck.h"

struct shape {
    int64_t rows, n_in;
};

static void run(const struct cdev *d, void *ctx)
{
    (void)ctx;
    static const struct shape shapes[] = {{1, 1}, {3, 130}, {17, 1000}, {5, 7168}, {300, 33}};
    struct krng r = {9};
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        const int64_t m = shapes[k].rows, n = shapes[k].n_in, ldx = n + 2;
        float *x = kalloc_rand(&r, m * ldx, 3.0f);
        double *ref = malloc((size_t)n * 8), *got = malloc((size_t)n * 8);
        int64_t count_ref = 5, count = 5;
        for (int64_t i = 0; i < n; i++) {
            ref[i] = (double)krng_unif(&r) + 1.0; // earlier chunks' sums
        }
        double *ds = cdev_up(d, ref, (size_t)n * 8);
        float *dx = cdev_up(d, x, (size_t)(m * ldx) * 4);
        int64_t *dc = cdev_up(d, &count, sizeof(count));
        for (int pass = 0; pass < 2; pass++) {
            imc_ref_sqacc(ref, &count_ref, x, ldx, m, n);
            CHECK(CDEV_FN(d, sqacc)(NULL, ds, dc, dx, ldx, m, n) == IMC_OK, "launch");
        }
        cdev_down(d, got, ds, (size_t)n * 8);
        cdev_down(d, &count, dc, sizeof(count));
        CDEV_FN(d, dev_free)(dx);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) {
            bad += memcmp(&got[i], &ref[i], 8) != 0;
        }
        CHECK(bad == 0 && count == count_ref,
              "%s sqacc %lldx%lld: %lld sums differ (first %.17g "
              "vs %.17g), count %lld vs %lld",
              d->name, (long long)m, (long long)n, (long long)bad, got[0], ref[0], (long long)count,
              (long long)count_ref);
        free(x);
        free(ref);
        free(got);
    }
}

static void group(const struct cdev *d, void *ctx)
{
    (void)ctx;
    static const int64_t sizes[] = {1, 5, 200};
    struct krng r = {10};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        const int64_t nj = sizes[k], n = 37, ldx = n + 3;
        int64_t *first = malloc((size_t)(nj + 1) * sizeof(int64_t));
        first[0] = 0;
        for (int64_t j = 0; j < nj; j++) {
            first[j + 1] = first[j] + (int64_t)(krng_next(&r) % 7); // 0 .. 6 rows
        }
        const int64_t rows = first[nj] > 0 ? first[nj] : 1;
        float *x = kalloc_rand(&r, rows * ldx, 3.0f);
        double *ref = malloc((size_t)(nj * n) * 8), *got = malloc((size_t)(nj * n) * 8);
        int64_t *cref = calloc((size_t)nj, sizeof(int64_t)), *cnt = calloc((size_t)nj, 8);
        for (int64_t i = 0; i < nj * n; i++) {
            ref[i] = (double)krng_unif(&r) + 1.0; // earlier chunks' sums
        }
        double *ds = cdev_up(d, ref, (size_t)(nj * n) * 8);
        float *dx = cdev_up(d, x, (size_t)(rows * ldx) * 4);
        int64_t *dc = cdev_up(d, cnt, (size_t)nj * 8);
        struct imc_sqacc_job *jobs = malloc((size_t)nj * sizeof(*jobs));
        for (int64_t j = 0; j < nj; j++) {
            jobs[j] = (struct imc_sqacc_job){ds + j * n, dc + j, dx + first[j] * ldx, ldx,
                                             first[j + 1] - first[j]};
            imc_ref_sqacc(ref + j * n, cref + j, x + first[j] * ldx, ldx, jobs[j].n_rows, n);
        }
        CHECK(CDEV_FN(d, sqacc_group)(NULL, jobs, nj, n) == IMC_OK, "launch");
        cdev_down(d, got, ds, (size_t)(nj * n) * 8);
        cdev_down(d, cnt, dc, (size_t)nj * 8);
        int64_t bad = 0, bad_count = 0;
        for (int64_t i = 0; i < nj * n; i++) {
            bad += memcmp(&got[i], &ref[i], 8) != 0;
        }
        for (int64_t j = 0; j < nj; j++) {
            bad_count += cnt[j] != cref[j];
        }
        CHECK(bad == 0 && bad_count == 0,
              "%s sqacc_group of %lld jobs (%lld rows): %lld sums differ, %lld counts", d->name,
              (long long)nj, (long long)first[nj], (long long)bad, (long long)bad_count);
        CDEV_FN(d, dev_free)(dx); // (cdev_down freed ds and dc)
        free(jobs);
        free(first);
        free(x);
        free(ref);
        free(got);
        free(cref);
        free(cnt);
    }
}

int main(void)
{
    cdev_run(run, NULL);
    cdev_run(group, NULL);
    return check_summary();
}
