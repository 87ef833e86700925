/*
 * tests/kernels/test_quant_decode.c: dequantization of every block type against (a) literal
 * values worked out by hand from the format description and (b) a straightforward reference
 * decoder written here from ggml's format description (sequential walks over the block, not the
 * library's loop structure), on random block bytes with chosen fp16 scales.
 */
#include "types/types.h"
#include "tests/check.h"

#include <string.h>

static const int8_t grid[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                1,    13,   25,  38,  53,  69,  89,  113};

static float h2f(const uint8_t *p)
{
    return imc_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8));
}

static void put16(uint8_t *p, uint16_t h)
{
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// ---------------- reference decoders (one block) ----------------

// Element i of a 32-element block of nibbles: low nibbles first, then high nibbles.
static int nib32(const uint8_t *qs, int i)
{
    return i < 16 ? qs[i] & 15 : qs[i - 16] >> 4;
}

static int bit_of(const uint8_t *bytes, int i)
{
    return (bytes[i / 8] >> (i % 8)) & 1;
}

static void ref_legacy(uint32_t type, const uint8_t *b, float *y)
{
    float d = h2f(b);
    for (int i = 0; i < 32; i++) {
        switch (type) {
        case 2: y[i] = d * (float)(nib32(b + 2, i) - 8); break;
        case 3: y[i] = d * (float)nib32(b + 4, i) + h2f(b + 2); break;
        case 6: y[i] = d * (float)((nib32(b + 6, i) + 16 * bit_of(b + 2, i)) - 16); break;
        case 7: y[i] = d * (float)(nib32(b + 8, i) + 16 * bit_of(b + 4, i)) + h2f(b + 2); break;
        case 8: y[i] = d * (float)(int8_t)b[2 + i]; break;
        case 20: y[i] = d * (float)grid[nib32(b + 2, i)]; break;
        }
    }
}

// q2_k: per 128 elements, 4 shifts × 2 groups of 16 bytes of 2-bit quants; one scale byte
// (low nibble scale, high nibble min) per 16 outputs, in output order.
static void ref_q2_k(const uint8_t *b, float *y)
{
    const uint8_t *sc = b, *q = b + 16;
    float d = h2f(b + 80), dmin = h2f(b + 82);
    int is = 0, k = 0;
    for (int n = 0; n < 2; n++, q += 32) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int g = 0; g < 2; g++, is++) {
                for (int l = 0; l < 16; l++) {
                    int v = (q[16 * g + l] >> shift) & 3;
                    y[k++] = d * (float)(sc[is] & 15) * (float)v - dmin * (float)(sc[is] >> 4);
                }
            }
        }
    }
}

// q3_k: the 12 scale bytes as three little-endian words a0, a1, tmp rearranged (kmask style)
// into 16 bytes of 6-bit scales; a running hmask bit m advances once per 32 outputs.
static void ref_q3_k(const uint8_t *b, float *y)
{
    uint32_t a[4];
    memcpy(a, b + 96, 12);
    uint32_t tmp = a[2];
    a[2] = ((a[0] >> 4) & 0x0f0f0f0f) | (((tmp >> 4) & 0x03030303) << 4);
    a[3] = ((a[1] >> 4) & 0x0f0f0f0f) | (((tmp >> 6) & 0x03030303) << 4);
    a[0] = (a[0] & 0x0f0f0f0f) | ((tmp & 0x03030303) << 4);
    a[1] = (a[1] & 0x0f0f0f0f) | (((tmp >> 2) & 0x03030303) << 4);
    uint8_t sc[16];
    memcpy(sc, a, 16); // little-endian host assumed (as GGUF)
    const uint8_t *hm = b, *q = b + 32;
    float d = h2f(b + 108);
    int is = 0, k = 0, m = 1;
    for (int n = 0; n < 2; n++, q += 32) {
        for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
            for (int g = 0; g < 2; g++, is++) {
                for (int l = 16 * g; l < 16 * g + 16; l++) {
                    int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
                    y[k++] = d * (float)(sc[is] - 32) * (float)v;
                }
            }
        }
    }
}

