/*
 * kernels/cuda/nll: the scoring of logits rows on the device (kernels/kernels.h "scoring of
 * logits rows"), the twin of kernels/ref/nll.c (tested against it by tests/cuda/test_nll.c).
 * One block per row:
 *   max and its first index (float compares, as the reference), Σ exp(l_i − max) in double
 *   (each thread a strided partial sum, then the block tree: a different order than the
 *   reference's, hence the tolerance of the test), nll = (max + log Σ) − l_t in double;
 *   with a base row: the entries decoded exactly as imc_nll_base_logp (unfused float multiply
 *   and add, so the decoded values and top_base are bitwise the reference's), the KLD terms
 *   expf(lp)·(lp − (l_i − shift)) summed in double like Σ exp.
 * expf and exp rather than __expf: a few ulp on the device (libm's in the emulator).
 */
#include "kernels/cuda/cuda_common.cuh"

#include "kernels/cuda/kern_decl.h"
#include "kernels/cuda/kernels_c.cuh"
#include "kernels/cuda/reduce.cuh"

#define IMC_NLL_THREADS 256u
#define IMC_NLL_NO_INDEX INT64_MAX

struct nll_min_op {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const
    {
        return a < b ? a : b;
    }
};

// scale·q + min_log_prob in float, neither contracted into an fma (imc_nll_base_logp's bits).
static __device__ __forceinline__ float base_logp(float scale, float min_lp, uint16_t q)
{
#ifdef __CUDA_ARCH__
    return __fadd_rn(__fmul_rn(scale, (float)q), min_lp);
#else
    return scale * (float)q + min_lp;
#endif
}

// The block's maximum of the per-thread (v, first index i) and the first index holding it.
static __device__ float block_argmax(float v, int64_t i, int64_t *top)
{
    const float mx = imc_block_reduce(v, imc_max_op(), -INFINITY);
    *top = imc_block_reduce(v == mx ? i : (int64_t)IMC_NLL_NO_INDEX, nll_min_op(),
                            (int64_t)IMC_NLL_NO_INDEX);
    return mx;
}

static __global__ void nll_kernel(struct imc_nll_row *out, const float *logits, int64_t n,
                                  const int32_t *targets, const uint16_t *base, int64_t ld_base)
{
    const int64_t row = blockIdx.x;
    const float *l = logits + row * n;
    float mx = -INFINITY;
    int64_t im = IMC_NLL_NO_INDEX;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        if (im == IMC_NLL_NO_INDEX || l[i] > mx) {
            mx = l[i];
            im = i;
        }
    }
    int64_t top;
    const double max = block_argmax(mx, im, &top);
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        sum += exp((double)l[i] - max);
    }
    sum = imc_block_reduce(sum, imc_sum_op(), 0.0);
    const double shift = max + log(sum);
    const int32_t t = targets[row];
    struct imc_nll_row r;
    r.nll = shift - (double)l[t];
    r.nll_base = 0.0;
    r.kld = 0.0;
    r.top = (int32_t)top;
    r.top_base = -1;
    if (base) {
        const uint16_t *b = base + row * ld_base;
        float head[2]; // scale, min_log_prob
        memcpy(head, b, sizeof(head));
        const uint16_t *q = b + 4;
        float bmx = -INFINITY;
        int64_t ib = IMC_NLL_NO_INDEX;
        double kld = 0.0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            const float lp = base_logp(head[0], head[1], q[i]);
            if (ib == IMC_NLL_NO_INDEX || lp > bmx) {
                bmx = lp;
                ib = i;
            }
            if (lp > -16.0f) {
                kld += (double)expf(lp) * ((double)lp - ((double)l[i] - shift));
            }
        }
        int64_t top_base;
        block_argmax(bmx, ib, &top_base);
        r.kld = imc_block_reduce(kld, imc_sum_op(), 0.0);
        r.nll_base = -(double)base_logp(head[0], head[1], q[t]);
        r.top_base = (int32_t)top_base;
    }
    if (threadIdx.x == 0) {
        out[row] = r;
    }
}

extern "C" enum imc_status IMC_CUDA_FN(nll_rows)(void *stream, struct imc_nll_row *out,
                                                 const float *logits, int64_t n_rows,
                                                 int64_t n_vocab, const int32_t *targets,
                                                 const uint16_t *base, int64_t ld_base)
{
    if (n_rows <= 0) {
        return IMC_OK;
    }
    if (n_vocab <= 0 || n_rows > INT32_MAX) {
        return IMC_ERR_ARG;
    }
    IMC_LAUNCH(nll_kernel, (unsigned)n_rows, imc_block_threads(n_vocab, IMC_NLL_THREADS), 0, stream,
               out, logits, n_vocab, targets, base, ld_base);
    return imc_cuda_check_launch("nll_kernel");
}
