/*
 * kernels/cuda/elementwise: RMSNorm, softmax, SwiGLU and the squared-activation sums (sqacc) on
 * the device; the CUDA twins of kernels/ref/elementwise.c (tested against it by tests/cuda).
 *   rmsnorm  one block per row; Σx² in double (fixed order), y = x · scale · w in float.
 *   softmax  one block per row, in place; float max, Σ expf(x - max) in double, one division in
 *            double; a row of -inf becomes 0.
 *   swiglu   element-wise over strided rows: out = g / (1 + expf(-g)) · u in float.
 *   sqacc    one thread per column walking the rows in order in double, as the reference does:
 *            bitwise equal to imc_ref_sqacc (every x² is exact in double), deterministic;
 *            sqacc_group the same for up to 96 jobs a launch (a grid row each, the jobs in the
 *            kernel's parameters): an MoE layer's experts in a launch or three, not one each.
 * expf rather than __expf: a few ulp on the device (libm's in the emulator).
 */
#include "kernels/cuda/cuda_common.cuh"

#include "kernels/cuda/kern_decl.h"
#include "kernels/cuda/reduce.cuh"

#include <string.h>

#define IMC_ROW_THREADS 256u
#define IMC_MAX_GRID_Y 65535u

static __global__ void rmsnorm_kernel(float *y, const float *x, const float *w, int64_t n,
                                      float eps)
{
    const float *xr = x + (int64_t)blockIdx.x * n;
    float *yr = y + (int64_t)blockIdx.x * n;
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const double v = xr[i];
        ss += v * v;
    }
    ss = imc_block_reduce(ss, imc_sum_op(), 0.0);
    const float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        yr[i] = w ? xr[i] * scale * w[i] : xr[i] * scale;
    }
}

extern "C" enum imc_status IMC_CUDA_FN(rmsnorm)(void *stream, float *y, const float *x,
                                                const float *w, int64_t n_rows, int64_t n,
                                                float eps)
{
    if (n_rows <= 0 || n <= 0) {
        return IMC_OK;
    }
    IMC_LAUNCH(rmsnorm_kernel, (unsigned)n_rows, imc_block_threads(n, IMC_ROW_THREADS), 0, stream,
               y, x, w, n, eps);
    return imc_cuda_check_launch("rmsnorm_kernel");
}

static __global__ void softmax_kernel(float *x, int64_t n)
{
    float *xr = x + (int64_t)blockIdx.x * n;
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        mx = xr[i] > mx ? xr[i] : mx;
    }
    mx = imc_block_reduce(mx, imc_max_op(), -INFINITY);
    if (mx == -INFINITY) { // every entry masked (the same answer in every thread)
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            xr[i] = 0.0f;
        }
        return;
    }
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        sum += (double)expf(xr[i] - mx);
    }
    sum = imc_block_reduce(sum, imc_sum_op(), 0.0);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        xr[i] = (float)((double)expf(xr[i] - mx) / sum);
    }
}

extern "C" enum imc_status IMC_CUDA_FN(softmax)(void *stream, float *x, int64_t n_rows, int64_t n)
{
    if (n_rows <= 0 || n <= 0) {
        return IMC_OK;
    }
    IMC_LAUNCH(softmax_kernel, (unsigned)n_rows, imc_block_threads(n, IMC_ROW_THREADS), 0, stream,
               x, n);
    return imc_cuda_check_launch("softmax_kernel");
}

static __global__ void swiglu_kernel(float *out, int64_t ldo, const float *gate, int64_t ldg,
                                     const float *up, int64_t ldu, int64_t n_rows, int64_t n)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) {
        return;
    }
    for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
        const float g = gate[r * ldg + i];
        out[r * ldo + i] = g / (1.0f + expf(-g)) * up[r * ldu + i];
    }
}

