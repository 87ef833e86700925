/*
 * kernels/cuda: the CUDA backend's entry points (extern "C" launchers in kernels/cuda/*.cu).
 * Every function exists in every build: without CUDA (IMC_HAVE_CUDA == 0) they are static inline
 * stubs that report IMC_ERR_UNSUPPORTED, so callers need no #if (STYLE b.10 #18).
 *
 * Status: no device kernels are written yet; with CUDA the launchers are declared here and
 * must be provided by kernels/cuda/*.cu before a CUDA build links a caller of them.
 */
#ifndef IMC_KERNELS_CUDA_H
#define IMC_KERNELS_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "kernels/backend.h"

#if IMC_HAVE_CUDA

#ifdef __cplusplus
extern "C" {
#endif
// Number of visible CUDA devices (0 when none or on error).
int imc_cuda_device_count(void);
// The CUDA op table, or NULL when no device kernels are available.
const struct imc_backend *imc_cuda_backend(void);
#ifdef __cplusplus
}
#endif

#else

static inline int imc_cuda_device_count(void)
{
    return 0;
}

static inline const struct imc_backend *imc_cuda_backend(void)
{
    return NULL;
}

#endif // IMC_HAVE_CUDA

// Returns IMC_OK when a CUDA backend can run here, else IMC_ERR_UNSUPPORTED.
static inline enum imc_status imc_cuda_available(void)
{
    return imc_cuda_backend() && imc_cuda_device_count() > 0 ? IMC_OK : IMC_ERR_UNSUPPORTED;
}

#endif // IMC_KERNELS_CUDA_H
