/*
 * kernels/cpu/qmm: the quantized-activation matmul behind imc_cpu_matmul's q8 mode (not part of
 * the kernels API; tests/kernels/ and bench/ use it directly). llama.cpp's CPU arithmetic: the
 * activations are quantized to 8 bits per block of 32, multiplied with the weight blocks as
 * integers, and each block's integer sum is scaled by the two block scales.
 *
 * Activations: a row x[0..n) (n a multiple of 32) becomes blocks as ggml's q8_0 quantizer makes
 * them: d = amax / 127 (amax = max |x_i| over the block), q_i = roundf(x_i · (1 / d)), and the
 * scale kept as q8_0 stores it, rounded to f16 (d = 0 and q = 0 for an all-zero block). So
 * |q_i| <= 127 and x_i ≈ d · q_i within d/2 + 127·2^-11·d.
 *
 * Weights of 32-blocks: Q8_0 (q_i int8, d f16), Q4_0 (q_i = nibble − 8, d f16), Q5_0 (q_i =
 * nibble + 16·(bit i of qh) − 16, d f16: what llama.cpp's K-quant mixes give tensors whose rows
 * are not a multiple of 256, DeepSeek's attn_k_b) and IQ4_NL (q_i = the iq4 grid value of the
 * nibble, d f16).
 *
 * Arithmetic of the 32-block types (bitwise, every path): output y[t][o] is one float
 * accumulator that starts at +0 and takes the blocks b in ascending order:
 *     I_b = Σ_{e<32} wq_b[e] · xq_b[e]                    (exact, int32)
 *     acc = fmaf((float)I_b, dw_b · dx_b, acc)            (the scale product one float multiply)
 *     y = acc
 * The integer sum is exact, so a path may form it in any order (AVX2: rows interleaved 4 bytes
 * at a time, one row per 32-bit lane; AVX-VNNI: dpbusd on x + 128, minus 128·Σw; AVX512-VNNI:
 * dpbusd of w + 128 against x, minus 128·Σx, the block's c128: qmm_vnni.c), and the
 * float operations are the same per block on every path. y depends only on W row o, x row t and n:
 * never on the batch, the tiling, the thread count or the path.
 *
 * The 256-block types (K-quants Q2_K..Q6_K, IQ4_XS) take the activations in a q8_K-like form
 * (struct imc_q8k): per 256 elements one float scale d = amax / 127 (not rounded to f16, as
 * q8_K keeps it), q_i = roundf(x_i · (1 / d)), and the sums of q over each 16 elements. A weight
 * super-block is read as integers wq[e] (e < 256, in element order), one integer scale per 16
 * elements sc[k] (k = e / 16; types with 32-element sub-blocks repeat it), for Q2_K, Q4_K, Q5_K
 * one integer min per 16 elements mn[k], and the f16 scales d (and dmin):
 *     weight e = d · sc[e / 16] · wq[e] − dmin · mn[e / 16]
 *       q2_k: wq 0..3, sc 0..15, mn 0..15     q3_k: wq −4..3, sc −32..31
 *       q4_k: wq 0..15, sc, mn 0..63          q5_k: wq 0..31, sc, mn 0..63
 *       q6_k: wq −32..31, sc −128..127        iq4_xs: wq the grid (−127..113), sc −32..31
 * Per super-block b, in ascending order, one float accumulator acc (from +0):
 *     I = Σ_{e<256} sc[e / 16] · wq[e] · xq[e]           (exact, int32: |I| < 2^28)
 *     M = Σ_{k<16} mn[k] · bsum[k]                        (exact, int32)
 *     acc = fmaf((float)I, d · dx, acc)                   ((float) rounds to nearest)
 *     acc = fmaf(−(float)M, dmin · dx, acc)               (types with mins only)
 * and y = acc. AVX2 forms I with maddubs on 8 interleaved rows (one row per 32-bit lane), the
 * pair sums of 16 elements added as int16 where they cannot overflow, then one madd with the
 * 16-element group's scales; M with madd of the rows' min pairs against the block-sum pairs;
 * then one fmadd (and one fnmadd) per super-block and 8 rows. For few tokens the AVX2 path reads
 * the rows in place instead (qmm_direct_avx2.c): I of each row spread over 8 int32 lanes, 8 rows
 * gathered into one vector by a horizontal-add tree, then the same fmadd per lane.
 *
 * Workload: n up to ~20k, called on tiles of up to a few hundred W rows × token chunks.
 */
