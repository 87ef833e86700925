/*
 * coordinator/quantize: `imc quantize` — writes a quantized copy of a GGUF model, each row
 * quantized with its imatrix weights (DESIGN.md §3, §4 "Quantized output").
 *
 * Which tensors change (imc_quantize_is_target): names ending in ".weight" with 2 or more
 * dimensions, except norms ("_norm.weight") and the MoE router ffn_gate_inp (kept as stored,
 * as llama.cpp keeps it). token_embd.weight is quantized to the default type like the other
 * weights (llama-quantize does the same for the plain types), without imatrix weights: it is a
 * row lookup, not a matmul, so an imatrix has no entry for it and none is expected.
 * output.weight follows the default type. 1-D tensors (norms, biases, exp_probs_b) are copied.
 * Rules (coordinator/quant_rules.h) are consulted first for target tensors only: the first
 * match wins, else the default type.
 *
 * Shape fallback (imc_quantize_fallback): when a row length (ne[0]) is not a multiple of the
 * chosen type's block size, the type is replaced, with one message naming the tensor:
 *   q2_k, q3_k, iq4_xs → iq4_nl;  q4_k → q5_0;  q5_k → q5_1;  q6_k → q8_0
 *   (llama.cpp's mapping: a 32-block type of about the same or more bits per weight);
 *   then, if ne[0] is not a multiple of 32 either, f16.
 *
 * Imatrix weights: for a tensor of ne = [n_in, n_out, n_mat] (n_mat = 1 for 2D), the entry
 * must be n_per_row = n_in with n_mat matrices (experts; heads of a 3D attn_k_b/attn_v_b), or
 * one matrix of n_in·n_mat values (llama.cpp's layout of 3D weights, broadcast per matrix).
 * Row r of matrix m = r / n_out is quantized with qw = sums[m] / counts[m] (the mean x² of
 * each input column, what llama-quantize passes). A matrix with count 0 (an expert that saw no
 * token) gets qw NULL (the type's default weighting), logged once per tensor. A tensor without
 * an entry is quantized unweighted with a warning (token_embd excepted). Any other shape is an
 * error naming the tensor, expected and found.
 *
 * Output GGUF: every key of the input copied in order, minus split.*; general.file_type set to
 * llama.cpp's LLAMA_FTYPE of the default type (q3_k/q4_k/q5_k → the _S variants 11/14/16; no
 * key change for a type without one); general.quantization_version = 2 (u32); with an imatrix
 * the keys llama-quantize writes: quantize.imatrix.file (str), quantize.imatrix.dataset (str,
 * the first dataset, when any), quantize.imatrix.entries_count (u32), quantize.imatrix.chunks_count
 * (u32, when > 0). Tensors keep their order and names. One file, written atomically: on any
 * error nothing is left at the output path.
 *
 * Determinism: rows are quantized independently (fixed jobs of rows, any thread order), so the
 * bytes do not depend on n_threads. Memory: the whole output is held in memory until written.
 * A source that is already quantized is dequantized and requantized (warning); a tensor whose
 * target type equals its stored type is copied byte for byte.
 */
#ifndef IMC_COORDINATOR_QUANTIZE_H
#define IMC_COORDINATOR_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "coordinator/quant_rules.h"
#include "core/status.h"
#include "model/gguf.h"

struct imc_quantize_opts {
    const char *model;                   // input GGUF path
    const char *out;                     // output GGUF path
    enum imc_type type;                  // default type of target weights
    const char *imatrix;                 // GGUF or .dat imatrix, or NULL
    uint32_t dat_chunk_size;             // chunk size assumed for a .dat (0 = 512)
    const struct imc_quant_rules *rules; // borrowed; NULL = none
    int n_threads;                       // >= 1
};

struct imc_quantize_stats {
    int64_t n_tensors;   // tensors written
    int64_t n_quantized; // tensors converted to another type
    int64_t n_weighted;  // of those, with imatrix weights
    int64_t n_fallback;  // type replaced because of the row length
    uint64_t bytes_in;   // tensor data bytes read
    uint64_t bytes_out;  // tensor data bytes written
};

// Fills o with defaults (q8_0, no imatrix, no rules, 1 thread).
void imc_quantize_opts_default(struct imc_quantize_opts *o);

// Runs the quantization. Bad input is logged once, naming the file/tensor and cause:
// IMC_ERR_IO, IMC_ERR_FORMAT (imatrix shape does not fit a tensor), IMC_ERR_ARG, IMC_ERR_NOMEM.
// Rules matching no tensor are warnings. st may be NULL.
enum imc_status imc_quantize_run(const struct imc_quantize_opts *o, struct imc_quantize_stats *st);

// True when the policy above quantizes tensor t (rules and the default type apply to it).
bool imc_quantize_is_target(const struct imc_tensor_info *t);
// The type to use for rows of ne0 elements when t is wanted (t itself when it fits).
enum imc_type imc_quantize_fallback(enum imc_type t, int64_t ne0);
// llama.cpp's LLAMA_FTYPE for a default type t, or -1 when there is none.
int imc_quantize_ftype(enum imc_type t);

#endif // IMC_COORDINATOR_QUANTIZE_H
