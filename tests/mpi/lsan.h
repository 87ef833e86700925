/*
 * tests/mpi/lsan.h: LeakSanitizer settings for tests that start MPI or read this machine's
 * topology (include in exactly one .c per executable). Open MPI, its libevent progress thread
 * and hwloc's PCI plugin keep one-time allocations until exit; the plugin is unloaded before
 * LSan runs, so the stacks are only complete with slow unwinding. The suppressions name those
 * libraries' frames only: a leak of ours (allocated outside their calls, e.g. a topology we
 * forget to destroy, allocated under hwloc_topology_init) is still reported.
 * Only -fsanitize=address/leak builds read these hooks; other builds ignore them.
 */
#ifndef IMC_TESTS_MPI_LSAN_H
#define IMC_TESTS_MPI_LSAN_H

const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);

const char *__asan_default_options(void)
{
    return "fast_unwind_on_malloc=0";
}

const char *__lsan_default_suppressions(void)
{
    return "leak:hwloc_topology_load\n"
           "leak:libmpi.so\n"
           "leak:libopen-pal.so\n"
           "leak:libopen-rte.so\n"
           "leak:libpmix.so\n"
           "leak:libevent\n";
}

#endif // IMC_TESTS_MPI_LSAN_H
