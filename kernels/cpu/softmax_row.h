/*
 * kernels/cpu/softmax_row: the softmax of attention's score rows, the same bits on every path
 * (not part of the kernels API; attention.c and tests/kernels use it). softmax_row.c states the
 * arithmetic.
 */
#ifndef IMC_KERNELS_CPU_SOFTMAX_ROW_H
#define IMC_KERNELS_CPU_SOFTMAX_ROW_H

#include <stdint.h>

#include "kernels/kernels.h"

// exp(x) for x <= 0 within 2 ulp (0 below −86), computed as every path computes it.
float imc_cpu_exp_det(float x);

// softmax(x, n, s): x[i] ← exp(s·x[i] − m) / Σ_j exp(s·x[j] − m) for i < n, m the largest
// s·x[i]; -INFINITY entries get 0, a row entirely -INFINITY becomes all 0.
typedef void (*imc_softmax_row_fn)(float *x, int64_t n, float scale);
// The row softmax of a GEMM path (generic C, AVX2, AVX-512 where the vnni path has it), chosen
// once per call of its user rather than per row; the same bits on every path.
imc_softmax_row_fn imc_cpu_softmax_scaled(enum imc_gemm_path path);

#endif // IMC_KERNELS_CPU_SOFTMAX_ROW_H
