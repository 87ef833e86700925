/*
 * kernels/cpu/bmm: activation conversion, the generic micro-kernel, the tile driver and the
 * probe of the bf16 matmul (kernels/cpu/bmm.h). The generic micro-kernel is the specification in
 * plain C: per lane, the odd product then the even one, each one fmaf, denormals flushed.
 *
 * Tile loop nest: blocks of TG token groups (of IMC_BMM_NT tokens) → K blocks of KB chunks →
 * token groups → row groups of IMC_BMM_MR. The tile's K block of weights (at most 256 rows: 512
 * KiB as bf16, twice that split) stays in L2 while the block's token groups pass over it, and a
 * token group's K block (6 × 2 KiB, or 4 KiB split) in L1 while the row groups stream past; the
 * lane accumulators go through scratch between K blocks (exact: the same chain per lane), and are
 * reduced to y once the last block is done.
 */
#include "kernels/cpu/bmm.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "types/types.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MXCSR_DAZ_FTZ 0x8040u
#endif

#define KB 32 // chunks per K block (1024 elements: 2 KiB per row)
#define TG 8  // token groups per pass over the tile's K blocks
// Split rows lie np + SKEW floats apart, converted activation rows (imc_bmm_xrow_bytes) 64
// bytes more than their data: rows of a power-of-two size would otherwise all map to the same
// L1 sets, and the 10 rows a micro-kernel reads at once evict each other.
#define SKEW 16

const char *imc_bmm_kernel_name(enum imc_bmm_kernel k)
{
    switch (k) {
    case IMC_BMM_AVX2:
        return "avx2";
    case IMC_BMM_AVX512:
        return "avx512";
    case IMC_BMM_AVX512BF16:
        return "avx512bf16";
    default:
        return "generic";
    }
}

bool imc_bmm_kernel_supported(enum imc_bmm_kernel k)
{
    if (k == IMC_BMM_GENERIC) {
        return true;
    }
#if defined(__x86_64__) || defined(__i386__)
    return imc_bmm_uk_x86(k) != NULL;
#else
    return false;
#endif
}

enum imc_bmm_kernel imc_bmm_kernel_for(enum imc_gemm_path path, bool dot_ok)
{
    if (path == IMC_GEMM_GENERIC) {
        return IMC_BMM_GENERIC;
    }
    if (path == IMC_GEMM_VNNI && dot_ok && imc_bmm_kernel_supported(IMC_BMM_AVX512BF16)) {
        return IMC_BMM_AVX512BF16;
    }
    if (path == IMC_GEMM_VNNI && imc_bmm_kernel_supported(IMC_BMM_AVX512)) {
        return IMC_BMM_AVX512;
    }
    return imc_bmm_kernel_supported(IMC_BMM_AVX2) ? IMC_BMM_AVX2 : IMC_BMM_GENERIC;
}

static int64_t padded(int64_t n)
{
    return (n + IMC_BMM_CHUNK - 1) / IMC_BMM_CHUNK * IMC_BMM_CHUNK;
}

static bool split_form(enum imc_bmm_kernel k)
{
    return k == IMC_BMM_AVX2 || k == IMC_BMM_AVX512;
}

uint64_t imc_bmm_xrow_bytes(enum imc_bmm_kernel k, int64_t n)
{
    return (split_form(k) ? 4 : 2) * (uint64_t)padded(n) + 64;
}

uint64_t imc_bmm_scratch_bytes(enum imc_bmm_kernel k, int64_t nr, int64_t n)
{
    const uint64_t rows = (uint64_t)((nr + IMC_BMM_MR - 1) / IMC_BMM_MR * IMC_BMM_MR);
    const uint64_t split = split_form(k) ? rows * (uint64_t)(padded(n) + SKEW) * sizeof(float) : 0;
    return TG * rows * IMC_BMM_NT * IMC_BMM_LANES * sizeof(float) + split;
}

