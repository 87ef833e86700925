/*
 * kernels/cuda/qdecode.cuh: the device twins of the block decoders of types/quant_legacy.c,
 * types/quant_k.c and types/quant_iq4.c (and, through kernels/cuda/qgrids.cuh, qgrids_k.cuh,
 * qgrids_ks.cuh, qgrids_kt.cuh, of the lattice i-quants of types/iq1.c, iq2.c, iq3.c and the
 * K and trellis types of types/iqk_k.c, iqk_ks.c, iqk_kss.c, iqk_kl.c, kt.c, and through
 * qmisc.cuh of types/quant_misc.c), shared by dequant.cu and mmv.cu.
 * DESIGN.md §4; issue 13.
 *
 * Contract: a decoder D has BS (elements per block), TS (bytes per block), both from
 * types/types.def, and CH (elements one call decodes: 8 for the block types, 1 for f32, f16,
 * bf16); D::dec(blk, e0, y) writes elements e0 .. e0 + CH - 1 (e0 a multiple of CH) of the block
 * at blk into y. A type whose rows start with META bytes of row scale (types.def meta) has
 * D::META and D::dec(blk, d, e0, y) instead, d the row's scale (dec_chunk passes it). Every
 * value is bit-identical to imc_type_decode: the same float operations in
 * the same order, each rounded on its own (mul_rn / sub_rn / add_rn keep nvcc from fusing a
 * product and a sum into one fma, which the C decoders, built with -std=c17, never do).
 * Every 8-element chunk of a block lies inside one sub-block (sub-blocks are 16 or 32
 * elements), so a call decodes one scale and 8 codes.
 *
 * Speed notes: the bytes are read one by one (blocks are only 2-byte aligned: 18, 34 ... bytes),
 * which the L1 cache absorbs since the 32 lanes of a warp read neighbouring chunks of the same
 * blocks; 16-byte loads of whole blocks into shared memory are the next step where the
 * bandwidth shows it matters.
 *
 * IMC_CUDA_TYPES(X) lists the types with a device decoder: X(NAME, decoder struct). An
 * interleaved type's decoder reads its row form (types.h imc_type_unweave; qrowform.cuh), the
 * only form the device holds; the interleaved types with a plain form have none (the device
 * holds them as plain rows).
 */
#ifndef IMC_KERNELS_CUDA_QDECODE_CUH
#define IMC_KERNELS_CUDA_QDECODE_CUH

#include <stdint.h>
#include <string.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/kern_decl.h" // and types/types.h
#include "types/nl_values.h"

