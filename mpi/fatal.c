/*
 * mpi/fatal: imc_fatal, the MPI abort hook and the watchdog wait (fatal.h, mpi_priv.h).
 *
 * Watchdog: MPI has no timeout on blocking calls, so every wait for a peer is a nonblocking
 * request polled with MPI_Testall until it completes or c->timeout seconds pass; then the job is
 * aborted with a line naming this rank and what it waited for. Each wait has its own deadline
 * (a long reduction waits per chunk, so only a stall trips it). The poll spins briefly
 * (latency), then yields and finally sleeps up to 50 us per round, so ranks oversubscribed on
 * few cores leave CPU to the peers they wait for.
 */
#include "mpi/fatal.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "mpi/mpi_priv.h"

enum { SPIN_ROUNDS = 200, YIELD_ROUNDS = 2000, MAX_SLEEP_NS = 50000 };

static int mpi_is_running(void)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    return inited && !finalized;
}

_Noreturn void imc_fatal(const struct imc_comm *c, enum imc_status st, const char *what)
{
    char host[MPI_MAX_PROCESSOR_NAME + 1] = "?";
    int rank = -1;
    int running = mpi_is_running();
    if (c) {
        rank = c->job_rank;
        snprintf(host, sizeof(host), "%s", c->host);
    } else if (running) {
        int len = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Get_processor_name(host, &len);
        host[len < 0 ? 0 : len] = '\0';
    } else {
        gethostname(host, sizeof(host) - 1);
    }
    int code = st == IMC_OK ? 1 : (int)st;
    if (rank >= 0) {
        fprintf(stderr, "imc[r%d@%s] fatal: %s: %s\n", rank, host, what ? what : "(no message)",
                imc_status_str(st));
    } else {
        fprintf(stderr, "imc[r?@%s] fatal: %s: %s\n", host, what ? what : "(no message)",
                imc_status_str(st));
    }
    fflush(stderr);
    fflush(stdout);
    if (running) {
        MPI_Abort(MPI_COMM_WORLD, code);
    }
    _exit(code);
}

void imc_mpi_abort_hook(void)
{
    if (mpi_is_running()) {
        fflush(stdout);
        MPI_Abort(MPI_COMM_WORLD, IMC_ERR_INTERNAL);
    }
}

// Logs the first failed request of an MPI_ERR_IN_STATUS result, or the call's own error.
static enum imc_status testall_failed(int rc, int n, const MPI_Status *statuses)
{
    if (rc == MPI_ERR_IN_STATUS && statuses != MPI_STATUSES_IGNORE) {
        for (int i = 0; i < n; i++) {
            int e = statuses[i].MPI_ERROR;
            if (e != MPI_SUCCESS && e != MPI_ERR_PENDING) {
                return imc_mpi_fail(e, "MPI_Testall (request)", __FILE__, __LINE__);
            }
        }
    }
    return imc_mpi_fail(rc, "MPI_Testall", __FILE__, __LINE__);
}

// One idle round of the poll: spin, then yield, then sleep with a growing period.
static void idle(long round)
{
    if (round < SPIN_ROUNDS) {
        return;
    }
    if (round < YIELD_ROUNDS) {
        sched_yield();
        return;
    }
    long ns = (round - YIELD_ROUNDS + 1) * 1000L;
    struct timespec ts = {0, ns < MAX_SLEEP_NS ? ns : MAX_SLEEP_NS};
    nanosleep(&ts, NULL);
}

enum imc_status imc_mpi_waitall(const struct imc_comm *c, int n, MPI_Request *reqs,
                                MPI_Status *statuses, const char *fmt, ...)
{
    double start = imc_clock_now();
    for (long round = 0;; round++) {
        int done = 0;
        int rc = MPI_Testall(n, reqs, &done, statuses);
        if (rc != MPI_SUCCESS) {
            return testall_failed(rc, n, statuses);
        }
        if (done) {
            return IMC_OK;
        }
        if ((round & 15) == 0 && imc_clock_now() - start > c->timeout) {
            char what[512];
            char msg[600];
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(what, sizeof(what), fmt, ap);
            va_end(ap);
            snprintf(msg, sizeof(msg), "gave up after %g s waiting for %s (IMC_MPI_TIMEOUT)",
                     c->timeout, what);
            imc_fatal(c, IMC_ERR_MPI, msg);
        }
        idle(round);
    }
}