void imc_bmm_convert_rows(enum imc_bmm_kernel k, const float *x, int64_t ldx, int64_t n_rows,
                          int64_t n, uint8_t *out, uint64_t ldo)
{
#if defined(__x86_64__) || defined(__i386__)
    const imc_bmm_cvt_fn vec = k != IMC_BMM_GENERIC ? imc_bmm_cvt_avx2() : NULL;
    const imc_bmm_split_fn split = split_form(k) ? imc_bmm_split_x86(k) : NULL;
    IMC_ASSERT(!split_form(k) || split != NULL);
#else
    IMC_ASSERT(!split_form(k));
#endif
    const int64_t np = padded(n);
    for (int64_t r = 0; r < n_rows; r++) {
        uint8_t *o8 = out + (uint64_t)r * ldo;
        const float *xr = x + r * ldx;
#if defined(__x86_64__) || defined(__i386__)
        if (split) {
            split(xr, n, o8);
            continue;
        }
#endif
        uint16_t *o = (uint16_t *)(void *)o8;
        int64_t e = 0;
#if defined(__x86_64__) || defined(__i386__)
        if (vec) {
            vec(xr, n, o);
            e = n;
        }
#endif
        for (; e < n; e++) {
            o[e] = imc_fp32_to_bf16(xr[e]);
        }
        for (; e < np; e++) {
            o[e] = 0;
        }
    }
}

// A denormal input read as zero (sign kept), a denormal result flushed: what MXCSR's DAZ and
// FTZ do on x86, where they are set around the tile (so nothing is left to do), spelled out for
// other CPUs.
static inline float flush(float v)
{
#if defined(__x86_64__) || defined(__i386__)
    return v;
#else
    return fabsf(v) < FLT_MIN ? copysignf(0.0f, v) : v;
#endif
}

static void uk_generic(const uint8_t *const *wb, const uint8_t *const *xb, int nk, int64_t c0,
                       int64_t c1, int64_t n, float *acc, bool init)
{
    const uint16_t *const *w = (const uint16_t *const *)wb;
    const uint16_t *const *x = (const uint16_t *const *)xb;
    for (int i = 0; i < IMC_BMM_MR; i++) {
        for (int j = 0; j < nk; j++) {
            float *a = acc + (i * IMC_BMM_NT + j) * IMC_BMM_LANES;
            for (int l = 0; init && l < IMC_BMM_LANES; l++) {
                a[l] = 0.0f;
            }
            for (int64_t c = c0; c < c1; c++) {
                for (int l = 0; l < IMC_BMM_LANES; l++) {
                    for (int h = 1; h >= 0; h--) { // the odd element first
                        const int64_t e = c * IMC_BMM_CHUNK + 2 * l + h;
                        const float we = e < n ? flush(imc_bf16_to_fp32(w[i][e])) : 0.0f;
                        const float xe = flush(imc_bf16_to_fp32(x[j][e]));
                        a[l] = flush(fmaf(we, xe, a[l]));
                    }
                }
            }
        }
    }
}

static imc_bmm_uk_fn uk_of(enum imc_bmm_kernel k)
{
    if (k == IMC_BMM_GENERIC) {
        return uk_generic;
    }
#if defined(__x86_64__) || defined(__i386__)
    const imc_bmm_uk_fn f = imc_bmm_uk_x86(k);
    IMC_ASSERT(f != NULL);
    return f;
#else
    IMC_ASSERT(!"bmm: vector kernel on a CPU without one");
    return uk_generic;
#endif
}

// The fixed tree of bmm.h over one output's 16 lanes.
static float reduce(const float *a)
{
    float s[8], u[4];
    for (int i = 0; i < 8; i++) {
        s[i] = flush(a[i] + a[i + 8]);
    }
    for (int i = 0; i < 4; i++) {
        u[i] = flush(s[i] + s[i + 4]);
    }
    const float v0 = flush(u[0] + u[2]), v1 = flush(u[1] + u[3]);
    return flush(v0 + v1);
}

// The tile's rows w + r·row_bytes (r < nr) split into f32 at ws (rows of np floats; the group's
// rows past nr repeat the last), for the emulations; returns ws as a row base and its stride.
static const uint8_t *split_rows(enum imc_bmm_kernel k, const uint8_t *w, uint64_t row_bytes,
                                 int64_t nr, int64_t n, float *ws, uint64_t *ld)
{
#if defined(__x86_64__) || defined(__i386__)
    const imc_bmm_wsplit_fn split = imc_bmm_wsplit_x86(k);
    IMC_ASSERT(split != NULL);
    const int64_t np = padded(n);
    for (int64_t r = 0; r < nr; r++) {
        split((const uint16_t *)(const void *)(w + (uint64_t)r * row_bytes), n,
              ws + r * (np + SKEW));
    }
    *ld = (uint64_t)(np + SKEW) * sizeof(float);
    return (const uint8_t *)ws;
#else
    (void)k, (void)w, (void)row_bytes, (void)nr, (void)n, (void)ws, (void)ld;
    IMC_ASSERT(!"bmm: split rows on a CPU without the emulations");
    return NULL;
#endif
}

