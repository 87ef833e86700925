/*
 * model/imatrix_file: the in-memory importance matrix and its two file forms, merge and format
 * conversion (DESIGN.md §4 "imatrix, GGUF form" and "imatrix, legacy .dat").
 *
 * In memory: one entry per weight tensor, keyed by the exact GGUF tensor name, holding raw
 * Σx² per input column for each of n_mat matrices (experts, heads, or 1) and the number of
 * tokens seen per matrix, both in double. Sums and counts only ever add, so merging files is
 * an exact sum (up to double rounding) and dividing sums by counts gives llama.cpp's values.
 *
 * Invariants: entries are sorted by name (strcmp) and names are unique; n_per_row >= 1,
 * n_mat >= 1, n_per_row * n_mat fits int32 (both file forms store it as one); sums and counts
 * are finite and >= 0. Counts may be fractional after a weighted merge.
 *
 * GGUF form, as llama.cpp's tools/imatrix writes it (checked against imatrix.cpp):
 *   keys   general.type = "imatrix", imatrix.datasets (string array), imatrix.chunk_count (u32),
 *          imatrix.chunk_size (u32); no general.architecture.
 *   tensors, per entry in name order: "<name>.in_sum2" F32 ne = [n_per_row, n_mat] (raw Σx²),
 *          then "<name>.counts" F32 ne = [1, n_mat]; a trailing dimension of 1 is dropped
 *          (n_dims 1), as ggml does. Counts are F32 in the file: exact up to 2^24 tokens.
 *   The reader also accepts "<name>.in_sum" (llama.cpp's newer Σx, dropped: imc keeps only
 *   Σx²) and ignores other tensors with a debug message. llama.cpp stores a 3D weight it saw
 *   through a plain matmul (mainline MLA attn_k_b/attn_v_b) as one matrix of ne[0]·ne[2]
 *   values with one count; such an entry is read as it is and meets imc's per-head form
 *   (ne[0] × n_head, equal counts) by broadcast (imc_imatrix_entry_reshape).
 *
 * Legacy .dat form (llama.cpp's save_imatrix_legacy, also ik_llama.cpp's format):
 *   int32 n_entries; per entry (name order): int32 len, name bytes (no NUL), int32 ncall,
 *   int32 nval (= n_per_row·n_mat), float32 values[nval]; trailer: int32 chunk count, int32 len,
 *   dataset name bytes. ncall = ceil(max count / chunk_size) and values = Σx²/count · ncall
 *   per matrix, so a reader that divides by ncall gets the mean of x². See imc_dat_zero_policy
 *   for matrices that saw no token. The form keeps no per-matrix counts and no n_mat. Older
 *   files without the trailer, or with the chunk count only, are read too.
 *
 * Code: this file's API is implemented in imatrix_file.c (memory, merge, naming),
 * imatrix_file_gguf.c and imatrix_file_dat.c.
 */
#ifndef IMC_MODEL_IMATRIX_FILE_H
#define IMC_MODEL_IMATRIX_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

// Chunk size assumed when a .dat file (which does not store it) is read without one: the
// llama-imatrix default context.
#define IMC_IMATRIX_DEFAULT_CHUNK_SIZE 512

struct imc_imatrix_entry {
    char *name;        // GGUF weight tensor name, e.g. "blk.3.ffn_up_exps.weight" (owned)
    int64_t n_per_row; // values per matrix: the weight's ne[0] (input columns)
    int64_t n_mat;     // matrices: n_expert, n_head (3D MLA), or 1
    double *sums;      // [n_mat][n_per_row] raw Σx² (owned)
    double *counts;    // [n_mat] tokens seen per matrix (owned)
    int32_t origin;    // index into imc_imatrix.sources of the file it came from, -1 in memory
};

struct imc_imatrix {
    struct imc_imatrix_entry *entries; // [n_entries], sorted by name
    int64_t n_entries;
    int64_t cap_entries;   // allocated entries
    char **datasets;       // [n_datasets] calibration data names (owned)
    int64_t n_datasets;
    char **sources;        // [n_sources] files read into this imatrix, for messages (owned)
    int64_t n_sources;
    uint32_t chunk_count;  // chunks accumulated
    uint32_t chunk_size;   // tokens per chunk; 0 = unknown
};

