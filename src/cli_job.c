/*
 * src/cli_job: what the commands that run over MPI ranks share: the layout (given or automatic),
 * each rank's thread count and the one fatal exit (src/cli.h). MPI itself starts through
 * imc_cli_mpi_start.
 */
#include <stdio.h>
#include <stdlib.h>

#include "coordinator/layout_auto.h"
#include "coordinator/rank_place.h"
#include "core/log.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/reduce.h"
#include "src/cli.h"

// The automatic layout for the model at path (its header only).
static enum imc_status auto_layout(const char *path, int size, struct imc_layout *l)
{
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    enum imc_status st = imc_gguf_open(&g, path);
    if (st == IMC_OK) {
        st = imc_model_load(&m, g);
    }
    if (st == IMC_OK) {
        st = imc_layout_auto_model(m, size, l);
    }
    imc_model_free(m);
    imc_gguf_free(g);
    return st;
}

int imc_cli_job_layout(struct imc_comm *comm, const char *cmd, const char *model,
                       struct imc_layout *l)
{
    const int size = comm ? imc_comm_size(comm) : 1;
    const bool given = l->pp > 0;
    if (!given) {
        *l = (struct imc_layout){1, 1, 1};
        enum imc_status ast = size > 1 ? auto_layout(model, size, l) : IMC_OK;
        if (ast != IMC_OK) { // logged with this rank's host and the path (a model not visible
            imc_fatal(comm, ast, cmd); // here); the other ranks would wait in the split below
        }
    }
    imc_cli_ranks_mute(comm);
    enum imc_status st = imc_layout_check(l, size);
    imc_cli_ranks_unmute(comm);
    if (st != IMC_OK) {
        return 2;
    }
    if (comm && imc_comm_split_layout(comm, l->pp, l->ep, l->dp) != IMC_OK) {
        return 1;
    }
    if (comm && imc_comm_rank(comm) == 0 && size > 1) {
        IMC_LOG_INF("%s: %d ranks, layout pp=%d,ep=%d,dp=%d (%s)", cmd, size, l->pp, l->ep, l->dp,
                    given ? "--layout" : "automatic, as imc plan prints it");
    }
    return 0;
}

int imc_cli_job_end(struct imc_comm *comm, enum imc_status st, const char *cmd)
{
    if (st != IMC_OK && comm && imc_comm_size(comm) > 1) {
        imc_fatal(comm, st, cmd);
    }
    imc_comm_free(comm);
    return st == IMC_OK ? 0 : 1;
}

// The thread count of -t: 0 (automatic) when not given or 0/auto, else at most 1024.
static int requested_threads(const struct imc_opt_common *c)
{
    return c->threads <= 0 ? 0 : c->threads > 1024 ? 1024 : (int)c->threads;
}

int imc_cli_threads_resolve(const struct imc_comm *comm, const char *cmd,
                            const struct imc_opt_common *c)
{
    const int per_core = c->threads_per_core > 0 ? (int)c->threads_per_core : 1;
    struct imc_rank_gpus gpus;
    imc_rank_gpus_for((enum imc_device)c->device, &gpus);
    const int n = imc_rank_threads(comm, &gpus, requested_threads(c), per_core);
    const int size = comm ? imc_comm_size(comm) : 1;
    if (size <= 1) {
        IMC_LOG_DBG("%s: %d thread(s) (%s)", cmd, n, c->threads > 0 ? "-t" : "automatic");
        return n;
    }
    int *all = calloc((size_t)size, sizeof(int));
    if (!all) {
        return n; // the log line only
    }
    all[imc_comm_rank(comm)] = n;
    if (imc_reduce_all_sum_int(comm, IMC_GROUP_WORLD, all, size) == IMC_OK &&
        imc_comm_rank(comm) == 0) {
        char line[512];
        size_t len = 0;
        for (int r = 0; r < size && len + 16 < sizeof(line); r++) {
            len += (size_t)snprintf(line + len, sizeof(line) - len, " %d", all[r]);
        }
        IMC_LOG_INF("%s: threads per rank:%s%s (%s)", cmd, line,
                    len + 16 >= sizeof(line) ? " ..." : "",
                    c->threads > 0 ? "-t" : "automatic: the cores of each rank's share");
    }
    free(all);
    return n;
}
