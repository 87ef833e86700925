/*
 * kernels/cuda/mmq.cu: y = W·x for matmuls past mmv's token counts, straight on the weight rows
 * in their GGUF type, on the tensor cores: the batch matmul of an MoE layer's experts (and of
 * any matmul of up to IMC_CUDA_MMQ_TOKENS tokens) without a dequantized copy of the weights in
 * device memory. DESIGN.md §4; issue 13.
 *
 * Before it, each such expert dequantized its whole matrix to bf16 in device memory and ran a
 * cuBLAS GEMM on it: two launches per expert, and per weight 2 bytes written and read again on
 * top of its quantized bytes (4.6 bytes a q4_K weight moves against its 0.56).
 *
 * The arithmetic is the table's bf16 batch path (table.cu batch_mm, --matmul q8): each weight
 * decoded (kernels/cuda/qdecode.cuh, the CPU decoder's value bit for bit) and rounded to bf16,
 * each activation rounded to bf16 (round to nearest even), products exact, sums in f32 (wmma
 * bf16 16 x 16 x 16 with an f32 accumulator). In the emulator (kernels/cuda/emu: mma_sync is an
 * fmaf chain) every output is one fmaf chain over i = 0 .. n_in - 1 from +0, the bits of
 * dequantize-to-bf16 + gemm_bf16 (the padding's zero products leave an accumulator that started
 * at +0 unchanged); on a device the tensor cores add in their own order, the same on every run.
 *
 * The work: a block of 4 warps computes a tile of 64 rows x 64 tokens of one job (grid: x the
 * row tiles, y the job, z the token tiles; blocks past a job's tokens return at once), each warp
 * 32 x 32 (2 x 2 accumulators). Per step of 64 columns the block decodes the tile's weights
 * into shared memory as bf16 (64 x 64, 4 chunks of 8 per thread) and rounds the tokens' x
 * there (64 x 64), then each warp runs 4 x 4 mma. So a weight is decoded once per 64 tokens
 * and read from memory once per token tile. The outputs go through shared memory (column-major
 * 64 x 64 f32), written where row < n_out and token < n_tok, contiguous along the rows.
 *
 * Speed: not measured on a GPU yet (scripts/gpu-check.sh compares the table's lines). What a
 * profile would ask next: cp.async double buffering of the next step's weights, 16-byte weight
 * loads, larger token tiles for hot experts.
 */
#include "kernels/cuda/qdecode.cuh"

#include "kernels/cuda/kern_decl.h"