// How the .dat writer fills matrices (experts) whose count is 0. Entries where every matrix has
// count 0 are skipped (with a warning) under every policy, as llama.cpp does.
enum imc_dat_zero_policy {
    IMC_DAT_ZERO_ONE = 0,   // llama.cpp's save_imatrix_legacy: store 1·ncall (mean 1.0); default
    IMC_DAT_ZERO_SKIP,      // drop the whole entry when any matrix has count 0
    IMC_DAT_ZERO_ZERO,      // store 0 (the quantizer then ignores those columns' weighting)
    IMC_DAT_ZERO_FILL_MEAN, // store the per-column mean over the matrices that saw tokens
};

enum imc_imatrix_format {
    IMC_IMATRIX_FMT_AUTO = 0, // by the output's extension: ".dat" → dat, otherwise gguf
    IMC_IMATRIX_FMT_GGUF,
    IMC_IMATRIX_FMT_DAT,
    IMC_IMATRIX_FMT_BOTH, // gguf and dat; see imc_imatrix_out_paths for the names
};

// ---- in memory ------------------------------------------------------------------------------

// Empties *im (no allocation).
void imc_imatrix_init(struct imc_imatrix *im);
// Frees everything *im owns and leaves it empty; safe on an empty or zeroed imatrix.
void imc_imatrix_free(struct imc_imatrix *im);

// Returns the entry named name, or NULL. The pointer is valid until the next insertion.
struct imc_imatrix_entry *imc_imatrix_find(const struct imc_imatrix *im, const char *name);

// Returns in *out the entry named name with shape n_per_row × n_mat, creating it zeroed
// (origin -1) when absent. An existing one-matrix entry of n_per_row·n_mat values is reshaped
// (imc_imatrix_entry_reshape); any other existing shape logs "tensor 'name': ..." and returns
// IMC_ERR_FORMAT. IMC_ERR_ARG for a bad shape, IMC_ERR_NOMEM on allocation failure. The
// pointer is valid until the next insertion.
enum imc_status imc_imatrix_get_entry(struct imc_imatrix *im, const char *name, int64_t n_per_row,
                                      int64_t n_mat, struct imc_imatrix_entry **out);

// Views a one-matrix entry of n_per_row·n_mat values as n_mat matrices of n_per_row, each with
// the single count: llama.cpp's "broadcast when loading an old imatrix" (a .dat entry, or a 3D
// dense weight that llama.cpp writes with one count). Lossless for Σx² and the means. Returns
// IMC_ERR_FORMAT (not logged) when e is not one matrix of that many values, IMC_ERR_NOMEM.
enum imc_status imc_imatrix_entry_reshape(struct imc_imatrix_entry *e, int64_t n_per_row,
                                          int64_t n_mat);

// Appends path (copied) to im->sources and makes it the origin of every entry (readers call
// this; messages about an entry then name the file it came from).
enum imc_status imc_imatrix_set_source(struct imc_imatrix *im, const char *path);

// Appends a dataset name (copied).
enum imc_status imc_imatrix_add_dataset(struct imc_imatrix *im, const char *name);

// Adds weight·src into dst: sums and counts of every entry are scaled by weight (>= 0, finite)
// and added; entries only in src are added; datasets are appended; chunk counts add (unscaled:
// the number of chunks actually computed); sources are appended. chunk_size: dst keeps its own
// when set, else takes src's; a disagreement is logged as a warning. A one-matrix entry meets
// a k-matrix entry of as many values by broadcast (imc_imatrix_entry_reshape). Any other shape
// mismatch logs "tensor 'x': 4096x1 in 'A' but 2048x2 in 'B'" and returns IMC_ERR_FORMAT;
// dst is then unchanged (shapes are checked before anything is added).
enum imc_status imc_imatrix_merge(struct imc_imatrix *dst, const struct imc_imatrix *src,
                                  double weight);

