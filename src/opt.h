/*
 * src/opt: command-line options from tables, parsed with glibc's getopt_long (DESIGN.md §3).
 *
 * A command describes its options as groups of struct imc_opt rows: the option's long and short
 * names, the kind of value, where the value goes (an offset into the command's own argument
 * struct, or into struct imc_opt_common, which the shared groups fill), and its help line. The
 * shared groups (model, text, chunking, batch, threads, layout, attention path, logging) are
 * defined once here and included by the commands that take them. imc_opt_parse fills the slots
 * and checks every value by its kind; imc_opt_help prints the usage generated from the same
 * tables, so help cannot drift from what is parsed.
 *
 * Accepted forms: --opt value, --opt=value, -o value, -ovalue, unique prefixes of long names
 * (getopt_long), "--" ends the options; options and positional arguments may mix.
 *
 * Errors are logged once, in one wording for every command, and give exit code 2:
 *   "<cmd>: option --ctx needs a value"
 *   "<cmd>: option --ctx expects a positive integer, got 'x'"
 *   "<cmd>: option --attn expects one of auto, absorbed, non-absorbed, got 'x'"
 *   "<cmd>: option --ctx given twice"
 *   "<cmd>: option --resume takes no value"
 *   "<cmd>: option --then is ambiguous (--then-quantize, --then-external)"
 *   "<cmd>: unknown option '--foo' (see imc <cmd> --help)"
 *   "<cmd>: --stats is not an option of <cmd> (it is one of imatrix)"
 */
#ifndef IMC_SRC_OPT_H
#define IMC_SRC_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels/kernels.h"
#include "numa/plan.h"

enum imc_opt_kind {
    IMC_OPT_FLAG,  // no value: the bool slot becomes true
    IMC_OPT_STR,   // const char * slot, borrowed from argv
    IMC_OPT_UINT,  // int64_t slot, an integer >= 0
    IMC_OPT_POS,   // int64_t slot, an integer >= 1
    IMC_OPT_FLOAT, // double slot, a finite number
    IMC_OPT_ENUM,  // int slot: the index of the value in choices
    IMC_OPT_FN,    // fn parses the value(s) into the slot
};

enum imc_opt_base {
    IMC_OPT_OWN,    // off is into the command's own argument struct
    IMC_OPT_COMMON, // off is into struct imc_opt_common
};

// One option. A group is an array of these ended by a row whose name is NULL.
struct imc_opt {
    const char *name;           // long name without "--"; NULL ends a group
    char short_name;            // 'm' for -m, or 0
    enum imc_opt_kind kind;     // kind of value
    enum imc_opt_base base;     // what off is relative to
    size_t off;                 // offset of the slot
    const char *arg;            // value placeholder in the help ("N", "FILE"); NULL for flags
    const char *help;           // help text; '\n' starts a continuation line
    const char *const *choices; // IMC_OPT_ENUM: accepted values, NULL-terminated
    // IMC_OPT_FN: parses values[0..n_values) for option opt of command cmd into slot; returns
    // 0, or 2 after logging "<cmd>: option --x ...".
    int (*fn)(const char *cmd, const char *opt, char **values, void *slot);
    int n_values;      // IMC_OPT_FN: values the option takes (0 means 1)
    bool repeat;       // may be given more than once (IMC_OPT_FN: fn is called each time)
    const char *alias; // a second long name, accepted but not listed in the help
};

// A row: IMC_OPT(name, short, kind, slot, arg, help[, .choices = …, .fn = …, .n_values = …,
// .repeat = …, .alias = …]), where slot is IMC_OPT_SLOT(IMC_OPT_OWN or IMC_OPT_COMMON,
// offsetof(struct …, field)). A group ends with IMC_OPT_END.
#define IMC_OPT(name_, short_, kind_, slot_, arg_, ...)                                            \
    {                                                                                              \
        .name = (name_), .short_name = (short_), .kind = (kind_), slot_, .arg = (arg_),            \
        .help = __VA_ARGS__                                                                        \
    }
#define IMC_OPT_SLOT(base_, off_) .base = (base_), .off = (off_)
#define IMC_OPT_END                                                                                \
    {                                                                                              \
        .name = NULL                                                                               \
    }

