/*
 * types/r_unweave.c: the row-interleaved types re-laid as rows one after the other (types.h
 * imc_type_unweave), so that code that reads one row at a time (the CUDA kernels) can read
 * them. Block ib of a group of R rows is R·type_size bytes at ib·R·type_size.
 * Where a type's decoder computes exactly what a plain type's does from the same fields, its
 * rows become that type's plain rows (imc_type_unweaved):
 *   q4_0_r8, q8_0_r8, iq4_nl_r4, mxfp4_r8 (layouts: types/r_legacy.c): the R scales first (row
 *     k's at 2k, or k for mxfp4's e8m0 bytes), then the quants of the R rows in runs of 4 bytes
 *     (row k's run at offset 4k of each chunk); iq4_xs_r8 likewise (types/r_misc.c), and
 *     iq4_ks_r4 / iq5_ks_r4 (types/iqk_ks_r4.c), whose rows' f32 scales (their meta) lead
 *     the group;
 *   iq2_k_r4 .. iq5_k_r4 (layouts: types/iqk_k_r4.c, the plain ones: types/iqk_k.c) and
 *     q2_k_r4 .. q6_k_r4 (types/rk_kquant.c, types/quant_k.c): each row's fields (scales,
 *     mins, grid halves, signs, sub-block scales, levels) read from the group block and written
 *     into a plain super-block;
 *   iq2_xxs_r4, iq2_xs_r4, iq2_s_r4, iq3_xxs_r4, iq3_s_r4, iq2_bn_r4: types/r_unweave_grid.c;
 *   bf16_r16: here (its groups go by pairs of columns, not by blocks).
 * The others (q5_0_r4, q6_0_r4, iq1_s_r4, iq1_m_r4, q8_k_r8, q8_k_r16, q8_kv_r8) become their own
 * row forms (types/r_rowform.c), which only the device decoders read.
 */
#include <string.h>

#include "types/r_unweave_priv.h"
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

// iq4_xs_r8 -> iq4_xs {d; u16 scales_h; scales_l[4]; qs[128]} (layout: types/r_misc.c): row k's
// sub-block j has the 6-bit scale number 8j + k and its nibbles in qs[128j + 32l + 4k + i], low
// column 8l + i, high 8l + i + 4; a plain byte 16j + m holds columns m and m + 16.
static void iq4_xs_r8(const uint8_t *b, int k, uint8_t *p)
{
    memset(p, 0, 136);
    memcpy(p, b + 2 * k, 2);
    unsigned sh = 0;
    for (int j = 0; j < 8; j++) {
        const int s = 8 * j + k;
        p[4 + j / 2] |= (uint8_t)(((b[32 + s % 32] >> (4 * (s / 32))) & 15) << (4 * (j % 2)));
        sh |= (unsigned)((b[16 + s % 16] >> (2 * (s / 16))) & 3) << (2 * j);
        uint8_t q[32];
        for (int l = 0; l < 4; l++) {
            for (int i = 0; i < 4; i++) {
                const uint8_t v = b[64 + 128 * j + 32 * l + 4 * k + i];
                q[8 * l + i] = v & 15;
                q[8 * l + i + 4] = v >> 4;
            }
        }
        for (int m = 0; m < 16; m++) {
            p[8 + 16 * j + m] = (uint8_t)(q[m] | q[m + 16] << 4);
        }
    }
    p[2] = (uint8_t)(sh & 255);
    p[3] = (uint8_t)(sh >> 8);
}

// iq4_ks_r4 -> iq4_ks {scales[8]; qs[128]}, iq5_ks_r4 -> iq5_ks {scales[8]; qs[128]; qh[32]}
// (layouts: types/iqk_ks_r4.c, types/iqk_ks.c; the rows' f32 scales are their meta, moved by
// imc_type_unweave): row r's sub-block s has scales[4s + r]; byte qs[64s + 16m + 4r + i] holds
// elements o + i and o + 8 + i, o = 16(m % 2) + 4(m / 2); iq5's bit 4 of those two is bit 2m and
// 2m + 1 of qh[16s + 4r + i]. Plain: iq4 element j of sub-block s is nibble j / 16 of
// qs[16s + j % 16]; iq5 element j is nibble s % 2 of qs[32(s / 2) + j], bit 4 bit s of qh[j].
static void ks_r4(bool five, const uint8_t *b, int r, uint8_t *p)
{
    memset(p, 0, five ? 168 : 136);
    for (int s = 0; s < 8; s++) {
        p[s] = b[4 * s + r];
        uint8_t q[32];
        for (int m = 0; m < 4; m++) {
            const int o = 16 * (m % 2) + 4 * (m / 2);
            for (int i = 0; i < 4; i++) {
                const uint8_t v = b[32 + 64 * s + 16 * m + 4 * r + i];
                q[o + i] = v & 15;
                q[o + 8 + i] = v >> 4;
                if (five) {
                    const int h = b[544 + 16 * s + 4 * r + i] >> (2 * m);
                    q[o + i] |= (uint8_t)((h & 1) << 4);
                    q[o + 8 + i] |= (uint8_t)((h & 2) << 3);
                }
            }
        }
        for (int j = 0; j < 32; j++) {
            if (five) {
                p[8 + 32 * (s / 2) + j] |= (uint8_t)((q[j] & 15) << (4 * (s % 2)));
                p[136 + j] |= (uint8_t)((q[j] >> 4) << s);
            } else {
                p[8 + 16 * s + j % 16] |= (uint8_t)(q[j] << (4 * (j / 16)));
            }
        }
    }
}

