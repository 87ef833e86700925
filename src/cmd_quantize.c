/*
 * imc quantize: writes a quantized copy of a GGUF model with imatrix-weighted rows and
 * per-tensor regex rules (DESIGN.md §3, §4 "Quantized output"; policy in coordinator/quantize.h,
 * rule syntax in coordinator/quant_rules.h).
 *
 *   imc quantize MODEL OUT TYPE [--imatrix F] [--rules FILE | --custom-q 're=type,...']
 *                [-t N] [--dat-chunk-size N]
 */
#include <stdio.h>
#include <string.h>

#include "coordinator/quant_rules.h"
#include "coordinator/quantize.h"
#include "core/log.h"
#include "src/cli.h"

#define USAGE                                                                                      \
    "usage: imc quantize MODEL OUT TYPE [--imatrix F] [--rules FILE | --custom-q 're=type,...']\n" \
    "                    [-t N] [--dat-chunk-size N]\n"                                            \
    "  TYPE            default type of the matmul weights (f32 f16 bf16 q4_0 q4_1 q5_0 q5_1\n"     \
    "                  q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs)\n"                             \
    "  --imatrix F     imatrix (GGUF or .dat): each row weighted by its columns' mean x^2\n"       \
    "  --rules FILE    one 'regex=type' per line, '#' comments; first match wins\n"                \
    "  --custom-q L    the same rules as a comma-separated list (ik_llama.cpp syntax)\n"           \
    "  -t N            threads (default 1; output bytes do not depend on it)\n"                    \
    "  --dat-chunk-size N  chunk size assumed for a .dat imatrix (default 512)\n"

struct quant_args {
    const char *pos[3]; // MODEL OUT TYPE
    int n_pos;
    const char *rules_file;
    const char *custom_q;
    struct imc_quantize_opts o;
};

// Handles one option at argv[i]; returns the arguments consumed, or -1 on error.
static int parse_option(struct quant_args *a, int argc, char **argv, int i)
{
    const char *o = argv[i];
    bool known = strcmp(o, "--imatrix") == 0 || strcmp(o, "--rules") == 0 ||
                 strcmp(o, "--custom-q") == 0 || strcmp(o, "-t") == 0 ||
                 strcmp(o, "--threads") == 0 || strcmp(o, "--dat-chunk-size") == 0;
    if (!known) {
        IMC_LOG_ERR("quantize: unknown option '%s'\n%s", o, USAGE);
        return -1;
    }
    if (imc_cli_need_value("quantize", argc, argv, i)) {
        return -1;
    }
    const char *v = argv[i + 1];
    if (strcmp(o, "--imatrix") == 0) {
        a->o.imatrix = v;
    } else if (strcmp(o, "--rules") == 0) {
        a->rules_file = v;
    } else if (strcmp(o, "--custom-q") == 0) {
        a->custom_q = v;
    } else {
        long n = imc_cli_parse_long("quantize", o, v);
        bool threads = strcmp(o, "--dat-chunk-size") != 0;
        if (n < 0 || (threads && (n < 1 || n > 1024)) || (!threads && (n < 1 || n > 1 << 30))) {
            IMC_LOG_ERR("quantize: bad value '%s' for %s", v, o);
            return -1;
        }
        if (threads) {
            a->o.n_threads = (int)n;
        } else {
            a->o.dat_chunk_size = (uint32_t)n;
        }
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
    if (a->rules_file && a->custom_q) {
        IMC_LOG_ERR("quantize: give --rules or --custom-q, not both");
        return 1;
    }
    int t = imc_quant_type_parse(a->pos[2], "quantize: TYPE");
    if (t < 0) {
        return 1;
    }
    a->o.model = a->pos[0];
    a->o.out = a->pos[1];
    a->o.type = (enum imc_type)t;
    return 0;
}

static int quantize_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("%s", USAGE);
            return 0;
        }
    }
    struct quant_args a = {0};
    imc_quantize_opts_default(&a.o);
    if (parse_args(&a, argc, argv) != 0) {
        return 1;
    }
    struct imc_quant_rules rules;
    imc_quant_rules_init(&rules);
    enum imc_status st = IMC_OK;
    if (a.rules_file) {
        st = imc_quant_rules_read_file(&rules, a.rules_file);
    } else if (a.custom_q) {
        st = imc_quant_rules_parse_list(&rules, a.custom_q);
    }
    a.o.rules = &rules;
    struct imc_quantize_stats s;
    if (st == IMC_OK) {
        st = imc_quantize_run(&a.o, &s);
    }
    if (st == IMC_OK) {
        printf("quantized %s -> %s (%s): %lld tensors, %lld converted (%lld with imatrix, "
               "%lld type fallbacks), %.2f MiB -> %.2f MiB\n",
               a.o.model, a.o.out, a.pos[2], (long long)s.n_tensors, (long long)s.n_quantized,
               (long long)s.n_weighted, (long long)s.n_fallback, (double)s.bytes_in / 1048576.0,
               (double)s.bytes_out / 1048576.0);
    }
    imc_quant_rules_free(&rules);
    return st == IMC_OK ? 0 : 1;
}

const struct imc_cli_cmd imc_cmd_quantize = {
    .name = "quantize",
    .summary = "quantize a GGUF model (imatrix-weighted rows, regex=type rules)",
    .run = quantize_main,
};
