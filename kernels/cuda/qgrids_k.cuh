/*
 * kernels/cuda/qgrids_k.cuh: the device twins of ik_llama.cpp's non-linear K types of
 * types/iqk_k.c (iq2_k, iq3_k, iq4_k, iq5_k, iq6_k; byte layouts documented there), with device
 * copies of their value grids initialized from types/nl_values.h, the numbers the CPU tables
 * use. Included by kernels/cuda/qdecode.cuh, whose contract the decoders follow: a call decodes
 * 8 elements of one 16-element slice h = e0 / 16, bit-identical to imc_type_decode (element =
 * (d·s_h)·grid[q], both products rounded on their own). DESIGN.md §4; issue 13.
 */
#ifndef IMC_KERNELS_CUDA_QGRIDS_K_CUH
#define IMC_KERNELS_CUDA_QGRIDS_K_CUH

#include "types/nl_values.h"

namespace qdec
{

static __device__ const int8_t iq2nl_values[8] = {IMC_IQ2NL_VALUES};
static __device__ const int8_t iq3nl_values[16] = {IMC_IQ3NL_VALUES};
static __device__ const int8_t iq5nl_values[64] = {IMC_IQ5NL_VALUES};

static __device__ __forceinline__ unsigned ld_u16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

// y[l] = dl·v[q[l]] for the 8 codes of a chunk.
static __device__ __forceinline__ void put8(const int *q, const int8_t *v, float dl, float *y)
{
    for (int l = 0; l < 8; l++) {
        y[l] = mul_rn(dl, (float)v[q[l]]);
    }
}

// Slice h = e0 / 16 = 2·sb + p; j0 = e0 % 16 is 0 or 8. Bit h of the u16 extra at b + 2 picks
// the second half of the grid.
struct IQ2_K { // d@0 extra@2 sc[8]@4 qs[64]@12
    static constexpr int BS = BS_IQ2_K, TS = TS_IQ2_K, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int h = e0 >> 4, sb = h >> 1, p = h & 1, shift = 2 * (sb % 4);
        const uint8_t *src = b + 12 + 32 * (sb / 4) + 16 * p + (e0 & 15);
        int q[8];
        for (int l = 0; l < 8; l++) {
            q[l] = (src[l] >> shift) & 3;
        }
        const float dl = mul_rn(ld_fp16(b), (float)(((b[4 + sb] >> (4 * p)) & 15) - 8));
        put8(q, iq2nl_values + 4 * ((ld_u16(b + 2) >> h) & 1), dl, y);
    }
};

struct IQ3_K { // d@0 extra@2 sh(u16)@4 sl[8]@6 qs[64]@14 qh[32]@78
    static constexpr int BS = BS_IQ3_K, TS = TS_IQ3_K, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int h = e0 >> 4, sb = h >> 1, p = h & 1, shift = 2 * (sb % 4);
        const uint8_t *lo = b + 14 + 32 * (sb / 4) + 16 * p + (e0 & 15);
        const uint8_t *hi = b + 78 + 16 * p + (e0 & 15);
        int q[8];
        for (int l = 0; l < 8; l++) {
            q[l] = ((lo[l] >> shift) & 3) | ((hi[l] >> sb) & 1) << 2;
        }
        const int s = 2 * ((b[6 + sb] >> (4 * p)) & 15) + 1;
        const float dl = mul_rn(ld_fp16(b), (float)((ld_u16(b + 4) >> h) & 1 ? -s : s));
        put8(q, iq3nl_values + 8 * ((ld_u16(b + 2) >> h) & 1), dl, y);
    }
};

// The 6-bit scale of slice h of iq4_k / iq5_k (sh[4]@4, sl[8]@8; offset 32 removed).
static __device__ __forceinline__ int iq45_scale(const uint8_t *b, int h)
{
    return (((b[8 + h / 2] >> (4 * (h % 2))) & 15) | ((b[4 + h / 4] >> (2 * (h % 4))) & 3) << 4) -
           32;
}

struct IQ4_K { // d@0 extra@2 sh[4]@4 sl[8]@8 qs[128]@16
    static constexpr int BS = BS_IQ4_K, TS = TS_IQ4_K, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int h = e0 >> 4;
        const uint8_t *src = b + 16 + 16 * (h / 2) + (e0 & 15);
        int q[8];
        for (int l = 0; l < 8; l++) {
            q[l] = (src[l] >> (4 * (h % 2))) & 15;
        }
        const float dl = mul_rn(ld_fp16(b), (float)iq45_scale(b, h));
        put8(q, iq4k_values + 16 * ((ld_u16(b + 2) >> h) & 1), dl, y);
    }
};

// iq5_k / iq6_k: slice h = 4·t + u.
struct IQ5_K { // d@0 extra@2 sh[4]@4 sl[8]@8 qs[128]@16 qh[32]@144
    static constexpr int BS = BS_IQ5_K, TS = TS_IQ5_K, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int h = e0 >> 4, t = h / 4, u = h % 4, nib = u / 2, hbit = 2 * t + nib;
        const uint8_t *lo = b + 16 + 32 * t + 16 * (u % 2) + (e0 & 15);
        const uint8_t *hi = b + 144 + 16 * (u % 2) + (e0 & 15);
        int q[8];
        for (int l = 0; l < 8; l++) {
            q[l] = ((lo[l] >> (4 * nib)) & 15) | ((hi[l] >> hbit) & 1) << 4;
        }
        const float dl = mul_rn(ld_fp16(b), (float)iq45_scale(b, h));
        put8(q, iq5nl_values + 32 * ((ld_u16(b + 2) >> h) & 1), dl, y);
    }
};

// iq6_k's level q (< 64) of grid half `half`: the reference's cubic with fused multiply-adds,
// plus 1 for the second half (types/iqk_k.c iq6_levels).
static __device__ __forceinline__ float iq6_level(int q, unsigned half)
{
    const float fq = (float)q;
    const float v =
        __fmaf_rn(fq, __fmaf_rn(fq, __fmaf_rn(fq, 0.0011972f, -0.11218f), 6.2568f), -127.f);
    return half ? add_rn(v, 1.f) : v;
}

struct IQ6_K { // d@0 extra@2 sc[16](int8)@4 qs[128]@20 qh[64]@148
    static constexpr int BS = BS_IQ6_K, TS = TS_IQ6_K, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int h = e0 >> 4, t = h / 4, u = h % 4, nib = u / 2, hshift = 4 * (t % 2) + 2 * nib;
        const uint8_t *lo = b + 20 + 32 * t + 16 * (u % 2) + (e0 & 15);
        const uint8_t *hi = b + 148 + 32 * (t / 2) + 16 * (u % 2) + (e0 & 15);
        const unsigned half = (ld_u16(b + 2) >> h) & 1;
        const float dl = mul_rn(ld_fp16(b), (float)(int8_t)b[4 + h]);
        for (int l = 0; l < 8; l++) {
            const int q = ((lo[l] >> (4 * nib)) & 15) | ((hi[l] >> hshift) & 3) << 4;
            y[l] = mul_rn(dl, iq6_level(q, half));
        }
    }
};

} // namespace qdec

#endif // IMC_KERNELS_CUDA_QGRIDS_K_CUH
