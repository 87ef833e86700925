/*
 * coordinator/checkpoint: the resumable state of an `imc imatrix` run (DESIGN.md §6 "Faults":
 * checkpoints every N chunks, atomic; --resume yields the same file as an uninterrupted run).
 *
 * The state holds what the rest of the run needs to continue bit for bit: the exact double sums
 * and counts of the imatrix computed so far (the F32 imatrix written beside it would lose the
 * low bits), the running perplexity sums, the running PPL after each chunk (to reprint the
 * "[i]ppl," line), and a fingerprint of everything that decides the numbers (model, text and
 * its tokens, context, chunk range, output head, attention path). A resume whose fingerprint
 * differs is refused, naming the first field that differs.
 *
 * File "<out>.ckpt" (host byte order, checked by a marker; all integers fixed width):
 *   "IMCCKPT\0" | u32 version (1) | u32 byte-order marker 0x01020304
 *   fingerprint: str model | u64 model_size | str text | u64 text_size | u64 tokens_hash |
 *                i64 n_ctx | i64 from_chunk | i64 n_chunk | u32 process_output | str attn
 *   i64 chunks_done | f64 sum_nll | f64 sum_nll2 | i64 count | f64 ppl[chunks_done]
 *   imatrix: u32 chunk_count | u32 chunk_size | u64 n_datasets | str dataset[n] | u64 n_entries
 *            | n_entries × { str name | i64 n_per_row | i64 n_mat | f64 sums[n_per_row·n_mat]
 *            | f64 counts[n_mat] }
 *   u64 FNV-1a 64 of every byte before it
 * where str = u64 length + bytes (no NUL). Written atomically (core/file.h): a crash leaves the
 * previous checkpoint intact. Memory: the sums take 8 bytes per imatrix value.
 */
#ifndef IMC_COORDINATOR_CHECKPOINT_H
#define IMC_COORDINATOR_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "coordinator/ppl.h"
#include "core/status.h"
#include "model/imatrix_file.h"

// What decides the numbers of a run. Strings are owned (imc_ckpt_fp_free).
struct imc_ckpt_fp {
    char *model;             // model path as resolved by realpath (as given when that fails)
    uint64_t model_size;     // bytes, over all split parts
    char *text;              // calibration text path, resolved likewise
    uint64_t text_size;      // bytes
    uint64_t tokens_hash;    // FNV-1a 64 of the int32 tokens of the chunks the run covers
    int64_t n_ctx;           // tokens per chunk
    int64_t from_chunk;      // first chunk of the text
    int64_t n_chunk;         // chunks the run covers
    uint32_t process_output; // 1 when output.weight is collected
    char *attn;              // attention path name ("absorbed", "non-absorbed", "standard")
};

struct imc_ckpt {
    struct imc_ckpt_fp fp;
    int64_t chunks_done;    // chunks folded into im (0 .. fp.n_chunk)
    struct imc_ppl_acc acc; // running NLL sums after chunks_done chunks
    double *ppl;            // [chunks_done] running PPL after each chunk (owned)
    struct imc_imatrix im;  // the computed imatrix (owned)
};

// Returns "<out>.ckpt" in a new string (free with free()), or NULL when out of memory.
char *imc_ckpt_path(const char *out);

// FNV-1a 64 over n bytes, continuing from h (start with IMC_CKPT_HASH_INIT).
#define IMC_CKPT_HASH_INIT 1469598103934665603ull
uint64_t imc_ckpt_hash(uint64_t h, const void *data, uint64_t n);

// Fills fp->model/text from the paths (copies; realpath when possible) and sizes from the files
// (IMC_ERR_IO, logged, when the text cannot be stat'ed). Other fields are the caller's.
enum imc_status imc_ckpt_fp_paths(struct imc_ckpt_fp *fp, const char *model, uint64_t model_size,
                                  const char *text);
void imc_ckpt_fp_free(struct imc_ckpt_fp *fp); // safe on a zeroed struct

// Returns IMC_OK when a (the checkpoint's, found in path) and b (this run's) agree; otherwise
// logs "<path>: checkpoint written for <field> X, but this run has Y; ..." and returns
// IMC_ERR_ARG.
enum imc_status imc_ckpt_fp_check(const char *path, const struct imc_ckpt_fp *a,
                                  const struct imc_ckpt_fp *b);

// Writes the state atomically to path. ppl holds chunks_done values. IMC_ERR_IO (logged).
enum imc_status imc_ckpt_write(const char *path, const struct imc_ckpt_fp *fp, int64_t chunks_done,
                               const struct imc_ppl_acc *acc, const double *ppl,
                               const struct imc_imatrix *im);

// Reads path into *out (zeroed first; free with imc_ckpt_free). IMC_ERR_IO when unreadable,
// IMC_ERR_FORMAT (logged, naming the cause) for a truncated, corrupt or foreign file.
enum imc_status imc_ckpt_read(const char *path, struct imc_ckpt *out);
void imc_ckpt_free(struct imc_ckpt *c); // safe on a zeroed struct

#endif // IMC_COORDINATOR_CHECKPOINT_H
