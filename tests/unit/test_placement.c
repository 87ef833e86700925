/*
 * tests/unit/test_placement: numa/topo + the host placement of numa/plan.h on synthetic hwloc
 * topologies, saved XML topologies (tests/data/topo) and a hand-built one. Expected core sets
 * are written out by hand from the topology descriptions (synthetic PUs are numbered in order;
 * the XML ones interleave hyper-threads: core k has PUs k and k+8).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "numa/plan.h"
#include "numa/topo.h"
#include "tests/check.h"
#include "tests/mpi/lsan.h"

static struct imc_topo *synth(const char *desc)
{
    struct imc_topo *t = NULL;
    CHECK(imc_topo_load_synthetic(&t, desc) == IMC_OK, "load '%s'", desc);
    return t;
}

static struct imc_placement *plan(const struct imc_topo *t, int n, int gpus)
{
    struct imc_placement *p = NULL;
    CHECK(t && imc_place_plan(t, n, gpus, &p) == IMC_OK, "plan %d ranks, %d gpus", n, gpus);
    return p;
}

// Checks rank r of p: node index, cpu list text, shared flag.
static void expect(const struct imc_placement *p, int r, int node, const char *cpus, bool shared)
{
    if (!p) {
        CHECK(0, "no placement");
        return;
    }
    char buf[128];
    const struct imc_place *pl = &p->ranks[r];
    imc_place_cpulist(pl->cpus, pl->n_cpus, buf, sizeof(buf));
    CHECK(pl->node == node, "rank %d: node %d, expected %d", r, pl->node, node);
    CHECK(strcmp(buf, cpus) == 0, "rank %d: cpus '%s', expected '%s'", r, buf, cpus);
    CHECK(pl->shared == shared, "rank %d: shared %d, expected %d", r, pl->shared, shared);
}

// No PU appears in two ranks, and each rank's PUs belong to its node (or block of nodes).
static void expect_disjoint(const struct imc_topo *t, const struct imc_placement *p)
{
    int dup = 0, wrong_node = 0;
    for (int r = 0; r < p->n_ranks; r++) {
        const struct imc_place *a = &p->ranks[r];
        for (int i = 0; i < a->n_cpus; i++) {
            for (int q = r + 1; q < p->n_ranks; q++) {
                for (int j = 0; j < p->ranks[q].n_cpus; j++) {
                    dup += a->cpus[i] == p->ranks[q].cpus[j];
                }
            }
            int found = 0;
            for (int k = 0; k < a->n_nodes; k++) {
                const struct imc_topo_node *nd = &t->nodes[a->node + k];
                for (int c = nd->core_begin; c < nd->core_begin + nd->n_cores; c++) {
                    const struct imc_topo_core *core = &t->cores[c];
                    for (int u = 0; u < core->n_pus; u++) {
                        found |= t->pus[core->pu_begin + u] == a->cpus[i];
                    }
                }
            }
            wrong_node += !found;
        }
    }
    CHECK(dup == 0, "%d PUs assigned to two ranks", dup);
    CHECK(wrong_node == 0, "%d PUs outside their rank's node", wrong_node);
}

static void test_four_nodes(void)
{
    struct imc_topo *t = synth("pack:2 numa:2 core:4 pu:2");
    CHECK(t && t->n_nodes == 4 && t->n_cores == 16 && t->n_pus == 32, "4 nodes, 16 cores, 32 PUs");
    CHECK(t && !t->is_this_system && t->n_gpus == 0, "synthetic: not this system, no GPU");
    struct imc_placement *p = plan(t, 4, -1);
    expect(p, 0, 0, "0-7", false);
    expect(p, 1, 1, "8-15", false);
    expect(p, 2, 2, "16-23", false);
    expect(p, 3, 3, "24-31", false);
    CHECK(p && !p->oversubscribed && p->ranks[3].n_cores == 4 && p->ranks[3].gpu == -1,
          "4 cores each, CPU ranks");
    if (p) {
        expect_disjoint(t, p);
    }
    imc_placement_free(p);
    // 8 ranks: round-robin, two per node, each half of the node's cores.
    p = plan(t, 8, 0);
    expect(p, 0, 0, "0-3", false);
    expect(p, 4, 0, "4-7", false);
    expect(p, 3, 3, "24-27", false);
    expect(p, 7, 3, "28-31", false);
    if (p) {
        expect_disjoint(t, p);
    }
    imc_placement_free(p);
    // 2 ranks: a block of two whole nodes each.
    p = plan(t, 2, 0);
    expect(p, 0, 0, "0-15", false);
    expect(p, 1, 2, "16-31", false);
    CHECK(p && p->ranks[0].n_nodes == 2 && p->ranks[1].n_nodes == 2, "blocks of 2 nodes");
    if (p) {
        expect_disjoint(t, p);
    }
    imc_placement_free(p);
    imc_topo_free(t);
}

static void test_two_nodes_and_one(void)
{
    struct imc_topo *t = synth("numa:2 core:4 pu:2");
    struct imc_placement *p = plan(t, 4, -1);
    expect(p, 0, 0, "0-3", false); // local ranks 0, 2 on node 0
    expect(p, 1, 1, "8-11", false);
    expect(p, 2, 0, "4-7", false);
    expect(p, 3, 1, "12-15", false);
    if (p) {
        expect_disjoint(t, p);
    }
    imc_placement_free(p);
    imc_topo_free(t);

    t = synth("core:8 pu:1");
    CHECK(t && t->n_nodes == 1 && t->n_cores == 8, "one node of 8 cores");
    p = plan(t, 1, -1);
    expect(p, 0, 0, "0-7", false);
    imc_placement_free(p);
    p = plan(t, 3, -1); // 8 cores over 3 ranks: 2, 3, 3
    expect(p, 0, 0, "0-1", false);
    expect(p, 1, 0, "2-4", false);
    expect(p, 2, 0, "5-7", false);
    imc_placement_free(p);
    imc_topo_free(t);
}

// More ranks than cores: shared cores, flagged (the caller warns); never an error.
static void test_oversubscribed(void)
{
    struct imc_topo *t = synth("core:2 pu:1");
    struct imc_placement *p = plan(t, 4, -1);
    expect(p, 0, 0, "0", true);
    expect(p, 1, 0, "0", true);
    expect(p, 2, 0, "1", true);
    expect(p, 3, 0, "1", true);
    CHECK(p && p->oversubscribed, "oversubscribed flag");
    imc_placement_free(p);
    p = plan(t, 3, -1);
    expect(p, 0, 0, "0", true);
    expect(p, 1, 0, "0", true);
    expect(p, 2, 0, "1", false);
    imc_placement_free(p);
    imc_topo_free(t);
}

static void test_gpus(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/data/topo/2pack_4gpu.xml", dir);
    struct imc_topo *t = NULL;
    CHECK(imc_topo_load_xml(&t, path) == IMC_OK, "load %s", path);
    if (!t) {
        return;
    }
    CHECK(t->n_nodes == 2 && t->n_cores == 8 && t->n_pus == 16, "2 nodes, 8 cores, 16 PUs");
    CHECK(t->nodes[1].mem_bytes == (uint64_t)128 << 30, "node 1 memory %llu",
          (unsigned long long)t->nodes[1].mem_bytes);
    CHECK(t->n_gpus == 4, "4 NVIDIA GPUs (the VGA is not one), found %d", t->n_gpus);
    if (t->n_gpus == 4) {
        CHECK(t->gpus[0].node == 0 && t->gpus[1].node == 0 && t->gpus[2].node == 1 &&
                  t->gpus[3].node == 1,
              "GPU nodes");
        CHECK(strcmp(t->gpus[2].name, "0000:57:00.0") == 0, "GPU 2 is %s", t->gpus[2].name);
    }
    struct imc_placement *p = plan(t, 4, -1);
    expect(p, 0, 0, "0-1,8-9", false); // GPUs 0, 1 on node 0 share its 4 cores
    expect(p, 1, 0, "2-3,10-11", false);
    expect(p, 2, 1, "4-5,12-13", false);
    expect(p, 3, 1, "6-7,14-15", false);
    CHECK(p && p->ranks[3].gpu == 3 && !p->gpus_shared, "rank 3 on GPU 3");
    imc_placement_free(p);
    p = plan(t, 4, 2); // two GPUs used: both on node 0, two ranks each
    CHECK(p && p->ranks[2].gpu == 0 && p->ranks[3].gpu == 1 && p->gpus_shared, "GPUs shared");
    expect(p, 3, 0, "3,11", false);
    imc_placement_free(p);
    p = plan(t, 2, 0); // CPU only: one rank per node
    expect(p, 0, 0, "0-3,8-11", false);
    expect(p, 1, 1, "4-7,12-15", false);
    imc_placement_free(p);
    imc_topo_free(t);

    snprintf(path, sizeof(path), "%s/tests/data/topo/2pack_4cuda.xml", dir);
    CHECK(imc_topo_load_xml(&t, path) == IMC_OK, "load %s", path);
    if (t) {
        CHECK(t->n_gpus == 4 && strcmp(t->gpus[0].name, "cuda0") == 0 && t->gpus[0].node == 1 &&
                  t->gpus[2].node == 0,
              "CUDA devices in CUDA order with their nodes");
        p = plan(t, 1, -1);
        expect(p, 0, 1, "4-7,12-15", false); // cuda0 sits on node 1
        imc_placement_free(p);
    }
    imc_topo_free(t);
}

// Node 1 holds memory only (HBM/CXL): no rank goes there.
static void test_memory_only_node(void)
{
    struct imc_topo_node nodes[3] = {{0, 0, 2, 0}, {1, 2, 0, 0}, {2, 2, 2, 0}};
    struct imc_topo_core cores[4] = {{0, 0, 1}, {0, 1, 1}, {2, 2, 1}, {2, 3, 1}};
    int pus[4] = {0, 1, 2, 3};
    struct imc_topo t = {.n_nodes = 3, .nodes = nodes, .n_cores = 4, .cores = cores,
                         .n_pus = 4, .pus = pus};
    struct imc_placement *p = plan(&t, 2, 0);
    expect(p, 0, 0, "0-1", false);
    expect(p, 1, 2, "2-3", false);
    imc_placement_free(p);
}

static void test_env_and_errors(const char *dir)
{
    struct imc_topo *t = NULL;
    setenv("HWLOC_SYNTHETIC", "numa:3 core:2 pu:1", 1);
    CHECK(imc_topo_load(&t) == IMC_OK && t->n_nodes == 3 && t->n_cores == 6,
          "HWLOC_SYNTHETIC honoured");
    imc_topo_free(t);
    unsetenv("HWLOC_SYNTHETIC");
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/data/topo/2pack_4gpu.xml", dir);
    setenv("HWLOC_XMLFILE", path, 1);
    CHECK(imc_topo_load(&t) == IMC_OK && t->n_nodes == 2 && t->n_gpus == 4,
          "HWLOC_XMLFILE honoured");
    imc_topo_free(t);
    unsetenv("HWLOC_XMLFILE");

    CHECK(imc_topo_load(&t) == IMC_OK && t->is_this_system && t->n_pus >= 1, "this machine");
    struct imc_placement *p = plan(t, 1, 0);
    CHECK(p && p->ranks[0].n_cpus == t->n_pus, "one rank gets every PU of this machine");
    imc_placement_free(p);
    CHECK(imc_place_plan(t, 0, 0, &p) == IMC_ERR_ARG && !p, "0 ranks rejected");
    CHECK(imc_place_plan(t, 1, -2, &p) == IMC_ERR_ARG, "gpus -2 rejected");
    imc_topo_free(t);

    CHECK(imc_topo_load_synthetic(&t, "bogus:7") == IMC_ERR_ARG && !t, "bad synthetic");
    CHECK(imc_topo_load_xml(&t, "/nonexistent/topo.xml") == IMC_ERR_IO, "missing XML");
    snprintf(path, sizeof(path), "%s/tests/data/topo/gen_topo.py", dir);
    CHECK(imc_topo_load_xml(&t, path) == IMC_ERR_FORMAT, "not XML");
}

static void test_cpulist(void)
{
    int a[] = {0, 1, 2, 5, 7, 8, 10};
    char buf[64];
    CHECK(strcmp(imc_place_cpulist(a, 7, buf, sizeof(buf)), "0-2,5,7-8,10") == 0, "%s", buf);
    CHECK(strcmp(imc_place_cpulist(a, 0, buf, sizeof(buf)), "") == 0, "empty");
    CHECK(strcmp(imc_place_cpulist(a, 7, buf, 10), "0-2,5...") == 0, "truncated: %s", buf);
}

int main(void)
{
    const char *dir = getenv("IMC_SOURCE_DIR");
    if (!dir || !*dir) {
        dir = ".";
    }
    test_four_nodes();
    test_two_nodes_and_one();
    test_oversubscribed();
    test_gpus(dir);
    test_memory_only_node();
    test_env_and_errors(dir);
    test_cpulist();
    return check_summary();
}
