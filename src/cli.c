#include "src/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mpi/comm.h"

int imc_cli_need_value(const char *cmd, int argc, char **argv, int i)
{
    if (i + 1 >= argc) {
        IMC_LOG_ERR("%s: option %s needs a value", cmd, argv[i]);
        return 1;
    }
    return 0;
}

long imc_cli_parse_long(const char *cmd, const char *opt, const char *value)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < 0) {
        IMC_LOG_ERR("%s: option %s expects a non-negative integer, got '%s'", cmd, opt, value);
        return -1;
    }
    return v;
}

int imc_cli_log_option(int argc, char **argv, int i)
{
    if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
        imc_log_set_level(IMC_LOG_DEBUG);
        return 1;
    }
    if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
        imc_log_set_level(IMC_LOG_WARN);
        return 1;
    }
    if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
        int l = imc_log_parse_level(argv[i + 1]);
        if (l >= 0) {
            imc_log_set_level((enum imc_log_level)l);
        }
        return 2;
    }
    return 0;
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

void imc_cli_mute(bool mute)
{
    imc_log_set_sink(mute ? drop_line : NULL, NULL);
}
