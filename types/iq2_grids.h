/*
 * types/iq2_grids.h: the lattice grids of llama.cpp's 2-bit i-quants (iq2_xxs, iq2_xs, iq2_s and
 * their _r4 forms) and the small helpers their decoders share. Private to types/iq2*.c.
 *
 * A grid entry holds 8 magnitudes, one per byte (byte j = element j of a group of 8, values 8,
 * 25 or 43); a group decodes to ±dl·magnitude, the sign of element j being bit j of a sign byte.
 */
#ifndef IMC_TYPES_IQ2_GRIDS_H
#define IMC_TYPES_IQ2_GRIDS_H

#include <stdint.h>

extern const uint64_t imc_iq2xxs_grid[256];
extern const uint64_t imc_iq2xs_grid[512];
extern const uint64_t imc_iq2s_grid[1024];

// iq2_xxs and iq2_xs store 7 sign bits per group of 8: the 8th is the one that makes the number
// of minus signs even.
static inline unsigned iq2_even_signs(unsigned s7)
{
    unsigned p = s7 ^ s7 >> 4;
    p ^= p >> 2;
    p ^= p >> 1;
    return s7 | (p & 1) << 7;
}

// Group of 8 elements: y[j] = dl · byte j of g, negated where bit j of signs is set (as a product
// with -1, the reference's order of operations).
static inline void iq2_put8(float *restrict y, float dl, uint64_t g, unsigned signs)
{
    for (int j = 0; j < 8; j++) {
        y[j] = dl * (float)(uint8_t)(g >> 8 * j) * ((signs >> j) & 1 ? -1.f : 1.f);
    }
}

#endif // IMC_TYPES_IQ2_GRIDS_H
