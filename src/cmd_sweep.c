/*
 * imc sweep: quantize a base model with every recipe of a folder and compare the results
 * (size, bpw, PPL, KLD, same top p) in results.csv / .md / .svg (DESIGN.md §3;
 * coordinator/sweep.h has the recipe format, the files and the definitions).
 *
 *   imc sweep --base MODEL [--imatrix F] --rules-dir DIR -f TEXT [--out-dir DIR] [--type T]
 *             [-c N] [--chunks N] [-t N] [--ranks-per-recipe G] [--keep-models] [-q]
 *
 * The Markdown table goes to stdout, progress and logs to stderr. Exit 0 on success, 1 when the
 * sweep fails (the failing recipe named), 2 on bad usage. Under mpirun / srun the recipes are
 * spread over the ranks (or over groups of G ranks, each recipe distributed over its group); every
 * rank exits with world rank 0's verdict.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "coordinator/quant_rules.h"
#include "coordinator/sweep.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/reduce.h"
#include "src/cli.h"

static int parse_type(const char *cmd, const char *opt, char **v, void *slot)
{
    char where[64];
    snprintf(where, sizeof(where), "%s: option --%s", cmd, opt);
    const int t = imc_quant_type_parse(v[0], where);
    if (t < 0) {
        return 2;
    }
    *(enum imc_type *)slot = (enum imc_type)t;
    return 0;
}

#define OWN(field) IMC_OPT_SLOT(IMC_OPT_OWN, offsetof(struct imc_sweep_opts, field))

static const struct imc_opt own_opts[] = {
    IMC_OPT("base", 0, IMC_OPT_STR, OWN(base), "MODEL",
            "the model every recipe quantizes (f32/f16/bf16 best)"),
    IMC_OPT("imatrix", 0, IMC_OPT_STR, OWN(imatrix), "F",
            "imatrix for the quantizations (GGUF or .dat)"),
    IMC_OPT(
        "rules-dir", 0, IMC_OPT_STR, OWN(rules_dir), "DIR",
        "one recipe per file: 'regex=type' lines as for imc quantize\n--rules, plus '!type TYPE' "
        "(default type) and '!imatrix no';\nthe recipe's name is the file name without its "
        "extension"),
    IMC_OPT(
        "out-dir", 'o', IMC_OPT_STR, OWN(out_dir), "DIR",
        "where the models, per-recipe results and results.csv/.md/\n.svg go (default .; created)"),
    IMC_OPT("type", 0, IMC_OPT_FN, OWN(type), "T",
            "default type of recipes without !type (default q8_0)", .fn = parse_type),
    IMC_OPT("ranks-per-recipe", 0, IMC_OPT_POS, OWN(ranks_per_recipe), "G",
            "MPI: ranks per recipe group (default: the fewest whose\nranks hold the base in "
            "--mem-per-rank each); G > 1: the\nbase on all ranks, each recipe quantized and "
            "scored by G\nranks; G must divide the ranks"),
    IMC_OPT("mem-per-rank", 0, IMC_OPT_FLOAT, OWN(mem_per_rank_gib), "GIB",
            "MPI: memory a rank may give a model, GiB (default: the\nnode's memory divided by "
            "its ranks)"),
    IMC_OPT("keep-models", 0, IMC_OPT_FLAG, OWN(keep_models), NULL,
            "keep each recipe's GGUF (default: deleted once scored)"),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {own_opts,
                                               imc_opt_group_text,
                                               imc_opt_group_chunks,
                                               imc_opt_group_threads,
                                               imc_opt_group_matmul,
                                               imc_opt_group_device,
                                               imc_opt_group_log,
                                               NULL};

static const struct imc_opt_spec spec = {
    .usage = "--base MODEL [--imatrix F] --rules-dir DIR -f TEXT [options]",
    .groups = groups,
    .notes = "-f TEXT is scored with each recipe (PPL, KLD against the base). A rerun skips the\n"
             "recipes whose result is up to date (same recipe and inputs). Under mpirun/srun\n"
             "the recipes are spread over the ranks (--ranks-per-recipe: over groups of\n"
             "ranks); -t is per rank.",
};

// Moves the shared options into o and checks what is required; returns 0 or 2 (logged).
static int finish(void *own, const struct imc_opt_common *c, char **pos, int n_pos,
                  const struct imc_comm *comm)
{
    struct imc_sweep_opts *o = own;
    (void)pos;
    (void)n_pos;
    (void)comm;
    o->text = c->text;
    o->n_ctx = c->n_ctx ? c->n_ctx : o->n_ctx;
    o->max_chunks = c->max_chunks ? c->max_chunks : o->max_chunks;
    const char *err = !o->base        ? "missing --base MODEL"
                      : !o->rules_dir ? "missing --rules-dir DIR"
                      : !o->text      ? "missing -f TEXT"
                                      : NULL;
    if (err) {
        IMC_LOG_ERR("sweep: %s (see imc sweep --help)", err);
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
    struct imc_opt_common c;
    char **pos = NULL;
    int n_pos = 0;
    int rc = imc_cli_parse(&imc_cmd_sweep, argc, argv, &o, &c, comm, &pos, &n_pos);
    if (rc == 0) {
        rc = imc_cli_device_check(comm, "sweep", &c);
    }
    if (rc == 0) {
        o.comm = comm;
        o.n_threads = imc_cli_threads_resolve(comm, "sweep", &c);
        o.matmul = (enum imc_matmul_mode)c.matmul;
        o.device = (enum imc_device)c.device;
        o.experts_on_cpu = c.experts_on == 1;
        o.host_exchange = c.exchange == 1;
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
    .opts = &spec,
    .check = finish,
    .ranks_inform = true,
    .run = run,
};
