/*
 * bench/bench_types: how fast each tensor type reaches the f32 matmul (not a test). For every
 * type of the table: a 512 x 4096 weight matrix tiled from the reference's golden rows of the
 * type (tests/data/types, under $IMC_SOURCE_DIR or the current folder), decoded whole
 * (ns per element, best of 5), and multiplied with 1 and 64 tokens on one thread (GFLOP/s,
 * best of 3); the last column is the 64-token matmul's speed relative to q4_k's.
 *   bench_types [TYPE ...]      (default: every type)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "kernels/kernels.h"
#include "tests/golden.h"
#include "types/types.h"

enum { N_IN = 4096, N_OUT = 512, N_TOK = 64 };

struct speed {
    double ns_per_elem, gflops1, gflops64;
};

static bool measure(const char *dir, uint32_t id, struct imc_exec *ex, struct speed *sp)
{
    const struct imc_type_traits *tr = imc_type_traits(id);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.golden", dir, tr->name);
    struct golden g;
    if (!read_golden(path, &g)) {
        return false;
    }
    uint64_t size = 0;
    uint8_t *w = golden_tile(&g, N_IN, N_OUT, &size);
    float *deq = malloc(sizeof(float) * N_IN * N_OUT);
    float *x = malloc(sizeof(float) * N_IN * N_TOK), *y = malloc(sizeof(float) * N_OUT * N_TOK);
    bool ok = w && deq && x && y;
    for (int64_t i = 0; ok && i < N_IN * N_TOK; i++) {
        x[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    }
    double best = 1e30, b1 = 1e30, b64 = 1e30;
    for (int rep = 0; ok && rep < 5; rep++) {
        double t0 = imc_clock_now();
        imc_type_decode_rows(tr, w, 0, N_OUT, N_IN, deq);
        double t = imc_clock_now() - t0;
        best = t < best ? t : best;
    }
    for (int rep = 0; ok && rep < 3; rep++) {
        double t0 = imc_clock_now();
        ok = imc_cpu_matmul(ex, y, N_OUT, w, (enum imc_type)id, N_OUT, N_IN, x, N_IN, 1) == IMC_OK;
        double t1 = imc_clock_now();
        ok = ok && imc_cpu_matmul(ex, y, N_OUT, w, (enum imc_type)id, N_OUT, N_IN, x, N_IN,
                                  N_TOK) == IMC_OK;
        double t2 = imc_clock_now();
        b1 = t1 - t0 < b1 ? t1 - t0 : b1;
        b64 = t2 - t1 < b64 ? t2 - t1 : b64;
    }
    sp->ns_per_elem = best * 1e9 / ((double)N_IN * N_OUT);
    sp->gflops1 = 2.0 * N_IN * N_OUT / b1 / 1e9;
    sp->gflops64 = 2.0 * N_IN * N_OUT * N_TOK / b64 / 1e9;
    free(w);
    free(deq);
    free(x);
    free(y);
    free(g.bytes);
    free(g.values);
    return ok;
}

int main(int argc, char **argv)
{
    const char *src = getenv("IMC_SOURCE_DIR");
    char dir[2048];
    snprintf(dir, sizeof(dir), "%s/tests/data/types", src ? src : ".");
    struct imc_exec *ex = NULL;
    if (imc_exec_init(&ex, 1) != IMC_OK) {
        return 1;
    }
    struct speed ref = {0};
    if (!measure(dir, IMC_TYPE_Q4_K, ex, &ref)) {
        fprintf(stderr, "bench_types: no golden files in %s (set IMC_SOURCE_DIR)\n", dir);
        return 1;
    }
    printf("%-11s %9s %11s %12s %14s\n", "type", "ns/elem", "GFLOP/s x1", "GFLOP/s x64",
           "x64 vs q4_k");
    for (uint32_t id = 1; id < IMC_TYPE_MAX_ID; id++) {
        const struct imc_type_traits *tr = imc_type_traits(id);
        bool want = tr != NULL && argc == 1;
        for (int a = 1; tr && a < argc; a++) {
            want = want || strcmp(argv[a], tr->name) == 0;
        }
        struct speed sp;
        if (want && measure(dir, id, ex, &sp)) {
            printf("%-11s %9.3f %11.2f %12.2f %13.2fx\n", tr->name, sp.ns_per_elem, sp.gflops1,
                   sp.gflops64, sp.gflops64 / ref.gflops64);
        }
    }
    imc_exec_free(ex);
    return 0;
}
