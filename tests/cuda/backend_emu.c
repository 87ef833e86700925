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

void tcuda_emu_traffic(const void *ctx, size_t *up, size_t *down, size_t *n_up, size_t *n_down)
{
    struct imc_cuda_traffic t;
    imc_cuemu_ctx_traffic(ctx, &t);
    *up = t.up_bytes;
    *down = t.down_bytes;
    *n_up = t.n_up;
    *n_down = t.n_down;
}

void tcuda_emu_peer(const void *ctx, size_t *n_peer, size_t *out, size_t *in)
{
    struct imc_cuda_traffic t;
    imc_cuemu_ctx_traffic(ctx, &t);
    *n_peer = t.n_peer;
    *out = t.peer_out_bytes;
    *in = t.peer_in_bytes;
}

size_t tcuda_emu_resident(const void *ctx, const void *lo, const void *hi, size_t *bytes)
{
    return imc_cuemu_ctx_resident(ctx, lo, hi, bytes);
}

size_t tcuda_emu_mem_peak(const void *ctx)
{
    struct imc_cuda_mem m;
    imc_cuemu_ctx_mem(ctx, &m);
    return m.peak;
}