// Reads each of paths[0..n-1] (imc_imatrix_read, dat chunk size chunk_size) and merges them in
// order into *out (initialized here) with weights[i] (NULL = all 1). On failure *out is empty.
enum imc_status imc_imatrix_merge_files(struct imc_imatrix *out, const char *const *paths,
                                        const double *weights, int n, uint32_t chunk_size);

// ---- files ----------------------------------------------------------------------------------

// Reads a GGUF imatrix into *out (initialized here). Returns IMC_ERR_IO / IMC_ERR_FORMAT /
// IMC_ERR_NOMEM with one logged line "<path>: <cause>"; *out is then empty.
enum imc_status imc_imatrix_read_gguf(const char *path, struct imc_imatrix *out);
// The same from an image of the file in memory (data borrowed for the call; path names it in
// messages and as the source).
enum imc_status imc_imatrix_read_gguf_memory(const void *data, uint64_t size, const char *path,
                                             struct imc_imatrix *out);
// Writes im as a GGUF imatrix, atomically. Returns IMC_ERR_NUMERIC if a value overflows F32.
enum imc_status imc_imatrix_write_gguf(const struct imc_imatrix *im, const char *path);

// Reads a legacy .dat into *out (initialized here). The file holds means·ncall only; sums are
// rebuilt as values·chunk_size with count ncall·chunk_size per entry (n_mat = 1), exactly as
// llama.cpp's loader does, so per-column means survive to float precision (relative 2^-24) but
// per-expert counts, n_mat and exact sums do not. chunk_size 0 means
// IMC_IMATRIX_DEFAULT_CHUNK_SIZE. An ncall of 0 is read as 1 (values taken as means, as
// llama-quantize does). Errors as for imc_imatrix_read_gguf.
enum imc_status imc_imatrix_read_dat(const char *path, uint32_t chunk_size,
                                     struct imc_imatrix *out);
// Writes im as a legacy .dat, atomically, filling zero-count matrices by policy. The trailer
// holds chunk_count and the last dataset ("" when none). Uses chunk_size (or
// IMC_IMATRIX_DEFAULT_CHUNK_SIZE with a warning when unknown) for ncall.
enum imc_status imc_imatrix_write_dat(const struct imc_imatrix *im, const char *path,
                                      enum imc_dat_zero_policy policy);

// Reads either form, chosen by the file's first 4 bytes ("GGUF" → GGUF, else .dat).
// imc_imatrix_read_memory: the same from an image of the file in memory (borrowed for the call;
// path names it in messages and as the source: the file rank 0 read, coordinator/share.h).
enum imc_status imc_imatrix_read_memory(const void *data, uint64_t size, const char *path,
                                        uint32_t dat_chunk_size, struct imc_imatrix *out);
enum imc_status imc_imatrix_read(const char *path, uint32_t dat_chunk_size,
                                 struct imc_imatrix *out);

// Parses "gguf" | "dat" | "both" | "auto"; returns -1 for anything else.
int imc_imatrix_parse_format(const char *s);
// Parses "one" | "skip" | "zero" | "mean"; returns -1 for anything else.
int imc_imatrix_parse_zero_policy(const char *s);

// Resolves the output file names for out and fmt into new strings (free with free(); NULL when
// that form is not written). AUTO: ".dat" suffix → dat, else gguf (out unchanged). GGUF/DAT:
// out unchanged. BOTH: out with a trailing ".gguf" or ".dat" removed, then ".gguf" and ".dat"
// appended ("x.gguf" → "x.gguf" + "x.dat"; "x" → "x.gguf" + "x.dat").
enum imc_status imc_imatrix_out_paths(const char *out, enum imc_imatrix_format fmt,
                                      char **gguf_path, char **dat_path);
// Writes im to out in fmt (names by imc_imatrix_out_paths); dat uses policy.
enum imc_status imc_imatrix_write(const struct imc_imatrix *im, const char *out,
                                  enum imc_imatrix_format fmt, enum imc_dat_zero_policy policy);

#endif // IMC_MODEL_IMATRIX_FILE_H
