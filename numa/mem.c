/*
 * numa/mem: libnuma wrappers with the anonymous-mapping fallback of mem.h.
 */
#include "numa/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"

bool imc_numa_is_available(void)
{
    return numa_available() >= 0;
}

// True when node is a node of this machine (without NUMA support: only node 0).
static bool node_exists(int node)
{
    if (!imc_numa_is_available()) {
        return node == 0;
    }
    return node <= numa_max_node() && numa_bitmask_isbitset(numa_all_nodes_ptr, (unsigned)node);
}

static enum imc_status check_node(int node, const char *what)
{
    if (node >= 0 && !node_exists(node)) {
        IMC_LOG_ERR("%s: NUMA node %d does not exist (highest node %d)", what, node,
                    imc_numa_is_available() ? numa_max_node() : 0);
        return IMC_ERR_ARG;
    }
    return IMC_OK;
}

enum imc_status imc_numa_alloc_onnode(void **out, size_t size, int node)
{
    *out = NULL;
    if (size == 0) {
        IMC_LOG_ERR("numa alloc: size 0");
        return IMC_ERR_ARG;
    }
    IMC_TRY(check_node(node, "numa alloc"));
    void *p = NULL;
    if (node >= 0 && imc_numa_is_available()) {
        p = numa_alloc_onnode(size, node);
    } else {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p = p == MAP_FAILED ? NULL : p;
    }
    if (!p) {
        IMC_LOG_ERR("numa alloc: cannot map %zu bytes on node %d: %s", size, node,
                    strerror(errno));
        return IMC_ERR_NOMEM;
    }
    *out = p;
    return IMC_OK;
}

void imc_numa_free(void *p, size_t size)
{
    if (p) {
        munmap(p, size); // numa_free is munmap too
    }
}

enum imc_status imc_numa_bind_range(void *ptr, size_t len, int node)
{
    IMC_TRY(check_node(node, "numa bind"));
    if (!imc_numa_is_available() || node < 0 || len == 0) {
        return IMC_OK;
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)ptr & ~(page - 1);
    uintptr_t end = ((uintptr_t)ptr + len + page - 1) & ~(page - 1);
    struct bitmask *mask = numa_allocate_nodemask();
    if (!mask) {
        IMC_LOG_ERR("numa bind: out of memory for a node mask");
        return IMC_ERR_NOMEM;
    }
    numa_bitmask_setbit(mask, (unsigned)node);
    enum imc_status st = IMC_OK;
    if (mbind((void *)start, end - start, MPOL_PREFERRED, mask->maskp, mask->size + 1,
              MPOL_MF_MOVE) != 0) {
        IMC_LOG_WRN("numa bind: placing %zu bytes at %p on node %d failed: %s", len, ptr, node,
                    strerror(errno));
        st = IMC_ERR_NUMA;
    }
    numa_free_nodemask(mask);
    return st;
}

int imc_numa_node_of(const void *p)
{
    if (!imc_numa_is_available()) {
        return -1;
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    void *pages[1] = {(void *)((uintptr_t)p & ~(page - 1))};
    int status[1] = {-1};
    if (numa_move_pages(0, 1, pages, NULL, status, 0) != 0 || status[0] < 0) {
        return -1;
    }
    return status[0];
}

enum imc_status imc_numa_resident(const void *ptr, size_t len, uint64_t *bytes)
{
    *bytes = 0;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t first = (uintptr_t)ptr / page, last = ((uintptr_t)ptr + len + page - 1) / page;
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return IMC_ERR_UNSUPPORTED;
    }
    enum imc_status st = IMC_OK;
    uint64_t ent[512];
    for (uintptr_t p = first; p < last && st == IMC_OK;) {
        const size_t n = last - p < 512 ? (size_t)(last - p) : 512;
        const ssize_t got = pread(fd, ent, n * sizeof(ent[0]), (off_t)(p * sizeof(ent[0])));
        if (got != (ssize_t)(n * sizeof(ent[0]))) {
            st = IMC_ERR_UNSUPPORTED;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            *bytes += (ent[i] >> 62) & 3 ? page : 0; // bit 63 present, bit 62 swapped
        }
        p += n;
    }
    close(fd);
    return st;
}