namespace qdec
{

// Each type's geometry from types/types.def: BS_<NAME>, TS_<NAME>, META_<NAME>.
#define X(NAME, id, name, bs, ts, rows, meta, dec, quant, tol)                                     \
    constexpr int BS_##NAME = bs, TS_##NAME = ts, META_##NAME = meta;
#include "types/types.def"
#undef X

// Unfused float operations (round to nearest even, each on its own).
static __device__ __forceinline__ float mul_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

static __device__ __forceinline__ float sub_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

static __device__ __forceinline__ float add_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

// fp16 bits -> f32, exact (the same construction as types/quant_priv.h fp16_to_fp32_inline).
static __device__ __forceinline__ float fp16_bits(uint32_t h)
{
    const uint32_t sign = (h & 0x8000u) << 16, em = (h & 0x7fffu) << 13, exp = h & 0x7c00u;
    if (exp == 0) {
        const float sub = (float)(int32_t)(h & 0x3ffu) * 0x1p-24f;
        return __uint_as_float(sign | __float_as_uint(sub));
    }
    return __uint_as_float(sign | (exp == 0x7c00u ? em | 0x7f800000u : em + (112u << 23)));
}

static __device__ __forceinline__ float ld_fp16(const uint8_t *p)
{
    return fp16_bits((uint32_t)p[0] | (uint32_t)p[1] << 8);
}

static __device__ __forceinline__ uint32_t ld_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// The non-linear 4-bit grids of iq4_k: its first half is iq4_nl's and iq4_xs's grid
// (types/quant_iq4.c imc_iq4_grid; kernels.types checks the two agree).
static __device__ const int8_t iq4k_values[32] = {IMC_IQ4K_VALUES};

static __device__ __forceinline__ float iq4_level(int q)
{
    return (float)iq4k_values[q];
}

// The 4-bit codes of elements e0 .. e0 + 7 (e0 % 8 == 0) of a 32-element run whose element
// j < 16 is the low nibble of qs[j] and element j + 16 the high one.
static __device__ __forceinline__ void nibbles32(const uint8_t *qs, int e0, int *q)
{
    const uint8_t *p = qs + (e0 & 15);
    const int sh = e0 >= 16 ? 4 : 0;
    for (int l = 0; l < 8; l++) {
        q[l] = (p[l] >> sh) & 15;
    }
}

// --- plain floats: one element per call ---

struct F32 {
    static constexpr int BS = BS_F32, TS = TS_F32, CH = 1;
    static __device__ __forceinline__ void dec(const uint8_t *b, int, float *y)
    {
        y[0] = __uint_as_float(ld_u32(b));
    }
};

struct F16 {
    static constexpr int BS = BS_F16, TS = TS_F16, CH = 1;
    static __device__ __forceinline__ void dec(const uint8_t *b, int, float *y)
    {
        y[0] = ld_fp16(b);
    }
};

struct BF16 {
    static constexpr int BS = BS_BF16, TS = TS_BF16, CH = 1;
    static __device__ __forceinline__ void dec(const uint8_t *b, int, float *y)
    {
        y[0] = __uint_as_float(((uint32_t)b[0] | (uint32_t)b[1] << 8) << 16);
    }
};

// --- 32-element blocks: element j < 16 is the low nibble of qs[j], j + 16 the high one ---

struct Q4_0 { // {d; qs[16]}: d·(q - 8)
    static constexpr int BS = BS_Q4_0, TS = TS_Q4_0, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b);
        int q[8];
        nibbles32(b + 2, e0, q);
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn(d, (float)(q[l] - 8));
        }
    }
};

struct Q4_1 { // {d; m; qs[16]}: d·q + m
    static constexpr int BS = BS_Q4_1, TS = TS_Q4_1, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b), m = ld_fp16(b + 2);
        int q[8];
        nibbles32(b + 4, e0, q);
        for (int l = 0; l < 8; l++) {
            y[l] = add_rn(mul_rn(d, (float)q[l]), m);
        }
    }
};

// q5_0 / q5_1: bit e of the u32 qh is bit 4 of element e.
static __device__ __forceinline__ int q5_code(const uint8_t *qs, uint32_t qh, int e)
{
    const int lo = (qs[e & 15] >> (e >= 16 ? 4 : 0)) & 15;
    return lo | (int)((qh >> e) & 1) << 4;
}

struct Q5_0 { // {d; qh[4]; qs[16]}: d·(q - 16)
    static constexpr int BS = BS_Q5_0, TS = TS_Q5_0, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b);
        const uint32_t qh = ld_u32(b + 2);
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn(d, (float)(q5_code(b + 6, qh, e0 + l) - 16));
        }
    }
};

struct Q5_1 { // {d; m; qh[4]; qs[16]}: d·q + m
    static constexpr int BS = BS_Q5_1, TS = TS_Q5_1, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b), m = ld_fp16(b + 2);
        const uint32_t qh = ld_u32(b + 4);
        for (int l = 0; l < 8; l++) {
            y[l] = add_rn(mul_rn(d, (float)q5_code(b + 8, qh, e0 + l)), m);
        }
    }
};

struct Q8_0 { // {d; i8 qs[32]}: d·q
    static constexpr int BS = BS_Q8_0, TS = TS_Q8_0, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b);
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn(d, (float)(int8_t)b[2 + e0 + l]);
        }
    }
};

struct IQ4_NL { // {d; qs[16]}: d·grid[q]
    static constexpr int BS = BS_IQ4_NL, TS = TS_IQ4_NL, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const float d = ld_fp16(b);
        int q[8];
        nibbles32(b + 2, e0, q);
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn(d, iq4_level(q[l]));
        }
    }
};

// --- 256-element super-blocks (element orders: types/quant_k.c, types/quant_iq4.c) ---

