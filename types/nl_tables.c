/*
 * types/nl_tables.c: the value grids of types/nl_tables.h (the numbers of those the CUDA
 * kernels also use come from types/nl_values.h).
 */
#include "types/nl_tables.h"
#include "types/nl_values.h"

// clang-format off
const int8_t imc_iq2nl_values[8] = {IMC_IQ2NL_VALUES};

const int8_t imc_iq3nl_values[16] = {IMC_IQ3NL_VALUES};

const int8_t imc_iq4k_values[32] = {IMC_IQ4K_VALUES};

const int8_t imc_iq5nl_values[64] = {IMC_IQ5NL_VALUES};

const int8_t imc_iq6nl_values[128] = {
    -127, -121, -115, -109, -104, -98, -93, -88, -84, -79, -74, -70, -66, -62, -58, -54,
    -51,  -47,  -44,  -40,  -37,  -34, -31, -28, -25, -22, -19, -16, -13, -11, -8,  -5,
    -2,   0,    3,    6,    9,    12,  14,  17,  20,  23,  27,  30,  33,  36,  40,  44,
    47,   51,   55,   59,   63,   68,  72,  77,  82,  87,  92,  98,  103, 109, 115, 121,
    -126, -120, -114, -108, -103, -97, -92, -87, -83, -78, -73, -69, -65, -61, -57, -53,
    -50,  -46,  -43,  -39,  -36,  -33, -30, -27, -24, -21, -18, -15, -12, -10, -7,  -4,
    -1,   1,    4,    7,    10,   13,  15,  18,  21,  24,  28,  31,  34,  37,  41,  45,
    48,   52,   56,   60,   64,   69,  73,  78,  83,  88,  93,  99,  104, 110, 116, 122,
};

const uint16_t imc_iq2kl_values[32] = {IMC_IQ2KL_VALUES};

const int8_t imc_mxfp4_values[16] = {IMC_MXFP4_VALUES};
// clang-format on
