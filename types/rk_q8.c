/*
 * types/rk_q8.c: ik_llama.cpp's interleaved 8-bit types q8_k_r8, q8_k_r16 (fp16 scale per row
 * and 256-column block) and q8_kv_r8 (one fp32 scale per row, in the group's meta), read only.
 * All three store the rows' int8 quants in runs of 4 consecutive columns per row, the rows of the
 * group one after the other. Layouts at the decoders (r: the row inside the group). DESIGN.md §4.
 */
#include "types/quant_priv.h"

/*
 * q8_k_r8, 2064 bytes per 256 columns of 8 rows: fp16 d[8] @0, i8 qs[2048] @16. Element 4u + i
 * (u < 64, i < 4) of row r is qs[32u + 4r + i]; x = d·q.
 */
static void dec_q8_k_r8(const uint8_t *restrict b, int r, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * r);
    const uint8_t *q = b + 16 + 4 * r;
    for (int u = 0; u < 64; u++) {
        for (int i = 0; i < 4; i++) {
            y[4 * u + i] = d * (float)(int8_t)q[32 * u + i];
        }
    }
}

/*
 * q8_k_r16, 4128 bytes per 256 columns of 16 rows: fp16 d[16] @0, u8 qs[4096] @32. Element 4u +
 * i of row r is qs[64u + 4r + i], read as unsigned: x = d·q + (-128·d). (ik_llama.cpp's repacking
 * stores q + 128 only where it has AVX512; its dequantizer, whose values these are, always
 * subtracts the 128.)
 */
static void dec_q8_k_r16(const uint8_t *restrict b, int r, float row_d, float *restrict y)
{
    const float d = load_fp16(b + 2 * r), m = -128.0f * d;
    const uint8_t *q = b + 32 + 4 * r;
    for (int u = 0; u < 64; u++) {
        for (int i = 0; i < 4; i++) {
            y[4 * u + i] = d * (float)q[64 * u + i] + m;
        }
    }
}

/*
 * q8_kv_r8, a group of 8 rows: fp32 d[8] @0 (the rows' meta), then per 16 columns 128 bytes of
 * i8: column 16u + 4l + i (l, i < 4) of row r is byte 32 + 128u + 32l + 4r + i. x = d·q.
 */
static void dec_q8_kv_r8(const uint8_t *restrict b, int r, float d, float *restrict y)
{
    const uint8_t *q = b + 4 * r;
    for (int u = 0; u < 2; u++, q += 128) {
        for (int l = 0; l < 4; l++) {
            for (int i = 0; i < 4; i++) {
                y[16 * u + 4 * l + i] = d * (float)(int8_t)q[32 * l + i];
            }
        }
    }
}

IMC_DEFINE_DECODE(Q8_K_R8, dec_q8_k_r8)
IMC_DEFINE_DECODE(Q8_K_R16, dec_q8_k_r16)
IMC_DEFINE_DECODE(Q8_KV_R8, dec_q8_kv_r8)
