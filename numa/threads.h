/*
 * numa/threads: how many compute threads a rank runs when -t is not given (DESIGN.md §6
 * "Placement": a rank's threads use its share of the host).
 *
 * The default is the number of physical cores the rank may run on, times the threads per core
 * asked for (1 by default: a second hardware thread of a core adds little to GEMM and makes
 * timings noisy), never more than a core's PUs. "May run on" is the process's affinity mask
 * (which already honours taskset, cgroups and a Slurm binding), intersected with the cores of
 * the rank's placement (numa/plan.h) when it has one. A topology that is not this machine
 * (HWLOC_SYNTHETIC / HWLOC_XMLFILE) says nothing about the real mask: then the placement's core
 * count, capped by the PUs of the mask.
 */
#ifndef IMC_NUMA_THREADS_H
#define IMC_NUMA_THREADS_H

#include "core/status.h"
#include "numa/topo.h"

// Threads on the cores of t that have at least one PU in cpus[0..n_cpus): per core, min(per_core,
// its PUs in cpus). *n_cores (may be NULL) receives the cores counted. Pure: no system calls.
int imc_threads_on(const struct imc_topo *t, const int *cpus, int n_cpus, int per_core,
                   int *n_cores);

// This process's affinity mask as PU OS indices into cpus[0..cap); returns how many (0 when it
// cannot be read).
int imc_threads_affinity(int *cpus, int cap);

// The default thread count (above) for this process. plan_cpus (NULL: none) are the PUs of the
// rank's placement over t. t NULL (no topology): the mask's PU count. Always >= 1.
int imc_threads_default(const struct imc_topo *t, const int *plan_cpus, int n_plan, int per_core);

#endif // IMC_NUMA_THREADS_H