// q4_k / q5_k 6-bit scales: bytes 0-3 scales 0-3, bytes 4-7 mins 0-3 (low 6 bits each);
// scales/mins 4-7: low nibble / high nibble of bytes 8-11, top bits from bits 6-7 of bytes
// 0-3 (scales) and 4-7 (mins).
static void ref_scale_min(const uint8_t *s, int j, float *sc, float *mn)
{
    if (j < 4) {
        *sc = (float)(s[j] & 0x3f);
        *mn = (float)(s[4 + j] & 0x3f);
    } else {
        *sc = (float)((s[8 + j - 4] & 0x0f) + 16 * (s[j - 4] >> 6));
        *mn = (float)((s[8 + j - 4] >> 4) + 16 * (s[j] >> 6));
    }
}

// q4_k (qh NULL) and q5_k: per 64 outputs, 32 bytes: low nibbles (scale 2p), then high
// nibbles (scale 2p + 1); q5_k's high bits: bit u1 / u2 of qh[l], u1 = 1, 4, 16, 64.
static void ref_q45_k(const uint8_t *b, float *y, bool five)
{
    float d = h2f(b), dmin = h2f(b + 2);
    const uint8_t *qh = b + 16, *q = five ? b + 48 : b + 16;
    int k = 0, u1 = 1, u2 = 2;
    for (int p = 0; p < 4; p++, q += 32, u1 <<= 2, u2 <<= 2) {
        float s1, m1, s2, m2;
        ref_scale_min(b + 4, 2 * p, &s1, &m1);
        ref_scale_min(b + 4, 2 * p + 1, &s2, &m2);
        for (int l = 0; l < 32; l++) {
            int v = (q[l] & 15) + (five && (qh[l] & u1) ? 16 : 0);
            y[k++] = d * s1 * (float)v - dmin * m1;
        }
        for (int l = 0; l < 32; l++) {
            int v = (q[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0);
            y[k++] = d * s2 * (float)v - dmin * m2;
        }
    }
}

// q6_k: per 128 outputs, 64 ql bytes and 32 qh bytes give four outputs per l (offsets 0, 32,
// 64, 96) and the scale index l / 16 + 0, 2, 4, 6.
static void ref_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = h2f(b + 208);
    for (int n = 0; n < 2; n++, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

static void ref_iq4_xs(const uint8_t *b, float *y)
{
    float d = h2f(b);
    int sh = b[2] | b[3] << 8;
    for (int ib = 0; ib < 8; ib++) {
        int lo = ib % 2 ? b[4 + ib / 2] >> 4 : b[4 + ib / 2] & 15;
        int ls = lo + 16 * ((sh >> (2 * ib)) & 3);
        for (int i = 0; i < 32; i++) {
            y[32 * ib + i] = d * (float)(ls - 32) * (float)grid[nib32(b + 8 + 16 * ib, i)];
        }
    }
}

static void ref_block(uint32_t type, const uint8_t *b, float *y)
{
    switch (type) {
    case 10: ref_q2_k(b, y); break;
    case 11: ref_q3_k(b, y); break;
    case 12: ref_q45_k(b, y, false); break;
    case 13: ref_q45_k(b, y, true); break;
    case 14: ref_q6_k(b, y); break;
    case 23: ref_iq4_xs(b, y); break;
    default: ref_legacy(type, b, y); break;
    }
}

// Offsets of the fp16 fields of each block type (second -1 when there is one).
static void fp16_fields(uint32_t type, int *a, int *b)
{
    *b = -1;
    switch (type) {
    case 10: *a = 80, *b = 82; break;
    case 11: *a = 108; break;
    case 14: *a = 208; break;
    case 3: case 7: case 12: case 13: *a = 0, *b = 2; break;
    default: *a = 0; break;
    }
}

// Three random blocks with fp16 scales 0.5/0.25, -1.5/3.0, 2^-10/-0.125.
static void test_random_blocks(uint32_t type)
{
    const struct imc_type_traits *t = imc_type_traits(type);
    const uint16_t ds[3][2] = {{0x3800, 0x3400}, {0xbe00, 0x4200}, {0x1400, 0xb000}};
    uint8_t buf[3 * 210];
    float y[3 * 256], ref[3 * 256];
    uint64_t s = 0x9e3779b97f4a7c15ull ^ type;
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)rng_next(&s);
    }
    int fa, fb;
    fp16_fields(type, &fa, &fb);
    for (int k = 0; k < 3; k++) {
        uint8_t *blk = buf + (size_t)k * t->type_size;
        put16(blk + fa, ds[k][0]);
        if (fb >= 0) {
            put16(blk + fb, ds[k][1]);
        }
        ref_block(type, blk, ref + k * t->block_size);
    }
    t->to_float(buf, y, 3 * t->block_size);
    int bad = check_array_close_impl(y, ref, 3 * t->block_size, 1e-9, 1e-6, NULL);
    CHECK(bad == 0, "%s: %d elements differ from the reference decoder", t->name, bad);
}

