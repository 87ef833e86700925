/*
 * kernels/cuda/rope: RoPE (normal and NEOX pairs, YaRN) on the device, the CUDA twin of
 * kernels/ref/rope.c: one block per token, one thread per rotated pair; the angle of each
 * (token, pair) in double exactly as the reference computes it, its cos/sin (times the
 * magnitude) rounded to float and applied to every head in float, as kernels/cpu/rope.c does.
 * The YaRN correction dims come from imc_rope_corr_dims on the host.
 */
#include "kernels/cuda/cuda_common.cuh"

// kernels.h is C: its _Noreturn spelled for C++, and types.h's function named like its struct
// (imc_type_traits) is fine in C but shadows the constructor in C++.
#define _Noreturn __attribute__((noreturn))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
extern "C" {
#include "kernels/kernels.h"
}
#pragma GCC diagnostic pop
#undef _Noreturn
#include "kernels/cuda/kern_decl.h"
#include "kernels/cuda/reduce.cuh"

struct rope_args {
    int64_t n_dims, n_head, ld_tok, ld_head;
    float freq_base, freq_scale, ext_factor;
    float corr0, corr1;
    double mag;
    int neox;
};

static __global__ void rope_kernel(rope_args a, float *x, const int32_t *pos)
{
    const int64_t t = blockIdx.x;
    for (int64_t i = threadIdx.x; 2 * i < a.n_dims; i += blockDim.x) {
        const double extrap =
            (double)pos[t] * pow((double)a.freq_base, -2.0 * (double)i / (double)a.n_dims);
        const double interp = (double)a.freq_scale * extrap;
        double theta = interp;
        if (a.ext_factor != 0.0f) {
            const double den = fmax(0.001, (double)a.corr1 - (double)a.corr0);
            const double y = ((double)i - (double)a.corr0) / den;
            const double mix = (1.0 - fmin(1.0, fmax(0.0, y))) * (double)a.ext_factor;
            theta = interp * (1.0 - mix) + extrap * mix;
        }
        const float c = (float)(cos(theta) * a.mag), s = (float)(sin(theta) * a.mag);
        const int64_t o = a.neox ? a.n_dims / 2 : 1; // the pair's second element
        float *v = x + t * a.ld_tok + (a.neox ? i : 2 * i);
        for (int64_t h = 0; h < a.n_head; h++, v += a.ld_head) {
            const float x0 = v[0], x1 = v[o];
            v[0] = x0 * c - x1 * s;
            v[o] = x0 * s + x1 * c;
        }
    }
}

extern "C" enum imc_status IMC_CUDA_FN(rope)(void *stream, const struct imc_rope *p, float *x,
                                             int64_t n_tok, int64_t n_head, int64_t ld_tok,
                                             int64_t ld_head, const int32_t *pos)
{
    if (n_tok <= 0 || n_head <= 0 || p->n_dims <= 0) {
        return IMC_OK;
    }
    float corr[2];
    imc_rope_corr_dims(p, corr);
    rope_args a = {p->n_dims,      n_head,        ld_tok,  ld_head, p->freq_base,
                   p->freq_scale,  p->ext_factor, corr[0], corr[1], (double)p->attn_factor,
                   p->neox ? 1 : 0};
    if (p->ext_factor != 0.0f) {
        a.mag *= 1.0 + 0.1 * log(1.0 / (double)p->freq_scale);
    }
    IMC_LAUNCH(rope_kernel, (unsigned)n_tok, imc_block_threads(p->n_dims / 2, 128), 0, stream, a, x,
               pos);
    return imc_cuda_check_launch("rope_kernel");
}
