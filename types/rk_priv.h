/*
 * types/rk_priv.h: private to types/rk_*.c, the decoders of ik_llama.cpp's row-interleaved K,
 * q8 and iq2_bn types. A group of R rows stores the R rows' per-row meta (R x meta bytes) first,
 * then, per block column, one interleaved block of R x type_size bytes holding that column's
 * blocks of all R rows. decode_lane runs a type's lane decoder over the interleaved blocks of a
 * column segment. DESIGN.md §4.
 */
#ifndef IMC_TYPES_RK_PRIV_H
#define IMC_TYPES_RK_PRIV_H

#include "types/quant_priv.h"

// Decodes the bs values of row `lane` held in the interleaved block at blk into y.
typedef void (*lane_decode_fn)(const uint8_t *blk, int lane, float *y);

// Decodes columns [k0, k0 + kn) (multiples of bs) of row `lane` from the interleaved blocks that
// start at blocks, gts bytes each (rows x type_size), with dec. Inlined so that dec is too.
static inline __attribute__((always_inline)) void decode_lane(const uint8_t *blocks, int lane,
                                                              int64_t bs, size_t gts, int64_t k0,
                                                              int64_t kn, float *dst,
                                                              lane_decode_fn dec)
{
    const uint8_t *b = blocks + (uint64_t)(k0 / bs) * gts;
    for (int64_t i = 0; i < kn; i += bs, b += gts) {
        dec(b, lane, dst + i);
    }
}

// A little-endian fp32 (the per-row scales of the meta bytes), at any alignment.
static inline float load_f32(const uint8_t *p)
{
    return bits_to_f32((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                       (uint32_t)p[3] << 24);
}

#endif // IMC_TYPES_RK_PRIV_H
