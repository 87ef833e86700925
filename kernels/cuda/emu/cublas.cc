/*
 * kernels/cuda/emu/cublas: the emulated cuBLAS subset of cuemu_cublas.h (cublasGemmEx and the
 * handle) on the emulator's host memory; the contract it models is in that header.
 */
#include "kernels/cuda/emu/cuemu_cublas.h"

#include <cstdio>
#include <new>

struct cuemu_cublas_ctx {
    cublasMath_t math;
    cudaStream_t stream;
};

namespace
{

thread_local unsigned long long t_calls = 0; // products computed (cuemu_cublas_calls)

// Bytes of an element of t: 0 for a type the emulation does not hold.
size_t type_size(cudaDataType t)
{
    switch (t) {
    case CUDA_R_32F:
        return 4;
    case CUDA_R_16F:
    case CUDA_R_16BF:
        return 2;
    }
    return 0;
}

// Whether (a, b, c) is one of cuBLAS's combinations for CUBLAS_COMPUTE_32F and its variants.
bool types_ok(cudaDataType a, cudaDataType b, cudaDataType c)
{
    if (a != b) {
        return false;
    }
    return a == CUDA_R_32F ? c == CUDA_R_32F : type_size(a) == 2 && (c == a || c == CUDA_R_32F);
}

// f32 rounded to TF32 (10 bits of mantissa, to nearest even); NaN and infinity kept.
float tf32(float f)
{
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7f800000u) != 0x7f800000u) {
        x = (x + 0xfffu + ((x >> 13) & 1u)) & ~0x1fffu;
    }
    std::memcpy(&f, &x, 4);
    return f;
}

// Element i of the array p of type t, as f32 (TF32 rounded with round_tf32).
float load(const void *p, cudaDataType t, size_t i, bool round_tf32)
{
    if (t == CUDA_R_32F) {
        const float v = static_cast<const float *>(p)[i];
        return round_tf32 ? tf32(v) : v;
    }
    const unsigned short h = static_cast<const unsigned short *>(p)[i];
    return t == CUDA_R_16BF ? cuemu_bf16_to_f32(h) : cuemu_f16_to_f32(h);
}

void store(void *p, cudaDataType t, size_t i, float v)
{
    if (t == CUDA_R_32F) {
        static_cast<float *>(p)[i] = v;
    } else {
        static_cast<unsigned short *>(p)[i] =
            t == CUDA_R_16BF ? cuemu_f32_to_bf16(v) : cuemu_f32_to_f16(v);
    }
}

// Whether a column-major rows x cols matrix at p with leading dimension ld (elements of es
// bytes) lies in one device allocation; a fault on the device otherwise (the sticky error).
bool on_device(const char *what, const void *p, int rows, int cols, int ld, size_t es)
{
    if (rows == 0 || cols == 0) {
        return true;
    }
    const size_t bytes = ((size_t)(cols - 1) * (size_t)ld + (size_t)rows) * es;
    if (cuemu::dev_has(p, bytes)) {
        return true;
    }
    cuemu::set_error(cudaErrorIllegalAddress,
                     "cublasGemmEx: %s (%p, %zu bytes: %d x %d, ld %d) is not in one device "
                     "allocation: an illegal memory access was encountered",
                     what, p, bytes, rows, cols, ld);
    return false;
}

// cuBLAS's check of an argument: false (and a line on stderr naming it, as the emulation's
// diagnosis of CUBLAS_STATUS_INVALID_VALUE) when ok is false.
bool arg_ok(bool ok, const char *what, long long v, long long min)
{
    if (!ok) {
        fprintf(stderr, "cuemu cublasGemmEx: %s = %lld, below its minimum %lld\n", what, v, min);
    }
    return ok;
}

int max1(int v)
{
    return v > 1 ? v : 1;
}

} // namespace

cublasStatus_t cuemu_cublas_create(cublasHandle_t *handle)
{
    *handle = new (std::nothrow) cuemu_cublas_ctx{CUBLAS_DEFAULT_MATH, nullptr};
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cuemu_cublas_destroy(cublasHandle_t handle)
{
    if (!handle) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cuemu_cublas_set_math_mode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!handle) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cuemu_cublas_set_stream(cublasHandle_t handle, cudaStream_t stream)
{
    if (!handle) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cuemu_cublas_gemm_ex(cublasHandle_t handle, cublasOperation_t transa,
                                    cublasOperation_t transb, int m, int n, int k,
                                    const void *alpha, const void *a, cudaDataType atype, int lda,
                                    const void *b, cudaDataType btype, int ldb, const void *beta,
                                    void *c, cudaDataType ctype, int ldc,
                                    cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
    (void)algo; // every algorithm computes the same product
    if (!handle) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    const bool op_ok = (transa == CUBLAS_OP_N || transa == CUBLAS_OP_T || transa == CUBLAS_OP_C) &&
                       (transb == CUBLAS_OP_N || transb == CUBLAS_OP_T || transb == CUBLAS_OP_C);
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    if (!op_ok || !arg_ok(m >= 0, "m", m, 0) || !arg_ok(n >= 0, "n", n, 0) ||
        !arg_ok(k >= 0, "k", k, 0) ||
        !arg_ok(lda >= max1(ta ? k : m), "lda", lda, max1(ta ? k : m)) ||
        !arg_ok(ldb >= max1(tb ? n : k), "ldb", ldb, max1(tb ? n : k)) ||
        !arg_ok(ldc >= max1(m), "ldc", ldc, max1(m))) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!types_ok(atype, btype, ctype) ||
        (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC &&
         compute != CUBLAS_COMPUTE_32F_FAST_TF32)) {
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (m == 0 || n == 0) {
        return CUBLAS_STATUS_SUCCESS;
    }
    const size_t ea = type_size(atype), ec = type_size(ctype);
    // op(A) is m x k: stored k x m (T) or m x k (N); op(B) is k x n: stored n x k or k x n.
    if (!on_device("A", a, ta ? k : m, ta ? m : k, lda, ea) ||
        !on_device("B", b, tb ? n : k, tb ? k : n, ldb, ea) || !on_device("C", c, m, n, ldc, ec)) {
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    const bool round_tf32 =
        atype == CUDA_R_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC &&
        (compute == CUBLAS_COMPUTE_32F_FAST_TF32 || handle->math == CUBLAS_TF32_TENSOR_OP_MATH);
    const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < m; i++) {
            float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int p = 0; p < k; p++) {
                const size_t ia = ta ? (size_t)i * lda + p : (size_t)p * lda + i;
                const size_t ib = tb ? (size_t)p * ldb + j : (size_t)j * ldb + p;
                s[p % 4] =
                    fmaf(load(a, atype, ia, round_tf32), load(b, btype, ib, round_tf32), s[p % 4]);
            }
            const size_t ic = (size_t)j * ldc + i;
            float v = al * ((s[0] + s[1]) + (s[2] + s[3]));
            if (be != 0.0f) {
                v = fmaf(be, load(c, ctype, ic, false), v);
            }
            store(c, ctype, ic, v);
        }
    }
    t_calls++;
    cuemu::count_launch();
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" unsigned long long cuemu_cublas_calls(void)
{
    return t_calls;
}

const char *cuemu_cublas_status_string(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS:
        return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
        return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED:
        return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}
