/*
 * imc imatrix: the importance matrix of a model over calibration text, llama-imatrix compatible
 * output (DESIGN.md §3, §4; coordinator/imatrix.h), and statistics of an imatrix file
 * (coordinator/imatrix_stats.h).
 *
 *   imc imatrix -m MODEL -f TEXT -o OUT [options]   (options: the table below; --help)
 *   imc imatrix --stats FILE
 *
 * Results go to stdout, progress and logs to stderr. Exit 0 on success, 1 when the run fails
 * (one error line naming the file and cause), 2 on bad usage.
 *
 * Under mpirun or srun the ranks form one job (coordinator/imatrix_dist.c): world rank 0
 * prints and writes; a failure on any rank ends the job through imc_fatal.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/imatrix.h"
#include "coordinator/imatrix_stats.h"
#include "coordinator/quantize.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "numa/plan.h"
#include "src/cli.h"

struct args {
    struct imc_imatrix_opts o;
    struct imc_imatrix_in_file *in; // [argc] room for every --in-file
    char **owned;                   // [argc] paths cut from "F:W" values (owned)
    int n_owned;
    const char *stats;             // --stats FILE
    struct imc_quantize_then then; // --then-quantize / --then-external
};

// --then-quantize RULES TYPE OUT (RULES "-": none).
static int parse_then(const char *cmd, const char *opt, char **v, void *slot)
{
    (void)cmd;
    (void)opt;
    struct args *a = slot;
    a->then.rules = strcmp(v[0], "-") == 0 ? NULL : v[0];
    a->then.type = v[1];
    a->then.out = v[2];
    return 0;
}

// "F" or "F:W" with W a finite number >= 0 (a suffix that is not a number stays in the path).
static int parse_in_file(const char *cmd, const char *opt, char **values, void *slot)
{
    struct args *a = slot;
    const char *v = values[0];
    struct imc_imatrix_in_file *f = &a->in[a->o.n_in_files++];
    f->path = v;
    f->weight = 1.0;
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || colon[1] == '\0') {
        return 0;
    }
    char *end = NULL;
    errno = 0;
    double w = strtod(colon + 1, &end);
    if (*end != '\0' || errno != 0) {
        return 0; // a ':' inside the file name
    }
    if (!isfinite(w) || w < 0) {
        IMC_LOG_ERR("%s: option --%s %s: weight must be a finite number >= 0", cmd, opt, v);
        return 2;
    }
    char *path = strndup(v, (size_t)(colon - v));
    if (!path) {
        return 2;
    }
    a->owned[a->n_owned++] = path;
    f->path = path;
    f->weight = w;
    return 0;
}

#define OWN(field) IMC_OPT_SLOT(IMC_OPT_OWN, offsetof(struct args, field))
// --format and --dat-zero are IMC_OPT_ENUM rows, which store an int into these enum fields.
_Static_assert(sizeof(enum imc_imatrix_format) == sizeof(int) &&
                   sizeof(enum imc_dat_zero_policy) == sizeof(int),
               "the enums of --format and --dat-zero are int-sized");

static const struct imc_opt own_opts[] = {
    IMC_OPT("output", 'o', IMC_OPT_STR, OWN(o.out), "OUT",
            "imatrix to write (.gguf; .dat = legacy form)"),
    IMC_OPT("from-chunk", 0, IMC_OPT_UINT, OWN(o.from_chunk), "N",
            "skip the first N chunks of the text (alias --chunk)", .alias = "chunk"),
    IMC_OPT("save-every", 0, IMC_OPT_POS, OWN(o.save_every), "N",
            "every N chunks write OUT and the state OUT.ckpt"),
    IMC_OPT("resume", 0, IMC_OPT_FLAG, OWN(o.resume), NULL,
            "continue from OUT.ckpt (same options required)"),
    IMC_OPT("in-file", 0, IMC_OPT_FN, IMC_OPT_SLOT(IMC_OPT_OWN, 0), "F[:W]",
            "merge the imatrix F (GGUF or .dat) into the output, its\nsums and counts times W "
            "(default 1); repeatable",
            .fn = parse_in_file,
            .repeat = true), // slot: the whole struct args (o is its first member)
    IMC_OPT("format", 0, IMC_OPT_ENUM, OWN(o.format), "FMT",
            "auto | gguf | dat | both (default auto: by the extension of OUT)",
            .choices = imc_opt_imatrix_formats),
    IMC_OPT("dat-zero", 0, IMC_OPT_ENUM, OWN(o.dat_zero), "POLICY",
            ".dat values of experts without tokens: one (llama.cpp,\ndefault) | skip (drop the "
            "tensor) "
            "| zero | mean",
            .choices = imc_opt_dat_zero_policies),
    IMC_OPT("process-output", 0, IMC_OPT_FLAG, OWN(o.process_output), NULL,
            "also collect output.weight"),
    IMC_OPT("parse-special", 0, IMC_OPT_FLAG, OWN(o.parse_special), NULL,
            "tokenize special-token texts in TEXT"),
    IMC_OPT("then-quantize", 0, IMC_OPT_FN, IMC_OPT_SLOT(IMC_OPT_OWN, 0), "RULES TYPE OUT",
            "once the imatrix is written, quantize MODEL with it\n(imc quantize MODEL OUT TYPE "
            "--imatrix "
            "<the imatrix>\n--rules RULES; RULES '-': none); checked before the run",
            .fn = parse_then, .n_values = 3),
    IMC_OPT("then-external", 0, IMC_OPT_STR, OWN(then.external), "CMD",
            "quantize with this external command instead (as imc\nquantize --external)"),
    IMC_OPT("stats", 0, IMC_OPT_STR, OWN(stats), "FILE",
            "print per-tensor and per-layer statistics of FILE"),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {
    imc_opt_group_model,  imc_opt_group_text,    own_opts,           imc_opt_group_chunks,
    imc_opt_group_batch,  imc_opt_group_threads, imc_opt_group_attn, imc_opt_group_matmul,
    imc_opt_group_device, imc_opt_group_layout,  imc_opt_group_log,  NULL};

static const struct imc_opt_spec spec = {
    .usage = "-m MODEL -f TEXT -o OUT [options]\n--stats FILE",
    .groups = groups,
    .notes = "The output does not depend on -b, -t or the layout.",
};

// Moves the shared options into a->o and checks the combination; returns 0 or 2 (logged).
static int finish(void *own, const struct imc_opt_common *c, char **pos, int n_pos,
                  const struct imc_comm *comm)
{
    struct args *a = own;
    (void)pos;
    (void)n_pos;
    struct imc_imatrix_opts *o = &a->o;
    IMC_CLI_APPLY_RUN_OPTIONS(o, c, comm);
    if (a->then.external && !a->then.out) {
        IMC_LOG_ERR("imatrix: --then-external needs --then-quantize RULES TYPE OUT");
        return 2;
    }
    if (a->then.out && (a->stats || imc_quantize_then_check(&a->then) != IMC_OK)) {
        if (a->stats) {
            IMC_LOG_ERR("imatrix: --then-quantize needs an imatrix run, not --stats");
        }
        return 2;
    }
    const char *err = a->stats    ? NULL
                      : !o->model ? "missing -m MODEL"
                      : !o->text  ? "missing -f TEXT"
                      : !o->out   ? "missing -o OUT"
                                  : NULL;
    if (err) {
        IMC_LOG_ERR("imatrix: %s (see imc imatrix --help)", err);
        return 2;
    }
    return 0;
}

// The quantization after a successful run, with the imatrix just written (its GGUF form when
// both forms are), on world rank 0 only.
static enum imc_status then_quantize(const struct args *a, bool rank0)
{
    char *gguf = NULL, *dat = NULL;
    if (!a->then.out || !rank0) {
        return IMC_OK;
    }
    enum imc_status st = imc_imatrix_out_paths(a->o.out, a->o.format, &gguf, &dat);
    if (st == IMC_OK) {
        st = imc_quantize_then_run(&a->then, a->o.model, gguf ? gguf : dat, a->o.n_threads);
    }
    free(gguf);
    free(dat);
    return st;
}

// The run, as one MPI job under a launcher (every rank; rank 0 prints and writes).
static int run_job(struct args *a, struct imc_comm *comm)
{
    int rc = imc_cli_job_layout(comm, "imatrix", a->o.model, &a->o.layout);
    if (rc != 0) {
        imc_comm_free(comm);
        return rc;
    }
    a->o.comm = comm;
    const bool rank0 = !comm || imc_comm_rank(comm) == 0;
    enum imc_status st = imc_imatrix_run(&a->o, rank0 ? stdout : NULL, NULL);
    fflush(stdout);
    if (st == IMC_OK) {
        st = then_quantize(a, rank0);
    }
    return imc_cli_job_end(comm, st, "imatrix");
}

static int run(int argc, char **argv)
{
    struct args a;
    memset(&a, 0, sizeof(a));
    imc_imatrix_opts_default(&a.o);
    a.in = calloc((size_t)argc, sizeof(*a.in));
    a.owned = calloc((size_t)argc, sizeof(*a.owned));
    struct imc_comm *comm = NULL;
    if (!a.in || !a.owned || imc_cli_mpi_start(&comm) != 0) {
        free(a.in);
        free(a.owned);
        return 1;
    }
    a.o.in_files = a.in;
    struct imc_opt_common c;
    char **pos = NULL;
    int n_pos = 0;
    int rc = imc_cli_parse(&imc_cmd_imatrix, argc, argv, &a, &c, comm, &pos, &n_pos);
    if (rc == 0 && !a.stats) {
        rc = imc_cli_device_check(comm, "imatrix", &c);
    }
    if (rc == 0 && a.stats) {
        const bool rank0 = !comm || imc_comm_rank(comm) == 0;
        rc = !rank0 || imc_imstat_print_file(a.stats, stdout) == IMC_OK ? 0 : 1;
        imc_comm_free(comm);
    } else if (rc == 0) {
        a.o.n_threads = imc_cli_threads_resolve(comm, "imatrix", &c);
        rc = run_job(&a, comm);
    } else {
        imc_comm_free(comm);
    }
    for (int i = 0; i < a.n_owned; i++) {
        free(a.owned[i]);
    }
    free(a.owned);
    free(a.in);
    return rc < 0 ? 0 : rc;
}

const struct imc_cli_cmd imc_cmd_imatrix = {
    .name = "imatrix",
    .summary = "importance matrix over calibration text (llama-imatrix compatible); --stats",
    .opts = &spec,
    .check = finish,
    .run = run,
};