static void iq4_ks_r4(const uint8_t *b, int k, uint8_t *p)
{
    ks_r4(false, b, k, p);
}

static void iq5_ks_r4(const uint8_t *b, int k, uint8_t *p)
{
    ks_r4(true, b, k, p);
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

// ---- the K-quants: q2_k_r4 .. q6_k_r4 (layouts: types/rk_kquant.c; the plain ones:
// types/quant_k.c; the same scales and formulas) -----------------------------------------------

// One row's K-quant super-block fields, as either layout holds them.
struct qkfields {
    uint8_t d[2], dmin[2];  // fp16 bytes
    uint8_t sc[16], mn[16]; // sub-block scales and mins (q2, q3, q6: 16 sub-blocks of 16; q4,
                            // q5: 8 of 32); q3's 6-bit fields with their offset, q6's int8 bytes
    uint8_t q[256];         // levels
};

// Row r of a group block of q<bits>_k_r4.
static void qk_r4_fields(int bits, const uint8_t *b, int r, struct qkfields *f)
{
    memcpy(f->d, b + 2 * r, 2);
    memcpy(f->dmin, b + 8 + 2 * r, 2); // not a dmin for q3 / q6: unused there
    if (bits <= 3) {
        for (int s = 0; s < 16; s++) {
            if (bits == 2) {
                f->sc[s] = b[16 + 4 * s + r] & 15;
                f->mn[s] = b[16 + 4 * s + r] >> 4;
            } else {
                const int t = 4 * s + r;
                f->sc[s] = (uint8_t)(((b[24 + t % 32] >> (4 * (t / 32))) & 15) |
                                     ((b[8 + t % 16] >> (2 * (t / 16))) & 3) << 4);
            }
            for (int j = 0; j < 4; j++) {
                for (int i = 0; i < 4; i++) {
                    int v = (b[(bits == 2 ? 80 : 184) + 16 * s + 4 * r + i] >> (2 * j)) & 3;
                    if (bits == 3) {
                        v |= ((b[56 + 16 * (s / 2) + 4 * r + i] >> (4 * (s % 2) + j)) & 1) << 2;
                    }
                    f->q[16 * s + 4 * j + i] = (uint8_t)v;
                }
            }
        }
        return;
    }
    for (int ib = 0; ib < 8; ib++) {
        if (bits != 6) {
            const int t = 4 * ib + r, l = b[32 + t], h = b[16 + t % 16] >> (4 * (t / 16));
            f->sc[ib] = (uint8_t)((l & 15) | (h & 3) << 4);
            f->mn[ib] = (uint8_t)((l >> 4) | ((h >> 2) & 3) << 4);
        }
        for (int c = 0; c < 4; c++) {
            if (bits == 6) {
                f->sc[2 * ib + c % 2] = b[8 + 8 * ib + 4 * (c % 2) + r];
            }
            const int e0 = 32 * ib + 16 * (c % 2) + 4 * (c / 2);
            for (int n = 0; n < 2; n++) {
                for (int i = 0; i < 4; i++) {
                    const int qo = bits == 4 ? 64 : bits == 5 ? 192 : 328;
                    int v = (b[qo + 64 * ib + 16 * c + 4 * r + i] >> (4 * n)) & 15;
                    if (bits == 5) {
                        v |= ((b[64 + 16 * ib + 4 * r + i] >> (4 * (c % 2) + 2 * (c / 2) + n)) & 1)
                             << 4;
                    } else if (bits == 6) {
                        v |= ((b[72 + 32 * ib + 16 * (c % 2) + 4 * r + i] >>
                               (2 * (2 * (c / 2) + n))) &
                              3)
                             << 4;
                    }
                    f->q[e0 + 8 * n + i] = (uint8_t)v;
                }
            }
        }
    }
}

// q4_k / q5_k's 12 bytes of 6-bit scales and mins (types/quant_k.c get_scale_min's layout).
static void put_scale_min(uint8_t *s, const uint8_t *sc, const uint8_t *mn)
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
}

