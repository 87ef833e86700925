/*
 * tests/mpi/test_connectivity: every pair of ranks exchanges a message (Open MPI's
 * connectivity_c), then the other transfers of mpi/xfer.h: tagged nonblocking messages matched
 * out of order, a buffer split into many messages, a length mismatch reported as IMC_ERR_MPI,
 * broadcast and all-to-all. Rank 0 prints "Connectivity test on N processes PASSED" when every
 * rank passed. Runs as a singleton too (every peer is the rank itself).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/xfer.h"
#include "tests/mpi/mpitest.h"

// The value of element i of the message from rank a to rank b: exact in float.
static float val(int a, int b, size_t i)
{
    return (float)(a * 1000 + b) + (float)(i % 64) / 64.0f;
}

static void fill(float *buf, size_t n, int a, int b)
{
    for (size_t i = 0; i < n; i++) {
        buf[i] = val(a, b, i);
    }
}

static int count_bad(const float *buf, size_t n, int a, int b)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad += buf[i] != val(a, b, i);
    }
    return bad;
}

// Each pair (i, j), i < j: i sends to j, j answers. Singleton: a message to itself.
static void test_pairs(const struct imc_comm *c)
{
    int me = imc_comm_rank(c), n = imc_comm_size(c);
    float out[8], in[8];
    int bad = 0;
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            if (me == i) {
                fill(out, 8, i, j);
                CHECK(imc_xfer_send(c, IMC_GROUP_WORLD, j, 1, out, 8) == IMC_OK, "send %d->%d", i,
                      j);
                CHECK(imc_xfer_recv(c, IMC_GROUP_WORLD, j, 1, in, 8) == IMC_OK, "recv %d<-%d", i,
                      j);
                bad += count_bad(in, 8, j, i);
            } else if (me == j) {
                CHECK(imc_xfer_recv(c, IMC_GROUP_WORLD, i, 1, in, 8) == IMC_OK, "recv %d<-%d", j,
                      i);
                bad += count_bad(in, 8, i, j);
                fill(out, 8, j, i);
                CHECK(imc_xfer_send(c, IMC_GROUP_WORLD, i, 1, out, 8) == IMC_OK, "send %d->%d", j,
                      i);
            }
        }
    }
    if (n == 1) {
        struct imc_xfer *x = NULL;
        fill(out, 8, 0, 0);
        CHECK(imc_xfer_isend(c, IMC_GROUP_WORLD, 0, 1, out, 8, &x) == IMC_OK, "self isend");
        CHECK(imc_xfer_recv(c, IMC_GROUP_WORLD, 0, 1, in, 8) == IMC_OK, "self recv");
        CHECK(imc_xfer_wait(x) == IMC_OK, "self wait");
        bad += count_bad(in, 8, 0, 0);
    }
    CHECK(bad == 0, "%d wrong values in pair messages", bad);
}

// Three tagged messages to the next rank, received into irecvs posted in reverse tag order and
// waited in yet another order: tags, not arrival, decide the match.
static void test_tags(const struct imc_comm *c)
{
    int me = imc_comm_rank(c), n = imc_comm_size(c);
    int next = (me + 1) % n, prev = (me + n - 1) % n;
    enum { T = 3, LEN = 100 };
    float out[T][LEN + T], in[T][LEN + T];
    struct imc_xfer *rx[T] = {0}, *tx[T] = {0};
    for (int t = T - 1; t >= 0; t--) {
        CHECK(imc_xfer_irecv(c, IMC_GROUP_WORLD, prev, imc_xfer_tag(c, 10 + t), in[t], LEN + t,
                             &rx[t]) == IMC_OK,
              "irecv tag %d", t);
    }
    for (int t = 0; t < T; t++) {
        fill(out[t], LEN + t, me, 100 + t);
        CHECK(imc_xfer_isend(c, IMC_GROUP_WORLD, next, imc_xfer_tag(c, 10 + t), out[t], LEN + t,
                             &tx[t]) == IMC_OK,
              "isend tag %d", t);
    }
    bool done = false;
    CHECK(imc_xfer_test(rx[1], &done) == IMC_OK, "test");
    int order[T] = {1, 2, 0};
    int bad = 0;
    for (int k = 0; k < T; k++) {
        int t = order[k];
        CHECK(imc_xfer_wait(rx[t]) == IMC_OK, "wait irecv tag %d", t);
        bad += count_bad(in[t], LEN + t, prev, 100 + t);
    }
    for (int t = 0; t < T; t++) {
        CHECK(imc_xfer_wait(tx[t]) == IMC_OK, "wait isend tag %d", t);
    }
    CHECK(bad == 0, "%d wrong values in tagged messages", bad);
    CHECK(imc_xfer_tag(c, (long)imc_comm_tag_ub(c) + 1 + 7) == 7, "tag wraps at tag_ub + 1");
}

// A log sink keeping the last line in user (a char[512]).
static void capture(enum imc_log_level level, const char *line, void *user)
{
    (void)level;
    snprintf(user, 512, "%s", line);
}

// A buffer larger than max_msg_bytes travels as several messages and arrives whole; a receive
// expecting more than was sent fails with IMC_ERR_MPI instead of returning garbage.
static void test_split_and_length(struct imc_comm *c)
{
    int me = imc_comm_rank(c), n = imc_comm_size(c);
    int next = (me + 1) % n, prev = (me + n - 1) % n;
    size_t len = 1001; // 63 messages of 16 floats
    float *out = malloc(len * sizeof(*out)), *in = calloc(len, sizeof(*in));
    imc_comm_set_max_msg_bytes(c, 16 * sizeof(float));
    struct imc_xfer *tx = NULL;
    fill(out, len, me, 7);
    CHECK(imc_xfer_isend(c, IMC_GROUP_WORLD, next, 3, out, len, &tx) == IMC_OK, "isend split");
    CHECK(imc_xfer_recv(c, IMC_GROUP_WORLD, prev, 3, in, len) == IMC_OK, "recv split");
    CHECK(imc_xfer_wait(tx) == IMC_OK, "wait split");
    CHECK(count_bad(in, len, prev, 7) == 0, "split message content");
    imc_comm_set_max_msg_bytes(c, (size_t)1 << 30);

    CHECK(imc_xfer_isend(c, IMC_GROUP_WORLD, next, 4, out, 5, &tx) == IMC_OK, "isend short");
    char line[512] = "";
    imc_log_set_sink(capture, line);
    CHECK(imc_xfer_recv(c, IMC_GROUP_WORLD, prev, 4, in, 10) == IMC_ERR_MPI,
          "5 floats received where 10 were expected must fail");
    CHECK(strstr(line, "expected 10 floats in message 1 of 1, got 5") != NULL, "message: %s",
          line);
    CHECK(imc_xfer_wait(tx) == IMC_OK, "wait short");
    CHECK(imc_xfer_send(c, IMC_GROUP_WORLD, n, 4, out, 1) == IMC_ERR_ARG, "peer out of range");
    CHECK(strstr(line, "is not a rank of the world group") != NULL, "message: %s", line);
    CHECK(imc_xfer_send(c, IMC_GROUP_WORLD, 0, -1, out, 1) == IMC_ERR_ARG, "negative tag");
    CHECK(strstr(line, "tag -1 outside") != NULL, "message: %s", line);
    imc_log_set_sink(NULL, NULL);
    free(out);
    free(in);
}

static void test_bcast_alltoall(const struct imc_comm *c)
{
    int me = imc_comm_rank(c), n = imc_comm_size(c);
    char text[300];
    for (int root = 0; root < n; root++) {
        memset(text, 0, sizeof(text));
        if (me == root) {
            snprintf(text, sizeof(text), "broadcast from rank %d of %d", root, n);
        }
        CHECK(imc_xfer_bcast(c, IMC_GROUP_WORLD, root, text, sizeof(text)) == IMC_OK, "bcast");
        char want[300];
        snprintf(want, sizeof(want), "broadcast from rank %d of %d", root, n);
        CHECK(strcmp(text, want) == 0, "bcast from %d got '%s'", root, text);
    }
    size_t un = (unsigned)n;
    size_t *sc = calloc(un, sizeof(*sc)), *rc = calloc(un, sizeof(*rc));
    size_t stot = 0, rtot = 0;
    for (int j = 0; j < n; j++) {
        sc[j] = (size_t)(j + 1 + me % 2); // what this rank sends to j
        rc[j] = (size_t)(me + 1 + j % 2); // what j sends to this rank
        stot += sc[j];
        rtot += rc[j];
    }
    float *send = malloc(stot * sizeof(*send)), *recv = malloc(rtot * sizeof(*recv));
    for (int j = 0, off = 0; j < n; off += (int)sc[j], j++) {
        fill(send + off, sc[j], me, j);
    }
    CHECK(imc_xfer_alltoallv(c, IMC_GROUP_WORLD, send, sc, recv, rc) == IMC_OK, "alltoallv");
    int bad = 0;
    for (int j = 0, off = 0; j < n; off += (int)rc[j], j++) {
        bad += count_bad(recv + off, rc[j], j, me);
    }
    CHECK(bad == 0, "%d wrong values after all-to-all", bad);
    free(send);
    free(recv);
    free(sc);
    free(rc);
}

int main(int argc, char **argv)
{
    struct imc_comm *c = mpitest_init(&argc, &argv);
    imc_comm_set_timeout(c, 60);
    test_pairs(c);
    test_tags(c);
    test_split_and_length(c);
    test_bcast_alltoall(c);
    int n = imc_comm_size(c), me = imc_comm_rank(c);
    int failed = check_g.failed;
    if (imc_reduce_errors(c, &failed) != IMC_OK) {
        imc_fatal(c, IMC_ERR_MPI, "agreeing on the failure count");
    }
    if (me == 0 && failed == 0) {
        printf("Connectivity test on %d processes PASSED\n", n);
    }
    return mpitest_finish(c);
}
