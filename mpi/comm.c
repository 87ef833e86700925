/*
 * mpi/comm: MPI start-up, the world/node/layout communicators and their accessors (comm.h).
 */
#include "mpi/comm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mpi/fatal.h"
#include "mpi/mpi_priv.h"

enum { DEFAULT_TIMEOUT_S = 300 };
#define DEFAULT_MAX_MSG_BYTES ((size_t)1 << 30)
#define DEFAULT_CHUNK_BYTES ((size_t)4 << 20)

bool imc_comm_launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        if (getenv(vars[i])) {
            return true;
        }
    }
    return false;
}

enum imc_status imc_mpi_fail(int rc, const char *call, const char *file, int line)
{
    char msg[MPI_MAX_ERROR_STRING + 1] = "";
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) {
        snprintf(msg, sizeof(msg), "MPI error code %d", rc);
    }
    IMC_LOG_ERR("%s:%d: %s failed: %s", file, line, call, msg);
    return IMC_ERR_MPI;
}

// Reads IMC_MPI_TIMEOUT (positive seconds) into *out; the default when unset or empty.
static enum imc_status read_timeout(double *out)
{
    const char *s = getenv("IMC_MPI_TIMEOUT");
    *out = DEFAULT_TIMEOUT_S;
    if (!s || !*s) {
        return IMC_OK;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 1e9) {
        IMC_LOG_ERR("IMC_MPI_TIMEOUT: expected a positive number of seconds, found '%s'", s);
        return IMC_ERR_ARG;
    }
    *out = v;
    return IMC_OK;
}

static enum imc_status start_mpi(int *argc, char ***argv, int *owns)
{
    int inited = 0;
    *owns = 0;
    IMC_MPI(MPI_Initialized(&inited));
    if (!inited) {
        int provided = 0;
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            return imc_mpi_fail(rc, "MPI_Init_thread", __FILE__, __LINE__);
        }
        *owns = 1;
    }
    IMC_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    return IMC_OK;
}

// Makes g a new communicator built by the caller; sets MPI_ERRORS_RETURN and caches rank/size.
static enum imc_status adopt(struct imc_comm *c, enum imc_comm_group g, MPI_Comm comm)
{
    c->group[g] = comm;
    IMC_MPI(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
    IMC_MPI(MPI_Comm_rank(comm, &c->rank[g]));
    IMC_MPI(MPI_Comm_size(comm, &c->size[g]));
    return IMC_OK;
}

// A new set with every communicator MPI_COMM_NULL (logged when out of memory).
static struct imc_comm *comm_new(void)
{
    struct imc_comm *c = calloc(1, sizeof(*c));
    if (!c) {
        IMC_LOG_ERR("out of memory allocating the communicator set");
        return NULL;
    }
    for (int g = 0; g < IMC_GROUP_COUNT; g++) {
        c->group[g] = MPI_COMM_NULL;
    }
    c->beat = MPI_COMM_NULL;
    return c;
}

// Builds the node group, the one-rank layout groups and the beat communicator of a set whose
// world is built.
static enum imc_status build_groups(struct imc_comm *c)
{
    MPI_Comm comm = MPI_COMM_NULL;
    IMC_MPI(MPI_Comm_dup(c->group[IMC_GROUP_WORLD], &c->beat));
    IMC_MPI(MPI_Comm_set_errhandler(c->beat, MPI_ERRORS_RETURN));
    IMC_MPI(MPI_Comm_split_type(c->group[IMC_GROUP_WORLD], MPI_COMM_TYPE_SHARED,
                                c->rank[IMC_GROUP_WORLD], MPI_INFO_NULL, &comm));
    IMC_TRY(adopt(c, IMC_GROUP_NODE, comm));
    for (int g = IMC_GROUP_PIPELINE; g <= IMC_GROUP_STAGE; g++) {
        IMC_MPI(MPI_Comm_dup(MPI_COMM_SELF, &comm));
        IMC_TRY(adopt(c, (enum imc_comm_group)g, comm));
    }
    return IMC_OK;
}

static enum imc_status build_base(struct imc_comm *c)
{
    MPI_Comm comm = MPI_COMM_NULL;
    IMC_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
    IMC_TRY(adopt(c, IMC_GROUP_WORLD, comm));
    c->job_rank = c->rank[IMC_GROUP_WORLD];
    IMC_TRY(build_groups(c));
    int len = 0;
    IMC_MPI(MPI_Get_processor_name(c->host, &len));
    c->host[len < 0 ? 0 : len] = '\0';
    int *ub = NULL, flag = 0;
    IMC_MPI(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag));
    // The top tag is reserved for mpi/reduce's chain messages (REDUCE_TAG in reduce.c).
    c->tag_ub = (flag && ub ? *ub : 32767) - 1;
    return IMC_OK;
}

