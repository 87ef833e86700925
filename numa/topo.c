/*
 * numa/topo: hwloc -> struct imc_topo (topo.h).
 */
#include "numa/topo.h"

#include <ctype.h>
#include <errno.h>
#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

enum gpu_source { GPU_CUDA, GPU_NVML, GPU_PCI };

void imc_topo_free(struct imc_topo *t)
{
    if (!t) {
        return;
    }
    if (t->hw) {
        hwloc_topology_destroy((hwloc_topology_t)t->hw);
    }
    free(t->nodes);
    free(t->cores);
    free(t->pus);
    free(t->gpus);
    free(t);
}

int imc_topo_node_index(const struct imc_topo *t, int os_index)
{
    for (int i = 0; i < t->n_nodes; i++) {
        if (t->nodes[i].os_index == os_index) {
            return i;
        }
    }
    return -1;
}

// Parses "domain:bus:device.function" (hex) into v; false for anything else.
static bool parse_pci(const char *s, unsigned long v[4])
{
    char *end;
    for (int i = 0; i < 4; i++) {
        if (!s || !isxdigit((unsigned char)*s)) {
            return false;
        }
        v[i] = strtoul(s, &end, 16);
        const char sep = i < 2 ? ':' : i == 2 ? '.' : '\0';
        if (*end != sep) {
            return false;
        }
        s = end + 1;
    }
    return true;
}

int imc_topo_gpu_by_pci(const struct imc_topo *t, const char *bus)
{
    unsigned long want[4], have[4];
    if (!parse_pci(bus, want)) {
        return -1;
    }
    for (int i = 0; i < t->n_gpus; i++) {
        if (parse_pci(t->gpus[i].pci, have) && memcmp(want, have, sizeof(want)) == 0) {
            return i;
        }
    }
    return -1;
}

// Appends the cores inside node i's cpuset that no earlier node claimed.
static void add_node_cores(struct imc_topo *t, hwloc_topology_t hw, int i, hwloc_obj_type_t ct,
                           unsigned char *claimed)
{
    hwloc_obj_t node = hwloc_get_obj_by_type(hw, HWLOC_OBJ_NUMANODE, (unsigned)i);
    struct imc_topo_node *tn = &t->nodes[i];
    tn->os_index = (int)node->os_index;
    tn->mem_bytes = node->attr ? node->attr->numanode.local_memory : 0;
    tn->core_begin = t->n_cores;
    int ncores = hwloc_get_nbobjs_by_type(hw, ct);
    for (int k = 0; k < ncores; k++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(hw, ct, (unsigned)k);
        if (claimed[k] || hwloc_bitmap_iszero(core->cpuset) || !node->cpuset ||
            !hwloc_bitmap_isincluded(core->cpuset, node->cpuset)) {
            continue;
        }
        claimed[k] = 1;
        struct imc_topo_core *tc = &t->cores[t->n_cores++];
        tc->node = i;
        tc->pu_begin = t->n_pus;
        unsigned pu;
        hwloc_bitmap_foreach_begin(pu, core->cpuset)
        {
            t->pus[t->n_pus++] = (int)pu;
        }
        hwloc_bitmap_foreach_end();
        tc->n_pus = t->n_pus - tc->pu_begin;
    }
    tn->n_cores = t->n_cores - tn->core_begin;
}

static int gpu_matches(hwloc_obj_t o, enum gpu_source src)
{
    switch (src) {
    case GPU_CUDA:
        return o->type == HWLOC_OBJ_OS_DEVICE && o->attr->osdev.type == HWLOC_OBJ_OSDEV_COPROC &&
               o->subtype && strcmp(o->subtype, "CUDA") == 0;
    case GPU_NVML:
        return o->type == HWLOC_OBJ_OS_DEVICE && o->attr->osdev.type == HWLOC_OBJ_OSDEV_GPU &&
               o->name && strncmp(o->name, "nvml", 4) == 0;
    case GPU_PCI:
        return o->type == HWLOC_OBJ_PCI_DEVICE && o->attr->pcidev.vendor_id == 0x10de &&
               (o->attr->pcidev.class_id == 0x0300 || o->attr->pcidev.class_id == 0x0302);
    }
    return 0;
}

