/*
 * kernels/cuda/mmv.cu: y = W·x for up to IMC_CUDA_MMV_MAX_TOK tokens, straight on the weight
 * rows in their GGUF type (no dequantized copy): the decode-time and small-batch matmul of a
 * GPU rank. DESIGN.md §4; issue 13.
 *
 * One warp per output row, MMV_WARPS rows per block. Lane l decodes chunks l, l + 32, ... of the
 * row (CH = 8 elements of one block through kernels/cuda/qdecode.cuh, so the weights are the
 * CPU decoder's values bit for bit) and accumulates w·x for each token with one fma chain per
 * token in chunk order; the 32 lane sums are then added by a fixed xor-shuffle tree (16, 8, 4,
 * 2, 1). Nothing depends on scheduling: the same inputs give the same bits on every run, in the
 * emulator and on the device (__fmaf_rn everywhere).
 * Error against the exact product of the decoded weights: with m = ceil(n_in / (32·CH))·CH fmas
 * per lane and 5 tree additions, |y - exact| <= γ(m + 5)·Σ_i |w_i·x_i| (γ(k) = k·u / (1 - k·u),
 * u = 2^-24); tests/cuda/test_mmv.c checks (m + 6)·u·Σ|w·x|.
 *
 * mmv_group runs many such products in one launch (grid.y: the job; up to
 * IMC_CUDA_MMV_GROUP_MAX jobs, passed in the kernel's parameters), each job its own weights (an
 * expert's slice), tokens and outputs at shared row strides: the table's grouped expert matmul
 * (table.cu t_matmul_group), each output the bits mmv gives it alone.
 *
 * Speed notes: a warp reads 32 neighbouring chunks of one row (a contiguous span of the row's
 * blocks) and 32 x 8 neighbouring floats of each token's x, both coalesced; x is re-read by the
 * MMV_WARPS rows of a block through L1. Next steps where profiles ask for them: x staged in
 * shared memory per block, 16-byte weight loads, the block scale factored out of the chunk's
 * 8 products (that changes rounding: the tolerance above then needs one more term).
 */
#include "kernels/cuda/qdecode.cuh"

#include <string.h>

#include "kernels/cuda/kern_decl.h"

namespace
{

constexpr int MMV_WARPS = 4;
constexpr int MAXT = IMC_CUDA_MMV_MAX_TOK;

// Output row o of y = W·x, computed by one warp (lane: this thread's lane): x's tokens at stride
// ldx, y's at stride ldy.
template <class D>
__device__ __forceinline__ void mmv_row(const uint8_t *w, size_t row_bytes, int64_t n_in,
                                        const float *x, int64_t ldx, int n_tok, float *y,
                                        int64_t ldy, int64_t o, int lane)
{
    const uint8_t *row = w + (size_t)o * row_bytes;
    const int64_t nch = n_in / D::CH;
    float acc[MAXT];
    for (int t = 0; t < MAXT; t++) {
        acc[t] = 0.0f;
    }
    for (int64_t c = lane; c < nch; c += 32) {
        float wv[D::CH];
        qdec::dec_chunk<D>(row, c, wv);
        for (int t = 0; t < MAXT; t++) {
            if (t < n_tok) {
                const float *xt = x + t * ldx + c * D::CH;
                for (int l = 0; l < D::CH; l++) {
                    acc[t] = __fmaf_rn(wv[l], xt[l], acc[t]);
                }
            }
        }
    }
    for (int t = 0; t < MAXT; t++) {
        for (int off = 16; off > 0; off >>= 1) {
            acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], off);
        }
    }
    if (lane == 0) {
        for (int t = 0; t < MAXT && t < n_tok; t++) {
            y[t * ldy + o] = acc[t];
        }
    }
}

template <class D>
__global__ void mmv_kernel(const uint8_t *w, size_t row_bytes, int64_t n_out, int64_t n_in,
                           const float *x, int n_tok, float *y)
{
    const int64_t o = (int64_t)blockIdx.x * MMV_WARPS + (int64_t)(threadIdx.x >> 5);
    if (o < n_out) { // whole warps only: blockDim.x is MMV_WARPS·32
        mmv_row<D>(w, row_bytes, n_in, x, n_in, n_tok, y, n_out, o, (int)(threadIdx.x & 31));
    }
}

// Up to IMC_CUDA_MMV_GROUP_MAX jobs of one launch, by value in its parameters.
struct mmv_jobs {
    struct imc_cuda_mmv_job j[IMC_CUDA_MMV_GROUP_MAX];
};
static_assert(sizeof(mmv_jobs) + 48 <= 4096, "a launch's parameters stay under 4 KB");

// Job blockIdx.y of jobs: its own weights, tokens and outputs.
template <class D>
__global__ void mmv_group_kernel(const mmv_jobs jobs, size_t row_bytes, int64_t n_out,
                                 int64_t n_in, int64_t ldx, int64_t ldy)
{
    const struct imc_cuda_mmv_job j = jobs.j[blockIdx.y];
    const int64_t o = (int64_t)blockIdx.x * MMV_WARPS + (int64_t)(threadIdx.x >> 5);
    if (o < n_out) {
        mmv_row<D>((const uint8_t *)j.w, row_bytes, n_in, j.x, ldx, (int)j.n_tok, j.y, ldy, o,
                   (int)(threadIdx.x & 31));
    }
}

