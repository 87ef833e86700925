/*
 * bench/bench_reduce: time of the rank-ordered reduction (mpi/reduce.h) of one large array per
 * rank to rank 0, against MPI_Reduce (unordered) as a baseline, and of the gather the imatrix
 * job does at its checkpoints and at the end (coordinator/imatrix_dist.c: every owner sends its
 * disjoint part of the totals to rank 0, point to point): the array is cut into one part per
 * rank and rank 0 receives them. Not a test (STYLE b.1 bench/).
 *
 *   mpirun -n 4 bench_reduce [--bytes B] [--type f64|f32] [--reps R] [--chunk-mb M]
 *                            [--no-baseline]
 *
 * Defaults: 1 GiB per rank, f64, 3 repetitions, 4 MiB chunks. Every rank fills its array with
 * small integers (exact sums), rank 0 checks a sample of the result. Prints, on rank 0, the
 * minimum and mean time over the repetitions (the slowest rank of each) and the algorithm
 * bandwidth = array bytes / time (nccl-tests "algbw").
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/reduce.h"
#include "mpi/xfer.h"

struct opts {
    size_t bytes;  // per rank
    int f32;       // 1: floats, 0: doubles
    int reps;      // timed repetitions
    size_t chunk;  // bytes per chunk of imc_reduce
    int baseline;  // also time MPI_Reduce
};

static int parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){(size_t)1 << 30, 0, 3, (size_t)4 << 20, 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--bytes") == 0 && v) {
            o->bytes = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--type") == 0 && v) {
            o->f32 = strcmp(v, "f32") == 0;
            i++;
        } else if (strcmp(a, "--reps") == 0 && v) {
            o->reps = atoi(v);
            i++;
        } else if (strcmp(a, "--chunk-mb") == 0 && v) {
            o->chunk = strtoull(v, NULL, 10) << 20;
            i++;
        } else if (strcmp(a, "--no-baseline") == 0) {
            o->baseline = 0;
        } else {
            fprintf(stderr, "usage: bench_reduce [--bytes B] [--type f64|f32] [--reps R] "
                            "[--chunk-mb M] [--no-baseline]\n");
            return 2;
        }
    }
    return o->reps > 0 && o->bytes >= 8 && o->chunk >= 8 ? 0 : 2;
}

static void fill(void *buf, size_t n, int f32, int rank)
{
    for (size_t i = 0; i < n; i++) {
        double v = (double)((int)(i % 1000) + rank);
        if (f32) {
            ((float *)buf)[i] = (float)v;
        } else {
            ((double *)buf)[i] = v;
        }
    }
}

// Rank 0: checks a sample of the sum (exact: small integers).
static int check(const void *out, size_t n, int f32, int np)
{
    int bad = 0;
    for (size_t i = 0; i < n; i += n / 1000 + 1) {
        double want = (double)np * (double)(i % 1000) + (double)np * (np - 1) / 2;
        double got = f32 ? ((const float *)out)[i] : ((const double *)out)[i];
        bad += got != want;
    }
    return bad;
}

enum op { OP_IMC, OP_MPI, OP_GATHER };

// Part [*b, *e) (elements) of n that rank r owns in the gather.
static void part(size_t n, int np, int r, size_t *b, size_t *e)
{
    *b = n / (size_t)np * (size_t)r;
    *e = r + 1 == np ? n : n / (size_t)np * (size_t)(r + 1);
}

// The gather: rank 0 receives every other rank's part of the array into out.
static enum imc_status gather(struct imc_comm *c, const void *in, void *out, size_t n,
                              size_t esize)
{
    const int me = imc_comm_rank(c), np = imc_comm_size(c);
    size_t b, e;
    if (me != 0) {
        part(n, np, me, &b, &e);
        return imc_xfer_send_bytes(c, IMC_GROUP_WORLD, 0, 1, (const char *)in + b * esize,
                                   (e - b) * esize);
    }
    part(n, np, 0, &b, &e);
    memcpy(out, in, (e - b) * esize);
    for (int r = 1; r < np; r++) {
        part(n, np, r, &b, &e);
        IMC_TRY(imc_xfer_recv_bytes(c, IMC_GROUP_WORLD, r, 1, (char *)out + b * esize,
                                    (e - b) * esize));
    }
    return IMC_OK;
}

// One timed repetition; returns the slowest rank's seconds.
static double timed(struct imc_comm *c, const struct opts *o, const void *in, void *out,
                    size_t n, enum op op)
{
    if (imc_comm_barrier(c, IMC_GROUP_WORLD) != IMC_OK) {
        imc_fatal(c, IMC_ERR_MPI, "barrier");
    }
    double t0 = imc_clock_now();
    enum imc_status st = IMC_OK;
    const int mpi = op == OP_MPI;
    if (op == OP_GATHER) {
        st = gather(c, in, out, n, o->f32 ? sizeof(float) : sizeof(double));
    } else if (mpi) {
        int rc = MPI_Reduce(in, out, (int)n, o->f32 ? MPI_FLOAT : MPI_DOUBLE, MPI_SUM, 0,
                            MPI_COMM_WORLD);
        st = rc == MPI_SUCCESS ? IMC_OK : IMC_ERR_MPI;
    } else if (o->f32) {
        st = imc_reduce_sum_f32(c, IMC_GROUP_WORLD, in, out, n);
    } else {
        st = imc_reduce_sum_f64(c, IMC_GROUP_WORLD, in, out, n);
    }
    if (st != IMC_OK) {
        imc_fatal(c, st, op == OP_GATHER ? "gather" : mpi ? "MPI_Reduce" : "imc_reduce_sum");
    }
    double dt = imc_clock_now() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return dt;
}

// Rank 0 after a gather: part r holds rank r's values.
static int check_gather(const void *out, size_t n, int f32, int np)
{
    int bad = 0;
    for (size_t i = 0; i < n; i += n / 1000 + 1) {
        int r = 0;
        size_t b, e;
        for (part(n, np, r, &b, &e); i >= e; part(n, np, ++r, &b, &e)) {
        }
        double want = (double)((int)(i % 1000) + r);
        bad += (f32 ? ((const float *)out)[i] : ((const double *)out)[i]) != want;
    }
    return bad;
}

static void run(struct imc_comm *c, const struct opts *o, const void *in, void *out, size_t n,
                enum op op)
{
    int me = imc_comm_rank(c), np = imc_comm_size(c);
    double tmin = 1e300, tsum = 0;
    for (int r = 0; r < o->reps; r++) {
        if (me == 0) {
            memset(out, 0, o->bytes);
        }
        double dt = timed(c, o, in, out, n, op);
        tmin = dt < tmin ? dt : tmin;
        tsum += dt;
    }
    if (me == 0) {
        static const char *const names[] = {"imc_reduce_sum", "MPI_Reduce", "gather"};
        int bad = op == OP_GATHER ? check_gather(out, n, o->f32, np) : check(out, n, o->f32, np);
        printf("%-16s %10.3f %10.3f %10.2f   %s\n", names[op], tmin, tsum / o->reps,
               (double)o->bytes / tmin / 1e9, bad ? "WRONG" : "ok");
    }
}

int main(int argc, char **argv)
{
    struct imc_comm *c = NULL;
    if (imc_comm_init(&c, &argc, &argv) != IMC_OK) {
        return 1;
    }
    imc_comm_set_log_prefix(c);
    struct opts o;
    if (parse(argc, argv, &o) != 0) {
        imc_comm_free(c);
        return 2;
    }
    size_t esize = o.f32 ? sizeof(float) : sizeof(double);
    size_t n = o.bytes / esize;
    o.bytes = n * esize;
    imc_comm_set_chunk_bytes(c, o.chunk);
    int me = imc_comm_rank(c);
    void *in = malloc(o.bytes), *out = me == 0 ? malloc(o.bytes) : NULL;
    if (!in || (me == 0 && !out)) {
        imc_fatal(c, IMC_ERR_NOMEM, "allocating the benchmark arrays");
    }
    fill(in, n, o.f32, me);
    if (me == 0) {
        printf("# bench_reduce: %d ranks, %s, %zu elements (%.3f GiB) per rank, chunk %zu KiB, "
               "%d reps\n",
               imc_comm_size(c), o.f32 ? "f32" : "f64", n, (double)o.bytes / (1 << 30),
               o.chunk >> 10, o.reps);
        printf("# %-14s %10s %10s %10s   %s\n", "op", "min_s", "avg_s", "algbw_GB/s", "check");
    }
    run(c, &o, in, out, n, OP_IMC);
    if (o.baseline && n <= (size_t)INT32_MAX) {
        run(c, &o, in, out, n, OP_MPI);
    }
    run(c, &o, in, out, n, OP_GATHER);
    free(in);
    free(out);
    imc_comm_free(c);
    return 0;
}
