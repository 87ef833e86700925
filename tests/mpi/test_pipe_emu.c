/*
 * tests/mpi/test_pipe_emu: pipeline stages on the emulated CUDA table (tests/cuda/backend_emu.h)
 * passing their hidden rows from table to table (worker/engine.h imc_engine_pipe_*; NCCL on GPUs,
 * the emulator's NCCL over MPI here), through the whole distributed perplexity run
 * (coordinator/perplexity.c -> coordinator/dist.c) under mpirun: N = 2 is pp=2, N = 4 pp=2,dp=2
 * (two pipelines) and pp=2,ep=2 (stages of two expert shards, which exchange their routed rows in
 * their tables' memory too; ds2-tiny-3d only), N = 1 a single process (no pipeline). On llama-tiny
 * and ds2-tiny-3d, 4 chunks of 64 tokens, batches of 2 chunks, f32 matmul:
 *   - the stages exchanging in their tables' memory give the PPL of the same run exchanging
 *     through the host (--exchange host) exactly, and of the cpu run within 1e-4 (relative; the
 *     bound of scripts/gpu-check.sh, 5x the emulator's measured table-vs-cpu difference, derived
 *     in tests/cuda/test_engine_emu);
 *   - every rank of a pipeline says (debug log) that its rows go from table to table in the first
 *     run and through the host in the others; a single process opens no pipeline;
 *   - in the first run the hidden rows never come back to the host, a single process's included
 *     (coordinator/dist.c keeps them in the engine's memory): each rank's table copies fewer
 *     bytes back (its debug line at ctx_free) than one call's hidden rows;
 *   - the imatrix of the same runs (coordinator/imatrix_dist.c on dist.c): the .dat of the stages
 *     exchanging table to table byte for byte the host exchange's, the cpu run's statistics
 *     within 4e-5 of each matrix's largest (tests/mpi/test_engine_ep_emu's bound).
 * The emulator closes the table's buffers to the host between ops: a stage that read or wrote
 * its device hidden rows on the host would crash. Broken variant tried by hand: dist.c sending
 * the device rows through MPI (imc_xfer_isend on the table's buffer) while the next stage waits
 * for them from the table: the job stops at the MPI watchdog (IMC_MPI_TIMEOUT) naming the send.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/imatrix.h"
#include "coordinator/perplexity.h"
#include "core/log.h"
#include "model/imatrix_file.h"
#include "tests/cuda/backend_emu.h"
#include "tests/e2e/engine_util.h"
#include "tests/mpi/mpitest.h"

#define BOUND 1e-4
#define BOUND_STATS 4e-5 // Σx²: tests/mpi/test_engine_ep_emu's (twice the relative error of x)

// The options both runs share (perplexity's and imatrix's option structs): 4 chunks of 64
// tokens, batches of 2 chunks, f32 matmul, on table be with the layout lay of comm c.
#define RUN_OPTS(o)                                                                                \
    do {                                                                                           \
        (o).model = model;                                                                         \
        (o).text = text;                                                                           \
        (o).n_ctx = 64;                                                                            \
        (o).max_chunks = 4;                                                                        \
        (o).n_batch = 128;                                                                         \
        (o).quiet = true;                                                                          \
        (o).matmul = IMC_MATMUL_F32;                                                               \
        (o).device = IMC_DEVICE_CPU;                                                               \
        (o).backend = be;                                                                          \
        (o).host_exchange = host;                                                                  \
        (o).comm = imc_comm_size(c) > 1 ? c : NULL;                                                \
        (o).layout = *lay;                                                                         \
    } while (0)

struct lines {
    char text[1 << 20];
};

// Keeps every line (debug too) and shows warnings and errors on stderr.
static void keep(enum imc_log_level level, const char *line, void *user)
{
    struct lines *l = user;
    const size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof(l->text) - n, "%s\n", line);
    if (level <= IMC_LOG_WARN) {
        fprintf(stderr, "%s\n", line);
    }
}

// PPL (on world rank 0; 0 elsewhere, -1 on failure) of the run on be (NULL: the cpu table).
static double run(const struct imc_comm *c, const struct imc_layout *lay, const char *model,
                  const char *text, const struct imc_backend *be, bool host, struct lines *log)
{
    struct imc_perplexity_opts o;
    imc_perplexity_opts_default(&o);
    RUN_OPTS(o);
    struct imc_perplexity_result r;
    memset(&r, 0, sizeof(r));
    FILE *out = fopen("/dev/null", "w");
    memset(log->text, 0, sizeof(log->text));
    imc_log_set_level(IMC_LOG_DEBUG);
    imc_log_set_sink(keep, log);
    const enum imc_status st = out ? imc_perplexity_run(&o, out, &r) : IMC_ERR_IO;
    imc_log_set_sink(NULL, NULL);
    imc_log_set_level(IMC_LOG_INFO);
    if (out) {
        fclose(out);
    }
    return st != IMC_OK ? -1.0 : r.ppl;
}

// The imatrix run of the same kind, written to out (.dat) by world rank 0. IMC_OK or the error.
static enum imc_status run_im(const struct imc_comm *c, const struct imc_layout *lay,
                              const char *model, const char *text, const struct imc_backend *be,
                              bool host, const char *out)
{
    struct imc_imatrix_opts o;
    imc_imatrix_opts_default(&o);
    RUN_OPTS(o);
    o.out = out;
    FILE *devnull = fopen("/dev/null", "w");
    const enum imc_status st = devnull ? imc_imatrix_run(&o, devnull, NULL) : IMC_ERR_IO;
    if (devnull) {
        fclose(devnull);
    }
    return st;
}

// The bytes of a file (free with free), or NULL.
static char *slurp(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    char *b = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0 && (*n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (b = malloc((size_t)*n)) && fread(b, 1, (size_t)*n, f) != (size_t)*n) {
        free(b);
        b = NULL;
    }
    if (f) {
        fclose(f);
    }
    return b;
}

// imatrix: the .dat of the stages exchanging table to table is byte for byte the host exchange's;
// the cpu run's statistics within BOUND_STATS of it, the same entries and counts.
static void imatrix_case(const struct imc_comm *c, const struct imc_layout *lay, const char *dir,
                         const struct tmodel *t, const char *preset, const char *text)
{
    char p_dev[600], p_host[600], p_cpu[600];
    snprintf(p_dev, sizeof(p_dev), "%s/%s.dev.dat", dir, preset);
    snprintf(p_host, sizeof(p_host), "%s/%s.host.dat", dir, preset);
    snprintf(p_cpu, sizeof(p_cpu), "%s/%s.cpu.dat", dir, preset);
    const enum imc_status s1 = run_im(c, lay, t->path, text, tcuda_backend_emu(), false, p_dev);
    const enum imc_status s2 = run_im(c, lay, t->path, text, tcuda_backend_emu(), true, p_host);
    const enum imc_status s3 = run_im(c, lay, t->path, text, NULL, false, p_cpu);
    CHECK(s1 == IMC_OK && s2 == IMC_OK && s3 == IMC_OK, "%s: imatrix runs %d %d %d", preset, s1, s2,
          s3);
    if (imc_comm_rank(c) != 0 || s1 != IMC_OK || s2 != IMC_OK || s3 != IMC_OK) {
        return;
    }
    long n1 = 0, n2 = 0;
    char *b1 = slurp(p_dev, &n1), *b2 = slurp(p_host, &n2);
    CHECK(b1 && b2 && n1 == n2 && memcmp(b1, b2, (size_t)n1) == 0,
          "%s: the table-to-table .dat (%ld B) differs from the host exchange's (%ld B)", preset,
          n1, n2);
    struct imc_imatrix a, b;
    imc_imatrix_init(&a);
    imc_imatrix_init(&b);
    if (imc_imatrix_read(p_dev, 64, &a) == IMC_OK && imc_imatrix_read(p_cpu, 64, &b) == IMC_OK) {
        const double d = tstats_cmp(preset, &a, &b);
        printf("%-12s pp=%d ep=%d dp=%d: imatrix .dat table-to-table = host (%ld B), vs cpu %.3g "
               "(bound %.0e)\n",
               preset, lay->pp, lay->ep, lay->dp, n1, d, BOUND_STATS);
        CHECK(d <= BOUND_STATS, "%s: imatrix vs cpu %.3g", preset, d);
    } else {
        CHECK(0, "%s: the .dat files do not read back", preset);
    }
    imc_imatrix_free(&a);
    imc_imatrix_free(&b);
    free(b1);
    free(b2);
    unlink(p_dev);
    unlink(p_host);
    unlink(p_cpu);
}

static void one_preset(const struct imc_comm *c, const struct imc_layout *lay, const char *dir,
                       const char *preset, const char *text)
{
    struct tmodel t;
    if (tmodel_open(&t, dir, preset) != 0) {
        CHECK(0, "%s: cannot create the model", preset);
        return;
    }
    const int rank = imc_comm_rank(c),
              stage = lay->pp > 1 ? imc_comm_group_rank(c, IMC_GROUP_PIPELINE) : 0;
    static struct lines l_dev, l_host, l_cpu;
    const double p_dev = run(c, lay, t.path, text, tcuda_backend_emu(), false, &l_dev);
    const double p_host = run(c, lay, t.path, text, tcuda_backend_emu(), true, &l_host);
    const double p_cpu = run(c, lay, t.path, text, NULL, false, &l_cpu);
    CHECK(p_dev >= 0 && p_host >= 0 && p_cpu >= 0, "%s rank %d: a run failed", preset, rank);
    if (rank == 0 && p_dev >= 0 && p_host >= 0 && p_cpu >= 0) {
        const double rel = p_cpu > 0 ? (p_dev - p_cpu) / p_cpu : 1.0;
        printf("%-12s pp=%d ep=%d dp=%d: PPL table-to-table %.10f, host %.10f, cpu %.10f (rel "
               "%.3g, bound %.0e)\n",
               preset, lay->pp, lay->ep, lay->dp, p_dev, p_host, p_cpu, rel, BOUND);
        CHECK(p_dev == p_host, "%s: table-to-table PPL %.17g, host %.17g", preset, p_dev, p_host);
        CHECK(rel <= BOUND && rel >= -BOUND, "%s: cuda-emu vs cpu %.3g", preset, rel);
    }
    char dev[96], via_host[96];
    snprintf(dev, sizeof(dev), "pipeline group rank %d: rows go from cuda table to cuda table",
             stage);
    snprintf(via_host, sizeof(via_host), "pipeline group rank %d: rows go through the host", stage);
    if (lay->pp > 1) {
        CHECK(strstr(l_dev.text, dev) && !strstr(l_dev.text, via_host),
              "%s rank %d: the stages did not exchange table to table", preset, rank);
        CHECK(strstr(l_host.text, via_host) && !strstr(l_host.text, dev) &&
                  strstr(l_cpu.text, via_host),
              "%s rank %d: --exchange host / cpu stages used the tables' exchange", preset, rank);
    } else {
        CHECK(!strstr(l_dev.text, "pipeline group"), "%s: a single process opened a pipeline",
              preset);
    }
    // the hidden rows stay in the table's memory (a single stage's too): what comes back to the
    // host (scores, routing ids, the checks' records) is less than one call's hidden rows
    size_t up = 0, n_up = 0, down = 0, n_down = 0;
    const char *cl = strstr(l_dev.text, "cuda: the ops copied ");
    const bool parsed = cl && sscanf(cl,
                                     "cuda: the ops copied %zu bytes to the device in %zu "
                                     "copies and %zu bytes back in %zu",
                                     &up, &n_up, &down, &n_down) == 4;
    const size_t rows = (size_t)(2 * 64 * t.m->hp.n_embd) * sizeof(float); // a call: 2 chunks
    CHECK(parsed && down < rows,
          "%s rank %d: the table-to-table run copied %zu bytes back to the host (%s), one call's "
          "hidden rows are %zu",
          preset, rank, down, parsed ? "parsed" : "no line", rows);
    if (rank == 0) {
        printf("%-12s pp=%d ep=%d dp=%d: rank 0's table copied %zu B up in %zu, %zu B down in %zu "
               "(a call's hidden rows: %zu B)\n",
               preset, lay->pp, lay->ep, lay->dp, up, n_up, down, n_down, rows);
    }
    imatrix_case(c, lay, dir, &t, preset, text);
    tmodel_close(&t);
}

int main(int argc, char **argv)
{
    struct imc_comm *c = mpitest_init(&argc, &argv);
    const int size = imc_comm_size(c);
    // N = 4: two pipelines, then one pipeline of two stages of two expert shards (both exchanges)
    struct imc_layout lays[2] = {{.pp = size >= 2 ? 2 : 1, .ep = 1, .dp = size >= 2 ? size / 2 : 1},
                                 {.pp = 2, .ep = 2, .dp = 1}};
    const int n_lay = size == 4 ? 2 : 1;
    const char *src = getenv("IMC_SOURCE_DIR");
    char text[512], dir[256], tag[32];
    snprintf(text, sizeof(text), "%s/data/text/calibration.txt", src ? src : ".");
    snprintf(tag, sizeof(tag), "pipe_emu_r%d", imc_comm_rank(c));
    tmkdir(dir, sizeof(dir), tag);
    static const char *const presets[] = {"llama-tiny", "ds2-tiny-3d"};
    for (int k = 0; k < n_lay; k++) {
        const struct imc_layout *lay = &lays[k];
        if (size > 1) {
            CHECK(imc_comm_split_layout(c, lay->pp, lay->ep, lay->dp) == IMC_OK,
                  "layout pp=%d ep=%d dp=%d", lay->pp, lay->ep, lay->dp);
        }
        for (int i = lay->ep > 1 ? 1 : 0; i < 2; i++) { // expert shards: the MoE model only
            one_preset(c, lay, dir, presets[i], text);
        }
    }
    trmdir(dir, presets, 2);
    return mpitest_finish(c);
}