// The node index of the closest NUMA node of an I/O object, -1 when it spans several or none.
static int io_node(const struct imc_topo *t, hwloc_topology_t hw, hwloc_obj_t o)
{
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(hw, o);
    if (!anc || !anc->nodeset || hwloc_bitmap_weight(anc->nodeset) != 1) {
        return -1;
    }
    return imc_topo_node_index(t, hwloc_bitmap_first(anc->nodeset));
}

// The PCI bus id of o or of its closest PCI ancestor (an OS device's), "" when none.
static void gpu_pci(hwloc_obj_t o, char *buf, size_t size)
{
    while (o && o->type != HWLOC_OBJ_PCI_DEVICE) {
        o = o->parent;
    }
    buf[0] = '\0';
    if (o) {
        snprintf(buf, size, "%04x:%02x:%02x.%01x", (unsigned)o->attr->pcidev.domain,
                 (unsigned)o->attr->pcidev.bus, (unsigned)o->attr->pcidev.dev,
                 (unsigned)o->attr->pcidev.func);
    }
}

static void gpu_name(hwloc_obj_t o, char *buf, size_t size)
{
    if (o->type == HWLOC_OBJ_PCI_DEVICE) {
        gpu_pci(o, buf, size);
    } else {
        snprintf(buf, size, "%s", o->name ? o->name : "?");
    }
}

// Trailing number of "cuda12" -> 12 (for ordering OS devices); PCI names sort as found.
static long name_number(const char *s)
{
    const char *p = s + strlen(s);
    while (p > s && p[-1] >= '0' && p[-1] <= '9') {
        p--;
    }
    return *p ? strtol(p, NULL, 10) : 0;
}

static enum imc_status find_gpus(struct imc_topo *t, hwloc_topology_t hw)
{
    for (int src = GPU_CUDA; src <= GPU_PCI && t->n_gpus == 0; src++) {
        hwloc_obj_type_t type = src == GPU_PCI ? HWLOC_OBJ_PCI_DEVICE : HWLOC_OBJ_OS_DEVICE;
        int n = 0;
        for (hwloc_obj_t o = NULL; (o = hwloc_get_next_obj_by_type(hw, type, o));) {
            n += gpu_matches(o, (enum gpu_source)src);
        }
        if (n == 0) {
            continue;
        }
        t->gpus = calloc((size_t)n, sizeof(*t->gpus));
        if (!t->gpus) {
            IMC_LOG_ERR("out of memory listing %d GPUs", n);
            return IMC_ERR_NOMEM;
        }
        for (hwloc_obj_t o = NULL; (o = hwloc_get_next_obj_by_type(hw, type, o));) {
            if (!gpu_matches(o, (enum gpu_source)src)) {
                continue;
            }
            struct imc_topo_gpu g = {.node = io_node(t, hw, o)};
            gpu_name(o, g.name, sizeof(g.name));
            gpu_pci(o, g.pci, sizeof(g.pci));
            int j = t->n_gpus++;
            while (src != GPU_PCI && j > 0 &&
                   name_number(t->gpus[j - 1].name) > name_number(g.name)) {
                t->gpus[j] = t->gpus[j - 1];
                j--;
            }
            t->gpus[j] = g;
        }
    }
    return IMC_OK;
}

