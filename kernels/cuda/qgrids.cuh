/*
 * kernels/cuda/qgrids.cuh: the device twins of the lattice i-quant decoders of types/iq2.c,
 * types/iq3.c and types/iq1.c (iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m), with the
 * device copies of their grids, initialized from the same data files as the CPU tables
 * (types/iq*_grid.inc). Included by kernels/cuda/qdecode.cuh, whose contract they follow:
 * a call decodes 8 elements (one grid entry of 8, or two of 4) of one 32-element sub-block,
 * bit-identical to imc_type_decode (same float operations, same order, none fused).
 * DESIGN.md §4; issue 13.
 *
 * The grids live in device global memory (read-only, 1 to 16 KiB each, gathered by index, so
 * the L1 cache serves them better than __constant__, which serializes divergent indices).
 */
#ifndef IMC_KERNELS_CUDA_QGRIDS_CUH
#define IMC_KERNELS_CUDA_QGRIDS_CUH

namespace qdec
{

static __device__ const uint64_t iq2xxs_grid[256] = {
#include "types/iq2xxs_grid.inc"
};
static __device__ const uint64_t iq2xs_grid[512] = {
#include "types/iq2xs_grid.inc"
};
static __device__ const uint64_t iq2s_grid[1024] = {
#include "types/iq2s_grid.inc"
};
static __device__ const uint32_t iq3xxs_grid[256] = {
#include "types/iq3xxs_grid.inc"
};
static __device__ const uint32_t iq3s_grid[512] = {
#include "types/iq3s_grid.inc"
};
static __device__ const uint32_t iq1s_grid[2048] = {
#include "types/iq1s_grid.inc"
};

// The sign byte of 7 stored sign bits: bit 7 makes the number of set bits even.
static __device__ __forceinline__ unsigned even_signs(unsigned s7)
{
    unsigned p = s7 ^ s7 >> 4;
    p ^= p >> 2;
    p ^= p >> 1;
    return s7 | (p & 1) << 7;
}

// iq2 group of 8: y[j] = dl·byte j of g·(±1), negative where bit j of signs is set.
static __device__ __forceinline__ void iq2_put8(float *y, float dl, uint64_t g, unsigned signs)
{
    for (int j = 0; j < 8; j++) {
        y[j] = mul_rn(mul_rn(dl, (float)(uint8_t)(g >> 8 * j)), (signs >> j) & 1 ? -1.f : 1.f);
    }
}

// iq2 sub-block scale d·(s + 1/2)·(1/4), in the reference's order.
static __device__ __forceinline__ float iq2_dl(float d, unsigned s)
{
    return mul_rn(mul_rn(d, add_rn(0.5f, (float)s)), 0.25f);
}

// e0 = 32·ib + 8·l: group l of sub-block ib.
struct IQ2_XXS { // {d; u8 q[64]}: q[8ib..8ib+3] grid indices, u32 at q[8ib+4] signs + scale
    static constexpr int BS = BS_IQ2_XXS, TS = TS_IQ2_XXS, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int ib = e0 >> 5, l = (e0 >> 3) & 3;
        const uint8_t *q = b + 2 + 8 * ib;
        const uint32_t a = ld_u32(q + 4);
        iq2_put8(y, iq2_dl(ld_fp16(b), a >> 28), iq2xxs_grid[q[l]], even_signs((a >> 7 * l) & 127));
    }
};

struct IQ2_XS { // {d; u16 q[32]; u8 scales[8]}: 9-bit index, 7 sign bits
    static constexpr int BS = BS_IQ2_XS, TS = TS_IQ2_XS, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int ib = e0 >> 5, l = (e0 >> 3) & 3;
        const uint8_t *q = b + 2 + 8 * ib + 2 * l;
        const unsigned v = q[0] | (unsigned)q[1] << 8;
        const float dl = iq2_dl(ld_fp16(b), (b[66 + ib] >> 4 * (l / 2)) & 15);
        iq2_put8(y, dl, iq2xs_grid[v & 511], even_signs(v >> 9));
    }
};

struct IQ2_S { // {d; qs[32]; signs[32]; qh[8]; scales[8]}: 10-bit index, 8 sign bits
    static constexpr int BS = BS_IQ2_S, TS = TS_IQ2_S, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int ib = e0 >> 5, l = (e0 >> 3) & 3;
        const unsigned idx = b[2 + 4 * ib + l] | ((b[66 + ib] >> 2 * l) & 3) << 8;
        const float dl = iq2_dl(ld_fp16(b), (b[74 + ib] >> 4 * (l / 2)) & 15);
        iq2_put8(y, dl, iq2s_grid[idx], b[34 + 4 * ib + l]);
    }
};

