/*
 * core/clock: monotonic time and human-readable durations for progress lines (STYLE b.5).
 */
#ifndef IMC_CORE_CLOCK_H
#define IMC_CORE_CLOCK_H

#include <stddef.h>

// Seconds since an arbitrary fixed point (CLOCK_MONOTONIC).
double imc_clock_now(void);
// Formats seconds as "1h02m", "3m05s" or "12.3s" into buf; returns buf.
char *imc_clock_fmt(double seconds, char *buf, size_t size);

#endif // IMC_CORE_CLOCK_H
