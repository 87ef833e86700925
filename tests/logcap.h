/*
 * tests/logcap: capture of the warning and error lines core/log emits, for tests that check
 * messages (one error line, the file named, ...). Install with logcap_start, restore stderr
 * with logcap_stop. Header-only, like tests/check.h.
 */
#ifndef IMC_TESTS_LOGCAP_H
#define IMC_TESTS_LOGCAP_H

#include <stdio.h>
#include <string.h>

#include "core/log.h"

struct logcap {
    char text[8192]; // captured lines (errors and warnings), '\n'-separated
    int n_err;
    int n_wrn;
};

static inline void logcap_sink(enum imc_log_level level, const char *line, void *user)
{
    struct logcap *c = user;
    if (level > IMC_LOG_WARN) {
        return;
    }
    size_t n = strlen(c->text);
    snprintf(c->text + n, sizeof(c->text) - n, "%s\n", line);
    c->n_err += level == IMC_LOG_ERROR;
    c->n_wrn += level == IMC_LOG_WARN;
}

static inline void logcap_start(struct logcap *c)
{
    memset(c, 0, sizeof(*c));
    imc_log_set_sink(logcap_sink, c);
}

static inline void logcap_stop(void)
{
    imc_log_set_sink(NULL, NULL);
}

#endif // IMC_TESTS_LOGCAP_H