// The plain q<bits>_k block of f into p (ts bytes).
static void qk_plain(int bits, const struct qkfields *f, uint8_t *p, size_t ts)
{
    memset(p, 0, ts);
    for (int e = 0; e < 256; e++) {
        const int v = f->q[e], h = e / 128, j = (e % 128) / 32, l = e % 32;
        if (bits == 2) {
            p[16 + 32 * h + l] |= (uint8_t)(v << (2 * j));
        } else if (bits == 3) {
            p[32 + 32 * h + l] |= (uint8_t)((v & 3) << (2 * j));
            p[l] |= (uint8_t)((v >> 2) << (4 * h + j));
        } else if (bits <= 5) {
            const int sb = e / 32;
            p[(bits == 4 ? 16 : 48) + 32 * (sb / 2) + l] |= (uint8_t)((v & 15) << (4 * (sb % 2)));
            if (bits == 5) {
                p[16 + l] |= (uint8_t)((v >> 4) << sb);
            }
        } else { // q6: sub-block s = 8h + 2k + half of 16 elements
            const int s = e / 16, k = (s % 8) / 2, half = s % 2, m = e % 16;
            p[64 * h + 32 * (k & 1) + 16 * half + m] |= (uint8_t)((v & 15) << (4 * (k >> 1)));
            p[128 + 32 * h + 16 * half + m] |= (uint8_t)((v >> 4) << (2 * k));
        }
    }
    if (bits == 2) {
        for (int s = 0; s < 16; s++) {
            p[s] = (uint8_t)(f->sc[s] | f->mn[s] << 4);
        }
        memcpy(p + 80, f->d, 2);
        memcpy(p + 82, f->dmin, 2);
    } else if (bits == 3) {
        for (int i = 0; i < 16; i++) {
            p[96 + i % 8] |= (uint8_t)((f->sc[i] & 15) << (4 * (i / 8)));
            p[104 + i % 4] |= (uint8_t)((f->sc[i] >> 4) << (2 * (i / 4)));
        }
        memcpy(p + 108, f->d, 2);
    } else if (bits <= 5) {
        memcpy(p, f->d, 2);
        memcpy(p + 2, f->dmin, 2);
        put_scale_min(p + 4, f->sc, f->mn);
    } else {
        memcpy(p + 192, f->sc, 16);
        memcpy(p + 208, f->d, 2);
    }
}

// Row k of group block b into plain block p through a fields struct: read, then written.
#define VIA_FIELDS(name, fields, read, write, bits, ts)                                            \
    static void name(const uint8_t *b, int k, uint8_t *p)                                          \
    {                                                                                              \
        struct fields f;                                                                           \
        read(bits, b, k, &f);                                                                      \
        write(bits, &f, p, ts);                                                                    \
    }
VIA_FIELDS(iq2_k_r4, kfields, k_r4_fields, k_plain, 2, 76)
VIA_FIELDS(iq3_k_r4, kfields, k_r4_fields, k_plain, 3, 110)
VIA_FIELDS(iq4_k_r4, kfields, k_r4_fields, k_plain, 4, 144)
VIA_FIELDS(iq5_k_r4, kfields, k_r4_fields, k_plain, 5, 176)
VIA_FIELDS(q2_k_r4, qkfields, qk_r4_fields, qk_plain, 2, 84)
VIA_FIELDS(q3_k_r4, qkfields, qk_r4_fields, qk_plain, 3, 110)
VIA_FIELDS(q4_k_r4, qkfields, qk_r4_fields, qk_plain, 4, 144)
VIA_FIELDS(q5_k_r4, qkfields, qk_r4_fields, qk_plain, 5, 176)
VIA_FIELDS(q6_k_r4, qkfields, qk_r4_fields, qk_plain, 6, 210)
#undef VIA_FIELDS

typedef void (*unweave_fn)(const uint8_t *b, int k, uint8_t *p);

