/*
 * src/cli: the imc command table (DESIGN.md §3). Each subcommand lives in src/cmd_<name>.c and
 * exports one `const struct imc_cli_cmd imc_cmd_<name>`; main.c lists them. A command parses its
 * arguments, calls into the modules, and maps the status to an exit code: nothing more.
 */
#ifndef IMC_SRC_CLI_H
#define IMC_SRC_CLI_H

#include <stdbool.h>

#include "core/status.h"

struct imc_comm;
struct imc_layout;

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

// ---- commands that run as one MPI job (src/cli_job.c) ----

// Bracket argument parsing with these: every rank parses, only rank 0 reports (the others'
// logs are dropped meanwhile and warnings-only afterwards).
void imc_cli_job_parse_begin(const struct imc_comm *comm);
void imc_cli_job_parse_end(const struct imc_comm *comm);
// Resolves *l (pp = 0: the automatic layout for the model at path, coordinator/layout_auto.h;
// 1x1x1 without MPI), checks it against the job size and splits comm (may be NULL) into it.
// Returns 0, 2 for a layout that does not fit (rank 0 logs "layout ... needs N ranks, the job
// has M"), 1 when the model cannot be read or MPI fails.
int imc_cli_job_layout(struct imc_comm *comm, const char *cmd, const char *model,
                       struct imc_layout *l);
// Ends the job: a failure under MPI with several ranks ends every rank through imc_fatal (never
// returns then); frees comm. Returns the exit code for st (0 or 1).
int imc_cli_job_end(struct imc_comm *comm, enum imc_status st, const char *cmd);

#endif // IMC_SRC_CLI_H
