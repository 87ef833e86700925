/*
 * numa/mem: NUMA-local memory (DESIGN.md §6 "the rank's weights and buffers live on its node";
 * STYLE b.1 numa/mem.c — the only place in numa/ that allocates bulk memory).
 *
 * Allocations are page-granular anonymous mappings: on a NUMA system numa_alloc_onnode (pages
 * bound to the node, placed on first touch), otherwise — libnuma reports no NUMA
 * (numa_available() < 0), or node < 0 asks for no preference — a plain anonymous mmap, so both
 * kinds are freed the same way (imc_numa_free needs the size, like munmap). Memory is zeroed.
 * Meant for large, long-lived buffers (weight copies, arenas), not for small objects.
 */
#ifndef IMC_NUMA_MEM_H
#define IMC_NUMA_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

// True when the kernel and libnuma support NUMA policies (numa_available() >= 0).
bool imc_numa_is_available(void);

// Allocates size bytes (> 0) on NUMA node `node` (OS number; < 0: no preference). Returns the
// new memory in *out; free with imc_numa_free(*out, size). Returns IMC_ERR_ARG (logged) for a node
// that does not exist, IMC_ERR_NOMEM (logged) when the mapping fails.
enum imc_status imc_numa_alloc_onnode(void **out, size_t size, int node);
// Frees memory from imc_numa_alloc_onnode; size must be the allocated size. NULL is a no-op.
void imc_numa_free(void *p, size_t size);

// Best effort: asks that the pages of [ptr, ptr+len) (extended to whole pages) live on `node`
// (mbind MPOL_PREFERRED, moving pages already present that only this process maps), e.g. a
// rank's slice of the mmapped weights. Returns IMC_OK when applied or when there is no NUMA to
// apply it to; IMC_ERR_ARG (logged) for a node that does not exist; IMC_ERR_NUMA (logged as a
// warning) when the kernel refuses — callers may go on without it.
enum imc_status imc_numa_bind_range(void *ptr, size_t len, int node);

// The node (OS number) holding the page at p, or -1 when unknown or not yet touched.
int imc_numa_node_of(const void *p);

// Bytes of the pages of [ptr, ptr+len) (page-aligned) that this process has mapped (present or
// swapped), from /proc/self/pagemap: what this rank holds of a shared file mapping, unlike the
// page cache's residency (mincore), which other processes share. IMC_ERR_UNSUPPORTED (not
// logged) when pagemap cannot be read.
enum imc_status imc_numa_resident(const void *ptr, size_t len, uint64_t *bytes);

#endif // IMC_NUMA_MEM_H
