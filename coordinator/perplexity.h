/*
 * coordinator/perplexity: the `imc perplexity` run (DESIGN.md §3, §4 "Perplexity"): text →
 * chunks → forward passes → scores → report, following llama-perplexity.
 *
 * Modes:
 *   plain          per-chunk running PPL "[1]12.3456,[2]...," then
 *                  "Final estimate: PPL = %.4f +/- %.5f" (both to `out`)
 *   kld_save       as plain, and writes llama.cpp's `_logits_` base file (coordinator/kld.h)
 *   kld_base       reads such a file, scores the new model against it: a per-chunk table and the
 *                  llama-perplexity KL-divergence report. The chunks and tokens come from the
 *                  file; a text, if given, must tokenize to the same tokens; n_ctx defaults to
 *                  the file's and must equal it when given.
 * Several chunks go through one engine call when n_batch >= 2·n_ctx (n_batch / n_ctx of them); a
 * chunk is never split. Scores are accumulated in chunk order in double, so the output does not
 * depend on n_batch or the thread count.
 *
 * Invariants: progress (stderr) and informational logs never go to `out`; on any failure no
 * kld_save file is left behind.
 */
#ifndef IMC_COORDINATOR_PERPLEXITY_H
#define IMC_COORDINATOR_PERPLEXITY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/pulse.h"
#include "core/status.h"
#include "numa/plan.h"
#include "worker/engine.h"

struct imc_comm;

struct imc_perplexity_opts {
    const char *model;       // GGUF path
    const char *text;        // text path; may be NULL with kld_base
    int64_t n_ctx;           // tokens per chunk; 0 = default: 512 (n_ctx_train if smaller),
                             //   or the kld_base file's
    int64_t max_chunks;      // <= 0: all chunks
    int64_t n_batch;         // tokens per engine call (default 2048)
    int n_threads;           // engine threads (>= 1)
    const char *kld_save;    // write base log-probs here, or NULL
    const char *kld_base;    // compare against this base file, or NULL
    bool quiet;              // no progress lines
    enum imc_attn_path attn; // deepseek2 attention path
    enum imc_matmul_mode matmul; // quantized weights: q8 activations (default) or f32
    enum imc_device device;      // where the engine runs (default auto)
    bool experts_on_cpu;         // --experts-on cpu (worker/engine.h experts_on_cpu)
    bool host_exchange;          // --exchange host (worker/engine.h host_exchange)
    const struct imc_backend *backend; // tests: the engines' op table (NULL: by device)
    // MPI job (coordinator/dist.h): NULL or a world of one rank runs in this process. With more
    // ranks, comm must be split into layout already; only world rank 0 prints to `out`, reads
    // the text and kld_base (each chunk's base rows go to the rank that scores the chunk, round
    // by round) and writes kld_save.
    const struct imc_comm *comm;
    struct imc_layout layout;
    // Called after every batch of chunks (on every rank of an MPI job): proof of progress for
    // ranks that wait for this run (mpi/beat.h). Default: none.
    struct imc_pulse pulse;
};

// Fills o with the defaults (n_ctx 0, all chunks, n_batch 2048, 1 thread, AUTO path).
void imc_perplexity_opts_default(struct imc_perplexity_opts *o);

struct imc_perplexity_result {
    double ppl;      // exp(mean nll) of the model (PPL(Q) in kld_base mode)
    double ppl_err;  // its ± (llama-perplexity's formula)
    int64_t n_chunk; // chunks scored
    int64_t n_ctx;   // tokens per chunk used
    // kld_base mode only (0 otherwise):
    double ppl_base, ppl_base_err; // PPL of the base distributions (decoded) and its ±
    double kld, kld_err;           // mean KL divergence to the base and its ±
    double same_top, same_top_err; // fraction of tokens whose top token agrees with the base
};

// Runs the evaluation and prints the results to out (stdout). Every failure is logged once,
// naming the file and cause: IMC_ERR_ARG (bad sizes: ctx beyond the model's n_ctx_train, text
// shorter than 2·ctx, a base file of another vocabulary/context/text), IMC_ERR_IO,
// IMC_ERR_FORMAT, IMC_ERR_NUMERIC, IMC_ERR_NOMEM; under MPI also IMC_ERR_MPI, IMC_ERR_UNSUPPORTED.
// res may be NULL; under MPI it is filled on world rank 0 only.
enum imc_status imc_perplexity_run(const struct imc_perplexity_opts *o, FILE *out,
                                   struct imc_perplexity_result *res);

#endif // IMC_COORDINATOR_PERPLEXITY_H
