/*
 * types/iq1_grid: the ternary grid of iq1_s / iq1_m and their _r4 variants (data and packing in
 * types/iq1_grid.c), and the step their four decoders share: one grid entry of 8 elements,
 * shifted by ±delta and scaled.
 */
#ifndef IMC_TYPES_IQ1_GRID_H
#define IMC_TYPES_IQ1_GRID_H

#include <stdint.h>

#define IMC_IQ1_DELTA 0.125f // the shift of every iq1 group of 8, sign from the block

extern const uint32_t imc_iq1s_grid[2048];

// y[j] = dl·(v_j + delta) for the 8 elements v_j in {-1, 0, 1} of grid entry idx (< 2048):
// element j is nibble 2·(j % 4) + j / 4 of the entry, minus 1.
static inline void iq1_grid_put8(unsigned idx, float dl, float delta, float *y)
{
    const uint32_t g = imc_iq1s_grid[idx];
    for (int j = 0; j < 8; j++) {
        const int v = (int)((g >> (8 * (j % 4) + 4 * (j / 4))) & 15) - 1;
        y[j] = dl * ((float)v + delta);
    }
}

#endif // IMC_TYPES_IQ1_GRID_H
