/*
 * src/cli: the imc command table (DESIGN.md §3). Each subcommand lives in src/cmd_<name>.c and
 * exports one `const struct imc_cli_cmd imc_cmd_<name>` with its option table (src/opt.h);
 * src/cli.c lists them. A command parses its arguments, calls into the modules, and maps the
 * status to an exit code: nothing more.
 */
#ifndef IMC_SRC_CLI_H
#define IMC_SRC_CLI_H

#include <stdbool.h>

#include "core/status.h"
#include "src/opt.h"

struct imc_comm;
struct imc_layout;

struct imc_cli_cmd {
    const char *name;                // subcommand word
    const char *summary;             // one line for `imc --help`
    const struct imc_opt_spec *opts; // its options (help and parsing)
    bool ranks_inform;               // ranks other than 0 keep info lines (sweep: their recipes)
    // After the options parsed: moves them into the command's own settings and checks what is
    // required and their combination (on every rank of a job, muted but on rank 0); returns 0,
    // or 2 after logging the usage error. NULL: nothing to check.
    int (*check)(void *own, const struct imc_opt_common *c, char **pos, int n_pos,
                 const struct imc_comm *comm);
    // Runs the command; argv[0] is the subcommand name. Returns the process exit code.
    int (*run)(int argc, char **argv);
};

// The commands (src/cmd_<name>.c).
extern const struct imc_cli_cmd imc_cmd_info;
extern const struct imc_cli_cmd imc_cmd_tokenize;
extern const struct imc_cli_cmd imc_cmd_gen_model;
extern const struct imc_cli_cmd imc_cmd_merge;
extern const struct imc_cli_cmd imc_cmd_perplexity;
extern const struct imc_cli_cmd imc_cmd_plan;
extern const struct imc_cli_cmd imc_cmd_quantize;
extern const struct imc_cli_cmd imc_cmd_sweep;
extern const struct imc_cli_cmd imc_cmd_imatrix;
extern const struct imc_cli_cmd imc_cmd_mla_3d;

// Every command, in `imc --help` order; *n receives the count.
const struct imc_cli_cmd *const *imc_cli_commands(size_t *n);

// Parses the arguments of command c (imc_opt_parse into own and common, then c->check) on every
// rank of comm (NULL: a plain process). Only rank 0 reports errors and prints --help; the other
// ranks are muted while parsing and log warnings and errors only afterwards (they decide
// alike). Returns 0 to run, -1 after --help, 2 on a usage error; the positional arguments in
// (*pos)[0..*n_pos).
// With c->ranks_inform the other ranks keep the log level the options set.
int imc_cli_parse(const struct imc_cli_cmd *c, int argc, char **argv, void *own,
                  struct imc_opt_common *common, const struct imc_comm *comm, char ***pos,
                  int *n_pos);

// Starts MPI when a launcher started this process (imc_comm_launched) and sets the rank log
// prefix; *out stays NULL in a plain run (free with imc_comm_free). Returns 0, or 1 when MPI
// cannot start (logged).
int imc_cli_mpi_start(struct imc_comm **out);
// This rank's thread count (coordinator/rank_place.h imc_rank_threads: -t, else the cores of
// its share of the host, --threads-per-core per core). Collective under MPI: rank 0 then logs
// every rank's count ("<cmd>: threads per rank: 2 2 1 1").
int imc_cli_threads_resolve(const struct imc_comm *comm, const char *cmd,
                            const struct imc_opt_common *c);

// Checks that every rank can run on c->device (enum imc_device: --device cuda needs a CUDA
// build and a visible GPU). Collective under MPI. Returns 0, or 1 on every rank when one cannot
// (that rank logs "<cmd>: --device cuda on rank R (host H): no CUDA device visible", or "...:
// this build has no CUDA ..."). Rank 0 then logs the GPU's arithmetic under the --matmul mode.
int imc_cli_device_check(const struct imc_comm *comm, const char *cmd,
                         const struct imc_opt_common *c);

// Copies the shared run options of c into o, a struct imc_perplexity_opts or imc_imatrix_opts
// (the same field names): model, text, n_ctx, max_chunks and n_batch (when given), layout (pp
// 0: automatic), attention path, matmul mode, device, and quiet (also on every rank but 0 of
// comm). The thread count comes later, from imc_cli_threads_resolve.
#define IMC_CLI_APPLY_RUN_OPTIONS(o, c, comm)                                                      \
    do {                                                                                           \
        (o)->model = (c)->model;                                                                   \
        (o)->text = (c)->text;                                                                     \
        (o)->n_ctx = (c)->n_ctx ? (c)->n_ctx : (o)->n_ctx;                                         \
        (o)->max_chunks = (c)->max_chunks ? (c)->max_chunks : (o)->max_chunks;                     \
        (o)->n_batch = (c)->n_batch ? (c)->n_batch : (o)->n_batch;                                 \
        (o)->layout = (c)->layout;                                                                 \
        (o)->attn = (enum imc_attn_path)(c)->attn;                                                 \
        (o)->matmul = (enum imc_matmul_mode)(c)->matmul;                                           \
        (o)->device = (enum imc_device)(c)->device;                                                \
        (o)->experts_on_cpu = (c)->experts_on == 1;                                                \
        (o)->host_exchange = (c)->exchange == 1;                                                   \
        (o)->quiet = (c)->quiet || ((comm) && imc_comm_rank(comm) != 0);                           \
    } while (0)

// Bracket work that every rank of comm does alike and rank 0 reports (argument and layout
// checks): the other ranks' logs are dropped meanwhile and warnings-only afterwards. No-ops
// for comm NULL and on rank 0.
void imc_cli_ranks_mute(const struct imc_comm *comm);
void imc_cli_ranks_unmute(const struct imc_comm *comm);

// ---- commands that run as one MPI job (src/cli_job.c) ----

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