// q2_k / q3_k / q6_k: sub-block s = e / 16 = 8h + 2j + half, l = e % 16.
struct Q2_K { // {scales[16]; qs[64]; d; dmin}: d·(sc & 15)·q - dmin·(sc >> 4)
    static constexpr int BS = BS_Q2_K, TS = TS_Q2_K, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int s = e0 >> 4, h = s >> 3, j = (s & 7) >> 1, half = s & 1;
        const float d = ld_fp16(b + 80), dmin = ld_fp16(b + 82);
        const float dl = mul_rn(d, (float)(b[s] & 15)), ml = mul_rn(dmin, (float)(b[s] >> 4));
        const uint8_t *q = b + 16 + 32 * h + 16 * half + (e0 & 15);
        for (int l = 0; l < 8; l++) {
            y[l] = sub_rn(mul_rn(dl, (float)((q[l] >> (2 * j)) & 3)), ml);
        }
    }
};

struct Q3_K { // {hmask[32]; qs[64]; sc[12]; d}: d·(s - 32)·(q - 4·!hbit)
    static constexpr int BS = BS_Q3_K, TS = TS_Q3_K, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int s = e0 >> 4, h = s >> 3, j = (s & 7) >> 1, half = s & 1;
        const uint8_t *sc = b + 96;
        const int lo = (sc[s % 8] >> (4 * (s / 8))) & 15, hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
        const float dl = mul_rn(ld_fp16(b + 108), (float)((lo | hi << 4) - 32));
        const uint8_t *q = b + 32 + 32 * h + 16 * half + (e0 & 15);
        const uint8_t *m = b + 16 * half + (e0 & 15);
        for (int l = 0; l < 8; l++) {
            const int v = ((q[l] >> (2 * j)) & 3) | ((m[l] >> (4 * h + j)) & 1) << 2;
            y[l] = mul_rn(dl, (float)(v - 4));
        }
    }
};

// q4_k / q5_k: 6-bit scale and min of sub-block s (< 8) from the 12 packed bytes at p.
static __device__ __forceinline__ void scale_min_k4(const uint8_t *p, int s, int *sc, int *mn)
{
    if (s < 4) {
        *sc = p[s] & 63;
        *mn = p[s + 4] & 63;
    } else {
        *sc = (p[s + 4] & 15) | (p[s - 4] >> 6) << 4;
        *mn = (p[s + 4] >> 4) | (p[s] >> 6) << 4;
    }
}

// q4_k / q5_k: sub-block s = e / 32 = 2p + k is nibble k of qs[32p + l], l = e % 32.
struct Q4_K { // {d; dmin; scales[12]; qs[128]}: d·sc·q - dmin·mn
    static constexpr int BS = BS_Q4_K, TS = TS_Q4_K, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int s = e0 >> 5;
        int sc, mn;
        scale_min_k4(b + 4, s, &sc, &mn);
        const float dl = mul_rn(ld_fp16(b), (float)sc), ml = mul_rn(ld_fp16(b + 2), (float)mn);
        const uint8_t *q = b + 16 + 32 * (s >> 1) + (e0 & 31);
        const int sh = 4 * (s & 1);
        for (int l = 0; l < 8; l++) {
            y[l] = sub_rn(mul_rn(dl, (float)((q[l] >> sh) & 15)), ml);
        }
    }
};

struct Q5_K { // {d; dmin; scales[12]; qh[32]; qs[128]}: bit 4 of e is bit s of qh[l]
    static constexpr int BS = BS_Q5_K, TS = TS_Q5_K, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int s = e0 >> 5;
        int sc, mn;
        scale_min_k4(b + 4, s, &sc, &mn);
        const float dl = mul_rn(ld_fp16(b), (float)sc), ml = mul_rn(ld_fp16(b + 2), (float)mn);
        const uint8_t *q = b + 48 + 32 * (s >> 1) + (e0 & 31), *qh = b + 16 + (e0 & 31);
        const int sh = 4 * (s & 1);
        for (int l = 0; l < 8; l++) {
            const int v = ((q[l] >> sh) & 15) | ((qh[l] >> s) & 1) << 4;
            y[l] = sub_rn(mul_rn(dl, (float)v), ml);
        }
    }
};