extern "C" enum imc_status IMC_CUDA_FN(swiglu)(void *stream, float *out, int64_t ldo,
                                               const float *gate, int64_t ldg, const float *up,
                                               int64_t ldu, int64_t n_rows, int64_t n)
{
    if (n_rows <= 0 || n <= 0) {
        return IMC_OK;
    }
    const unsigned threads = imc_block_threads(n, IMC_ROW_THREADS);
    const dim3 grid((unsigned)((n + threads - 1) / threads),
                    (unsigned)(n_rows < IMC_MAX_GRID_Y ? n_rows : IMC_MAX_GRID_Y));
    IMC_LAUNCH(swiglu_kernel, grid, threads, 0, stream, out, ldo, gate, ldg, up, ldu, n_rows, n);
    return imc_cuda_check_launch("swiglu_kernel");
}

// Job j's sums of column blockIdx.x·blockDim.x + threadIdx.x, its rows in order in double; the
// first thread counts its rows.
static __device__ void sq_column(const struct imc_sqacc_job &j, int64_t n_in)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i == 0 && j.count) {
        *j.count += j.n_rows;
    }
    if (i >= n_in) {
        return;
    }
    double acc = j.sum2[i];
    for (int64_t r = 0; r < j.n_rows; r++) {
        const double v = j.x[r * j.ldx + i];
        acc += v * v;
    }
    j.sum2[i] = acc;
}

static __global__ void sqacc_kernel(const struct imc_sqacc_job j, int64_t n_in)
{
    sq_column(j, n_in);
}

// The jobs of one sqacc_group launch, by value in the kernel's parameters (under CUDA's 4 KB of
// them: no copy).
struct sq_group_jobs {
    struct imc_sqacc_job j[IMC_CUDA_SQACC_GROUP_MAX];
};
static_assert(sizeof(sq_group_jobs) + 16 <= 4096, "a launch's parameters stay under 4 KB");

// sqacc_kernel for job blockIdx.y of jobs (one grid row each).
static __global__ void sqacc_group_kernel(const sq_group_jobs jobs, int64_t n_in)
{
    sq_column(jobs.j[blockIdx.y], n_in);
}

extern "C" enum imc_status IMC_CUDA_FN(sqacc_group)(void *stream, const struct imc_sqacc_job *jobs,
                                                    int64_t n, int64_t n_in)
{
    if (n <= 0 || n_in <= 0) {
        return IMC_OK;
    }
    const unsigned threads = imc_block_threads(n_in, 128);
    for (int64_t j0 = 0; j0 < n; j0 += IMC_CUDA_SQACC_GROUP_MAX) {
        const int64_t nj = n - j0 < IMC_CUDA_SQACC_GROUP_MAX ? n - j0 : IMC_CUDA_SQACC_GROUP_MAX;
        sq_group_jobs p;
        memset(&p, 0, sizeof(p));
        memcpy(p.j, jobs + j0, (size_t)nj * sizeof(p.j[0]));
        const dim3 grid((unsigned)((n_in + threads - 1) / threads), (unsigned)nj);
        IMC_LAUNCH(sqacc_group_kernel, grid, threads, 0, stream, p, n_in);
        IMC_TRY(imc_cuda_check_launch("sqacc_group_kernel"));
    }
    return IMC_OK;
}

extern "C" enum imc_status IMC_CUDA_FN(sqacc)(void *stream, double *sum2, int64_t *count,
                                              const float *x, int64_t ldx, int64_t n_rows,
                                              int64_t n_in)
{
    if (n_rows <= 0 || n_in <= 0) {
        return IMC_OK;
    }
    const unsigned threads = imc_block_threads(n_in, 128);
    const struct imc_sqacc_job j = {sum2, count, x, ldx, n_rows};
    IMC_LAUNCH(sqacc_kernel, (unsigned)((n_in + threads - 1) / threads), threads, 0, stream, j,
               n_in);
    return imc_cuda_check_launch("sqacc_kernel");
}
