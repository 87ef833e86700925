/*
 * types/nl_tables: the non-linear value grids of ik_llama.cpp's K types (iq2_k ... iq6_k, the
 * _ks / _kss / _kl variants) and the e2m1 values of mxfp4, shared by their decoders. Data from
 * the reference's ggml-common.h (numbers, not code); each grid's second half is its first
 * shifted by a constant, which kernels.types checks.
 */
#ifndef IMC_TYPES_NL_TABLES_H
#define IMC_TYPES_NL_TABLES_H

#include <stdint.h>

extern const int8_t imc_iq2nl_values[8];    // 2 x 4: second half = first + 5
extern const int8_t imc_iq3nl_values[16];   // 2 x 8: + 4
extern const int8_t imc_iq4k_values[32];    // 2 x 16 (the first: iq4_nl's grid): + 4
extern const int8_t imc_iq5nl_values[64];   // 2 x 32: + 2
extern const int8_t imc_iq6nl_values[128];  // 2 x 64: + 1
extern const uint16_t imc_iq2kl_values[32]; // iq2_kl: pairs of int8 (low byte first)
extern const int8_t imc_mxfp4_values[16];   // e2m1 values, doubled (x 2), sign in bit 3

#endif // IMC_TYPES_NL_TABLES_H
