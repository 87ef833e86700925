/*
 * coordinator/sweep: `imc sweep` — quantize a base model with every recipe of a folder, score
 * each quantization against the base (perplexity and KL divergence) and report size, bits per
 * weight, PPL, KLD and same-top-p per recipe (DESIGN.md §1 "sweeps", §3, §4 "Perplexity").
 *
 * Recipes: every regular file of rules_dir whose name does not start with '.', in name order
 * (strcmp, the C locale). The recipe's name is the file name without its last extension
 * ("q2-attn8.rules" → "q2-attn8"); it must start with a letter or digit and hold only letters,
 * digits and . _ + - (it names files and table rows), and two files may not give the same name.
 * A recipe file is a rules file of `imc quantize --rules` (coordinator/quant_rules.h: one
 * `regex=type` per line, first match wins, '#' comments, blank lines) plus directive lines,
 * whose first non-blank character is '!':
 *   !type TYPE        default type of the tensors no rule matches (else the sweep's --type)
 *   !imatrix no|yes   no: quantize this recipe without the imatrix (a baseline); default yes
 * A recipe without any line is valid (every target tensor gets the default type). Errors name
 * the file and line.
 *
 * Work (out_dir; it must be on a file system every rank sees):
 *   1. base: `imc perplexity --kld-save` of the base model on the text, once, on world rank 0
 *      (all ranks together with G > 1, below):
 *      _base.logits (llama.cpp's `_logits_` file), _base.ppl.txt (its output), _base.result.
 *   2. (G = 1) recipes still to do are dealt to the ranks in turn (the j-th pending recipe on
 *      rank j mod size); each rank, alone, quantizes (coordinator/quantize.h, the base's tensors
 *      with the recipe's rules and the imatrix) into <name>.gguf, scores it with
 *      `--kld-base _base.logits` (<name>.kld.txt: the full KLD report), writes <name>.result,
 *      and deletes <name>.gguf unless keep_models.
 *   3. world rank 0 gathers the figures (MPI) and writes results.csv, results.md, results.svg
 *      and prints the Markdown table to `out`.
 * Every file is written atomically (temp + rename, core/file.h); a failed recipe fails the sweep
 * with its name and nothing of step 3 is written.
 *
 * Group size: ranks_per_recipe, or (<= 0) automatic: the smallest divisor G of the ranks whose
 * groups hold the largest model of the sweep (the base, of which every recipe is a quantization)
 * in mem_per_rank each (base bytes / G <= mem per rank). World rank 0 decides and tells every
 * rank (logged). A G that does not divide the ranks, or whose groups cannot hold the base (also
 * when no divisor can), is IMC_ERR_ARG on every rank, logged on world rank 0 with the numbers,
 * before any work. One process: G = 1 (the memory is not checked).
 * Recipe groups (G > 1): step 1 runs on all ranks as one distributed
 * perplexity (automatic layout of the base over the world; world rank 0 writes the files); then
 * the ranks split into groups of G consecutive world ranks, each a world of its own
 * (imc_comm_split_world), and every group in turn claims the first recipe no group has claimed
 * (<name>.claim created with O_CREAT|O_EXCL in out_dir; world rank 0 removes every claim before
 * the groups start and after the gather), quantizes it over its ranks (quantize.h with the
 * group as comm: its rank 0 writes <name>.gguf; an !external recipe runs on that rank only),
 * scores it as one distributed perplexity job against the base logits (automatic layout of the
 * quantized model over G ranks) and writes <name>.result from its rank 0. A group that fails a
 * recipe stops (as a single rank does); the others go on. Results and reports are the same bytes
 * as with G = 1 and as one process (distributed perplexity gives the same figures in every
 * layout).
 * Resume: <name>.result holds a hash (FNV-1a 64) of everything the figures depend on: the
 * recipe file's bytes, its default type and imatrix choice, the imatrix (real path, size,
 * mtime), and the base's key: the base model (real path, size, mtime), the text's bytes, ctx
 * and chunks. A rerun that finds a result with the same hash does not recompute it (logged);
 * another hash (a changed recipe or input) is recomputed. _base.result holds the base key, so
 * _base.logits is reused while the base inputs stay the same. Threads do not enter the hash
 * (the figures do not depend on them).
 *
 * Definitions: size = bytes of the quantized GGUF file; bpw = 8 · (data bytes of the tensors
 * quantize targets, imc_quantize_is_target: every matmul weight, token_embd and output
 * included; norms and the router excluded) / (their elements); PPL ± err = PPL(Q) of the
 * quantized model on the base's chunks with llama-perplexity's uncertainty; KLD ± err = the mean
 * KL divergence to the base per scored token; same top p = % of scored tokens whose most likely
 * token is the base's (llama-perplexity's "Same top p"), ± sqrt(p(1-p)/(N-1)).
 *
 * results.csv: header `recipe,type,imatrix,size_bytes,bpw,ppl,ppl_err,kld,kld_err,same_top_p,
 * same_top_p_err` (same_top_p in %), one row per recipe in recipe order, numbers as %.9g.
 * results.md: the base line and a table of the same figures. results.svg: PPL (with error bars and
 * the base's PPL as a dashed line) and mean KLD (log scale) against size, one labelled point per
 * recipe, hand-written SVG 1.1.
 *
 * MPI: world rank 0 reads the recipes, the text and the imatrix (init; coordinator/share.h) and
 * sends them (the recipes' bytes, the keys, the imatrix's bytes, which every rank quantizes
 * from); only the base model and out_dir must be visible on every rank. Every wait runs under
 * the watchdog (IMC_MPI_TIMEOUT). The waits that last as long as another rank's work of one
 * process are fed by that rank's heartbeat (mpi/beat.h), sent on real progress only (a batch
 * of chunks scored, a job of rows quantized, a tensor written, an external quantizer's output
 * growing): with G = 1 the other ranks' wait for the base on world rank 0; the final gather
 * (world rank 0 waits for each rank's last recipe, the others for rank 0's); with G > 1 a
 * group's wait for its rank 0 to quantize and write the model (its beats also count as the
 * waiting ranks' own progress towards the gather). So slow work that progresses may last any
 * time, while a rank that is alive but stuck (or stopped) ends the job after IMC_MPI_TIMEOUT
 * seconds with "gave up after N s waiting for progress from world rank R (what it was doing)".
 * The other waits (the distributed base, a group's quantize and perplexity, its claims) are
 * watched per message as in imatrix. A rank that dies ends the job through the launcher
 * (mpirun, srun --kill-on-bad-exit).
 */
