/*
 * imc: the one SPMD binary (DESIGN.md §2, §3). Dispatches to a subcommand; every command maps
 * its status to the exit code. Single-process runs need no mpirun.
 */
#include <stdio.h>
#include <string.h>

#include "core/tmpfile.h"
#include "src/cli.h"

static void usage(FILE *f)
{
    imc_tmp_install_handlers(); // a signal removes the temporaries of unfinished outputs
    size_t n = 0;
    const struct imc_cli_cmd *const *commands = imc_cli_commands(&n);
    fprintf(f, "usage: imc COMMAND [options]   (imc COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "  %-12s %s\n", commands[i]->name, commands[i]->summary);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    size_t n = 0;
    const struct imc_cli_cmd *const *commands = imc_cli_commands(&n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], commands[i]->name) == 0) {
            return commands[i]->run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "imc: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
