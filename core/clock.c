#include "core/clock.h"

#include <stdio.h>
#include <time.h>

double imc_clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *imc_clock_fmt(double seconds, char *buf, size_t size)
{
    if (seconds < 0) {
        seconds = 0;
    }
    if (seconds < 60) {
        snprintf(buf, size, "%.1fs", seconds);
    } else if (seconds < 3600) {
        long s = (long)seconds;
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
    } else {
        long m = (long)(seconds / 60);
        snprintf(buf, size, "%ldh%02ldm", m / 60, m % 60);
    }
    return buf;
}
