/*
 * types/r_rowform.c: the row forms of the interleaved types without a plain form (types/
 * r_unweave.c dispatches; types.h imc_type_unweave). Their rows hold fewer bytes than the plain
 * type's (q8_k_r8: fp16 d and 256 quants against q8_k's 292 bytes; q8_kv_r8's 4 bytes of meta
 * against q8_kv's 8; iq1_s_r4 / iq1_m_r4's one scale per row against iq1_s / iq1_m's one per
 * 256 columns, whose iq1_m also packs its scales otherwise), or their decoder computes what no
 * plain type's does: q8_k_r16's unsigned quants, d·q − 128d; q5_0_r4 / q6_0_r4's d·q − 16d
 * (32d), which equals q5_0 / q6_0's d·(q − 16) (q − 32) for every finite d except in the sign of
 * a zero (16d − 16d is +0, d·0 is −0 for a negative d). A row form keeps the type's own fields
 * and arithmetic and only gathers each row's share of its group's blocks into a block of its own
 * (types.def ts bytes, after the row's meta), so that decoders that read one row at a time (the
 * device's: kernels/cuda/qrowform.cuh, which these layouts are the contract of) can read it:
 *   q5_0_r4   {fp16 d; u32 qh; u8 qs[16]}     q5_0's layout: element j's low 4 bits in nibble
 *             j / 16 of qs[j % 16], its 5th bit bit j of qh; x = d·q + (−16·d)
 *   q6_0_r4   {fp16 d; u8 qh[8]; u8 qs[16]}   q6_0's layout: low 4 bits as q5_0; bits 4-5 of
 *             element j < 16 bits 0-1 of nibble j / 8 of qh[j % 8], of element j + 16 bits
 *             2-3 of it; x = d·q + (−32·d)
 *   iq1_s_r4  meta fp16 d; {u8 qs[4]; u16 qh} group i (8 elements): grid index qs[i] | bits
 *             3i..3i+2 of qh << 8; scale bits 12-14, shift sign bit 15 (x as iq1_s_r4's)
 *   iq1_m_r4  meta fp16 d; {u8 qs[4]; u8 qh[2]; u8 sc} group l = 2i + g (half i):
 *             grid index qs[l] | bits 4g..4g+2 of qh[i] << 8, shift sign bit 4g + 3; scale
 *             nibble i of sc, x = (d·s)·(v + shift)
 *   q8_k_r8   {fp16 d; i8 qs[256]}            x = d·q
 *   q8_k_r16  {fp16 d; u8 qs[256]}            x = d·q + (−128·d)
 *   q8_kv_r8  meta f32 d; {i8 qs[32]}         x = d·q
 * The group layouts are at the interleaved decoders (types/r_legacy.c, iq1_r4.c, rk_q8.c).
 */
#include <string.h>

#include "types/r_unweave_priv.h"

// q5_0_r4 {d[4]; qh[16]; qs[64]}: byte i of row k's run in chunk c, qs[16c + 4k + i], holds
// columns o = 16(c % 2) + 4(c / 2) + i (low nibble) and o + 8; their 5th bits are bits c and
// c + 4 of qh[4k + i].
void imc_rowform_q5_0_r4(const uint8_t *b, int k, uint8_t *p)
{
    uint8_t q[32];
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 4; i++) {
            const int o = 16 * (c & 1) + 4 * (c >> 1) + i;
            const uint8_t v = b[24 + 16 * c + 4 * k + i], h = b[8 + 4 * k + i];
            q[o] = (uint8_t)((v & 15) | ((h >> c) & 1) << 4);
            q[o + 8] = (uint8_t)((v >> 4) | ((h >> (c + 4)) & 1) << 4);
        }
    }
    memcpy(p, b + 2 * k, 2);
    uint32_t qh = 0;
    for (int j = 0; j < 32; j++) {
        qh |= (uint32_t)(q[j] >> 4) << j;
    }
    for (int i = 0; i < 4; i++) {
        p[2 + i] = (uint8_t)(qh >> 8 * i);
    }
    for (int j = 0; j < 16; j++) {
        p[6 + j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
    }
}

