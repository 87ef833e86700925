/*
 * kernels/cpu/qmm: activation quantization, the generic micro-tile and the tile driver of the
 * quantized-activation matmul (kernels/cpu/qmm.h). The generic micro-tile is the specification
 * in plain C: per block, the eight lane sums as int32, then one fmaf per lane.
 */
#include "kernels/cpu/qmm.h"

#include <math.h>
#include <string.h>

#include "core/log.h"
#include "types/types.h"

// Token rows per pass over a tile's W rows: their blocks (~36 bytes per 32 elements) stay in
// L2 while every W row pair of the tile runs over them.
#define TOK_PASS 32

bool imc_qmm_supports(enum imc_type t, int64_t n)
{
    return (t == IMC_TYPE_Q8_0 || t == IMC_TYPE_Q4_0) && n > 0 && n % IMC_QMM_BLOCK == 0;
}

void imc_qmm_quantize_row(const float *x, int64_t n, struct imc_q8x *out)
{
    for (int64_t b = 0; b < n / IMC_QMM_BLOCK; b++) {
        const float *xb = x + b * IMC_QMM_BLOCK;
        float amax = 0.0f;
        for (int i = 0; i < IMC_QMM_BLOCK; i++) {
            const float a = fabsf(xb[i]);
            amax = a > amax ? a : amax;
        }
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        out[b].d = imc_fp16_to_fp32(imc_fp32_to_fp16(d)); // the scale as q8_0 stores it
        for (int i = 0; i < IMC_QMM_BLOCK; i++) {
            out[b].q[i] = (int8_t)roundf(xb[i] * id);
        }
    }
}

// The 32 integer weights of a block and its scale.
static float weight_block(enum imc_type type, const uint8_t *blk, int8_t wq[IMC_QMM_BLOCK])
{
    const float d = imc_fp16_to_fp32((uint16_t)(blk[0] | blk[1] << 8));
    if (type == IMC_TYPE_Q8_0) {
        memcpy(wq, blk + 2, IMC_QMM_BLOCK);
    } else {
        for (int j = 0; j < IMC_QMM_BLOCK / 2; j++) {
            wq[j] = (int8_t)((blk[2 + j] & 0x0F) - 8);
            wq[j + IMC_QMM_BLOCK / 2] = (int8_t)((blk[2 + j] >> 4) - 8);
        }
    }
    return d;
}

static float reduce8(const float a[8])
{
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

static void kernel_generic(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int nr,
                           const struct imc_q8x *xq, int64_t ldq, int nt, int64_t nb, float *y,
                           int64_t ldy)
{
    const uint64_t bb = row_bytes / (uint64_t)nb; // the type's block size (types.def)
    for (int r = 0; r < nr; r++) {
        float acc[IMC_QMM_NT][8] = {{0}};
        for (int64_t b = 0; b < nb; b++) {
            int8_t wq[IMC_QMM_BLOCK];
            const float dw = weight_block(type, w + (uint64_t)r * row_bytes + (uint64_t)b * bb, wq);
            for (int t = 0; t < nt; t++) {
                const struct imc_q8x *xb = xq + t * ldq + b;
                const float s = dw * xb->d;
                for (int l = 0; l < 8; l++) {
                    int32_t sum = 0;
                    for (int e = 4 * l; e < 4 * l + 4; e++) {
                        sum += (int32_t)wq[e] * (int32_t)xb->q[e];
                    }
                    acc[t][l] = fmaf((float)sum, s, acc[t][l]);
                }
            }
        }
        for (int t = 0; t < nt; t++) {
            y[t * ldy + r] = reduce8(acc[t]);
        }
    }
}

void imc_qmm_tile(enum imc_gemm_path path, enum imc_type type, const uint8_t *w, uint64_t row_bytes,
                  int64_t nr, const struct imc_q8x *xq, int64_t ldq, int64_t nt, int64_t n,
                  float *y, int64_t ldy)
{
    IMC_ASSERT(imc_qmm_supports(type, n) && nr >= 1 && nt >= 1);
    imc_qmm_kernel_fn k = path == IMC_GEMM_AVX2 ? imc_qmm_kernel_avx2() : NULL;
    k = k ? k : kernel_generic; // (an AVX2 CPU without F16C: the generic path, the same bits)
    const int64_t nb = n / IMC_QMM_BLOCK;
    for (int64_t t0 = 0; t0 < nt; t0 += TOK_PASS) {
        const int64_t t1 = t0 + TOK_PASS < nt ? t0 + TOK_PASS : nt;
        for (int64_t r = 0; r < nr; r += IMC_QMM_MR) {
            const int rn = nr - r < IMC_QMM_MR ? (int)(nr - r) : IMC_QMM_MR;
            for (int64_t t = t0; t < t1; t += IMC_QMM_NT) {
                const int tn = t1 - t < IMC_QMM_NT ? (int)(t1 - t) : IMC_QMM_NT;
                k(type, w + (uint64_t)r * row_bytes, row_bytes, rn, xq + t * ldq, ldq, tn, nb,
                  y + t * ldy + r, ldy);
            }
        }
    }
}
