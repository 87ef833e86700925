/*
 * mpi/fatal: the one exit path of a rank that cannot continue (STYLE b.4 item 2; DESIGN.md §6
 * "a dead rank aborts the job cleanly (no hang)").
 *
 * A failing action returns its status up to main; main calls imc_fatal, which logs one line and
 * ends the whole job with MPI_Abort(MPI_COMM_WORLD), so no peer waits forever. The watchdog of
 * mpi/ (IMC_MPI_TIMEOUT) calls it too when a transfer or collective does not complete in time.
 */
#ifndef IMC_MPI_FATAL_H
#define IMC_MPI_FATAL_H

#include "core/status.h"

struct imc_comm;

// Writes "imc[r<rank>@<host>] fatal: <what>: <status string>" to stderr and calls
// MPI_Abort(MPI_COMM_WORLD, st) (exit code st; 1 for IMC_OK). c may be NULL (rank and host are
// then taken from MPI if it is running, else "r?"). Without running MPI it exits the process
// with the same code. Never returns.
_Noreturn void imc_fatal(const struct imc_comm *c, enum imc_status st, const char *what);

// An abort hook for core/log's imc_set_abort_hook: calls MPI_Abort(MPI_COMM_WORLD,
// IMC_ERR_INTERNAL) when MPI is initialized and not finalized, so a failed IMC_ASSERT ends every
// rank. Does nothing otherwise (imc_abort then calls abort()). imc_comm_init installs it.
void imc_mpi_abort_hook(void);

#endif // IMC_MPI_FATAL_H
