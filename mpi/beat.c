/*
 * mpi/beat: heartbeats of long single-process work to the ranks waiting for it (beat.h).
 *
 * A beat is one int64 message on c->beat, tag 0: the count of beats sent so far (>= 1), or
 * END_MARK. Sends are nonblocking; a pulse sends a new round only when the previous round has
 * left (MPI_Testall), so at most one round per waiting rank is in flight and its buffer is
 * stable. The waits of close and await go through imc_mpi_waitall (the watchdog).
 */
#include "mpi/beat.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "mpi/mpi_priv.h"

#define END_MARK INT64_C(-1)

struct imc_beat {
    const struct imc_comm *c;
    int n;               // waiting ranks
    int *to;             // [n] their ranks in c's world (owned)
    MPI_Request *req;    // [n] the round in flight (owned)
    int64_t count;       // beats sent to each
    int64_t msg;         // the buffer of the round in flight
    double last, every;  // time of the last round, least seconds between rounds
    enum imc_status st;  // first failure (logged)
};

// Rank r of c's world as a rank of the whole job (MPI_COMM_WORLD), for messages; -1 if unknown.
static int job_rank_of(const struct imc_comm *c, int r)
{
    MPI_Group mine = MPI_GROUP_NULL, all = MPI_GROUP_NULL;
    int out = -1;
    if (MPI_Comm_group(c->group[IMC_GROUP_WORLD], &mine) == MPI_SUCCESS &&
        MPI_Comm_group(MPI_COMM_WORLD, &all) == MPI_SUCCESS &&
        MPI_Group_translate_ranks(mine, 1, &r, all, &out) != MPI_SUCCESS) {
        out = -1;
    }
    if (mine != MPI_GROUP_NULL) {
        MPI_Group_free(&mine);
    }
    if (all != MPI_GROUP_NULL) {
        MPI_Group_free(&all);
    }
    return out == MPI_UNDEFINED ? -1 : out;
}

enum imc_status imc_beat_open(const struct imc_comm *c, const int *to, int n,
                              struct imc_beat **out)
{
    *out = NULL;
    struct imc_beat *b = calloc(1, sizeof(*b));
    int *dst = malloc((size_t)(n > 0 ? n : 1) * sizeof(*dst));
    MPI_Request *req = malloc((size_t)(n > 0 ? n : 1) * sizeof(*req));
    if (!b || !dst || !req) {
        free(b);
        free(dst);
        free(req);
        IMC_LOG_ERR("out of memory opening a heartbeat");
        return IMC_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        IMC_ASSERT(to[i] >= 0 && to[i] < c->size[IMC_GROUP_WORLD] &&
                   to[i] != c->rank[IMC_GROUP_WORLD]);
        dst[i] = to[i];
        req[i] = MPI_REQUEST_NULL;
    }
    // Four beats per watchdog period: enough margin, and a long sweep queues few of them (at the
    // default 300 s, one per 75 s: under 500 in ten hours) on a receiver that is busy elsewhere.
    *b = (struct imc_beat){.c = c, .n = n, .to = dst, .req = req, .st = IMC_OK,
                           .every = c->timeout / 4, .last = imc_clock_now()};
    *out = b;
    return IMC_OK;
}

// Sends b->msg to every waiting rank (nonblocking); the requests go into b->req.
static enum imc_status send_round(struct imc_beat *b)
{
    for (int i = 0; i < b->n; i++) {
        IMC_MPI(MPI_Isend(&b->msg, 1, MPI_INT64_T, b->to[i], 0, b->c->beat, &b->req[i]));
    }
    return IMC_OK;
}

void imc_beat_pulse(void *beat)
{
    struct imc_beat *b = beat;
    if (!b || b->st != IMC_OK || b->n == 0) {
        return;
    }
    const double now = imc_clock_now();
    if (now - b->last < b->every) {
        return;
    }
    int done = 0;
    int rc = MPI_Testall(b->n, b->req, &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
        b->st = imc_mpi_fail(rc, "MPI_Testall (heartbeat)", __FILE__, __LINE__);
        return;
    }
    if (!done) {
        return; // the previous round has not left yet: the peers will see that one
    }
    b->msg = ++b->count;
    b->last = now;
    b->st = send_round(b);
}

enum imc_status imc_beat_close(struct imc_beat *b)
{
    if (!b) {
        return IMC_OK;
    }
    enum imc_status st = b->st;
    if (st == IMC_OK && b->n > 0) {
        st = imc_mpi_waitall(b->c, b->n, b->req, MPI_STATUSES_IGNORE, "a heartbeat to leave");
    }
    if (st == IMC_OK && b->n > 0) {
        b->msg = END_MARK;
        st = send_round(b);
        st = st == IMC_OK ? imc_mpi_waitall(b->c, b->n, b->req, MPI_STATUSES_IGNORE,
                                            "the end of a heartbeat to leave")
                          : st;
    }
    free(b->to);
    free(b->req);
    free(b);
    return st;
}

enum imc_status imc_beat_await(const struct imc_comm *c, int from, const struct imc_pulse *relay,
                               const char *fmt, ...)
{
    IMC_ASSERT(from >= 0 && from < c->size[IMC_GROUP_WORLD] && from != c->rank[IMC_GROUP_WORLD]);
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    const int job = job_rank_of(c, from);
    for (int64_t v = 0; v != END_MARK;) {
        MPI_Request req = MPI_REQUEST_NULL;
        IMC_MPI(MPI_Irecv(&v, 1, MPI_INT64_T, from, 0, c->beat, &req));
        // each beat is a new wait with its own deadline: the clock restarts on progress
        IMC_TRY(imc_mpi_waitall(c, 1, &req, MPI_STATUSES_IGNORE,
                                "progress from world rank %d (%s)", job, what));
        if (v != END_MARK) {
            imc_pulse_emit(relay);
        }
    }
    return IMC_OK;
}
