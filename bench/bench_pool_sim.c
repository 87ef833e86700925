/*
 * bench/bench_pool_sim: how the engine's thread pool would scale beyond this machine's cores.
 * For each N, one batched forward pass of a generated model and the scoring of its logits
 * (perplexity's work: layers, the output head, the NLL of every scored row; with --imatrix also
 * the statistics hooks of imatrix) runs on a 1-thread pool whose kernels cut their tasks as for
 * N threads, recording
 * every parallel job's task durations and the serial time between jobs (kernels.h
 * imc_exec_trace). The record is then replayed for N threads as the pool
 * schedules it (tasks claimed in order by the first free thread, a barrier at the end of each
 * job, serial time on one thread): simulated time, speed-up, the idle share of the N threads,
 * the share of serial time, and the work per thread (max / mean). A benchmark, not a test.
 *
 *   bench_pool_sim [--preset ds2-mid | --model FILE] [--seqs 4] [--ctx 256]
 *                  [--threads "1 2 8 32 64"] [--imatrix]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/ppl.h"
#include "core/clock.h"
#include "kernels/kernels.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "model/synth.h"
#include "worker/engine.h"
#include "worker/stats_collect.h"

struct sim {
    double time;     // simulated seconds
    double busy;     // thread-seconds of work (serial included)
    double serial;   // seconds of serial time
    double max_work; // the busiest thread's seconds
};

// Replays tr on n threads.
static struct sim simulate(const struct imc_exec_trace *tr, int n, double tail)
{
    struct sim s = {0};
    double *free_at = calloc((size_t)n, sizeof(double)), *work = calloc((size_t)n, sizeof(double));
    if (!free_at || !work) {
        free(free_at);
        free(work);
        return s;
    }
    for (int64_t j = 0; j < tr->n_jobs; j++) {
        s.time += tr->serial_s[j];
        s.serial += tr->serial_s[j];
        work[0] += tr->serial_s[j];
        for (int k = 0; k < n; k++) {
            free_at[k] = s.time;
        }
        double end = s.time;
        for (int64_t t = tr->job_first[j]; t < tr->job_first[j + 1]; t++) {
            int best = 0;
            for (int k = 1; k < n; k++) {
                best = free_at[k] < free_at[best] ? k : best;
            }
            free_at[best] += tr->task_s[t];
            work[best] += tr->task_s[t];
            end = free_at[best] > end ? free_at[best] : end;
        }
        s.time = end;
    }
    s.time += tail;
    s.serial += tail;
    work[0] += tail;
    for (int k = 0; k < n; k++) {
        s.busy += work[k];
        s.max_work = work[k] > s.max_work ? work[k] : s.max_work;
    }
    free(free_at);
    free(work);
    return s;
}

// One forward pass and the NLL of its scored rows (what perplexity does per batch).
static enum imc_status forward_and_score(struct imc_engine *e, const int32_t *tok, int64_t n_seq,
                                         int64_t n_ctx, float *lg, struct imc_stats_collect *col)
{
    const int64_t out_begin = n_ctx / 2, n_vocab = imc_engine_model(e)->hp.n_vocab;
    enum imc_status st = imc_engine_forward_batch(e, tok, n_seq, n_ctx, out_begin, lg);
    struct imc_ppl_acc acc;
    imc_ppl_init(&acc);
    for (int64_t s = 0; s < n_seq && st == IMC_OK; s++) {
        imc_ppl_add_chunk(imc_engine_exec(e), &acc, lg + s * (n_ctx - out_begin) * n_vocab, n_ctx,
                          n_vocab, tok + s * n_ctx);
    }
    return st == IMC_OK && col ? imc_stats_collect_end_chunk(col) : st;
}

static int run(const char *preset, const char *model, int64_t n_seq, int64_t n_ctx,
               const char *threads, bool imatrix)
{
    char tmp[] = "/tmp/imc_pool_sim_XXXXXX.gguf";
    const int fd = model ? 0 : mkstemps(tmp, 5); // a unique name; the generator rewrites it
    if (fd > 0) {
        close(fd);
    }
    const char *path = model ? model : tmp;
    struct imc_synth_cfg cfg;
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    struct imc_engine *e = NULL;
    struct imc_engine_opts eo = imc_engine_opts_default();
    eo.n_threads = 1;
    struct imc_imatrix im;
    imc_imatrix_init(&im);
    struct imc_stats_collect *col = NULL;
    struct imc_stats_hooks hk = {0};
    if (imatrix && imc_stats_collect_init(&col, &im) == IMC_OK) {
        hk = imc_stats_collect_hooks(col);
        eo.hooks = &hk;
    }
    if (fd < 0 || (imatrix && !col) ||
        (!model &&
         (imc_synth_preset(&cfg, preset) != IMC_OK || imc_synth_write(&cfg, path) != IMC_OK)) ||
        imc_gguf_open(&g, path) != IMC_OK || imc_model_load(&m, g) != IMC_OK ||
        imc_engine_init(&e, m, &eo) != IMC_OK) {
        fprintf(stderr, "bench_pool_sim: cannot make or load %s\n", path);
        return 1;
    }
    const int64_t n = n_seq * n_ctx, out_begin = n_ctx / 2;
    int32_t *tok = malloc((size_t)n * sizeof(int32_t));
    float *lg = malloc((size_t)(n_seq * (n_ctx - out_begin) * m->hp.n_vocab) * sizeof(float));
    uint64_t seed = 1;
    for (int64_t i = 0; tok && i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)(1 + (seed >> 33) % (uint64_t)(m->hp.n_vocab - 1));
    }
    struct imc_exec_trace tr = {0};
    double total1 = 0;
    enum imc_status st = forward_and_score(e, tok, n_seq, n_ctx, lg, col); // warm-up (page faults)
    char *list = strdup(threads);
    for (char *w = list ? strtok(list, " ,") : NULL; w && st == IMC_OK; w = strtok(NULL, " ,")) {
        const int k = atoi(w);
        if (k < 1) {
            continue;
        }
        // the forward as a pool of k threads gets it (kernels cut their tasks for k), on one
        imc_exec_trace_set(imc_engine_exec(e), &tr, k);
        const double t0 = imc_clock_now();
        st = forward_and_score(e, tok, n_seq, n_ctx, lg, col);
        const double total = imc_clock_now() - t0, tail = imc_clock_now() - tr.last;
        imc_exec_trace_set(imc_engine_exec(e), NULL, 0);
        if (st != IMC_OK || tr.truncated) {
            st = st != IMC_OK ? st : IMC_ERR_NOMEM;
            break;
        }
        double work = 0;
        for (int64_t i = 0; i < tr.n_tasks; i++) {
            work += tr.task_s[i];
        }
        if (total1 == 0) {
            total1 = total; // the first count of the list is the baseline (1 by default)
            printf("%s, %lld sequences of %lld tokens, %s on 1 thread %.3f s, serial "
                   "between jobs %.1f%%\n",
                   model ? model : preset, (long long)n_seq, (long long)n_ctx,
                   imatrix ? "forward + NLL + imatrix statistics" : "forward + NLL", total,
                   100 * (total - work) / total);
            printf("%8s %6s %7s %12s %9s %7s %8s %14s\n", "threads", "jobs", "tasks", "time (s)",
                   "speed-up", "idle %", "serial %", "max/mean work");
        }
        const struct sim sm = simulate(&tr, k, tail);
        printf("%8d %6lld %7lld %12.4f %9.2f %7.1f %8.1f %14.2f\n", k, (long long)tr.n_jobs,
               (long long)tr.n_tasks, sm.time, total1 / sm.time,
               100 * (1 - sm.busy / (k * sm.time)), 100 * sm.serial / sm.time,
               sm.max_work / (sm.busy / k));
    }
    free(list);
    imc_exec_trace_free(&tr);
    free(tok);
    free(lg);
    imc_engine_free(e);
    imc_stats_collect_free(col);
    imc_imatrix_free(&im);
    imc_model_free(m);
    imc_gguf_free(g);
    if (!model) {
        unlink(tmp);
    }
    return st == IMC_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *preset = "ds2-mid", *model = NULL, *threads = "1 2 8 32 64";
    int64_t n_seq = 4, n_ctx = 256;
    bool imatrix = false;
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "--imatrix") == 0) {
            imatrix = true;
            i--; // no value
        } else if (i + 1 >= argc) {
            fprintf(stderr, "bench_pool_sim: option '%s' needs a value\n", argv[i]);
            return 2;
        } else if (strcmp(argv[i], "--preset") == 0) {
            preset = argv[i + 1];
        } else if (strcmp(argv[i], "--model") == 0) {
            model = argv[i + 1];
        } else if (strcmp(argv[i], "--seqs") == 0) {
            n_seq = atoll(argv[i + 1]);
        } else if (strcmp(argv[i], "--ctx") == 0) {
            n_ctx = atoll(argv[i + 1]);
        } else if (strcmp(argv[i], "--threads") == 0) {
            threads = argv[i + 1];
        } else {
            fprintf(stderr, "bench_pool_sim: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    return run(preset, model, n_seq > 0 ? n_seq : 1, n_ctx > 1 ? n_ctx : 2, threads, imatrix);
}
