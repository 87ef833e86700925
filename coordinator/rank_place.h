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
 */
#ifndef IMC_COORDINATOR_RANK_PLACE_H
#define IMC_COORDINATOR_RANK_PLACE_H

#include <stdbool.h>

#include "core/status.h"

struct imc_comm;

struct imc_rank_place {
    int node;       // OS number of the rank's NUMA node, -1 when unknown
    int n_cpus;     // PUs the plan gives it
    bool pinned;    // the process is bound to them
    char cpus[128]; // that PU list ("0-3"), "" when unknown
    char why[160];  // when not pinned: the reason
};

// Plans and pins this rank (above; local: no communication). Logs its placement at DEBUG and
// warns when the host is oversubscribed (imc_rank_threads warns about too many threads). A
// topology that cannot be read is a warning and leaves the rank unplaced (node -1): placement
// makes a run faster, never wrong, so it is no reason to stop. Always returns IMC_OK except
// IMC_ERR_NOMEM.
enum imc_status imc_rank_place(const struct imc_comm *c, struct imc_rank_place *out);

// The compute threads of this rank (of c; NULL: a plain process): requested when > 0, else the
// default of numa/threads.h for the rank's share of its host — the cores of its placement
// among the ranks on this host (the plan imc_rank_place pins to), within the affinity mask —
// with per_core threads per core (>= 1). Warns when requested exceeds the PUs of that share
// (threads then share cores). A topology that cannot be read counts the mask's PUs. >= 1.
int imc_rank_threads(const struct imc_comm *c, int requested, int per_core);

#endif // IMC_COORDINATOR_RANK_PLACE_H