// Literal values from the format description, worked out by hand.
struct spot {
    uint32_t type;
    int off[8];      // byte offsets (end with -1)
    uint8_t val[8];  // bytes to set (all others 0)
    int elem;        // element index
    float expect;
};

static const struct spot spots[] = {
    // q4_0 d=0.5: qs[0]=0x1f -> elem 0 = 0.5*(15-8), elem 16 = 0.5*(1-8)
    {2, {0, 1, 2, -1}, {0x00, 0x38, 0x1f}, 0, 3.5f},
    {2, {0, 1, 2, -1}, {0x00, 0x38, 0x1f}, 16, -3.5f},
    // q4_1 d=0.5 m=1: qs[2]=0x5a -> elem 2 = 0.5*10+1, elem 18 = 0.5*5+1
    {3, {1, 3, 6, -1}, {0x38, 0x3c, 0x5a}, 2, 6.0f},
    {3, {1, 3, 6, -1}, {0x38, 0x3c, 0x5a}, 18, 3.5f},
    // q5_0 d=0.5: qh bit 0, qs[0]=0x03 -> elem 0 = 0.5*(19-16); elem 16 = 0.5*(0-16)
    {6, {1, 2, 6, -1}, {0x38, 0x01, 0x03}, 0, 1.5f},
    {6, {1, 2, 6, -1}, {0x38, 0x01, 0x03}, 16, -8.0f},
    // q5_1 d=0.5 m=-1: qh bit 17 (byte 6 bit 1), qs[1]=0x40 -> elem 17 = 0.5*20-1
    {7, {1, 3, 6, 9, -1}, {0x38, 0xbc, 0x02, 0x40}, 17, 9.0f},
    // q8_0 d=1: qs[5]=0xfe -> -2
    {8, {1, 7, -1}, {0x3c, 0xfe}, 5, -2.0f},
    // q2_k d=1 dmin=0.5: scales[0]=0x23 (scale 3, min 2), qs[0]=0x02 -> 3*2-0.5*2
    {10, {0, 16, 81, 83, -1}, {0x23, 0x02, 0x3c, 0x38}, 0, 5.0f},
    // q2_k: element 32 is bits 2-3 of qs[0] with scale byte 2 (=0x31: scale 1, min 3)
    {10, {2, 16, 81, 83, -1}, {0x31, 0x0c, 0x3c, 0x38}, 32, 1.5f},
    // q3_k d=1: scale 0 = 34-32 = 2 (low 2 in byte 96, top bits 2 in byte 104); qs[0]=1 with
    // hmask bit set -> 2*1; qs[1]=1 with hmask clear -> 2*(1-4)
    {11, {0, 32, 33, 96, 104, 109, -1}, {0x01, 0x01, 0x01, 0x02, 0x02, 0x3c}, 0, 2.0f},
    {11, {0, 32, 33, 96, 104, 109, -1}, {0x01, 0x01, 0x01, 0x02, 0x02, 0x3c}, 1, -6.0f},
    // q4_k d=1 dmin=0.5: scale0=5 min0=3, qs[0]=0x72 -> 5*2-1.5; scale1=2 min1=4 -> 2*7-2
    {12, {1, 3, 4, 5, 8, 9, 16, -1}, {0x3c, 0x38, 0x05, 0x02, 0x03, 0x04, 0x72}, 0, 8.5f},
    {12, {1, 3, 4, 5, 8, 9, 16, -1}, {0x3c, 0x38, 0x05, 0x02, 0x03, 0x04, 0x72}, 32, 12.0f},
    // q4_k: scale4 = 1 | (0x40>>6)<<4 = 17, min4 = 2; qs[64]=3 -> element 128 = 17*3-0.5*2
    {12, {1, 3, 4, 12, 80, -1}, {0x3c, 0x38, 0x45, 0x21, 0x03}, 128, 50.0f},
    // q5_k d=1 dmin=0.5: scale0=5 min0=3, qs[0]=2, qh[0] bit 0 -> 5*18-1.5
    {13, {1, 3, 4, 8, 16, 48, -1}, {0x3c, 0x38, 0x05, 0x03, 0x01, 0x02}, 0, 88.5f},
    // q6_k d=0.5: scale0=-3, ql[0]=5, qh[0]=2 -> q=5|32=37 -> 0.5*(-3)*(37-32)
    {14, {0, 128, 192, 209, -1}, {0x05, 0x02, 0xfd, 0x38}, 0, -7.5f},
    // iq4_nl d=0.5: qs[0]=0xf0 -> elem 0 = 0.5*(-127), elem 16 = 0.5*113
    {20, {1, 2, -1}, {0x38, 0xf0}, 0, -63.5f},
    {20, {1, 2, -1}, {0x38, 0xf0}, 16, 56.5f},
    // iq4_xs d=0.5: scales_l[0]=1, scales_h=2 -> ls = 1+32 = 33 -> 1; qs[0]=9 -> 0.5*1*13
    {23, {1, 2, 4, 8, -1}, {0x38, 0x02, 0x01, 0x09}, 0, 6.5f},
    // iq4_xs sub-block 1: scales_l[0] high nibble 0, scales_h bits 2-3 = 0 -> ls-32 = -32
    {23, {1, 2, 4, 24, -1}, {0x38, 0x02, 0x01, 0x0f}, 32, 0.5f * -32 * 113},
};

