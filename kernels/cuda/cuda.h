/*
 * kernels/cuda: the CUDA backend's entry points for C callers. The kernels live in
 * kernels/cuda/<op>.cu, each with an extern "C" launcher IMC_CUDA_FN(<op>) (kernels/cuda/launch.h)
 * declared in kernels/cuda/kern_decl.h; nvcc builds them as imc_cuda_<op> into imc_kernels when
 * the build has CUDA (IMC_HAVE_CUDA), and every build with tests compiles the same sources for
 * the CPU emulator (kernels/cuda/emu, library imc_cuda_emu) as imc_cuemu_<op>, which the tests
 * in tests/cuda compare against kernels/ref (`ctest -L cuda`; README "Tests").
 * The functions here exist in every build: without CUDA they are static inline stubs that report
 * IMC_ERR_UNSUPPORTED, so callers need no #if (STYLE b.10 #18).
 *
 * Status (issue 13): launchers for memory (mem.cu), RMSNorm, softmax, SwiGLU, Σx² (elementwise.cu),
 * RoPE/YaRN (rope.cu), dequantization and embedding rows (dequant.cu), the quantized small-batch
 * matmul (mmv.cu), the tiled f32 / bf16 GEMM (gemm.cu) and cuBLAS (blas.cu), attention
 * (attention.cu), MoE routing (moe_route.cu), the NLL/KLD rows (nll.cu) and the moves and adds
 * between ops (rows.cu); the op table on them (table.cu: imc_cuda_backend, weights resident in
 * device memory, activations in the table's own buffers from op to op, finiteness checks answered
 * once per layer, the statistics' chunk sums kept in its memory until the end of each engine call),
 * which the engine runs with --device cuda (the head's logits scored where they are); the
 * exchange of expert shards' routed rows and pipeline stages' hidden rows between GPUs with NCCL
 * (peer.cu, opened at run time). The 30 interleaved _rN types are held as rows (types.h
 * imc_type_unweave: 23 as plain rows, 7 as row forms with decoders of their own, qrowform.cuh).
 * Not yet: streams (every op on the default stream).
 * --experts-on cpu (the routed experts on the cpu table) is the
 * engine's (worker/engine.h experts_on_cpu).
 */
#ifndef IMC_KERNELS_CUDA_H
#define IMC_KERNELS_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "kernels/backend.h"

#if IMC_HAVE_CUDA

#include "kernels/cuda/kern_decl.h"

// Number of visible CUDA devices (0 when none or on error).
static inline int imc_cuda_devices(void)
{
    int n = 0;
    return imc_cuda_device_count(&n) == IMC_OK ? n : 0;
}

// Makes device dev the calling thread's device (the engine's ops run on the thread that calls
// its forward functions). IMC_ERR_CUDA (logged) for a bad dev.
static inline enum imc_status imc_cuda_select(int dev)
{
    return imc_cuda_set_device(dev);
}

// buf[0..len) = device dev's PCI bus id (as CUDA writes it: "00000000:17:00.0"), for finding
// its NUMA node (numa/topo.h imc_topo_gpu_by_pci). IMC_ERR_CUDA (logged) for a bad dev.
static inline enum imc_status imc_cuda_pci_bus(int dev, char *buf, int len)
{
    return imc_cuda_pci_bus_id(dev, buf, len);
}

// The CUDA op table (kernels/cuda/table.cu, "cuda"; kern_decl.h declares imc_cuda_backend).

#else

static inline int imc_cuda_devices(void)
{
    return 0;
}

static inline enum imc_status imc_cuda_select(int dev)
{
    (void)dev;
    return IMC_ERR_UNSUPPORTED;
}

static inline enum imc_status imc_cuda_pci_bus(int dev, char *buf, int len)
{
    (void)dev;
    if (len > 0) {
        buf[0] = '\0';
    }
    return IMC_ERR_UNSUPPORTED;
}

// The CUDA op table: NULL, this build has no CUDA.
static inline const struct imc_backend *imc_cuda_backend(void)
{
    return NULL;
}

#endif // IMC_HAVE_CUDA

// Returns IMC_OK when a CUDA backend can run here, else IMC_ERR_UNSUPPORTED.
static inline enum imc_status imc_cuda_available(void)
{
    return imc_cuda_backend() && imc_cuda_devices() > 0 ? IMC_OK : IMC_ERR_UNSUPPORTED;
}

#endif // IMC_KERNELS_CUDA_H
