/*
 * imc sweep: quantize a base model with every recipe of a folder and compare the results
 * (size, bpw, PPL, KLD, same top p) in results.csv / .md / .svg (DESIGN.md §3;
 * coordinator/sweep.h has the recipe format, the files and the definitions).
 *
 *   imc sweep --base MODEL [--imatrix F] --rules-dir DIR -f TEXT [--out-dir DIR] [--type T]
 *             [-c N] [--chunks N] [-t N] [--keep-models] [-q]
 *
 * The Markdown table goes to stdout, progress and logs to stderr. Exit 0 on success, 1 when the
 * sweep fails (the failing recipe named), 2 on bad usage. Under mpirun / srun the recipes are
 * spread over the ranks; every rank exits with world rank 0's verdict.
 */
#include <stdio.h>
#include <string.h>

#include "coordinator/quant_rules.h"
#include "coordinator/sweep.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/reduce.h"
#include "src/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: imc sweep --base MODEL [--imatrix F] --rules-dir DIR -f TEXT [options]\n"
               "  --base MODEL      the model every recipe quantizes (f32/f16/bf16 best)\n"
               "  --imatrix F       imatrix for the quantizations (GGUF or .dat)\n"
               "  --rules-dir DIR   one recipe per file: 'regex=type' lines as for imc quantize\n"
               "                    --rules, plus '!type TYPE' (default type) and '!imatrix no';\n"
               "                    the recipe's name is the file name without its extension\n"
               "  -f, --file TEXT   text to score each recipe on (PPL, KLD against the base)\n"
               "  --out-dir DIR     where the models, per-recipe results and results.csv/.md/\n"
               "                    .svg go (default .; created)\n"
               "  --type T          default type of recipes without !type (default q8_0)\n"
               "  -c, --ctx N       tokens per chunk (default 512, n_ctx_train if smaller)\n"
               "  --chunks N        score at most N chunks (default: all)\n"
               "  -t, --threads N   threads per rank (default 1)\n"
               "  --keep-models     keep each recipe's GGUF (default: deleted once scored)\n"
               "  -q, --quiet       warnings and errors only\n"
               "A rerun skips the recipes whose result is up to date (same recipe and inputs).\n"
               "Under mpirun/srun the recipes are spread over the ranks.\n");
}

static const char **str_slot(struct imc_sweep_opts *o, const char *a)
{
    static const char *const names[] = {"--base", "--imatrix", "--rules-dir",
                                        "-f",     "--file",    "--out-dir"};
    const char **slots[] = {&o->base, &o->imatrix, &o->rules_dir, &o->text, &o->text, &o->out_dir};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(a, names[i]) == 0) {
            return slots[i];
        }
    }
    return NULL;
}

static int64_t *int_slot(struct imc_sweep_opts *o, int64_t *threads, const char *a)
{
    if (strcmp(a, "-c") == 0 || strcmp(a, "--ctx") == 0 || strcmp(a, "--ctx-size") == 0) {
        return &o->n_ctx;
    }
    if (strcmp(a, "--chunks") == 0) {
        return &o->max_chunks;
    }
    return strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0 ? threads : NULL;
}

// Parses option a with value v; returns 0, or 2 on error (logged).
static int parse_value(struct imc_sweep_opts *o, int64_t *threads, const char *a, const char *v)
{
    const char **s = str_slot(o, a);
    int64_t *n = int_slot(o, threads, a);
    if (s) {
        *s = v;
    } else if (strcmp(a, "--type") == 0) {
        int t = imc_quant_type_parse(v, "sweep: --type");
        if (t < 0) {
            return 2;
        }
        o->type = (enum imc_type)t;
    } else {
        long x = imc_cli_parse_long("sweep", a, v);
        if (x <= 0) {
            if (x == 0) {
                IMC_LOG_ERR("sweep: option %s must be positive", a);
            }
            return 2;
        }
        *n = x;
    }
    return 0;
}

static bool takes_value(struct imc_sweep_opts *o, const char *a)
{
    int64_t dummy = 0;
    return str_slot(o, a) || int_slot(o, &dummy, a) || strcmp(a, "--type") == 0;
}

// Returns 0 to run, 2 on a bad argument (logged), -1 after printing help (rank 0 only).
static int parse(int argc, char **argv, struct imc_sweep_opts *o, bool rank0)
{
    int64_t threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int used = imc_cli_log_option(argc, argv, i);
        if (used > 0) {
            i += used - 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            if (rank0) {
                usage(stdout);
            }
            return -1;
        } else if (strcmp(a, "--keep-models") == 0) {
            o->keep_models = true;
        } else if (!takes_value(o, a)) {
            IMC_LOG_ERR("sweep: unknown argument '%s' (see imc sweep --help)", a);
            return 2;
        } else if (imc_cli_need_value("sweep", argc, argv, i) ||
                   parse_value(o, &threads, a, argv[++i])) {
            return 2;
        }
    }
    o->n_threads = threads > 1024 ? 1024 : (int)threads;
    const char *err = !o->base        ? "missing --base MODEL"
                      : !o->rules_dir ? "missing --rules-dir DIR"
                      : !o->text      ? "missing -f TEXT"
                                      : NULL;
    if (err) {
        IMC_LOG_ERR("sweep: %s", err);
        usage(stderr);
        return 2;
    }
    return 0;
}

// imc_sweep_init on every rank; every rank learns whether all succeeded.
static enum imc_status init_all(struct imc_sweep **s, const struct imc_sweep_opts *o)
{
    enum imc_status st = imc_sweep_init(s, o);
    if (!o->comm) {
        return st;
    }
    int bad = st != IMC_OK;
    if (imc_reduce_all_sum_int(o->comm, IMC_GROUP_WORLD, &bad, 1) != IMC_OK) {
        imc_fatal(o->comm, IMC_ERR_MPI, "sweep");
    }
    if (bad && st == IMC_OK) {
        st = IMC_ERR_IO; // another rank could not read the inputs (it logged why)
    }
    return st;
}

static int run(int argc, char **argv)
{
    struct imc_comm *comm = NULL;
    if (imc_cli_mpi_start(&comm) != 0) {
        return 1;
    }
    const int rank = comm ? imc_comm_rank(comm) : 0;
    struct imc_sweep_opts o;
    imc_sweep_opts_default(&o);
    imc_cli_mute(rank != 0);
    int rc = parse(argc, argv, &o, rank == 0);
    imc_cli_mute(false);
    if (rc == 0) {
        o.comm = comm;
        struct imc_sweep *s = NULL;
        enum imc_status st = init_all(&s, &o);
        if (st == IMC_OK) {
            st = imc_sweep_run(s, rank == 0 ? stdout : NULL);
        }
        if (st == IMC_ERR_MPI) {
            imc_fatal(comm, st, "sweep");
        }
        imc_sweep_free(s);
        rc = st == IMC_OK ? 0 : 1;
    }
    fflush(stdout);
    imc_comm_free(comm);
    return rc < 0 ? 0 : rc;
}

const struct imc_cli_cmd imc_cmd_sweep = {
    .name = "sweep",
    .summary = "quantize with every recipe of a folder; PPL/KLD of each; results.csv/.md/.svg",
    .run = run,
};
