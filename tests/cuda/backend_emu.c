/*
 * tests/cuda/backend_emu: the production CUDA op table (kernels/cuda/table.cu) on the emulated
 * launchers (tests/cuda/backend_emu.h).
 */
#include "backend_emu.h"

#undef IMC_CUDA_FN
#define IMC_CUDA_FN(n) imc_cuemu_##n
#include "kernels/cuda/kern_decl.h"
#undef IMC_CUDA_FN

const struct imc_backend *tcuda_backend_emu(void)
{
    return imc_cuemu_backend();
}

size_t tcuda_emu_resident(const void *ctx, const void *lo, const void *hi, size_t *bytes)
{
    return imc_cuemu_ctx_resident(ctx, lo, hi, bytes);
}
