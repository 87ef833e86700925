/*
 * numa/pin: hwloc_set_cpubind with the warn-and-continue policy of pin.h.
 */
#include "numa/pin.h"

#include <errno.h>
#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static int has_pu(const struct imc_topo *t, int pu)
{
    for (int i = 0; i < t->n_pus; i++) {
        if (t->pus[i] == pu) {
            return 1;
        }
    }
    return 0;
}

static int bind_flags(enum imc_pin_scope scope)
{
    return scope == IMC_PIN_THREAD ? HWLOC_CPUBIND_THREAD : HWLOC_CPUBIND_PROCESS;
}

enum imc_status imc_pin_get(const struct imc_topo *t, enum imc_pin_scope scope, char *buf,
                            size_t size)
{
    buf[0] = '\0';
    if (!t->hw || !t->is_this_system) {
        return IMC_ERR_UNSUPPORTED;
    }
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set) {
        IMC_LOG_ERR("pin: out of memory for a cpuset");
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = IMC_OK;
    if (hwloc_get_cpubind((hwloc_topology_t)t->hw, set, bind_flags(scope)) != 0) {
        IMC_LOG_ERR("pin: cannot read the current binding: %s", strerror(errno));
        st = IMC_ERR_NUMA;
    } else {
        hwloc_bitmap_list_snprintf(buf, size, set);
    }
    hwloc_bitmap_free(set);
    return st;
}

// Applies the binding; on refusal fills rep->why and warns.
static enum imc_status apply(const struct imc_topo *t, enum imc_pin_scope scope, const int *cpus,
                             int n, struct imc_pin_report *rep)
{
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set) {
        IMC_LOG_ERR("pin: out of memory for a cpuset");
        return IMC_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        hwloc_bitmap_set(set, (unsigned)cpus[i]);
    }
    if (hwloc_set_cpubind((hwloc_topology_t)t->hw, set, bind_flags(scope)) == 0) {
        rep->bound = true;
    } else {
        char want[128];
        hwloc_bitmap_list_snprintf(want, sizeof(want), set);
        snprintf(rep->why, sizeof(rep->why), "the OS refused: %s", strerror(errno));
        IMC_LOG_WRN("pin: binding the %s to PUs %s failed (%s); running unpinned",
                    scope == IMC_PIN_THREAD ? "thread" : "process", want, rep->why);
    }
    hwloc_bitmap_free(set);
    return IMC_OK;
}

enum imc_status imc_pin_cpus(const struct imc_topo *t, enum imc_pin_scope scope, const int *cpus,
                             int n, struct imc_pin_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    if (n < 1) {
        IMC_LOG_ERR("pin: empty PU list");
        return IMC_ERR_ARG;
    }
    for (int i = 0; i < n; i++) {
        if (cpus[i] < 0 || !has_pu(t, cpus[i])) {
            IMC_LOG_ERR("pin: PU %d is not in the topology (%d PUs)", cpus[i], t->n_pus);
            return IMC_ERR_ARG;
        }
    }
    const char *env = getenv("IMC_PIN");
    if (env && strcmp(env, "0") == 0) {
        snprintf(rep->why, sizeof(rep->why), "IMC_PIN=0");
    } else if (!t->hw || !t->is_this_system) {
        snprintf(rep->why, sizeof(rep->why), "the topology is not this machine");
        IMC_LOG_WRN("pin: %s (synthetic or foreign XML); running unpinned", rep->why);
    } else {
        IMC_TRY(apply(t, scope, cpus, n, rep));
    }
    if (imc_pin_get(t, scope, rep->cpus, sizeof(rep->cpus)) == IMC_ERR_UNSUPPORTED) {
        rep->cpus[0] = '\0';
    }
    return IMC_OK;
}
