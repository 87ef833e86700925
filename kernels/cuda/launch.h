/*
 * kernels/cuda/launch: the naming of the CUDA launchers (plain C, included by C tests too).
 * Every host launcher in kernels/cuda/<op>.cu is defined as
 *     extern "C" enum imc_status IMC_CUDA_FN(name)(void *stream, ...)
 * taking device pointers and an opaque stream (NULL = the default stream), and returns IMC_OK
 * or the logged failure. Compiled by nvcc the name is imc_cuda_<name>; compiled for the
 * emulator (IMC_CUDA_EMU) it is imc_cuemu_<name>, so both can be linked into one test.
 * kernels/cuda/kern_decl.h declares them all.
 */
#ifndef IMC_KERNELS_CUDA_LAUNCH_H
#define IMC_KERNELS_CUDA_LAUNCH_H

// A test that includes kern_decl.h twice defines IMC_CUDA_FN itself before each include.
#ifndef IMC_CUDA_FN
#ifdef IMC_CUDA_EMU
#define IMC_CUDA_FN(name) imc_cuemu_##name
#else
#define IMC_CUDA_FN(name) imc_cuda_##name
#endif
#endif

#ifdef __cplusplus
#define IMC_CUDA_EXTERN extern "C"
#else
#define IMC_CUDA_EXTERN extern
#endif

#endif // IMC_KERNELS_CUDA_LAUNCH_H
