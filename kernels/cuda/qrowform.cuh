/*
 * kernels/cuda/qrowform.cuh: device decoders of the row forms of the 7 interleaved types without
 * a plain form (q5_0_r4, q6_0_r4, iq1_s_r4, iq1_m_r4, q8_k_r8, q8_k_r16, q8_kv_r8). The device
 * holds every interleaved weight as rows (types.h imc_type_unweave: wcache.cu, table.cu
 * gather_rows); these 7 as their row forms, whose layouts types/r_rowform.c gives. Each computes
 * what the type's interleaved decoder (types/r_legacy.c, iq1_r4.c, rk_q8.c) does, bit for bit:
 * a row form keeps the fields and the arithmetic. Included by kernels/cuda/qdecode.cuh, whose
 * contract they follow. DESIGN.md §4; issue 13.
 */
#ifndef IMC_KERNELS_CUDA_QROWFORM_CUH
#define IMC_KERNELS_CUDA_QROWFORM_CUH

namespace qdec
{

struct Q5_0_R4 { // q5_0's layout; d·q + (-16·d)
    static constexpr int BS = BS_Q5_0_R4, TS = TS_Q5_0_R4, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b), m = mul_rn(-16.0f, d);
        const uint32_t qh = ld_u32(b + 2);
        for (int l = 0; l < 8; l++) {
            y[l] = add_rn(mul_rn(d, (float)q5_code(b + 6, qh, e0 + l)), m);
        }
    }
};

struct Q6_0_R4 { // q6_0's layout; d·q + (-32·d)
    static constexpr int BS = BS_Q6_0_R4, TS = TS_Q6_0_R4, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b), m = mul_rn(-32.0f, d);
        int q[8];
        q6_0_codes(b, e0, q);
        for (int l = 0; l < 8; l++) {
            y[l] = add_rn(mul_rn(d, (float)q[l]), m);
        }
    }
};

// iq1_s_r4: row meta fp16 d; {qs[4]; u16 qh}: group l's index qs[l] | bits 3l..3l+2 of qh << 8,
// scale (2s + 1) from bits 12-14, shift sign bit 15.
struct IQ1_S_R4 {
    static constexpr int BS = BS_IQ1_S_R4, TS = TS_IQ1_S_R4, CH = 8, META = META_IQ1_S_R4;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int l = e0 >> 3;
        const unsigned qh = b[4] | (unsigned)b[5] << 8;
        const float dl = mul_rn(d, (float)(2 * ((qh >> 12) & 7) + 1));
        iq1_put8(b[l] | ((qh >> 3 * l) & 7) << 8, dl, qh & 0x8000 ? -IQ1_DELTA : IQ1_DELTA, y);
    }
};

// iq1_m_r4: row meta fp16 d; {qs[4]; qh[2]; sc}: group l = 2i + g of half i: index qs[l] | bits
// 4g..4g+2 of qh[i] << 8, shift sign bit 4g + 3; scale nibble i of sc (no 2s + 1).
struct IQ1_M_R4 {
    static constexpr int BS = BS_IQ1_M_R4, TS = TS_IQ1_M_R4, CH = 8, META = META_IQ1_M_R4;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int l = e0 >> 3, i = l >> 1;
        const float dl = mul_rn(d, (float)((b[6] >> 4 * i) & 15));
        const unsigned h = b[4 + i] >> 4 * (l & 1);
        iq1_put8(b[l] | (h & 7) << 8, dl, h & 8 ? -IQ1_DELTA : IQ1_DELTA, y);
    }
};

struct Q8_K_R8 { // {fp16 d; i8 qs[256]}: d·q
    static constexpr int BS = BS_Q8_K_R8, TS = TS_Q8_K_R8, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b);
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn(d, (float)(int8_t)b[2 + e0 + l]);
        }
    }
};

struct Q8_K_R16 { // {fp16 d; u8 qs[256]}: d·q + (-128·d)
    static constexpr int BS = BS_Q8_K_R16, TS = TS_Q8_K_R16, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b), m = mul_rn(-128.0f, d);
        for (int l = 0; l < 8; l++) {
            y[l] = add_rn(mul_rn(d, (float)b[2 + e0 + l]), m);
        }
    }
};

struct Q8_KV_R8 { // row meta f32 d; {i8 qs[32]}: d·q
    static constexpr int BS = BS_Q8_KV_R8, TS = TS_Q8_KV_R8, CH = 8, META = META_Q8_KV_R8;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn(d, (float)(int8_t)b[e0 + l]);
        }
    }
};

} // namespace qdec

#endif // IMC_KERNELS_CUDA_QROWFORM_CUH
