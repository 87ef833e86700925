/*
 * types/iq2_grids.c: the grids of iq2_xxs (256 entries), iq2_xs (512) and iq2_s (1024), one
 * uint64 per entry, 8 magnitudes from byte 0 up (types/iq2_grids.h). The numbers are those of
 * the tables iq2xxs_grid, iq2xs_grid and iq2s_grid in ggml's ggml-common.h (ik_llama.cpp
 * 8337e4cd3), carried over as data; the numbers sit in types/iq2*_grid.inc, which the device
 * copy (kernels/cuda/qgrids.cuh) includes too.
 */
#include "types/iq2_grids.h"

const uint64_t imc_iq2xxs_grid[256] = {
#include "types/iq2xxs_grid.inc"
};

const uint64_t imc_iq2xs_grid[512] = {
#include "types/iq2xs_grid.inc"
};

const uint64_t imc_iq2s_grid[1024] = {
#include "types/iq2s_grid.inc"
};
