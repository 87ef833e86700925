/*
 * kernels/cpu/gemm: the blocked driver of the deterministic GEMM and the portable (generic)
 * kernels (kernels/cpu/gemm.h). The AVX2 kernels live in gemm_avx2.c, the AVX-512 ones (the vnni
 * path's where the CPU has AVX512F) in gemm_avx512.c.
 *
 * Loop nest of imc_gemm_packed (BLIS order): K blocks of KC (the accumulators go through C
 * between blocks, exactly) → blocks of MC rows of A → B panels of NR → A micro-blocks of MR rows
 * → the MR × NR tile kernel (MR × 2·NR over two panels where the path has a two-panel kernel). A
 * packed B micro-panel (KC × NR floats, 16 KiB) stays in L1 while the MC × KC block of A (96 KiB)
 * is reused from L2 across the panels. A is read in place (rows of stride lda): copying it into
 * blocks measured no faster, as the kernel's six row streams prefetch well. The blocking only
 * decides when each output's k-steps run, never their order or grouping: each output still sees
 * fmaf(a_k, b_k, acc) for k = 0, 1, ..., K-1, from +0. imc_gemm_nt packs NC rows of B at a time;
 * with few A rows (<= FEW_ROWS, where packing costs more than the products) one panel × KC at a
 * time, used while it is in L1.
 */
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "kernels/cpu/gemm_impl.h"
#include "kernels/cpu/qmm.h"

#define KC 256      // k-steps per block
#define MC 96       // A rows per block (a multiple of MR)
#define NC 256      // B rows packed at a time by imc_gemm_nt
#define FEW_ROWS 32 // imc_gemm_nt with at most this many A rows packs B one L1 block at a time

// The generic tile: the specification of gemm_impl.h written with fmaf.
static void tile_generic(int mr, int64_t kc, const float *a, int64_t lda, const float *bp, float *c,
                         int64_t ldc, bool load)
{
    float acc[IMC_GEMM_MR][IMC_GEMM_NR];
    for (int i = 0; i < mr; i++) {
        for (int j = 0; j < IMC_GEMM_NR; j++) {
            acc[i][j] = load ? c[i * ldc + j] : 0.0f;
        }
    }
    for (int64_t kk = 0; kk < kc; kk++) {
        const float *b = bp + kk * IMC_GEMM_NR;
        for (int i = 0; i < mr; i++) {
            const float ai = a[i * lda + kk];
            for (int j = 0; j < IMC_GEMM_NR; j++) {
                acc[i][j] = fmaf(ai, b[j], acc[i][j]);
            }
        }
    }
    for (int i = 0; i < mr; i++) {
        memcpy(c + i * ldc, acc[i], sizeof(acc[i]));
    }
}

void imc_gemm_pack_scalar(float *dst, const float *src, int64_t lds, int64_t nr, int64_t kn)
{
    for (int64_t kk = 0; kk < kn; kk++) {
        float *d = dst + kk * IMC_GEMM_NR;
        for (int64_t r = 0; r < IMC_GEMM_NR; r++) {
            d[r] = r < nr ? src[r * lds + kk] : 0.0f;
        }
    }
}

static const struct imc_gemm_kernels generic_kernels = {
    .tile = tile_generic,
    .pack_panel = imc_gemm_pack_scalar,
};

static const struct imc_gemm_kernels *kernels_of(enum imc_gemm_path path)
{
    const struct imc_gemm_kernels *k512 = path == IMC_GEMM_VNNI ? imc_gemm_kernels_avx512() : NULL;
    if (k512) {
        return k512;
    }
    if (path == IMC_GEMM_AVX2 || path == IMC_GEMM_VNNI) { // VNNI without AVX-512: AVX2's
        const struct imc_gemm_kernels *k = imc_gemm_kernels_avx2();
        IMC_ASSERT(k != NULL);
        return k;
    }
    IMC_ASSERT(path == IMC_GEMM_GENERIC);
    return &generic_kernels;
}