struct Q6_K { // {ql[128]; qh[64]; i8 scales[16]; d}: d·sc·(q - 32), s = 8h + 2k + half
    static constexpr int BS = BS_Q6_K, TS = TS_Q6_K, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int s = e0 >> 4, h = s >> 3, k = (s & 7) >> 1, half = s & 1;
        const float dl = mul_rn(ld_fp16(b + 208), (float)(int8_t)b[192 + s]);
        const uint8_t *lo = b + 64 * h + 32 * (k & 1) + 16 * half + (e0 & 15);
        const uint8_t *hi = b + 128 + 32 * h + 16 * half + (e0 & 15);
        const int sh = 4 * (k >> 1);
        for (int l = 0; l < 8; l++) {
            const int v = ((lo[l] >> sh) & 15) | ((hi[l] >> (2 * k)) & 3) << 4;
            y[l] = mul_rn(dl, (float)(v - 32));
        }
    }
};

struct IQ4_XS { // {d; scales_h; scales_l[4]; qs[128]}: d·(ls - 32)·grid[q], ib = e / 32
    static constexpr int BS = BS_IQ4_XS, TS = TS_IQ4_XS, CH = 8;
    static __device__ __forceinline__ void dec(const uint8_t *b, int e0, float *y)
    {
        const int ib = e0 >> 5;
        const uint32_t sh = (uint32_t)b[2] | (uint32_t)b[3] << 8;
        const int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 15) | (int)((sh >> (2 * ib)) & 3) << 4;
        const float dl = mul_rn(ld_fp16(b), (float)(ls - 32));
        int q[8];
        nibbles32(b + 8 + 16 * ib, e0 & 31, q);
        for (int l = 0; l < 8; l++) {
            y[l] = mul_rn(dl, iq4_level(q[l]));
        }
    }
};

} // namespace qdec

#include "kernels/cuda/qgrids.cuh"
#include "kernels/cuda/qgrids_k.cuh"
#include "kernels/cuda/qgrids_ks.cuh"
#include "kernels/cuda/qgrids_kt.cuh"
#include "kernels/cuda/qmisc.cuh"
#include "kernels/cuda/qrowform.cuh"

namespace qdec
{

// D::META (bytes of row meta ahead of the blocks; 0 where D has none).
template <class D, class = void> struct meta_of {
    static constexpr int value = 0;
};
template <class D> struct meta_of<D, decltype((void)D::META)> {
    static constexpr int value = D::META;
};

// Bytes of a row of n elements of D (n a multiple of D::BS).
template <class D> static inline size_t row_bytes(int64_t n)
{
    return (size_t)meta_of<D>::value + (size_t)(n / D::BS) * D::TS;
}

// Elements [c·CH, c·CH + CH) of a row that starts at row (c: the chunk index in the row); a row
// with meta bytes passes its scale (fp16 for 2 bytes, else the f32 they start with) to the
// decoder.
template <class D>
static __device__ __forceinline__ void dec_chunk(const uint8_t *row, int64_t c, float *y)
{
    constexpr int per_block = D::BS / D::CH, meta = meta_of<D>::value;
    const uint8_t *blk = row + meta + (c / per_block) * D::TS;
    const int e0 = (int)(c % per_block) * D::CH;
    if constexpr (meta == 0) {
        D::dec(blk, e0, y);
    } else {
        static_assert(meta == 2 || meta == 4 || meta == 8, "row scale: fp16 or f32");
        D::dec(blk, meta == 2 ? ld_fp16(row) : __uint_as_float(ld_u32(row)), e0, y);
    }
}

} // namespace qdec

