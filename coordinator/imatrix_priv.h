/*
 * coordinator/imatrix_priv: pieces of the imatrix run shared by its files (coordinator/imatrix.h):
 * the per-chunk hook splitter (imatrix_hook.c) and the output writer (imatrix_write.c).
 *
 * Why a splitter: the collector (worker/stats_collect.h) keeps one partial per (weight, slice)
 * for the chunk being collected, and its sums are reproducible bit for bit only when each
 * chunk's rows are accumulated alone and folded in chunk order. An engine call over n_seq chunks
 * hands the hooks the rows of all of them at once, so the splitter keeps one collector per
 * sequence slot and gives each the rows of its chunk:
 *   - dense weights, attn_kv_b, per-head attn_k_b/attn_v_b and the head: n_seq equal blocks of
 *     rows, in sequence order;
 *   - routed experts: the rows are the gathered inputs of the tokens routed to the expert, in
 *     token order (worker/moe.c). The splitter keeps a copy of the layer's router input
 *     (ffn_gate_inp sees every token just before the experts run) and finds each gathered row
 *     in it (bit-equal copies; one forward scan), which gives the block of each sequence;
 *     the other tensors of the same expert (up, down), whose rows are the same tokens, reuse it.
 * The collectors fold slot 0, 1, … after the call, i.e. in chunk order. Together with the
 * engine's row-count-independent matmul (kernels/cpu/matmul.c over kernels/cpu/gemm.h: each
 * output is one fmaf chain over its own input row and weight row, so a row's result does not
 * depend on the other rows of the call or its position among them) the output is bitwise the
 * same for any chunks-per-call and for a run resumed at any chunk. Memory: each slot's collector holds a double partial per imatrix
 * value, so a run holds (1 + n_seq) doubles per value.
 */
#ifndef IMC_COORDINATOR_IMATRIX_PRIV_H
#define IMC_COORDINATOR_IMATRIX_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "coordinator/coverage.h"
#include "coordinator/imatrix.h"
#include "model/arch.h"
#include "worker/stats.h"
#include "worker/stats_collect.h"

struct imx_hook {
    const struct imc_model *m;         // borrowed
    struct imc_stats_collect **col;    // [n_col] one collector per sequence slot (owned)
    int64_t n_col;                     // sequence slots (most chunks per engine call)
    int64_t n_seq;                     // sequences of the call under way (1 .. n_col)
    int64_t n_ctx;                     // tokens per sequence
    bool process_output;               // collect output.weight
    float *router_in;                  // [n_col*n_ctx][n_embd] last ffn_gate_inp input
    int64_t router_layer;              // its layer, -1 when none
    int64_t router_rows;               // its rows
    int64_t split_layer, split_expert; // (layer, expert) whose split `bounds` holds
    int64_t *bounds;                   // [n_col + 1] first row of each sequence's block
};

// Sets up n_col collectors over im (borrowed; must outlive h). IMC_ERR_NOMEM (logged).
enum imc_status imx_hook_init(struct imx_hook *h, const struct imc_model *m, struct imc_imatrix *im,
                              int64_t n_col, int64_t n_ctx, bool process_output);
void imx_hook_free(struct imx_hook *h); // safe on a zeroed struct

// Engine hooks (user = h); output.weight is left out unless process_output. Set h->n_seq before
// each engine call.
struct imc_stats_hooks imx_hook_hooks(struct imx_hook *h);

// Declares every weight the engine will report, so unrouted experts are written (count 0).
enum imc_status imx_hook_declare(struct imx_hook *h);

// Folds slot s's chunk into the imatrix (imc_stats_collect_end_chunk).
enum imc_status imx_hook_end_chunk(struct imx_hook *h, int64_t s);

// Weights other than experts whose entries still have count 0: logs a warning for each and
// returns how many (a weight the engine should have fed but did not).
int64_t imx_hook_check_fed(const struct imx_hook *h, const struct imc_imatrix *im);

// Writes im merged with extra (may be NULL or empty) to out in the chosen format(s); the GGUF
// form carries the coverage keys. Fills *cov (free with imc_coverage_free) when cov is not NULL.
enum imc_status imx_write(const struct imc_imatrix_opts *o, const struct imc_model *m,
                          const struct imc_imatrix *im, const struct imc_imatrix *extra,
                          struct imc_coverage *cov);

// Checks that the output location(s) can be written (creates and removes a temporary file),
// so that a long run does not fail at the end. IMC_ERR_IO (logged) otherwise.
enum imc_status imx_check_writable(const struct imc_imatrix_opts *o);

#endif // IMC_COORDINATOR_IMATRIX_PRIV_H
