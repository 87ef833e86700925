/*
 * kernels/cuda/qgrids_ks.cuh: the device twins of ik_llama.cpp's row-scaled K types of
 * types/iqk_ks.c, types/iqk_kss.c and types/iqk_kl.c (iq2_ks, iq3_ks, iq4_ks, iq5_ks, iq4_kss,
 * iq2_kl; byte layouts documented there). A row of these starts with META bytes holding the
 * row's scale d (fp16 when META is 2, f32 when 4; types/types.def), then its super-blocks.
 * Included by kernels/cuda/qdecode.cuh, whose contract the decoders follow, with the row scale
 * as an extra argument: dec(blk, d, e0, y) decodes 8 elements of one 32-element sub-block
 * s = e0 / 32, bit-identical to imc_type_decode (x = (d·scale_s)·grid[q]). DESIGN.md §4.
 */
#ifndef IMC_KERNELS_CUDA_QGRIDS_KS_CUH
#define IMC_KERNELS_CUDA_QGRIDS_KS_CUH

namespace qdec
{

static __device__ const uint16_t iq2kl_values[32] = {IMC_IQ2KL_VALUES};

struct IQ2_KS { // {u16 extra; scales[4]; qs[64]}
    static constexpr int BS = BS_IQ2_KS, TS = TS_IQ2_KS, CH = 8, META = META_IQ2_KS;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int s = e0 >> 5, sh = 2 * (s % 4);
        const unsigned extra = ld_u16(b);
        const int ls = ((b[2 + s / 2] >> (4 * (s % 2))) & 15) | ((extra >> (8 + s)) & 1) << 4;
        const uint8_t *q = b + 6 + 32 * (s / 4) + (e0 & 31);
        int c[8];
        for (int l = 0; l < 8; l++) {
            c[l] = (q[l] >> sh) & 3;
        }
        put8(c, iq2nl_values + 4 * ((extra >> s) & 1), mul_rn(d, (float)(ls - 16)), y);
    }
};

struct IQ3_KS { // {u16 extra; scales[4]; qs[64]; qh[32]}
    static constexpr int BS = BS_IQ3_KS, TS = TS_IQ3_KS, CH = 8, META = META_IQ3_KS;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int s = e0 >> 5, sh = 2 * (s % 4);
        const unsigned extra = ld_u16(b);
        const int ls = ((b[2 + s % 4] >> (4 * (s / 4))) & 15) | ((extra >> s) & 1) << 4;
        const uint8_t *q = b + 6 + 32 * (s / 4) + (e0 & 31), *qh = b + 70 + (e0 & 31);
        int c[8];
        for (int l = 0; l < 8; l++) {
            c[l] = ((q[l] >> sh) & 3) | ((qh[l] >> s) & 1) << 2;
        }
        put8(c, iq3nl_values + 8 * ((extra >> (8 + s)) & 1), mul_rn(d, (float)(ls - 16)), y);
    }
};

// iq4_ks / iq5_ks / iq4_kss sub-block byte ls: scale (ls & 254) - 127, grid half ls & 1.
static __device__ __forceinline__ float ks_scale(float d, int ls)
{
    return mul_rn(d, (float)((ls & 254) - 127));
}

struct IQ4_KS { // {scales[8]; qs[128]}
    static constexpr int BS = BS_IQ4_KS, TS = TS_IQ4_KS, CH = 8, META = META_IQ4_KS;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int s = e0 >> 5;
        int c[8];
        nibbles32(b + 8 + 16 * s, e0 & 31, c);
        put8(c, iq4k_values + 16 * (b[s] & 1), ks_scale(d, b[s]), y);
    }
};

struct IQ5_KS { // {scales[8]; qs[128]; qh[32]}
    static constexpr int BS = BS_IQ5_KS, TS = TS_IQ5_KS, CH = 8, META = META_IQ5_KS;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int s = e0 >> 5, sh = 4 * (s % 2);
        const uint8_t *q = b + 8 + 32 * (s / 2) + (e0 & 31), *qh = b + 136 + (e0 & 31);
        int c[8];
        for (int l = 0; l < 8; l++) {
            c[l] = ((q[l] >> sh) & 15) | ((qh[l] >> s) & 1) << 4;
        }
        put8(c, iq5nl_values + 32 * (b[s] & 1), ks_scale(d, b[s]), y);
    }
};

// iq4_kss sub-block s: 8 u16 words; bit 0 of word k is bit k of ls, the rest w & ~1 xor'ed with
// itself shifted right by one are code bytes 2k, 2k + 1 (element j < 16: low nibble of byte j,
// j + 16: its high nibble).
struct IQ4_KSS {
    static constexpr int BS = BS_IQ4_KSS, TS = TS_IQ4_KSS, CH = 8, META = META_IQ4_KSS;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const uint8_t *w = b + 16 * (e0 >> 5);
        const int j0 = e0 & 15, sh = (e0 & 31) >= 16 ? 4 : 0;
        int ls = 0, c[8];
        for (int k = 0; k < 8; k++) {
            ls |= (w[2 * k] & 1) << k;
        }
        for (int l = 0; l < 8; l += 2) {
            const unsigned m = ld_u16(w + j0 + l) & 0xfffe, a = m ^ (m >> 1);
            c[l] = (int)(a >> sh) & 15;
            c[l + 1] = (int)(a >> (8 + sh)) & 15;
        }
        put8(c, iq4k_values + 16 * (ls & 1), ks_scale(d, ls), y);
    }
};

// iq2_kl: elements 2j, 2j + 1 of a sub-block are the int8 pair iq2kl[i] (low byte first).
struct IQ2_KL { // {u16 scales_h; scales_l[4]; qs[64]; qh[32]}
    static constexpr int BS = BS_IQ2_KL, TS = TS_IQ2_KL, CH = 8, META = META_IQ2_KL;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int s = e0 >> 5, nib = 4 * (s % 2), j0 = (e0 & 31) / 2;
        const int ls = ((b[2 + s % 4] >> (4 * (s / 4))) & 15) | ((ld_u16(b) >> (2 * s)) & 3) << 4;
        const float dl = mul_rn(d, (float)(ls - 32));
        const uint8_t *q = b + 6 + 16 * (s / 2) + j0, *qh = b + 70 + j0;
        for (int l = 0; l < 4; l++) {
            const unsigned v = iq2kl_values[((q[l] >> nib) & 15) | ((qh[l] >> s) & 1) << 4];
            y[2 * l] = mul_rn(dl, (float)(int8_t)(v & 0xff));
            y[2 * l + 1] = mul_rn(dl, (float)(int8_t)(v >> 8));
        }
    }
};

} // namespace qdec

#endif // IMC_KERNELS_CUDA_QGRIDS_KS_CUH
