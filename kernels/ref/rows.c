/*
 * kernels/ref/rows: scalar references of the moves and adds of activations (kernels/kernels.h:
 * copy, move_rows, add, moe_wsum). One loop each, in the order the spec states.
 */
#include "kernels/kernels.h"

void imc_ref_copy(const struct imc_copy_args *a)
{
    for (int64_t t = 0; t < a->n_tok; t++) {
        for (int64_t h = 0; h < a->n_head; h++) {
            float *d = a->dst + t * a->d_ld_tok + h * a->d_ld_head;
            const float *s = a->src + t * a->s_ld_tok + h * a->s_ld_head;
            for (int64_t i = 0; i < a->n; i++) {
                d[i] = s[i];
            }
        }
    }
}

void imc_ref_move_rows(float *dst, const int32_t *dst_idx, const float *src, const int32_t *src_idx,
                       int64_t n, int64_t d)
{
    for (int64_t r = 0; r < n; r++) {
        const int64_t di = dst_idx ? dst_idx[r] : r, si = src_idx ? src_idx[r] : r;
        for (int64_t i = 0; i < d; i++) {
            dst[di * d + i] = src[si * d + i];
        }
    }
}

void imc_ref_add(float *x, const float *y, int64_t n_rows, int64_t n, int64_t ldy)
{
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t i = 0; i < n; i++) {
            x[r * n + i] += y[r * ldy + i];
        }
    }
}

void imc_ref_moe_wsum(float *y, const float *rows, const int32_t *pos, const float *w,
                      const float *add, int64_t n, int64_t k, int64_t d)
{
    for (int64_t t = 0; t < n; t++) {
        for (int64_t i = 0; i < d; i++) {
            float acc = 0.0f;
            for (int64_t s = 0; s < k; s++) {
                const float v = w[t * k + s] * rows[(int64_t)pos[t * k + s] * d + i];
                acc = s == 0 ? v : acc + v;
            }
            y[t * d + i] = add ? acc + add[t * d + i] : acc;
        }
    }
}
