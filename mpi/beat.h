/*
 * mpi/beat: heartbeats from a rank doing long work alone to the ranks that wait for it, so that
 * those waits run under the watchdog (IMC_MPI_TIMEOUT) too (DESIGN.md §6 "Faults").
 *
 * The working rank opens a beat towards the waiting ranks, passes imc_beat_pulse as the work's
 * progress callback (core/pulse.h: called on real progress only — a chunk scored, a job of rows
 * quantized, a tensor written — never by a timer) and closes it when the work ends, which sends
 * the end mark. A waiting rank calls imc_beat_await: each beat starts the watchdog's clock anew,
 * so work that keeps progressing may last any time, while a rank that is alive but stuck (or
 * stopped) sends nothing and the waiting rank ends the job after IMC_MPI_TIMEOUT seconds with a
 * line naming the silent rank (its rank in the whole job) and what it was doing. The grain of
 * progress is the work's own (single-process perplexity: a batch of chunks, -b tokens), so one
 * step that lasts longer than IMC_MPI_TIMEOUT needs a larger timeout, as for the other waits.
 *
 * Beats travel on a communicator of their own (a duplicate of the set's world), so they never
 * match another message. Sessions between the same two ranks follow each other in order: each
 * await consumes the beats of one session up to its end mark. A pulse sends at most every
 * timeout / 4 s, and not before the previous beats left, so a fast loop costs nothing
 * and a waiting rank never faces a flood.
 *
 * Threads: as mpi/comm (MPI_THREAD_FUNNELED): open, pulse, close and await on the thread that
 * called imc_comm_init.
 */
#ifndef IMC_MPI_BEAT_H
#define IMC_MPI_BEAT_H

#include "core/pulse.h"
#include "core/status.h"
#include "mpi/comm.h"

struct imc_beat;

// Opens a beat of this rank towards the ranks to[0..n) of c's world (copied; this rank and
// duplicates are not allowed; n may be 0). A new handle in *out; close with imc_beat_close.
// IMC_ERR_NOMEM (logged).
enum imc_status imc_beat_open(const struct imc_comm *c, const int *to, int n,
                              struct imc_beat **out);
// Reports progress (an imc_pulse callback; beat is a struct imc_beat *, or NULL: nothing). Sends
// a beat to every waiting rank when the last one is old enough. A failure of MPI is kept and
// returned by imc_beat_close.
void imc_beat_pulse(void *beat);
// Sends the end mark to every waiting rank (watched), frees b, and returns the first failure
// of this beat (IMC_ERR_MPI, logged). NULL is IMC_OK.
enum imc_status imc_beat_close(struct imc_beat *b);

// Waits for the end mark of rank from (of c's world) under the watchdog, each beat restarting
// its clock and calling relay (may be NULL: the progress seen passes on to ranks that wait for
// this one). On silence for imc_comm_timeout seconds the job ends (imc_fatal) with "waiting for
// progress from world rank R (<what>)", what printf-formatted from fmt. IMC_ERR_MPI (logged).
enum imc_status imc_beat_await(const struct imc_comm *c, int from, const struct imc_pulse *relay,
                               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif // IMC_MPI_BEAT_H
