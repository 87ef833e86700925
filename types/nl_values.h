/*
 * types/nl_values: the numbers of the non-linear value grids that both the CPU tables
 * (types/nl_tables.c) and their device copies (kernels/cuda/qgrids_k.cuh) are initialized
 * from, as initializer lists: `const int8_t t[8] = {IMC_IQ2NL_VALUES};`. Data from the
 * reference's ggml-common.h (numbers, not code); see types/nl_tables.h for each grid's halves.
 */
#ifndef IMC_TYPES_NL_VALUES_H
#define IMC_TYPES_NL_VALUES_H

// clang-format off
#define IMC_IQ2NL_VALUES -31, -13, 1, 17, -26, -8, 6, 22

#define IMC_IQ3NL_VALUES                                                                           \
    -63, -40, -23, -10, 1, 13, 28, 47,                                                             \
    -59, -36, -19, -6,  5, 17, 32, 51

#define IMC_IQ4K_VALUES                                                                            \
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,                      \
    -123, -100, -79, -61, -45, -31, -18, -6,  5, 17, 29, 42, 57, 73, 93, 117

#define IMC_IQ5NL_VALUES                                                                           \
    -126, -114, -103, -92, -83, -74, -65, -57, -50, -43, -36, -30, -24, -18, -12, -6,              \
    -1,   5,    11,   17,  23,  29,  36,  43,  51,  59,  68,  77,  87,  97,  109, 121,             \
    -124, -112, -101, -90, -81, -72, -63, -55, -48, -41, -34, -28, -22, -16, -10, -4,              \
    1,    7,    13,   19,  25,  31,  38,  45,  53,  61,  70,  79,  89,  99,  111, 123

#define IMC_IQ2KL_VALUES                                                                           \
    0xe9c1, 0x0dc1, 0xc1d8, 0xf6d8, 0x0dd8, 0x2fd8, 0xd8e9, 0xe9e9,                                \
    0x01e9, 0x0de9, 0x1ce9, 0xc1f6, 0x01f6, 0x0df6, 0x2ff6, 0xe901,                                \
    0xf601, 0x0101, 0x0d01, 0x1c01, 0xd80d, 0xe90d, 0xf60d, 0x010d,                                \
    0x0d0d, 0xc11c, 0xe91c, 0x011c, 0x1c1c, 0x2f1c, 0xe92f, 0x0d2f

#define IMC_MXFP4_VALUES 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12
// clang-format on

#endif // IMC_TYPES_NL_VALUES_H
