/*
 * types/r_unweave.c: the row-interleaved types that are plain rows re-laid (types.h
 * imc_type_unweave), so that code with decoders for the plain types only (the CUDA kernels) can
 * read them: q4_0_r8, q8_0_r8, iq4_nl_r4 and mxfp4_r8, whose decoders (types/r_legacy.c) compute
 * exactly what the plain ones do from the same scale and quants. The layouts are those of
 * r_legacy.c: block ib of a group of R rows is R·type_size bytes at ib·R·type_size, the R scales
 * first (row k's at 2k, or k for mxfp4's e8m0 bytes), then the quants of the R rows in runs of 4
 * bytes (row k's run at offset 4k of each chunk). Not here: q5_0_r4 and q6_0_r4, whose decoders
 * compute d·q − 16d (32d) where the plain ones compute d·(q − 16) (q − 32): a re-layout would
 * round differently; and the K / IQ-K interleaved types.
 */
#include <string.h>

#include "types/types.h"

// q4_0_r8 -> q4_0 {d; qs[16]}: byte i of row k's run in chunk c (0..3) holds columns 4c + i and
// 4c + i + 16, as byte 4c + i of a plain block does.
static void q4_0_r8(const uint8_t *b, int k, uint8_t *p)
{
    memcpy(p, b + 2 * k, 2);
    for (int c = 0; c < 4; c++) {
        memcpy(p + 2 + 4 * c, b + 16 + 32 * c + 4 * k, 4);
    }
}

// q8_0_r8 -> q8_0 {d; qs[32]}: columns 4c + i in the first 128 bytes, 4c + i + 16 in the second.
static void q8_0_r8(const uint8_t *b, int k, uint8_t *p)
{
    memcpy(p, b + 2 * k, 2);
    for (int c = 0; c < 4; c++) {
        memcpy(p + 2 + 4 * c, b + 16 + 32 * c + 4 * k, 4);
        memcpy(p + 18 + 4 * c, b + 144 + 32 * c + 4 * k, 4);
    }
}

// iq4_nl_r4 -> iq4_nl {d; qs[16]}: byte i of row k's run in chunk c holds the nibbles of
// columns 16(c % 2) + 4(c / 2) + i and that + 8; a plain byte j holds columns j and j + 16.
static void iq4_nl_r4(const uint8_t *b, int k, uint8_t *p)
{
    uint8_t q[32];
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 4; i++) {
            const uint8_t v = b[8 + 16 * c + 4 * k + i];
            const int col = 16 * (c & 1) + 4 * (c >> 1) + i;
            q[col] = v & 15;
            q[col + 8] = v >> 4;
        }
    }
    memcpy(p, b + 2 * k, 2);
    for (int j = 0; j < 16; j++) {
        p[2 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
    }
}

// mxfp4_r8 -> mxfp4 {e; qs[16]}: one e8m0 byte per row, nibbles placed as in q4_0_r8.
static void mxfp4_r8(const uint8_t *b, int k, uint8_t *p)
{
    p[0] = b[k];
    for (int c = 0; c < 4; c++) {
        memcpy(p + 1 + 4 * c, b + 8 + 32 * c + 4 * k, 4);
    }
}

typedef void (*unweave_fn)(const uint8_t *b, int k, uint8_t *p);

static unweave_fn unweave_of(enum imc_type t, enum imc_type *plain)
{
    switch (t) {
    case IMC_TYPE_Q4_0_R8:
        *plain = IMC_TYPE_Q4_0;
        return q4_0_r8;
    case IMC_TYPE_Q8_0_R8:
        *plain = IMC_TYPE_Q8_0;
        return q8_0_r8;
    case IMC_TYPE_IQ4_NL_R4:
        *plain = IMC_TYPE_IQ4_NL;
        return iq4_nl_r4;
    case IMC_TYPE_MXFP4_R8:
        *plain = IMC_TYPE_MXFP4;
        return mxfp4_r8;
    default:
        *plain = t;
        return NULL;
    }
}

enum imc_type imc_type_unweaved(enum imc_type t)
{
    enum imc_type plain;
    (void)unweave_of(t, &plain);
    return plain;
}

bool imc_type_unweave(enum imc_type t, const void *src, int64_t n_rows, int64_t n_per_row,
                      void *dst)
{
    enum imc_type plain;
    const unweave_fn fn = unweave_of(t, &plain);
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)t);
    if (!fn || !tr || n_rows < 0 || n_rows % tr->rows != 0 || n_per_row <= 0 ||
        n_per_row % tr->block_size != 0) {
        return false;
    }
    const int r = tr->rows;
    const int64_t nb = n_per_row / tr->block_size;
    const size_t ts = tr->type_size, group = (size_t)r * (size_t)nb * ts;
    for (int64_t g = 0; g < n_rows / r; g++) {
        const uint8_t *grp = (const uint8_t *)src + (size_t)g * group;
        for (int k = 0; k < r; k++) {
            uint8_t *row = (uint8_t *)dst + ((size_t)g * (size_t)r + (size_t)k) * (size_t)nb * ts;
            for (int64_t ib = 0; ib < nb; ib++) {
                fn(grp + (size_t)ib * (size_t)r * ts, k, row + (size_t)ib * ts);
            }
        }
    }
    return true;
}