enum imc_status imc_comm_init(struct imc_comm **out, int *argc, char ***argv)
{
    *out = NULL;
    double timeout = 0;
    IMC_TRY(read_timeout(&timeout));
    int owns = 0;
    IMC_TRY(start_mpi(argc, argv, &owns));
    struct imc_comm *c = comm_new();
    if (!c) {
        if (owns) {
            MPI_Finalize();
        }
        return IMC_ERR_NOMEM;
    }
    c->owns_mpi = owns;
    c->timeout = timeout;
    c->max_msg_bytes = DEFAULT_MAX_MSG_BYTES;
    c->chunk_bytes = DEFAULT_CHUNK_BYTES;
    enum imc_status st = build_base(c);
    if (st != IMC_OK) {
        imc_comm_free(c);
        return st;
    }
    imc_set_abort_hook(imc_mpi_abort_hook);
    *out = c;
    return IMC_OK;
}

void imc_comm_free(struct imc_comm *c)
{
    if (!c) {
        return;
    }
    int finalized = 1;
    MPI_Finalized(&finalized);
    if (!finalized) {
        for (int g = 0; g < IMC_GROUP_COUNT; g++) {
            if (c->group[g] != MPI_COMM_NULL) {
                MPI_Comm_free(&c->group[g]);
            }
        }
        if (c->beat != MPI_COMM_NULL) {
            MPI_Comm_free(&c->beat);
        }
        if (c->owns_mpi) {
            imc_set_abort_hook(NULL);
            MPI_Finalize();
        }
    }
    free(c);
}

enum imc_status imc_comm_split_world(const struct imc_comm *c, int color, int key,
                                     struct imc_comm **out)
{
    *out = NULL;
    MPI_Comm comm = MPI_COMM_NULL;
    IMC_MPI(MPI_Comm_split(c->group[IMC_GROUP_WORLD], color, key, &comm));
    struct imc_comm *s = comm_new();
    if (!s) {
        MPI_Comm_free(&comm);
        return IMC_ERR_NOMEM;
    }
    memcpy(s->host, c->host, sizeof(s->host));
    s->timeout = c->timeout;
    s->max_msg_bytes = c->max_msg_bytes;
    s->chunk_bytes = c->chunk_bytes;
    s->tag_ub = c->tag_ub;
    s->job_rank = c->job_rank;
    s->owns_mpi = 0; // imc_comm_free frees its communicators only
    enum imc_status st = adopt(s, IMC_GROUP_WORLD, comm);
    st = st == IMC_OK ? build_groups(s) : st;
    if (st != IMC_OK) {
        imc_comm_free(s);
        return st;
    }
    *out = s;
    return IMC_OK;
}

// Splits world into one layout group: ranks with equal color, ordered by key.
static enum imc_status split_group(struct imc_comm *c, enum imc_comm_group g, int color, int key)
{
    MPI_Comm comm = MPI_COMM_NULL;
    IMC_MPI(MPI_Comm_split(c->group[IMC_GROUP_WORLD], color, key, &comm));
    if (c->group[g] != MPI_COMM_NULL) {
        IMC_MPI(MPI_Comm_free(&c->group[g]));
    }
    return adopt(c, g, comm);
}

