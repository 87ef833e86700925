/*
 * kernels/cpu/cpu_priv: helpers shared by the CPU kernels (not part of the kernels API).
 */
#ifndef IMC_KERNELS_CPU_PRIV_H
#define IMC_KERNELS_CPU_PRIV_H

#include <math.h>
#include <stdint.h>

#include "kernels/cpu/bmm.h"
#include "kernels/kernels.h"

// Softmax of one row of n in place (float exp, double sum); -INFINITY entries get 0, and a row
// that is entirely -INFINITY becomes all 0.
static inline void imc_cpu_softmax_row(float *x, int64_t n)
{
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        mx = x[i] > mx ? x[i] : mx;
    }
    if (mx == -INFINITY) {
        for (int64_t i = 0; i < n; i++) {
            x[i] = 0.0f;
        }
        return;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) {
        x[i] *= inv;
    }
}

// imc_cpu_sqacc's inner loop (sqacc_rows.c): s[i] += (double)x[r][i]² for rows r < n_rows in
// order (row stride ldx) and columns c0 <= i < c1; the same bits on every path.
typedef void (*imc_sqacc_rows_fn)(double *s, const float *x, int64_t ldx, int64_t n_rows,
                                  int64_t c0, int64_t c1);
imc_sqacc_rows_fn imc_cpu_sqacc_rows(enum imc_gemm_path path);

// The bf16 matmul kernel of ex's GEMM path (bmm.h: imc_bmm_kernel_for with the probe's answer
// from imc_exec_init; NULL ex: the best path's, vdpbf16ps not trusted).
enum imc_bmm_kernel imc_exec_bmm_kernel(const struct imc_exec *ex);

#endif // IMC_KERNELS_CPU_PRIV_H
