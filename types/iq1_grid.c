/*
 * types/iq1_grid: the ternary grid of iq1_s and iq1_m (2048 entries of 8 elements in
 * {-1, 0, 1}), numbers taken as data from ik_llama.cpp's ggml/src/ggml-common.h in its packed
 * form iq1s_grid_gpu: element j of entry i is nibble (j % 4)·2 + j / 4 of the 32-bit word, i.e.
 * the low nibble of byte j for j < 4 and the high nibble of byte j - 4 for j >= 4, holding the
 * value + 1. The reference's CPU decoders read the same grid unpacked (iq1s_grid, one int8 per
 * element); the two forms were checked equal entry by entry when this file was written. The
 * numbers sit in types/iq1s_grid.inc, which the device copy (kernels/cuda/qgrids.cuh) includes.
 */
#include "types/iq1_grid.h"

const uint32_t imc_iq1s_grid[2048] = {
#include "types/iq1s_grid.inc"
};
