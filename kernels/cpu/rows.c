/*
 * kernels/cpu/rows: the moves and adds of activations on the pool (kernels/kernels.h: copy,
 * move_rows, add, moe_wsum). Tasks are fixed blocks of rows or elements; each element is one
 * copy, one add or the reference's sequence of roundings, so the bits are the reference's for
 * any thread count. Rows are large at DeepSeek-V3's widths (hundreds of MB per MoE layer): on
 * one thread the other threads would wait.
 */
#include <string.h>

#include "kernels/kernels.h"

#define ROWS_PER_TASK 16
#define ADD_PER_TASK 65536

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void copy_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const struct imc_copy_args *a = ctx;
    const int64_t t1 = min64((task + 1) * ROWS_PER_TASK, a->n_tok);
    for (int64_t t = task * ROWS_PER_TASK; t < t1; t++) {
        for (int64_t h = 0; h < a->n_head; h++) {
            memcpy(a->dst + t * a->d_ld_tok + h * a->d_ld_head,
                   a->src + t * a->s_ld_tok + h * a->s_ld_head, (size_t)a->n * sizeof(float));
        }
    }
}

void imc_cpu_copy(const struct imc_exec *ex, const struct imc_copy_args *a)
{
    if (a->n_tok > 0 && a->n_head > 0 && a->n > 0) {
        imc_exec_run(ex, (a->n_tok + ROWS_PER_TASK - 1) / ROWS_PER_TASK, copy_task, (void *)a);
    }
}

struct rows_job {
    float *dst;
    const float *src;
    const int32_t *src_idx, *dst_idx;
    int64_t n, d;
};

static void rows_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const struct rows_job *j = ctx;
    const int64_t i1 = min64((task + 1) * ROWS_PER_TASK, j->n);
    for (int64_t i = task * ROWS_PER_TASK; i < i1; i++) {
        const int64_t di = j->dst_idx ? j->dst_idx[i] : i, si = j->src_idx ? j->src_idx[i] : i;
        memcpy(j->dst + di * j->d, j->src + si * j->d, (size_t)j->d * sizeof(float));
    }
}

void imc_cpu_move_rows(const struct imc_exec *ex, float *dst, const int32_t *dst_idx,
                       const float *src, const int32_t *src_idx, int64_t n, int64_t d)
{
    if (n > 0 && d > 0) {
        struct rows_job j = {dst, src, src_idx, dst_idx, n, d};
        imc_exec_run(ex, (n + ROWS_PER_TASK - 1) / ROWS_PER_TASK, rows_task, &j);
    }
}

struct add_job {
    float *x;
    const float *y;
    int64_t n_rows, n, ldy;
};

// Elements [task·65536, +65536) of x, flat.
static void add_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const struct add_job *j = ctx;
    const int64_t e1 = min64((task + 1) * ADD_PER_TASK, j->n_rows * j->n);
    for (int64_t e = task * ADD_PER_TASK; e < e1;) {
        const int64_t r = e / j->n, i0 = e % j->n, i1 = min64(j->n, i0 + (e1 - e));
        float *xr = j->x + r * j->n;
        const float *yr = j->y + r * j->ldy;
        for (int64_t i = i0; i < i1; i++) {
            xr[i] += yr[i];
        }
        e += i1 - i0;
    }
}

void imc_cpu_add(const struct imc_exec *ex, float *x, const float *y, int64_t n_rows, int64_t n,
                 int64_t ldy)
{
    if (n_rows > 0 && n > 0) {
        struct add_job j = {x, y, n_rows, n, ldy};
        imc_exec_run(ex, (n_rows * n + ADD_PER_TASK - 1) / ADD_PER_TASK, add_task, &j);
    }
}

struct wsum_job {
    float *y;
    const float *rows, *w, *add;
    const int32_t *pos;
    int64_t n, k, d;
};

// Tokens [task·16, +16): the reference's roundings, a token's row at a time.
static void wsum_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    const struct wsum_job *j = ctx;
    const int64_t t1 = min64((task + 1) * ROWS_PER_TASK, j->n);
    for (int64_t t = task * ROWS_PER_TASK; t < t1; t++) {
        float *yt = j->y + t * j->d;
        for (int64_t s = 0; s < j->k; s++) {
            const float wt = j->w[t * j->k + s];
            const float *src = j->rows + (int64_t)j->pos[t * j->k + s] * j->d;
            for (int64_t i = 0; i < j->d; i++) {
                const float v = wt * src[i];
                yt[i] = s == 0 ? v : yt[i] + v;
            }
        }
        for (int64_t i = 0; j->add && i < j->d; i++) {
            yt[i] += j->add[t * j->d + i];
        }
    }
}

void imc_cpu_moe_wsum(const struct imc_exec *ex, float *y, const float *rows, const int32_t *pos,
                      const float *w, const float *add, int64_t n, int64_t k, int64_t d)
{
    if (n > 0 && d > 0) {
        struct wsum_job j = {y, rows, w, add, pos, n, k, d};
        imc_exec_run(ex, (n + ROWS_PER_TASK - 1) / ROWS_PER_TASK, wsum_task, &j);
    }
}
