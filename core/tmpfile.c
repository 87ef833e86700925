/*
 * core/tmpfile: removal of temporaries on signals and of stale ones at the next start
 * (core/tmpfile.h).
 */
#include "core/tmpfile.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/log.h"

#define TMP_PATH_MAX 4096

// The registered temporaries. state: 0 free, 1 being written by its claimer, 2 registered.
static struct {
    atomic_int state;
    char path[TMP_PATH_MAX];
} g_tmp[IMC_TMP_SLOTS];

static void on_signal(int sig)
{
    for (int i = 0; i < IMC_TMP_SLOTS; i++) {
        if (atomic_load(&g_tmp[i].state) == 2) {
            unlink(g_tmp[i].path);
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void imc_tmp_install_handlers(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

int imc_tmp_register(const char *path)
{
    const size_t n = strlen(path);
    if (n >= TMP_PATH_MAX) {
        return -1;
    }
    for (int i = 0; i < IMC_TMP_SLOTS; i++) {
        int expect = 0;
        if (atomic_compare_exchange_strong(&g_tmp[i].state, &expect, 1)) {
            memcpy(g_tmp[i].path, path, n + 1);
            atomic_store(&g_tmp[i].state, 2);
            return i;
        }
    }
    return -1;
}

void imc_tmp_unregister(int slot)
{
    if (slot >= 0 && slot < IMC_TMP_SLOTS) {
        atomic_store(&g_tmp[slot].state, 0);
    }
}

// Parses "<digits>" at *s (advancing it); false when there are none or they overflow.
static bool parse_pid(const char **s, long *pid)
{
    char *end = NULL;
    errno = 0;
    const long v = strtol(*s, &end, 10);
    if (end == *s || errno != 0 || v <= 0 || **s < '0' || **s > '9') {
        return false;
    }
    *s = end;
    *pid = v;
    return true;
}

// The writer's pid when name is a temporary of base ("<base>.tmp.<pid>", "<base>.part.<pid>",
// "<base>.part.<pid>.tmp.<pid>"), else 0.
static long temporary_of(const char *name, const char *base)
{
    const size_t nb = strlen(base);
    if (strncmp(name, base, nb) != 0 || name[nb] != '.') {
        return 0;
    }
    const char *s = name + nb + 1;
    const bool part = strncmp(s, "part.", 5) == 0;
    if (!part && strncmp(s, "tmp.", 4) != 0) {
        return 0;
    }
    s += part ? 5 : 4;
    long pid = 0, pid2 = 0;
    if (!parse_pid(&s, &pid)) {
        return 0;
    }
    if (*s == '\0') {
        return pid; // "<base>.tmp.<pid>" or "<base>.part.<pid>"
    }
    if (!part || strncmp(s, ".tmp.", 5) != 0) {
        return 0;
    }
    s += 5; // "<base>.part.<pid>.tmp.<pid2>": the side file's own temporary
    return parse_pid(&s, &pid2) && *s == '\0' ? pid : 0;
}

int imc_tmp_sweep_stale(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char dir[TMP_PATH_MAX];
    const size_t nd = slash ? (size_t)(slash - path) : 1;
    if (nd >= sizeof(dir) || *base == '\0') {
        return 0;
    }
    memcpy(dir, slash ? path : ".", nd);
    dir[nd] = '\0';
    if (slash && nd == 0) {
        strcpy(dir, "/");
    }
    DIR *d = opendir(dir);
    if (!d) {
        return 0;
    }
    int removed = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        const long pid = temporary_of(e->d_name, base);
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) {
            continue; // not a temporary of path, or its writer may still be running
        }
        char full[TMP_PATH_MAX];
        if ((size_t)snprintf(full, sizeof(full), "%s/%s", dir, e->d_name) < sizeof(full) &&
            unlink(full) == 0) {
            IMC_LOG_INF("removed %s, left by process %ld of this host, which no longer runs", full,
                        pid);
            removed++;
        }
    }
    closedir(d);
    return removed;
}
