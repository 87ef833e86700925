/*
 * kernels/cpu/qmm: activation quantization, the generic micro-tile and the tile driver of the
 * quantized-activation matmul (kernels/cpu/qmm.h). The generic micro-tiles are the
 * specification in plain C: per block (32-block types) or super-block (256-block types), the
 * integer sum as int32, then one fmaf (two with mins) on the output's one float accumulator.
 */
#include "kernels/cpu/qmm.h"

#include <math.h>
#include <string.h>

#include "core/log.h"
#include "types/nl_tables.h"
#include "types/types.h"

// Token rows per pass over a tile's W rows: their blocks (40 bytes per 32 elements) stay in
// L2 while every W row pair of the tile runs over them.
#define TOK_PASS 32

bool imc_qmm_supports(enum imc_type t, int64_t n)
{
    const bool b32 =
        t == IMC_TYPE_Q8_0 || t == IMC_TYPE_Q4_0 || t == IMC_TYPE_Q5_0 || t == IMC_TYPE_IQ4_NL;
    const int64_t bs = imc_qmm_is_k(t) ? IMC_QMM_KBLOCK : IMC_QMM_BLOCK;
    return (b32 || imc_qmm_is_k(t)) && n > 0 && n % bs == 0;
}

uint64_t imc_qmm_xrow_bytes(enum imc_type t, int64_t n)
{
    return imc_qmm_is_k(t) ? (uint64_t)(n / IMC_QMM_KBLOCK) * sizeof(struct imc_q8k)
                           : (uint64_t)(n / IMC_QMM_BLOCK) * sizeof(struct imc_q8x);
}

void imc_qmm_quantize_rows(enum imc_gemm_path path, enum imc_type t, const float *x, int64_t ldx,
                           int64_t n_rows, int64_t n, uint8_t *out, uint64_t ldo)
{
    // (chosen once: the CPU checks behind each vector quantizer's lookup are not free per row)
    imc_qmm_quant_fn vec = path == IMC_GEMM_VNNI ? imc_qmm_quantize_avx512() : NULL;
    vec = !vec && path != IMC_GEMM_GENERIC ? imc_qmm_quantize_avx2() : vec;
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * ldx;
        uint8_t *o = out + (uint64_t)r * ldo;
        if (vec) {
            vec(t, xr, n, o);
        } else if (imc_qmm_is_k(t)) {
            imc_qmm_quantize_row_k(xr, n, (struct imc_q8k *)o);
        } else {
            imc_qmm_quantize_row(xr, n, (struct imc_q8x *)o);
        }
    }
}

void imc_qmm_quantize(enum imc_gemm_path path, enum imc_type t, const float *x, int64_t n,
                      void *out)
{
    imc_qmm_quantize_rows(path, t, x, n, 1, n, out, 0);
}

// d = amax / 127 of x[0..n) and its reciprocal (0 for an all-zero block).
static float block_scale(const float *x, int n, float *id)
{
    float amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
    }
    const float d = amax / 127.0f;
    *id = d != 0.0f ? 1.0f / d : 0.0f;
    return d;
}

void imc_qmm_quantize_row(const float *x, int64_t n, struct imc_q8x *out)
{
    for (int64_t b = 0; b < n / IMC_QMM_BLOCK; b++) {
        const float *xb = x + b * IMC_QMM_BLOCK;
        float id;
        const float d = block_scale(xb, IMC_QMM_BLOCK, &id);
        out[b].d = imc_fp16_to_fp32(imc_fp32_to_fp16(d)); // the scale as q8_0 stores it
        for (int i = 0; i < IMC_QMM_BLOCK; i++) {
            out[b].q[i] = (int8_t)roundf(xb[i] * id);
        }
        out[b].c128 = imc_qmm_c128(out[b].q);
    }
}

void imc_qmm_quantize_row_k(const float *x, int64_t n, struct imc_q8k *out)
{
    for (int64_t b = 0; b < n / IMC_QMM_KBLOCK; b++) {
        const float *xb = x + b * IMC_QMM_KBLOCK;
        float id;
        out[b].d = block_scale(xb, IMC_QMM_KBLOCK, &id);
        for (int k = 0; k < 16; k++) {
            int sum = 0;
            for (int i = 16 * k; i < 16 * k + 16; i++) {
                const float v = roundf(xb[i] * id); // (x·id can exceed 127 by an ulp: clamp)
                out[b].q[i] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
                sum += out[b].q[i];
            }
            out[b].bsum[k] = (int16_t)sum;
        }
    }
}

static float f16_at(const uint8_t *p)
{
    return imc_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8));
}

