/*
 * coordinator/imatrix_priv: pieces of the imatrix run shared by its files (coordinator/imatrix.h):
 * the per-chunk hook splitter (imatrix_hook.c) and the output writer (imatrix_write.c).
 *
 * Why a splitter: the collector (worker/stats_collect.h) keeps one partial per (weight, slice)
 * for the chunk being collected, and its sums are reproducible bit for bit only when each
 * chunk's rows are accumulated alone and folded in chunk order. An engine call over n_seq chunks
 * hands the hooks the rows of all of them at once, so the splitter keeps one collector per
 * sequence slot and gives each the rows of its chunk, by the rows' batch token indices (the
 * hook's tok: sequence = tok / n_ctx; rows come in ascending token order, dense weights with
 * every token of the call, routed experts with the tokens routed to them).
 * The collectors fold slot 0, 1, … after the call, i.e. in chunk order. Together with the
 * engine's row-count-independent matmul (kernels/cpu/matmul.c over kernels/cpu/gemm.h: each
 * output is one fmaf chain over its own input row and weight row, so a row's result does not
 * depend on the other rows of the call or its position among them) the output is bitwise the
 * same for any chunks-per-call, for a run resumed at any chunk, and for any split of the batch
 * over expert shards. Memory: each slot's collector holds a double partial per imatrix value,
 * so a run holds (1 + n_seq) doubles per value.
 */
#ifndef IMC_COORDINATOR_IMATRIX_PRIV_H
#define IMC_COORDINATOR_IMATRIX_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "coordinator/checkpoint.h"
#include "coordinator/coverage.h"
#include "coordinator/imatrix.h"
#include "coordinator/ppl.h"
#include "coordinator/progress.h"
#include "coordinator/textrun.h"
#include "model/arch.h"
#include "worker/stats.h"
#include "worker/stats_collect.h"


struct imx_hook {
    const struct imc_model *m;         // borrowed
    struct imc_stats_collect **col;    // [n_col] one collector per sequence slot (owned)
    int64_t n_col;                     // sequence slots (most chunks per engine call)
    int64_t n_ctx;                     // tokens per sequence
    bool process_output;               // collect output.weight
    int64_t layer_begin, layer_end;    // layers whose weights are declared (default: all)
    bool head;                         // output.weight is declared (with process_output)
};

// Sets up n_col collectors; slot s folds into ims[s] (borrowed; each must outlive h; the same
// imatrix may serve every slot). Declares all layers and the head until imx_hook_set_layers.
// IMC_ERR_NOMEM (logged).
enum imc_status imx_hook_init(struct imx_hook *h, const struct imc_model *m,
                              struct imc_imatrix *const *ims, int64_t n_col, int64_t n_ctx,
                              bool process_output);
void imx_hook_free(struct imx_hook *h); // safe on a zeroed struct
// Restricts the weights imx_hook_declare declares to layers [layer_begin, layer_end) and, when
// head, output.weight (a pipeline stage's weights).
void imx_hook_set_layers(struct imx_hook *h, int64_t layer_begin, int64_t layer_end, bool head);

// Engine hooks (user = h); output.weight is left out unless process_output.
struct imc_stats_hooks imx_hook_hooks(struct imx_hook *h);

// Declares in every slot's imatrix every weight the engine will report (within the layer
// range), so unrouted experts are written (count 0).
enum imc_status imx_hook_declare(struct imx_hook *h);

// Folds slot s's chunk into its imatrix (imc_stats_collect_end_chunk).
enum imc_status imx_hook_end_chunk(struct imx_hook *h, int64_t s);

// Calls fn(user, w) for every weight whose input the engine reports (worker/stats.h) in layers
// [layer_begin, layer_end), output.weight first when output; in a fixed order. Stops at the
// first error and returns it.
typedef enum imc_status (*imx_weight_fn)(void *user, const struct imc_tensor_info *w);
enum imc_status imx_each_weight(const struct imc_model *m, int64_t layer_begin, int64_t layer_end,
                                bool output, imx_weight_fn fn, void *user);

