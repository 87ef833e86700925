/*
 * model/types: the table of ggml tensor types (block size, bytes, dequantize, quantize),
 * generated from types/types.def (STYLE b.6: tables, not copies). DESIGN.md §4.
 *
 * Invariants: enum values are ggml's type ids; a row of n elements of type t takes
 * n / block_size * type_size bytes and n must be a multiple of block_size.
 */
#ifndef IMC_TYPES_TYPES_H
#define IMC_TYPES_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum imc_type {
#define X(NAME, id, name, bs, ts, rows, meta, dec, quant, tol) IMC_TYPE_##NAME = id,
#include "types/types.def"
#undef X
    IMC_TYPE_MAX_ID = 400 // ids are < this
};

// Dequantizes n elements (n a multiple of the block size) from src into dst (plain-row types).
typedef void (*imc_to_float_fn)(const void *src, float *dst, int64_t n);
// Dequantizes columns [k0, k0 + kn) (multiples of the block size) of row `lane` of the group of
// interleaved rows (or the one row, with its meta bytes) that starts at grp; n_per_row is the
// row length. The form of types with interleaved rows or per-row meta (types.def: SEG).
typedef void (*imc_seg_to_float_fn)(const uint8_t *grp, int lane, int64_t n_per_row, int64_t k0,
                                    int64_t kn, float *dst);
// Quantizes n elements (one row; n a multiple of the block size) from src into dst. qw, when not
// NULL, holds n non-negative importance weights (the imatrix values of the row's columns) that
// the block search minimizes Σ qw·(x - q)² against; NULL means the type's default weighting.
typedef void (*imc_from_float_fn)(const float *src, void *dst, int64_t n, const float *qw);

struct imc_type_traits {
    const char *name;             // lower-case ggml name ("q4_k")
    int64_t block_size;           // elements per block
    size_t type_size;             // bytes per block of one row
    int rows;                     // rows per interleaved group (1: plain rows)
    size_t row_meta;              // bytes per row ahead of its blocks (0 for most types)
    imc_to_float_fn to_float;     // plain rows without meta: dequantize blocks; else NULL
    imc_seg_to_float_fn seg;      // the other types (interleaved or with meta); else NULL
    imc_from_float_fn from_float; // quantize (reference, scalar); NULL: imc cannot write it
    double tol_rmse;              // round-trip tolerance, see types.def
};

// Returns the traits of type id t, or NULL if imc does not know it.
const struct imc_type_traits *imc_type_traits(uint32_t t);
bool imc_type_is_known(uint32_t t);
// Whether imc can dequantize tensors of tr (every known type, today; kept for the table's sake).
static inline bool imc_type_can_decode(const struct imc_type_traits *tr)
{
    return tr && (tr->to_float || tr->seg);
}
// Name of t, or "unknown".
const char *imc_type_name(uint32_t t);
// Type id for a name (case-insensitive, e.g. "Q4_K"), or -1.
int imc_type_from_name(const char *name);
// Bytes of a row of n elements (blocks and meta); false if n is not a multiple of the block size
// or t is unknown. A group of interleaved rows takes rows x this.
bool imc_type_row_bytes(uint32_t t, int64_t n, uint64_t *out);
// The name the llama.cpp family gives type id t, also for the ids imc cannot read ("q8_1",
// "q4_0_4_4", "i32" ...), or NULL when the id is unknown to them too.
const char *imc_type_foreign_name(uint32_t t);

// Dequantizes columns [k0, k0 + kn) (multiples of the block size) of row `row` of the matrix of
// type tr that starts at mat (rows of n_per_row elements, row_bytes = imc_type_row_bytes) into
// dst. For an interleaved type mat must start at a group: row 0 of a group of tr->rows rows.
void imc_type_decode(const struct imc_type_traits *tr, const void *mat, int64_t row,
                     int64_t n_per_row, int64_t k0, int64_t kn, float *dst);
// Dequantizes whole rows [r0, r0 + nr) of such a matrix into dst (nr x n_per_row floats).
void imc_type_decode_rows(const struct imc_type_traits *tr, const void *mat, int64_t r0,
                          int64_t nr, int64_t n_per_row, float *dst);

// Row-interleaved types whose groups are plain rows of another type by a re-layout of their bytes
// alone, the decoders computing the same floats for finite scales (q4_0_r8 -> q4_0, q8_0_r8 ->
// q8_0, iq4_nl_r4 -> iq4_nl, mxfp4_r8 -> mxfp4, iq4_xs_r8 -> iq4_xs, iq4_ks_r4 / iq5_ks_r4 ->
// iq4_ks / iq5_ks,
// iq2_k_r4 .. iq5_k_r4 -> iq2_k .. iq5_k, q2_k_r4 .. q6_k_r4 -> q2_k .. q6_k, iq2_xxs_r4 /
// iq2_xs_r4 / iq2_s_r4 -> iq2_xxs / iq2_xs / iq2_s, iq3_xxs_r4 / iq3_s_r4 -> iq3_xxs / iq3_s,
// iq2_bn_r4 -> iq2_bn, bf16_r16 -> bf16; types/r_unweave.c): that plain type, or t itself for
// any other type. Row meta (the KS and BN types' row scales) is moved with its row.
enum imc_type imc_type_unweaved(enum imc_type t);
// dst = the n_rows rows (a multiple of t's group) of n_per_row columns of interleaved type t at
// src, one row after the other: the plain rows of imc_type_unweaved(t) where t has a plain form
// (the same number of bytes, decoding to the same floats bit for bit where the scales are
// finite), else t's row form (each
// row's share of its group's blocks, types/r_rowform.c), which the device decoders read
// (kernels/cuda/qrowform.cuh). False (nothing written) for a type that is not interleaved or a
// bad shape (bf16_r16 also needs an even n_per_row).
bool imc_type_unweave(enum imc_type t, const void *src, int64_t n_rows, int64_t n_per_row,
                      void *dst);

// Half-precision conversions (round to nearest even), shared by F16 and the K-quant scales.
float imc_fp16_to_fp32(uint16_t h);
uint16_t imc_fp32_to_fp16(float f);
float imc_bf16_to_fp32(uint16_t h);
uint16_t imc_fp32_to_bf16(float f);

#endif // IMC_TYPES_TYPES_H
