/*
 * kernels/cuda/kern_decl: the prototypes of every launcher of kernels/cuda/<op>.cu, written with
 * IMC_CUDA_FN (kernels/cuda/launch.h). Deliberately without include guards: a test includes it
 * once with IMC_CUDA_FN(n) defined as imc_cuemu_##n and once as imc_cuda_##n, and calls either.
 * Pointers are device pointers; stream is an opaque cudaStream_t (NULL = default stream).
 * One section per .cu file.
 */
#include "kernels/cuda/launch.h"
#include <stddef.h>

#include "core/status.h"

// ---- mem.cu: device memory and the device count ----------------------------------------------
// Allocates bytes of device memory into *p (the emulator fills it with 0xFF).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(dev_alloc)(size_t bytes, void **p);
// Frees p (NULL is fine).
IMC_CUDA_EXTERN void IMC_CUDA_FN(dev_free)(void *p);
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(copy_to_dev)(void *stream, void *dst, const void *src,
                                                         size_t bytes);
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(copy_to_host)(void *stream, void *dst, const void *src,
                                                          size_t bytes);
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(dev_memset)(void *stream, void *p, int v, size_t bytes);
// Waits for the stream's work.
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(sync)(void *stream);
// *n = the number of visible devices (0 without a driver or device; the emulator has 1).
IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(device_count)(int *n);
