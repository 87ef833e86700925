/*
 * coordinator/progress: progress lines (coordinator/progress.h).
 */
#include "coordinator/progress.h"

#include <unistd.h>

#include "core/clock.h"

void imc_progress_init(struct imc_progress *p, FILE *f, const char *what, int64_t total,
                       bool quiet)
{
    p->f = f;
    p->what = what;
    p->total = total;
    p->t0 = imc_clock_now();
    p->quiet = quiet;
    p->on_screen = false;
    p->redraw = isatty(fileno(f)) && !isatty(STDOUT_FILENO);
}

char *imc_progress_format(char *buf, size_t size, const char *what, int64_t done, int64_t total,
                          int64_t tokens, double elapsed)
{
    char eta[32];
    double rate = elapsed > 0 ? (double)tokens / elapsed : 0.0;
    if (done > 0 && done < total) {
        imc_clock_fmt(elapsed / (double)done * (double)(total - done), eta, sizeof(eta));
    } else if (done >= total) {
        snprintf(eta, sizeof(eta), "0.0s");
    } else {
        snprintf(eta, sizeof(eta), "?");
    }
    snprintf(buf, size, "%s: chunk %lld/%lld, %.1f tok/s, ETA %s", what, (long long)done,
             (long long)total, rate, eta);
    return buf;
}

void imc_progress_update(struct imc_progress *p, int64_t done, int64_t tokens)
{
    if (p->quiet) {
        return;
    }
    char line[256];
    imc_progress_format(line, sizeof(line), p->what, done, p->total, tokens,
                        imc_clock_now() - p->t0);
    if (p->redraw) {
        fprintf(p->f, "\r\033[K%s", line);
        p->on_screen = true;
        if (done >= p->total) {
            fputc('\n', p->f);
            p->on_screen = false;
        }
    } else {
        fprintf(p->f, "%s\n", line);
    }
    fflush(p->f);
}

void imc_progress_clear(struct imc_progress *p)
{
    if (p->on_screen) {
        fputs("\r\033[K", p->f);
        fflush(p->f);
        p->on_screen = false;
    }
}