#ifndef IMC_KERNELS_CPU_QMM_H
#define IMC_KERNELS_CPU_QMM_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "types/types.h"

#define IMC_QMM_BLOCK 32   // elements per activation block of the 32-block types
#define IMC_QMM_KBLOCK 256 // elements per activation super-block of the 256-block types

// One quantized activation block (40 bytes; q needs no alignment). c128 serves the kernels that
// take the weights as unsigned bytes w + 128 (qmm_vnni.c's 512-bit tile): Σ (w + 128)·q − 128·Σ q.
struct imc_q8x {
    float d;
    int32_t c128; // −128 · Σ_e q[e] (exact: |Σ q| <= 32·127)
    int8_t q[IMC_QMM_BLOCK];
};

// The c128 of a block's q (what both quantizers store).
static inline int32_t imc_qmm_c128(const int8_t q[IMC_QMM_BLOCK])
{
    int32_t s = 0;
    for (int e = 0; e < IMC_QMM_BLOCK; e++) {
        s += q[e];
    }
    return -128 * s;
}

// One quantized activation super-block of the 256-block types (292 bytes).
struct imc_q8k {
    float d;          // amax / 127 (0 for an all-zero block)
    int16_t bsum[16]; // bsum[k] = Σ q[16k .. 16k+15]
    int8_t q[IMC_QMM_KBLOCK];
};

// True when W of type t can be multiplied on the q8 route (rows of n, n a multiple of t's
// block size).
bool imc_qmm_supports(enum imc_type t, int64_t n);

// Bytes of one quantized activation row of n elements for weights of type t (supported):
// n / 32 struct imc_q8x or n / 256 struct imc_q8k.
uint64_t imc_qmm_xrow_bytes(enum imc_type t, int64_t n);

// Quantizes x[0..n) into the activation form of weight type t (supported) at out
// (imc_qmm_xrow_bytes(t, n) bytes, 4-byte aligned): one of the two functions below, or on the
// AVX2 and VNNI paths their vector forms (256-bit; 512-bit where the CPU has AVX-512; the same
// bytes).
void imc_qmm_quantize(enum imc_gemm_path path, enum imc_type t, const float *x, int64_t n,
                      void *out);
// imc_qmm_quantize of the n_rows rows x + r·ldx into out + r·ldo (bytes), the quantizer chosen
// once for all of them.
void imc_qmm_quantize_rows(enum imc_gemm_path path, enum imc_type t, const float *x, int64_t ldx,
                           int64_t n_rows, int64_t n, uint8_t *out, uint64_t ldo);

// Quantizes x[0..n) (n a multiple of 32) into n / 32 blocks (the rule above; scalar C, the
// spec the AVX2 quantizer matches byte for byte).
void imc_qmm_quantize_row(const float *x, int64_t n, struct imc_q8x *out);

// Quantizes x[0..n) (n a multiple of 256) into n / 256 super-blocks with their block sums.
void imc_qmm_quantize_row_k(const float *x, int64_t n, struct imc_q8k *out);

// Token counts up to imc_qmm_direct_toks(type, avx512) take the AVX2 tile that reads W in place
// (qmm_direct_avx2.c); more tokens take the one that first repacks the tile's rows into scratch
// (qmm_avx2.c). The same bits either way (the arithmetic above). The limits are where the direct
// tile stopped being faster (bench_qmm, 2048 x 2048, 1 thread, AMD EPYC Zen 3 AVX2, ratios
// direct / repacking near 1.0-1.1 at the limit): q8_0 8 (its int8 weights read as they are),
// q4_0 and iq4_nl 4, q2_k q4_k q5_k 4, q3_k q6_k 6, iq4_xs 12 (whose repacked kernel cannot add
// maddubs results as int16). Against the AVX512 repacking tiles (qmm_vnni.c, 16 rows per vector)
// the limits are lower, avx512 true: q3_k and q6_k 4, the others 2 (bench_qmm --path vnni, 1..12
// tokens, Zen 5: at 4 tokens the 512-bit tile is 1.2-1.8x the direct one for q8_0, q4_0, q5_0,
// iq4_nl, q2_k, q4_k, q5_k, iq4_xs; q3_k, q6_k equal at 4, 1.4x at 6).
static inline int imc_qmm_direct_toks(enum imc_type t, bool avx512)
{
    switch (t) {
    case IMC_TYPE_IQ4_XS:
        return avx512 ? 2 : 12;
    case IMC_TYPE_Q8_0:
        return avx512 ? 2 : 8;
    case IMC_TYPE_Q3_K:
    case IMC_TYPE_Q6_K:
        return avx512 ? 4 : 6;
    default:
        return avx512 ? 2 : 4;
    }
}

