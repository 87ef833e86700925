/*
 * numa/threads: the default thread count of a rank (numa/threads.h).
 */
#include "numa/threads.h"

#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>

#define MAX_PUS 4096

static bool in_set(const int *cpus, int n, int pu)
{
    for (int i = 0; i < n; i++) {
        if (cpus[i] == pu) {
            return true;
        }
    }
    return false;
}

int imc_threads_on(const struct imc_topo *t, const int *cpus, int n_cpus, int per_core,
                   int *n_cores)
{
    int threads = 0, cores = 0;
    for (int c = 0; c < t->n_cores; c++) {
        const struct imc_topo_core *core = &t->cores[c];
        int mine = 0;
        for (int k = 0; k < core->n_pus; k++) {
            mine += in_set(cpus, n_cpus, t->pus[core->pu_begin + k]);
        }
        if (mine > 0) {
            cores++;
            threads += mine < per_core ? mine : per_core;
        }
    }
    if (n_cores) {
        *n_cores = cores;
    }
    return threads;
}

int imc_threads_affinity(int *cpus, int cap)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) {
        return 0;
    }
    int n = 0;
    for (int pu = 0; pu < CPU_SETSIZE && n < cap; pu++) {
        if (CPU_ISSET(pu, &set)) {
            cpus[n++] = pu;
        }
    }
    return n;
}

int imc_threads_default(const struct imc_topo *t, const int *plan_cpus, int n_plan, int per_core)
{
    int *mask = malloc(MAX_PUS * sizeof(int));
    const int n_mask = mask ? imc_threads_affinity(mask, MAX_PUS) : 0;
    per_core = per_core < 1 ? 1 : per_core;
    int threads = 0;
    if (t && t->is_this_system && n_mask > 0) {
        int n = 0; // the mask, restricted to the plan's PUs, in place
        for (int i = 0; i < n_mask; i++) {
            if (!plan_cpus || in_set(plan_cpus, n_plan, mask[i])) {
                mask[n++] = mask[i];
            }
        }
        threads = imc_threads_on(t, mask, n, per_core, NULL);
    } else if (t && plan_cpus) {
        // another machine's topology: the plan's cores there, capped by this mask's PUs
        threads = imc_threads_on(t, plan_cpus, n_plan, per_core, NULL);
        threads = n_mask > 0 && threads > n_mask ? n_mask : threads;
    } else {
        threads = n_mask; // no topology: every PU of the mask
    }
    free(mask);
    return threads >= 1 ? threads : 1;
}