// The 32 integer weights of a block and its scale.
static float weight_block(enum imc_type type, const uint8_t *blk, int8_t wq[IMC_QMM_BLOCK])
{
    const float d = f16_at(blk);
    if (type == IMC_TYPE_Q8_0) {
        memcpy(wq, blk + 2, IMC_QMM_BLOCK);
    } else if (type == IMC_TYPE_IQ4_NL) {
        for (int j = 0; j < IMC_QMM_BLOCK / 2; j++) {
            wq[j] = imc_iq4k_values[blk[2 + j] & 0x0F];
            wq[j + IMC_QMM_BLOCK / 2] = imc_iq4k_values[blk[2 + j] >> 4];
        }
    } else if (type == IMC_TYPE_Q5_0) { // qh (32 bits, little-endian) at 2, nibbles at 6
        const uint32_t qh = (uint32_t)blk[2] | (uint32_t)blk[3] << 8 | (uint32_t)blk[4] << 16 |
                            (uint32_t)blk[5] << 24;
        for (int j = 0; j < IMC_QMM_BLOCK / 2; j++) {
            wq[j] = (int8_t)(((blk[6 + j] & 0x0F) | ((qh >> j) & 1) << 4) - 16);
            wq[j + IMC_QMM_BLOCK / 2] =
                (int8_t)(((blk[6 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16);
        }
    } else {
        for (int j = 0; j < IMC_QMM_BLOCK / 2; j++) {
            wq[j] = (int8_t)((blk[2 + j] & 0x0F) - 8);
            wq[j + IMC_QMM_BLOCK / 2] = (int8_t)((blk[2 + j] >> 4) - 8);
        }
    }
    return d;
}

static void kernel_generic32(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int nr,
                             const uint8_t *xq, uint64_t ldq, int nt, int64_t nb, float *y,
                             int64_t ldy)
{
    const uint64_t bb = row_bytes / (uint64_t)nb; // the type's block size (types.def)
    for (int r = 0; r < nr; r++) {
        float acc[IMC_QMM_NT] = {0};
        for (int64_t b = 0; b < nb; b++) {
            int8_t wq[IMC_QMM_BLOCK];
            const float dw = weight_block(type, w + (uint64_t)r * row_bytes + (uint64_t)b * bb, wq);
            for (int t = 0; t < nt; t++) {
                const struct imc_q8x *xb = (const struct imc_q8x *)(xq + t * ldq) + b;
                int32_t sum = 0;
                for (int e = 0; e < IMC_QMM_BLOCK; e++) {
                    sum += (int32_t)wq[e] * (int32_t)xb->q[e];
                }
                acc[t] = fmaf((float)sum, dw * xb->d, acc[t]);
            }
        }
        for (int t = 0; t < nt; t++) {
            y[t * ldy + r] = acc[t];
        }
    }
}

// The 256 integer weights wq[e] of a K super-block in element order (qmm.h; bit layouts at the
// decoders in types/quant_k.c and types/quant_iq4.c).
static void kweights(enum imc_type type, const uint8_t *b, int8_t wq[IMC_QMM_KBLOCK])
{
    for (int e = 0; e < IMC_QMM_KBLOCK; e++) {
        const int h = e / 128, j = (e / 32) % 4, l = e % 32, p = e / 64, k = (e / 32) % 2;
        int v;
        switch (type) {
        case IMC_TYPE_Q2_K: // bits 2j of qs[32h + l]
            v = (b[16 + 32 * h + l] >> (2 * j)) & 3;
            break;
        case IMC_TYPE_Q3_K: // + bit 4h + j of hmask[l] as bit 2, offset 4
            v = (((b[32 + 32 * h + l] >> (2 * j)) & 3) | ((b[l] >> (4 * h + j)) & 1) << 2) - 4;
            break;
        case IMC_TYPE_Q4_K: // nibble k of qs[32p + l]
            v = (b[16 + 32 * p + l] >> (4 * k)) & 15;
            break;
        case IMC_TYPE_Q5_K: // + bit 2p + k of qh[l] as bit 4
            v = ((b[48 + 32 * p + l] >> (4 * k)) & 15) | ((b[16 + l] >> (2 * p + k)) & 1) << 4;
            break;
        case IMC_TYPE_Q6_K: // nibble j / 2 of ql[64h + 32(j % 2) + l], bits 2j of qh[32h + l]
            v = (((b[64 * h + 32 * (j % 2) + l] >> (4 * (j / 2))) & 15) |
                 ((b[128 + 32 * h + l] >> (2 * j)) & 3) << 4) -
                32;
            break;
        default: // IQ4_XS: sub-block e / 32, element l < 16 low nibble of qs[l], else high
            v = imc_iq4k_values[(b[8 + 16 * (e / 32) + l % 16] >> (4 * (l / 16))) & 15];
            break;
        }
        wq[e] = (int8_t)v;
    }
}

static void kernel_generic_k(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int nr,
                             const uint8_t *xq, uint64_t ldq, int nt, int64_t nb, float *y,
                             int64_t ldy)
{
    const uint64_t bb = row_bytes / (uint64_t)nb;
    const bool mins = imc_qmm_has_mins(type);
    for (int r = 0; r < nr; r++) {
        float acc[IMC_QMM_NT] = {0};
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = w + (uint64_t)r * row_bytes + (uint64_t)b * bb;
            int8_t wq[IMC_QMM_KBLOCK];
            int16_t sc[16], mn[16];
            kweights(type, blk, wq);
            imc_qmm_kscales(type, blk, sc, mn);
            const float d = f16_at(blk + imc_qmm_kd_offset(type));
            const float dmin = mins ? f16_at(blk + imc_qmm_kd_offset(type) + 2) : 0.0f;
            for (int t = 0; t < nt; t++) {
                const struct imc_q8k *xb = (const struct imc_q8k *)(xq + t * ldq) + b;
                int32_t is = 0, m = 0;
                for (int e = 0; e < IMC_QMM_KBLOCK; e++) {
                    is += sc[e / 16] * ((int32_t)wq[e] * (int32_t)xb->q[e]);
                }
                for (int k = 0; k < 16; k++) {
                    m += mn[k] * xb->bsum[k];
                }
                acc[t] = fmaf((float)is, d * xb->d, acc[t]);
                if (mins) {
                    acc[t] = fmaf(-(float)m, dmin * xb->d, acc[t]);
                }
            }
        }
        for (int t = 0; t < nt; t++) {
            y[t * ldy + r] = acc[t];
        }
    }
}

static void kernel_generic(enum imc_type type, const uint8_t *w, uint64_t row_bytes, int nr,
                           const uint8_t *xq, uint64_t ldq, int nt, int64_t nb, float *y,
                           int64_t ldy)
{
    (imc_qmm_is_k(type) ? kernel_generic_k : kernel_generic32)(type, w, row_bytes, nr, xq, ldq, nt,
                                                               nb, y, ldy);
}

uint64_t imc_qmm_scratch_bytes(enum imc_type t, int64_t nr, int64_t n)
{
    // per group of 8 rows and block: K types 2880 (qmm_avx2.c); the 32-block types 320, the
    // most any path takes per 8 rows (qmm_vnni.c's 256-bit groups and the AVX2 tile's q4_0; its
    // q8_0 and iq4_nl 288), counted in pairs of groups for qmm_vnni.c's 16-row groups (576)
    if (imc_qmm_is_k(t)) { // (in pairs of groups for qmm_vnni.c's 16-row groups: 5760)
        return (uint64_t)(nr + 15) / 16 * (uint64_t)(n / IMC_QMM_KBLOCK) * 5760;
    }
    return (uint64_t)(nr + 15) / 16 * (uint64_t)(n / IMC_QMM_BLOCK) * 640;
}

void imc_qmm_tile(enum imc_gemm_path path, enum imc_type type, const uint8_t *w, uint64_t row_bytes,
                  int64_t nr, const void *xq, uint64_t ldq, int64_t nt, int64_t n, float *y,
                  int64_t ldy, void *scratch)
{
    IMC_ASSERT(imc_qmm_supports(type, n) && nr >= 1 && nt >= 1);
    const int64_t nb = n / (imc_qmm_is_k(type) ? IMC_QMM_KBLOCK : IMC_QMM_BLOCK);
    const bool k = imc_qmm_is_k(type);
    // the AVX512 tile of the type where the path is vnni and the CPU has it
    const imc_qmm_tile_fn t512 = path != IMC_GEMM_VNNI ? NULL
                                 : k                   ? imc_qmm_tile_vnni_k()
                                                       : imc_qmm_tile_vnni(IMC_QMM_VNNI_EVEX);
    const bool direct = nt <= imc_qmm_direct_toks(type, t512 != NULL);
    const bool vnni = path == IMC_GEMM_VNNI && !direct;
    const imc_qmm_tile_fn vex = vnni && !t512 && !k ? imc_qmm_tile_vnni(IMC_QMM_VNNI_VEX) : NULL;
    const imc_qmm_tile_fn vec = path == IMC_GEMM_GENERIC ? NULL
                                : vnni && t512           ? t512
                                : vex                    ? vex
                                : direct                 ? imc_qmm_direct_avx2()
                                                         : imc_qmm_tile_avx2();
    if (vec) {
        vec(type, w, row_bytes, nr, xq, ldq, nt, nb, y, ldy, scratch);
        return;
    }
    // (an AVX2 CPU without F16C: the generic path, the same bits)
    const uint8_t *x = xq;
    for (int64_t t0 = 0; t0 < nt; t0 += TOK_PASS) {
        const int64_t t1 = t0 + TOK_PASS < nt ? t0 + TOK_PASS : nt;
        for (int64_t r = 0; r < nr; r += IMC_QMM_MR) {
            const int rn = nr - r < IMC_QMM_MR ? (int)(nr - r) : IMC_QMM_MR;
            for (int64_t t = t0; t < t1; t += IMC_QMM_NT) {
                const int tn = t1 - t < IMC_QMM_NT ? (int)(t1 - t) : IMC_QMM_NT;
                kernel_generic(type, w + (uint64_t)r * row_bytes, row_bytes, rn,
                               x + (uint64_t)t * ldq, ldq, tn, nb, y + t * ldy + r, ldy);
            }
        }
    }
}
