/*
 * src/cli: the command table and what every command shares (src/cli.h): argument parsing with
 * rank 0 reporting, starting MPI under a launcher, muting the other ranks.
 */
#include "src/cli.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mpi/comm.h"

static const struct imc_cli_cmd *const commands[] = {
    &imc_cmd_info, &imc_cmd_tokenize, &imc_cmd_gen_model, &imc_cmd_merge,   &imc_cmd_perplexity,
    &imc_cmd_plan, &imc_cmd_quantize, &imc_cmd_sweep,     &imc_cmd_imatrix, &imc_cmd_mla_3d,
};

const struct imc_cli_cmd *const *imc_cli_commands(size_t *n)
{
    *n = sizeof(commands) / sizeof(commands[0]);
    return commands;
}

int imc_cli_parse(const struct imc_cli_cmd *c, int argc, char **argv, void *own,
                  struct imc_opt_common *common, const struct imc_comm *comm, char ***pos,
                  int *n_pos)
{
    const bool rank0 = !comm || imc_comm_rank(comm) == 0;
    imc_cli_ranks_mute(comm);
    int rc =
        imc_opt_parse(c->name, c->opts, argc, argv, own, common, rank0 ? stdout : NULL, pos, n_pos);
    if (rc == 0 && c->check) {
        rc = c->check(own, common, *pos, *n_pos, comm);
    }
    const enum imc_log_level level = imc_log_get_level();
    imc_cli_ranks_unmute(comm);
    if (c->ranks_inform) {
        imc_log_set_level(level);
    }
    return rc;
}

int imc_cli_mpi_start(struct imc_comm **out)
{
    *out = NULL;
    if (!imc_comm_launched()) {
        return 0;
    }
    if (imc_comm_init(out, NULL, NULL) != IMC_OK) {
        return 1;
    }
    imc_comm_set_log_prefix(*out);
    return 0;
}

static void drop_line(enum imc_log_level level, const char *line, void *user)
{
    (void)level;
    (void)line;
    (void)user;
}

void imc_cli_ranks_mute(const struct imc_comm *comm)
{
    if (comm && imc_comm_rank(comm) != 0) {
        imc_log_set_sink(drop_line, NULL);
    }
}

void imc_cli_ranks_unmute(const struct imc_comm *comm)
{
    if (comm && imc_comm_rank(comm) != 0) {
        imc_log_set_sink(NULL, NULL);
        if (imc_log_get_level() > IMC_LOG_WARN) {
            imc_log_set_level(IMC_LOG_WARN);
        }
    }
}
