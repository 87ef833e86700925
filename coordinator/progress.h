/*
 * coordinator/progress: progress lines of long runs on the coordinator only (DESIGN.md §3 "Long
 * work shows progress"): "<what>: chunk i/N, X tok/s, ETA T".
 *
 * Output goes to the given stream (stderr). On a terminal the line is redrawn in place with \r,
 * unless stdout is that terminal too (results printed there would be overwritten): then, as on
 * a pipe or file, every update is its own line. A quiet progress prints nothing.
 */
#ifndef IMC_COORDINATOR_PROGRESS_H
#define IMC_COORDINATOR_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct imc_progress {
    FILE *f;           // destination (borrowed), usually stderr
    const char *what;  // prefix, e.g. "perplexity" (borrowed)
    int64_t total;     // units of work (chunks)
    double t0;         // start time, imc_clock_now()
    bool redraw;       // \r mode (terminal that is not also stdout)
    bool quiet;        // print nothing
    bool on_screen;    // a \r line is displayed and not yet cleared
};

// Starts the clock. f and what are borrowed and must outlive p.
void imc_progress_init(struct imc_progress *p, FILE *f, const char *what, int64_t total,
                       bool quiet);
// Reports done units and tokens processed so far (since init).
void imc_progress_update(struct imc_progress *p, int64_t done, int64_t tokens);
// Erases a redrawn line (call before other output to the same terminal); no-op otherwise.
void imc_progress_clear(struct imc_progress *p);

// Formats the line (without \r or newline) into buf: "<what>: chunk done/total, R tok/s, ETA T".
// elapsed in seconds. Returns buf.
char *imc_progress_format(char *buf, size_t size, const char *what, int64_t done, int64_t total,
                          int64_t tokens, double elapsed);

#endif // IMC_COORDINATOR_PROGRESS_H