// bf16_r16: column c of row k is the u16 at 64(c / 2) + 4k + 2(c % 2) of the group
// (types/r_misc.c), not inside block c; imc_type_unweave calls this once per pair of columns
// (block 2p), and it moves both.
static void bf16_r16(const uint8_t *b, int k, uint8_t *p)
{
    memcpy(p, b + 4 * k, 4);
}

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
    case IMC_TYPE_IQ4_XS_R8:
        *plain = IMC_TYPE_IQ4_XS;
        return iq4_xs_r8;
    case IMC_TYPE_IQ4_KS_R4:
        *plain = IMC_TYPE_IQ4_KS;
        return iq4_ks_r4;
    case IMC_TYPE_IQ5_KS_R4:
        *plain = IMC_TYPE_IQ5_KS;
        return iq5_ks_r4;
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
    case IMC_TYPE_Q2_K_R4:
        *plain = IMC_TYPE_Q2_K;
        return q2_k_r4;
    case IMC_TYPE_Q3_K_R4:
        *plain = IMC_TYPE_Q3_K;
        return q3_k_r4;
    case IMC_TYPE_Q4_K_R4:
        *plain = IMC_TYPE_Q4_K;
        return q4_k_r4;
    case IMC_TYPE_Q5_K_R4:
        *plain = IMC_TYPE_Q5_K;
        return q5_k_r4;
    case IMC_TYPE_Q6_K_R4:
        *plain = IMC_TYPE_Q6_K;
        return q6_k_r4;
    case IMC_TYPE_IQ2_XXS_R4:
        *plain = IMC_TYPE_IQ2_XXS;
        return imc_unweave_iq2_xxs_r4;
    case IMC_TYPE_IQ2_XS_R4:
        *plain = IMC_TYPE_IQ2_XS;
        return imc_unweave_iq2_xs_r4;
    case IMC_TYPE_IQ2_S_R4:
        *plain = IMC_TYPE_IQ2_S;
        return imc_unweave_iq2_s_r4;
    case IMC_TYPE_IQ3_XXS_R4:
        *plain = IMC_TYPE_IQ3_XXS;
        return imc_unweave_iq3_xxs_r4;
    case IMC_TYPE_IQ3_S_R4:
        *plain = IMC_TYPE_IQ3_S;
        return imc_unweave_iq3_s_r4;
    case IMC_TYPE_IQ2_BN_R4:
        *plain = IMC_TYPE_IQ2_BN;
        return imc_unweave_iq2_bn_r4;
    case IMC_TYPE_BF16_R16:
        *plain = IMC_TYPE_BF16;
        return bf16_r16;
    case IMC_TYPE_Q5_0_R4:
        *plain = t;
        return imc_rowform_q5_0_r4;
    case IMC_TYPE_Q6_0_R4:
        *plain = t;
        return imc_rowform_q6_0_r4;
    case IMC_TYPE_IQ1_S_R4:
        *plain = t;
        return imc_rowform_iq1_s_r4;
    case IMC_TYPE_IQ1_M_R4:
        *plain = t;
        return imc_rowform_iq1_m_r4;
    case IMC_TYPE_Q8_K_R8:
        *plain = t;
        return imc_rowform_q8_k_r8;
    case IMC_TYPE_Q8_K_R16:
        *plain = t;
        return imc_rowform_q8_k_r16;
    case IMC_TYPE_Q8_KV_R8:
        *plain = t;
        return imc_rowform_q8_kv_r8;
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
    const int64_t step = t == IMC_TYPE_BF16_R16 ? 2 : 1; // blocks one call of fn moves
    if (!fn || !tr || n_rows < 0 || n_rows % tr->rows != 0 || n_per_row <= 0 ||
        n_per_row % (tr->block_size * step) != 0) {
        return false;
    }
    // a group: the R rows' meta (row k's at k·meta), then its interleaved blocks; a plain row:
    // its meta, then its blocks
    const int r = tr->rows;
    const int64_t nb = n_per_row / tr->block_size;
    const size_t ts = tr->type_size, meta = tr->row_meta, rowb = meta + (size_t)nb * ts;
    for (int64_t g = 0; g < n_rows / r; g++) {
        const uint8_t *grp = (const uint8_t *)src + (size_t)g * (size_t)r * rowb;
        for (int k = 0; k < r; k++) {
            uint8_t *row = (uint8_t *)dst + ((size_t)g * (size_t)r + (size_t)k) * rowb;
            memcpy(row, grp + (size_t)k * meta, meta);
            for (int64_t ib = 0; ib < nb; ib += step) {
                fn(grp + (size_t)r * meta + (size_t)ib * (size_t)r * ts, k,
                   row + meta + (size_t)ib * ts);
            }
        }
    }
    return true;
}
