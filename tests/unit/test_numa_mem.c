/*
 * tests/unit/test_numa_mem: numa/mem.h (node-local allocation, fallback, range binding) and
 * numa/pin.h (binding the process and a thread on this machine; IMC_PIN=0; foreign topologies).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "numa/mem.h"
#include "numa/pin.h"
#include "numa/topo.h"
#include "tests/check.h"
#include "tests/mpi/lsan.h"

static void capture(enum imc_log_level level, const char *line, void *user)
{
    (void)level;
    snprintf(user, 256, "%s", line);
}

static void test_alloc(void)
{
    size_t size = (size_t)3 << 20;
    void *p = NULL;
    CHECK(imc_numa_alloc_onnode(&p, size, 0) == IMC_OK && p, "alloc 3 MiB on node 0");
    if (p) {
        unsigned char *b = p;
        CHECK(b[0] == 0 && b[size - 1] == 0, "zeroed");
        memset(b, 0xab, size);
        CHECK(b[size / 2] == 0xab, "writable");
        CHECK((uintptr_t)p % 4096 == 0, "page aligned");
        if (imc_numa_is_available()) {
            CHECK(imc_numa_node_of(b + size / 2) == 0, "page on node 0: %d",
                  imc_numa_node_of(b + size / 2));
        } else {
            CHECK(imc_numa_node_of(b) == -1, "no NUMA: node unknown");
        }
        CHECK(imc_numa_bind_range(b + 100, 10000, 0) == IMC_OK, "bind range to node 0");
        CHECK(b[size / 2] == 0xab, "contents survive the move");
        imc_numa_free(p, size);
    }
    p = NULL;
    CHECK(imc_numa_alloc_onnode(&p, 4096, -1) == IMC_OK && p, "no preference");
    imc_numa_free(p, 4096);
    imc_numa_free(NULL, 0);

    char line[256] = "";
    imc_log_set_sink(capture, line);
    p = NULL;
    CHECK(imc_numa_alloc_onnode(&p, 4096, 4095) == IMC_ERR_ARG && !p, "node 4095 rejected");
    CHECK(strstr(line, "NUMA node 4095 does not exist") != NULL, "message: %s", line);
    CHECK(imc_numa_alloc_onnode(&p, 0, 0) == IMC_ERR_ARG, "size 0 rejected");
    char buf[64];
    CHECK(imc_numa_bind_range(buf, sizeof(buf), 4095) == IMC_ERR_ARG, "bind to missing node");
    imc_log_set_sink(NULL, NULL);
}

static void test_pin(void)
{
    struct imc_topo *t = NULL;
    CHECK(imc_topo_load(&t) == IMC_OK, "load this machine");
    if (!t) {
        return;
    }
    char before[128];
    CHECK(imc_pin_get(t, IMC_PIN_PROCESS, before, sizeof(before)) == IMC_OK, "read binding");
    struct imc_pin_report rep;
    int first = t->pus[0];
    CHECK(imc_pin_cpus(t, IMC_PIN_THREAD, &first, 1, &rep) == IMC_OK, "pin thread");
    char want[16];
    snprintf(want, sizeof(want), "%d", first);
    if (rep.bound) {
        CHECK(strcmp(rep.cpus, want) == 0, "thread bound to '%s', expected '%s'", rep.cpus, want);
    } else {
        CHECK(rep.why[0] != '\0', "an unbound report says why");
        printf("note: binding refused here (%s)\n", rep.why);
    }
    CHECK(imc_pin_cpus(t, IMC_PIN_PROCESS, t->pus, t->n_pus, &rep) == IMC_OK, "pin process");
    CHECK(!rep.bound || rep.cpus[0] != '\0', "process binding reported: '%s'", rep.cpus);

    setenv("IMC_PIN", "0", 1);
    CHECK(imc_pin_cpus(t, IMC_PIN_THREAD, &first, 1, &rep) == IMC_OK && !rep.bound &&
              strcmp(rep.why, "IMC_PIN=0") == 0,
          "IMC_PIN=0 turns binding off");
    unsetenv("IMC_PIN");

    char line[256] = "";
    imc_log_set_sink(capture, line);
    int bogus = 100000;
    CHECK(imc_pin_cpus(t, IMC_PIN_THREAD, &bogus, 1, &rep) == IMC_ERR_ARG, "unknown PU");
    CHECK(strstr(line, "PU 100000 is not in the topology") != NULL, "message: %s", line);
    CHECK(imc_pin_cpus(t, IMC_PIN_THREAD, &first, 0, &rep) == IMC_ERR_ARG, "empty list");
    imc_topo_free(t);

    CHECK(imc_topo_load_synthetic(&t, "core:4 pu:1") == IMC_OK, "synthetic");
    CHECK(imc_pin_cpus(t, IMC_PIN_THREAD, &first, 1, &rep) == IMC_OK && !rep.bound &&
              strstr(rep.why, "not this machine") != NULL,
          "a synthetic topology never binds: %s", rep.why);
    CHECK(imc_pin_get(t, IMC_PIN_THREAD, line, sizeof(line)) == IMC_ERR_UNSUPPORTED,
          "no binding to read on a synthetic topology");
    imc_log_set_sink(NULL, NULL);
    imc_topo_free(t);
}

int main(void)
{
    test_alloc();
    test_pin();
    return check_summary();
}
