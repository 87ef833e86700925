/*
 * imc perplexity: perplexity and KL-divergence of a model on a text, as llama-perplexity computes
 * them (DESIGN.md §3, §4 "Perplexity"; coordinator/perplexity.h).
 *
 *   imc perplexity -m MODEL -f TEXT [-c N] [--chunks N] [-b N] [-t N]
 *                  [--kld-save FILE | --kld-base FILE] [--attn absorbed|non-absorbed|auto] [-q]
 *                  [--layout pp=A,ep=B,dp=C]
 *
 * Results go to stdout, progress and logs to stderr. Exit 0 on success, 1 when the run fails
 * (one error line naming the file and cause), 2 on bad usage.
 *
 * Under mpirun (or another MPI launcher; without one, MPI is not started) the ranks form one
 * job (coordinator/dist.h; default layout: automatic, coordinator/layout_auto.h): only world
 * rank 0 prints results and
 * progress, the others log warnings and errors only. Usage
 * errors are found alike on every rank (rank 0 reports them) and every rank exits 2; a failure
 * during the run on any rank ends the whole job through imc_fatal (mpi/fatal.h).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/perplexity.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "numa/plan.h"
#include "src/cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: imc perplexity -m MODEL -f TEXT [options]\n"
            "  -m, --model MODEL     GGUF model\n"
            "  -f, --file TEXT       text to evaluate (optional with --kld-base: then checked\n"
            "                        against the tokens stored in the base file)\n"
            "  -c, --ctx N           tokens per chunk, at most the model's n_ctx_train\n"
            "                        (default 512 or n_ctx_train if smaller; --kld-base:\n"
            "                        the file's)\n"
            "  --chunks N            evaluate at most N chunks (default: all)\n"
            "  -b, --batch N         tokens per engine call; batch >= 2*ctx runs batch/ctx chunks\n"
            "                        per call (default 2048)\n"
            "  -t, --threads N       compute threads (default 1)\n"
            "  --kld-save FILE       also write the base log-probabilities (llama.cpp's\n"
            "                        --kl-divergence-base file format)\n"
            "  --kld-base FILE       KL-divergence against a saved base (same chunks)\n"
            "  --attn PATH           deepseek2 attention: absorbed, non-absorbed or auto\n"
            "  --layout pp=A,ep=B,dp=C  MPI job layout: pipeline stages x expert shards x\n"
            "                        replicas, product = ranks (default: automatic, as\n"
            "                        imc plan MODEL --ranks N prints it)\n"
            "  -q, --quiet           no progress lines, warnings and errors only\n"
            "  -v, --log-level LEVEL\n");
}

static int parse_attn(const char *s, enum imc_attn_path *out)
{
    static const struct {
        const char *name;
        enum imc_attn_path path;
    } names[] = {{"auto", IMC_ATTN_AUTO},
                 {"absorbed", IMC_ATTN_ABSORBED},
                 {"non-absorbed", IMC_ATTN_NON_ABSORBED}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].path;
            return 0;
        }
    }
    IMC_LOG_ERR("perplexity: --attn expects absorbed, non-absorbed or auto, got '%s'", s);
    return 2;
}

// Option with a string value: the slot it fills, or NULL.
static const char **str_slot(struct imc_perplexity_opts *o, const char *a)
{
    if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
        return &o->model;
    }
    if (strcmp(a, "-f") == 0 || strcmp(a, "--file") == 0) {
        return &o->text;
    }
    if (strcmp(a, "--kld-save") == 0) {
        return &o->kld_save;
    }
    if (strcmp(a, "--kld-base") == 0) {
        return &o->kld_base;
    }
    return NULL;
}

// Option with a positive integer value: the slot it fills, or NULL.
static int64_t *int_slot(struct imc_perplexity_opts *o, const char *a)
{
    if (strcmp(a, "-c") == 0 || strcmp(a, "--ctx") == 0 || strcmp(a, "--ctx-size") == 0) {
        return &o->n_ctx;
    }
    if (strcmp(a, "--chunks") == 0) {
        return &o->max_chunks;
    }
    if (strcmp(a, "-b") == 0 || strcmp(a, "--batch") == 0 || strcmp(a, "--batch-size") == 0) {
        return &o->n_batch;
    }
    return NULL;
}

// Parses one option at argv[i] that takes a value; returns 0, or 2 on error.
static int parse_value(struct imc_perplexity_opts *o, int64_t *threads, const char *a,
                       const char *v)
{
    const char **s = str_slot(o, a);
    if (s) {
        *s = v;
        return 0;
    }
    if (strcmp(a, "--attn") == 0) {
        return parse_attn(v, &o->attn);
    }
    if (strcmp(a, "--layout") == 0) {
        return imc_layout_parse(v, &o->layout) == IMC_OK ? 0 : 2;
    }
    int64_t *n = int_slot(o, a);
    n = n ? n : (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) ? threads : NULL;
    if (!n) {
        IMC_LOG_ERR("perplexity: unknown option '%s' (see imc perplexity --help)", a);
        return 2;
    }
    long x = imc_cli_parse_long("perplexity", a, v);
    if (x <= 0) {
        if (x == 0) {
            IMC_LOG_ERR("perplexity: option %s must be positive", a);
        }
        return 2;
    }
    *n = x;
    return 0;
}

static bool takes_value(const char *a)
{
    static const char *const names[] = {"-m", "--model", "-f", "--file", "--kld-save",
                                        "--kld-base", "--attn", "-c", "--ctx", "--ctx-size",
                                        "--chunks", "-b", "--batch", "--batch-size", "-t",
                                        "--threads", "--layout"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(a, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

// Returns 0 to run, 2 on a bad argument (logged), -1 after printing help to help_out (or not,
// when it is NULL).
static int parse(int argc, char **argv, struct imc_perplexity_opts *o, FILE *help_out)
{
    int64_t threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o->quiet = true;
        }
        int used = imc_cli_log_option(argc, argv, i);
        if (used > 0) {
            i += used - 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            if (help_out) {
                usage(help_out);
            }
            return -1;
        } else if (takes_value(a)) {
            if (imc_cli_need_value("perplexity", argc, argv, i) ||
                parse_value(o, &threads, a, argv[i + 1])) {
                return 2;
            }
            i++;
        } else {
            IMC_LOG_ERR("perplexity: unknown argument '%s' (see imc perplexity --help)", a);
            return 2;
        }
    }
    o->n_threads = threads > 1024 ? 1024 : (int)threads;
    const char *err = !o->model                  ? "missing -m MODEL"
                      : !o->text && !o->kld_base ? "missing -f TEXT"
                      : o->kld_save && o->kld_base ? "--kld-save and --kld-base exclude each other"
                                                   : NULL;
    if (err) {
        IMC_LOG_ERR("perplexity: %s", err);
        usage(stderr);
        return 2;
    }
    return 0;
}

// Parses on every rank; only rank 0 reports usage errors and help (all ranks decide alike).
// Returns 0 to run, else the exit code.
static int parse_ranks(int argc, char **argv, struct imc_perplexity_opts *o,
                       const struct imc_comm *comm)
{
    const int rank = comm ? imc_comm_rank(comm) : 0, size = comm ? imc_comm_size(comm) : 1;
    imc_cli_job_parse_begin(comm);
    o->layout.pp = 0; // not given: automatic
    int rc = parse(argc, argv, o, rank == 0 ? stdout : NULL);
    if (rc == 0 && size > 1 && (o->kld_save || o->kld_base)) {
        IMC_LOG_ERR("perplexity: --kld-save and --kld-base run on one rank only (this job has "
                    "%d); run them without mpirun",
                    size);
        rc = 2;
    }
    imc_cli_job_parse_end(comm);
    if (rank != 0) {
        o->quiet = true;
    }
    return rc;
}

static int run(int argc, char **argv)
{
    struct imc_comm *comm = NULL;
    if (imc_cli_mpi_start(&comm) != 0) {
        return 1;
    }
    struct imc_perplexity_opts o;
    imc_perplexity_opts_default(&o);
    int rc = parse_ranks(argc, argv, &o, comm);
    if (rc == 0) {
        rc = imc_cli_job_layout(comm, "perplexity", o.model, &o.layout);
    }
    if (rc != 0) {
        imc_comm_free(comm);
        return rc < 0 ? 0 : rc;
    }
    o.comm = comm;
    const bool rank0 = !comm || imc_comm_rank(comm) == 0;
    enum imc_status st = imc_perplexity_run(&o, rank0 ? stdout : NULL, NULL);
    fflush(stdout);
    return imc_cli_job_end(comm, st, "perplexity");
}

const struct imc_cli_cmd imc_cmd_perplexity = {
    .name = "perplexity",
    .summary = "perplexity and KL-divergence on a text (llama-perplexity compatible)",
    .run = run,
};
