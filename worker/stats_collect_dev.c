/*
 * worker/stats_collect_dev: the collector's chunk sums kept in an op table's memory (the CUDA
 * table's device memory) between syncs, so a statistics call is one sqacc on the device with no
 * copy and no wait; imc_stats_collect_sync brings them home, one download per block. The rules:
 * worker/stats_collect_priv.h.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kernels/backend.h"
#include "worker/stats_collect_priv.h"

// A slot of bytes in the last block, or a new block (zeroed). Called with c->lock held.
static enum imc_status take_slot(struct imc_stats_collect *c, const struct imc_exec *ex,
                                 const struct imc_backend *be, const struct imc_tensor_info *w,
                                 size_t bytes, struct slice_acc *a)
{
    struct scol_dev *d = &c->dev;
    const size_t need = (bytes + SCOL_ALIGN - 1) / SCOL_ALIGN * SCOL_ALIGN;
    struct scol_block *b = d->n_blk ? &d->blk[d->n_blk - 1] : NULL;
    if (!b || b->cap - b->used < need) {
        size_t cap = b ? 2 * b->cap : SCOL_FIRST_BLOCK;
        cap = cap > SCOL_LARGEST_BLOCK ? SCOL_LARGEST_BLOCK : cap;
        cap = cap < need ? need : cap;
        void *p = d->n_blk < SCOL_MAX_BLOCKS ? be->buf_alloc(imc_exec_backend_ctx(ex), cap) : NULL;
        if (!p) {
            IMC_LOG_ERR("stats collector: tensor '%s': no room in the %s table's memory for the "
                        "chunk sums (%zu bytes in a block of %zu; %d blocks held)",
                        w->name, be->name, bytes, cap, d->n_blk);
            return IMC_ERR_NOMEM;
        }
        const enum imc_status st = be->zero(ex, p, cap);
        if (st != IMC_OK) {
            be->buf_free(imc_exec_backend_ctx(ex), p);
            return st;
        }
        b = &d->blk[d->n_blk++];
        *b = (struct scol_block){.p = p, .cap = cap};
    }
    a->dsum = (double *)(void *)(b->p + b->used);
    a->blk = (int)(b - d->blk);
    b->used += need;
    return IMC_OK;
}

// Binds the collector's device slots to be's memory on ex (c->lock held).
static enum imc_status bind_table(struct imc_stats_collect *c, const struct imc_exec *ex,
                                  const struct imc_backend *be, const struct imc_tensor_info *w)
{
    struct scol_dev *d = &c->dev;
    const void *ctx = imc_exec_backend_ctx(ex);
    if (d->n_blk == 0) {
        d->be = be;
        d->ctx = ctx;
    } else if (d->be != be || d->ctx != ctx) {
        IMC_LOG_ERR("stats collector: tensor '%s' reported on the %s table's memory while the "
                    "%s table's still holds sums (sync missing)",
                    w->name, be->name, d->be->name);
        return IMC_ERR_INTERNAL;
    }
    return IMC_OK;
}

enum imc_status scol_dev_add(struct imc_stats_collect *c, struct slice_acc *a,
                             const struct imc_exec *ex, const struct imc_backend *be,
                             const struct imc_tensor_info *w, int64_t n_per_row, const float *x,
                             int64_t ldx, int64_t n_rows, int64_t *count)
{
    const size_t bytes = (size_t)n_per_row * sizeof(double);
    pthread_mutex_lock(&c->lock);
    enum imc_status st = bind_table(c, ex, be, w);
    if (st == IMC_OK && !a->dsum) {
        st = take_slot(c, ex, be, w, bytes, a);
    }
    pthread_mutex_unlock(&c->lock);
    if (st != IMC_OK) {
        return st;
    }
    pthread_mutex_lock(&a->lock);
    if (!a->on_dev && a->rows > 0) { // the chunk's earlier sums: on top of them, in order
        st = be->upload(ex, a->dsum, a->sum, bytes);
    }
    if (st == IMC_OK && !a->on_dev) {
        pthread_mutex_lock(&c->lock);
        struct scol_block *b = &c->dev.blk[a->blk];
        const size_t lo = (size_t)((char *)a->dsum - b->p), hi = lo + bytes;
        b->lo = b->lo == b->hi ? lo : b->lo < lo ? b->lo : lo;
        b->hi = b->hi > hi ? b->hi : hi;
        c->dev.n_on_dev++;
        a->on_dev = true;
        pthread_mutex_unlock(&c->lock);
    }
    if (st == IMC_OK) {
        be->sqacc(ex, a->dsum, count, x, ldx, n_rows, n_per_row);
        a->rows += (double)*count;
    }
    pthread_mutex_unlock(&a->lock);
    return st;
}

// Copies the on_dev slots of block k home from its span, from byte lo, staged at d->stage;
// checks them.
static enum imc_status take_home(struct imc_stats_collect *c, int k, size_t lo)
{
    const struct scol_block *b = &c->dev.blk[k];
    enum imc_status st = IMC_OK;
    for (int64_t i = 0; i < c->cap; i++) {
        const struct tensor_acc *t = c->table[i];
        for (int64_t s = 0; t && s < t->n_slice; s++) {
            struct slice_acc *a = t->slice[s];
            if (!a || !a->on_dev || a->blk != k) {
                continue;
            }
            const char *src = (const char *)c->dev.stage + ((char *)a->dsum - b->p - lo);
            memcpy(a->sum, src, (size_t)t->n_per_row * sizeof(double));
            a->on_dev = false;
            c->dev.n_on_dev--;
            const int64_t bad = scol_first_nonfinite(a->sum, t->n_per_row);
            if (bad >= 0 && st == IMC_OK) {
                IMC_LOG_ERR("tensor '%s' (slice %" PRId64 "), chunk %" PRId64 ": non-finite sum "
                            "of squares in column %" PRId64 " (summed in the %s table's memory)",
                            t->name, t->fold_heads || t->n_mat > 1 ? s : -1, c->chunk, bad,
                            c->dev.be->name);
                st = IMC_ERR_NUMERIC;
            }
        }
    }
    return st;
}

// Brings block k's span home and zeroes it there.
static enum imc_status sync_block(struct imc_stats_collect *c, const struct imc_exec *ex, int k)
{
    struct scol_dev *d = &c->dev;
    struct scol_block *b = &d->blk[k];
    const size_t span = b->hi - b->lo;
    if (span == 0) {
        return IMC_OK;
    }
    if (span > d->stage_cap) {
        double *p = realloc(d->stage, span);
        if (!p) {
            IMC_LOG_ERR("stats collector: out of memory (%zu bytes of staging)", span);
            return IMC_ERR_NOMEM;
        }
        d->stage = p;
        d->stage_cap = span;
    }
    IMC_TRY(d->be->download(ex, d->stage, b->p + b->lo, span));
    IMC_TRY(d->be->zero(ex, b->p + b->lo, span));
    const size_t lo = b->lo;
    b->lo = b->hi = 0;
    return take_home(c, k, lo);
}

static void release_blocks(struct imc_stats_collect *c, const struct imc_exec *ex)
{
    struct scol_dev *d = &c->dev;
    for (int64_t i = 0; i < c->cap; i++) {
        const struct tensor_acc *t = c->table[i];
        for (int64_t s = 0; t && s < t->n_slice; s++) {
            if (t->slice[s]) {
                t->slice[s]->dsum = NULL;
                t->slice[s]->on_dev = false;
            }
        }
    }
    for (int k = 0; k < d->n_blk; k++) {
        d->be->buf_free(imc_exec_backend_ctx(ex), d->blk[k].p);
    }
    d->n_blk = 0;
    d->n_on_dev = 0;
    d->be = NULL;
    d->ctx = NULL;
    free(d->stage);
    d->stage = NULL;
    d->stage_cap = 0;
}

enum imc_status imc_stats_collect_sync(struct imc_stats_collect *c, const struct imc_exec *ex,
                                       const struct imc_backend *be, bool release)
{
    struct scol_dev *d = &c->dev;
    if (d->n_blk == 0) {
        return IMC_OK;
    }
    if (d->be != be || d->ctx != imc_exec_backend_ctx(ex)) {
        IMC_LOG_ERR("stats collector: sync on the %s table, but the sums are in the %s table's "
                    "memory",
                    be->name, d->be->name);
        return scol_fail(c, IMC_ERR_INTERNAL);
    }
    enum imc_status st = IMC_OK;
    for (int k = 0; k < d->n_blk && st == IMC_OK; k++) {
        st = sync_block(c, ex, k);
    }
    if (release) {
        release_blocks(c, ex);
    }
    return st == IMC_OK ? IMC_OK : scol_fail(c, st);
}
