/*
 * types/quant_priv.h: private to the .c files of types/. Declares the per-type row
 * dequantizers/quantizers (generated from types/types.def), the one generic row loop for each
 * direction (IMC_DEFINE_DEQUANT_ROW, IMC_DEFINE_QUANT_ROW), the one segment loop of the
 * interleaved and row-meta types (decode_seg, IMC_DEFINE_DECODE), all three taking a type's
 * block size and bytes from its types.def row, and the scale searches shared by the
 * quantizers. DESIGN.md §4.
 *
 * Byte layouts (ggml's, little-endian; fp16 = IEEE half):
 *   q4_0   {fp16 d; u8 qs[16]}                      x[j] = d*(lo(qs[j])-8), x[j+16] = d*(hi-8)
 *   q4_1   {fp16 d, m; u8 qs[16]}                   x = d*q + m
 *   q5_0   {fp16 d; u8 qh[4]; u8 qs[16]}            bit j of qh (u32) = bit 4 of q[j]; q-16
 *   q5_1   {fp16 d, m; u8 qh[4]; u8 qs[16]}         x = d*q + m
 *   q8_0   {fp16 d; i8 qs[32]}                      x = d*q
 *   q2_k   {u8 scales[16]; u8 qs[64]; fp16 d, dmin} x = d*(sc&15)*q - dmin*(sc>>4), q 2 bits
 *   q3_k   {u8 hmask[32]; u8 qs[64]; u8 sc[12]; fp16 d}  x = d*(s-32)*(q-4*!hbit), s 6 bits
 *   q4_k   {fp16 d, dmin; u8 scales[12]; u8 qs[128]}     x = d*s*q - dmin*m, s,m 6 bits
 *   q5_k   {fp16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}
 *   q6_k   {u8 ql[128]; u8 qh[64]; i8 scales[16]; fp16 d}  x = d*s*(q-32)
 *   iq4_nl {fp16 d; u8 qs[16]}                      x = d*kvalues[q]
 *   iq4_xs {fp16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}  x = d*(ls-32)*kvalues[q]
 * The element order inside each block is documented at its decode function.
 */
#ifndef IMC_TYPES_QUANT_PRIV_H
#define IMC_TYPES_QUANT_PRIV_H

#include "types/types.h"

#include <math.h>
#include <string.h>

#define IMC_QK_K 256 // elements per K-quant super-block

// Row functions of every type (types.def): imc_dequant_row_<NAME> (dec ROW) or
// imc_decode_<NAME> (dec SEG), and imc_quant_row_<NAME> (quant Q).
#define IMC_DECL_DEC_ROW(NAME) void imc_dequant_row_##NAME(const void *src, float *dst, int64_t n);
#define IMC_DECL_DEC_SEG(NAME)                                                                     \
    void imc_decode_##NAME(const uint8_t *grp, int lane, int64_t n_per_row, int64_t k0,           \
                           int64_t kn, float *dst);
#define IMC_DECL_Q_Q(NAME)                                                                         \
    void imc_quant_row_##NAME(const float *src, void *dst, int64_t n, const float *qw);
#define IMC_DECL_Q_NONE(NAME)
#define X(NAME, id, name, bs, ts, rows, meta, dec, quant, tol)                                    \
    IMC_DECL_DEC_##dec(NAME) IMC_DECL_Q_##quant(NAME)
#include "types/types.def"
#undef X

// The non-linear 4-bit grid of iq4_nl / iq4_xs.
extern const int8_t imc_iq4_grid[16];

static inline float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

// fp16 -> fp32, exact and branch-free (selects only) so that loops over it vectorize:
// subnormals via an exact int -> float conversion, normals by re-biasing the exponent,
// inf / nan by setting the fp32 exponent to all ones (payload kept).
static inline float fp16_to_fp32_inline(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = (uint32_t)(h & 0x7fff) << 13;
    const uint32_t exp = h & 0x7c00;
    const uint32_t normal = em + (112u << 23), special = em | 0x7f800000u;
    const uint32_t sub = f32_to_bits((float)(int32_t)(h & 0x3ff) * 0x1p-24f);
    return bits_to_f32(sign | (exp == 0 ? sub : exp == 0x7c00 ? special : normal));
}

static inline float load_fp16(const uint8_t *p)
{
    return fp16_to_fp32_inline((uint16_t)(p[0] | p[1] << 8));
}

