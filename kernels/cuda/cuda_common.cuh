/*
 * kernels/cuda/cuda_common: the first include of every kernels/cuda/<op>.cu. Under nvcc it brings
 * the CUDA headers; with IMC_CUDA_EMU (the .cu compiled by g++ as C++17 for tests) the emulator
 * (kernels/cuda/emu/cuemu.h, which documents what it models). Both provide:
 *   IMC_LAUNCH(kernel, grid, block, shmem_bytes, stream, args...)  a launch on the opaque stream
 *       (void *, NULL = default stream); a template kernel goes in parentheses, since the comma
 *       of its arguments would split the macro's: IMC_LAUNCH((k<float, 4>), grid, ...) (both
 *       nvcc and the emulator accept it).
 *   IMC_DYN_SHARED(T, name)  declares the block's dynamic shared memory as T *name.
 *   imc_cuda_check_launch(kernel_name)  after a launch: IMC_OK, or IMC_ERR_CUDA logged with the
 *       kernel's name and the runtime's message.
 *   IMC_CUDA_CHECK(call)  a runtime call whose failure returns IMC_ERR_CUDA, logged (and taken
 *       off the runtime's last error, so that the next launch check does not report it again).
 * and the launcher naming of kernels/cuda/launch.h.
 */
#ifndef IMC_KERNELS_CUDA_COMMON_CUH
#define IMC_KERNELS_CUDA_COMMON_CUH

#ifdef IMC_CUDA_EMU
#include "kernels/cuda/emu/cuemu.h"
#define IMC_LAUNCH(kernel, grid, block, shmem, stream, ...)                                        \
    CUEMU_LAUNCH(kernel, grid, block, shmem, stream, ##__VA_ARGS__)
#define IMC_DYN_SHARED(T, name) CUEMU_DYN_SHARED(T, name)
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>
#define IMC_LAUNCH(kernel, grid, block, shmem, stream, ...)                                        \
    kernel<<<(grid), (block), (shmem), (cudaStream_t)(stream)>>>(__VA_ARGS__)
#define IMC_DYN_SHARED(T, name)                                                                    \
    extern __shared__ __align__(16) unsigned char imc_dyn_smem_[];                                 \
    T *name = reinterpret_cast<T *>(imc_dyn_smem_)
#endif // IMC_CUDA_EMU

#include <stddef.h>
#include <stdint.h>

// core/ is C17: its _Noreturn is spelled as the GNU attribute here.
#define _Noreturn __attribute__((noreturn))
extern "C" {
#include "core/log.h"
#include "core/status.h"
}
#undef _Noreturn
#include "kernels/cuda/launch.h"

// After a launch: the launch error (bad configuration, and in the emulator a failed barrier or
// warp check), logged with the kernel's name.
static inline enum imc_status imc_cuda_check_launch(const char *kernel)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        IMC_LOG_ERR("cuda: kernel %s: %s", kernel, cudaGetErrorString(e));
        return IMC_ERR_CUDA;
    }
    return IMC_OK;
}

#define IMC_CUDA_CHECK(call)                                                                       \
    do {                                                                                           \
        cudaError_t imc_cuda_e_ = (call);                                                          \
        if (imc_cuda_e_ != cudaSuccess) {                                                          \
            IMC_LOG_ERR("cuda: %s: %s", #call, cudaGetErrorString(imc_cuda_e_));                   \
            (void)cudaGetLastError(); /* reported here, not again at the next launch check */      \
            return IMC_ERR_CUDA;                                                                   \
        }                                                                                          \
    } while (0)

#endif // IMC_KERNELS_CUDA_COMMON_CUH
