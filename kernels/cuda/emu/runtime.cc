/*
 * kernels/cuda/emu/runtime: the CUDA runtime API subset of the emulator (cuemu.h) on host
 * memory: allocation (new memory filled with 0xFF so that reads of unwritten device memory
 * show), copies, memset, synchronization (everything is synchronous), one emulated device, and
 * the sticky launch error with its message. The error state is per host thread, as in CUDA.
 */
#include "kernels/cuda/emu/cuemu.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace cuemu
{

namespace
{
thread_local cudaError_t t_err = cudaSuccess; // sticky until cudaGetLastError
thread_local cudaError_t t_msg_err = cudaSuccess;
thread_local char t_msg[1024];
} // namespace

void set_error(cudaError_t err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void set_error(cudaError_t err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_msg, sizeof(t_msg), fmt, ap);
    va_end(ap);
    t_msg_err = err;
    if (t_err == cudaSuccess) {
        t_err = err;
    }
}

} // namespace cuemu

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    *p = malloc(bytes ? bytes : 1);
    if (!*p) {
        cuemu::set_error(cudaErrorMemoryAllocation, "cudaMalloc: out of memory (%zu bytes)", bytes);
        return cudaErrorMemoryAllocation;
    }
    memset(*p, 0xff, bytes);
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
    (void)kind;
    if (n) {
        memmove(dst, src, n);
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    (void)stream;
    return cudaMemcpy(dst, src, n, kind);
}

cudaError_t cudaMemset(void *p, int v, size_t n)
{
    if (n) {
        memset(p, v, n);
    }
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t stream)
{
    (void)stream;
    return cudaMemset(p, v, n);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    (void)stream;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1; // the emulated device
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = cuemu::t_err;
    cuemu::t_err = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void)
{
    return cuemu::t_err;
}

const char *cudaGetErrorString(cudaError_t err)
{
    if (err != cudaSuccess && err == cuemu::t_msg_err) {
        return cuemu::t_msg;
    }
    switch (err) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorLaunchFailure:
        return "unspecified launch failure";
    }
    return "unknown error";
}
