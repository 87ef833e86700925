/*
 * kernels/cuda/blas.cu: the cuBLAS GEMM of the device op table (kernels/cuda/table.cu): y = W·xᵀ
 * with W an f32 tile (dequantized on the device by dequant.cu), f32 inputs, f32 accumulation
 * (cublasGemmEx, CUBLAS_COMPUTE_32F, no TF32). A handle per op-table context (blas_create).
 *
 * cuBLAS is column-major: y row-major [n_tok][ldy] is the column-major n_out x n_tok matrix C
 * (ldc = ldy); W row-major [n_out][n_in] is column-major n_in x n_out, used transposed
 * (lda = n_in); x row-major [n_tok][n_in] is column-major n_in x n_tok (ldb = n_in). So
 * C = op_T(W) · x: cublasGemmEx(T, N, m = n_out, n = n_tok, k = n_in).
 *
 * cuBLAS picks its kernel by shape, so a token's row may differ in the last bits with the batch
 * size (the tiled kernel of gemm.cu does not); run to run on one GPU the bits are the same.
 * In the emulator there is no cuBLAS: blas_create reports IMC_ERR_UNSUPPORTED and the table
 * uses gemm.cu. Device-only code: compiled by nvcc in CI, not run there (no GPU).
 */
#include "kernels/cuda/cuda_common.cuh"

#include "kernels/cuda/kern_decl.h"

#ifndef IMC_CUDA_EMU

#include <cublas_v2.h>

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(blas_create)(void **handle)
{
    cublasHandle_t h = NULL;
    const cublasStatus_t s = cublasCreate(&h);
    if (s != CUBLAS_STATUS_SUCCESS) {
        IMC_LOG_ERR("cuda: cublasCreate: %s", cublasGetStatusString(s));
        *handle = NULL;
        return s == CUBLAS_STATUS_ALLOC_FAILED ? IMC_ERR_NOMEM : IMC_ERR_CUDA;
    }
    (void)cublasSetMathMode(h, CUBLAS_DEFAULT_MATH); // no TF32 down-conversion
    *handle = h;
    return IMC_OK;
}

IMC_CUDA_EXTERN void IMC_CUDA_FN(blas_free)(void *handle)
{
    if (handle) {
        (void)cublasDestroy((cublasHandle_t)handle);
    }
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(blas_gemm)(void *handle, void *stream, const float *w,
                                                       int64_t n_out, int64_t n_in, const float *x,
                                                       int64_t n_tok, float *y, int64_t ldy)
{
    if (n_out == 0 || n_tok == 0) {
        return IMC_OK;
    }
    if (n_out > INT32_MAX || n_in > INT32_MAX || n_tok > INT32_MAX || ldy > INT32_MAX) {
        return IMC_ERR_UNSUPPORTED; // the caller falls back to the tiled kernel
    }
    cublasHandle_t h = (cublasHandle_t)handle;
    cublasStatus_t s = cublasSetStream(h, (cudaStream_t)stream);
    const float one = 1.0f, zero = 0.0f;
    if (s == CUBLAS_STATUS_SUCCESS) {
        s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)n_out, (int)n_tok, (int)n_in, &one, w,
                         CUDA_R_32F, (int)n_in, x, CUDA_R_32F, (int)n_in, &zero, y, CUDA_R_32F,
                         (int)ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }
    if (s != CUBLAS_STATUS_SUCCESS) {
        IMC_LOG_ERR("cuda: cublasGemmEx (%lld x %lld weights, %lld tokens): %s", (long long)n_out,
                    (long long)n_in, (long long)n_tok, cublasGetStatusString(s));
        return IMC_ERR_CUDA;
    }
    return IMC_OK;
}

#else // the emulator: no cuBLAS

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(blas_create)(void **handle)
{
    *handle = NULL;
    return IMC_ERR_UNSUPPORTED;
}

IMC_CUDA_EXTERN void IMC_CUDA_FN(blas_free)(void *handle)
{
    (void)handle;
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(blas_gemm)(void *handle, void *stream, const float *w,
                                                       int64_t n_out, int64_t n_in, const float *x,
                                                       int64_t n_tok, float *y, int64_t ldy)
{
    (void)handle, (void)stream, (void)w, (void)n_out, (void)n_in, (void)x, (void)n_tok, (void)y,
        (void)ldy;
    return IMC_ERR_UNSUPPORTED;
}

#endif // IMC_CUDA_EMU
