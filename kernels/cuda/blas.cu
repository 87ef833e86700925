/*
 * kernels/cuda/blas.cu: the cuBLAS GEMM of the device op table (kernels/cuda/table.cu): y = W·xᵀ
 * with W an f32 tile (dequantized on the device by dequant.cu), f32 inputs, f32 accumulation
 * (cublasGemmEx, CUBLAS_COMPUTE_32F, no TF32); or, for --matmul q8 (blas_gemm_bf16), W and x in
 * bf16 with f32 accumulation (the tensor cores' bf16 path). A handle per op-table context
 * (blas_create), which opens cuBLAS at run time (dlopen of the soname compiled against): the
 * program does not link it, so processes without a device table never load it.
 *
 * cuBLAS is column-major: y row-major [n_tok][ldy] is the column-major n_out x n_tok matrix C
 * (ldc = ldy); W row-major [n_out][n_in] is column-major n_in x n_out, used transposed
 * (lda = n_in); x row-major [n_tok][n_in] is column-major n_in x n_tok (ldb = n_in). So
 * C = op_T(W) · x: cublasGemmEx(T, N, m = n_out, n = n_tok, k = n_in).
 *
 * cuBLAS picks its kernel by shape, so a token's row may differ in the last bits with the batch
 * size (the tiled kernel of gemm.cu does not); run to run on one GPU the bits are the same.
 * In the emulator the same calls go to the emulated cuBLAS (kernels/cuda/emu/cuemu_cublas.h:
 * cuBLAS's argument checks, device pointers, TF32 only where asked for, an order of sums of its
 * own), so these arguments run in CI and in every engine test on the emulated table; the real
 * library runs on a GPU only.
 */
#include "kernels/cuda/cuda_common.cuh"

#include "kernels/cuda/kern_decl.h"

#include <stdlib.h>
#include <string.h>

#ifdef IMC_CUDA_EMU
#include "kernels/cuda/emu/cuemu_cublas.h"
#else
#include <cublas_v2.h>
#include <dlfcn.h>
#include <type_traits>
#define BLAS_STR_(x) #x
#define BLAS_STR(x) BLAS_STR_(x)
// The soname of the cuBLAS this file was compiled against (libcublas.so.13).
#define BLAS_SONAME "libcublas.so." BLAS_STR(CUBLAS_VER_MAJOR)
#endif

// Both builds of this file can be linked into one program (a test binary of the CUDA build), each
// with its own layout of this: a local type, used through a void pointer by the launchers.
namespace
{

// A handle: cuBLAS's entry points and its handle. The device build opens cuBLAS at run time
// (dlopen counts references): the executable does not link it, so a process that never creates
// a handle (a CPU-only run, a CPU rank) never maps cuBLAS and cuBLASLt (~600 MB, whose
// relocations took 0.34 s of every process start on the test VM). The emulator binds its own
// (kernels/cuda/emu/cuemu_cublas.h), so the calls below run in the tests.
struct blas {
    void *lib; // the dlopen handle (device build), or NULL
    cublasHandle_t h;
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*destroy)(cublasHandle_t);
    cublasStatus_t (*set_math_mode)(cublasHandle_t, cublasMath_t);
    cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                              const void *, const void *, cudaDataType, int, const void *,
                              cudaDataType, int, const void *, void *, cudaDataType, int,
                              cublasComputeType_t, cublasGemmAlgo_t); // (C++ overloads it)
    const char *(*status_string)(cublasStatus_t);
};

#ifdef IMC_CUDA_EMU

// The emulator's cuBLAS; IMC_CUEMU_NO_CUBLAS=1 in the environment makes it missing, as a
// machine without libcublas (the table's fallback to gemm.cu, tested so).
bool blas_open(struct blas *b)
{
    const char *off = getenv("IMC_CUEMU_NO_CUBLAS");
    if (off && *off && strcmp(off, "0") != 0) {
        IMC_LOG_DBG("cuda: cannot load cuBLAS (IMC_CUEMU_NO_CUBLAS=%s): batches use the tiled "
                    "gemm kernel",
                    off);
        return false;
    }
    b->lib = NULL;
    b->create = cuemu_cublas_create;
    b->destroy = cuemu_cublas_destroy;
    b->set_math_mode = cuemu_cublas_set_math_mode;
    b->set_stream = cuemu_cublas_set_stream;
    b->gemm_ex = cuemu_cublas_gemm_ex;
    b->status_string = cuemu_cublas_status_string;
    return true;
}

void blas_close(struct blas *b)
{
    (void)b;
}

#else

// The entry points' types are cuBLAS's own (the emulator's declare the same).
static_assert(
    std::is_same<decltype(&cublasCreate_v2), decltype(blas::create)>::value &&
        std::is_same<decltype(&cublasDestroy_v2), decltype(blas::destroy)>::value &&
        std::is_same<decltype(&cublasSetMathMode), decltype(blas::set_math_mode)>::value &&
        std::is_same<decltype(&cublasSetStream_v2), decltype(blas::set_stream)>::value &&
        std::is_same<decltype(&cublasGetStatusString), decltype(blas::status_string)>::value,
    "cuBLAS's entry points changed type");