// q6_0_r4 {d[4]; qh[32]; qs[64]}: low nibbles as q5_0_r4 (qs at 40); the top two bits of the two
// columns of qs[16c + 4k + i] are bits 2(c / 2) and 2(c / 2) + 4 of qh[16(c % 2) + 4k + i].
void imc_rowform_q6_0_r4(const uint8_t *b, int k, uint8_t *p)
{
    uint8_t q[32];
    for (int c = 0; c < 4; c++) {
        const int sh = 2 * (c >> 1);
        for (int i = 0; i < 4; i++) {
            const int o = 16 * (c & 1) + 4 * (c >> 1) + i;
            const uint8_t v = b[40 + 16 * c + 4 * k + i], h = b[8 + 16 * (c & 1) + 4 * k + i];
            q[o] = (uint8_t)((v & 15) | ((h >> sh) & 3) << 4);
            q[o + 8] = (uint8_t)((v >> 4) | ((h >> (sh + 4)) & 3) << 4);
        }
    }
    memset(p, 0, 26);
    memcpy(p, b + 2 * k, 2);
    for (int j = 0; j < 16; j++) {
        p[10 + j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        p[2 + j % 8] |= (uint8_t)(((q[j] >> 4) | (q[j + 16] >> 4) << 2) << 4 * (j / 8));
    }
}

// iq1_s_r4 {qs[16]; u16 qh[4]}: row k's group i is qs[4i + k], its qh qh[k].
void imc_rowform_iq1_s_r4(const uint8_t *b, int k, uint8_t *p)
{
    for (int i = 0; i < 4; i++) {
        p[i] = b[4 * i + k];
    }
    memcpy(p + 4, b + 16 + 2 * k, 2);
}

// iq1_m_r4 {qs[16]; qh[8]; scales[4]}: row k's half i has the groups qs[8i + k] and
// qs[8i + k + 4], the high bits qh[4i + k] and its scale in nibble i of scales[k].
void imc_rowform_iq1_m_r4(const uint8_t *b, int k, uint8_t *p)
{
    for (int i = 0; i < 2; i++) {
        p[2 * i] = b[8 * i + k];
        p[2 * i + 1] = b[8 * i + k + 4];
        p[4 + i] = b[16 + 4 * i + k];
    }
    p[6] = b[24 + k];
}

// q8_k_r8 {d[8]; qs[2048]}, q8_k_r16 {d[16]; qs[4096]}: element 4u + i of row k is qs[4Ru + 4k
// + i] (R the group's rows).
static void q8_k_rows(int r, const uint8_t *b, int k, uint8_t *p)
{
    memcpy(p, b + 2 * k, 2);
    for (int u = 0; u < 64; u++) {
        memcpy(p + 2 + 4 * u, b + 2 * r + 4 * r * u + 4 * k, 4);
    }
}

void imc_rowform_q8_k_r8(const uint8_t *b, int k, uint8_t *p)
{
    q8_k_rows(8, b, k, p);
}

void imc_rowform_q8_k_r16(const uint8_t *b, int k, uint8_t *p)
{
    q8_k_rows(16, b, k, p);
}

// q8_kv_r8 (256 bytes per 32 columns of 8 rows, after the rows' f32 meta): column 16u + 4l + i
// of row k is byte 128u + 32l + 4k + i.
void imc_rowform_q8_kv_r8(const uint8_t *b, int k, uint8_t *p)
{
    for (int u = 0; u < 2; u++) {
        for (int l = 0; l < 4; l++) {
            memcpy(p + 16 * u + 4 * l, b + 128 * u + 32 * l + 4 * k, 4);
        }
    }
}
