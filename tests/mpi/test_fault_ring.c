/*
 * tests/mpi/test_fault_ring: the fault paths of mpi/fatal.h (DESIGN.md §6 "a dead rank aborts the
 * job cleanly (no hang)"). Ranks pass a token around a ring for 10 rounds; with a mode argument,
 * rank 1 fails in round 3:
 *   kill    raise(SIGKILL) mid-exchange (mpirun notices and ends the job)
 *   hang    stops forever without dying (only our watchdog, IMC_MPI_TIMEOUT, can end the job)
 *   fatal   imc_fatal(c, IMC_ERR_IO, "reading shard 3 of the weights")
 *   assert  a failing IMC_ASSERT (the abort hook must turn it into MPI_Abort)
 * test_fault.sh runs each mode on 3 ranks and checks the job ends non-zero within 30 s with a
 * message naming the rank. Without an argument (ctest runs it as a singleton) it runs the clean
 * ring and checks IMC_MPI_TIMEOUT parsing and a second imc_comm_init beside a running MPI.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi/xfer.h"
#include "tests/mpi/mpitest.h"

static void fail_now(const struct imc_comm *c, const char *mode)
{
    fprintf(stderr, "test_fault: rank %d fails now (%s)\n", imc_comm_rank(c), mode);
    fflush(stderr);
    if (strcmp(mode, "kill") == 0) {
        raise(SIGKILL);
    } else if (strcmp(mode, "hang") == 0) {
        for (;;) {
            pause();
        }
    } else if (strcmp(mode, "fatal") == 0) {
        imc_fatal(c, IMC_ERR_IO, "reading shard 3 of the weights");
    } else if (strcmp(mode, "assert") == 0) {
        int round = 3;
        IMC_ASSERT(round != 3);
    }
}

static void ring(const struct imc_comm *c, const char *mode)
{
    int me = imc_comm_rank(c), n = imc_comm_size(c);
    int next = (me + 1) % n, prev = (me + n - 1) % n;
    for (int round = 0; round < 10; round++) {
        if (round == 3 && me == 1 && mode) {
            fail_now(c, mode);
        }
        float out = (float)(me * 100 + round), in = -1;
        struct imc_xfer *x = NULL;
        CHECK(imc_xfer_isend(c, IMC_GROUP_WORLD, next, round, &out, 1, &x) == IMC_OK, "isend");
        enum imc_status st = imc_xfer_recv(c, IMC_GROUP_WORLD, prev, round, &in, 1);
        if (st != IMC_OK) {
            imc_fatal(c, st, "ring exchange");
        }
        CHECK(imc_xfer_wait(x) == IMC_OK, "wait");
        CHECK(in == (float)(prev * 100 + round), "round %d: got %g", round, in);
    }
}

static void capture(enum imc_log_level level, const char *line, void *user)
{
    (void)level;
    snprintf(user, 256, "%s", line);
}

// A second communicator set beside the running MPI: parses IMC_MPI_TIMEOUT, does not own MPI.
static void test_timeout_env(void)
{
    struct imc_comm *c2 = NULL;
    char line[256] = "";
    setenv("IMC_MPI_TIMEOUT", "soon", 1);
    imc_log_set_sink(capture, line);
    CHECK(imc_comm_init(&c2, NULL, NULL) == IMC_ERR_ARG && !c2, "IMC_MPI_TIMEOUT=soon rejected");
    imc_log_set_sink(NULL, NULL);
    CHECK(strstr(line, "IMC_MPI_TIMEOUT: expected a positive number of seconds, found 'soon'"),
          "message: %s", line);
    setenv("IMC_MPI_TIMEOUT", "2.5", 1);
    CHECK(imc_comm_init(&c2, NULL, NULL) == IMC_OK && c2, "IMC_MPI_TIMEOUT=2.5");
    if (c2) {
        CHECK(imc_comm_timeout(c2) == 2.5, "timeout %g", imc_comm_timeout(c2));
        CHECK(imc_comm_barrier(c2, IMC_GROUP_WORLD) == IMC_OK, "barrier on the second set");
        imc_comm_free(c2); // must not finalize MPI: the first set is still in use
    }
    unsetenv("IMC_MPI_TIMEOUT");
}

int main(int argc, char **argv)
{
    struct imc_comm *c = mpitest_init(&argc, &argv);
    const char *mode = argc > 1 ? argv[1] : NULL;
    ring(c, mode);
    if (!mode) {
        test_timeout_env();
        imc_comm_set_timeout(c, 0.5);
        CHECK(imc_comm_barrier(c, IMC_GROUP_WORLD) == IMC_OK, "a completed wait is no timeout");
    }
    return mpitest_finish(c);
}