bool imc_gemm_path_supported(enum imc_gemm_path path)
{
    return path == IMC_GEMM_GENERIC || (path == IMC_GEMM_AVX2 && imc_gemm_kernels_avx2()) ||
           (path == IMC_GEMM_VNNI && imc_gemm_kernels_avx2() &&
            imc_qmm_tile_vnni(IMC_QMM_VNNI_BEST));
}

enum imc_gemm_path imc_gemm_path_best(void)
{
    return imc_gemm_path_supported(IMC_GEMM_VNNI)   ? IMC_GEMM_VNNI
           : imc_gemm_path_supported(IMC_GEMM_AVX2) ? IMC_GEMM_AVX2
                                                    : IMC_GEMM_GENERIC;
}

const char *imc_gemm_path_name(enum imc_gemm_path path)
{
    return path == IMC_GEMM_VNNI      ? "vnni"
           : path == IMC_GEMM_AVX2    ? "avx2"
           : path == IMC_GEMM_GENERIC ? "generic"
                                      : "unknown";
}

float *imc_gemm_align(float *p)
{
    const uintptr_t u = (uintptr_t)p;
    return p + ((64 - u % 64) % 64) / sizeof(float);
}

int64_t imc_gemm_packed_floats(int64_t n, int64_t k)
{
    return (n + IMC_GEMM_NR - 1) / IMC_GEMM_NR * IMC_GEMM_NR * k;
}

void imc_gemm_pack_panel(enum imc_gemm_path path, float *dst, const float *src, int64_t lds,
                         int64_t nr, int64_t kn)
{
    IMC_ASSERT(nr >= 1 && nr <= IMC_GEMM_NR);
    kernels_of(path)->pack_panel(dst, src, lds, nr, kn);
}

void imc_gemm_pack_b(enum imc_gemm_path path, float *bp, const float *b, int64_t ldb, int64_t n,
                     int64_t k)
{
    const struct imc_gemm_kernels *kern = kernels_of(path);
    for (int64_t j = 0; j < n; j += IMC_GEMM_NR) {
        const int64_t nr = n - j < IMC_GEMM_NR ? n - j : IMC_GEMM_NR;
        kern->pack_panel(bp + j * k, b + j * ldb, ldb, nr, k);
    }
}

void imc_gemm_pack_bt(float *bp, const float *bt, int64_t ldt, int64_t n, int64_t k)
{
    for (int64_t j = 0; j < n; j += IMC_GEMM_NR) {
        const int64_t nr = n - j < IMC_GEMM_NR ? n - j : IMC_GEMM_NR;
        float *pan = bp + j * k;
        for (int64_t kk = 0; kk < k; kk++) {
            memcpy(pan + kk * IMC_GEMM_NR, bt + kk * ldt + j, (size_t)nr * sizeof(float));
            memset(pan + kk * IMC_GEMM_NR + nr, 0, (size_t)(IMC_GEMM_NR - nr) * sizeof(float));
        }
    }
}

// One mr × nr tile; a partial panel (nr < NR) goes through a full-width local tile whose extra
// lanes (zero B rows) are discarded.
static void run_tile(const struct imc_gemm_kernels *kern, int mr, int64_t nr, int64_t kc,
                     const float *a, int64_t lda, const float *bp, float *c, int64_t ldc, bool load)
{
    if (nr == IMC_GEMM_NR) {
        kern->tile(mr, kc, a, lda, bp, c, ldc, load);
        return;
    }
    float t[IMC_GEMM_MR * IMC_GEMM_NR] = {0};
    for (int i = 0; load && i < mr; i++) {
        memcpy(t + i * IMC_GEMM_NR, c + i * ldc, (size_t)nr * sizeof(float));
    }
    kern->tile(mr, kc, a, lda, bp, t, IMC_GEMM_NR, load);
    for (int i = 0; i < mr; i++) {
        memcpy(c + i * ldc, t + i * IMC_GEMM_NR, (size_t)nr * sizeof(float));
    }
}

