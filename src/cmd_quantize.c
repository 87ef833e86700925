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
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "coordinator/quantize.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "src/cli.h"

struct quant_args {
    struct imc_quantize_job j;
    int64_t dat_chunk_size; // --dat-chunk-size (parsed as an int64_t); 0: not given
};

#define OWN(field) IMC_OPT_SLOT(IMC_OPT_OWN, offsetof(struct quant_args, field))

static const struct imc_opt own_opts[] = {
    IMC_OPT("imatrix", 0, IMC_OPT_STR, OWN(j.o.imatrix), "F",
            "imatrix (GGUF or .dat): each row weighted by its columns'\nmean x^2"),
    IMC_OPT("rules", 0, IMC_OPT_STR, OWN(j.rules_file), "FILE",
            "one 'regex=type' per line, '#' comments; first match wins"),
    IMC_OPT("custom-q", 0, IMC_OPT_STR, OWN(j.custom_q), "L",
            "the same rules as a comma-separated list (ik_llama.cpp syntax)"),
    IMC_OPT("external", 0, IMC_OPT_STR, OWN(j.external), "CMD",
            "run this /bin/sh command instead (e.g. llama-quantize);\nplaceholders {model} {out} "
            "{type} "
            "{imatrix} {rules} become\nquoted words ({rules}: the rules as one --custom-q "
            "list);\nTYPE "
            "is passed as written"),
    IMC_OPT("dat-chunk-size", 0, IMC_OPT_POS, OWN(dat_chunk_size), "N",
            "chunk size assumed for a .dat imatrix (default 512)"),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {own_opts, imc_opt_group_threads, imc_opt_group_log,
                                               NULL};

static const struct imc_opt_spec spec = {
    .usage = "MODEL OUT TYPE [--imatrix F] [--rules FILE | --custom-q 're=type,...'] [options]",
    .groups = groups,
    .notes = "TYPE: the default type of the matmul weights (f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0\n"
             "q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs). Output bytes do not depend on -t. Under\n"
             "mpirun/srun the tensors are spread over the ranks; rank 0 writes OUT.",
    .min_pos = 3,
    .max_pos = 3,
    .pos_name = "MODEL OUT TYPE",
};

// Moves the parsed values into the job; returns 0 or 2 (logged).
static int finish(void *own, const struct imc_opt_common *c, char **pos, int n_pos,
                  const struct imc_comm *comm)
{
    struct quant_args *a = own;
    (void)n_pos;
    (void)comm;
    if (a->j.rules_file && a->j.custom_q) {
        IMC_LOG_ERR("quantize: give --rules or --custom-q, not both");
        return 2;
    }
    if (a->dat_chunk_size > (INT64_C(1) << 30)) {
        IMC_LOG_ERR("quantize: option --dat-chunk-size expects at most 2^30, got %lld",
                    (long long)a->dat_chunk_size);
        return 2;
    }
    if (a->dat_chunk_size > 0) {
        a->j.o.dat_chunk_size = (uint32_t)a->dat_chunk_size;
    }
    a->j.o.model = pos[0];
    a->j.o.out = pos[1];
    a->j.type_name = pos[2];
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

static int quantize_main(int argc, char **argv)
{
    struct imc_comm *comm = NULL;
    if (imc_cli_mpi_start(&comm) != 0) {
        return 1;
    }
    const int rank = comm ? imc_comm_rank(comm) : 0, size = comm ? imc_comm_size(comm) : 1;
    struct quant_args a = {0};
    imc_quantize_opts_default(&a.j.o);
    struct imc_opt_common c;
    char **pos = NULL;
    int n_pos = 0;
    int rc = imc_cli_parse(&imc_cmd_quantize, argc, argv, &a, &c, comm, &pos, &n_pos);
    if (rc != 0) {
        imc_comm_free(comm);
        return rc < 0 ? 0 : rc;
    }
    if (rank != 0 && imc_log_get_level() > IMC_LOG_ERROR) {
        imc_log_set_level(IMC_LOG_ERROR); // rank 0 reports the plan and its warnings
    }
    if (rc == 0) {
        a.j.o.comm = comm;
        a.j.o.n_threads = imc_cli_threads_resolve(comm, "quantize", &c);
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
    .opts = &spec,
    .check = finish,
    .run = quantize_main,
};