template <class D>
enum imc_status launch(void *stream, const void *w, int64_t n_out, int64_t n_in, const float *x,
                       int n_tok, float *y)
{
    const size_t row_bytes = qdec::row_bytes<D>(n_in);
    const int64_t blocks = (n_out + MMV_WARPS - 1) / MMV_WARPS;
    if (blocks > 0x7fffffff) {
        IMC_LOG_ERR("cuda mmv: %lld output rows: more than the grid holds", (long long)n_out);
        return IMC_ERR_ARG;
    }
    void (*const mmv)(const uint8_t *, size_t, int64_t, int64_t, const float *, int, float *) =
        mmv_kernel<D>;
    IMC_LAUNCH(mmv, dim3((unsigned)blocks), dim3(MMV_WARPS * 32), 0, stream, (const uint8_t *)w,
               row_bytes, n_out, n_in, x, n_tok, y);
    return imc_cuda_check_launch("mmv_kernel");
}

template <class D>
enum imc_status launch_group(void *stream, const struct imc_cuda_mmv_job *jobs, int n_jobs,
                             int64_t n_out, int64_t n_in, int64_t ldx, int64_t ldy)
{
    const size_t row_bytes = qdec::row_bytes<D>(n_in);
    const int64_t blocks = (n_out + MMV_WARPS - 1) / MMV_WARPS;
    if (blocks > 0x7fffffff) {
        IMC_LOG_ERR("cuda mmv_group: %lld output rows: more than the grid holds",
                    (long long)n_out);
        return IMC_ERR_ARG;
    }
    void (*const k)(const mmv_jobs, size_t, int64_t, int64_t, int64_t, int64_t) =
        mmv_group_kernel<D>;
    for (int j0 = 0; j0 < n_jobs; j0 += IMC_CUDA_MMV_GROUP_MAX) {
        const int nj = n_jobs - j0 < IMC_CUDA_MMV_GROUP_MAX ? n_jobs - j0 : IMC_CUDA_MMV_GROUP_MAX;
        mmv_jobs p;
        memset(&p, 0, sizeof(p));
        memcpy(p.j, jobs + j0, (size_t)nj * sizeof(p.j[0]));
        IMC_LAUNCH(k, dim3((unsigned)blocks, (unsigned)nj), dim3(MMV_WARPS * 32), 0, stream, p,
                   row_bytes, n_out, n_in, ldx, ldy);
        IMC_TRY(imc_cuda_check_launch("mmv_group_kernel"));
    }
    return IMC_OK;
}

} // namespace

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(mmv)(void *stream, enum imc_type type, const void *w,
                                                 int64_t n_out, int64_t n_in, const float *x,
                                                 int n_tok, float *y)
{
    IMC_TRY(qdec::check_shape("cuda mmv", type, n_in));
    if (n_tok < 1 || n_tok > MAXT || n_out < 0) {
        IMC_LOG_ERR("cuda mmv: %d tokens, %lld rows: expected 1..%d tokens and rows >= 0", n_tok,
                    (long long)n_out, MAXT);
        return IMC_ERR_ARG;
    }
    if (n_out == 0) {
        return IMC_OK;
    }
    switch (type) {
#define X(NAME, D)                                                                                 \
    case IMC_TYPE_##NAME:                                                                          \
        return launch<D>(stream, w, n_out, n_in, x, n_tok, y);
        IMC_CUDA_TYPES(X)
#undef X
    default:
        return IMC_ERR_INTERNAL; // check_shape let an unsupported type through
    }
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(mmv_group)(void *stream, enum imc_type type,
                                                       const struct imc_cuda_mmv_job *jobs,
                                                       int n_jobs, int64_t n_out, int64_t n_in,
                                                       int64_t ldx, int64_t ldy)
{
    IMC_TRY(qdec::check_shape("cuda mmv_group", type, n_in));
    if (n_jobs < 0 || n_out < 0 || ldx < n_in || ldy < n_out) {
        IMC_LOG_ERR("cuda mmv_group: %d jobs, %lld x %lld weights, ldx %lld, ldy %lld: bad shape",
                    n_jobs, (long long)n_out, (long long)n_in, (long long)ldx, (long long)ldy);
        return IMC_ERR_ARG;
    }
    if (n_jobs == 0 || n_out == 0) {
        return IMC_OK;
    }
    switch (type) {
#define X(NAME, D)                                                                                 \
    case IMC_TYPE_##NAME:                                                                          \
        return launch_group<D>(stream, jobs, n_jobs, n_out, n_in, ldx, ldy);
        IMC_CUDA_TYPES(X)
#undef X
    default:
        return IMC_ERR_INTERNAL;
    }
}