static void test_spots(void)
{
    for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
        const struct spot *sp = &spots[i];
        const struct imc_type_traits *t = imc_type_traits(sp->type);
        uint8_t blk[256] = {0};
        float y[256];
        for (int k = 0; k < 8 && sp->off[k] >= 0; k++) {
            blk[sp->off[k]] = sp->val[k];
        }
        t->to_float(blk, y, t->block_size);
        CHECK(y[sp->elem] == sp->expect, "%s spot %zu: element %d = %g, expected %g", t->name, i,
              sp->elem, y[sp->elem], sp->expect);
    }
    uint16_t h[2] = {0x3c00, 0xc100};
    float y[2];
    imc_type_traits(1)->to_float(h, y, 2);
    CHECK(y[0] == 1.0f && y[1] == -2.5f, "f16 %g %g", y[0], y[1]);
    uint16_t bh[2] = {0x3f80, 0xc0a0};
    imc_type_traits(30)->to_float(bh, y, 2);
    CHECK(y[0] == 1.0f && y[1] == -5.0f, "bf16 %g %g", y[0], y[1]);
    float f[2] = {1.25f, -3e-5f};
    imc_type_traits(0)->to_float(f, y, 2);
    CHECK(y[0] == f[0] && y[1] == f[1], "f32");
}

// A mismatch in one element must make the array comparison fail (the checker can fail).
static void test_checker_fails(void)
{
    float a[64], b[64];
    for (int i = 0; i < 64; i++) {
        a[i] = b[i] = (float)i - 30.5f;
    }
    CHECK(check_array_close_impl(a, b, 64, 1e-9, 1e-6, NULL) == 0, "equal arrays");
    b[17] *= 1 + 1e-5f;
    CHECK(check_array_close_impl(a, b, 64, 1e-9, 1e-6, NULL) == 1, "one perturbed element");
}

int main(void)
{
    const uint32_t types[] = {2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 20, 23};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        test_random_blocks(types[i]);
    }
    test_spots();
    test_checker_fails();
    return check_summary();
}
