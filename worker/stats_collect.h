/*
 * worker/stats_collect: the imatrix collector behind the engine's stats hook (worker/stats.h;
 * DESIGN.md §4 "What each tensor gets", §6 "accumulated per chunk in double").
 *
 * For each (weight, slice) the engine reports rows x [n_rows][n_in]; the collector adds Σx² per
 * column (in double, rows in the order given) and n_rows to a per-chunk partial, through the
 * sqacc entry of the op table the engine hands its hook (kernels/backend.h; the cpu table when
 * called without one). At the end of
 * a chunk, imc_stats_collect_end_chunk folds the partials into the imatrix totals in a fixed
 * order and clears them. Entry shapes follow the weight:
 *   slice == -1 (dense 2D weight, attn_kv_b, output)       n_per_row = n_in, n_mat = 1
 *   slice >= 0, weight 3D (ne[2] > 1: *_exps, MLA 3D k_b/v_b)  n_per_row = ne[0], n_mat = ne[2],
 *       counts per slice (tokens routed to the expert; every token for a head)
 *   slice >= 0, weight 2D (ik-layout attn_k_b/attn_v_b)       n_per_row = ne[0], n_mat = 1:
 *       the per-head sums added over heads (ascending) and the count of one head (the tokens),
 *       as llama-quantize needs nval == ne[0] for a 2D weight. All heads must report the same
 *       number of rows in a chunk.
 *
 * Determinism: each slice's partial is the same sequence of double additions whatever the
 * batching (rows arrive in token order), and the fold runs once per chunk, slices ascending.
 * So the totals are bitwise identical for any batch split and any thread count.
 *
 * Thread safety: on_input may run concurrently for different (weight, slice) pairs (a table lock
 * guards lookups; each slice has its own lock and buffer). Calls for one pair must arrive in
 * token order; the engine's contract (worker/stats.h: one call at a time, fixed order) is
 * stronger. declare, end_chunk and free must not overlap on_input.
 *
 * Memory: one double partial per column per slice seen, i.e. as large as the totals it feeds.
 *
 * On an op table with its own memory (backend.h buf_alloc: the CUDA table) the partials live in
 * that memory as they are summed: each call is one sqacc there, no copy and no wait (the CUDA
 * table launches consecutive ones together: kernels/cuda/table.cu sq_queue), and
 * imc_stats_collect_sync brings them home (one download per block of the table's memory) before
 * the chunk's end folds them. The engine calls it through the hooks' on_sync at the end of each
 * engine call and, releasing that memory, before it frees the table's state. The device then
 * holds as much again as the host partials (in blocks from 1 MiB, doubling, up to 256 MiB).
 */
#ifndef IMC_WORKER_STATS_COLLECT_H
#define IMC_WORKER_STATS_COLLECT_H

#include <stdint.h>

#include "core/status.h"
#include "kernels/backend.h"
#include "model/gguf.h"
#include "model/imatrix_file.h"
#include "worker/stats.h"

struct imc_stats_collect;

// Creates a collector that folds into im (borrowed; must outlive the collector; may already hold
// entries, e.g. from --in-file, which then must have matching shapes). Chunk numbers in messages
// start at im->chunk_count. Free with imc_stats_collect_free. IMC_ERR_NOMEM.
enum imc_status imc_stats_collect_init(struct imc_stats_collect **out, struct imc_imatrix *im);
void imc_stats_collect_free(struct imc_stats_collect *c); // NULL is a no-op

// Hooks for imc_engine_opts.hooks (user = c): imc_stats_collect_add for every call on the
// engine's table, imc_stats_collect_sync for on_sync.
struct imc_stats_hooks imc_stats_collect_hooks(struct imc_stats_collect *c);

// The hook (user = the collector). Adds Σx² of the n_rows rows of x to the chunk partial of
// (w, slice) and n_rows to its count (the cpu table's sqacc, serial). Returns IMC_ERR_NUMERIC
// when x holds a NaN/Inf, logged once naming the tensor, slice, chunk, column and row; the
// collector then stays failed. Returns IMC_ERR_INTERNAL (logged) when the call breaks the
// contract above (n_in != ne[0], slice out of range, slice -1 on a 3D weight) and
// IMC_ERR_FORMAT when im already holds the tensor with a shape that cannot take these values.
// IMC_ERR_NOMEM.
enum imc_status imc_stats_collect_on_input(void *user, const struct imc_tensor_info *w,
                                           int64_t layer, int64_t slice, const float *x,
                                           int64_t n_rows, int64_t n_in);
// The same for rows of stride ldx >= n_in, the sums computed by be->sqacc on ex (be NULL: the
// cpu table, whose sqacc splits columns over ex's pool, or runs serially for ex NULL: the same
// bits either way). ex must not be running another job: the engine's hook passes its pool, idle
// during the call, and its op table (worker/stats.h). On a table with buf_alloc the sums stay in
// its memory until imc_stats_collect_sync (see "Memory"), which checks them then; IMC_ERR_NOMEM
// (logged) when that memory has no room for them. IMC_ERR_INTERNAL (logged) when be's sqacc
// counts other than n_rows rows.
enum imc_status imc_stats_collect_add(struct imc_stats_collect *c, const struct imc_exec *ex,
                                      const struct imc_backend *be, const struct imc_tensor_info *w,
                                      int64_t layer, int64_t slice, const float *x, int64_t ldx,
                                      int64_t n_rows, int64_t n_in);

// Brings the partials summed in the memory of the table be on ex (the one handed to
// imc_stats_collect_add) home, where imc_stats_collect_end_chunk folds them, and clears them
// there; with release also frees that memory (be->buf_free), as the table's state is about to
// go. A no-op when the collector holds nothing in a table's memory. IMC_ERR_NUMERIC when a sum
// is not finite (logged naming the tensor, slice, chunk and column; the collector stays
// failed), IMC_ERR_INTERNAL (logged) when be or ex's state is not the table that holds them, a
// failed copy's status.
enum imc_status imc_stats_collect_sync(struct imc_stats_collect *c, const struct imc_exec *ex,
                                       const struct imc_backend *be, bool release);

// The shape of w's imatrix entry (table above): n_per_row = ne[0]; n_mat = ne[2] for a 3D
// weight, else 1.
void imc_stats_entry_shape(const struct imc_tensor_info *w, int64_t *n_per_row, int64_t *n_mat);

// Creates w's entry in the imatrix now (zero sums, count 0) so that a weight or experts that never
// see a token are still written (DESIGN.md §4: kept with count 0 in GGUF form). Shape by the
// table above (3D → ne[2] matrices, else 1). Errors as imc_imatrix_get_entry.
enum imc_status imc_stats_collect_declare(struct imc_stats_collect *c,
                                          const struct imc_tensor_info *w);

// Folds the chunk partials into the imatrix (entries created as needed), clears them and adds 1
// to im->chunk_count. Returns the collector's earlier failure if any (nothing is folded then),
// IMC_ERR_INTERNAL (logged) when sums are still in a table's memory (no sync since they were
// added),
// IMC_ERR_INTERNAL (logged) when the heads of a 2D weight reported different row counts, or an
// error of imc_imatrix_get_entry.
enum imc_status imc_stats_collect_end_chunk(struct imc_stats_collect *c);

#endif // IMC_WORKER_STATS_COLLECT_H