static inline void store_fp16(uint8_t *p, float f)
{
    uint16_t h = imc_fp32_to_fp16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

// Rounds f to the nearest fp16 value (what a reader of the stored scale sees).
static inline float round_fp16(float f)
{
    return imc_fp16_to_fp32(imc_fp32_to_fp16(f));
}

// The one dequantization loop: decodes n / bs blocks of ts bytes with dec (block -> bs floats).
// Inlined into each type's row function so that dec is inlined too.
typedef void (*block_decode_fn)(const uint8_t *blk, float *y);
static inline __attribute__((always_inline)) void decode_rows(const void *src, float *dst,
                                                              int64_t n, int64_t bs, size_t ts,
                                                              block_decode_fn dec)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += bs, b += ts) {
        dec(b, dst + i);
    }
}

// --- the types with interleaved rows or per-row meta (types.def: SEG) ---
//
// A group of R = rows rows (R = 1: one row with its meta) stores the R rows' meta first, meta
// bytes each (row k's at k·meta), then per bs columns one interleaved block of R x ts bytes that
// holds those columns' blocks of the R rows. Where a type has meta, it starts with the row's
// scale: fp16 when meta is 2 bytes, f32 when it is 4 or 8 (q8_kv: then an i32 sum).

// Each type's geometry from types.def: IMC_BS_<NAME>, IMC_TS_<NAME>, IMC_ROWS_<NAME>,
// IMC_META_<NAME>.
#define X(NAME, id, name, bs, ts, rows, meta, dec, quant, tol)                                    \
    enum { IMC_BS_##NAME = bs, IMC_TS_##NAME = ts, IMC_ROWS_##NAME = rows, IMC_META_##NAME = meta };
#include "types/types.def"
#undef X

static inline uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// A little-endian fp32 (the per-row scales of the meta bytes), at any alignment.
static inline float load_f32(const uint8_t *p)
{
    return bits_to_f32(load_u32(p));
}

// Lane decoder: the bs values of row `lane` (0 when rows == 1) that the interleaved block at blk
// holds, into y; d is the row's scale from its meta (0 for a type without meta; unused there).
typedef void (*lane_decode_fn)(const uint8_t *blk, int lane, float d, float *y);

// The scale of row `lane` of a group with meta bytes per row (0: none).
static inline __attribute__((always_inline)) float row_scale(const uint8_t *grp, int lane,
                                                             size_t meta)
{
    const uint8_t *p = grp + (size_t)lane * meta;
    return meta == 0 ? 0.0f : meta == 2 ? load_fp16(p) : load_f32(p);
}

// The one segment loop: columns [k0, k0 + kn) (multiples of bs) of row `lane` of the group at
// grp, with dec over the interleaved blocks k0 / bs on. Inlined so that dec is inlined too.
static inline __attribute__((always_inline)) void decode_seg(const uint8_t *grp, int lane,
                                                             int64_t k0, int64_t kn, float *dst,
                                                             int rows, size_t meta, int64_t bs,
                                                             size_t ts, lane_decode_fn dec)
{
    const float d = row_scale(grp, lane, meta);
    const size_t gts = (size_t)rows * ts;
    const uint8_t *b = grp + (size_t)rows * meta + (size_t)(k0 / bs) * gts;
    for (int64_t i = 0; i < kn; i += bs, b += gts) {
        dec(b, lane, d, dst + i);
    }
}

// Defines imc_decode_NAME (types.def: SEG) as decode_seg over NAME's geometry with lane decoder
// dec.
#define IMC_DEFINE_DECODE(NAME, dec)                                                               \
    void imc_decode_##NAME(const uint8_t *grp, int lane, int64_t n_per_row, int64_t k0,           \
                           int64_t kn, float *dst)                                                 \
    {                                                                                              \
        decode_seg(grp, lane, k0, kn, dst, IMC_ROWS_##NAME, IMC_META_##NAME, IMC_BS_##NAME,       \
                   IMC_TS_##NAME, dec);                                                            \
    }

// Defines imc_dequant_row_NAME of a plain type (types.def dec ROW) from its block decoder dec,
// with the block size and bytes of its types.def row.
#define IMC_DEFINE_DEQUANT_ROW(NAME, dec)                                                          \
    void imc_dequant_row_##NAME(const void *src, float *dst, int64_t n)                           \
    {                                                                                              \
        decode_rows(src, dst, n, IMC_BS_##NAME, IMC_TS_##NAME, dec);                               \
    }

// Block encoder: x (bs values) with per-element weights w (>= 0, not all zero unless x is) -> blk.
typedef void (*block_encode_fn)(const float *x, const float *w, uint8_t *blk);

// The one quantization loop: per block, the weights are qw / max(qw) over the block (when qw is
// given and has a positive, finite max there; the objective does not depend on the scale of qw)
// or else the default σ² + x² (σ² = mean x² of the block); then enc.
void imc_qz_encode_rows(const float *src, void *dst, int64_t n, int64_t bs, size_t ts,
                        const float *qw, block_encode_fn enc);
// Defines imc_quant_row_NAME (types.def quant Q) from its block encoder enc, with the block size
// and bytes of its types.def row.
#define IMC_DEFINE_QUANT_ROW(NAME, enc)                                                            \
    void imc_quant_row_##NAME(const float *src, void *dst, int64_t n, const float *qw)            \
    {                                                                                              \
        imc_qz_encode_rows(src, dst, n, IMC_BS_##NAME, IMC_TS_##NAME, qw, enc);                    \
    }

// --- scale searches (types/quant_search.c); each minimizes Σ w·(x - x̂)² over candidates ---

// Uniform grid with one scale: x̂ = d·L, L integer in [lo, hi]. Candidate inverse scales
// (ref + step·k) / x_m for k in [-ntry, ntry], x_m the element of largest |x|; each candidate
// is refit by weighted least squares. Writes L, returns d (0 when x is all zero).
float imc_qz_scale(int n, const float *x, const float *w, int lo, int hi, float ref, int ntry,
               float step, int8_t *L);

// Affine grid: x̂ = d·L + mn, L in [0, hi]. nonpos_min: force mn <= 0 (K-quants store -mn
// unsigned). Writes L and *mn, returns d.
float imc_qz_affine(int n, const float *x, const float *w, int hi, bool nonpos_min, int ntry,
                float step, uint8_t *L, float *mn);

// Non-linear grid (16 sorted values g): x̂ = d·g[L]. Writes L (0..15), returns d.
float imc_qz_grid(int n, const float *x, const float *w, const int8_t *g, int ntry, uint8_t *L);

// --- K-quant super-blocks (types/quant_kfit.c) ---

// A K-quant super-block (256 elements in nsub sub-blocks) as fitted by imc_qz_sb_*: element i of
// sub-block j = i / (256 / nsub) decodes to d·sc[j]·v(L[i]) - dmin·mn[j], v(L) = L or grid[L].
// d and dmin are already rounded to fp16 and L is the nearest level for them.
struct sb_fit {
    float d, dmin; // super-block scales
    int sc[16];    // sub-block scales (integers in the type's range)
    int mn[16];    // sub-block mins (affine types only)
    int8_t L[256]; // levels: [0, qmax] affine, [lo, hi] signed, grid index with a grid
};

// Affine sub-blocks x̂ = d·sc·L - dmin·mn, L in [0, qmax], sc and mn in [0, smax].
void imc_qz_sb_affine(const float *x, const float *w, int nsub, int qmax, int smax,
                      struct sb_fit *f);
// Signed sub-blocks x̂ = d·sc·v(L), sc in [smin, smax]; L in [lo, hi] (or a grid index).
void imc_qz_sb_signed(const float *x, const float *w, int nsub, int lo, int hi,
                      const int8_t *grid, int smin, int smax, struct sb_fit *f);

// Index of the value of sorted grid g (16 entries) nearest to v.
int imc_qz_grid_nearest(const int8_t *g, float v);

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static inline int round_clamp(float v, int lo, int hi)
{
    // lrintf(fmaxf(fminf(v, 1e6f), -1e6f)) without the library calls (this runs per element of
    // every scale trial): NaN goes to 1e6 as fminf sends it; below 2^22 adding and subtracting
    // 1.5·2^23 rounds to nearest even, as lrintf does in the default rounding mode.
    const float c = v != v ? 1e6f : v < -1e6f ? -1e6f : v > 1e6f ? 1e6f : v;
    return clampi((int)((c + 0x1.8p23f) - 0x1.8p23f), lo, hi);
}

#endif // IMC_TYPES_QUANT_PRIV_H