// Bytes of scratch imc_qmm_tile needs for nr W rows of n elements of type t (supported): the
// AVX2 and VNNI paths' copy of the rows, 8 at a time interleaved (32-block types: 10/8 of n
// bytes per row, VNNI's groups; K types: 45/32 of n bytes per row), rows rounded up to 8.
uint64_t imc_qmm_scratch_bytes(enum imc_type t, int64_t nr, int64_t n);

// y[t·ldy + r] for r < nr, t < nt = the outputs of W rows w + r·row_bytes (type t, n elements;
// row_bytes is the row's size, imc_type_row_bytes: the kernels take the block size from it)
// against the quantized token rows xq + t·ldq (bytes; rows of imc_qmm_quantize). Any nr,
// nt >= 1; path must be supported; scratch holds imc_qmm_scratch_bytes(type, nr, n) bytes
// (4-byte aligned; the generic path and the direct one, nt <= imc_qmm_direct_toks(type, avx512),
// do not touch it).
void imc_qmm_tile(enum imc_gemm_path path, enum imc_type type, const uint8_t *w, uint64_t row_bytes,
                  int64_t nr, const void *xq, uint64_t ldq, int64_t nt, int64_t n, float *y,
                  int64_t ldy, void *scratch);

// ---- private to qmm.c and qmm_avx2.c ----------------------------------------------------------

#define IMC_QMM_MR 2 // W rows of a generic micro-tile
#define IMC_QMM_NT 4 // token rows of a generic micro-tile

// A vector path's whole tile: imc_qmm_tile's contract (nb blocks of the type's size per row),
// with scratch of imc_qmm_scratch_bytes(type, nr, n) bytes for its repacked weights.
typedef void (*imc_qmm_tile_fn)(enum imc_type type, const uint8_t *w, uint64_t row_bytes,
                                int64_t nr, const uint8_t *xq, uint64_t ldq, int64_t nt, int64_t nb,
                                float *y, int64_t ldy, void *scratch);

// True for the 256-block types (activations struct imc_q8k).
static inline bool imc_qmm_is_k(enum imc_type t)
{
    return t == IMC_TYPE_Q2_K || t == IMC_TYPE_Q3_K || t == IMC_TYPE_Q4_K || t == IMC_TYPE_Q5_K ||
           t == IMC_TYPE_Q6_K || t == IMC_TYPE_IQ4_XS;
}

static inline bool imc_qmm_has_mins(enum imc_type t)
{
    return t == IMC_TYPE_Q2_K || t == IMC_TYPE_Q4_K || t == IMC_TYPE_Q5_K;
}

// Byte offset of the f16 scale d in a K super-block (dmin, where the type has mins, follows it).
static inline int imc_qmm_kd_offset(enum imc_type t)
{
    return t == IMC_TYPE_Q6_K ? 208 : t == IMC_TYPE_Q2_K ? 80 : t == IMC_TYPE_Q3_K ? 108 : 0;
}