namespace
{

constexpr int MQ_ROWS = 64;             // rows of a block's tile
constexpr int MQ_TOK = 64;              // tokens of a block's tile
constexpr int MQ_K = 64;                // columns of a step
constexpr int MQ_THREADS = 128;         // 4 warps, 2 x 2 over the tile
constexpr int MQ_LDS = MQ_K + 8;        // bf16 per staged row (a multiple of 16 bytes)
constexpr int MQ_LDC = MQ_ROWS + 4;     // f32 per staged output column (16 bytes)
constexpr int64_t MQ_MAX_TILES = 65535; // token tiles of a launch (grid.z)

template <class D>
__global__ void __launch_bounds__(MQ_THREADS)
    mmq_group_kernel(const qdec::group_jobs jobs, size_t row_bytes, int64_t n_out, int64_t n_in,
                     int64_t ldx, int64_t ldy)
{
    using namespace nvcuda;
    static_assert(MQ_K % D::CH == 0, "a step holds whole chunks");
    const struct imc_cuda_mmv_job j = jobs.j[blockIdx.y];
    const int64_t o0 = (int64_t)blockIdx.x * MQ_ROWS, t0 = (int64_t)blockIdx.z * MQ_TOK;
    if (t0 >= j.n_tok) {
        return; // the whole block: this job has fewer token tiles than the launch
    }
    __shared__ __align__(32) __nv_bfloat16 ws[MQ_ROWS * MQ_LDS];
    __shared__ __align__(32) __nv_bfloat16 xs[MQ_TOK * MQ_LDS];
    __shared__ __align__(32) float cs[MQ_TOK * MQ_LDC];
    const int tid = (int)threadIdx.x, warp = tid >> 5;
    const int wr = (warp & 1) * 32, wt = (warp >> 1) * 32; // the warp's rows and tokens
    const int nt = j.n_tok - t0 < MQ_TOK ? (int)(j.n_tok - t0) : MQ_TOK;
    const uint8_t *w = (const uint8_t *)j.w;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
    for (int a = 0; a < 2; a++) {
        for (int b = 0; b < 2; b++) {
            wmma::fill_fragment(acc[a][b], 0.0f);
        }
    }
    constexpr int CPR = MQ_K / D::CH; // chunks of a staged row
    for (int64_t k0 = 0; k0 < n_in; k0 += MQ_K) {
        const int kn = n_in - k0 < MQ_K ? (int)(n_in - k0) : MQ_K; // a multiple of CH
        __syncthreads(); // the previous step's fragments are loaded
        for (int l = tid; l < MQ_ROWS * CPR; l += MQ_THREADS) {
            const int r = l / CPR, c = l % CPR;
            float v[D::CH];
            if (o0 + r < n_out && c * D::CH < kn) {
                qdec::dec_chunk<D>(w + (size_t)(o0 + r) * row_bytes, k0 / D::CH + c, v);
            } else {
                for (int e = 0; e < D::CH; e++) {
                    v[e] = 0.0f;
                }
            }
            for (int e = 0; e < D::CH; e++) {
                ws[r * MQ_LDS + c * D::CH + e] = __float2bfloat16_rn(v[e]);
            }
        }
        for (int l = tid; l < MQ_TOK * MQ_K; l += MQ_THREADS) {
            const int t = l / MQ_K, k = l % MQ_K;
            const float v = t < nt && k < kn ? j.x[(t0 + t) * ldx + k0 + k] : 0.0f;
            xs[t * MQ_LDS + k] = __float2bfloat16_rn(v);
        }
        __syncthreads();
        for (int kk = 0; kk < MQ_K; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb[2];
            for (int i = 0; i < 2; i++) {
                wmma::load_matrix_sync(fa[i], ws + (wr + 16 * i) * MQ_LDS + kk, MQ_LDS);
                wmma::load_matrix_sync(fb[i], xs + (wt + 16 * i) * MQ_LDS + kk, MQ_LDS);
            }
            for (int a = 0; a < 2; a++) {
                for (int b = 0; b < 2; b++) {
                    wmma::mma_sync(acc[a][b], fa[a], fb[b], acc[a][b]);
                }
            }
        }
    }
    // (row r, token t) of the tile at cs[t·MQ_LDC + r]
    for (int a = 0; a < 2; a++) {
        for (int b = 0; b < 2; b++) {
            wmma::store_matrix_sync(cs + (wt + 16 * b) * MQ_LDC + wr + 16 * a, acc[a][b], MQ_LDC,
                                    wmma::mem_col_major);
        }
    }
    __syncthreads();
    for (int l = tid; l < MQ_TOK * MQ_ROWS; l += MQ_THREADS) {
        const int t = l / MQ_ROWS, r = l % MQ_ROWS;
        if (t < nt && o0 + r < n_out) {
            j.y[(t0 + t) * ldy + o0 + r] = cs[t * MQ_LDC + r];
        }
    }
}

template <class D>
enum imc_status launch_group(void *stream, const struct imc_cuda_mmv_job *jobs, int n_jobs,
                             int64_t n_out, int64_t n_in, int64_t ldx, int64_t ldy)
{
    const size_t row_bytes = qdec::row_bytes<D>(n_in);
    const int64_t blocks = (n_out + MQ_ROWS - 1) / MQ_ROWS;
    void (*const k)(const qdec::group_jobs, size_t, int64_t, int64_t, int64_t, int64_t) =
        mmq_group_kernel<D>;
    for (int j0 = 0, nj = 0; j0 < n_jobs; j0 += nj) {
        qdec::group_jobs p;
        int64_t most = 0;
        nj = qdec::group_chunk(jobs, n_jobs, j0, &p, &most);
        const int64_t tiles = (most + MQ_TOK - 1) / MQ_TOK;
        IMC_LAUNCH(k, dim3((unsigned)blocks, (unsigned)nj, (unsigned)tiles), dim3(MQ_THREADS), 0,
                   stream, p, row_bytes, n_out, n_in, ldx, ldy);
        IMC_TRY(imc_cuda_check_launch("mmq_group_kernel"));
    }
    return IMC_OK;
}

} // namespace

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(mmq_group)(void *stream, enum imc_type type,
                                                       const struct imc_cuda_mmv_job *jobs,
                                                       int n_jobs, int64_t n_out, int64_t n_in,
                                                       int64_t ldx, int64_t ldy)
{
    IMC_TRY(qdec::check_group("cuda mmq_group", type, jobs, n_jobs, n_out, n_in, ldx, ldy,
                              MQ_MAX_TILES * MQ_TOK, (int64_t)0x7fffffff * MQ_ROWS));
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