enum imc_status imc_comm_split_layout(struct imc_comm *c, int pp, int ep, int dp)
{
    int size = c->size[IMC_GROUP_WORLD];
    if (pp < 1 || ep < 1 || dp < 1) {
        IMC_LOG_ERR("layout pp=%d,ep=%d,dp=%d: every factor must be at least 1", pp, ep, dp);
        return IMC_ERR_ARG;
    }
    long long need = (long long)pp * ep * dp;
    if (need != size) {
        IMC_LOG_ERR("layout pp=%d,ep=%d,dp=%d needs %lld ranks, the job has %d", pp, ep, dp, need,
                    size);
        return IMC_ERR_ARG;
    }
    int r = c->rank[IMC_GROUP_WORLD];
    int shard = r % ep;
    int stage = (r / ep) % pp;
    int replica = r / (ep * pp);
    IMC_TRY(split_group(c, IMC_GROUP_PIPELINE, replica * ep + shard, stage));
    IMC_TRY(split_group(c, IMC_GROUP_EXPERT, replica * pp + stage, shard));
    IMC_TRY(split_group(c, IMC_GROUP_REPLICA, stage * ep + shard, replica));
    IMC_TRY(split_group(c, IMC_GROUP_STAGE, stage, replica * ep + shard));
    return IMC_OK;
}

int imc_comm_rank(const struct imc_comm *c)
{
    return c->rank[IMC_GROUP_WORLD];
}

int imc_comm_size(const struct imc_comm *c)
{
    return c->size[IMC_GROUP_WORLD];
}

const char *imc_comm_host(const struct imc_comm *c)
{
    return c->host;
}

int imc_comm_group_rank(const struct imc_comm *c, enum imc_comm_group g)
{
    IMC_ASSERT((unsigned)g < IMC_GROUP_COUNT);
    return c->rank[g];
}

int imc_comm_group_size(const struct imc_comm *c, enum imc_comm_group g)
{
    IMC_ASSERT((unsigned)g < IMC_GROUP_COUNT);
    return c->size[g];
}

const char *imc_comm_group_name(enum imc_comm_group g)
{
    static const char *const names[IMC_GROUP_COUNT] = {"world", "node", "pipeline", "expert",
                                                       "replica", "stage"};
    return (unsigned)g < IMC_GROUP_COUNT ? names[g] : "?";
}

double imc_comm_timeout(const struct imc_comm *c)
{
    return c->timeout;
}

void imc_comm_set_timeout(struct imc_comm *c, double seconds)
{
    IMC_ASSERT(seconds > 0);
    c->timeout = seconds;
}

size_t imc_comm_max_msg_bytes(const struct imc_comm *c)
{
    return c->max_msg_bytes;
}

void imc_comm_set_max_msg_bytes(struct imc_comm *c, size_t bytes)
{
    IMC_ASSERT(bytes >= 8 && bytes <= DEFAULT_MAX_MSG_BYTES);
    c->max_msg_bytes = bytes;
}

size_t imc_comm_chunk_bytes(const struct imc_comm *c)
{
    return c->chunk_bytes;
}

void imc_comm_set_chunk_bytes(struct imc_comm *c, size_t bytes)
{
    IMC_ASSERT(bytes >= 8 && bytes <= DEFAULT_MAX_MSG_BYTES);
    c->chunk_bytes = bytes;
}

int imc_comm_tag_ub(const struct imc_comm *c)
{
    return c->tag_ub;
}

void imc_comm_set_log_prefix(const struct imc_comm *c)
{
    if (c->size[IMC_GROUP_WORLD] <= 1) {
        return;
    }
    char prefix[sizeof(c->host) + 32];
    snprintf(prefix, sizeof(prefix), "imc[r%d@%s] ", c->job_rank, c->host);
    imc_log_set_prefix(prefix);
}

enum imc_status imc_comm_barrier(const struct imc_comm *c, enum imc_comm_group g)
{
    IMC_ASSERT((unsigned)g < IMC_GROUP_COUNT);
    MPI_Request req = MPI_REQUEST_NULL;
    IMC_MPI(MPI_Ibarrier(c->group[g], &req));
    return imc_mpi_waitall(c, 1, &req, MPI_STATUSES_IGNORE, "barrier on %s",
                           imc_comm_group_name(g));
}