// True when w is a routed-expert weight (ffn_{gate,up,down}_exps) of some layer of m.
bool imx_is_expert_weight(const struct imc_model *m, const struct imc_tensor_info *w);

// Weights other than experts whose entries in im still have count 0: logs a warning for each
// and returns how many (a weight the engine should have fed but did not).
int64_t imx_check_fed(const struct imc_model *m, const struct imc_imatrix *im,
                      bool process_output);

// Writes im merged with extra (may be NULL or empty) to out in the chosen format(s); the GGUF
// form carries the coverage keys. Fills *cov (free with imc_coverage_free) when cov is not NULL.
enum imc_status imx_write(const struct imc_imatrix_opts *o, const struct imc_model *m,
                          const struct imc_imatrix *im, const struct imc_imatrix *extra,
                          struct imc_coverage *cov);

// Checks that the output location(s) can be written (creates and removes a temporary file),
// so that a long run does not fail at the end. IMC_ERR_IO (logged) otherwise.
enum imc_status imx_check_writable(const struct imc_imatrix_opts *o);

// The state of one run (imatrix.c; the distributed loop in imatrix_dist.c). Fields marked
// "rank 0" are used on the coordinator only (every field on a single-process run).
struct imx_run {
    const struct imc_imatrix_opts *o;
    FILE *out;                    // results (stdout; rank 0)
    bool rank0;                   // this process writes outputs and prints results
    struct imc_textrun tr;        // model, tokenizer, chunks
    struct imc_engine *e;         // forward passes (single process)
    struct imx_hook hook;         // per-chunk split into the collectors
    struct imc_stats_hooks hooks; // the engine's hooks (borrowed by e)
    struct imc_imatrix im;        // computed by this run and the runs it resumes (rank 0)
    struct imc_imatrix extra;     // the --in-file files, merged (rank 0)
    int64_t first;                // first chunk of the text
    int64_t n_chunk;              // chunks of the run
    int64_t done;                 // chunks folded into im
    int64_t start;                // chunks done when this process started
    int64_t n_seq;                // chunks per engine call
    int64_t out_begin;            // first position with logits
    struct imc_ppl_acc acc;       // running NLL sums (rank 0)
    double *ppl;                  // [n_chunk] running PPL after each chunk (rank 0)
    int32_t *in;                  // [n_seq][n_ctx] engine input (single process)
    float *hidden;                // [n_seq][n_ctx][n_embd] the engine's (single process)
    struct imc_nll_row *sc;       // [n_scored] one chunk's scores (single process)
    struct imc_progress prog;     // stderr progress
    struct imc_ckpt_fp fp;        // what decides the numbers (rank 0)
    char *ckpt_path;              // "<out>.ckpt" (rank 0)
};

// Every rank: model, context, chunks; rank 0 also checks the output, reads the in-files, sets
// the dataset, the fingerprint and, with --resume, adopts the checkpoint (im, acc, ppl, done).
// attn is the attention path name for the fingerprint.
enum imc_status imx_setup_common(struct imx_run *r, const char *attn);
// Rank 0, once chunk r->done's NLLs are in r->acc: keeps and prints its running PPL "[i]ppl,"
// and counts the chunk done.
void imx_chunk_scored(struct imx_run *r);
// Rank 0: writes r->im as the partial output and the checkpoint after r->done chunks.
enum imc_status imx_checkpoint(struct imx_run *r);
// True when a checkpoint is due after r->done chunks.
bool imx_checkpoint_due(const struct imx_run *r);
// Rank 0: the final output, the Final estimate and the coverage table; removes the checkpoint.
enum imc_status imx_report(struct imx_run *r, struct imc_imatrix_result *res);
// The chunk loop of an MPI job (imatrix_dist.c). Collective over the world.
enum imc_status imx_run_dist(struct imx_run *r);

#endif // IMC_COORDINATOR_IMATRIX_PRIV_H
