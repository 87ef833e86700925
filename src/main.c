/*
 * imc: the one SPMD binary (DESIGN.md §2, §3). Dispatches to a subcommand; every command maps
 * its status to the exit code. Single-process runs need no mpirun.
 */
#include <stdio.h>
#include <string.h>

#include "src/cli.h"

#define IMC_CMD_DECL(n) extern const struct imc_cli_cmd n
IMC_CMD_DECL(imc_cmd_info);
IMC_CMD_DECL(imc_cmd_tokenize);
IMC_CMD_DECL(imc_cmd_gen_model);
IMC_CMD_DECL(imc_cmd_merge);
IMC_CMD_DECL(imc_cmd_perplexity);
IMC_CMD_DECL(imc_cmd_plan);
IMC_CMD_DECL(imc_cmd_quantize);
IMC_CMD_DECL(imc_cmd_sweep);
IMC_CMD_DECL(imc_cmd_imatrix);
IMC_CMD_DECL(imc_cmd_mla_3d);

static const struct imc_cli_cmd *const commands[] = {
    &imc_cmd_info,
    &imc_cmd_tokenize,
    &imc_cmd_gen_model,
    &imc_cmd_merge,
    &imc_cmd_perplexity,
    &imc_cmd_plan,
    &imc_cmd_quantize,
    &imc_cmd_sweep,
    &imc_cmd_imatrix,
    &imc_cmd_mla_3d,
};

static void usage(FILE *f)
{
    fprintf(f, "usage: imc COMMAND [options]   (imc COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(f, "  %-12s %s\n", commands[i]->name, commands[i]->summary);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i]->name) == 0) {
            return commands[i]->run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "imc: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
