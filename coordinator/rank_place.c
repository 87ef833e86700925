/*
 * coordinator/rank_place: one rank's placement on its host (rank_place.h).
 */
#include "coordinator/rank_place.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kernels/cuda/cuda.h"
#include "mpi/comm.h"
#include "numa/pin.h"
#include "numa/plan.h"
#include "numa/threads.h"
#include "numa/topo.h"

static void place_one(const struct imc_comm *c, const struct imc_topo *t,
                      const struct imc_placement *pl, struct imc_rank_place *out)
{
    const int local = c ? imc_comm_group_rank(c, IMC_GROUP_NODE) : 0;
    const struct imc_place *p = &pl->ranks[local];
    out->node = t->nodes[p->node].os_index;
    out->n_cpus = p->n_cpus;
    out->gpu = p->gpu;
    imc_place_cpulist(p->cpus, p->n_cpus, out->cpus, sizeof(out->cpus));
    struct imc_pin_report rep;
    memset(&rep, 0, sizeof(rep));
    if (t->is_this_system && p->n_cpus > 0 &&
        imc_pin_cpus(t, IMC_PIN_PROCESS, p->cpus, p->n_cpus, &rep) == IMC_OK) {
        out->pinned = rep.bound;
        snprintf(out->why, sizeof(out->why), "%s", rep.bound ? "" : rep.why);
    } else {
        snprintf(out->why, sizeof(out->why), "%s",
                 t->is_this_system ? "no PUs planned" : "the topology is not this machine");
    }
    IMC_LOG_DBG("place: local rank %d of %d on this host: NUMA node %d, PUs %s, GPU %d (%s)", local,
                pl->n_ranks, out->node, out->cpus, out->gpu, out->pinned ? "bound" : out->why);
    if (pl->oversubscribed && local == 0) {
        IMC_LOG_WRN("place: %d ranks share this host's cores (oversubscribed)", pl->n_ranks);
    }
}

void imc_rank_gpus_for(enum imc_device device, struct imc_rank_gpus *g)
{
    memset(g, 0, sizeof(*g));
    const int n = device != IMC_DEVICE_CPU && imc_cuda_backend() ? imc_cuda_devices() : 0;
    g->n = n < IMC_RANK_MAX_GPUS ? n : IMC_RANK_MAX_GPUS;
    for (int i = 0; i < g->n; i++) {
        if (imc_cuda_pci_bus(i, g->pci[i], (int)sizeof(g->pci[i])) != IMC_OK) {
            g->pci[i][0] = '\0';
        }
    }
}

// Plans the ranks of c on this host over t with the GPUs g, each matched to t's GPUs by bus id
// (rank_place.h); a GPU t does not list gets node -1 (round-robin in the plan).
static enum imc_status plan_with_gpus(const struct imc_comm *c, const struct imc_topo *t,
                                      const struct imc_rank_gpus *g, struct imc_placement **pl)
{
    const int n_local = c ? imc_comm_group_size(c, IMC_GROUP_NODE) : 1;
    const bool first = !c || imc_comm_group_rank(c, IMC_GROUP_NODE) == 0;
    if (!g || g->n <= 0) {
        return imc_place_plan(t, n_local, 0, pl);
    }
    struct imc_topo_gpu *ord = calloc((size_t)g->n, sizeof(*ord));
    if (!ord) {
        IMC_LOG_ERR("place: out of memory for %d GPUs", g->n);
        return IMC_ERR_NOMEM;
    }
    for (int i = 0; i < g->n; i++) {
        const int k = imc_topo_gpu_by_pci(t, g->pci[i]);
        ord[i] = k >= 0 ? t->gpus[k] : (struct imc_topo_gpu){.node = -1};
        snprintf(ord[i].name, sizeof(ord[i].name), "cuda%d", i);
        if (k < 0 && first) {
            IMC_LOG_WRN("place: CUDA device %d (PCI %s) is not in this host's topology; its "
                        "ranks go round-robin over the NUMA nodes",
                        i, g->pci[i][0] ? g->pci[i] : "unknown");
        }
    }
    struct imc_topo tc = *t; // the same host, its GPUs in CUDA's order (borrowed)
    tc.n_gpus = g->n;
    tc.gpus = ord;
    enum imc_status st = imc_place_plan(&tc, n_local, g->n, pl);
    free(ord);
    return st;
}

// This host's topology and the plan of its ranks of c (NULL: one process) with the GPUs g. The
// caller frees both (also on failure, where they may be NULL).
static enum imc_status host_plan(const struct imc_comm *c, const struct imc_rank_gpus *g,
                                 struct imc_topo **t, struct imc_placement **pl)
{
    *t = NULL;
    *pl = NULL;
    enum imc_status st = imc_topo_load(t);
    if (st == IMC_OK) {
        st = plan_with_gpus(c, *t, g, pl);
    }
    return st;
}

enum imc_status imc_rank_place(const struct imc_comm *c, const struct imc_rank_gpus *gpus,
                               struct imc_rank_place *out)
{
    memset(out, 0, sizeof(*out));
    out->node = -1;
    out->gpu = -1;
    struct imc_topo *t = NULL;
    struct imc_placement *pl = NULL;
    enum imc_status st = host_plan(c, gpus, &t, &pl);
    if (st == IMC_OK) {
        place_one(c, t, pl, out);
    } else if (st != IMC_ERR_NOMEM) {
        snprintf(out->why, sizeof(out->why), "no topology (%s)", imc_status_str(st));
        IMC_LOG_WRN("place: cannot read this host's topology (%s); running unplaced",
                    imc_status_str(st));
        st = IMC_OK;
    }
    imc_placement_free(pl);
    imc_topo_free(t);
    return st;
}

int imc_rank_threads(const struct imc_comm *c, const struct imc_rank_gpus *gpus, int requested,
                     int per_core)
{
    const int local = c ? imc_comm_group_rank(c, IMC_GROUP_NODE) : 0;
    struct imc_topo *t = NULL;
    struct imc_placement *pl = NULL;
    const int *cpus = NULL; // a single CPU process has the whole mask: no plan
    int n_cpus = 0;
    if (host_plan(c, gpus, &t, &pl) == IMC_OK && (pl->n_ranks > 1 || (gpus && gpus->n > 0))) {
        cpus = pl->ranks[local].cpus;
        n_cpus = pl->ranks[local].n_cpus;
    }
    const int def = imc_threads_default(t, cpus, n_cpus, per_core);
    const int pus = imc_threads_default(t, cpus, n_cpus, INT_MAX);
    if (requested > pus) {
        IMC_LOG_WRN("threads: -t %d exceeds the %d hardware thread(s) this %s may use: threads "
                    "will share cores",
                    requested, pus, c && imc_comm_size(c) > 1 ? "rank" : "process");
    }
    imc_placement_free(pl);
    imc_topo_free(t);
    return requested > 0 ? requested : def;
}
