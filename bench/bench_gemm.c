/*
 * bench/bench_gemm: single-threaded GFLOP/s of our deterministic GEMM (kernels/cpu/gemm.h; AVX2,
 * vnni (AVX-512 where the CPU has it) and generic paths) against OpenBLAS cblas_sgemm (one thread),
 * C = A · B^T with B as plain rows (packing included in both), then imc_cpu_matmul on quantized
 * weights at 1 and 2 threads. Not a test (STYLE b.1 bench/).
 *
 *   bench_gemm [--min-s S] [--no-generic]
 *
 * Each measurement repeats the call until S seconds (default 0.5) have passed and reports the
 * best repetition. The generic path (one libm fmaf call per element on CPUs without inlined
 * FMA) is slow; --no-generic skips it.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "kernels/cpu/gemm.h"
#include "kernels/kernels.h"

struct shape {
    int64_t m, n, k;
};

struct gemm_args {
    enum imc_gemm_path path; // for ours
    const struct shape *s;
    const float *a, *b;
    float *c, *work;
};

typedef void (*bench_fn)(const void *arg);

static void run_ours(const void *arg)
{
    const struct gemm_args *g = arg;
    const struct shape *s = g->s;
    imc_gemm_nt(g->path, g->c, s->n, g->a, s->k, s->m, g->b, s->k, s->n, s->k, g->work);
}

static void run_blas(const void *arg)
{
    const struct gemm_args *g = arg;
    const struct shape *s = g->s;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)s->m, (int)s->n, (int)s->k, 1.0f,
                g->a, (int)s->k, g->b, (int)s->k, 0.0f, g->c, (int)s->n);
}

// Best seconds per call over repetitions lasting at least min_s in total.
static double best_time(bench_fn fn, const void *arg, double min_s)
{
    double best = INFINITY, t_start = imc_clock_now();
    do {
        const double t0 = imc_clock_now();
        fn(arg);
        const double dt = imc_clock_now() - t0;
        best = dt < best ? dt : best;
    } while (imc_clock_now() - t_start < min_s);
    return best;
}

static float *rand_floats(int64_t n, uint64_t seed)
{
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; p && i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((double)(seed >> 40) * 0x1p-24 * 2.0 - 1.0);
    }
    return p;
}

static void bench_shape(const struct shape *s, double min_s, int generic)
{
    float *a = rand_floats(s->m * s->k, 1), *b = rand_floats(s->n * s->k, 2);
    float *c = malloc((size_t)(s->m * s->n) * sizeof(float));
    float *c2 = malloc((size_t)(s->m * s->n) * sizeof(float));
    float *work = malloc((size_t)imc_gemm_nt_work_floats(s->k) * sizeof(float));
    const double flop = 2.0 * (double)s->m * (double)s->n * (double)s->k;
    const size_t bytes = (size_t)(s->m * s->n) * sizeof(float);
    struct gemm_args g = {IMC_GEMM_AVX2, s, a, b, c, work};
    const double t_blas = best_time(run_blas, &g, min_s);
    double t_avx = NAN, t_vnni = NAN, t_gen = NAN;
    int same = -1;
    if (imc_gemm_path_supported(IMC_GEMM_AVX2)) {
        t_avx = best_time(run_ours, &g, min_s);
    }
    if (imc_gemm_path_supported(IMC_GEMM_VNNI)) {
        g.path = IMC_GEMM_VNNI;
        g.c = c2;
        t_vnni = best_time(run_ours, &g, min_s);
        same = isnan(t_avx) ? -1 : memcmp(c, c2, bytes) == 0;
    }
    if (generic) {
        g.path = IMC_GEMM_GENERIC;
        g.c = c2;
        t_gen = best_time(run_ours, &g, min_s);
        same = isnan(t_avx) ? -1 : same != 0 && memcmp(c, c2, bytes) == 0;
    }
    printf("%5lld %5lld %5lld | %8.1f %8.1f %8.1f %8.2f | %6.2f %6.2f %6.1f | %s\n",
           (long long)s->m, (long long)s->n, (long long)s->k, flop / t_blas * 1e-9,
           flop / t_avx * 1e-9, flop / t_vnni * 1e-9, flop / t_gen * 1e-9, t_avx / t_blas,
           t_vnni / t_blas, t_gen / t_blas,
           same < 0 ? "-"
           : same   ? "yes"
                    : "NO");
    free(a);
    free(b);
    free(c);
    free(c2);
    free(work);
}

struct mm_args {
    const struct imc_exec *ex;
    enum imc_type type;
    const void *w;
    const float *x;
    float *y;
    int64_t n_out, n_in, n_tok;
};

static void run_matmul(const void *arg)
{
    const struct mm_args *m = arg;
    imc_cpu_matmul(m->ex, m->y, m->n_out, m->w, m->type, m->n_out, m->n_in, m->x, m->n_in,
                   m->n_tok);
}

static void bench_matmul(enum imc_type type, int n_threads, double min_s)
{
    const int64_t n_out = 2048, n_in = 2048, n_tok = 512;
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    uint64_t rb = 0;
    if (!tr || !tr->from_float || !imc_type_row_bytes((uint32_t)type, n_in, &rb)) {
        return;
    }
    float *f = rand_floats(n_out * n_in, 3), *x = rand_floats(n_tok * n_in, 4);
    float *y = malloc((size_t)(n_tok * n_out) * sizeof(float));
    uint8_t *w = malloc((size_t)(rb * (uint64_t)n_out));
    for (int64_t o = 0; o < n_out; o++) {
        tr->from_float(f + o * n_in, w + (uint64_t)o * rb, n_in, NULL);
    }
    struct imc_exec *ex = NULL;
    if (imc_exec_init(&ex, n_threads) != IMC_OK) {
        exit(1);
    }
    struct mm_args m = {ex, type, w, x, y, n_out, n_in, n_tok};
    const double t = best_time(run_matmul, &m, min_s);
    printf("matmul %-5s %lldx%lld, %lld tokens, %d thread%s (%s): %7.2f ms  %6.1f GFLOP/s\n",
           tr->name, (long long)n_out, (long long)n_in, (long long)n_tok, n_threads,
           n_threads > 1 ? "s" : "", imc_gemm_path_name(imc_exec_gemm_path(ex)), t * 1e3,
           2.0 * (double)(n_out * n_in * n_tok) / t * 1e-9);
    imc_exec_free(ex);
    free(f);
    free(x);
    free(y);
    free(w);
}

int main(int argc, char **argv)
{
    double min_s = 0.5;
    int generic = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--min-s") == 0 && i + 1 < argc) {
            min_s = atof(argv[++i]);
        } else if (strcmp(argv[i], "--no-generic") == 0) {
            generic = 0;
        } else {
            fprintf(stderr, "usage: bench_gemm [--min-s S] [--no-generic]\n");
            return 2;
        }
    }
    openblas_set_num_threads(1);
    printf("OpenBLAS %s, core %s; our best path: %s\n", openblas_get_config(),
           openblas_get_corename(), imc_gemm_path_name(imc_gemm_path_best()));
    printf("    M     N     K |  GFLOP/s: blas     avx2     vnni  generic | avx2/blas vnni/blas "
           "gen/blas (time) | paths same bits\n");
    // the last two: absorbed MLA attention's scores (256 query rows × 512 keys × 576) and
    // its weighted latent sum (the same rows × 512 latent columns × 512 keys, B packed by key)
    const struct shape shapes[] = {{1, 2048, 2048},   {8, 2048, 2048},   {64, 2048, 2048},
                                   {512, 2048, 2048}, {512, 7168, 2048}, {256, 512, 576},
                                   {256, 512, 512}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        bench_shape(&shapes[i], min_s, generic);
    }
    const enum imc_type types[] = {IMC_TYPE_Q8_0, IMC_TYPE_F16};
    for (size_t i = 0; i < 2; i++) {
        for (int t = 1; t <= 2; t++) {
            bench_matmul(types[i], t, min_s);
        }
    }
    return 0;
}
