/*
 * kernels/cuda/kernels_c: kernels/kernels.h (C) for a kernels/cuda/<op>.cu that needs its types
 * (after cuda_common.cuh): its _Noreturn spelled for C++, and types.h's function named like its
 * struct (imc_type_traits), fine in C, would shadow the constructor in C++.
 */
#ifndef IMC_KERNELS_CUDA_KERNELS_C_CUH
#define IMC_KERNELS_CUDA_KERNELS_C_CUH

#define _Noreturn __attribute__((noreturn))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
extern "C" {
#include "kernels/kernels.h"
}
#pragma GCC diagnostic pop
#undef _Noreturn

#endif // IMC_KERNELS_CUDA_KERNELS_C_CUH
