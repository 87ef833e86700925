/*
 * kernels/cuda/reduce: block-wide reductions for kernels/cuda/<op>.cu (after cuda_common.cuh).
 * imc_block_reduce(v, op, identity): every thread of the block passes its v and gets op over all
 * of them. blockDim.x must be a multiple of 32 (<= 1024) and every thread of the block must call
 * it (it holds __syncthreads). The order of combination is fixed by the block shape, so the
 * result is the same run to run.
 */
#ifndef IMC_KERNELS_CUDA_REDUCE_CUH
#define IMC_KERNELS_CUDA_REDUCE_CUH

struct imc_sum_op {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const
    {
        return a + b;
    }
};

struct imc_max_op {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const
    {
        return a > b ? a : b;
    }
};

template <class T, class Op> __device__ __forceinline__ T imc_warp_reduce(T v, Op op)
{
    for (int d = 16; d > 0; d /= 2) {
        v = op(v, __shfl_xor_sync(0xffffffffu, v, d));
    }
    return v;
}

template <class T, class Op> __device__ T imc_block_reduce(T v, Op op, T identity)
{
    __shared__ T part[32];
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = imc_warp_reduce(v, op);
    __syncthreads(); // part[] may still be read by a previous call
    if (lane == 0) {
        part[warp] = v;
    }
    __syncthreads();
    v = lane < blockDim.x / 32 ? part[lane] : identity;
    return imc_warp_reduce(v, op);
}

// Threads for a block over n elements: a multiple of 32, at most max_threads.
static inline unsigned imc_block_threads(long long n, unsigned max_threads)
{
    unsigned t = n >= (long long)max_threads ? max_threads : (unsigned)((n + 31) / 32 * 32);
    return t ? t : 32;
}

#endif // IMC_KERNELS_CUDA_REDUCE_CUH
