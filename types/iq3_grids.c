/*
 * types/iq3_grids: the value grids of iq3_xxs (256 entries) and iq3_s (512 entries), numbers
 * taken as data from ik_llama.cpp's ggml/src/ggml-common.h (iq3xxs_grid, iq3s_grid; the same
 * as llama.cpp's). Entry i packs the magnitudes of 4 consecutive elements, byte j (low byte
 * first) for element j: iq3_xxs uses {4, 12, 20, 28, 36, 44, 52, 62}, iq3_s the odd 1..15.
 * Signs and scales come from the block (types/iq3.c, types/iq3_r4.c). The numbers sit in
 * types/iq3*_grid.inc, which the device copy (kernels/cuda/qgrids.cuh) includes too.
 */
#include "types/iq3_grids.h"

const uint32_t imc_iq3xxs_grid[256] = {
#include "types/iq3xxs_grid.inc"
};

const uint32_t imc_iq3s_grid[512] = {
#include "types/iq3s_grid.inc"
};
