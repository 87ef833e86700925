/*
 * kernels/cuda/mmv.cu: y = W·x for up to IMC_CUDA_MMV_MAX_TOK tokens, straight on the weight
 * rows in their GGUF type (no dequantized copy): the matmul of a GPU rank for few tokens (an MoE
 * layer's experts, MLA's heads; the table decides how few: table.cu). DESIGN.md §4; issue 13.
 *
 * The order of the sums (what every output's bits are): one warp per output row; lane l decodes
 * chunks l, l + 32, ... of the row (CH = 8 elements of one block through
 * kernels/cuda/qdecode.cuh, so the weights are the CPU decoder's values bit for bit) and
 * accumulates w·x for each token with one fma chain per token in chunk order, from +0; the 32
 * lane sums are then added by a fixed xor-shuffle tree (16, 8, 4, 2, 1). Nothing depends on
 * scheduling, on the block a row falls in or on the other tokens: the same inputs give the same
 * bits on every run, in the emulator and on the device (__fmaf_rn everywhere), and a token's
 * outputs are the same whether it comes alone or with 63 others (tests/cuda/test_mmv checks
 * them against a scalar model of this order, bitwise).
 * Error against the exact product of the decoded weights: with m = ceil(n_in / (32·CH))·CH fmas
 * per lane and 5 tree additions, |y - exact| <= γ(m + 5)·Σ_i |w_i·x_i| (γ(k) = k·u / (1 - k·u),
 * u = 2^-24); tests/cuda/test_mmv.c checks (m + 6)·u·Σ|w·x|.
 *
 * The work: a block of MMV_WARPS warps computes MMV_ROWS rows (MMV_RPW per warp, one after the
 * other). The tokens go in passes of MMV_TG (the accumulators a row keeps in registers: MMV_RPW
 * x MMV_TG per thread); in a pass the block stages x in shared memory MMV_STEP columns at a time
 * (a multiple of 32·CH, so each lane's chunks stay in ascending order across the steps), and
 * every warp reads its rows' chunks of the step. So x comes from L2 once per MMV_ROWS rows
 * (it was once per 4 rows, through L1, before the staging: at 16 tokens x's bytes were 28 times
 * a q4_K row's), a row's weights once per pass. Two 16-byte loads give a lane its chunk's 8
 * values of x (lanes 32 bytes apart: two-way bank conflicts).
 *
 * One kernel serves both launchers: mmv_group runs many such products in one launch (grid.y:
 * the job; up to IMC_CUDA_MMV_GROUP_MAX jobs, passed in the kernel's parameters), each job its
 * own weights (an expert's slice), tokens and outputs at shared row strides: the table's grouped
 * expert matmul (table.cu t_matmul_group); mmv is its one job at contiguous rows, so each output
 * of a group is the bits mmv gives it alone.
 *
 * Speed: not measured on a GPU yet (scripts/gpu-check.sh compares the table's thresholds). Next
 * steps where profiles ask for them: 16-byte weight loads, x as bf16 or int8 with the dot
 * products on tensor cores (that changes the bits and the bound above).
 */
#include "kernels/cuda/qdecode.cuh"

#include "kernels/cuda/kern_decl.h"