// Builds the summary of a loaded hwloc topology; takes ownership of hw (also on failure).
static enum imc_status summarize(hwloc_topology_t hw, struct imc_topo **out)
{
    struct imc_topo *t = calloc(1, sizeof(*t));
    if (!t) {
        hwloc_topology_destroy(hw);
        IMC_LOG_ERR("out of memory for the topology summary");
        return IMC_ERR_NOMEM;
    }
    t->hw = hw;
    t->is_this_system = hwloc_topology_is_thissystem(hw) != 0;
    hwloc_obj_type_t ct =
        hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
    int nn = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_NUMANODE);
    int nc = hwloc_get_nbobjs_by_type(hw, ct);
    int np = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_PU);
    t->nodes = calloc((size_t)(nn > 0 ? nn : 1), sizeof(*t->nodes));
    t->cores = calloc((size_t)(nc > 0 ? nc : 1), sizeof(*t->cores));
    t->pus = calloc((size_t)(np > 0 ? np : 1), sizeof(*t->pus));
    unsigned char *claimed = calloc((size_t)(nc > 0 ? nc : 1), 1);
    if (!t->nodes || !t->cores || !t->pus || !claimed) {
        free(claimed);
        imc_topo_free(t);
        IMC_LOG_ERR("out of memory for a topology of %d nodes, %d cores", nn, nc);
        return IMC_ERR_NOMEM;
    }
    if (nn < 1 || nc < 1) {
        free(claimed);
        imc_topo_free(t);
        IMC_LOG_ERR("hwloc topology has %d NUMA nodes and %d cores; expected at least one of each",
                    nn, nc);
        return IMC_ERR_NUMA;
    }
    t->n_nodes = nn;
    for (int i = 0; i < nn; i++) {
        add_node_cores(t, hw, i, ct, claimed);
    }
    free(claimed);
    enum imc_status st = find_gpus(t, hw);
    if (st != IMC_OK) {
        imc_topo_free(t);
        return st;
    }
    *out = t;
    return IMC_OK;
}

static enum imc_status open_hw(hwloc_topology_t *hw)
{
    if (hwloc_topology_init(hw) != 0) {
        IMC_LOG_ERR("hwloc_topology_init failed: %s", strerror(errno));
        return IMC_ERR_NUMA;
    }
    hwloc_topology_set_io_types_filter(*hw, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    return IMC_OK;
}

static enum imc_status load_hw(hwloc_topology_t hw, struct imc_topo **out, const char *what)
{
    if (hwloc_topology_load(hw) != 0) {
        IMC_LOG_ERR("%s: hwloc could not load the topology: %s", what, strerror(errno));
        hwloc_topology_destroy(hw);
        return IMC_ERR_NUMA;
    }
    return summarize(hw, out);
}

enum imc_status imc_topo_load(struct imc_topo **out)
{
    *out = NULL;
    hwloc_topology_t hw;
    IMC_TRY(open_hw(&hw));
    return load_hw(hw, out, "this machine");
}

enum imc_status imc_topo_load_synthetic(struct imc_topo **out, const char *desc)
{
    *out = NULL;
    hwloc_topology_t hw;
    IMC_TRY(open_hw(&hw));
    if (hwloc_topology_set_synthetic(hw, desc) != 0) {
        IMC_LOG_ERR("synthetic topology '%s': hwloc rejects the description", desc);
        hwloc_topology_destroy(hw);
        return IMC_ERR_ARG;
    }
    return load_hw(hw, out, desc);
}

enum imc_status imc_topo_load_xml(struct imc_topo **out, const char *path)
{
    *out = NULL;
    if (access(path, R_OK) != 0) {
        IMC_LOG_ERR("%s: cannot read the topology file: %s", path, strerror(errno));
        return IMC_ERR_IO;
    }
    hwloc_topology_t hw;
    IMC_TRY(open_hw(&hw));
    if (hwloc_topology_set_xml(hw, path) != 0 || hwloc_topology_load(hw) != 0) {
        IMC_LOG_ERR("%s: not an hwloc XML topology", path);
        hwloc_topology_destroy(hw);
        return IMC_ERR_FORMAT;
    }
    return summarize(hw, out);
}
