/*
 * numa/topo: the host's topology as plain data, read with hwloc (DESIGN.md §2 numa/, §6
 * "Placement"; STYLE b.1 numa/topo.h).
 *
 * The summary the placement plan needs: NUMA nodes, the cores of each node with their PUs
 * (hardware threads, by OS index — what cpusets and sched_setaffinity use), and the GPUs with
 * their closest NUMA node. Only allowed resources are listed (hwloc drops CPUs and nodes outside
 * the process's cgroup, e.g. a Slurm allocation).
 *
 * Sources: imc_topo_load reads this machine, unless HWLOC_XMLFILE=<file.xml> or
 * HWLOC_SYNTHETIC="<description>" is set (hwloc honours both; tests and `imc plan` for another
 * machine use them); imc_topo_load_xml / imc_topo_load_synthetic read one explicitly. A topology
 * that is not this machine cannot be used for binding (is_this_system false).
 *
 * GPUs: OS devices "cudaN" (hwloc's CUDA plugin) if any; else "nvmlN"; else NVIDIA PCI display
 * controllers (vendor 0x10de, class 0x0300/0x0302) in PCI bus order, which is CUDA's order under
 * CUDA_DEVICE_ORDER=PCI_BUS_ID and, for identical GPUs, its default order too. Each GPU also
 * carries its PCI bus id, so a caller that knows a CUDA device's bus id finds its node whatever
 * the order (imc_topo_gpu_by_pci).
 *
 * Invariants: nodes[] in hwloc logical order; cores[] grouped by node in node order (node i owns
 * cores[nodes[i].core_begin .. + n_cores)); pus[] grouped by core the same way; n_nodes >= 1.
 * A node may have no cores (memory-only: HBM, CXL). Every array is owned by the struct.
 */
#ifndef IMC_NUMA_TOPO_H
#define IMC_NUMA_TOPO_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

struct imc_topo_node {
    int os_index;       // the OS (libnuma) node number
    int core_begin;     // first core of this node in cores[]
    int n_cores;        // cores of this node (0 for a memory-only node)
    uint64_t mem_bytes; // local memory in bytes, 0 when unknown
};

struct imc_topo_core {
    int node;     // index into nodes[]
    int pu_begin; // first PU of this core in pus[]
    int n_pus;    // hardware threads of this core, >= 1
};

struct imc_topo_gpu {
    int node;      // index into nodes[] of the closest NUMA node, -1 when unknown
    char name[32]; // "cuda0", "nvml0" or the PCI bus id "0000:17:00.0"
    char pci[16];  // PCI bus id "dddd:bb:dd.f" (lower-case hex), "" when unknown
};

struct imc_topo {
    int n_nodes;                 // NUMA nodes, >= 1
    struct imc_topo_node *nodes; // [n_nodes]
    int n_cores;                 // cores of all nodes
    struct imc_topo_core *cores; // [n_cores]
    int n_pus;                   // PUs of all cores
    int *pus;                    // [n_pus] PU OS indices
    int n_gpus;                  // GPUs found (see above)
    struct imc_topo_gpu *gpus;   // [n_gpus]
    bool is_this_system;         // binding with this topology is possible
    void *hw;                    // hwloc_topology_t (owned), NULL for hand-built topologies
};

// Reads this machine's topology (or HWLOC_XMLFILE / HWLOC_SYNTHETIC). Returns a new topology in
// *out; free with imc_topo_free. Returns IMC_ERR_NUMA (logged) when hwloc fails.
enum imc_status imc_topo_load(struct imc_topo **out);
// Reads a synthetic description such as "pack:2 numa:2 core:4 pu:2" (hwloc syntax). Returns
// IMC_ERR_ARG (logged with the text) when hwloc rejects it.
enum imc_status imc_topo_load_synthetic(struct imc_topo **out, const char *desc);
// Reads a saved topology (lstopo --of xml). Returns IMC_ERR_IO / IMC_ERR_FORMAT (logged with the
// path) when the file is missing or not an hwloc XML topology.
enum imc_status imc_topo_load_xml(struct imc_topo **out, const char *path);
// Frees t and its hwloc handle. NULL is a no-op.
void imc_topo_free(struct imc_topo *t);

// Index into t->nodes of the node with OS number os_index, or -1.
int imc_topo_node_index(const struct imc_topo *t, int os_index);
// Index into t->gpus of the GPU at PCI bus id `bus` ("domain:bus:device.function" in hex, any
// width of domain: CUDA writes "00000000:17:00.0", hwloc "0000:17:00.0"), -1 when none is.
int imc_topo_gpu_by_pci(const struct imc_topo *t, const char *bus);

#endif // IMC_NUMA_TOPO_H