namespace
{

constexpr int MMV_WARPS = 8;                  // warps of a block
constexpr int MMV_RPW = 4;                    // rows of a warp
constexpr int MMV_ROWS = MMV_WARPS * MMV_RPW; // rows of a block
constexpr int MMV_TG = 8;                     // tokens of a pass (accumulators per row)
constexpr int64_t MMV_STEP = 1024;            // columns of x staged per step
constexpr int MAXT = IMC_CUDA_MMV_MAX_TOK;

// y[t·ldy + o] = W[o]·x[t] for the block's rows o of [row0, row0 + MMV_ROWS) below n_out and
// t < n_tok: x at stride ldx, W's rows row_bytes apart.
template <class D>
__device__ __forceinline__ void mmv_rows(const uint8_t *w, size_t row_bytes, int64_t n_out,
                                         int64_t n_in, const float *x, int64_t ldx, int n_tok,
                                         float *y, int64_t ldy, int64_t row0)
{
    static_assert(MMV_STEP % (32 * D::CH) == 0, "a step holds whole rounds of the 32 lanes");
    __shared__ __align__(16) float xs[MMV_TG * MMV_STEP];
    const int warp = (int)(threadIdx.x >> 5), lane = (int)(threadIdx.x & 31);
    for (int t0 = 0; t0 < n_tok; t0 += MMV_TG) {
        const int nt = n_tok - t0 < MMV_TG ? n_tok - t0 : MMV_TG;
        float acc[MMV_RPW][MMV_TG];
        for (int r = 0; r < MMV_RPW; r++) {
            for (int t = 0; t < MMV_TG; t++) {
                acc[r][t] = 0.0f;
            }
        }
        for (int64_t s0 = 0; s0 < n_in; s0 += MMV_STEP) {
            const int64_t sw = n_in - s0 < MMV_STEP ? n_in - s0 : MMV_STEP;
            __syncthreads(); // the previous step's reads of xs are done
            for (int t = 0; t < nt; t++) {
                const float *xt = x + (int64_t)(t0 + t) * ldx + s0;
                for (int64_t j = threadIdx.x; j < sw; j += blockDim.x) {
                    xs[t * MMV_STEP + j] = xt[j];
                }
            }
            __syncthreads();
            const int64_t c0 = s0 / D::CH, nch = sw / D::CH;
            for (int r = 0; r < MMV_RPW; r++) {
                const int64_t o = row0 + warp * MMV_RPW + r;
                const uint8_t *row = w + (size_t)o * row_bytes;
                for (int64_t c = lane; o < n_out && c < nch; c += 32) {
                    float wv[D::CH];
                    qdec::dec_chunk<D>(row, c0 + c, wv);
                    for (int t = 0; t < MMV_TG; t++) {
                        if (t < nt) {
                            const float *xc = xs + t * MMV_STEP + c * D::CH;
                            if constexpr (D::CH == 8) { // two 16-byte loads of shared memory
                                const float4 a = *(const float4 *)xc, b = *(const float4 *)(xc + 4);
                                const float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
                                for (int l = 0; l < 8; l++) {
                                    acc[r][t] = __fmaf_rn(wv[l], xv[l], acc[r][t]);
                                }
                            } else {
                                for (int l = 0; l < D::CH; l++) {
                                    acc[r][t] = __fmaf_rn(wv[l], xc[l], acc[r][t]);
                                }
                            }
                        }
                    }
                }
            }
        }
        for (int r = 0; r < MMV_RPW; r++) {
            const int64_t o = row0 + warp * MMV_RPW + r;
            if (o >= n_out) { // the warp's later rows are off the end too
                break;
            }
            for (int t = 0; t < nt; t++) {
                float s = acc[r][t];
                for (int off = 16; off > 0; off >>= 1) {
                    s += __shfl_xor_sync(0xffffffffu, s, off);
                }
                if (lane == 0) {
                    y[(int64_t)(t0 + t) * ldy + o] = s;
                }
            }
        }
    }
}

// Job blockIdx.y of jobs: its own weights, tokens and outputs.
template <class D>
__global__ void __launch_bounds__(MMV_WARPS * 32)
    mmv_group_kernel(const qdec::group_jobs jobs, size_t row_bytes, int64_t n_out, int64_t n_in,
                     int64_t ldx, int64_t ldy)
{
    const struct imc_cuda_mmv_job j = jobs.j[blockIdx.y];
    mmv_rows<D>((const uint8_t *)j.w, row_bytes, n_out, n_in, j.x, ldx, (int)j.n_tok, j.y, ldy,
                (int64_t)blockIdx.x * MMV_ROWS);
}

template <class D>
enum imc_status launch_group(void *stream, const struct imc_cuda_mmv_job *jobs, int n_jobs,
                             int64_t n_out, int64_t n_in, int64_t ldx, int64_t ldy)
{
    const size_t row_bytes = qdec::row_bytes<D>(n_in);
    const int64_t blocks = (n_out + MMV_ROWS - 1) / MMV_ROWS;
    void (*const k)(const qdec::group_jobs, size_t, int64_t, int64_t, int64_t, int64_t) =
        mmv_group_kernel<D>;
    for (int j0 = 0, nj = 0; j0 < n_jobs; j0 += nj) {
        qdec::group_jobs p;
        int64_t most = 0; // (mmv's passes cover each job's tokens)
        nj = qdec::group_chunk(jobs, n_jobs, j0, &p, &most);
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
    // one job of mmv_group: its kernel, its bits
    const struct imc_cuda_mmv_job job = {w, x, y, n_tok};
    return IMC_CUDA_FN(mmv_group)(stream, type, &job, 1, n_out, n_in, n_in, n_out);
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(mmv_group)(void *stream, enum imc_type type,
                                                       const struct imc_cuda_mmv_job *jobs,
                                                       int n_jobs, int64_t n_out, int64_t n_in,
                                                       int64_t ldx, int64_t ldy)
{
    IMC_TRY(qdec::check_group("cuda mmv_group", type, jobs, n_jobs, n_out, n_in, ldx, ldy, MAXT,
                              (int64_t)0x7fffffff * MMV_ROWS));
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
