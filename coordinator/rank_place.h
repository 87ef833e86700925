/*
 * coordinator/rank_place: where one rank of a job runs on its host (DESIGN.md §6 "Placement":
 * one rank per NUMA node by default, weights and buffers on its node, threads pinned).
 *
 * The ranks sharing a host (mpi/comm.h IMC_GROUP_NODE) are placed by numa/plan.h's
 * imc_place_plan over the host's topology (numa/topo.h; HWLOC_XMLFILE / HWLOC_SYNTHETIC describe
 * another machine: then the plan is computed and logged but nothing is bound). The process is
 * pinned to its PUs (numa/pin.h; IMC_PIN=0 turns it off; refusals are warnings), so the engine
 * threads created afterwards inherit the binding, and the caller asks for its weights' pages on
 * the node (imc_numa_bind_range on its worker/slice.h ranges).
 *
 * A rank that runs on CUDA is planned with the host's GPUs (numa/plan.h: local rank r uses GPU
 * r mod G, as src/cli_device.c selects it, and sits on that GPU's NUMA node, its cores shared
 * with the other ranks there): the CUDA devices are matched to the topology's GPUs by PCI bus
 * id, so the node is right whatever CUDA's device order (CUDA_DEVICE_ORDER, CUDA_VISIBLE_DEVICES)
 * and hwloc's differ; a device the topology does not list goes round-robin over the nodes, as
 * `imc plan --gpus` does.
 */
#ifndef IMC_COORDINATOR_RANK_PLACE_H
#define IMC_COORDINATOR_RANK_PLACE_H

#include <stdbool.h>

#include "core/status.h"
#include "worker/engine.h"

struct imc_comm;

#define IMC_RANK_MAX_GPUS 64

// The GPUs a rank is planned with: the CUDA devices it sees, in CUDA's order.
struct imc_rank_gpus {
    int n;                           // 0: the rank runs on the CPU
    char pci[IMC_RANK_MAX_GPUS][20]; // CUDA device i's PCI bus id, "" when unknown
};

// Fills g for a rank whose engines run on `device`: the visible CUDA devices when it runs on
// CUDA (cuda, or auto in a build with CUDA and a device visible), none otherwise.
void imc_rank_gpus_for(enum imc_device device, struct imc_rank_gpus *g);

struct imc_rank_place {
    int node;       // OS number of the rank's NUMA node, -1 when unknown
    int n_cpus;     // PUs the plan gives it
    int gpu;        // the CUDA device it is planned on, -1 for a CPU rank
    bool pinned;    // the process is bound to them
    char cpus[128]; // that PU list ("0-3"), "" when unknown
    char why[160];  // when not pinned: the reason
};

// Plans and pins this rank of c (NULL: a plain process; local: no communication) with the
// GPUs gpus (NULL or gpus->n == 0: a CPU rank). Logs its placement at DEBUG and warns when the
// host is oversubscribed (imc_rank_threads warns about too many threads). A topology that
// cannot be read is a warning and leaves the rank unplaced (node -1): placement makes a run
// faster, never wrong, so it is no reason to stop. Always returns IMC_OK except IMC_ERR_NOMEM.
enum imc_status imc_rank_place(const struct imc_comm *c, const struct imc_rank_gpus *gpus,
                               struct imc_rank_place *out);

// The compute threads of this rank (of c; NULL: a plain process): requested when > 0, else the
// default of numa/threads.h for the rank's share of its host — the cores of its placement
// among the ranks on this host (the plan imc_rank_place pins to, with the same gpus), within
// the affinity mask — with per_core threads per core (>= 1). Warns when requested exceeds the PUs
// of that share (threads then share cores). A topology that cannot be read counts the mask's PUs.
// >= 1.
int imc_rank_threads(const struct imc_comm *c, const struct imc_rank_gpus *gpus, int requested,
                     int per_core);

#endif // IMC_COORDINATOR_RANK_PLACE_H
