/*
 * kernels/cuda/qmisc.cuh: the device twins of the decoders of types/quant_misc.c (q6_0, q8_k,
 * mxfp4, q8_kv; byte layouts documented there). Included by kernels/cuda/qdecode.cuh, whose
 * contract they follow (q8_kv with its f32 row scale, as qgrids_ks.cuh): 8 elements per call,
 * bit-identical to imc_type_decode. DESIGN.md §4; issue 13.
 */
#ifndef IMC_KERNELS_CUDA_QMISC_CUH
#define IMC_KERNELS_CUDA_QMISC_CUH

namespace qdec
{

static __device__ const int8_t mxfp4_values[16] = {IMC_MXFP4_VALUES};

// q6_0 {d; qh[8]; qs[16]}: low 4 bits as q4_0's nibbles; bits 4-5 of element j < 16 are bits
// 0-1 of nibble j / 8 of qh[j % 8], of element j + 16 bits 2-3 of that nibble; x = (q - 32)·d.
struct Q6_0 {
    static constexpr int BS = BS_Q6_0, TS = TS_Q6_0, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b);
        const int j0 = e0 & 15, hsh = e0 >= 16 ? 2 : 0;
        int q[8];
        nibbles32(b + 10, e0, q);
        for (int l = 0; l < 8; l++) {
            const int h = b[2 + (j0 + l) % 8] >> (4 * ((j0 + l) / 8));
            y[l] = mul_rn((float)((q[l] | ((h >> hsh) & 3) << 4) - 32), d);
        }
    }
};

struct Q8_K { // {f32 d; f32 sum; i8 qs[256]; i16 bsums[16]}: d·q
    static constexpr int BS = BS_Q8_K, TS = TS_Q8_K, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = __uint_as_float(ld_u32(b));
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn(d, (float)(int8_t)b[8 + e0 + l]);
        }
    }
};

struct MXFP4 { // {u8 e; qs[16]}: 2^(e - 128)·v[q] (E8M0 half scale, doubled e2m1 values)
    static constexpr int BS = BS_MXFP4, TS = TS_MXFP4, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const uint32_t e = b[0];
        const float s = __uint_as_float(e >= 2 ? (e - 1) << 23 : 0x200000u << e);
        int q[8];
        nibbles32(b + 1, e0, q);
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn(s, (float)mxfp4_values[q[l]]);
        }
    }
};

struct Q8_KV { // row meta {f32 d; i32 sum}, then one i8 per element: d·q
    static constexpr int BS = BS_Q8_KV, TS = TS_Q8_KV, CH = 8, META = META_Q8_KV;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn(d, (float)(int8_t)b[e0 + l]);
        }
    }
};

} // namespace qdec

#endif // IMC_KERNELS_CUDA_QMISC_CUH
