/*
 * coordinator/imatrix_blocks: a pipeline stage's imatrix entries as flat blocks of doubles, the
 * unit the distributed imatrix moves between ranks (coordinator/imatrix_dist.c; DESIGN.md §6
 * "Stats are accumulated per chunk in double and reduced in chunk order").
 *
 * A stage's entries are the weights the engine reports for its layers (and output.weight on the
 * last stage with --process-output), in imx_each_weight's order. They form two kinds of block:
 *   IMX_BLOCK_DENSE    every entry that is not a routed expert, all of its matrices;
 *   IMX_BLOCK_EXPERTS  the routed-expert entries, matrices [expert_begin, expert_end) only
 *                      (one expert shard's part).
 * Layout: entry by entry, the sums of the block's matrices ([n_mat'][n_per_row]) then their
 * counts ([n_mat']). Both ends build the same list from the model, so a block carries no names.
 *
 * Invariants: the list borrows the model's tensor names (valid while the model is). Packing reads
 * and adding writes only entries that exist in the imatrix with the list's shape (IMC_ERR_INTERNAL,
 * logged, otherwise). imx_blocks_add does dst += block per value: applied to a zero entry it
 * copies exactly (0 + x == x), applied to totals it is the fold of a chunk.
 */
#ifndef IMC_COORDINATOR_IMATRIX_BLOCKS_H
#define IMC_COORDINATOR_IMATRIX_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "model/arch.h"
#include "model/imatrix_file.h"

enum imx_block_kind { IMX_BLOCK_DENSE, IMX_BLOCK_EXPERTS };

struct imx_block_ent {
    const char *name;  // weight name (borrowed from the model)
    int64_t n_per_row; // values per matrix
    int64_t n_mat;     // matrices of the entry
    bool expert;       // routed-expert weight
};

struct imx_blocks {
    struct imx_block_ent *e; // [n] (owned)
    int64_t n;
};

// The entries of layers [layer_begin, layer_end) (+ output.weight when output) of m in *b.
// IMC_ERR_NOMEM (logged). Free with imx_blocks_free.
enum imc_status imx_blocks_init(struct imx_blocks *b, const struct imc_model *m,
                                int64_t layer_begin, int64_t layer_end, bool output);
void imx_blocks_free(struct imx_blocks *b); // safe on a zeroed struct

// Doubles in a block of kind k (experts [eb, ee) for IMX_BLOCK_EXPERTS).
size_t imx_blocks_len(const struct imx_blocks *b, enum imx_block_kind k, int64_t eb, int64_t ee);
// Creates every entry of the list in im (zero where new). Errors as imc_imatrix_get_entry.
enum imc_status imx_blocks_declare(const struct imx_blocks *b, struct imc_imatrix *im);
// buf [imx_blocks_len] = the block of im.
enum imc_status imx_blocks_pack(const struct imx_blocks *b, enum imx_block_kind k, int64_t eb,
                                int64_t ee, const struct imc_imatrix *im, double *buf);
// im += the block in buf, value by value.
enum imc_status imx_blocks_add(const struct imx_blocks *b, enum imx_block_kind k, int64_t eb,
                               int64_t ee, struct imc_imatrix *im, const double *buf);
// Sets the list's entries of im to zero (sums and counts).
void imx_blocks_zero(const struct imx_blocks *b, struct imc_imatrix *im);

#endif // IMC_COORDINATOR_IMATRIX_BLOCKS_H
