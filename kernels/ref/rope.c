/*
 * kernels/ref/rope: scalar reference of RoPE in llama.cpp's "normal" mode (adjacent pairs) and
 * NEOX mode (pairs i, i + n_dims/2) with YaRN (kernels/kernels.h). Angles in double; the YaRN
 * correction dims in float exactly as ggml computes them, because their floor/ceil decides which
 * pairs are interpolated.
 */
#include <math.h>

#include "kernels/kernels.h"

// The pair index at which a wavelength makes n_rot turns over the original context.
static float corr_dim(int64_t n_dims, int64_t n_ctx_orig, float n_rot, float base)
{
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) /
           (2.0f * logf(base));
}

void imc_rope_corr_dims(const struct imc_rope *p, float dims[2])
{
    const float start = floorf(corr_dim(p->n_dims, p->n_ctx_orig, p->beta_fast, p->freq_base));
    const float end = ceilf(corr_dim(p->n_dims, p->n_ctx_orig, p->beta_slow, p->freq_base));
    dims[0] = start > 0.0f ? start : 0.0f;
    dims[1] = end < (float)(p->n_dims - 1) ? end : (float)(p->n_dims - 1);
}

void imc_ref_rope(const struct imc_rope *p, float *x, int64_t n_tok, int64_t n_head,
                  int64_t ld_tok, int64_t ld_head, const int32_t *pos)
{
    float corr[2];
    imc_rope_corr_dims(p, corr);
    double mag = p->attn_factor;
    if (p->ext_factor != 0.0f) {
        mag *= 1.0 + 0.1 * log(1.0 / (double)p->freq_scale);
    }
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t i = 0; 2 * i < p->n_dims; i++) {
            const double extrap =
                (double)pos[t] * pow((double)p->freq_base, -2.0 * (double)i / (double)p->n_dims);
            const double interp = (double)p->freq_scale * extrap;
            double theta = interp;
            if (p->ext_factor != 0.0f) {
                const double den = fmax(0.001, (double)corr[1] - (double)corr[0]);
                const double y = ((double)i - (double)corr[0]) / den;
                const double mix = (1.0 - fmin(1.0, fmax(0.0, y))) * (double)p->ext_factor;
                theta = interp * (1.0 - mix) + extrap * mix;
            }
            const double c = cos(theta) * mag, s = sin(theta) * mag;
            for (int64_t h = 0; h < n_head; h++) {
                float *v = x + t * ld_tok + h * ld_head + (p->neox ? i : 2 * i);
                const int64_t o = p->neox ? p->n_dims / 2 : 1; // the pair's second element
                const double x0 = v[0], x1 = v[o];
                v[0] = (float)(x0 * c - x1 * s);
                v[o] = (float)(x0 * s + x1 * c);
            }
        }
    }
}