// Reduces a token group's accumulators (rows r < nr, tokens j < nk) to y[j·ldy + r].
static void reduce_group(const float *acc, int64_t nr, int nk, float *y, int64_t ldy)
{
    for (int j = 0; j < nk; j++) {
        for (int64_t r = 0; r < nr; r++) {
            y[j * ldy + r] = reduce(acc + (r * IMC_BMM_NT + j) * IMC_BMM_LANES);
        }
    }
}

void imc_bmm_tile(enum imc_bmm_kernel k, const uint8_t *w, uint64_t row_bytes, int64_t nr,
                  const uint8_t *xb, uint64_t ldq, int64_t nt, int64_t n, float *y, int64_t ldy,
                  void *scratch)
{
    const imc_bmm_uk_fn uk = uk_of(k);
#if defined(__x86_64__) || defined(__i386__)
    const imc_bmm_red_fn vred = k != IMC_BMM_GENERIC ? imc_bmm_red_avx512() : NULL;
    const imc_bmm_red_fn red = vred ? vred : reduce_group;
#else
    const imc_bmm_red_fn red = reduce_group;
#endif
    const int64_t nc = padded(n) / IMC_BMM_CHUNK;
    float *acc = scratch;
    const int64_t rows = (nr + IMC_BMM_MR - 1) / IMC_BMM_MR * IMC_BMM_MR;
    uint64_t ld = row_bytes;
    const int64_t per_group = rows * IMC_BMM_NT * IMC_BMM_LANES; // accumulator floats
    const uint8_t *wr0 =
        split_form(k) ? split_rows(k, w, row_bytes, nr, n, acc + TG * per_group, &ld) : w;
#if defined(__x86_64__) || defined(__i386__)
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | MXCSR_DAZ_FTZ);
#endif
    for (int64_t tb = 0; tb < nt; tb += TG * IMC_BMM_NT) {
        const int64_t tb1 = tb + TG * IMC_BMM_NT < nt ? tb + TG * IMC_BMM_NT : nt;
        for (int64_t c0 = 0; c0 < nc; c0 += KB) {
            const int64_t c1 = c0 + KB < nc ? c0 + KB : nc;
            for (int64_t t0 = tb; t0 < tb1; t0 += IMC_BMM_NT) {
                const int nk = (int)(tb1 - t0 < IMC_BMM_NT ? tb1 - t0 : IMC_BMM_NT);
                const uint8_t *xr[IMC_BMM_NT];
                for (int j = 0; j < IMC_BMM_NT; j++) {
                    const int64_t t = t0 + j < nt ? t0 + j : nt - 1;
                    xr[j] = xb + (uint64_t)t * ldq;
                }
                float *ag = acc + (t0 - tb) / IMC_BMM_NT * per_group;
                for (int64_t r0 = 0; r0 < nr; r0 += IMC_BMM_MR) {
                    const uint8_t *wr[IMC_BMM_MR];
                    for (int i = 0; i < IMC_BMM_MR; i++) {
                        const int64_t r = r0 + i < nr ? r0 + i : nr - 1;
                        wr[i] = wr0 + (uint64_t)r * ld;
                    }
                    uk(wr, xr, nk, c0, c1, n, ag + r0 * IMC_BMM_NT * IMC_BMM_LANES, c0 == 0);
                }
            }
        }
        for (int64_t t0 = tb; t0 < tb1; t0 += IMC_BMM_NT) {
            const int nk = (int)(tb1 - t0 < IMC_BMM_NT ? tb1 - t0 : IMC_BMM_NT);
            red(acc + (t0 - tb) / IMC_BMM_NT * per_group, nr, nk, y + t0 * ldy, ldy);
        }
    }
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(csr);
#endif
}

// ---- probe --------------------------------------------------------------------------------------

#define PROBE_ROUNDS 24
#define PROBE_CHUNKS 2

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

// A bf16 with a random sign and mantissa and a biased exponent in [e0, e0 + span) (0: denormal).
static uint16_t probe_bf16(uint32_t *s, int e0, int span)
{
    const uint32_t r = lcg(s);
    const uint32_t e = (uint32_t)(e0 + (int)(r % (uint32_t)span));
    return (uint16_t)(((r >> 8) & 1) << 15 | (e & 0xff) << 7 | ((r >> 9) & 0x7f));
}

