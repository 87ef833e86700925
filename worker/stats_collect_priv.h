/*
 * worker/stats_collect_priv: the collector's state, shared by stats_collect.c (the table of
 * partials, the fold) and stats_collect_dev.c (the partials kept in an op table's memory). Not
 * part of the worker API (worker/stats_collect.h).
 *
 * Where a slice's chunk sums live: on host tables in sum, always. On a table with its own
 * memory (backend.h buf_alloc: the CUDA table) in dsum, a slot of one of the collector's blocks
 * in that memory, from the first call of a sync period (the slot then goes "on_dev": sum is
 * stale) to the next imc_stats_collect_sync, which brings every on_dev slot's sums home into sum
 * (overwriting it: the device held the whole sequence of additions) and zeroes the slots.
 * Invariant: a slot that is not on_dev holds zeros, so a slice whose host partial is still zero
 * (rows == 0: the first call of a chunk) starts on the device with nothing to copy; one that is
 * not (a chunk spanning several engine calls) has its host sums uploaded first. The sums are
 * then the same double additions, in the same order, as on the host: the same bits.
 */
#ifndef IMC_WORKER_STATS_COLLECT_PRIV_H
#define IMC_WORKER_STATS_COLLECT_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/stats_collect.h"

#define SCOL_MAX_BLOCKS 32
#define SCOL_FIRST_BLOCK ((size_t)1 << 20)   // bytes of the first block; then doubling
#define SCOL_LARGEST_BLOCK ((size_t)1 << 28) // ... up to this (or one slice, if larger)
#define SCOL_ALIGN 256                       // slot alignment in a block (bytes)

struct slice_acc {
    pthread_mutex_t lock; // serializes accumulation into this slice
    double *sum;          // [n_per_row] Σx² of this chunk (host; stale while on_dev)
    double rows;          // rows of this chunk (always on the host)
    double *dsum;         // [n_per_row] its slot in the table's memory, NULL until used there
    int blk;              // block of dsum
    bool on_dev;          // dsum holds the chunk's sums (see above)
};

struct tensor_acc {
    char *name;               // weight name (owned)
    int64_t n_per_row;        // ne[0]
    int64_t n_mat;            // matrices of the imatrix entry
    bool fold_heads;          // 2D weight reported per head: slices add into one matrix
    struct slice_acc **slice; // [n_slice] (NULL until seen); n_mat of them unless fold_heads
    int64_t n_slice;
};

// A block of the table's memory holding slots; [lo, hi) spans the slots gone on_dev since the
// last sync (lo == hi: none).
struct scol_block {
    char *p;
    size_t cap, used;
    size_t lo, hi;
};

// The blocks of one op table's memory (all of a collector's device slots live in one table's).
struct scol_dev {
    const struct imc_backend *be; // the table (NULL: no blocks)
    const void *ctx;              // its state, compared only
    struct scol_block blk[SCOL_MAX_BLOCKS];
    int n_blk;
    int64_t n_on_dev; // slices on_dev
    double *stage;    // host staging of one block's span (owned)
    size_t stage_cap; // bytes
};

struct imc_stats_collect {
    struct imc_imatrix *im;    // borrowed totals
    pthread_mutex_t lock;      // guards the table, slice arrays, blocks and the failure state
    struct tensor_acc **table; // open addressing by name hash, [cap] (power of two)
    int64_t cap;
    int64_t n;
    int64_t chunk;          // index of the chunk being collected
    enum imc_status failed; // first failure (sticky)
    bool told_2d;           // the 2D MLA note was logged
    struct scol_dev dev;    // partials in an op table's memory
};

// Records the first failure; returns st.
enum imc_status scol_fail(struct imc_stats_collect *c, enum imc_status st);
// The first j < n with sum[j] not finite, or -1.
int64_t scol_first_nonfinite(const double *sum, int64_t n);

// Adds the rows of x to a's chunk sums in the memory of the table be (which has buf_alloc) on
// ex: a's slot there taken on first use, its host sums uploaded when the chunk already has some
// (see above). *count gets the rows be's sqacc counted. Takes c->lock and a->lock itself.
// IMC_ERR_NOMEM (device memory, logged naming w and the bytes), IMC_ERR_INTERNAL (a second
// table's memory while the first still holds sums), a failed upload's status.
enum imc_status scol_dev_add(struct imc_stats_collect *c, struct slice_acc *a,
                             const struct imc_exec *ex, const struct imc_backend *be,
                             const struct imc_tensor_info *w, int64_t n_per_row, const float *x,
                             int64_t ldx, int64_t n_rows, int64_t *count);

#endif // IMC_WORKER_STATS_COLLECT_PRIV_H
