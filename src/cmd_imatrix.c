/*
 * imc imatrix: the importance matrix of a model over calibration text, llama-imatrix compatible
 * output (DESIGN.md §3, §4; coordinator/imatrix.h), and statistics of an imatrix file
 * (coordinator/imatrix_stats.h).
 *
 *   imc imatrix -m MODEL -f TEXT -o OUT [-c N] [--chunks N] [--from-chunk N] [-b N] [-t N]
 *               [--save-every N] [--resume] [--in-file F[:weight]]... [--format gguf|dat|both]
 *               [--dat-zero one|skip|zero|mean] [--process-output] [--parse-special]
 *               [--attn auto|absorbed|non-absorbed] [--layout pp=A,ep=B,dp=C] [-q]
 *               [--then-quantize RULES TYPE OUT [--then-external CMD]]
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
#include <stdlib.h>
#include <string.h>

#include "coordinator/imatrix.h"
#include "coordinator/imatrix_stats.h"
#include "coordinator/quantize.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "numa/plan.h"
#include "src/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: imc imatrix -m MODEL -f TEXT -o OUT [options]\n"
               "       imc imatrix --stats FILE\n"
               "  -m, --model MODEL       GGUF model\n"
               "  -f, --file TEXT         calibration text (at least 2*ctx tokens)\n"
               "  -o, --output OUT        imatrix to write (.gguf; .dat = legacy form)\n"
               "  -c, --ctx N             tokens per chunk (default 512, n_ctx_train if smaller)\n"
               "  --chunks N              process at most N chunks (default: all)\n"
               "  --from-chunk N          skip the first N chunks of the text (alias --chunk)\n"
               "  -b, --batch N           tokens per engine call; batch >= 2*ctx runs batch/ctx\n"
               "                          chunks per call (default 2048; the output does not\n"
               "                          depend on it)\n"
               "  -t, --threads N         compute threads (default 1)\n"
               "  --save-every N          every N chunks write OUT and the state OUT.ckpt\n"
               "  --resume                continue from OUT.ckpt (same options required)\n"
               "  --in-file F[:W]         merge the imatrix F (GGUF or .dat) into the output, its\n"
               "                          sums and counts times W (default 1); repeatable\n"
               "  --format FMT            gguf | dat | both (default: by the extension of OUT)\n"
               "  --dat-zero POLICY       .dat values of experts without tokens: one (llama.cpp,\n"
               "                          default) | skip (drop the tensor) | zero | mean\n"
               "  --process-output        also collect output.weight\n"
               "  --parse-special         tokenize special-token texts in TEXT\n"
               "  --attn PATH             deepseek2 attention: auto, absorbed or non-absorbed\n"
               "  --layout pp=A,ep=B,dp=C MPI job layout: pipeline stages x expert shards x\n"
               "                          replicas, product = ranks (default: automatic, as\n"
               "                          imc plan MODEL --ranks N prints it)\n"
               "  --then-quantize RULES TYPE OUT\n"
               "                          once the imatrix is written, quantize MODEL with it\n"
               "                          (imc quantize MODEL OUT TYPE --imatrix <the imatrix>\n"
               "                          --rules RULES; RULES '-': none); checked before the run\n"
               "  --then-external CMD     quantize with this external command instead (as imc\n"
               "                          quantize --external)\n"
               "  --stats FILE            print per-tensor and per-layer statistics of FILE\n"
               "  -q, --quiet             no progress lines, warnings and errors only\n"
               "  -v, --log-level LEVEL\n");
}

struct args {
    struct imc_imatrix_opts o;
    struct imc_imatrix_in_file *in; // [argc] room for every --in-file
    char **owned;                   // [argc] paths cut from "F:W" values (owned)
    int n_owned;
    const char *stats; // --stats FILE
    int64_t threads;
    int64_t batch;                 // -b (no effect, see usage)
    struct imc_quantize_then then; // --then-quantize / --then-external
};

// --then-quantize RULES TYPE OUT / --then-external CMD at argv[i]: the arguments used, 0 when
// argv[i] is neither, -1 on a missing value (logged).
static int parse_then(struct args *a, int argc, char **argv, int i)
{
    int need = strcmp(argv[i], "--then-quantize") == 0   ? 3
               : strcmp(argv[i], "--then-external") == 0 ? 1
                                                         : 0;
    if (need > 0 && i + need >= argc) {
        IMC_LOG_ERR("imatrix: %s needs %s", argv[i], need == 3 ? "RULES TYPE OUT" : "a command");
        return -1;
    }
    if (need == 3) {
        a->then.rules = strcmp(argv[i + 1], "-") == 0 ? NULL : argv[i + 1];
        a->then.type = argv[i + 2];
        a->then.out = argv[i + 3];
    } else if (need == 1) {
        a->then.external = argv[i + 1];
    }
    return need > 0 ? need + 1 : 0;
}

static int parse_attn(const char *s, enum imc_attn_path *out)
{
    static const enum imc_attn_path paths[] = {IMC_ATTN_AUTO, IMC_ATTN_ABSORBED,
                                               IMC_ATTN_NON_ABSORBED};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (strcmp(s, imc_attn_path_name(paths[i])) == 0) {
            *out = paths[i];
            return 0;
        }
    }
    IMC_LOG_ERR("imatrix: --attn expects auto, absorbed or non-absorbed, got '%s'", s);
    return 2;
}

// "F" or "F:W" with W a finite number >= 0 (a suffix that is not a number stays in the path).
static int parse_in_file(struct args *a, const char *v)
{
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
        IMC_LOG_ERR("imatrix: --in-file %s: weight must be a finite number >= 0", v);
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

static const char **str_slot(struct args *a, const char *s)
{
    static const char *const names[] = {"-m", "--model",  "-f",     "--file",
                                        "-o", "--output", "--stats"};
    const char **slots[] = {&a->o.model, &a->o.model, &a->o.text, &a->o.text,
                            &a->o.out,   &a->o.out,   &a->stats};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            return slots[i];
        }
    }
    return NULL;
}

// Integer options: slot and the smallest value allowed.
static int64_t *int_slot(struct args *a, const char *s, long *min)
{
    const struct {
        const char *name;
        int64_t *slot;
    } opts[] = {
        {"-c", &a->o.n_ctx},
        {"--ctx", &a->o.n_ctx},
        {"--ctx-size", &a->o.n_ctx},
        {"--chunks", &a->o.max_chunks},
        {"--from-chunk", &a->o.from_chunk},
        {"--chunk", &a->o.from_chunk},
        {"-b", &a->o.n_batch},
        {"--batch", &a->o.n_batch},
        {"--batch-size", &a->o.n_batch},
        {"-t", &a->threads},
        {"--threads", &a->threads},
        {"--save-every", &a->o.save_every},
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        if (strcmp(s, opts[i].name) == 0) {
            *min = opts[i].slot == &a->o.from_chunk ? 0 : 1;
            return opts[i].slot;
        }
    }
    return NULL;
}

static int parse_enum(const char *opt, const char *v, int parsed, int *out)
{
    if (parsed < 0) {
        IMC_LOG_ERR("imatrix: %s: unknown value '%s' (see imc imatrix --help)", opt, v);
        return 2;
    }
    *out = parsed;
    return 0;
}

static bool takes_value(struct args *a, const char *s)
{
    static const char *const others[] = {"--in-file", "--attn", "--format", "--dat-zero",
                                         "--layout"};
    long min;
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        if (strcmp(s, others[i]) == 0) {
            return true;
        }
    }
    return str_slot(a, s) || int_slot(a, s, &min);
}

// Parses option s (one that takes_value) with value v; returns 0, or 2 on error (logged).
static int parse_value(struct args *a, const char *s, const char *v)
{
    const char **str = str_slot(a, s);
    long min = 0;
    int64_t *n = int_slot(a, s, &min);
    int e = 0;
    if (str) {
        *str = v;
    } else if (n) {
        long x = imc_cli_parse_long("imatrix", s, v);
        if (x < min) {
            if (x >= 0) {
                IMC_LOG_ERR("imatrix: option %s must be at least %ld", s, min);
            }
            return 2;
        }
        *n = x;
    } else if (strcmp(s, "--in-file") == 0) {
        return parse_in_file(a, v);
    } else if (strcmp(s, "--attn") == 0) {
        return parse_attn(v, &a->o.attn);
    } else if (strcmp(s, "--layout") == 0) {
        return imc_layout_parse(v, &a->o.layout) == IMC_OK ? 0 : 2;
    } else if (strcmp(s, "--format") == 0) {
        int rc = parse_enum(s, v, imc_imatrix_parse_format(v), &e);
        a->o.format = (enum imc_imatrix_format)e;
        return rc;
    } else if (strcmp(s, "--dat-zero") == 0) {
        int rc = parse_enum(s, v, imc_imatrix_parse_zero_policy(v), &e);
        a->o.dat_zero = (enum imc_dat_zero_policy)e;
        return rc;
    }
    return 0;
}

static int parse_flag(struct args *a, const char *s)
{
    if (strcmp(s, "--resume") == 0) {
        a->o.resume = true;
    } else if (strcmp(s, "--process-output") == 0) {
        a->o.process_output = true;
    } else if (strcmp(s, "--parse-special") == 0) {
        a->o.parse_special = true;
    } else {
        return -1;
    }
    return 0;
}

static int check_required(const struct args *a)
{
    const char *err = a->stats      ? NULL
                      : !a->o.model ? "missing -m MODEL"
                      : !a->o.text  ? "missing -f TEXT"
                      : !a->o.out   ? "missing -o OUT"
                                    : NULL;
    if (err) {
        IMC_LOG_ERR("imatrix: %s", err);
        usage(stderr);
        return 2;
    }
    return 0;
}

// Returns 0 to run, 2 on a bad argument (logged), -1 after printing help.
static int parse(int argc, char **argv, struct args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "-q") == 0 || strcmp(s, "--quiet") == 0) {
            a->o.quiet = true;
        }
        int used = imc_cli_log_option(argc, argv, i);
        if (used > 0) {
            i += used - 1;
            continue;
        }
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            usage(stdout);
            return -1;
        }
        if (parse_flag(a, s) == 0) {
            continue;
        }
        int then = parse_then(a, argc, argv, i);
        if (then != 0) {
            if (then < 0) {
                return 2;
            }
            i += then - 1;
            continue;
        }
        if (!takes_value(a, s)) {
            IMC_LOG_ERR("imatrix: unknown argument '%s' (see imc imatrix --help)", s);
            return 2;
        }
        if (imc_cli_need_value("imatrix", argc, argv, i)) {
            return 2;
        }
        int rc = parse_value(a, s, argv[i + 1]);
        if (rc != 0) {
            return rc;
        }
        i++;
    }
    a->o.n_threads = a->threads > 1024 ? 1024 : (int)a->threads;
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
    return check_required(a);
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
    if (!rank0) {
        a->o.quiet = true;
    }
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
    a.o.layout.pp = 0; // not given: automatic
    a.threads = 1;
    a.in = calloc((size_t)argc, sizeof(*a.in));
    a.owned = calloc((size_t)argc, sizeof(*a.owned));
    struct imc_comm *comm = NULL;
    if (!a.in || !a.owned || imc_cli_mpi_start(&comm) != 0) {
        free(a.in);
        free(a.owned);
        return 1;
    }
    a.o.in_files = a.in;
    imc_cli_job_parse_begin(comm);
    int rc = parse(argc, argv, &a);
    imc_cli_job_parse_end(comm);
    if (rc == 0 && a.stats) {
        const bool rank0 = !comm || imc_comm_rank(comm) == 0;
        rc = !rank0 || imc_imstat_print_file(a.stats, stdout) == IMC_OK ? 0 : 1;
        imc_comm_free(comm);
    } else if (rc == 0) {
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
    .run = run,
};