static float probe_f32(uint32_t *s, int e0, int span)
{
    const uint32_t r = lcg(s), m = lcg(s);
    const uint32_t bits =
        ((r >> 8) & 1) << 31 | (uint32_t)(e0 + (int)(r % (uint32_t)span)) << 23 | (m & 0x7fffff);
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

// Round `round`'s data: rows w, tokens x (PROBE_CHUNKS chunks each) and starting accumulators.
// Each round has one theme (by round % 6), so that every kind of lane is present many times:
// ordinary sums where the order of the two roundings shows; accumulators near FLT_MIN with
// products below it (a product flushed before the add would show); denormal weights or
// activations against huge ones (DAZ); sums cancelling to a denormal (FTZ); overflow to inf.
static void probe_data(int round, uint16_t *w, uint16_t *x, float *acc)
{
    uint32_t s = 0x9e3779b9u ^ (uint32_t)round * 7919u;
    const int n = PROBE_CHUNKS * IMC_BMM_CHUNK, theme = round % 6;
    for (int e = 0; e < IMC_BMM_MR * n; e++) {
        w[e] = theme == 2   ? (e % 3 ? probe_bf16(&s, 0, 1) : probe_bf16(&s, 100, 60))
               : theme == 1 ? probe_bf16(&s, 50, 20)
               : theme == 5 ? probe_bf16(&s, 190, 60)
                            : probe_bf16(&s, 117, 20);
    }
    for (int e = 0; e < IMC_BMM_NT * n; e++) {
        x[e] = theme == 3   ? (e % 3 ? probe_bf16(&s, 0, 1) : probe_bf16(&s, 100, 60))
               : theme == 1 ? probe_bf16(&s, 50, 20)
               : theme == 5 ? probe_bf16(&s, 190, 60)
                            : probe_bf16(&s, 117, 20);
    }
    for (int i = 0; i < IMC_BMM_MR * IMC_BMM_NT * IMC_BMM_LANES; i++) {
        acc[i] = theme == 1   ? probe_f32(&s, 1, 12)
                 : theme == 4 ? probe_f32(&s, 0, 3)
                 : theme == 5 ? probe_f32(&s, 250, 5)
                              : probe_f32(&s, 110, 30);
    }
    if (theme == 4) { // odd product cancels the accumulator's top bits: a tiny sum
        for (int i = 0; i < IMC_BMM_MR; i++) {
            for (int l = 0; l < IMC_BMM_LANES; l++) {
                const int e = i * n + 2 * l + 1;
                w[e] = (uint16_t)(0x3f80 | (w[e] & 0x807f)); // ±[1, 2)
            }
        }
        for (int j = 0; j < IMC_BMM_NT; j++) {
            for (int l = 0; l < IMC_BMM_LANES; l++) {
                x[j * n + 2 * l + 1] = (uint16_t)(0x0080 | (x[j * n + 2 * l + 1] & 0x807f));
            }
        }
    }
}

bool imc_bmm_probe(void)
{
    if (!imc_bmm_kernel_supported(IMC_BMM_AVX512BF16)) {
        return false;
    }
    const imc_bmm_uk_fn dot = uk_of(IMC_BMM_AVX512BF16);
    enum { N = PROBE_CHUNKS * IMC_BMM_CHUNK, ACC = IMC_BMM_MR * IMC_BMM_NT * IMC_BMM_LANES };
    uint16_t w[IMC_BMM_MR * N], x[IMC_BMM_NT * N];
    float a0[ACC], a1[ACC], a2[ACC];
    const uint8_t *wr[IMC_BMM_MR], *xr[IMC_BMM_NT];
    for (int i = 0; i < IMC_BMM_MR; i++) {
        wr[i] = (const uint8_t *)(w + i * N);
    }
    for (int j = 0; j < IMC_BMM_NT; j++) {
        xr[j] = (const uint8_t *)(x + j * N);
    }
    bool same = true;
#if defined(__x86_64__) || defined(__i386__)
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | MXCSR_DAZ_FTZ);
#endif
    for (int round = 0; round < PROBE_ROUNDS && same; round++) {
        probe_data(round, w, x, a0);
        memcpy(a1, a0, sizeof(a0));
        memcpy(a2, a0, sizeof(a0));
        uk_generic(wr, xr, IMC_BMM_NT, 0, PROBE_CHUNKS, N - round % 3, a1, false);
        dot(wr, xr, IMC_BMM_NT, 0, PROBE_CHUNKS, N - round % 3, a2, false);
        same = memcmp(a1, a2, sizeof(a1)) == 0;
    }
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(csr);
#endif
    if (!same) {
        IMC_LOG_WRN("bmm: this CPU's vdpbf16ps does not round as bmm.h specifies; bf16 weights "
                    "take the AVX512 emulation (the same bits, slower)");
    }
    return same;
}