// The integer scales sc[k] and mins mn[k] (k < 16, one per 16 elements; mn 0 for types without
// mins) of a K super-block blk (byte layouts: types/quant_priv.h). Scalar, shared by every path
// (inlined where the type is a constant).
static inline void imc_qmm_kscales(enum imc_type t, const uint8_t *blk, int16_t sc[16],
                                   int16_t mn[16])
{
    for (int k = 0; k < 16; k++) {
        mn[k] = 0;
    }
    if (t == IMC_TYPE_Q4_K || t == IMC_TYPE_Q5_K) { // 8 × (6-bit scale, 6-bit min), 12 bytes
        const uint8_t *s = blk + 4;
        for (int j = 0; j < 8; j++) {
            const int a = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
            const int m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4;
            sc[2 * j] = sc[2 * j + 1] = (int16_t)a;
            mn[2 * j] = mn[2 * j + 1] = (int16_t)m;
        }
    } else if (t == IMC_TYPE_Q6_K) { // 16 int8 scales at 192
        for (int k = 0; k < 16; k++) {
            sc[k] = (int8_t)blk[192 + k];
        }
    } else if (t == IMC_TYPE_Q2_K) { // 16 bytes: scale low nibble, min high nibble
        for (int k = 0; k < 16; k++) {
            sc[k] = blk[k] & 15;
            mn[k] = blk[k] >> 4;
        }
    } else if (t == IMC_TYPE_Q3_K) { // 16 × 6 bits at 96, offset 32
        const uint8_t *s = blk + 96;
        for (int k = 0; k < 16; k++) {
            const int lo = (s[k % 8] >> (4 * (k / 8))) & 15,
                      hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
            sc[k] = (int16_t)((lo | hi << 4) - 32);
        }
    } else { // IQ4_XS: 8 × 6 bits (low nibbles at 4, top pairs in the u16 at 2), offset 32
        const unsigned sh = blk[2] | blk[3] << 8;
        for (int j = 0; j < 8; j++) {
            const int ls = ((blk[4 + j / 2] >> (4 * (j % 2))) & 15) | ((sh >> (2 * j)) & 3) << 4;
            sc[2 * j] = sc[2 * j + 1] = (int16_t)(ls - 32);
        }
    }
}

// The encodings of the VNNI tile: AVX512-VNNI with AVX512VL (EVEX) or AVX-VNNI (VEX).
enum imc_qmm_vnni { IMC_QMM_VNNI_BEST = 0, IMC_QMM_VNNI_EVEX = 1, IMC_QMM_VNNI_VEX = 2 };

// A vector path's imc_qmm_quantize for one path (the scalar functions' bytes).
typedef void (*imc_qmm_quant_fn)(enum imc_type t, const float *x, int64_t n, void *out);

#if defined(__x86_64__) || defined(__i386__)
// The AVX2 tile and quantizer (qmm_avx2.c), or NULL when the CPU lacks AVX2, FMA or F16C.
imc_qmm_tile_fn imc_qmm_tile_avx2(void);
imc_qmm_quant_fn imc_qmm_quantize_avx2(void);
// The 512-bit quantizer (qmm_vnni.c; the same bytes), or NULL where the CPU lacks the AVX512
// subsets of the K types' VNNI tile (F, BW, DQ, VL, VNNI).
imc_qmm_quant_fn imc_qmm_quantize_avx512(void);
// The AVX2 tile that reads the weights in place (qmm_direct_avx2.c; scratch unused), the
// tile's choice for nt <= imc_qmm_direct_toks(type, avx512); NULL as imc_qmm_tile_avx2.
imc_qmm_tile_fn imc_qmm_direct_avx2(void);
// The VNNI repacking tile of the 32-block types (qmm_vnni.c) in encoding enc, BEST: EVEX where
// the CPU has it, else VEX; NULL when the CPU lacks that encoding (or AVX2, FMA, F16C).
imc_qmm_tile_fn imc_qmm_tile_vnni(enum imc_qmm_vnni enc);
// The AVX512 (BW, DQ, VL, VNNI) repacking tile of the K types (qmm_vnni.c: 16 rows per 512-bit
// vector; CPUs with AVX-VNNI only keep the AVX2 tile for them), or NULL.
imc_qmm_tile_fn imc_qmm_tile_vnni_k(void);
#else
static inline imc_qmm_tile_fn imc_qmm_tile_avx2(void)
{
    return NULL;
}
static inline imc_qmm_tile_fn imc_qmm_direct_avx2(void)
{
    return NULL;
}
static inline imc_qmm_quant_fn imc_qmm_quantize_avx2(void)
{
    return NULL;
}
static inline imc_qmm_quant_fn imc_qmm_quantize_avx512(void)
{
    return NULL;
}
static inline imc_qmm_tile_fn imc_qmm_tile_vnni(enum imc_qmm_vnni enc)
{
    (void)enc;
    return NULL;
}
static inline imc_qmm_tile_fn imc_qmm_tile_vnni_k(void)
{
    return NULL;
}
#endif

#endif // IMC_KERNELS_CPU_QMM_H
