/*
 * kernels/cuda/qgrids_kt.cuh: the device twins of ik_llama.cpp's trellis types of types/kt.c
 * (iq1_kt, iq2_kt, iq3_kt, iq4_kt; byte layouts and the generator documented there): rows start
 * with an f32 row scale d (META 4), each group of 8 elements (4 for iq4_kt) comes from one seed
 * through the multiplicative generator. Included by kernels/cuda/qdecode.cuh, whose contract
 * (with the row scale, as qgrids_ks.cuh) the decoders follow: a call decodes the 8 elements of
 * group j = e0 / 8 (two groups of 4 for iq4_kt), bit-identical to imc_type_decode (sl = d·scale
 * rounded first, then sl·v; iq3_kt flips the sign bit of sl·|v|). DESIGN.md §4; issue 13.
 */
#ifndef IMC_KERNELS_CUDA_QGRIDS_KT_CUH
#define IMC_KERNELS_CUDA_QGRIDS_KT_CUH

namespace qdec
{

constexpr uint32_t KT_MUL = 0xCBAC1FEDu; // the generator's multiplier
constexpr uint32_t KT_BASE = 4096u;      // added to every seed
constexpr uint32_t KT_BASE_HI = 36864u;  // iq4_kt's other base (4096 + 32768)

// The value of generator state x: the byte sum of x & 0x3f3f3f3f, minus 126.
static __device__ __forceinline__ float kt_value(uint32_t x)
{
    return (float)((int)(((x & 0x3f3f3f3fu) * 0x01010101u) >> 24) - 126);
}

// n elements from state x (the generator steps once before each): sl·v.
static __device__ __forceinline__ void kt_group(uint32_t x, int n, float sl, float *y)
{
    for (int k = 0; k < n; k++) {
        x *= KT_MUL;
        y[k] = mul_rn(sl, kt_value(x));
    }
}

struct IQ1_KT { // {sh[8]; ql[32]; qh[16]}
    static constexpr int BS = BS_IQ1_KT, TS = TS_IQ1_KT, CH = 8, META = META_IQ1_KT;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int j = e0 >> 3, ib = j / 4, g = j % 4;
        const uint32_t seed = b[8 + j] | ((b[40 + j % 16] >> (4 * (j / 16))) & 15u) << 8 |
                              ((b[ib] >> (4 + g)) & 1u) << 12;
        kt_group(seed + KT_BASE, 8, mul_rn(d, (float)iq4k_values[b[ib] & 15]), y);
    }
};

struct IQ2_KT { // {scales[4]; u16 seed[32]}: block ib of half h: nibble h of scales[ib]
    static constexpr int BS = BS_IQ2_KT, TS = TS_IQ2_KT, CH = 8, META = META_IQ2_KT;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int j = e0 >> 3, h = j / 16, ib = (j / 4) % 4;
        const float sl = mul_rn(d, (float)iq4k_values[(b[ib] >> (4 * h)) & 15]);
        kt_group(ld_u16(b + 4 + 2 * j) + KT_BASE, 8, sl, y);
    }
};

struct IQ3_KT { // {scales[4]; u16 seed[32]; qh[32]}: sl·|v|, sign bit ib + 4h of qh[8g + t]
    static constexpr int BS = BS_IQ3_KT, TS = TS_IQ3_KT, CH = 8, META = META_IQ3_KT;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int j = e0 >> 3, h = j / 16, ib = (j / 4) % 4, g = j % 4, sb = ib + 4 * h;
        const float sl = mul_rn(d, (float)((b[ib] >> (4 * h)) & 15));
        uint32_t x = ld_u16(b + 4 + 2 * j) + KT_BASE;
        for (int t = 0; t < 8; t++) {
            x *= KT_MUL;
            const uint32_t neg = ((uint32_t)b[68 + 8 * g + t] << (31 - sb)) & 0x80000000u;
            y[t] = __uint_as_float(__float_as_uint(mul_rn(sl, fabsf(kt_value(x)))) ^ neg);
        }
    }
};

struct IQ4_KT { // {u32 sh[8]; ql[64]; qh[32]}: groups of 4, j = element / 4
    static constexpr int BS = BS_IQ4_KT, TS = TS_IQ4_KT, CH = 8, META = META_IQ4_KT;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int ib = e0 >> 5;
        const uint32_t sh = ld_u32(b + 4 * ib), base = (sh & 1) ? KT_BASE_HI : KT_BASE;
        const float sl = mul_rn(d, (float)((int)((sh & 0xff) >> 1) - 64));
        for (int k = 0; k < 2; k++) {
            const int j = (e0 >> 2) + k, g = j % 8;
            const uint32_t seed = b[32 + j] | ((b[96 + j % 32] >> (4 * (j / 32))) & 15u) << 8 |
                                  ((sh >> (8 + 3 * g)) & 7u) << 12;
            kt_group(seed + base, 4, sl, y + 4 * k);
        }
    }
};

} // namespace qdec

#endif // IMC_KERNELS_CUDA_QGRIDS_KT_CUH
