/*
 * coordinator/sweep_priv: what the sources of `imc sweep` share (sweep.c: the run;
 * sweep_recipe.c: recipes, keys and result files; sweep_report.c: csv, md, svg). Not for other
 * modules.
 *
 * Invariants: after imc_sweep_init every recipe has parsed rules, a default type and its hash;
 * recipes are in name order and their names are unique and file-name safe. struct
 * imc_sweep_figures is plain data, sent between ranks as bytes (all ranks run the same binary).
 */
#ifndef IMC_COORDINATOR_SWEEP_PRIV_H
#define IMC_COORDINATOR_SWEEP_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "coordinator/quant_rules.h"
#include "coordinator/sweep.h"
#include "core/pulse.h"

struct imc_sweep_recipe {
    char *name;                   // recipe name (owned)
    char *path;                   // its file (owned)
    char *text;                   // the file's bytes as world rank 0 read them (owned)
    size_t text_len;              // their count
    struct imc_quant_rules rules; // the regex=type lines (owned)
    enum imc_type type;           // default type (!type, else the sweep's); built-in only
    char type_name[32];           // the default type as the recipe writes it (!type), or ""
    int type_line;                // the line of its !type, for the message
    char *external;               // !external command template (owned), or NULL: built-in
    bool use_imatrix;             // !imatrix (and an imatrix was given)
    uint64_t hash;                // key of its figures (sweep.h "Resume")
};

// The figures of one recipe (or of the base: kld and same_top stay 0).
struct imc_sweep_figures {
    int32_t status; // enum imc_status of the work; IMC_OK when done
    int32_t done;   // 1 when the figures below are valid
    int32_t rank;   // world rank that computed it (-1: read from its result file)
    int32_t pad;
    uint64_t hash;                 // the key they were computed with
    uint64_t size_bytes;           // GGUF file size
    uint64_t n_weights;            // elements of the target tensors
    double bpw;                    // bits per weight over the target tensors
    double ppl, ppl_err;           // perplexity (PPL(Q) against the base) and its ±
    double kld, kld_err;           // mean KL divergence to the base and its ±
    double same_top, same_top_err; // fraction (not %) of tokens whose top token agrees
};

struct imc_sweep {
    struct imc_sweep_opts o;      // the options (strings borrowed)
    struct imc_sweep_recipe *rec; // [n] in name order (owned)
    int64_t n;
    uint64_t base_key;             // hash of the base's inputs (model, text, ctx, chunks)
    struct imc_sweep_figures base; // the base model's figures (rank 0, after the run)
    char *base_logits;             // <out_dir>/_base.logits (owned)
    char *imatrix;                 // the imatrix file's bytes from world rank 0, or NULL (owned)
    size_t imatrix_size;
    // This rank's heartbeat (mpi/beat.h) while the recipes run, from their opening to the
    // gather: world rank 0's to every other rank, another rank's to world rank 0 (owned; NULL
    // in one process or outside that span).
    struct imc_beat *beat;
};

// ---- sweep.c -------------------------------------------------------------------------------

struct imc_beat;
struct imc_comm;
struct imc_layout;

// The base logits (_base.logits), its PPL report and _base.result, computed in this process
// (comm NULL) or by every rank of comm as one distributed job (layout split here; its rank 0
// writes the files and gets s->base); pulse (may be NULL) is called on progress. Errors of
// perplexity, measure and the result file.
enum imc_status imc_sweep_run_base(struct imc_sweep *s, struct imc_comm *comm,
                                   const struct imc_pulse *pulse);
// Recipe i: quantize, score against the base logits, <name>.result; in this process (grp NULL)
// or by every rank of the group grp (quantized and scored distributed; every rank learns the
// outcome; the group's other ranks wait for its rank 0 to write the model under the watchdog,
// fed by its heartbeat). Progress pulses s->beat. f (figures, status, f->rank = rank, the world
// rank) is set on the group's rank 0 only, zeroed on the others. Returns the outcome (failures
// logged).
enum imc_status imc_sweep_run_recipe(const struct imc_sweep *s, int64_t i, int rank,
                                     struct imc_comm *grp, struct imc_sweep_figures *f);

