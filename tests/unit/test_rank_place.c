/*
 * tests/unit/test_rank_place: a rank's placement with GPUs (coordinator/rank_place.h) on the
 * saved topology tests/data/topo/2pack_4gpu.xml (HWLOC_XMLFILE; not this machine, so the plan is
 * computed and nothing is bound): 2 nodes of 4 cores (PUs k and k+8), NVIDIA GPUs at PCI
 * 0000:17:00.0 and 0000:18:00.0 on node 0, 0000:57:00.0 and 0000:58:00.0 on node 1. The CUDA
 * devices are given by bus id in an order other than hwloc's (as CUDA_DEVICE_ORDER or
 * CUDA_VISIBLE_DEVICES make them), and the rank must sit on its CUDA device's node; a bus id the
 * topology lacks goes round-robin with a warning; no GPUs plans a CPU rank as before. Also
 * numa/topo's bus id lookup (CUDA's 8-digit domain, hwloc's 4, upper case, bad text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/rank_place.h"
#include "numa/topo.h"
#include "tests/check.h"
#include "tests/logcap.h"

static struct imc_rank_gpus gpus(int n, const char *const *bus)
{
    struct imc_rank_gpus g = {.n = n};
    for (int i = 0; i < n; i++) {
        snprintf(g.pci[i], sizeof(g.pci[i]), "%s", bus[i]);
    }
    return g;
}

static void expect(const struct imc_rank_gpus *g, int node, int gpu, const char *cpus, int n_wrn,
                   const char *what)
{
    struct imc_rank_place p;
    struct logcap lc;
    logcap_start(&lc);
    const enum imc_status st = imc_rank_place(NULL, g, &p);
    logcap_stop();
    CHECK(st == IMC_OK && p.node == node && p.gpu == gpu && strcmp(p.cpus, cpus) == 0 && !p.pinned,
          "%s: node %d gpu %d PUs %s pinned %d (want node %d gpu %d PUs %s)", what, p.node, p.gpu,
          p.cpus, (int)p.pinned, node, gpu, cpus);
    CHECK(lc.n_wrn == n_wrn && lc.n_err == 0, "%s: %d warnings, %d errors: %s", what, lc.n_wrn,
          lc.n_err, lc.text);
}

static void test_lookup(void)
{
    struct imc_topo *t = NULL;
    CHECK(imc_topo_load(&t) == IMC_OK && t && t->n_gpus == 4, "topology with 4 GPUs");
    if (!t || t->n_gpus != 4) {
        imc_topo_free(t);
        return;
    }
    CHECK(strcmp(t->gpus[2].pci, "0000:57:00.0") == 0, "GPU 2 bus id '%s'", t->gpus[2].pci);
    CHECK(imc_topo_gpu_by_pci(t, "00000000:57:00.0") == 2, "CUDA's 8-digit domain");
    CHECK(imc_topo_gpu_by_pci(t, "0000:18:00.0") == 1, "hwloc's 4-digit domain");
    CHECK(imc_topo_gpu_by_pci(t, "0:58:0.0") == 3, "short fields");
    CHECK(imc_topo_gpu_by_pci(t, "0000:5A:00.0") == -1, "absent bus");
    CHECK(imc_topo_gpu_by_pci(t, "0000:57:00.1") == -1, "other function");
    CHECK(imc_topo_gpu_by_pci(t, "") == -1 && imc_topo_gpu_by_pci(t, "0000:57:00") == -1 &&
              imc_topo_gpu_by_pci(t, "0000:57:00.0x") == -1 &&
              imc_topo_gpu_by_pci(t, "57:00.0") == -1,
          "malformed bus ids match nothing");
    imc_topo_free(t);
}

int main(void)
{
    const char *dir = getenv("IMC_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/data/topo/2pack_4gpu.xml", dir && *dir ? dir : ".");
    setenv("HWLOC_XMLFILE", path, 1);
    test_lookup();

    const char *b57[] = {"00000000:57:00.0"};
    struct imc_rank_gpus g = gpus(1, b57);
    expect(&g, 1, 0, "4-7,12-15", 0, "CUDA device 0 is hwloc's GPU 2 (node 1)");
    const char *b17[] = {"00000000:17:00.0", "00000000:57:00.0"};
    g = gpus(2, b17);
    expect(&g, 0, 0, "0-3,8-11", 0, "CUDA device 0 on node 0");
    const char *b58[] = {"00000000:58:00.0", "00000000:17:00.0", "00000000:18:00.0"};
    g = gpus(3, b58);
    expect(&g, 1, 0, "4-7,12-15", 0, "CUDA device 0 at 58 (node 1), three visible");
    const char *bad[] = {"00000000:99:00.0"};
    g = gpus(1, bad);
    expect(&g, 0, 0, "0-3,8-11", 1, "unknown bus: round-robin from node 0, warned");
    g = gpus(0, NULL);
    expect(&g, 0, -1, "0-15", 0, "no GPU: one CPU rank over both nodes");
    expect(NULL, 0, -1, "0-15", 0, "NULL: as no GPU");

    // The thread default of another machine's topology is capped by this machine's PUs (2 here),
    // so only an explicit -t is checked; the plan it counts is the one checked above.
    g = gpus(1, b57);
    struct logcap lc;
    logcap_start(&lc); // -t 3 > this machine's PUs: a warning
    CHECK(imc_rank_threads(NULL, &g, 3, 1) == 3, "-t 3 stays 3");
    logcap_stop();

    struct imc_rank_gpus cpu;
    imc_rank_gpus_for(IMC_DEVICE_CPU, &cpu);
    CHECK(cpu.n == 0, "--device cpu plans no GPU (%d)", cpu.n);
    imc_rank_gpus_for(IMC_DEVICE_AUTO, &cpu);
    CHECK(cpu.n == 0, "auto without a CUDA device plans no GPU (%d)", cpu.n);
    unsetenv("HWLOC_XMLFILE");
    return check_summary();
}
