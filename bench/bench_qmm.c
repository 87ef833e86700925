/*
 * bench/bench_qmm: imc_cpu_matmul with quantized weights, F32 mode (dequantize + f32 GEMM) against
 * Q8 mode (8-bit activations, integer dot products: kernels/cpu/qmm.h), side by side in one run,
 * for every weight type of the integer route (Q8_0, Q4_0, IQ4_NL, the K-quants, IQ4_XS; a 256-block
 * type is skipped when --in is not a multiple of 256) and BF16 (q8 mode: bf16 activations,
 * kernels/cpu/bmm.h), and token counts from a decode step to a prompt batch. Prints GMAC/s of each and the ratio q8 / f32. A benchmark, not a test.
 *
 *   bench_qmm [--out 2048] [--in 2048] [--threads 1] [--reps 3] [--type NAME (default: all)]
 *             [--tokens 1,8,64,512] [--cpu-clock] [--path generic|avx2|vnni (default: best)]
 * --tokens: the token counts (up to 16 of them, each 1..4096), in the order given.
 * --cpu-clock times by the process's CPU clock instead of the wall clock: steadier on a machine
 * shared with other jobs, meaningful with --threads 1 only (the pool's threads add up).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "kernels/cpu/gemm.h"
#include "kernels/kernels.h"
#include "types/types.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define MAX_TOKS 16

// The token counts of a comma-separated list into toks[MAX_TOKS]; returns how many, 0 when the
// list is malformed.
static int parse_tokens(const char *s, int64_t *toks)
{
    int k = 0;
    while (k < MAX_TOKS) {
        char *end;
        const long long v = strtoll(s, &end, 10);
        if (end == s || v < 1 || v > 4096 || (*end != ',' && *end != '\0')) {
            return 0;
        }
        toks[k++] = v;
        if (*end == '\0') {
            return k;
        }
        s = end + 1;
    }
    return 0;
}

static double gmacs(bool cpu, struct imc_exec *ex, enum imc_matmul_mode mode, enum imc_type type,
                    const uint8_t *w, int64_t n_out, int64_t n_in, const float *x, int64_t n_tok,
                    float *y, int reps)
{
    imc_exec_set_matmul(ex, mode);
    if (imc_cpu_matmul(ex, y, n_out, w, type, n_out, n_in, x, n_in, n_tok) != IMC_OK) {
        return 0; // warm-up; an error was logged
    }
    const double t0 = cpu ? cpu_now() : imc_clock_now();
    for (int k = 0; k < reps; k++) {
        imc_cpu_matmul(ex, y, n_out, w, type, n_out, n_in, x, n_in, n_tok);
    }
    const double t = ((cpu ? cpu_now() : imc_clock_now()) - t0) / reps;
    return (double)n_out * (double)n_in * (double)n_tok / t / 1e9;
}

int main(int argc, char **argv)
{
    int64_t n_out = 2048, n_in = 2048;
    int threads = 1, reps = 3;
    const char *only = NULL, *path = NULL;
    bool cpu = false;
    int64_t toks[MAX_TOKS] = {1, 8, 64, 512};
    int n_toks = 4;
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "--cpu-clock") == 0) {
            cpu = true;
            i--; // no value
        } else if (i + 1 >= argc) {
            fprintf(stderr, "bench_qmm: option '%s' needs a value\n", argv[i]);
            return 2;
        } else if (strcmp(argv[i], "--out") == 0) {
            n_out = atoll(argv[i + 1]);
        } else if (strcmp(argv[i], "--in") == 0) {
            n_in = atoll(argv[i + 1]);
        } else if (strcmp(argv[i], "--threads") == 0) {
            threads = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--reps") == 0) {
            reps = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--tokens") == 0) {
            n_toks = parse_tokens(argv[i + 1], toks);
            if (n_toks == 0) {
                fprintf(stderr, "bench_qmm: --tokens wants up to %d counts 1..4096, as 1,8,64\n",
                        MAX_TOKS);
                return 2;
            }
        } else if (strcmp(argv[i], "--type") == 0) {
            only = argv[i + 1];
        } else if (strcmp(argv[i], "--path") == 0) {
            path = argv[i + 1];
        } else {
            fprintf(stderr, "bench_qmm: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    int64_t max_tok = 1;
    for (int k = 0; k < n_toks; k++) {
        max_tok = toks[k] > max_tok ? toks[k] : max_tok;
    }
    float *wf = malloc((size_t)(n_out * n_in) * sizeof(float));
    float *x = malloc((size_t)(max_tok * n_in) * sizeof(float));
    float *y = malloc((size_t)(max_tok * n_out) * sizeof(float));
    struct imc_exec *ex = NULL;
    if (!wf || !x || !y || n_in % 32 != 0 || imc_exec_init(&ex, threads) != IMC_OK) {
        fprintf(stderr, "bench_qmm: bad sizes (--in a multiple of 32) or out of memory\n");
        return 1;
    }
    if (path) {
        enum imc_gemm_path p = IMC_GEMM_GENERIC;
        while (p <= IMC_GEMM_VNNI && strcmp(imc_gemm_path_name(p), path) != 0) {
            p++;
        }
        if (p > IMC_GEMM_VNNI || imc_exec_set_gemm_path(ex, p) != IMC_OK) {
            fprintf(stderr, "bench_qmm: --path '%s': generic, avx2 or vnni, as the CPU allows\n",
                    path);
            return 2;
        }
    }
    uint64_t s = 1;
    for (int64_t i = 0; i < n_out * n_in; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        wf[i] = (float)((double)(s >> 40) / (double)(1ull << 24) - 0.5);
    }
    for (int64_t i = 0; i < max_tok * n_in; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / (double)(1ull << 24) - 0.5);
    }
    printf("W %lld x %lld, %d thread(s), GEMM path %s, %s clock\n", (long long)n_out,
           (long long)n_in, threads, imc_gemm_path_name(imc_exec_gemm_path(ex)),
           cpu ? "CPU" : "wall");
    printf("%6s %7s %12s %12s %8s\n", "type", "tokens", "f32 GMAC/s", "q8 GMAC/s", "q8/f32");
    const enum imc_type types[] = {IMC_TYPE_Q8_0, IMC_TYPE_Q4_0,   IMC_TYPE_Q5_0, IMC_TYPE_IQ4_NL,
                                   IMC_TYPE_Q2_K, IMC_TYPE_Q3_K,   IMC_TYPE_Q4_K, IMC_TYPE_Q5_K,
                                   IMC_TYPE_Q6_K, IMC_TYPE_IQ4_XS, IMC_TYPE_BF16};
    for (int ti = 0; ti < (int)(sizeof(types) / sizeof(types[0])); ti++) {
        const struct imc_type_traits *tr = imc_type_traits((uint32_t)types[ti]);
        if (n_in % tr->block_size != 0 || (only && strcmp(only, tr->name) != 0)) {
            continue;
        }
        uint64_t rb = 0;
        imc_type_row_bytes((uint32_t)types[ti], n_in, &rb);
        uint8_t *w = malloc((size_t)(rb * (uint64_t)n_out));
        for (int64_t r = 0; w && r < n_out; r++) {
            tr->from_float(wf + r * n_in, w + (uint64_t)r * rb, n_in, NULL);
        }
        for (int k = 0; w && k < n_toks; k++) {
            const double f =
                gmacs(cpu, ex, IMC_MATMUL_F32, types[ti], w, n_out, n_in, x, toks[k], y, reps);
            const double q =
                gmacs(cpu, ex, IMC_MATMUL_Q8, types[ti], w, n_out, n_in, x, toks[k], y, reps);
            printf("%6s %7lld %12.1f %12.1f %8.2f\n", tr->name, (long long)toks[k], f, q,
                   f > 0 ? q / f : 0.0);
        }
        free(w);
    }
    imc_exec_free(ex);
    free(wf);
    free(x);
    free(y);
    return 0;
}
