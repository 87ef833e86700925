/*
 * core/tmpfile: the temporaries behind atomic outputs (core/file.h) do not outlive a killed run.
 *
 *   - On SIGINT, SIGTERM or SIGHUP (Ctrl-C, scancel, mpirun passing a signal on) the handler
 *     that imc_tmp_install_handlers installs removes every registered temporary, then lets the
 *     signal end the process as it would have (default action, same signal).
 *   - SIGKILL and crashes cannot be caught: the next run that writes the same output removes
 *     what dead processes of this host left beside it (imc_tmp_sweep_stale).
 *
 * Temporaries are named "<path>.tmp.<pid>", "<path>.part.<pid>" or "<path>.part.<pid>.tmp.<pid>"
 * (the first pid is the writer's). A pid on another host of a shared file system is not known
 * here: such files are only removed by a run on their own host.
 *
 * State: one process-wide table of IMC_TMP_SLOTS paths, the one piece of global mutable state
 * in imc, because a signal handler can reach nothing else. Registration is thread-safe (atomic
 * slot claims); the handler only calls unlink, signal and raise (async-signal-safe).
 */
#ifndef IMC_CORE_TMPFILE_H
#define IMC_CORE_TMPFILE_H

#define IMC_TMP_SLOTS 16

// Installs the handlers for SIGINT, SIGTERM and SIGHUP (main, before any output is opened).
void imc_tmp_install_handlers(void);

// Registers path (copied) for removal on a signal. Returns its slot, or -1 when path is too long
// or all slots are taken (then the file is only swept at the next start).
int imc_tmp_register(const char *path);
// Forgets slot (after the temporary was renamed or removed); -1 is a no-op.
void imc_tmp_unregister(int slot);

// Removes the temporaries of path (names above) whose writer was a process of this host that
// no longer exists, logging each at info level. Returns how many were removed.
int imc_tmp_sweep_stale(const char *path);

#endif // IMC_CORE_TMPFILE_H
