#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The process-wide log state allowed by STYLE b.3: set once in main, read everywhere.
static struct {
    enum imc_log_level level;
    int level_set;
    char prefix[96];
    imc_log_sink sink;
    void *user;
    void (*abort_hook)(void);
} g_log = {IMC_LOG_INFO, 0, "", NULL, NULL, NULL};

int imc_log_parse_level(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (s && strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static void init_from_env(void)
{
    if (g_log.level_set) {
        return;
    }
    g_log.level_set = 1;
    int l = imc_log_parse_level(getenv("IMC_LOG_LEVEL"));
    if (l >= 0) {
        g_log.level = (enum imc_log_level)l;
    }
}

void imc_log_set_level(enum imc_log_level level)
{
    g_log.level_set = 1;
    g_log.level = level;
}

enum imc_log_level imc_log_get_level(void)
{
    init_from_env();
    return g_log.level;
}

void imc_log_set_prefix(const char *prefix)
{
    snprintf(g_log.prefix, sizeof(g_log.prefix), "%s", prefix ? prefix : "");
}

void imc_log_set_sink(imc_log_sink sink, void *user)
{
    g_log.sink = sink;
    g_log.user = user;
}

void imc_logv(enum imc_log_level level, const char *fmt, va_list ap)
{
    init_from_env();
    if (level > g_log.level) {
        return;
    }
    char line[2048];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n') {
        line[--n] = '\0';
    }
    if (g_log.sink) {
        g_log.sink(level, line, g_log.user);
        return;
    }
    static const char *const tags[] = {"error: ", "warning: ", "", ""};
    fprintf(stderr, "%s%s%s\n", g_log.prefix, tags[level], line);
}

void imc_log(enum imc_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    imc_logv(level, fmt, ap);
    va_end(ap);
}

void imc_set_abort_hook(void (*hook)(void))
{
    g_log.abort_hook = hook;
}

_Noreturn void imc_abort(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s%s:%d: ", g_log.prefix, file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    if (g_log.abort_hook) {
        g_log.abort_hook();
    }
    abort();
}