#ifndef IMC_COORDINATOR_SWEEP_H
#define IMC_COORDINATOR_SWEEP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "kernels/kernels.h"
#include "types/types.h"
#include "worker/engine.h"

struct imc_comm;

struct imc_sweep_opts {
    const char *base;      // base GGUF model (usually f32/f16/bf16)
    const char *imatrix;   // imatrix file, or NULL (then every recipe runs without one)
    const char *rules_dir; // folder of recipe files
    const char *text;      // text to score
    const char *out_dir;   // where everything goes ("." by default; created if missing)
    enum imc_type type;    // default type of recipes without !type
    int64_t n_ctx;         // tokens per chunk (0: perplexity's default)
    int64_t max_chunks;    // <= 0: all chunks
    int n_threads;         // threads per rank (>= 1)
    enum imc_matmul_mode matmul; // how base and recipes multiply quantized weights (default q8)
    enum imc_device device;      // where the engines run (default auto)
    bool experts_on_cpu;         // --experts-on cpu (worker/engine.h experts_on_cpu)
    bool host_exchange;          // --exchange host (worker/engine.h host_exchange)
    bool keep_models;      // keep <name>.gguf after scoring
    struct imc_comm *comm; // MPI job (recipes spread over its world), or NULL: one process
    int64_t ranks_per_recipe; // G: ranks per recipe group (<= 0: automatic, see below)
    double mem_per_rank_gib;  // memory a rank may give a model, GiB (<= 0: the node's memory
                              // divided by its ranks)
};

// Fills o with the defaults: out_dir ".", type q8_0, 1 thread, all chunks.
void imc_sweep_opts_default(struct imc_sweep_opts *o);

struct imc_sweep; // opaque: the recipes and the resolved inputs

// Lists and parses the recipes, resolves the input keys and makes sure out_dir exists and is
// writable; no MPI, no output. Returns a new sweep in *out (free with imc_sweep_free). Errors,
// logged once: IMC_ERR_ARG (no recipe, a bad recipe naming file:line, clashing names),
// IMC_ERR_IO (unreadable input, out_dir not creatable or writable), IMC_ERR_NOMEM.
enum imc_status imc_sweep_init(struct imc_sweep **out, const struct imc_sweep_opts *o);
void imc_sweep_free(struct imc_sweep *s); // NULL is a no-op
int64_t imc_sweep_n_recipes(const struct imc_sweep *s);
const char *imc_sweep_recipe_name(const struct imc_sweep *s, int64_t i);

// Runs it (collective over o->comm when set). The Markdown table goes to out on world rank 0.
// Errors: those of quantize and perplexity (logged where found), plus IMC_ERR_ARG naming each
// failed recipe; IMC_ERR_MPI.
enum imc_status imc_sweep_run(struct imc_sweep *s, FILE *out);

#endif // IMC_COORDINATOR_SWEEP_H
