/*
 * types/r_unweave.c: the row-interleaved types that are plain rows re-laid (types.h
 * imc_type_unweave), so that code with decoders for the plain types only (the CUDA kernels) can
 * read them: the types whose decoders compute exactly what the plain ones do from the same
 * fields. Block ib of a group of R rows is R·type_size bytes at ib·R·type_size.
 *   q4_0_r8, q8_0_r8, iq4_nl_r4, mxfp4_r8 (layouts: types/r_legacy.c): the R scales first (row
 *     k's at 2k, or k for mxfp4's e8m0 bytes), then the quants of the R rows in runs of 4 bytes
 *     (row k's run at offset 4k of each chunk);
 *   iq2_k_r4, iq3_k_r4, iq4_k_r4, iq5_k_r4 (layouts: types/iqk_k_r4.c, the plain ones:
 *     types/iqk_k.c): each row's fields (scale, grid halves, signs, slice scales, levels) read
 *     from the group block and written into a plain super-block.
 * Not here: q5_0_r4 and q6_0_r4, whose decoders compute d·q − 16d (32d) where the plain ones
 * compute d·(q − 16) (q − 32), so a re-layout would round differently; the K-quant, IQ-KS, BN
 * and q8 interleaved types (not done).
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

// ---- the IQ-K types: iq2_k_r4, iq3_k_r4, iq4_k_r4, iq5_k_r4 (layouts: types/iqk_k_r4.c and
// types/iqk_k.c; the decoders of both compute d·s_h, then that times the grid value) ----------

// One row's super-block fields, as either layout holds them.
struct kfields {
    uint8_t d[2];   // the fp16 scale's bytes
    unsigned extra; // bit h: slice h's grid half
    unsigned sign;  // iq3: bit h: slice h's scale negated
    uint8_t sc[16]; // slice h's scale field (iq2, iq3: 4 bits; iq4, iq5: 6 bits)
    uint8_t q[256]; // the levels (iq2: 2 bits, iq3: 3, iq4: 4, iq5: 5)
};

// Nibble i / 32 of byte i % 32; bits 2·(i / 16) of byte i % 16 (the _r4 scale fields).
static inline int nib64(const uint8_t *a, int i)
{
    return (a[i % 32] >> (4 * (i / 32))) & 15;
}

static inline int crumb64(const uint8_t *a, int i)
{
    return (a[i % 16] >> (2 * (i / 16))) & 3;
}

// Row r of a group block of iq<bits>_k_r4 (bits 2..5).
static void k_r4_fields(int bits, const uint8_t *b, int r, struct kfields *f)
{
    memcpy(f->d, b + 2 * r, 2);
    f->extra = f->sign = 0;
    for (int s = 0; s < 8; s++) {
        for (int p = 0; p < 2; p++) {
            const int h = 2 * s + p, i = 8 * s + r + 4 * p;
            f->extra |= (unsigned)((b[8 + r + 4 * p] >> s) & 1) << h;
            if (bits == 2) {
                f->sc[h] = (uint8_t)nib64(b + 16, i);
            } else if (bits == 3) {
                f->sc[h] = (uint8_t)nib64(b + 24, i);
                f->sign |= (unsigned)((b[16 + i % 8] >> (i / 8)) & 1) << h;
            } else {
                f->sc[h] = (uint8_t)(nib64(b + 32, i) | crumb64(b + 16, i) << 4);
            }
        }
        uint8_t *q = f->q + 32 * s;
        if (bits <=
            3) { // 2 bits: byte l of row r's run of half p, bit pair f: element 16p + 4f + l
            const uint8_t *qs = b + (bits == 2 ? 48 : 56);
            for (int p = 0; p < 2; p++) {
                for (int g = 0; g < 4; g++) {
                    for (int l = 0; l < 4; l++) {
                        q[16 * p + 4 * g + l] = (qs[32 * s + 16 * p + 4 * r + l] >> (2 * g)) & 3;
                    }
                }
            }
            for (int g = 0; bits == 3 && g < 8; g++) { // bit 2: bit g of qh[16s + 4r + l]
                for (int l = 0; l < 4; l++) {
                    q[4 * g + l] |= (uint8_t)(((b[312 + 16 * s + 4 * r + l] >> g) & 1) << 2);
                }
            }
            continue;
        }
        for (int c = 0; c < 4; c++) { // nibbles of chunk c: elements o + l and o + 8 + l
            const int o = 16 * (c % 2) + 4 * (c / 2);
            for (int l = 0; l < 4; l++) {
                const uint8_t v = b[64 + 64 * s + 16 * c + 4 * r + l];
                q[o + l] = v & 15;
                q[o + 8 + l] = v >> 4;
                if (bits == 5) {
                    const int hb = b[576 + 16 * s + 4 * r + l] >> (2 * c);
                    q[o + l] |= (uint8_t)((hb & 1) << 4);
                    q[o + 8 + l] |= (uint8_t)((hb & 2) << 3);
                }
            }
        }
    }
}

// The plain iq<bits>_k block of f into p (ts bytes).
static void k_plain(int bits, const struct kfields *f, uint8_t *p, size_t ts)
{
    memset(p, 0, ts);
    memcpy(p, f->d, 2);
    p[2] = (uint8_t)(f->extra & 255);
    p[3] = (uint8_t)(f->extra >> 8);
    for (int h = 0; h < 16; h++) {
        const int sb = h / 2, hp = h % 2;
        if (bits == 2) {
            p[4 + sb] |= (uint8_t)(f->sc[h] << (4 * hp));
        } else if (bits == 3) {
            p[6 + sb] |= (uint8_t)(f->sc[h] << (4 * hp));
        } else {
            p[8 + sb] |= (uint8_t)((f->sc[h] & 15) << (4 * hp));
            p[4 + h / 4] |= (uint8_t)((f->sc[h] >> 4) << (2 * (h % 4)));
        }
        for (int j = 0; j < 16; j++) {
            const uint8_t q = f->q[16 * h + j];
            if (bits <= 3) {
                p[(bits == 2 ? 12 : 14) + 32 * (sb / 4) + 16 * hp + j] |=
                    (uint8_t)((q & 3) << (2 * (sb % 4)));
                if (bits == 3) {
                    p[78 + 16 * hp + j] |= (uint8_t)(((q >> 2) & 1) << sb);
                }
            } else if (bits == 4) {
                p[16 + 16 * sb + j] |= (uint8_t)((q & 15) << (4 * hp));
            } else {
                const int t = h / 4, u = h % 4;
                p[16 + 32 * t + 16 * (u % 2) + j] |= (uint8_t)((q & 15) << (4 * (u / 2)));
                p[144 + 16 * (u % 2) + j] |= (uint8_t)(((q >> 4) & 1) << (2 * t + u / 2));
            }
        }
    }
    if (bits == 3) {
        p[4] = (uint8_t)(f->sign & 255);
        p[5] = (uint8_t)(f->sign >> 8);
    }
}

#define IQK_R4(bits, ts)                                                                           \
    static void iq##bits##_k_r4(const uint8_t *b, int k, uint8_t *p)                               \
    {                                                                                              \
        struct kfields f;                                                                          \
        k_r4_fields(bits, b, k, &f);                                                               \
        k_plain(bits, &f, p, ts);                                                                  \
    }
IQK_R4(2, 76)
IQK_R4(3, 110)
IQK_R4(4, 144)
IQK_R4(5, 176)
#undef IQK_R4

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
    case IMC_TYPE_IQ2_K_R4:
        *plain = IMC_TYPE_IQ2_K;
        return iq2_k_r4;
    case IMC_TYPE_IQ3_K_R4:
        *plain = IMC_TYPE_IQ3_K;
        return iq3_k_r4;
    case IMC_TYPE_IQ4_K_R4:
        *plain = IMC_TYPE_IQ4_K;
        return iq4_k_r4;
    case IMC_TYPE_IQ5_K_R4:
        *plain = IMC_TYPE_IQ5_K;
        return iq5_k_r4;
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
