/*
 * kernels/cuda/qmisc.cuh: the device twins of the decoders of types/quant_misc.c (q6_0, q8_k,
 * mxfp4, q8_kv) and types/quant_misc_ternary.c (tq1_0, tq2_0, iq1_bn, iq2_bn); byte layouts and
 * element orders documented there. Included by kernels/cuda/qdecode.cuh, whose contract they
 * follow (q8_kv, iq1_bn and iq2_bn with their row scale, as qgrids_ks.cuh): 8 elements per
 * call, bit-identical to imc_type_decode. DESIGN.md §4; issue 13.
 */
#ifndef IMC_KERNELS_CUDA_QMISC_CUH
#define IMC_KERNELS_CUDA_QMISC_CUH

namespace qdec
{

static __device__ const int8_t mxfp4_values[16] = {IMC_MXFP4_VALUES};

// q6_0 {d; qh[8]; qs[16]}: low 4 bits as q4_0's nibbles; bits 4-5 of element j < 16 are bits
// 0-1 of nibble j / 8 of qh[j % 8], of element j + 16 bits 2-3 of that nibble; x = (q - 32)·d.
// The codes of elements e0 .. e0 + 7 (q6_0_r4's row form has the same layout: qrowform.cuh).
static __device__ __forceinline__ void q6_0_codes(const uint8_t *b, int e0, int *q)
{
    const int j0 = e0 & 15, hsh = e0 >= 16 ? 2 : 0;
    nibbles32(b + 10, e0, q);
    for (int l = 0; l < 8; l++) {
        const int h = b[2 + (j0 + l) % 8] >> (4 * ((j0 + l) / 8));
        q[l] |= ((h >> hsh) & 3) << 4;
    }
}

struct Q6_0 {
    static constexpr int BS = BS_Q6_0, TS = TS_Q6_0, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b);
        int q[8];
        q6_0_codes(b, e0, q);
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn((float)(q[l] - 32), d);
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

// Trit n of base-3 byte v, given p3 = 3^n, minus 1 (a ternary weight).
static __device__ __forceinline__ float trit_value(unsigned v, unsigned p3)
{
    return (float)((int)((((v * p3) & 255u) * 3) >> 8) - 1);
}

static __device__ __forceinline__ unsigned pow3(int n)
{
    unsigned p = 1;
    for (int i = 0; i < n; i++) {
        p *= 3;
    }
    return p;
}

struct TQ1_0 { // {qs[48]; qh[4]; d}: x = (t - 1)·d
    static constexpr int BS = BS_TQ1_0, TS = TS_TQ1_0, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b + 52);
        for (int l = 0; l < 8; l++) {
            const int e = e0 + l;
            // element 32n + m: qs[m]; 160 + 16n + m: qs[32 + m]; 240 + 4n + j: qh[j] (trit n)
            const int n = e < 160 ? e / 32 : e < 240 ? (e - 160) / 16 : (e - 240) / 4;
            const int at = e < 160 ? e % 32 : e < 240 ? 32 + (e - 160) % 16 : 48 + (e - 240) % 4;
            y[l] = mul_rn(trit_value(b[at], pow3(n)), d);
        }
    }
};

struct TQ2_0 { // {qs[64]; d}: element 128h + 32l + m is bits 2l of qs[32h + m]; (q - 1)·d
    static constexpr int BS = BS_TQ2_0, TS = TS_TQ2_0, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b + 64);
        const uint8_t *q = b + 32 * (e0 / 128) + (e0 & 31);
        const int sh = 2 * ((e0 / 32) % 4);
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn((float)(((q[l] >> sh) & 3) - 1), d);
        }
    }
};

// iq1_bn: in quarter i of a 64-element block, element 16i + 5k + j (k < 3, j < 5) is trit
// 4 - j of ql[3i + k], element 16i + 15 trit 4 - i of extra (byte 12); d·(t - 1).
struct IQ1_BN {
    static constexpr int BS = BS_IQ1_BN, TS = TS_IQ1_BN, CH = 8, META = META_IQ1_BN;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        for (int l = 0; l < 8; l++) {
            const int i = (e0 + l) / 16, r = (e0 + l) % 16;
            const float t = r == 15 ? trit_value(b[12], pow3(4 - i))
                                    : trit_value(b[3 * i + r / 5], pow3(4 - r % 5));
            y[l] = mul_rn(d, t);
        }
    }
};

struct IQ2_BN { // element 16l + j of a block is bits 2l of byte j; d·(q - 1)
    static constexpr int BS = BS_IQ2_BN, TS = TS_IQ2_BN, CH = 8, META = META_IQ2_BN;
    static __device__ __forceinline__ void dec(const uint8_t *b, float d, int e0, float *y)
    {
        const int sh = 2 * (e0 / 16);
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn(d, (float)(((b[(e0 & 15) + l] >> sh) & 3) - 1));
        }
    }
};

} // namespace qdec

#endif // IMC_KERNELS_CUDA_QMISC_CUH
