/*
 * imc quantize: writes a quantized copy of a GGUF model with imatrix-weighted rows and
 * per-tensor regex rules (DESIGN.md §3, §4 "Quantized output"; policy in coordinator/quantize.h,
 * rule syntax in coordinator/quant_rules.h), or runs an external quantizer with the same inputs.
 *
 *   imc quantize MODEL OUT TYPE [--imatrix F] [--rules FILE | --custom-q 're=type,...']
 *                [--external 'CMD'] [-t N] [--dat-chunk-size N]
 *
 * Under mpirun / srun every rank quantizes a share of the tensors and world rank 0 writes OUT
 * (the same bytes as one process); --external runs on rank 0 only. Usage errors are found alike
 * on every rank (rank 0 reports them); a failure during the run ends the job through imc_fatal.
 */
#include <stdio.h>
#include <string.h>

#include "coordinator/quantize.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "src/cli.h"

#define USAGE                                                                                      \
    "usage: imc quantize MODEL OUT TYPE [--imatrix F] [--rules FILE | --custom-q 're=type,...']\n" \
    "                    [--external 'CMD'] [-t N] [--dat-chunk-size N]\n"                         \
    "  TYPE            default type of the matmul weights (f32 f16 bf16 q4_0 q4_1 q5_0 q5_1\n"     \
    "                  q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs)\n"                             \
    "  --imatrix F     imatrix (GGUF or .dat): each row weighted by its columns' mean x^2\n"       \
    "  --rules FILE    one 'regex=type' per line, '#' comments; first match wins\n"                \
    "  --custom-q L    the same rules as a comma-separated list (ik_llama.cpp syntax)\n"           \
    "  --external CMD  run this /bin/sh command instead (e.g. llama-quantize); placeholders\n"     \
    "                  {model} {out} {type} {imatrix} {rules} become quoted words ({rules}:\n"     \
    "                  the rules as one --custom-q list); TYPE is passed as written\n"             \
    "  -t N            threads (default 1; output bytes do not depend on it)\n"                    \
    "  --dat-chunk-size N  chunk size assumed for a .dat imatrix (default 512)\n"                  \
    "Under mpirun/srun the tensors are spread over the ranks; rank 0 writes OUT.\n"

struct quant_args {
    const char *pos[3]; // MODEL OUT TYPE
    int n_pos;
    struct imc_quantize_job j;
};

static const char **str_slot(struct quant_args *a, const char *o)
{
    if (strcmp(o, "--imatrix") == 0) {
        return &a->j.o.imatrix;
    }
    if (strcmp(o, "--rules") == 0) {
        return &a->j.rules_file;
    }
    if (strcmp(o, "--custom-q") == 0) {
        return &a->j.custom_q;
    }
    if (strcmp(o, "--external") == 0) {
        return &a->j.external;
    }
    return NULL;
}

// Handles one option at argv[i]; returns the arguments consumed, or -1 on error.
static int parse_option(struct quant_args *a, int argc, char **argv, int i)
{
    const char *o = argv[i];
    const char **slot = str_slot(a, o);
    bool threads = strcmp(o, "-t") == 0 || strcmp(o, "--threads") == 0;
    if (!slot && !threads && strcmp(o, "--dat-chunk-size") != 0) {
        IMC_LOG_ERR("quantize: unknown option '%s'\n%s", o, USAGE);
        return -1;
    }
    if (imc_cli_need_value("quantize", argc, argv, i)) {
        return -1;
    }
    const char *v = argv[i + 1];
    if (slot) {
        *slot = v;
        return 2;
    }
    long n = imc_cli_parse_long("quantize", o, v);
    if (n < 0 || (threads && (n < 1 || n > 1024)) || (!threads && (n < 1 || n > 1 << 30))) {
        IMC_LOG_ERR("quantize: bad value '%s' for %s", v, o);
        return -1;
    }
    if (threads) {
        a->j.o.n_threads = (int)n;
    } else {
        a->j.o.dat_chunk_size = (uint32_t)n;
    }
    return 2;
}

static int parse_args(struct quant_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc;) {
        int used = imc_cli_log_option(argc, argv, i);
        if (used == 0 && argv[i][0] == '-' && argv[i][1] != '\0') {
            used = parse_option(a, argc, argv, i);
        } else if (used == 0) {
            if (a->n_pos == 3) {
                IMC_LOG_ERR("quantize: unexpected argument '%s'\n%s", argv[i], USAGE);
                return 1;
            }
            a->pos[a->n_pos++] = argv[i];
            used = 1;
        }
        if (used < 0) {
            return 1;
        }
        i += used;
    }
    if (a->n_pos != 3) {
        IMC_LOG_ERR("quantize: need MODEL OUT TYPE\n%s", USAGE);
        return 1;
    }
    if (a->j.rules_file && a->j.custom_q) {
        IMC_LOG_ERR("quantize: give --rules or --custom-q, not both");
        return 1;
    }
    a->j.o.model = a->pos[0];
    a->j.o.out = a->pos[1];
    a->j.type_name = a->pos[2];
    return 0;
}

static void print_summary(const struct quant_args *a, const struct imc_quantize_stats *s)
{
    if (a->j.external) {
        printf("quantized %s -> %s (%s) with the external quantizer\n", a->j.o.model, a->j.o.out,
               a->j.type_name);
        return;
    }
    printf("quantized %s -> %s (%s): %lld tensors, %lld converted (%lld with imatrix, "
           "%lld type fallbacks), %.2f MiB -> %.2f MiB\n",
           a->j.o.model, a->j.o.out, a->j.type_name, (long long)s->n_tensors,
           (long long)s->n_quantized, (long long)s->n_weighted, (long long)s->n_fallback,
           (double)s->bytes_in / 1048576.0, (double)s->bytes_out / 1048576.0);
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return true;
        }
    }
    return false;
}

static int quantize_main(int argc, char **argv)
{
    struct imc_comm *comm = NULL;
    if (imc_cli_mpi_start(&comm) != 0) {
        return 1;
    }
    const int rank = comm ? imc_comm_rank(comm) : 0, size = comm ? imc_comm_size(comm) : 1;
    if (wants_help(argc, argv)) {
        if (rank == 0) {
            printf("%s", USAGE);
        }
        imc_comm_free(comm);
        return 0;
    }
    struct quant_args a = {0};
    imc_quantize_opts_default(&a.j.o);
    imc_cli_mute(rank != 0);
    int rc = parse_args(&a, argc, argv);
    imc_cli_mute(false);
    if (rank != 0 && imc_log_get_level() > IMC_LOG_ERROR) {
        imc_log_set_level(IMC_LOG_ERROR); // rank 0 reports the plan and its warnings
    }
    if (rc == 0) {
        a.j.o.comm = comm;
        struct imc_quantize_stats s = {0};
        enum imc_status st = imc_quantize_job_run(&a.j, &s);
        if (st != IMC_OK && size > 1) {
            imc_fatal(comm, st, "quantize");
        }
        if (st == IMC_OK && rank == 0) {
            print_summary(&a, &s);
        }
        rc = st == IMC_OK ? 0 : 1;
    }
    fflush(stdout);
    imc_comm_free(comm);
    return rc;
}

const struct imc_cli_cmd imc_cmd_quantize = {
    .name = "quantize",
    .summary = "quantize a GGUF model (imatrix-weighted rows, regex=type rules, --external)",
    .run = quantize_main,
};
