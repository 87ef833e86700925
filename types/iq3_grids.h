/*
 * types/iq3_grids: the value grids of iq3_xxs / iq3_s and their _r4 variants (data in
 * types/iq3_grids.c), and the step the four decoders share: one grid entry, times a scale, with
 * signs from a bit mask. Entry byte j (low byte first) is the magnitude of element j.
 */
#ifndef IMC_TYPES_IQ3_GRIDS_H
#define IMC_TYPES_IQ3_GRIDS_H

#include <stdint.h>

extern const uint32_t imc_iq3xxs_grid[256];
extern const uint32_t imc_iq3s_grid[512];

// y[j] = ±(d·byte j of g) for j < 4, negative where bit j of neg is set. The sign is applied
// after the product, as the reference multiplies by ±1 (the same bits, NaN payloads aside).
static inline void iq3_grid_put4(uint32_t g, float d, unsigned neg, float *y)
{
    for (int j = 0; j < 4; j++) {
        const float v = d * (float)((g >> 8 * j) & 255);
        y[j] = (neg >> j) & 1 ? -v : v;
    }
}

#endif // IMC_TYPES_IQ3_GRIDS_H
