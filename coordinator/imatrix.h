/*
 * coordinator/imatrix: the `imc imatrix` run (DESIGN.md §3, §4 "What each tensor gets", §6
 * determinism and faults): text → chunks → forward passes whose stats hooks feed the collector
 * (worker/stats_collect.h) → the imatrix, written in llama.cpp's GGUF and/or legacy .dat form,
 * with the running PPL of the calibration text on the side, as llama-imatrix does.
 *
 * What is collected: the input of every matmul weight the engine reports (worker/stats.h), so
 * MLA attn_k_b (q_nope per head), attn_v_b (õ per head) and attn_kv_b (the latent c) all come
 * from one run whichever attention path computes; routed experts per expert with their token
 * counts. output.weight (token_embd.weight when tied) only with process_output. Every weight
 * the engine reports is declared before the first chunk, so experts that never get a token are
 * written with count 0 (GGUF form) and appear in the coverage table (coordinator/coverage.h).
 * A 2D (ik-layout) attn_k_b/attn_v_b gets ne[0] values, the per-head sums added over heads; the
 * log says that `imc mla-3d` gives per-head data.
 *
 * Output file: imatrix.datasets = [text path as given] (+ those of the --in-file files),
 * imatrix.chunk_count = chunks computed (+ in-files'), imatrix.chunk_size = ctx, plus the
 * coverage keys; in-files are merged (exact double sums, optional weights) at every write.
 *
 * Determinism: several chunks share one engine call when n_batch >= 2·ctx; the hook calls are
 * split per chunk (coordinator/imatrix_priv.h) so that every chunk is accumulated alone and
 * folded in chunk order, and the engine's results per token do not depend on the other tokens
 * of a call or on the thread count. Output bytes therefore do not depend on n_batch, the
 * thread count, or on a stop and --resume.
 *
 * Checkpoints: with save_every N, after every N-th chunk the imatrix is written to the output
 * (atomically, as a partial result) and the exact state to "<out>.ckpt"
 * (coordinator/checkpoint.h). resume continues from it (a missing checkpoint starts from the
 * first chunk with a warning; a checkpoint of other options is refused). The checkpoint is
 * removed when the run completes.
 *
 * Streams: stdout gets "[i]ppl," per chunk, "Final estimate: PPL = %.4f +/- %.5f" and the
 * coverage table; stderr gets logs and progress.
 */
#ifndef IMC_COORDINATOR_IMATRIX_H
#define IMC_COORDINATOR_IMATRIX_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "model/imatrix_file.h"
#include "numa/plan.h"
#include "worker/engine.h"

struct imc_comm;

struct imc_imatrix_in_file {
    const char *path; // imatrix file, GGUF or .dat (borrowed)
    double weight;    // multiplies its sums and counts (>= 0)
};

struct imc_imatrix_opts {
    const char *model;  // GGUF path
    const char *text;   // calibration text path
    const char *out;    // output name (imc_imatrix_out_paths with format)
    int64_t n_ctx;      // tokens per chunk; 0 = 512 (n_ctx_train if smaller)
    int64_t max_chunks; // <= 0: all chunks of the text (after from_chunk)
    int64_t from_chunk; // skip this many chunks of the text (>= 0)
    int64_t n_batch;    // tokens per engine call (default 2048); >= 2·ctx: several chunks
    int n_threads;      // engine threads (>= 1)
    int64_t save_every; // checkpoint every N chunks; 0 = never
    bool resume;        // continue from "<out>.ckpt"
    const struct imc_imatrix_in_file *in_files; // [n_in_files] merged into the output (borrowed)
    int n_in_files;
    enum imc_imatrix_format format;    // gguf | dat | both | auto (by the extension)
    enum imc_dat_zero_policy dat_zero; // .dat policy for experts with no token
    bool process_output;               // also collect output.weight
    bool parse_special;                // tokenize special-token texts in the text
    bool quiet;                        // no progress lines
    enum imc_attn_path attn;           // deepseek2 attention path
    enum imc_matmul_mode matmul;       // quantized weights: q8 activations (default) or f32
    enum imc_device device;            // where the engine runs (default auto)
    bool experts_on_cpu;               // --experts-on cpu (worker/engine.h experts_on_cpu)
    bool host_exchange;                // --exchange host (worker/engine.h host_exchange)
    const struct imc_backend *backend; // tests: the engines' op table (NULL: by device)
    // MPI job (coordinator/imatrix_dist.c): NULL runs in this process. Otherwise comm must be
    // split into layout already; world rank 0 is the coordinator: it alone reads the in-files
    // and checkpoints, prints to `out`, and writes the outputs.
    const struct imc_comm *comm;
    struct imc_layout layout;
};

// Fills o with the defaults (n_batch 2048, 1 thread, gguf by extension, dat policy "one",
// layout 1x1x1).
void imc_imatrix_opts_default(struct imc_imatrix_opts *o);

struct imc_imatrix_result {
    double ppl;      // final running PPL of the calibration text
    double ppl_err;  // its ± (llama-perplexity's formula)
    int64_t n_chunk; // chunks in the run (resumed ones included)
    int64_t n_ctx;   // tokens per chunk
};

// Runs it (under MPI: collectively, every rank with the same options; `out` and res matter on
// world rank 0 only). Every failure is logged once where found and returned: IMC_ERR_ARG (bad
// sizes: ctx, too little text, from_chunk beyond the text, a checkpoint of other options, an
// in-file whose shapes do not fit), IMC_ERR_IO (unreadable input, unwritable output — checked
// before the first chunk; no partial output file is left), IMC_ERR_FORMAT, IMC_ERR_NUMERIC,
// IMC_ERR_NOMEM; under MPI also IMC_ERR_MPI. A failure on one rank leaves the others waiting:
// end the job with imc_fatal. res may be NULL.
enum imc_status imc_imatrix_run(const struct imc_imatrix_opts *o, FILE *out,
                                struct imc_imatrix_result *res);

#endif // IMC_COORDINATOR_IMATRIX_H