void imc_gemm_packed(enum imc_gemm_path path, float *c, int64_t ldc, const float *a, int64_t lda,
                     int64_t m, const float *bp, int64_t n, int64_t k, bool accumulate)
{
    const struct imc_gemm_kernels *kern = kernels_of(path);
    if (k <= 0 && !accumulate) {
        for (int64_t i = 0; i < m; i++) {
            memset(c + i * ldc, 0, (size_t)(n > 0 ? n : 0) * sizeof(float));
        }
        return;
    }
    for (int64_t kb = 0; kb < k; kb += KC) {
        const int64_t kc = k - kb < KC ? k - kb : KC;
        for (int64_t ic = 0; ic < m; ic += MC) {
            const int64_t mc = m - ic < MC ? m - ic : MC;
            int64_t j = 0;
            for (; kern->tile2 && j + 2 * IMC_GEMM_NR <= n; j += 2 * IMC_GEMM_NR) {
                const float *bpan = bp + j * k + kb * IMC_GEMM_NR;
                for (int64_t ir = ic; ir < ic + mc; ir += IMC_GEMM_MR) {
                    const int mr = (int)(ic + mc - ir < IMC_GEMM_MR ? ic + mc - ir : IMC_GEMM_MR);
                    kern->tile2(mr, kc, a + ir * lda + kb, lda, bpan, bpan + IMC_GEMM_NR * k,
                                c + ir * ldc + j, ldc, kb > 0 || accumulate);
                }
            }
            for (; j < n; j += IMC_GEMM_NR) {
                const int64_t nr = n - j < IMC_GEMM_NR ? n - j : IMC_GEMM_NR;
                const float *bpan = bp + j * k + kb * IMC_GEMM_NR;
                for (int64_t ir = ic; ir < ic + mc; ir += IMC_GEMM_MR) {
                    const int mr = (int)(ic + mc - ir < IMC_GEMM_MR ? ic + mc - ir : IMC_GEMM_MR);
                    run_tile(kern, mr, nr, kc, a + ir * lda + kb, lda, bpan, c + ir * ldc + j, ldc,
                             kb > 0 || accumulate);
                }
            }
        }
    }
}

int64_t imc_gemm_nt_work_floats(int64_t k)
{
    return imc_gemm_packed_floats(NC, k) + 16;
}

void imc_gemm_nt(enum imc_gemm_path path, float *c, int64_t ldc, const float *a, int64_t lda,
                 int64_t m, const float *b, int64_t ldb, int64_t n, int64_t k, float *work)
{
    float *bp = imc_gemm_align(work);
    if (m <= FEW_ROWS) {
        // Few A rows: pack one panel × KC at a time (L1) and continue the chains in C.
        const struct imc_gemm_kernels *kern = kernels_of(path);
        for (int64_t j = 0; j < n; j += IMC_GEMM_NR) {
            const int64_t nr = n - j < IMC_GEMM_NR ? n - j : IMC_GEMM_NR;
            for (int64_t kb = 0; kb < k || kb == 0; kb += KC) {
                const int64_t kc = k - kb < KC ? k - kb : KC;
                kern->pack_panel(bp, b + j * ldb + kb, ldb, nr, kc);
                imc_gemm_packed(path, c + j, ldc, a + kb, lda, m, bp, nr, kc, kb > 0);
            }
        }
        return;
    }
    for (int64_t j0 = 0; j0 < n; j0 += NC) {
        const int64_t nc = n - j0 < NC ? n - j0 : NC;
        imc_gemm_pack_b(path, bp, b + j0 * ldb, ldb, nc, k);
        imc_gemm_packed(path, c + j0, ldc, a, lda, m, bp, nc, k, false);
    }
}
