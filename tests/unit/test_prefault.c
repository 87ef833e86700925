/*
 * tests/unit/test_prefault: an engine maps the pages of the weights it will read when it is
 * created (worker/engine.c prefault_weights), and only those: on a generated ds2-mid (16 experts,
 * ~48 MB f32, written by this test), checked through this process's page table
 * (imc_slice_resident, /proc/self/pagemap) before any forward pass:
 *   - an engine of layers [1, 3): its layers' weights resident (less than half before); layer
 *     0's, layers 3.. and the head, and the token embedding (a row lookup) under half (the
 *     kernel's fault-around maps some neighbouring pages of the engine's own small reads); (an
 * engine's expert range needs an expert group of MPI ranks: mpi.slice_np checks the residency per
 * rank there);
 *   - then an engine of every layer: every weight but the embedding resident, the embedding
 *     still under half.
 * Where the kernel does not report pages (no pagemap) or lacks MADV_POPULATE_READ, a SKIP line
 * says so and the test passes on what it could check (the engines start).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/arch.h"
#include "model/gguf.h"
#include "model/synth.h"
#include "tests/check.h"
#include "worker/engine.h"
#include "worker/slice.h"

// Resident bytes of the slice spec of m (*len: its bytes in whole pages), -1 when the kernel
// does not tell.
static double resident(const struct imc_model *m, struct imc_slice_spec sp, double *len)
{
    struct imc_slice s;
    uint64_t res = 0, n = 0;
    if (imc_slice_init(&s, m, &sp) != IMC_OK) {
        return -1;
    }
    for (int64_t i = 0; i < s.n; i++) {
        n += s.r[i].len;
    }
    const enum imc_status st = imc_slice_resident(&s, &res);
    imc_slice_free(&s);
    if (len) {
        *len = (double)n;
    }
    return st != IMC_OK ? -1 : (double)res;
}

static struct imc_slice_spec spec(int64_t l0, int64_t l1, int64_t e0, int64_t e1, bool embd,
                                  bool head)
{
    return (struct imc_slice_spec){l0, l1, e0, e1, embd, head};
}

int main(void)
{
#ifndef MADV_POPULATE_READ
    CHECK_SKIP("prefault", "this C library has no MADV_POPULATE_READ");
    return check_summary();
#else
    const char *tmp = getenv("TMPDIR");
    char dir[256], path[300];
    snprintf(dir, sizeof(dir), "%s/imc_prefault.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/m.gguf", dir);
    struct imc_synth_cfg cfg;
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    if (imc_synth_preset(&cfg, "ds2-mid") != IMC_OK || imc_synth_write(&cfg, path) != IMC_OK ||
        imc_gguf_open(&g, path) != IMC_OK || imc_model_load(&m, g) != IMC_OK) {
        printf("FAIL setup\n");
        return 1;
    }
    const int64_t nl = m->hp.n_layer, ne = m->hp.n_expert;
    const struct imc_slice_spec own = spec(1, 3, 0, ne, false, false);
    const struct imc_slice_spec others[3] = {spec(0, 1, 0, ne, false, false),
                                             spec(3, nl, 0, ne, false, true),
                                             spec(0, 0, 0, 0, true, false)};
    const char *names[3] = {"layer 0", "layers 3.. and the head", "the token embedding"};
    double size[3], len = 0;
    const long pg = sysconf(_SC_PAGESIZE);
    void *probe = mmap(NULL, (size_t)pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const bool populate =
        probe != MAP_FAILED && madvise(probe, (size_t)pg, MADV_POPULATE_READ) == 0;
    if (probe != MAP_FAILED) {
        munmap(probe, (size_t)pg);
    }
    bool pagemap = true;
    for (int k = 0; k < 3; k++) {
        pagemap = pagemap && resident(m, others[k], &size[k]) >= 0;
    }
    if (!populate || !pagemap) {
        CHECK_SKIP("prefault", "%s",
                   !populate ? "the kernel lacks MADV_POPULATE_READ (Linux < 5.14)"
                             : "the kernel does not report resident pages");
        struct imc_engine *e = NULL;
        CHECK(imc_engine_init(&e, m, NULL) == IMC_OK, "an engine starts all the same");
        imc_engine_free(e);
        return check_summary();
    }
    CHECK(nl >= 4 && resident(m, own, &len) < 0.5 * len,
          "ds2-mid: %lld layers, layers 1-2 mostly not mapped before an engine", (long long)nl);
    struct imc_engine_opts o = imc_engine_opts_default();
    o.layer_begin = 1;
    o.layer_end = 3;
    struct imc_engine *e = NULL;
    CHECK(imc_engine_init(&e, m, &o) == IMC_OK, "engine of layers [1, 3)");
    CHECK(resident(m, own, NULL) == len, "its layers' weights resident: %.0f of %.0f bytes",
          resident(m, own, NULL), len);
    // Not mapped by the prefault: under half of each (the engine's own small reads, its norms,
    // map up to 16 neighbouring pages each by the kernel's fault-around; a prefault of the range
    // would map all of it)
    for (int k = 0; k < 3; k++) {
        const double now = resident(m, others[k], NULL);
        CHECK(now < 0.5 * size[k], "%s not mapped by it: %.0f of %.0f bytes", names[k], now,
              size[k]);
    }
    imc_engine_free(e);
    CHECK(imc_engine_init(&e, m, NULL) == IMC_OK, "engine of every layer");
    const struct imc_slice_spec all = spec(0, nl, 0, ne, false, true);
    CHECK(resident(m, all, &len) == len, "every weight but the embedding resident: %.0f of %.0f",
          resident(m, all, NULL), len);
    CHECK(resident(m, others[2], NULL) < 0.5 * size[2], "the embedding still not mapped");
    imc_engine_free(e);
    imc_model_free(m);
    imc_gguf_free(g);
    unlink(path);
    rmdir(dir);
    return check_summary();
#endif
}