// iq3 group of 4: y[j] = ±(d·byte j of g), negative where bit j of neg is set.
static __device__ __forceinline__ void iq3_put4(uint32_t g, float d, unsigned neg, float *y)
{
    for (int j = 0; j < 4; j++) {
        const float v = mul_rn(d, (float)((g >> 8 * j) & 255));
        y[j] = (neg >> j) & 1 ? -v : v;
    }
}

struct IQ3_XXS { // {d; qs[64]; u32 sas[8]}: two entries of 4 per group of 8
    static constexpr int BS = BS_IQ3_XXS, TS = TS_IQ3_XXS, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int ib = e0 >> 5, l = (e0 >> 3) & 3;
        const uint32_t sas = ld_u32(b + 66 + 4 * ib);
        const float db = mul_rn(mul_rn(ld_fp16(b), add_rn(0.5f, (float)(sas >> 28))), 0.5f);
        const unsigned neg = even_signs((sas >> 7 * l) & 127);
        const uint8_t *qs = b + 2 + 8 * ib + 2 * l;
        iq3_put4(iq3xxs_grid[qs[0]], db, neg, y);
        iq3_put4(iq3xxs_grid[qs[1]], db, neg >> 4, y + 4);
    }
};

struct IQ3_S { // {d; qs[64]; qh[8]; signs[32]; scales[4]}: groups g = 2k, 2k + 1 of 4
    static constexpr int BS = BS_IQ3_S, TS = TS_IQ3_S, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int ib = e0 >> 5, k = (e0 >> 3) & 3;
        const float db =
            mul_rn(ld_fp16(b), (float)(1 + 2 * ((b[106 + ib / 2] >> 4 * (ib % 2)) & 15)));
        const unsigned signs = b[74 + 4 * ib + k], qh = b[66 + ib];
        for (int h = 0; h < 2; h++) {
            const int g = 2 * k + h;
            const unsigned idx = b[2 + 8 * ib + g] | ((qh >> g) & 1u) << 8;
            iq3_put4(iq3s_grid[idx], db, signs >> 4 * h, y + 4 * h);
        }
    }
};

// iq1 group of 8: y[j] = dl·(v_j + delta), v_j nibble 2·(j % 4) + j / 4 of entry idx, minus 1.
static __device__ __forceinline__ void iq1_put8(unsigned idx, float dl, float delta, float *y)
{
    const uint32_t g = iq1s_grid[idx];
    for (int j = 0; j < 8; j++) {
        const int v = (int)((g >> (8 * (j % 4) + 4 * (j / 4))) & 15) - 1;
        y[j] = mul_rn(dl, add_rn((float)v, delta));
    }
}

constexpr float IQ1_DELTA = 0.125f; // types/iq1_grid.h IMC_IQ1_DELTA

struct IQ1_S { // {d; qs[32]; u16 qh[8]}: qh: 3 index bits per group, scale, shift sign
    static constexpr int BS = BS_IQ1_S, TS = TS_IQ1_S, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int ib = e0 >> 5, l = (e0 >> 3) & 3;
        const unsigned qh = b[34 + 2 * ib] | (unsigned)b[35 + 2 * ib] << 8;
        const float dl = mul_rn(ld_fp16(b), (float)(2 * ((qh >> 12) & 7) + 1));
        iq1_put8(b[2 + 4 * ib + l] | ((qh >> 3 * l) & 7) << 8, dl,
                 qh & 0x8000 ? -IQ1_DELTA : IQ1_DELTA, y);
    }
};

struct IQ1_M { // {qs[32]; qh[16]; u16 sc[4]}: fp16 d in the top nibbles of sc
    static constexpr int BS = BS_IQ1_M, TS = TS_IQ1_M, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int ib = e0 >> 5, l = (e0 >> 3) & 3;
        const uint8_t *sc = b + 48;
        const uint32_t dh = (uint32_t)(sc[1] >> 4) | (sc[3] & 0xf0) | (uint32_t)(sc[5] >> 4) << 8 |
                            (uint32_t)(sc[7] & 0xf0) << 8;
        const unsigned s = (sc[2 * (ib / 2)] | (unsigned)sc[2 * (ib / 2) + 1] << 8) >> 6 * (ib % 2);
        const float dl = mul_rn(fp16_bits(dh), (float)(2 * ((s >> 3 * (l / 2)) & 7) + 1));
        const unsigned h = b[32 + 2 * ib + l / 2] >> 4 * (l % 2);
        iq1_put8(b[4 * ib + l] | (h & 7) << 8, dl, h & 8 ? -IQ1_DELTA : IQ1_DELTA, y);
    }
};

} // namespace qdec

#endif // IMC_KERNELS_CUDA_QGRIDS_CUH
