/*
 * kernels/cpu/elementwise: RMSNorm, softmax, SwiGLU, the squared-activation accumulation and the
 * non-finite check on the pool (kernels/kernels.h). Rows are cut into fixed-size tasks, so every
 * output is computed the same way for any thread count. sqacc cuts columns, into at least two
 * tasks per thread where the width allows: each column's sum is the same additions in row order
 * however the columns are grouped.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/cpu_priv.h"
#include "kernels/kernels.h"

#define ROWS_PER_TASK 16
#define COLS_PER_TASK 256 // the most columns of an sqacc task
#define COLS_MIN 32        // the fewest (a cache line of doubles, four of floats)

struct rows_job {
    float *y;
    const float *x, *w, *up;
    int64_t n_rows, n, ldy, ldx, ldu;
    float eps;
    double *sum2;
    int64_t cols;               // sqacc: columns per task
    imc_sqacc_rows_fn sq_rows; // sqacc: the path's inner loop
};

static int64_t n_row_tasks(int64_t n_rows)
{
    return (n_rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
}

static void rmsnorm_task(void *ctx, int64_t task, int thread)
{
    const struct rows_job *j = ctx;
    const int64_t r1 =
        (task + 1) * ROWS_PER_TASK < j->n_rows ? (task + 1) * ROWS_PER_TASK : j->n_rows;
    for (int64_t r = task * ROWS_PER_TASK; r < r1; r++) {
        const float *xr = j->x + r * j->n;
        float *yr = j->y + r * j->n;
        double ss = 0.0;
        for (int64_t i = 0; i < j->n; i++) {
            ss += (double)xr[i] * xr[i];
        }
        const float scale = (float)(1.0 / sqrt(ss / (double)j->n + (double)j->eps));
        for (int64_t i = 0; i < j->n; i++) {
            yr[i] = xr[i] * scale * (j->w ? j->w[i] : 1.0f);
        }
    }
}

void imc_cpu_rmsnorm(const struct imc_exec *ex, float *y, const float *x, const float *w,
                     int64_t n_rows, int64_t n, float eps)
{
    struct rows_job j = {.y = y, .x = x, .w = w, .n_rows = n_rows, .n = n, .eps = eps};
    imc_exec_run(ex, n_row_tasks(n_rows), rmsnorm_task, &j);
}

static void softmax_task(void *ctx, int64_t task, int thread)
{
    const struct rows_job *j = ctx;
    for (int64_t r = task * ROWS_PER_TASK; r < j->n_rows && r < (task + 1) * ROWS_PER_TASK; r++) {
        imc_cpu_softmax_row(j->y + r * j->n, j->n);
    }
}

void imc_cpu_softmax(const struct imc_exec *ex, float *x, int64_t n_rows, int64_t n)
{
    struct rows_job j = {.y = x, .n_rows = n_rows, .n = n};
    imc_exec_run(ex, n_row_tasks(n_rows), softmax_task, &j);
}

static void swiglu_task(void *ctx, int64_t task, int thread)
{
    const struct rows_job *j = ctx;
    for (int64_t r = task * ROWS_PER_TASK; r < j->n_rows && r < (task + 1) * ROWS_PER_TASK; r++) {
        const float *g = j->x + r * j->ldx, *u = j->up + r * j->ldu;
        float *o = j->y + r * j->ldy;
        for (int64_t i = 0; i < j->n; i++) {
            o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        }
    }
}

void imc_cpu_swiglu(const struct imc_exec *ex, float *out, int64_t ldo, const float *gate,
                    int64_t ldg, const float *up, int64_t ldu, int64_t n_rows, int64_t n)
{
    struct rows_job j = {.y = out,
                         .ldy = ldo,
                         .x = gate,
                         .ldx = ldg,
                         .up = up,
                         .ldu = ldu,
                         .n_rows = n_rows,
                         .n = n};
    imc_exec_run(ex, n_row_tasks(n_rows), swiglu_task, &j);
}

static void sqacc_task(void *ctx, int64_t task, int thread)
{
    const struct rows_job *j = ctx;
    const int64_t c0 = task * j->cols;
    const int64_t c1 = c0 + j->cols < j->n ? c0 + j->cols : j->n;
    j->sq_rows(j->sum2, j->x, j->ldx, j->n_rows, c0, c1);
}

void imc_cpu_sqacc(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x,
                   int64_t ldx, int64_t n_rows, int64_t n_in)
{
    const int64_t want = 2 * (int64_t)imc_exec_cut_threads(ex);
    int64_t cols = ((n_in + want - 1) / want + COLS_MIN - 1) / COLS_MIN * COLS_MIN;
    cols = cols < COLS_MIN ? COLS_MIN : cols > COLS_PER_TASK ? COLS_PER_TASK : cols;
    struct rows_job j = {
        .x = x,
        .ldx = ldx,
        .n_rows = n_rows,
        .n = n_in,
        .sum2 = sum2,
        .cols = cols,
        .sq_rows = imc_cpu_sqacc_rows(imc_exec_gemm_path(ex))};
    imc_exec_run(ex, (n_in + cols - 1) / cols, sqacc_task, &j);
    *count += n_rows;
}

struct nonfinite_job {
    const float *x;
    int64_t ld, n_rows, n;
    atomic_int_fast64_t first; // smallest flat index found, INT64_MAX while none
};

// True when row x[0..n) holds a NaN or an infinity: all exponent bits set, so adding one to
// the exponent carries into bit 31. Integer OR of independent lanes, no early exit: the loop
// vectorizes at -O2.
static bool row_nonfinite(const float *x, int64_t n)
{
    uint32_t lane[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint32_t u[8];
        memcpy(u, x + i, sizeof(u));
        for (int k = 0; k < 8; k++) {
            lane[k] |= (u[k] & 0x7f800000u) + 0x00800000u;
        }
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof(u));
        lane[0] |= (u & 0x7f800000u) + 0x00800000u;
    }
    uint32_t any = 0;
    for (int k = 0; k < 8; k++) {
        any |= lane[k];
    }
    return (any & 0x80000000u) != 0;
}

static void nonfinite_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    struct nonfinite_job *j = ctx;
    for (int64_t r = task * ROWS_PER_TASK; r < j->n_rows && r < (task + 1) * ROWS_PER_TASK; r++) {
        const float *xr = j->x + r * j->ld;
        if (!row_nonfinite(xr, j->n)) {
            continue;
        }
        int64_t i = 0;
        while (isfinite(xr[i])) {
            i++;
        }
        int_fast64_t idx = r * j->n + i, cur = atomic_load(&j->first);
        while (idx < cur && !atomic_compare_exchange_weak(&j->first, &cur, idx)) {
        }
        return; // later rows of this task come after idx
    }
}

int64_t imc_cpu_find_nonfinite(const struct imc_exec *ex, const float *x, int64_t ld,
                               int64_t n_rows, int64_t n)
{
    if (n_rows <= 0 || n <= 0) {
        return -1;
    }
    struct nonfinite_job j = {.x = x, .ld = ld, .n_rows = n_rows, .n = n};
    atomic_init(&j.first, INT64_MAX);
    imc_exec_run(ex, n_row_tasks(n_rows), nonfinite_task, &j);
    const int64_t first = (int64_t)atomic_load(&j.first);
    return first == INT64_MAX ? -1 : first;
}
