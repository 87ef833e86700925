/*
 * model/synth_rng: the synthetic models' random numbers (model/synth_priv.h imc_synth_randn):
 * a xoshiro256** stream per tensor, seeded by splitmix64(seed ^ hash(name)), four draws per
 * value (Irwin-Hall(4), normalized to unit variance: close to Gaussian, bounded, no libm).
 *
 * Threads: a tensor's values are one stream, value i taking draws 4i .. 4i + 3. xoshiro256's
 * state step is linear over GF(2) (XORs, shifts and a rotation of the 256 state bits; only the
 * output is not), so the state after k steps is M^k times the first one. A thread that fills
 * values [a, b) starts from M^(4a)·s0, built from M^(2^j) (repeated squaring of M's 256 columns),
 * and then draws in order: every thread count gives the stream's values bit for bit.
 */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "model/synth_priv.h"

enum { MIN_PER_THREAD = 1 << 20, MAX_THREADS = 256, MAX_POW = 64 };

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void imc_synth_rng_seed(struct imc_synth_rng *r, uint64_t seed, const char *name)
{
    uint64_t x = seed ^ imc_synth_hash(name, strlen(name));
    for (int i = 0; i < 4; i++) {
        r->s[i] = splitmix64(&x);
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

// The state step (linear over GF(2)).
static void step(uint64_t *s)
{
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
}

static uint64_t next(struct imc_synth_rng *r)
{
    const uint64_t result = rotl(r->s[1] * 5, 7) * 9;
    step(r->s);
    return result;
}

static double unif(struct imc_synth_rng *r) // [0, 1), 53 bits
{
    return (double)(next(r) >> 11) * 0x1p-53;
}

float imc_synth_rng_normal(struct imc_synth_rng *r, double std)
{
    double s = unif(r) + unif(r) + unif(r) + unif(r);
    return (float)((s - 2.0) * 1.7320508075688772 * std);
}

// A linear map of the 256 state bits, by the images of the unit states (bit i: word i / 64).
struct jmat {
    uint64_t col[256][4];
};

// out = m·v.
static void mat_vec(const struct jmat *m, const uint64_t *v, uint64_t *out)
{
    uint64_t o[4] = {0, 0, 0, 0};
    for (int i = 0; i < 256; i++) {
        if (v[i / 64] >> (i % 64) & 1) {
            for (int w = 0; w < 4; w++) {
                o[w] ^= m->col[i][w];
            }
        }
    }
    memcpy(out, o, sizeof(o));
}

// pow[j] = M^(2^j) for j < n (n <= MAX_POW).
static void powers(struct jmat *pow, int n)
{
    for (int i = 0; i < 256; i++) {
        memset(pow[0].col[i], 0, sizeof(pow[0].col[i]));
        pow[0].col[i][i / 64] = 1ull << (i % 64);
        step(pow[0].col[i]);
    }
    for (int j = 1; j < n; j++) {
        for (int i = 0; i < 256; i++) {
            mat_vec(&pow[j - 1], pow[j - 1].col[i], pow[j].col[i]);
        }
    }
}

// r advanced by k steps (k < 2^n_pow).
static void jump(struct imc_synth_rng *r, const struct jmat *pow, uint64_t k)
{
    for (int j = 0; k; j++, k >>= 1) {
        if (k & 1) {
            mat_vec(&pow[j], r->s, r->s);
        }
    }
}

struct fill {
    float *p;
    int64_t a, b; // values [a, b)
    struct imc_synth_rng r;
    double std;
};

static void *fill_run(void *arg)
{
    struct fill *f = arg;
    for (int64_t i = f->a; i < f->b; i++) {
        f->p[i] = imc_synth_rng_normal(&f->r, f->std);
    }
    return NULL;
}

void imc_synth_parallel(int n, void *(*fn)(void *), void *args, size_t size)
{
    pthread_t th[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    n = n > MAX_THREADS ? MAX_THREADS : n;
    for (int i = 1; i < n; i++) {
        started[i] = pthread_create(&th[i], NULL, fn, (char *)args + (size_t)i * size) == 0;
    }
    for (int i = 0; i < n; i++) {
        if (!started[i]) {
            fn((char *)args + (size_t)i * size);
        }
    }
    for (int i = 1; i < n; i++) {
        if (started[i]) {
            pthread_join(th[i], NULL);
        }
    }
}

void imc_synth_randn(float *p, int64_t n, uint64_t seed, const char *name, double std,
                     int n_threads)
{
    struct imc_synth_rng r0;
    imc_synth_rng_seed(&r0, seed, name);
    int nt = n_threads < 1 ? 1 : n_threads > MAX_THREADS ? MAX_THREADS : n_threads;
    nt = n / MIN_PER_THREAD < nt ? (int)(n / MIN_PER_THREAD) : nt;
    int n_pow = 0;
    while (n_pow < MAX_POW - 2 && ((uint64_t)4 * (uint64_t)n) >> n_pow) {
        n_pow++;
    }
    struct jmat *pow = nt > 1 ? malloc(sizeof(*pow) * (size_t)n_pow) : NULL;
    if (!pow) { // one thread (or no memory for the jumps): the stream in order
        struct fill f = {p, 0, n, r0, std};
        fill_run(&f);
        return;
    }
    powers(pow, n_pow);
    struct fill f[MAX_THREADS];
    for (int i = 0; i < nt; i++) {
        f[i] = (struct fill){p, n * i / nt, n * (i + 1) / nt, r0, std};
        jump(&f[i].r, pow, 4 * (uint64_t)f[i].a);
    }
    imc_synth_parallel(nt, fill_run, f, sizeof(f[0]));
    free(pow);
}