// ---- sweep_group.c -------------------------------------------------------------------------

// G, the ranks of a recipe group (1 until imc_sweep_check_groups has chosen it).
int imc_sweep_group_size(const struct imc_sweep *s);
// Before any work, collective: world rank 0 chooses G (sweep.h "Group size") and every rank
// stores it in s->o.ranks_per_recipe; IMC_ERR_ARG on every rank (logged on world rank 0) when
// G does not divide the ranks or its groups cannot hold the base; IMC_ERR_MPI.
enum imc_status imc_sweep_check_groups(struct imc_sweep *s);
// Removes every recipe's claim file (<out_dir>/<name>.claim); world rank 0 only, before the
// groups start and after the gather.
void imc_sweep_claims_clear(const struct imc_sweep *s);
// The automatic layout for model over c's world (as `imc perplexity` chooses it), split into c.
enum imc_status imc_sweep_split_layout(struct imc_comm *c, const char *model,
                                       struct imc_layout *l);
// The G > 1 run on every rank: the base over the world when need_base, then groups of G
// consecutive ranks claim the recipes with todo[i] in turn. figs[i] is set on the rank 0 of the
// group that ran recipe i. Returns a status every rank shares (a failed recipe is recorded in
// figs only) or IMC_ERR_MPI.
enum imc_status imc_sweep_run_groups(struct imc_sweep *s, struct imc_sweep_figures *figs,
                                     const uint8_t *todo, bool need_base);

// ---- sweep_recipe.c ------------------------------------------------------------------------

// The recipe's type as the results show it: its !type as written for an external quantizer,
// else the type's ggml name.
const char *imc_sweep_recipe_type(const struct imc_sweep_recipe *r);

// Lists the recipe files of s->o.rules_dir and parses them into s->rec. Under MPI world rank 0
// reads the folder and sends the files to every rank (coordinator/share.h), which parses them;
// collective. Errors as imc_sweep_init (logged on rank 0), the same on every rank.
enum imc_status imc_sweep_load_recipes(struct imc_sweep *s);
// Computes s->base_key and every recipe's hash: on world rank 0 (which reads the text and
// stats the imatrix), then sent to every rank; collective. IMC_ERR_IO (logged on rank 0) for an
// unreadable input, the same on every rank.
enum imc_status imc_sweep_compute_keys(struct imc_sweep *s);
// "<out_dir>/<name><suffix>" in a new string (free()), or NULL when out of memory (logged).
char *imc_sweep_path(const struct imc_sweep *s, const char *name, const char *suffix);
// Writes f as the result file path (atomically). IMC_ERR_IO (logged).
enum imc_status imc_sweep_result_write(const char *path, const char *name,
                                       const struct imc_sweep_figures *f);
// Reads the result file path into *f. Returns false when it does not exist, cannot be parsed
// (a warning) or was computed with another hash than `hash` (*changed = true then).
bool imc_sweep_result_read(const char *path, uint64_t hash, struct imc_sweep_figures *f,
                           bool *changed);
// Bits per weight and target elements of a GGUF file (sweep.h "Definitions"); IMC_ERR_* of
// imc_gguf_open (logged).
enum imc_status imc_sweep_measure(const char *path, struct imc_sweep_figures *f);

// ---- sweep_report.c ------------------------------------------------------------------------

// Writes results.csv, results.md and results.svg into out_dir (atomically) from the figures of
// every recipe (f[n], all done) and s->base, and prints the Markdown table to out (may be NULL).
// IMC_ERR_IO (logged).
enum imc_status imc_sweep_report(const struct imc_sweep *s, const struct imc_sweep_figures *f,
                                 FILE *out);

#endif // IMC_COORDINATOR_SWEEP_PRIV_H