#define BLAS_SYM(b, field, name)                                                                   \
    (((b)->field = reinterpret_cast<decltype((b)->field)>(dlsym((b)->lib, name))) != NULL)

// Opens cuBLAS into b's entry points; false (logged) where the library or a symbol is missing.
bool blas_open(struct blas *b)
{
    b->lib = dlopen(BLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!b->lib) {
        IMC_LOG_WRN("cuda: cannot load cuBLAS (%s): batches use the tiled gemm kernel", dlerror());
        return false;
    }
    if (BLAS_SYM(b, create, "cublasCreate_v2") && BLAS_SYM(b, destroy, "cublasDestroy_v2") &&
        BLAS_SYM(b, set_math_mode, "cublasSetMathMode") &&
        BLAS_SYM(b, set_stream, "cublasSetStream_v2") && BLAS_SYM(b, gemm_ex, "cublasGemmEx") &&
        BLAS_SYM(b, status_string, "cublasGetStatusString")) {
        return true;
    }
    IMC_LOG_WRN("cuda: %s lacks an entry point (%s): batches use the tiled gemm kernel",
                BLAS_SONAME, dlerror());
    dlclose(b->lib);
    b->lib = NULL;
    return false;
}

void blas_close(struct blas *b)
{
    dlclose(b->lib);
}

#endif // IMC_CUDA_EMU

} // namespace

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(blas_create)(void **handle)
{
    *handle = NULL;
    struct blas *b = (struct blas *)calloc(1, sizeof(*b));
    if (!b) {
        return IMC_ERR_NOMEM;
    }
    if (!blas_open(b)) {
        free(b);
        return IMC_ERR_UNSUPPORTED;
    }
    const cublasStatus_t s = b->create(&b->h);
    if (s != CUBLAS_STATUS_SUCCESS) {
        IMC_LOG_ERR("cuda: cublasCreate: %s", b->status_string(s));
        blas_close(b);
        free(b);
        return s == CUBLAS_STATUS_ALLOC_FAILED ? IMC_ERR_NOMEM : IMC_ERR_CUDA;
    }
    (void)b->set_math_mode(b->h, CUBLAS_DEFAULT_MATH); // no TF32 down-conversion
    *handle = b;
    return IMC_OK;
}

IMC_CUDA_EXTERN void IMC_CUDA_FN(blas_free)(void *handle)
{
    struct blas *b = (struct blas *)handle;
    if (b) {
        (void)b->destroy(b->h);
        blas_close(b);
        free(b);
    }
}

// y = W·xᵀ with W and x of cuBLAS type in (f32 or bf16), f32 accumulation and output.
static enum imc_status gemm_of(void *handle, void *stream, cudaDataType in, const void *w,
                               int64_t n_out, int64_t n_in, const void *x, int64_t n_tok, float *y,
                               int64_t ldy)
{
    if (n_out == 0 || n_tok == 0) {
        return IMC_OK;
    }
    if (n_out > INT32_MAX || n_in > INT32_MAX || n_tok > INT32_MAX || ldy > INT32_MAX) {
        return IMC_ERR_UNSUPPORTED; // the caller falls back to the tiled kernel
    }
    const struct blas *b = (const struct blas *)handle;
    cublasStatus_t s = b->set_stream(b->h, (cudaStream_t)stream);
    const float one = 1.0f, zero = 0.0f;
    if (s == CUBLAS_STATUS_SUCCESS) {
        s = b->gemm_ex(b->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)n_out, (int)n_tok, (int)n_in, &one, w,
                       in, (int)n_in, x, in, (int)n_in, &zero, y, CUDA_R_32F, (int)ldy,
                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }
    if (s != CUBLAS_STATUS_SUCCESS) {
        IMC_LOG_ERR("cuda: cublasGemmEx (%s, %lld x %lld weights, %lld tokens): %s",
                    in == CUDA_R_16BF ? "bf16" : "f32", (long long)n_out, (long long)n_in,
                    (long long)n_tok, b->status_string(s));
        return IMC_ERR_CUDA;
    }
    return IMC_OK;
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(blas_gemm)(void *handle, void *stream, const float *w,
                                                       int64_t n_out, int64_t n_in, const float *x,
                                                       int64_t n_tok, float *y, int64_t ldy)
{
    return gemm_of(handle, stream, CUDA_R_32F, w, n_out, n_in, x, n_tok, y, ldy);
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(blas_gemm_bf16)(void *handle, void *stream,
                                                            const uint16_t *w, int64_t n_out,
                                                            int64_t n_in, const uint16_t *x,
                                                            int64_t n_tok, float *y, int64_t ldy)
{
    return gemm_of(handle, stream, CUDA_R_16BF, w, n_out, n_in, x, n_tok, y, ldy);
}
