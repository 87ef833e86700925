/*
 * kernels/cpu/half: rows of 16-bit floats (f16, bf16 weights) to f32 for the f32 matmul's
 * panels (kernels/cpu/matmul.c), 8 elements per instruction on AVX2 CPUs with F16C instead of
 * the types/ decoders' one element at a time (f16's there: a branch-free select per element).
 *
 * Contract: the same bits as types/'s F16 / BF16 row decoders (imc_type_decode) for every
 * input, NaN payloads included (vcvtph2ps quiets a signalling NaN; those lanes take the types/
 * bits instead), so the matmul's output does not depend on the path (tests/kernels/test_half
 * checks all 65536 patterns of both types, every tail length).
 */
#ifndef IMC_KERNELS_CPU_HALF_H
#define IMC_KERNELS_CPU_HALF_H

#include <stdint.h>

#include "kernels/cpu/gemm.h"
#include "types/types.h"

// dst[0..n) = the values of src[0..n).
typedef void (*imc_half_fn)(const uint16_t *src, float *dst, int64_t n);

// The vector decoder of type (IMC_TYPE_F16 or IMC_TYPE_BF16) for path: on the AVX2 path, when
// the CPU also has F16C; NULL otherwise (other types, the generic path, or no F16C: the caller
// keeps the types/ decoder, which gives the same bits).
imc_half_fn imc_cpu_half_decoder(enum imc_type type, enum imc_gemm_path path);

#endif // IMC_KERNELS_CPU_HALF_H
