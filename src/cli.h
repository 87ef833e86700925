/*
 * src/cli: the imc command table (DESIGN.md §3). Each subcommand lives in src/cmd_<name>.c and
 * exports one `const struct imc_cli_cmd imc_cmd_<name>`; main.c lists them. A command parses its
 * arguments, calls into the modules, and maps the status to an exit code: nothing more.
 */
#ifndef IMC_SRC_CLI_H
#define IMC_SRC_CLI_H

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

#endif // IMC_SRC_CLI_H
