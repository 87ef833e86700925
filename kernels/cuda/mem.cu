/*
 * kernels/cuda/mem: device memory, copies and the device count behind the launchers of
 * kernels/cuda/kern_decl.h ("mem.cu" section). In the emulator the device memory is host memory
 * (kernels/cuda/emu/runtime.cc).
 */
#include "kernels/cuda/cuda_common.cuh"

#include "kernels/cuda/kern_decl.h"

extern "C" enum imc_status IMC_CUDA_FN(dev_alloc)(size_t bytes, void **p)
{
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        IMC_LOG_ERR("cuda: cannot allocate %zu bytes of device memory: %s", bytes,
                    cudaGetErrorString(e));
        (void)cudaGetLastError(); // reported here, not again at the next launch check
        *p = NULL;
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

extern "C" void IMC_CUDA_FN(dev_free)(void *p)
{
    if (p) {
        (void)cudaFree(p);
    }
}

extern "C" enum imc_status IMC_CUDA_FN(copy_to_dev)(void *stream, void *dst, const void *src,
                                                    size_t bytes)
{
    IMC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, (cudaStream_t)stream));
    return IMC_OK;
}

extern "C" enum imc_status IMC_CUDA_FN(copy_to_host)(void *stream, void *dst, const void *src,
                                                     size_t bytes)
{
    IMC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, (cudaStream_t)stream));
    IMC_CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    return IMC_OK;
}

extern "C" enum imc_status IMC_CUDA_FN(dev_memset)(void *stream, void *p, int v, size_t bytes)
{
    IMC_CUDA_CHECK(cudaMemsetAsync(p, v, bytes, (cudaStream_t)stream));
    return IMC_OK;
}

extern "C" enum imc_status IMC_CUDA_FN(sync)(void *stream)
{
    IMC_CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    return IMC_OK;
}

extern "C" enum imc_status IMC_CUDA_FN(set_device)(int dev)
{
    IMC_CUDA_CHECK(cudaSetDevice(dev));
    return IMC_OK;
}

extern "C" enum imc_status IMC_CUDA_FN(pci_bus_id)(int dev, char *buf, int len)
{
    IMC_CUDA_CHECK(cudaDeviceGetPCIBusId(buf, len, dev));
    return IMC_OK;
}

extern "C" enum imc_status IMC_CUDA_FN(mem_info)(size_t *free, size_t *total)
{
    *free = *total = 0;
    IMC_CUDA_CHECK(cudaMemGetInfo(free, total));
    return IMC_OK;
}

extern "C" enum imc_status IMC_CUDA_FN(device_count)(int *n)
{
    *n = 0;
    cudaError_t e = cudaGetDeviceCount(n);
    if (e != cudaSuccess) { // no driver or no device: not an error, none to use
        *n = 0;
        (void)cudaGetLastError();
    }
    return IMC_OK;
}
