/*
 * tests/unit/test_tmpfile: temporaries do not outlive a killed run (core/tmpfile.h) and text
 * inputs that never end are refused (core/file.h imc_file_read_all).
 *
 *   - sweep: of the files beside out.gguf, exactly the temporaries of a dead process are
 *     removed ("<p>.tmp.<pid>", "<p>.part.<pid>", "<p>.part.<pid>.tmp.<pid>"); those of live
 *     processes (this one, pid 1), other outputs' and look-alike names stay;
 *   - imc_afile_open sweeps before it creates its own temporary;
 *   - a SIGTERM removes the registered temporaries and still ends the process by SIGTERM; an
 *     unregistered file stays;
 *   - the slot table: full at IMC_TMP_SLOTS, reusable after unregistering;
 *   - imc_file_read_all: a FIFO is read to its end; /dev/zero is refused after
 *     IMC_FILE_STREAM_MAX bytes, a directory at once, each naming the path and the cause.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/file.h"
#include "core/log.h"
#include "core/tmpfile.h"
#include "tests/check.h"

struct logcap {
    char text[4096];
};

static void cap_sink(enum imc_log_level level, const char *line, void *user)
{
    struct logcap *c = user;
    if (level == IMC_LOG_ERROR) {
        size_t n = strlen(c->text);
        snprintf(c->text + n, sizeof(c->text) - n, "%s\n", line);
    }
}

static void touch(const char *dir, const char *name)
{
    char p[2048];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs("x", f);
        fclose(f);
    }
}

static bool exists(const char *dir, const char *name)
{
    char p[2048];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

// A pid that no process of this host has now: a child that has exited and been reaped.
static long dead_pid(void)
{
    pid_t p = fork();
    if (p == 0) {
        _exit(0);
    }
    waitpid(p, NULL, 0);
    return (long)p;
}

static void test_sweep(const char *dir)
{
    const long dead = dead_pid(), self = (long)getpid();
    char n[8][128];
    snprintf(n[0], sizeof(n[0]), "out.gguf.tmp.%ld", dead);
    snprintf(n[1], sizeof(n[1]), "out.gguf.part.%ld", dead);
    snprintf(n[2], sizeof(n[2]), "out.gguf.part.%ld.tmp.%ld", dead, dead);
    snprintf(n[3], sizeof(n[3]), "out.gguf.tmp.%ld", self);   // live: this process
    snprintf(n[4], sizeof(n[4]), "out.gguf.tmp.1");           // live: init
    snprintf(n[5], sizeof(n[5]), "out.gguf.tmp.%ldx", dead);  // not a temporary name
    snprintf(n[6], sizeof(n[6]), "other.gguf.tmp.%ld", dead); // another output's
    snprintf(n[7], sizeof(n[7]), "out.gguf.old.%ld", dead);   // not a temporary name
    for (int i = 0; i < 8; i++) {
        touch(dir, n[i]);
    }
    touch(dir, "out.gguf");
    char out[1024];
    snprintf(out, sizeof(out), "%s/out.gguf", dir);
    const int removed = imc_tmp_sweep_stale(out);
    CHECK(removed == 3, "sweep removed %d files, expected 3", removed);
    for (int i = 0; i < 8; i++) {
        CHECK(exists(dir, n[i]) == (i >= 3), "%s %s", n[i], i >= 3 ? "kept" : "removed");
    }
    CHECK(exists(dir, "out.gguf"), "the output itself stays");
    // imc_afile_open sweeps too
    snprintf(n[0], sizeof(n[0]), "a.bin.tmp.%ld", dead);
    touch(dir, n[0]);
    snprintf(out, sizeof(out), "%s/a.bin", dir);
    struct imc_afile a;
    CHECK(imc_afile_open(&a, out) == IMC_OK, "afile open");
    CHECK(!exists(dir, n[0]), "afile open removed %s", n[0]);
    imc_afile_abort(&a);
}

static void test_signal(const char *dir)
{
    char reg[512], unreg[512];
    snprintf(reg, sizeof(reg), "%s/sig.gguf.tmp.x", dir);
    snprintf(unreg, sizeof(unreg), "%s/keep.txt", dir);
    touch(dir, "sig.gguf.tmp.x");
    touch(dir, "keep.txt");
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        imc_tmp_install_handlers();
        if (imc_tmp_register(reg) < 0) {
            _exit(3);
        }
        raise(SIGTERM);
        _exit(4); // not reached: the handler re-raises with the default action
    }
    int status = 0;
    waitpid(p, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM,
          "the child still ends by SIGTERM (status %#x)", status);
    CHECK(access(reg, F_OK) != 0, "the registered temporary was removed");
    CHECK(access(unreg, F_OK) == 0, "an unregistered file stays");
}

static void test_slots(void)
{
    int s[IMC_TMP_SLOTS];
    bool ok = true;
    for (int i = 0; i < IMC_TMP_SLOTS; i++) {
        s[i] = imc_tmp_register("/nonexistent/a");
        ok = ok && s[i] >= 0;
    }
    CHECK(ok, "%d slots", IMC_TMP_SLOTS);
    CHECK(imc_tmp_register("/nonexistent/b") == -1, "full table: -1");
    imc_tmp_unregister(s[3]);
    CHECK(imc_tmp_register("/nonexistent/c") == s[3], "a freed slot is reused");
    for (int i = 0; i < IMC_TMP_SLOTS; i++) {
        imc_tmp_unregister(s[i]);
    }
    imc_tmp_unregister(-1); // no-op
}

static void test_read_streams(const char *dir)
{
    char fifo[512];
    snprintf(fifo, sizeof(fifo), "%s/text.fifo", dir);
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    pid_t p = fork();
    if (p == 0) {
        FILE *f = fopen(fifo, "wb");
        if (f) {
            fputs("calibration text", f);
            fclose(f);
        }
        _exit(0);
    }
    char *buf = NULL;
    size_t n = 0;
    CHECK(imc_file_read_all(fifo, &buf, &n) == IMC_OK && n == 16 &&
              strcmp(buf, "calibration text") == 0,
          "a FIFO is read to its end");
    free(buf);
    waitpid(p, NULL, 0);

    struct logcap cap = {{0}};
    imc_log_set_sink(cap_sink, &cap);
    CHECK(imc_file_read_all("/dev/zero", &buf, &n) == IMC_ERR_IO && !buf, "/dev/zero is refused");
    CHECK(imc_file_read_all(dir, &buf, &n) == IMC_ERR_IO && !buf, "a directory is refused");
    imc_log_set_sink(NULL, NULL);
    CHECK(strstr(cap.text, "/dev/zero: not a regular file") &&
              strstr(cap.text, "pass the text as a regular file") &&
              strstr(cap.text, "is a directory") && strstr(cap.text, dir),
          "messages name the file and the cause:\n%s", cap.text);
}

int main(void)
{
    char dir[] = "/tmp/imc_test_tmpfile_XXXXXX";
    if (!mkdtemp(dir)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    test_sweep(dir);
    test_signal(dir);
    test_slots();
    test_read_streams(dir);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        printf("warning: could not remove %s\n", dir);
    }
    return check_summary();
}
