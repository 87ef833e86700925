/*
 * coordinator/sweep_group: `imc sweep --ranks-per-recipe G` with G > 1 (sweep.h "Recipe
 * groups"): the base over the whole job, then groups of G consecutive ranks, each a world of its
 * own (imc_comm_split_world) on which quantize and perplexity run unchanged, claiming recipes
 * through claim files in out_dir.
 *
 * Claims: the rank 0 of a group claims recipe i by creating <out_dir>/<name>.claim with
 * O_CREAT | O_EXCL (out_dir is on a file system every rank sees); the first group to create it
 * runs it. World rank 0 removes every claim file before the groups start (the bcast of the work
 * list orders it before any claim) and after the gather, so claims of a killed run do not block
 * a rerun. No MPI message crosses groups until the gather: a group never waits for another.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/layout_auto.h"
#include "coordinator/sweep_priv.h"
#include "core/log.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/reduce.h"
#include "mpi/xfer.h"
#include "numa/plan.h"

#define CLAIM_SUFFIX ".claim"

int imc_sweep_group_size(const struct imc_sweep *s)
{
    return s->o.ranks_per_recipe > 1 ? (int)s->o.ranks_per_recipe : 1;
}

// Memory a rank may give a model, bytes: the option's, or this node's memory over its ranks.
static double mem_per_rank(const struct imc_sweep *s)
{
    if (s->o.mem_per_rank_gib > 0) {
        return s->o.mem_per_rank_gib * 1073741824.0;
    }
    const double node = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    const int here = s->o.comm ? imc_comm_group_size(s->o.comm, IMC_GROUP_NODE) : 1;
    return node / (here > 0 ? here : 1);
}

// World rank 0's choice of G (sweep.h "Group size"), or 0 after logging why there is none.
static int choose_group(const struct imc_sweep *s, int size)
{
    struct stat sb;
    const double bytes = stat(s->o.base, &sb) == 0 ? (double)sb.st_size : 0.0;
    const double mem = mem_per_rank(s), gib = 1073741824.0;
    const char *why = s->o.mem_per_rank_gib > 0 ? "--mem-per-rank" : "the node's memory / ranks";
    int g = (int)s->o.ranks_per_recipe;
    if (g > 0 && size % g != 0) {
        IMC_LOG_ERR("sweep: --ranks-per-recipe %d does not divide the job's %d rank(s): groups "
                    "of %d consecutive ranks would leave %d rank(s) over (use a divisor of %d)",
                    g, size, g, size % g, size);
        return 0;
    }
    for (int d = 1; g <= 0 && d <= size; d++) {
        g = size % d == 0 && bytes / d <= mem ? d : 0;
    }
    if (g <= 0 || bytes / g > mem) {
        IMC_LOG_ERR("sweep: the base %s (%.2f GiB) needs %.2f GiB per rank in groups of %d "
                    "rank(s), more than the %.2f GiB a rank has (%s); %s",
                    s->o.base, bytes / gib, bytes / gib / (g > 0 ? g : size), g > 0 ? g : size,
                    mem / gib, why,
                    g > 0 ? "use a larger --ranks-per-recipe" : "the job has too few ranks");
        return 0;
    }
    IMC_LOG_INF("sweep: ranks per recipe: %d (%s; the base %.2f GiB, %.2f GiB per rank of %.2f "
                "from %s)",
                g, s->o.ranks_per_recipe > 0 ? "--ranks-per-recipe" : "automatic", bytes / gib,
                bytes / gib / g, mem / gib, why);
    return g;
}

enum imc_status imc_sweep_check_groups(struct imc_sweep *s)
{
    const int size = s->o.comm ? imc_comm_size(s->o.comm) : 1;
    const int rank = s->o.comm ? imc_comm_rank(s->o.comm) : 0;
    if (size == 1) {
        s->o.ranks_per_recipe = 1;
        return IMC_OK;
    }
    int32_t g = rank == 0 ? choose_group(s, size) : 0;
    IMC_TRY(imc_xfer_bcast(s->o.comm, IMC_GROUP_WORLD, 0, &g, sizeof(g)));
    s->o.ranks_per_recipe = g;
    return g > 0 ? IMC_OK : IMC_ERR_ARG;
}

void imc_sweep_claims_clear(const struct imc_sweep *s)
{
    for (int64_t i = 0; i < s->n; i++) {
        char *path = imc_sweep_path(s, s->rec[i].name, CLAIM_SUFFIX);
        if (path && unlink(path) != 0 && errno != ENOENT) {
            IMC_LOG_WRN("sweep: cannot remove the claim file %s: %s", path, strerror(errno));
        }
        free(path);
    }
}

// The first recipe to do that no group has claimed, now claimed by this rank (a group's rank
// 0), or -1 when none is left or a claim file cannot be created (logged).
static int32_t claim_next(const struct imc_sweep *s, const uint8_t *todo, int rank)
{
    for (int64_t i = 0; i < s->n; i++) {
        if (!todo[i]) {
            continue;
        }
        char *path = imc_sweep_path(s, s->rec[i].name, CLAIM_SUFFIX);
        if (!path) {
            return -1;
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        int err = errno;
        if (fd >= 0) {
            dprintf(fd, "world rank %d\n", rank);
            close(fd);
            free(path);
            return (int32_t)i;
        }
        if (err != EEXIST) {
            IMC_LOG_ERR("sweep: %s: cannot create the claim file: %s", path, strerror(err));
            free(path);
            return -1;
        }
        free(path);
    }
    return -1;
}

enum imc_status imc_sweep_split_layout(struct imc_comm *c, const char *model,
                                       struct imc_layout *l)
{
    const int size = imc_comm_size(c);
    *l = (struct imc_layout){1, 1, 1};
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    enum imc_status st = size > 1 ? imc_gguf_open(&g, model) : IMC_OK;
    if (st == IMC_OK && g) {
        st = imc_model_load(&m, g);
    }
    if (st == IMC_OK && m) {
        st = imc_layout_auto_model(m, size, l);
    }
    imc_model_free(m);
    imc_gguf_free(g);
    if (st == IMC_OK) {
        st = imc_comm_split_layout(c, l->pp, l->ep, l->dp);
    }
    if (st == IMC_OK && imc_comm_rank(c) == 0) {
        IMC_LOG_DBG("sweep: %s over %d rank(s), layout pp=%d,ep=%d,dp=%d", model, size, l->pp,
                    l->ep, l->dp);
    }
    return st;
}

// The base over every rank of the job; every rank learns whether it succeeded.
static enum imc_status base_all(struct imc_sweep *s)
{
    struct imc_comm *c = s->o.comm;
    enum imc_status st = imc_sweep_run_base(s, c, NULL);
    if (st == IMC_ERR_MPI) {
        imc_fatal(c, st, "sweep: base logits");
    }
    int bad = st != IMC_OK;
    IMC_TRY(imc_reduce_all_sum_int(c, IMC_GROUP_WORLD, &bad, 1));
    return st != IMC_OK ? st : bad ? IMC_ERR_ARG : IMC_OK; // logged where it failed
}

enum imc_status imc_sweep_run_groups(struct imc_sweep *s, struct imc_sweep_figures *figs,
                                     const uint8_t *todo, bool need_base)
{
    struct imc_comm *c = s->o.comm;
    const int rank = imc_comm_rank(c), g = imc_sweep_group_size(s);
    if (need_base) {
        IMC_TRY(base_all(s));
    }
    struct imc_comm *grp = NULL;
    IMC_TRY(imc_comm_split_world(c, rank / g, rank, &grp));
    const bool lead = imc_comm_rank(grp) == 0;
    if (lead) {
        IMC_LOG_INF("sweep: group %d: world ranks %d-%d", rank / g, rank, rank + g - 1);
    }
    enum imc_status st = IMC_OK;
    bool failed = false;
    for (;;) {
        int32_t next = lead && !failed ? claim_next(s, todo, rank) : -1;
        st = imc_xfer_bcast(grp, IMC_GROUP_WORLD, 0, &next, sizeof(next));
        if (st != IMC_OK || next < 0) {
            break;
        }
        enum imc_status rst = imc_sweep_run_recipe(s, next, rank, grp, &figs[next]);
        if (rst == IMC_ERR_MPI) {
            imc_fatal(c, rst, "sweep: a recipe group");
        }
        failed = rst != IMC_OK; // the group stops at its first failure, as a single rank does
    }
    imc_comm_free(grp);
    return st;
}
