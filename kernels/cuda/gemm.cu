/*
 * kernels/cuda/gemm.cu: y = W·xᵀ for f32 W and x, a tiled GEMM in shared memory: the batch
 * matmul of the device op table (kernels/cuda/table.cu) in the emulator, and its fallback on a
 * device where cuBLAS cannot start (kernels/cuda/blas.cu is the first choice there). The weight
 * tile comes from the dequantize launcher (dequant.cu), so W here is f32 row-major.
 *
 * A block of 16 x 16 threads computes a 64 x 64 tile of y (64 outputs o x 64 tokens t), each
 * thread a 4 x 4 sub-tile; W rows and x rows are staged through shared memory 16 columns at a
 * time. Every output is one __fmaf_rn chain over i = 0, 1, ..., n_in - 1 starting from 0: the
 * arithmetic of imc_cpu_matmul's f32 path (kernels/cpu/gemm.h), so the two give the same bits
 * for the same decoded weights, on every run, grid and token count. Against the exact product:
 * |y - exact| <= γ(n_in)·Σ_i |w_i·x_i| (γ(k) = k·u / (1 - k·u), u = 2^-24); tests/cuda/test_gemm.c
 * checks that bound against kernels/ref (sums in double) and the bits against imc_cpu_matmul.
 *
 * gemm_bf16 takes bf16 W and x (the table's --matmul q8 batches: table.cu batch_mm) and widens
 * each element to f32 as it stages it: a product of two bf16 values is exact in f32 (8 + 8
 * significant bits), so its outputs are bit for bit gemm's on the widened inputs.
 *
 * Speed notes: scalar f32 fmas, no tensor cores; 2 x 16 floats per thread per tile step. It is
 * the reference and the fallback; the fast path on a device is cuBLAS.
 */
#include "kernels/cuda/cuda_common.cuh"

#include "kernels/cuda/kern_decl.h"

namespace
{

constexpr int TS = 16;       // threads per block side
constexpr int SUB = 4;       // outputs per thread side
constexpr int BT = TS * SUB; // 64: block tile side (outputs and tokens)
constexpr int TK = 16;       // columns per shared-memory step

// Element i of an input as f32: an f32 itself, or bf16 bits widened (exact).
__device__ __forceinline__ float in_f32(const float *p, int64_t i)
{
    return p[i];
}

__device__ __forceinline__ float in_f32(const uint16_t *p, int64_t i)
{
    return __uint_as_float((uint32_t)p[i] << 16);
}

template <class T>
__global__ void gemm_kernel(const T *w, int64_t n_out, int64_t n_in, const T *x, int64_t n_tok,
                            float *y, int64_t ldy)
{
    __shared__ float ws[BT][TK + 1];
    __shared__ float xs[BT][TK + 1];
    const int tx = (int)threadIdx.x, ty = (int)threadIdx.y, tid = ty * TS + tx;
    const int64_t o0 = (int64_t)blockIdx.x * BT, t0 = (int64_t)blockIdx.y * BT;
    float acc[SUB][SUB];
    for (int a = 0; a < SUB; a++) {
        for (int b = 0; b < SUB; b++) {
            acc[a][b] = 0.0f;
        }
    }
    for (int64_t k0 = 0; k0 < n_in; k0 += TK) {
        const int kn = n_in - k0 < TK ? (int)(n_in - k0) : TK;
        // 256 threads load 64 x 16 of W and of x each (4 + 4 values per thread), 0 outside.
        for (int l = tid; l < BT * TK; l += TS * TS) {
            const int r = l / TK, c = l % TK;
            const int64_t o = o0 + r, t = t0 + r, k = k0 + c;
            ws[r][c] = o < n_out && c < kn ? in_f32(w, o * n_in + k) : 0.0f;
            xs[r][c] = t < n_tok && c < kn ? in_f32(x, t * n_in + k) : 0.0f;
        }
        __syncthreads();
        for (int c = 0; c < kn; c++) { // only the real columns: no fma with padding zeros
            for (int a = 0; a < SUB; a++) {
                const float wv = ws[ty * SUB + a][c];
                for (int b = 0; b < SUB; b++) {
                    acc[a][b] = __fmaf_rn(wv, xs[tx * SUB + b][c], acc[a][b]);
                }
            }
        }
        __syncthreads();
    }
    for (int b = 0; b < SUB; b++) {
        const int64_t t = t0 + tx * SUB + b;
        for (int a = 0; a < SUB; a++) {
            const int64_t o = o0 + ty * SUB + a;
            if (t < n_tok && o < n_out) {
                y[t * ldy + o] = acc[a][b];
            }
        }
    }
}

// The launch of gemm_kernel<T> after the shape checks (what: the launcher's name).
template <class T>
enum imc_status launch(const char *what, void *stream, const T *w, int64_t n_out, int64_t n_in,
                       const T *x, int64_t n_tok, float *y, int64_t ldy)
{
    if (n_out < 0 || n_in < 1 || n_tok < 0 || ldy < n_out) {
        IMC_LOG_ERR("cuda %s: %lld x %lld weights, %lld tokens, ldy %lld: bad shape", what,
                    (long long)n_out, (long long)n_in, (long long)n_tok, (long long)ldy);
        return IMC_ERR_ARG;
    }
    if (n_out == 0 || n_tok == 0) {
        return IMC_OK;
    }
    const int64_t gx = (n_out + BT - 1) / BT, gy = (n_tok + BT - 1) / BT;
    if (gx > 0x7fffffff || gy > 65535) {
        IMC_LOG_ERR("cuda %s: %lld outputs x %lld tokens: more than the grid holds", what,
                    (long long)n_out, (long long)n_tok);
        return IMC_ERR_ARG;
    }
    IMC_LAUNCH(gemm_kernel<T>, dim3((unsigned)gx, (unsigned)gy), dim3(TS, TS), 0, stream, w,
               n_out, n_in, x, n_tok, y, ldy);
    return imc_cuda_check_launch(what);
}

} // namespace

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(gemm)(void *stream, const float *w, int64_t n_out,
                                                  int64_t n_in, const float *x, int64_t n_tok,
                                                  float *y, int64_t ldy)
{
    return launch("gemm", stream, w, n_out, n_in, x, n_tok, y, ldy);
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(gemm_bf16)(void *stream, const uint16_t *w,
                                                       int64_t n_out, int64_t n_in,
                                                       const uint16_t *x, int64_t n_tok, float *y,
                                                       int64_t ldy)
{
    return launch("gemm_bf16", stream, w, n_out, n_in, x, n_tok, y, ldy);
}
