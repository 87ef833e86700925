/*
 * core/log: leveled logging to stderr (STYLE b.5). stdout carries results only.
 *
 * The sink and the rank prefix are the only process-wide state (set once in main, like ggml's
 * logger state). Messages have no trailing period and need no trailing newline.
 */
#ifndef IMC_CORE_LOG_H
#define IMC_CORE_LOG_H

#include <stdarg.h>

enum imc_log_level { IMC_LOG_ERROR = 0, IMC_LOG_WARN, IMC_LOG_INFO, IMC_LOG_DEBUG };

// A replaceable sink: receives one formatted line without trailing newline.
typedef void (*imc_log_sink)(enum imc_log_level level, const char *line, void *user);

// Sets the level (messages above it are dropped); default INFO, or IMC_LOG_LEVEL from env.
void imc_log_set_level(enum imc_log_level level);
enum imc_log_level imc_log_get_level(void);
// Parses "error|warn|info|debug"; returns -1 when unknown.
int imc_log_parse_level(const char *s);
// Sets the prefix printed before each line (e.g. "imc[r3@node7] "); NULL for none. Copied.
void imc_log_set_prefix(const char *prefix);
// Replaces the sink (NULL restores stderr).
void imc_log_set_sink(imc_log_sink sink, void *user);

void imc_log(enum imc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imc_logv(enum imc_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define IMC_LOG_ERR(...) imc_log(IMC_LOG_ERROR, __VA_ARGS__)
#define IMC_LOG_WRN(...) imc_log(IMC_LOG_WARN, __VA_ARGS__)
#define IMC_LOG_INF(...) imc_log(IMC_LOG_INFO, __VA_ARGS__)
#define IMC_LOG_DBG(...) imc_log(IMC_LOG_DEBUG, __VA_ARGS__)

// Always-on assertion for programmer bugs (never for input): prints file:line and aborts.
_Noreturn void imc_abort(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// A hook run by imc_abort before abort() (main installs MPI_Abort once MPI is up).
void imc_set_abort_hook(void (*hook)(void));

#define IMC_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            imc_abort(__FILE__, __LINE__, "assertion failed: %s", #cond);                          \
        }                                                                                          \
    } while (0)

#endif // IMC_CORE_LOG_H
