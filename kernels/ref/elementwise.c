/*
 * kernels/ref/elementwise: scalar references of RMSNorm, softmax and SwiGLU (kernels/kernels.h).
 * The clean, minimal reference: sums in double, no threads. It is the spec the optimized
 * kernels are tested against.
 */
#include <math.h>

#include "kernels/kernels.h"

void imc_ref_rmsnorm(float *y, const float *x, const float *w, int64_t n_rows, int64_t n,
                     float eps)
{
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * n;
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++) {
            ss += (double)xr[i] * xr[i];
        }
        const double scale = 1.0 / sqrt(ss / (double)n + (double)eps);
        float *yr = y + r * n;
        for (int64_t i = 0; i < n; i++) {
            yr[i] = (float)((double)xr[i] * scale * (w ? (double)w[i] : 1.0));
        }
    }
}

void imc_ref_softmax(float *x, int64_t n_rows, int64_t n)
{
    for (int64_t r = 0; r < n_rows; r++) {
        float *xr = x + r * n;
        double mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            mx = xr[i] > mx ? xr[i] : mx;
        }
        if (mx == -INFINITY) { // every entry masked: no mass anywhere
            for (int64_t i = 0; i < n; i++) {
                xr[i] = 0.0f;
            }
            continue;
        }
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) {
            sum += exp((double)xr[i] - mx);
        }
        for (int64_t i = 0; i < n; i++) {
            xr[i] = (float)(exp((double)xr[i] - mx) / sum);
        }
    }
}

void imc_ref_swiglu(float *out, int64_t ldo, const float *gate, int64_t ldg, const float *up,
                    int64_t ldu, int64_t n_rows, int64_t n)
{
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t i = 0; i < n; i++) {
            const double g = gate[r * ldg + i];
            out[r * ldo + i] = (float)(g / (1.0 + exp(-g)) * (double)up[r * ldu + i]);
        }
    }
}

void imc_ref_sqacc(double *sum2, int64_t *count, const float *x, int64_t ldx, int64_t n_rows,
                   int64_t n_in)
{
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t i = 0; i < n_in; i++) {
            const double v = x[r * ldx + i];
            sum2[i] += v * v;
        }
    }
    *count += n_rows;
}

int64_t imc_find_nonfinite(const float *x, int64_t ld, int64_t n_rows, int64_t n)
{
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t i = 0; i < n; i++) {
            if (!isfinite(x[r * ld + i])) {
                return r * n + i;
            }
        }
    }
    return -1;
}
