/*
 * core/pulse: a callback that long work of one process calls each time it makes real progress
 * (a batch of chunks scored, a job of rows quantized, a tensor written), so that the ranks of an
 * MPI job waiting for that work learn it is alive (mpi/beat.h). It is not a timer: work that is
 * stuck stops calling it, and the waiting ranks' watchdog (IMC_MPI_TIMEOUT) then ends the job.
 *
 * Threads: called from the thread that runs the work's main loop (the one that may call MPI).
 */
#ifndef IMC_CORE_PULSE_H
#define IMC_CORE_PULSE_H

#include <stddef.h>

struct imc_pulse {
    void (*fn)(void *user); // NULL: nobody listens
    void *user;             // borrowed; passed to fn
};

// Reports one step of progress (p may be NULL or hold no callback: then nothing happens).
static inline void imc_pulse_emit(const struct imc_pulse *p)
{
    if (p && p->fn) {
        p->fn(p->user);
    }
}

#endif // IMC_CORE_PULSE_H
