/*
 * tests/mpi/mpitest.h: the MPI side of the test harness (STYLE b.7 "mpi"): start the
 * communicators, agree on the failure count across ranks (nccl-tests), print one summary on
 * rank 0 and give every rank the same exit code. Works as a singleton (no mpirun) too.
 */
#ifndef IMC_TESTS_MPITEST_H
#define IMC_TESTS_MPITEST_H

#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/reduce.h"
#include "tests/check.h"
#include "tests/mpi/lsan.h"

// Starts MPI and the communicators; a failure here ends the process (nothing to agree on yet).
static inline struct imc_comm *mpitest_init(int *argc, char ***argv)
{
    struct imc_comm *c = NULL;
    enum imc_status st = imc_comm_init(&c, argc, argv);
    if (st != IMC_OK) {
        imc_fatal(NULL, st, "starting MPI");
    }
    imc_comm_set_log_prefix(c);
    return c;
}

// Sums checks and failures over the world; rank 0 prints "N passed, M failed". Frees c and
// returns the exit code, the same on every rank: 0 when no rank failed a check, else 1.
static inline int mpitest_finish(struct imc_comm *c)
{
    int counts[2] = {check_g.n, check_g.failed};
    fflush(stdout);
    enum imc_status st = imc_reduce_all_sum_int(c, IMC_GROUP_WORLD, counts, 2);
    if (st != IMC_OK) {
        imc_fatal(c, st, "agreeing on the failure count");
    }
    if (imc_comm_rank(c) == 0) {
        printf("%d passed, %d failed\n", counts[0] - counts[1], counts[1]);
        fflush(stdout);
    }
    imc_comm_free(c);
    return counts[1] > 0 ? 1 : 0;
}

#endif // IMC_TESTS_MPITEST_H
