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
#include <stddef.h>
#include <stdint.h>

#include "coordinator/quant_rules.h"
#include "core/pulse.h"
#include "core/status.h"
#include "model/gguf.h"

struct imc_comm;

struct imc_quantize_opts {
    const char *model;                   // input GGUF path
    const char *out;                     // output GGUF path
    enum imc_type type;                  // default type of target weights
    const char *imatrix;                 // GGUF or .dat imatrix, or NULL
    // The imatrix file's bytes (borrowed), read instead of the file when set (imatrix still
    // names it): a sweep's ranks get them from rank 0 (coordinator/share.h). Under MPI without
    // them, world rank 0 reads the file and sends it to the other ranks.
    const void *imatrix_image;
    size_t imatrix_image_size;
    uint32_t dat_chunk_size;             // chunk size assumed for a .dat (0 = 512)
    const struct imc_quant_rules *rules; // borrowed; NULL = none
    int n_threads;                       // >= 1
    bool quiet;                          // per-tensor plan lines at debug level
    // MPI job (mpi/comm.h): NULL or a world of one rank quantizes in this process. With more
    // ranks, every rank plans all tensors, quantizes its share (imc_qdist_assign: balanced by
    // elements) and sends it to world rank 0, which alone writes the output: the same bytes
    // as one process. Collective over the world; a failure on any rank must end the job.
    const struct imc_comm *comm;
    // Called on real progress (a job of rows quantized on the calling thread, a tensor written;
    // an external quantizer's output growing), for ranks that wait for this run (mpi/beat.h).
    // Default: none.
    struct imc_pulse pulse;
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

// Runs the quantization (under MPI: see comm above; st is complete on rank 0). Bad input is
// logged once, naming the file/tensor and cause:
// IMC_ERR_IO, IMC_ERR_FORMAT (imatrix shape does not fit a tensor), IMC_ERR_ARG, IMC_ERR_NOMEM.
// Rules matching no tensor are warnings. st may be NULL.
enum imc_status imc_quantize_run(const struct imc_quantize_opts *o, struct imc_quantize_stats *st);

// ---- external quantizer (`--external CMD`, coordinator/quantize_ext.c) --------------------------
//
// CMD is a /bin/sh command template. Placeholders, each replaced by one single-quoted shell word:
//   {model}    the input model             {out}      the file the quantizer must write
//   {type}     TYPE exactly as given       {imatrix}  the --imatrix file
//   {rules}    the rules as one ik_llama.cpp --custom-q list "re=type,re=type" (ggml type names)
// Any other text, braces included (${HOME}), is left alone. {model} {out} {type} must appear;
// {imatrix} and {rules} must appear exactly when an imatrix / at least one rule is given (so
// nothing given is silently dropped). {out} is a temporary "<OUT>.tmp.<pid>": after the command
// exits 0, the file must exist and open as a GGUF with at least one tensor; it is then renamed
// to OUT (fsync, rename, fsync of the directory). On any failure the temporary file is removed
// and OUT is untouched. The command's stdout goes to our stderr (stdout carries results only).
// Example: --external 'llama-quantize --imatrix {imatrix} --custom-q {rules} {model} {out} {type}'

struct imc_quantize_ext_args {
    const char *model, *out, *type; // required values
    const char *imatrix;            // or NULL: not given
    const char *rules;              // --custom-q list, or NULL: no rule
};

// Expands tmpl into a new string (free()). IMC_ERR_ARG (logged) for a placeholder that is
// missing or has no value, IMC_ERR_NOMEM.
enum imc_status imc_quantize_ext_expand(const char *tmpl, const struct imc_quantize_ext_args *a,
                                        char **out);
// The --custom-q list of r ("re=type,..."; NULL when r is NULL or empty) in a new string.
// IMC_ERR_ARG (logged) when a regex contains ',' (the list could not carry it), IMC_ERR_NOMEM.
enum imc_status imc_quantize_ext_rules(const struct imc_quant_rules *r, char **out);
// TYPE for an external quantizer: a type name of letters, digits and '_' (Q4_K_M, IQ2_XXS, ...).
bool imc_quantize_is_type_word(const char *s);
// Runs the external quantizer for o (model, out, imatrix, rules; o->type is not used: the
// command gets type_name). Errors, all logged with the command line: IMC_ERR_ARG (template),
// IMC_ERR_IO (cannot run, non-zero exit or a signal, no output file, rename failed),
// IMC_ERR_FORMAT (the output is not a readable GGUF).
enum imc_status imc_quantize_external(const struct imc_quantize_opts *o, const char *cmd_template,
                                      const char *type_name);

// ---- one quantization as the command line describes it --------------------------------------

struct imc_quantize_job {
    struct imc_quantize_opts o; // model, out, imatrix, threads, comm (type and rules: below)
    const char *type_name;      // TYPE: an imc type for the built-in quantizer; passed verbatim
                                // (letters, digits, '_') to an external one
    const char *rules_file;     // --rules FILE, or NULL
    const char *custom_q;       // --custom-q list, or NULL (not both)
    const char *external;       // --external command template, or NULL: built-in
};

// Reads the rules and runs the built-in quantizer (every rank of o.comm takes part) or the
// external one (world rank 0 only; the other ranks return IMC_OK at once). Errors as the two
// runners, plus IMC_ERR_ARG for an unknown TYPE or bad rules (logged). st may be NULL.
enum imc_status imc_quantize_job_run(const struct imc_quantize_job *j,
                                     struct imc_quantize_stats *st);

// ---- quantize when the imatrix is written (`imc imatrix ... --then-quantize`) ----------------

struct imc_quantize_then {
    const char *rules;    // rules file (quant_rules.h), or NULL for none
    const char *type;     // TYPE (as for imc_quantize_job)
    const char *out;      // the quantized model to write; NULL: no post-step
    const char *external; // command template (--then-external), or NULL: built-in
};

// Checks t before the imatrix run, so that a long run does not end in a usage error: TYPE, the
// rules file and, for an external quantizer, the template (the imatrix will be given). Errors as
// imc_quantize_job_run's (logged).
enum imc_status imc_quantize_then_check(const struct imc_quantize_then *t);
// Quantizes model with the imatrix just written (imatrix_path) as t says, in this process (call
// on world rank 0 only). Errors as imc_quantize_job_run.
enum imc_status imc_quantize_then_run(const struct imc_quantize_then *t, const char *model,
                                      const char *imatrix_path, int n_threads);

// True when the policy above quantizes tensor t (rules and the default type apply to it).
bool imc_quantize_is_target(const struct imc_tensor_info *t);
// The type to use for rows of ne0 elements when t is wanted (t itself when it fits).
enum imc_type imc_quantize_fallback(enum imc_type t, int64_t ne0);
// llama.cpp's LLAMA_FTYPE for a default type t, or -1 when there is none.
int imc_quantize_ftype(enum imc_type t);

#endif // IMC_COORDINATOR_QUANTIZE_H
