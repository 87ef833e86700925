/*
 * kernels/cuda/rows: the moves and adds of activations and the non-finite check on the device;
 * the CUDA twins of kernels/ref/rows.c and imc_find_nonfinite (tested against them by
 * tests/cuda/test_rows). Every op is one element function f(r, i) over n_rows rows of n
 * elements, run by one kernel template: blocks of up to 256 threads stride over i, grid.y
 * (<= 65535) strides over r, with 64-bit index arithmetic throughout.
 *   copy       dst (t, h)[i] = src (t, h)[i], row r = t·n_head + h: a copy, so bitwise.
 *   move_rows  dst row (dst_idx[r] or r)[i] = src row (src_idx[r] or r)[i]: a copy, so bitwise.
 *   add        x[r][i] += y[r·ldy + i]: one rounded add, as the reference.
 *   moe_wsum   per (token, i) the reference's sequence: each w·row product rounded (__fmul_rn),
 *              slots added in order (__fadd_rn), then the add: no fused multiply-add, so the
 *              reference's bits.
 *   check_post a find_nonfinite whose answer stays on the device: atomicMin of (id << 40 | flat
 *              index) into a record, then one thread stores the value of the record's element
 *              when the record is this check's: the smallest id with a non-finite value wins,
 *              with its first index, whatever the order of blocks (the deferred checks of
 *              kernels/backend.h check_post / check_poll).
 *   find_nonfinite  *index is set to all ones (-1 as int64, the largest unsigned), then every
 *              non-finite element (exponent bits all ones) takes atomicMin of its flat index
 *              r·n + i as unsigned: the minimum, the reference's answer, whatever the order of
 *              blocks; untouched, the all-ones value reads as -1.
 */
#include "kernels/cuda/cuda_common.cuh"

#include "kernels/cuda/kern_decl.h"
#include "kernels/cuda/kernels_c.cuh"
#include "kernels/cuda/reduce.cuh"

#define IMC_ROWS_THREADS 256u
#define IMC_MAX_GRID_X 65535u // more columns: the threads stride
#define IMC_MAX_GRID_Y 65535u

// f(r, i) for r < n_rows, i < n.
template <class F> static __global__ void rows_kernel(F f, int64_t n_rows, int64_t n)
{
    const int64_t i0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t di = (int64_t)gridDim.x * blockDim.x;
    for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
        for (int64_t i = i0; i < n; i += di) {
            f(r, i);
        }
    }
}

template <class F>
static enum imc_status rows_launch(void *stream, const char *name, F f, int64_t n_rows, int64_t n)
{
    if (n_rows <= 0 || n <= 0) {
        return IMC_OK;
    }
    const unsigned threads = imc_block_threads(n, IMC_ROWS_THREADS);
    const int64_t bx = (n + threads - 1) / threads;
    const dim3 grid((unsigned)(bx < IMC_MAX_GRID_X ? bx : IMC_MAX_GRID_X),
                    (unsigned)(n_rows < IMC_MAX_GRID_Y ? n_rows : IMC_MAX_GRID_Y));
    IMC_LAUNCH((rows_kernel<F>), grid, threads, 0, stream, f, n_rows, n);
    return imc_cuda_check_launch(name);
}

struct copy_op {
    imc_copy_args a;
    __device__ void operator()(int64_t r, int64_t i) const
    {
        const int64_t t = r / a.n_head, h = r % a.n_head;
        a.dst[t * a.d_ld_tok + h * a.d_ld_head + i] = a.src[t * a.s_ld_tok + h * a.s_ld_head + i];
    }
};

extern "C" enum imc_status IMC_CUDA_FN(copy)(void *stream, const struct imc_copy_args *a)
{
    if (a->n_tok <= 0 || a->n_head <= 0) {
        return IMC_OK;
    }
    return rows_launch(stream, "rows_kernel<copy_op>", copy_op{*a}, a->n_tok * a->n_head, a->n);
}

struct move_rows_op {
    float *dst;
    const int32_t *dst_idx;
    const float *src;
    const int32_t *src_idx;
    int64_t d;
    __device__ void operator()(int64_t r, int64_t i) const
    {
        const int64_t dr = dst_idx ? dst_idx[r] : r, sr = src_idx ? src_idx[r] : r;
        dst[dr * d + i] = src[sr * d + i];
    }
};

extern "C" enum imc_status IMC_CUDA_FN(move_rows)(void *stream, float *dst, const int32_t *dst_idx,
                                                  const float *src, const int32_t *src_idx,
                                                  int64_t n, int64_t d)
{
    return rows_launch(stream, "rows_kernel<move_rows_op>",
                       move_rows_op{dst, dst_idx, src, src_idx, d}, n, d);
}

