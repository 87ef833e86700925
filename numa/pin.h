/*
 * numa/pin: binding the process or a thread to the PUs the placement plan gave it (DESIGN.md §6
 * "threads pinned"; STYLE b.1 numa/pin.c).
 *
 * Policy (decided here): a binding the OS refuses is a warning, not an error. Containers and
 * some batch systems forbid sched_setaffinity outside their cpuset, and a run that is merely
 * unpinned is slower, not wrong; the report says what was applied so `imc plan` / the log can
 * show it. Errors are only programmer-visible ones: PUs that are not in the topology.
 * IMC_PIN=0 in the environment turns binding off (report: not bound, "IMC_PIN=0").
 * A topology that is not this machine (synthetic, foreign XML) is never used to bind.
 */
#ifndef IMC_NUMA_PIN_H
#define IMC_NUMA_PIN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "numa/topo.h"

enum imc_pin_scope {
    IMC_PIN_PROCESS, // every thread of the process (threads created later inherit it)
    IMC_PIN_THREAD,  // the calling thread only
};

struct imc_pin_report {
    bool bound;     // the requested binding is in force
    char cpus[128]; // the binding in force afterwards as a PU list ("0-3"), "" when unknown
    char why[160];  // when not bound: the reason (OS error, IMC_PIN=0, foreign topology)
};

// Binds the calling process or thread to PUs cpus[0..n) (OS indices, as in struct imc_place).
// Fills *rep. Returns IMC_ERR_ARG (logged) when n < 1 or a PU is not in t; IMC_OK otherwise,
// including when the OS refused (rep->bound false, one warning logged with the reason).
enum imc_status imc_pin_cpus(const struct imc_topo *t, enum imc_pin_scope scope, const int *cpus,
                             int n, struct imc_pin_report *rep);

// Writes the current binding of the process or calling thread as a PU list into buf. Returns
// IMC_ERR_NUMA (logged) when it cannot be read, IMC_ERR_UNSUPPORTED when t is not this machine.
enum imc_status imc_pin_get(const struct imc_topo *t, enum imc_pin_scope scope, char *buf,
                            size_t size);

#endif // IMC_NUMA_PIN_H