// The types with a device decoder (types.def name, decoder).
#define IMC_CUDA_TYPES(X)                                                                          \
    X(F32, qdec::F32)                                                                              \
    X(F16, qdec::F16)                                                                              \
    X(BF16, qdec::BF16)                                                                            \
    X(Q4_0, qdec::Q4_0)                                                                            \
    X(Q4_1, qdec::Q4_1)                                                                            \
    X(Q5_0, qdec::Q5_0)                                                                            \
    X(Q5_1, qdec::Q5_1)                                                                            \
    X(Q8_0, qdec::Q8_0)                                                                            \
    X(Q2_K, qdec::Q2_K)                                                                            \
    X(Q3_K, qdec::Q3_K)                                                                            \
    X(Q4_K, qdec::Q4_K)                                                                            \
    X(Q5_K, qdec::Q5_K)                                                                            \
    X(Q6_K, qdec::Q6_K)                                                                            \
    X(IQ4_NL, qdec::IQ4_NL)                                                                        \
    X(IQ4_XS, qdec::IQ4_XS)                                                                        \
    X(IQ2_XXS, qdec::IQ2_XXS)                                                                      \
    X(IQ2_XS, qdec::IQ2_XS)                                                                        \
    X(IQ2_S, qdec::IQ2_S)                                                                          \
    X(IQ3_XXS, qdec::IQ3_XXS)                                                                      \
    X(IQ3_S, qdec::IQ3_S)                                                                          \
    X(IQ1_S, qdec::IQ1_S)                                                                          \
    X(IQ1_M, qdec::IQ1_M)                                                                          \
    X(IQ2_K, qdec::IQ2_K)                                                                          \
    X(IQ3_K, qdec::IQ3_K)                                                                          \
    X(IQ4_K, qdec::IQ4_K)                                                                          \
    X(IQ5_K, qdec::IQ5_K)                                                                          \
    X(IQ6_K, qdec::IQ6_K)                                                                          \
    X(IQ2_KS, qdec::IQ2_KS)                                                                        \
    X(IQ3_KS, qdec::IQ3_KS)                                                                        \
    X(IQ4_KS, qdec::IQ4_KS)                                                                        \
    X(IQ5_KS, qdec::IQ5_KS)                                                                        \
    X(IQ4_KSS, qdec::IQ4_KSS)                                                                      \
    X(IQ2_KL, qdec::IQ2_KL)                                                                        \
    X(IQ1_KT, qdec::IQ1_KT)                                                                        \
    X(IQ2_KT, qdec::IQ2_KT)                                                                        \
    X(IQ3_KT, qdec::IQ3_KT)                                                                        \
    X(IQ4_KT, qdec::IQ4_KT)                                                                        \
    X(Q6_0, qdec::Q6_0)                                                                            \
    X(Q8_K, qdec::Q8_K)                                                                            \
    X(MXFP4, qdec::MXFP4)                                                                          \
    X(Q8_KV, qdec::Q8_KV)                                                                          \
    X(TQ1_0, qdec::TQ1_0)                                                                          \
    X(TQ2_0, qdec::TQ2_0)                                                                          \
    X(IQ1_BN, qdec::IQ1_BN)                                                                        \
    X(IQ2_BN, qdec::IQ2_BN)                                                                        \
    X(Q5_0_R4, qdec::Q5_0_R4)                                                                      \
    X(Q6_0_R4, qdec::Q6_0_R4)                                                                      \
    X(IQ1_S_R4, qdec::IQ1_S_R4)                                                                    \
    X(IQ1_M_R4, qdec::IQ1_M_R4)                                                                    \
    X(Q8_K_R8, qdec::Q8_K_R8)                                                                      \
    X(Q8_K_R16, qdec::Q8_K_R16)                                                                    \
    X(Q8_KV_R8, qdec::Q8_KV_R8)