struct add_op {
    float *x;
    const float *y;
    int64_t n, ldy;
    __device__ void operator()(int64_t r, int64_t i) const
    {
        x[r * n + i] = __fadd_rn(x[r * n + i], y[r * ldy + i]);
    }
};

extern "C" enum imc_status IMC_CUDA_FN(add)(void *stream, float *x, const float *y, int64_t n_rows,
                                            int64_t n, int64_t ldy)
{
    return rows_launch(stream, "rows_kernel<add_op>", add_op{x, y, n, ldy}, n_rows, n);
}

struct moe_wsum_op {
    float *y;
    const float *rows;
    const int32_t *pos;
    const float *w;
    const float *add;
    int64_t k, d;
    __device__ void operator()(int64_t t, int64_t i) const
    {
        float acc = 0.0f;
        for (int64_t s = 0; s < k; s++) {
            const float v = __fmul_rn(w[t * k + s], rows[(int64_t)pos[t * k + s] * d + i]);
            acc = s == 0 ? v : __fadd_rn(acc, v);
        }
        y[t * d + i] = add ? __fadd_rn(acc, add[t * d + i]) : acc;
    }
};

extern "C" enum imc_status IMC_CUDA_FN(moe_wsum)(void *stream, float *y, const float *rows,
                                                 const int32_t *pos, const float *w,
                                                 const float *add, int64_t n, int64_t k, int64_t d)
{
    return rows_launch(stream, "rows_kernel<moe_wsum_op>", moe_wsum_op{y, rows, pos, w, add, k, d},
                       n, d);
}

struct find_nonfinite_op {
    const float *x;
    int64_t ld, n;
    unsigned long long *first; // all ones until a non-finite value is found
    __device__ void operator()(int64_t r, int64_t i) const
    {
        const unsigned long long flat = (unsigned long long)(r * n + i);
        if ((__float_as_uint(x[r * ld + i]) & 0x7f800000u) == 0x7f800000u && flat < *first) {
            atomicMin(first, flat);
        }
    }
};

extern "C" enum imc_status IMC_CUDA_FN(find_nonfinite)(void *stream, const float *x, int64_t ld,
                                                       int64_t n_rows, int64_t n, int64_t *index)
{
    IMC_CUDA_CHECK(cudaMemsetAsync(index, 0xFF, sizeof(*index), (cudaStream_t)stream));
    unsigned long long *first = reinterpret_cast<unsigned long long *>(index);
    return rows_launch(stream, "rows_kernel<find_nonfinite_op>", find_nonfinite_op{x, ld, n, first},
                       n_rows, n);
}

// ---- deferred checks: the record keeps the smallest (id, flat index) key and its value --------

struct check_post_op {
    const float *x;
    int64_t ld, n;
    unsigned long long id;
    struct imc_cuda_check_rec *rec;
    __device__ void operator()(int64_t r, int64_t i) const
    {
        const unsigned long long key =
            id << IMC_CUDA_CHECK_INDEX_BITS | (unsigned long long)(r * n + i);
        if ((__float_as_uint(x[r * ld + i]) & 0x7f800000u) == 0x7f800000u && key < rec->key) {
            atomicMin(&rec->key, key);
        }
    }
};

// After the scan: the value of the key's element, when the key is this check's (a later check
// cannot lower an earlier one's key, so the value is written once, by the key's own check).
static __global__ void check_value_kernel(const float *x, int64_t ld, int64_t n,
                                          unsigned long long id, struct imc_cuda_check_rec *rec)
{
    const unsigned long long key = rec->key;
    if (key != ~0ull && key >> IMC_CUDA_CHECK_INDEX_BITS == id) {
        const int64_t flat = (int64_t)(key & ((1ull << IMC_CUDA_CHECK_INDEX_BITS) - 1));
        rec->value = x[(flat / n) * ld + flat % n];
    }
}

extern "C" enum imc_status IMC_CUDA_FN(check_post)(void *stream, const float *x, int64_t ld,
                                                   int64_t n_rows, int64_t n, int64_t id,
                                                   struct imc_cuda_check_rec *rec)
{
    if (n_rows <= 0 || n <= 0) {
        return IMC_OK;
    }
    if (id < 0 || id >= IMC_CUDA_CHECK_MAX_ID ||
        (unsigned long long)(n_rows * n) > (1ull << IMC_CUDA_CHECK_INDEX_BITS)) {
        return IMC_ERR_ARG;
    }
    const unsigned long long uid = (unsigned long long)id;
    IMC_TRY(rows_launch(stream, "rows_kernel<check_post_op>",
                        check_post_op{x, ld, n, uid, rec}, n_rows, n));
    IMC_LAUNCH(check_value_kernel, 1, 1, 0, stream, x, ld, n, uid, rec);
    return imc_cuda_check_launch("check_value_kernel");
}
