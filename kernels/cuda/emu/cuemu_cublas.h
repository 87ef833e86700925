/*
 * kernels/cuda/emu/cuemu_cublas: the subset of cuBLAS that kernels/cuda/blas.cu calls, emulated
 * for the tests (issue 13 item 5), so that blas.cu's own calls (operations, dimensions, leading
 * dimensions, types, math mode) run in CI and in every engine test on the emulated op table,
 * where before the emulator had no cuBLAS and those calls ran on a GPU only. Included by blas.cu
 * only, under IMC_CUDA_EMU; the functions are named cuemu_cublas_* (blas.cu binds them where the
 * device build binds the library's), so a test binary that also opens the real cuBLAS never
 * interposes on its symbols. The enumerators keep cuBLAS 13's values (cublas_api.h).
 *
 * What it models (cublasGemmEx, column-major, cuBLAS's documented contract):
 *   - C = alpha·op(A)·op(B) + beta·C with op N, T or C (C is T on these real types); alpha and
 *     beta read from host memory (CUBLAS_POINTER_MODE_HOST, the default); beta = 0
 *     does not read C (NaNs there vanish), as cuBLAS;
 *   - the argument checks of cuBLAS, CUBLAS_STATUS_INVALID_VALUE: m, n or k negative, an
 *     operation other than N, T, C, lda < max(1, op(A) N ? m : k), ldb < max(1, op(B) N ? k : n),
 *     ldc < max(1, m); CUBLAS_STATUS_NOT_INITIALIZED without a handle; the type combinations of
 *     CUBLAS_COMPUTE_32F that cuBLAS lists (A, B, C: 32F 32F 32F; 16BF 16BF 16BF|32F; 16F 16F
 *     16F|32F), any other CUBLAS_STATUS_NOT_SUPPORTED;
 *   - the operands are device memory: every byte of op(A), op(B) and C that the product reads or
 *     writes lies in one emulated device allocation (cudaMalloc or the op table's buffers,
 *     cuemu::dev_has); a host pointer, or an extent past its allocation, is what on a device
 *     faults the kernel: here CUBLAS_STATUS_EXECUTION_FAILED and the sticky
 *     cudaErrorIllegalAddress with a message naming the operand, and nothing written;
 *   - TF32: with CUBLAS_TF32_TENSOR_OP_MATH set on the handle, or compute type
 *     CUBLAS_COMPUTE_32F_FAST_TF32, f32 inputs are rounded to TF32 (10 bits of mantissa, to
 *     nearest even) before the products, as the tensor cores take them; with the default math
 *     mode and CUBLAS_COMPUTE_32F they are not (cuBLAS does not down-convert then). So a handle
 *     left in a TF32 mode moves the results by ~2^-11 relative, which the engine tests' bounds
 *     (2e-5 of the largest logit) catch.
 * The order of the sums is the emulator's own: cuBLAS picks its kernels (tiles, split-K) by
 * shape and GPU and does not publish their order. Each output is four fmaf chains from +0 over
 * the columns k ≡ 0, 1, 2, 3 (mod 4) in ascending k, added as (s0 + s1) + (s2 + s3), then
 * alpha·sum (+ beta·C). It is deliberately not the CPU's single chain (kernels/cpu/gemm.h), so a
 * test that held cuBLAS's results to the CPU's bits fails here as it would on a GPU; it depends
 * on k alone (not on m or n), so a row's result does not change with the batch it is in, which
 * cuBLAS does not promise (the GPU check compares layouts within its tolerances).
 * Not modelled: streams (the product completes inside the call; cublasSetStream records the
 * stream), workspaces, algorithms (every cublasGemmAlgo_t is accepted), pointer mode device,
 * batched and Lt entry points, and any type or compute type blas.cu does not use.
 */
#ifndef IMC_KERNELS_CUDA_EMU_CUEMU_CUBLAS_H
#define IMC_KERNELS_CUDA_EMU_CUEMU_CUBLAS_H

#include "kernels/cuda/emu/cuemu.h"

#define CUBLAS_VER_MAJOR 13

enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 };
enum cublasMath_t {
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_TENSOR_OP_MATH = 1,
    CUBLAS_PEDANTIC_MATH = 2,
    CUBLAS_TF32_TENSOR_OP_MATH = 3,
};
enum cublasComputeType_t {
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_PEDANTIC = 69,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
};
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
enum cudaDataType { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };

struct cuemu_cublas_ctx;
typedef struct cuemu_cublas_ctx *cublasHandle_t;

cublasStatus_t cuemu_cublas_create(cublasHandle_t *handle);
cublasStatus_t cuemu_cublas_destroy(cublasHandle_t handle);
cublasStatus_t cuemu_cublas_set_math_mode(cublasHandle_t handle, cublasMath_t mode);
cublasStatus_t cuemu_cublas_set_stream(cublasHandle_t handle, cudaStream_t stream);
cublasStatus_t cuemu_cublas_gemm_ex(cublasHandle_t handle, cublasOperation_t transa,
                                    cublasOperation_t transb, int m, int n, int k,
                                    const void *alpha, const void *a, cudaDataType atype, int lda,
                                    const void *b, cudaDataType btype, int ldb, const void *beta,
                                    void *c, cudaDataType ctype, int ldc,
                                    cublasComputeType_t compute, cublasGemmAlgo_t algo);
const char *cuemu_cublas_status_string(cublasStatus_t s);

#endif // IMC_KERNELS_CUDA_EMU_CUEMU_CUBLAS_H