namespace qdec
{

// Whether type has a device decoder.
static inline bool has_decoder(enum imc_type type)
{
    switch (type) {
#define X(NAME, D) case IMC_TYPE_##NAME:
        IMC_CUDA_TYPES(X)
#undef X
        return true;
    default:
        return false;
    }
}

// The types.def name of type ("unknown" for an id it lacks); here rather than imc_type_name so
// that the emulated kernels need only imc_core.
static inline const char *type_name(enum imc_type type)
{
    switch ((int)type) {
#define X(NAME, id, name, bs, ts, rows, meta, dec, quant, tol)                                     \
    case id:                                                                                       \
        return name;
#include "types/types.def"
#undef X
    default:
        return "unknown";
    }
}

// Elements per block of a type with a device decoder.
static inline int64_t block_size(enum imc_type type)
{
    switch (type) {
#define X(NAME, D)                                                                                 \
    case IMC_TYPE_##NAME:                                                                          \
        return D::BS;
        IMC_CUDA_TYPES(X)
#undef X
    default:
        return 0;
    }
}

// IMC_OK when rows of n_per_row elements of type have a device decoder and whole blocks;
// else logs why (prefixed by what) and returns IMC_ERR_UNSUPPORTED or IMC_ERR_ARG.
static inline enum imc_status check_shape(const char *what, enum imc_type type, int64_t n_per_row)
{
    if (!has_decoder(type)) {
        IMC_LOG_ERR("%s: type %s (id %d) has no device kernel", what, type_name(type), (int)type);
        return IMC_ERR_UNSUPPORTED;
    }
    const int64_t bs = block_size(type);
    if (n_per_row <= 0 || n_per_row % bs != 0) {
        IMC_LOG_ERR("%s: rows of %lld elements: expected a positive multiple of %s's block of "
                    "%lld",
                    what, (long long)n_per_row, type_name(type), (long long)bs);
        return IMC_ERR_ARG;
    }
    return IMC_OK;
}

// IMC_OK when a group of products (mmv_group, mmq_group; what names it) is well formed: rows of
// n_in elements of type (check_shape), n_jobs >= 0, n_out in 0 .. max_rows, ldx >= n_in,
// ldy >= n_out, and each job's tokens in 1 .. max_tok; else logs why and returns the error.
static inline enum imc_status check_group(const char *what, enum imc_type type,
                                          const struct imc_cuda_mmv_job *jobs, int n_jobs,
                                          int64_t n_out, int64_t n_in, int64_t ldx, int64_t ldy,
                                          int64_t max_tok, int64_t max_rows)
{
    IMC_TRY(check_shape(what, type, n_in));
    if (n_jobs < 0 || n_out < 0 || n_out > max_rows || ldx < n_in || ldy < n_out) {
        IMC_LOG_ERR("%s: %d jobs, %lld x %lld weights, ldx %lld, ldy %lld: bad shape", what,
                    n_jobs, (long long)n_out, (long long)n_in, (long long)ldx, (long long)ldy);
        return IMC_ERR_ARG;
    }
    for (int i = 0; i < n_jobs; i++) {
        if (jobs[i].n_tok < 1 || jobs[i].n_tok > max_tok) {
            IMC_LOG_ERR("%s: job %d has %lld tokens: expected 1..%lld", what, i,
                        (long long)jobs[i].n_tok, (long long)max_tok);
            return IMC_ERR_ARG;
        }
    }
    return IMC_OK;
}

// Up to IMC_CUDA_MMV_GROUP_MAX jobs of one launch of mmv_group or mmq_group, by value in the
// kernel's parameters (under CUDA's 4 KB of them: no copy).
struct group_jobs {
    struct imc_cuda_mmv_job j[IMC_CUDA_MMV_GROUP_MAX];
};
static_assert(sizeof(group_jobs) + 48 <= 4096, "a launch's parameters stay under 4 KB");

// The jobs of one launch: jobs [j0, j0 + n) of jobs[0 .. n_jobs) into p (the rest zero), n the
// most one launch takes; returns n, and the most tokens a job of them has in *most_tok.
static inline int group_chunk(const struct imc_cuda_mmv_job *jobs, int n_jobs, int j0,
                              group_jobs *p, int64_t *most_tok)
{
    const int n = n_jobs - j0 < IMC_CUDA_MMV_GROUP_MAX ? n_jobs - j0 : IMC_CUDA_MMV_GROUP_MAX;
    memset(p, 0, sizeof(*p));
    memcpy(p->j, jobs + j0, (size_t)n * sizeof(p->j[0]));
    *most_tok = 0;
    for (int i = 0; i < n; i++) {
        *most_tok = p->j[i].n_tok > *most_tok ? p->j[i].n_tok : *most_tok;
    }
    return n;
}

} // namespace qdec

#endif // IMC_KERNELS_CUDA_QDECODE_CUH
