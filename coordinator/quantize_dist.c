/*
 * coordinator/quantize_dist: `imc quantize` over the ranks of an MPI job (quantize_priv.h).
 *
 * Every rank plans every tensor alike, so the assignment needs no communication. Each rank
 * quantizes the rows of its tensors; the bytes go to world rank 0 as one message per tensor
 * (tag = tensor index, mod the tag range; receives are posted up front in tensor order and the
 * senders send in the same order, so equal tags still match the right tensor), and rank 0 alone
 * writes the file. Rank 0 tests its receives between its own jobs, so a sender finishes as soon
 * as its rows are done. The output bytes equal a one-process run's: a row's bytes depend only on
 * its input and weights, never on who computed it.
 */
#include <stdlib.h>

#include "coordinator/quantize_priv.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/xfer.h"

struct imc_qdist {
    const struct imc_comm *c; // borrowed
    struct imc_qtensor *tens; // [n] borrowed
    int64_t n;
    struct imc_xfer **x; // [n] rank 0: receive per remote tensor, else NULL (owned)
    bool *done;          // [n] receive completed (rank 0)
};

struct load_item {
    int64_t index;
    uint64_t elems;
};

static int by_elems_desc(const void *a, const void *b)
{
    const struct load_item *x = a, *y = b;
    if (x->elems != y->elems) {
        return x->elems < y->elems ? 1 : -1;
    }
    return (x->index > y->index) - (x->index < y->index);
}

enum imc_status imc_qdist_assign(struct imc_qtensor *tens, int64_t n, int size)
{
    struct load_item *items = calloc((size_t)n + 1, sizeof(*items));
    uint64_t *load = calloc((size_t)size, sizeof(*load));
    if (!items || !load) {
        free(items);
        free(load);
        IMC_LOG_ERR("quantize: out of memory assigning %lld tensors to %d ranks", (long long)n,
                    size);
        return IMC_ERR_NOMEM;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        tens[i].owner = 0;
        if (tens[i].convert) {
            items[k++] = (struct load_item){i, (uint64_t)tens[i].t->ne[0] * tens[i].n_rows};
        }
    }
    qsort(items, (size_t)k, sizeof(*items), by_elems_desc);
    for (int64_t j = 0; j < k; j++) {
        int best = 0;
        for (int r = 1; r < size; r++) {
            best = load[r] < load[best] ? r : best;
        }
        tens[items[j].index].owner = best;
        load[best] += items[j].elems;
    }
    free(items);
    free(load);
    return IMC_OK;
}

static void qdist_free(struct imc_qdist *d)
{
    if (d) {
        free(d->x);
        free(d->done);
        free(d);
    }
}

enum imc_status imc_qdist_start(const struct imc_comm *c, struct imc_qtensor *tens, int64_t n,
                                struct imc_qdist **out)
{
    struct imc_qdist *d = calloc(1, sizeof(*d));
    if (!d || !(d->x = calloc((size_t)n + 1, sizeof(*d->x))) ||
        !(d->done = calloc((size_t)n + 1, sizeof(*d->done)))) {
        qdist_free(d);
        IMC_LOG_ERR("quantize: out of memory for the transfers of %lld tensors", (long long)n);
        return IMC_ERR_NOMEM;
    }
    d->c = c;
    d->tens = tens;
    d->n = n;
    *out = d;
    if (imc_comm_rank(c) != 0) {
        return IMC_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        const struct imc_qtensor *q = &tens[i];
        if (!q->convert || q->owner == 0) {
            continue;
        }
        enum imc_status st = imc_xfer_irecv_bytes(c, IMC_GROUP_WORLD, q->owner, imc_xfer_tag(c, i),
                                                  q->out, (size_t)imc_qtensor_bytes(q), &d->x[i]);
        if (st != IMC_OK) {
            *out = NULL;
            imc_qdist_finish(d, false);
            return st;
        }
    }
    return IMC_OK;
}

enum imc_status imc_qdist_poll(void *dist)
{
    struct imc_qdist *d = dist;
    for (int64_t i = 0; i < d->n; i++) {
        if (d->x[i] && !d->done[i]) {
            IMC_TRY(imc_xfer_test(d->x[i], &d->done[i]));
        }
    }
    return IMC_OK;
}

// Rank != 0: sends this rank's tensors in index order, one at a time.
static enum imc_status send_own(struct imc_qdist *d)
{
    const int rank = imc_comm_rank(d->c);
    for (int64_t i = 0; i < d->n; i++) {
        const struct imc_qtensor *q = &d->tens[i];
        if (!q->convert || q->owner != rank) {
            continue;
        }
        struct imc_xfer *x = NULL;
        IMC_TRY(imc_xfer_isend_bytes(d->c, IMC_GROUP_WORLD, 0, imc_xfer_tag(d->c, i), q->out,
                                     (size_t)imc_qtensor_bytes(q), &x));
        IMC_TRY(imc_xfer_wait(x));
    }
    return IMC_OK;
}

enum imc_status imc_qdist_finish(struct imc_qdist *d, bool ok)
{
    if (!d) {
        return IMC_OK;
    }
    enum imc_status st = IMC_OK;
    if (ok && imc_comm_rank(d->c) != 0) {
        st = send_own(d);
    }
    // rank 0: wait for every receive (imc_xfer_wait frees each handle). After a failure the
    // caller ends the job (imc_fatal); the receives still pending are cancelled so that the
    // output buffers can be freed.
    for (int64_t i = 0; i < d->n; i++) {
        if (ok && st == IMC_OK) {
            st = imc_xfer_wait(d->x[i]);
        } else {
            imc_xfer_cancel(d->x[i]);
        }
        d->x[i] = NULL;
    }
    qdist_free(d);
    return st;
}
