/*
 * src/cli: the imc command table (DESIGN.md §3). Each subcommand lives in src/cmd_<name>.c and
 * exports one `const struct imc_cli_cmd imc_cmd_<name>`; main.c lists them. A command parses its
 * arguments, calls into the modules, and maps the status to an exit code: nothing more.
 */
#ifndef IMC_SRC_CLI_H
#define IMC_SRC_CLI_H

#include <stdbool.h>

struct imc_comm;

struct imc_cli_cmd {
    const char *name;    // subcommand word
    const char *summary; // one line for `imc --help`
    // Runs the command; argv[0] is the subcommand name. Returns the process exit code.
    int (*run)(int argc, char **argv);
};

// Shared helpers for commands.
// Returns 1 (and logs "<cmd>: option <opt> needs a value") when i+1 is past argc.
int imc_cli_need_value(const char *cmd, int argc, char **argv, int i);
// Parses a non-negative integer option value; logs and returns -1 on error.
long imc_cli_parse_long(const char *cmd, const char *opt, const char *value);
// Applies -v / -q / --log-level X at argv[i]; returns how many arguments it consumed (0 if none).
int imc_cli_log_option(int argc, char **argv, int i);

// Starts MPI when a launcher started this process (imc_comm_launched) and sets the rank log
// prefix; *out stays NULL in a plain run (free with imc_comm_free). Returns 0, or 1 when MPI
// cannot start (logged).
int imc_cli_mpi_start(struct imc_comm **out);
// mute = true drops every log line (ranks other than 0 while parsing: arguments are checked
// alike on every rank and rank 0 reports the errors); false restores the stderr sink.
void imc_cli_mute(bool mute);

#endif // IMC_SRC_CLI_H
