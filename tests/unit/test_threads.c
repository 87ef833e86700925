/*
 * tests/unit/test_threads: the default thread count (numa/threads.h). On synthetic topologies:
 * one thread per physical core of a PU set, K per core with --threads-per-core K but never more
 * than the core's PUs in the set. On this machine: the default follows the affinity mask (a
 * mask of one PU gives 1 thread, the full mask the cores of this machine), and a placement's
 * PUs restrict it.
 */
#include <sched.h>
#include <unistd.h>

#include "numa/threads.h"
#include "numa/topo.h"
#include "tests/check.h"
#include "tests/mpi/lsan.h"

static void test_synthetic(void)
{
    struct imc_topo *t = NULL;
    CHECK(imc_topo_load_synthetic(&t, "pack:1 numa:2 core:4 pu:2") == IMC_OK, "synthetic");
    if (!t) {
        return;
    }
    CHECK(t->n_cores == 8 && t->n_pus == 16, "8 cores of 2 PUs: %d %d", t->n_cores, t->n_pus);
    int all[16], n_cores = 0;
    for (int i = 0; i < 16; i++) {
        all[i] = t->pus[i];
    }
    CHECK(imc_threads_on(t, all, 16, 1, &n_cores) == 8 && n_cores == 8, "all PUs: 8 threads");
    CHECK(imc_threads_on(t, all, 16, 2, NULL) == 16, "2 per core: 16");
    CHECK(imc_threads_on(t, all, 16, 99, NULL) == 16, "per core capped by the core's PUs");
    // one PU of each of the first 4 cores
    const int one_each[4] = {t->pus[0], t->pus[2], t->pus[4], t->pus[6]};
    CHECK(imc_threads_on(t, one_each, 4, 2, &n_cores) == 4 && n_cores == 4,
          "one PU per core: 4 threads even with 2 per core");
    // both PUs of 2 cores
    const int two_cores[4] = {t->pus[0], t->pus[1], t->pus[2], t->pus[3]};
    CHECK(imc_threads_on(t, two_cores, 4, 1, &n_cores) == 2 && n_cores == 2, "2 cores: 2");
    CHECK(imc_threads_on(t, two_cores, 0, 1, &n_cores) == 0 && n_cores == 0, "no PUs: 0");
    // not this machine: the plan's cores, capped by the real mask's PUs
    int mask[4096];
    const int n_mask = imc_threads_affinity(mask, 4096);
    const int want = n_mask < 2 ? n_mask : 2;
    CHECK(imc_threads_default(t, two_cores, 4, 1) == (want > 0 ? want : 1),
          "synthetic plan of 2 cores, capped by the mask (%d PUs)", n_mask);
    imc_topo_free(t);
}

static void test_this_machine(void)
{
    struct imc_topo *t = NULL;
    if (imc_topo_load(&t) != IMC_OK || !t->is_this_system) {
        CHECK_SKIP("default threads on this machine", "no topology of this machine (hwloc)");
        imc_topo_free(t);
        return;
    }
    cpu_set_t saved;
    CHECK(sched_getaffinity(0, sizeof(saved), &saved) == 0, "read the affinity");
    const int n_pus = CPU_COUNT(&saved);
    int mask[4096];
    const int n_mask = imc_threads_affinity(mask, 4096);
    CHECK(n_mask == n_pus, "affinity as PUs: %d vs %d", n_mask, n_pus);
    const int def = imc_threads_default(t, NULL, 0, 1);
    CHECK(def >= 1 && def <= n_pus, "default %d within 1..%d PUs", def, n_pus);
    CHECK(imc_threads_default(t, NULL, 0, 1024) == n_pus, "every hardware thread with K large");
    // a placement of the first PU only
    CHECK(imc_threads_default(t, mask, 1, 1) == 1, "placement of one PU: 1 thread");
    // a mask of one PU (as taskset -c would set)
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(mask[0], &one);
    CHECK(sched_setaffinity(0, sizeof(one), &one) == 0, "restrict the affinity");
    CHECK(imc_threads_default(t, NULL, 0, 1) == 1, "a mask of one PU: 1 thread");
    CHECK(sched_setaffinity(0, sizeof(saved), &saved) == 0, "restore the affinity");
    CHECK(imc_threads_default(t, NULL, 0, 1) == def, "restored");
    imc_topo_free(t);
}

int main(void)
{
    test_synthetic();
    test_this_machine();
    return check_summary();
}
