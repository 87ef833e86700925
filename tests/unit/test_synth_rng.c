/*
 * tests/unit/test_synth_rng: the synthetic models' random numbers (model/synth_rng.c). The values
 * of imc_synth_randn are the tensor stream's values in order, bit for bit, for every thread
 * count: each thread starts from the stream's state jumped ahead to its share's first draw
 * (powers of the state step's GF(2) matrix), so a wrong jump moves a whole share.
 *   - 3·2^20 + 17 values (three threads at most: one per 2^20), by 1, 2, 3 and 8 threads,
 *     against imc_synth_rng_normal called in order;
 *   - a short tensor (below 2^20 values: one thread whatever is asked) and n = 0.
 */
#include <stdlib.h>
#include <string.h>

#include "model/synth_priv.h"
#include "tests/check.h"

static int64_t differ(const float *a, const float *b, int64_t n)
{
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++) {
        d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    }
    return d;
}

static void one(int64_t n, uint64_t seed, const char *name)
{
    float *want = malloc(sizeof(float) * (size_t)(n + 1)),
          *got = malloc(sizeof(float) * (size_t)(n + 1));
    struct imc_synth_rng r;
    imc_synth_rng_seed(&r, seed, name);
    for (int64_t i = 0; i < n; i++) {
        want[i] = imc_synth_rng_normal(&r, 0.5);
    }
    const int threads[4] = {1, 2, 3, 8};
    for (int t = 0; t < 4; t++) {
        memset(got, 0xA5, sizeof(float) * (size_t)(n + 1));
        imc_synth_randn(got, n, seed, name, 0.5, threads[t]);
        const int64_t d = differ(got, want, n);
        CHECK(d == 0, "%s, %lld values, %d threads: %lld differ from the stream in order", name,
              (long long)n, threads[t], (long long)d);
        const uint8_t *end = (const uint8_t *)&got[n];
        CHECK(end[0] == 0xA5 && end[3] == 0xA5, "%s, %d threads: wrote past the %lld values", name,
              threads[t], (long long)n);
    }
    free(want);
    free(got);
}

int main(void)
{
    one(3 * (1 << 20) + 17, 0, "blk.0.ffn_up_exps.weight");
    one(1000, 7, "token_embd.weight");
    one(0, 1, "empty");
    return check_summary();
}