// The values of the shared groups. Zero / NULL: not given.
struct imc_opt_common {
    const char *model;        // -m, --model
    const char *text;         // -f, --file
    int64_t n_ctx;            // -c, --ctx
    int64_t max_chunks;       // --chunks
    int64_t n_batch;          // -b, --batch
    int64_t threads;          // -t, --threads: 0 (or "auto") = automatic
    int64_t threads_per_core; // --threads-per-core (0: 1)
    struct imc_layout layout; // --layout; pp = 0: automatic
    int attn;                 // --attn: index into imc_opt_attn_names (0 = auto)
    int matmul;               // --matmul: enum imc_matmul_mode (0 = q8)
    int device;               // --device: enum imc_device (worker/engine.h; 0 = auto)
    int experts_on;           // --experts-on: index into imc_opt_experts_on_names (0 = gpu)
    int exchange;             // --exchange: index into imc_opt_exchange_names (0 = auto, 1 host)
    bool quiet;               // -q, --quiet
    bool verbose;             // -v, --verbose
    int log_level;            // --log-level: enum imc_log_level + 1
    bool help;                // -h, --help
};

// The shared groups.
extern const struct imc_opt imc_opt_group_model[];   // -m
extern const struct imc_opt imc_opt_group_text[];    // -f
extern const struct imc_opt imc_opt_group_chunks[];  // -c, --chunks
extern const struct imc_opt imc_opt_group_batch[];   // -b
extern const struct imc_opt imc_opt_group_threads[]; // -t, --threads-per-core
extern const struct imc_opt imc_opt_group_layout[];  // --layout
extern const struct imc_opt imc_opt_group_attn[];    // --attn
extern const struct imc_opt imc_opt_group_matmul[];  // --matmul
extern const struct imc_opt imc_opt_group_device[];  // --device
extern const struct imc_opt imc_opt_group_log[];     // -q, -v, --log-level, -h
// Choices, each in the order of its enum: --attn (enum imc_attn_path, worker/engine.h),
// --format (enum imc_imatrix_format) and --dat-zero (enum imc_dat_zero_policy,
// model/imatrix_file.h).
extern const char *const imc_opt_attn_names[];
// --matmul (enum imc_matmul_mode, kernels/kernels.h).
extern const char *const imc_opt_matmul_names[];
// --device (enum imc_device, worker/engine.h).
extern const char *const imc_opt_device_names[];
// --experts-on (0 gpu, 1 cpu).
extern const char *const imc_opt_experts_on_names[];
// --exchange: "auto", "host".
extern const char *const imc_opt_exchange_names[];
extern const char *const imc_opt_imatrix_formats[];
extern const char *const imc_opt_dat_zero_policies[];

// A command's options: what imc_opt_parse and imc_opt_help read.
struct imc_opt_spec {
    const char *usage;                   // after "usage: imc <cmd> "; '\n' separates forms
    const struct imc_opt *const *groups; // NULL-terminated
    const char *notes;                   // printed after the options, or NULL
    int min_pos;                         // positional arguments required
    int max_pos;                         // ... and allowed (-1: any number)
    const char *pos_name;                // positional arguments in messages ("MODEL OUT TYPE")
};

// Parses argv[1..argc) (argv[0] is the command name) for command cmd with spec s into own (the
// command's argument struct) and common (zeroed first). getopt_long permutes argv: on return
// the positional arguments are (*pos)[0..*n_pos). Applies -q / -v / --log-level to the log
// level. Returns 0 to run, -1 when --help was given (the help is printed to help_out unless it
// is NULL), 2 on a usage error (logged once). Not reentrant (getopt's state).
int imc_opt_parse(const char *cmd, const struct imc_opt_spec *s, int argc, char **argv, void *own,
                  struct imc_opt_common *common, FILE *help_out, char ***pos, int *n_pos);

// Prints "usage: imc <cmd> ..." and one line per option, by group, then the notes.
void imc_opt_help(const char *cmd, const struct imc_opt_spec *s, FILE *f);

// Calls fn(name, user) for every long option name of s (aliases included).
void imc_opt_each_name(const struct imc_opt_spec *s, void (*fn)(const char *name, void *user),
                       void *user);

#endif // IMC_SRC_OPT_H
