/*
 * model/types: the table of ggml tensor types (block size, bytes, dequantize, quantize),
 * generated from model/types.def (STYLE b.6: tables, not copies). DESIGN.md §4.
 *
 * Invariants: enum values are ggml's type ids; a row of n elements of type t takes
 * n / block_size * type_size bytes and n must be a multiple of block_size.
 */
#ifndef IMC_MODEL_TYPES_H
#define IMC_MODEL_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum imc_type {
#define X(NAME, id, name, bs, ts, tol) IMC_TYPE_##NAME = id,
#include "model/types.def"
#undef X
    IMC_TYPE_MAX_ID = 40 // ids are < this
};

// Dequantizes n elements (n a multiple of the block size) from src into dst.
typedef void (*imc_to_float_fn)(const void *src, float *dst, int64_t n);
// Quantizes n elements (one row; n a multiple of the block size) from src into dst. qw, when not
// NULL, holds n non-negative importance weights (the imatrix values of the row's columns) that
// the block search minimizes Σ qw·(x - q)² against; NULL means the type's default weighting.
typedef void (*imc_from_float_fn)(const float *src, void *dst, int64_t n, const float *qw);

struct imc_type_traits {
    const char *name;             // lower-case ggml name ("q4_k")
    int64_t block_size;           // elements per block
    size_t type_size;             // bytes per block
    imc_to_float_fn to_float;     // dequantize
    imc_from_float_fn from_float; // quantize (reference, scalar)
    double tol_rmse;              // round-trip tolerance, see types.def
};

// Returns the traits of type id t, or NULL if imc does not know it.
const struct imc_type_traits *imc_type_traits(uint32_t t);
bool imc_type_is_known(uint32_t t);
// Name of t, or "unknown".
const char *imc_type_name(uint32_t t);
// Type id for a name (case-insensitive, e.g. "Q4_K"), or -1.
int imc_type_from_name(const char *name);
// Bytes of a row of n elements; false if n is not a multiple of the block size or t is unknown.
bool imc_type_row_bytes(uint32_t t, int64_t n, uint64_t *out);

// Half-precision conversions (round to nearest even), shared by F16 and the K-quant scales.
float imc_fp16_to_fp32(uint16_t h);
uint16_t imc_fp32_to_fp16(float f);
float imc_bf16_to_fp32(uint16_t h);
uint16_t imc_fp32_to_bf16(float f);

#endif // IMC_MODEL_TYPES_H
