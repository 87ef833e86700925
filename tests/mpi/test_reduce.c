/*
 * tests/mpi/test_reduce: mpi/reduce.h.
 *
 * (1) Exactness (nccl-tests "verifiable"): 12 virtual contributors with values k * 2^-e (|k| <=
 *     1000, e < 20) are spread over the ranks; every partial and total sum is exact, so the
 *     result must equal the sequential sum bit for bit, for any number of ranks. Rank 0 prints
 *     "exact digest <hex>"; test_reduce.sh checks the digest is the same for N = 1, 2, 4.
 * (2) Order: arbitrary doubles of mixed magnitudes, where addition order changes the bits. The
 *     result must equal ((x0 + x1) + x2) + ... computed on rank 0 from the same generator; the
 *     reverse order must differ somewhere (the data can tell orders apart) when N >= 3 and
 *     n >= 100.
 * (3) floats, in-place on the root, one chunk and many chunks (plus a short last chunk), n = 0,
 *     a reduction inside layout sub-groups, and the all-reduce of error counts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/reduce.h"
#include "tests/mpi/mpitest.h"

enum { CONTRIBUTORS = 12 };

// Exactly representable value of contributor v at element i.
static double exact_val(int v, size_t i)
{
    long k = (long)((v * 7919L + (long)i * 104729L) % 2001) - 1000;
    return ldexp((double)k, -(int)(i % 20));
}

// splitmix64: a reproducible value stream per (rank, element).
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// A double of rank r at element i with a random sign, mantissa and exponent in [-4, 4].
static double messy_val(int r, size_t i)
{
    uint64_t h = mix(((uint64_t)r << 40) ^ i);
    double m = (double)(h >> 11) / 9007199254740992.0 + 0.5;
    int e = (int)((h >> 3) % 9) - 4;
    return (h & 1 ? -1.0 : 1.0) * ldexp(m, e);
}

static uint64_t digest(const double *x, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *p = (const unsigned char *)x;
    for (size_t i = 0; i < n * sizeof(*x); i++) {
        h = (h ^ p[i]) * 1099511628211ULL;
    }
    return h;
}

static void test_exact(const struct imc_comm *c, size_t n)
{
    int me = imc_comm_rank(c), np = imc_comm_size(c);
    double *in = calloc(n, sizeof(*in)), *out = calloc(n, sizeof(*out));
    for (int v = me; v < CONTRIBUTORS; v += np) {
        for (size_t i = 0; i < n; i++) {
            in[i] += exact_val(v, i);
        }
    }
    CHECK(imc_reduce_sum_f64(c, IMC_GROUP_WORLD, in, out, n) == IMC_OK, "reduce exact");
    if (me == 0) {
        double *ref = calloc(n, sizeof(*ref));
        for (int v = 0; v < CONTRIBUTORS; v++) {
            for (size_t i = 0; i < n; i++) {
                ref[i] += exact_val(v, i);
            }
        }
        CHECK(memcmp(out, ref, n * sizeof(*out)) == 0, "exact sum differs (n %zu)", n);
        printf("exact digest %016llx (n %zu)\n", (unsigned long long)digest(out, n), n);
        free(ref);
    }
    free(in);
    free(out);
}

// Rank-order and reverse-order sums of messy_val over np ranks.
static void messy_refs(int np, size_t n, double *fwd, double *rev)
{
    for (size_t i = 0; i < n; i++) {
        fwd[i] = messy_val(0, i);
        rev[i] = messy_val(np - 1, i);
        for (int r = 1; r < np; r++) {
            fwd[i] = fwd[i] + messy_val(r, i);
            rev[i] = rev[i] + messy_val(np - 1 - r, i);
        }
    }
}

static void test_order(const struct imc_comm *c, size_t n, int in_place)
{
    int me = imc_comm_rank(c), np = imc_comm_size(c);
    double *in = malloc(n * sizeof(*in)), *out = malloc(n * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        in[i] = messy_val(me, i);
    }
    double *dst = in_place ? in : out;
    CHECK(imc_reduce_sum_f64(c, IMC_GROUP_WORLD, in, dst, n) == IMC_OK, "reduce order");
    if (me == 0) {
        double *fwd = malloc(n * sizeof(*fwd)), *rev = malloc(n * sizeof(*rev));
        messy_refs(np, n, fwd, rev);
        CHECK(memcmp(dst, fwd, n * sizeof(*dst)) == 0,
              "sum is not in rank order (n %zu, in place %d)", n, in_place);
        if (np >= 3 && n >= 100) {
            CHECK(memcmp(fwd, rev, n * sizeof(*fwd)) != 0, "data cannot tell orders apart");
        }
        free(fwd);
        free(rev);
    }
    free(in);
    free(out);
}

static void test_f32(const struct imc_comm *c, size_t n)
{
    int me = imc_comm_rank(c), np = imc_comm_size(c);
    float *in = malloc(n * sizeof(*in)), *out = malloc(n * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        in[i] = (float)messy_val(me, i);
    }
    CHECK(imc_reduce_sum_f32(c, IMC_GROUP_WORLD, in, out, n) == IMC_OK, "reduce f32");
    if (me == 0) {
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            float s = (float)messy_val(0, i);
            for (int r = 1; r < np; r++) {
                s = s + (float)messy_val(r, i);
            }
            bad += memcmp(&s, &out[i], sizeof(s)) != 0;
        }
        CHECK(bad == 0, "%d float sums not in rank order", bad);
    }
    free(in);
    free(out);
}

// Reduction over the replica groups of layout pp=2, dp=np/2: group rank 0 of each replica group
// (world ranks 0 and 1) gets the sum over its members, in replica order.
static void test_subgroup(struct imc_comm *c)
{
    int me = imc_comm_rank(c), np = imc_comm_size(c);
    if (np % 2 != 0) {
        return;
    }
    CHECK(imc_comm_split_layout(c, 2, 1, np / 2) == IMC_OK, "layout pp=2,dp=%d", np / 2);
    size_t n = 777;
    double *in = malloc(n * sizeof(*in)), *out = malloc(n * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        in[i] = messy_val(me, i);
    }
    CHECK(imc_reduce_sum_f64(c, IMC_GROUP_REPLICA, in, out, n) == IMC_OK, "reduce replica");
    if (imc_comm_group_rank(c, IMC_GROUP_REPLICA) == 0) {
        int bad = 0, stage = me % 2;
        for (size_t i = 0; i < n; i++) {
            double s = messy_val(stage, i);
            for (int d = 1; d < np / 2; d++) {
                s = s + messy_val(d * 2 + stage, i);
            }
            bad += memcmp(&s, &out[i], sizeof(s)) != 0;
        }
        CHECK(bad == 0, "%d replica sums wrong on world rank %d", bad, me);
    }
    free(in);
    free(out);
}

static void test_errors(const struct imc_comm *c)
{
    int np = imc_comm_size(c);
    int count = imc_comm_rank(c) + 1;
    CHECK(imc_reduce_errors(c, &count) == IMC_OK, "reduce errors");
    CHECK(count == np * (np + 1) / 2, "error count %d, expected %d", count, np * (np + 1) / 2);
}

int main(int argc, char **argv)
{
    struct imc_comm *c = mpitest_init(&argc, &argv);
    imc_comm_set_timeout(c, 60);
    test_exact(c, 100003); // default 4 MiB chunks: one chunk
    test_order(c, 10, 0);
    test_order(c, 0, 0);
    test_errors(c);
    imc_comm_set_chunk_bytes(c, 8 * 1000); // 1000 doubles or 2000 floats per chunk
    test_exact(c, 100003);                 // 101 chunks, the last 3 elements
    test_order(c, 54321, 0);
    test_order(c, 54321, 1);
    test_order(c, 1000, 0); // exactly one chunk
    test_f32(c, 12345);
    test_subgroup(c);
    imc_comm_set_chunk_bytes(c, (size_t)4 << 20);
    test_order(c, (size_t)1 << 20, 0); // 8 MiB: two default chunks
    return mpitest_finish(c);
}
