/*
 * coordinator/quantize_ext: `imc quantize --external CMD` (quantize.h): expands the command
 * template, runs it through /bin/sh -c (fork/exec, its stdout sent to our stderr), checks the
 * exit status and the file it wrote, and renames that file into place.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coordinator/quantize.h"
#include "core/file.h"
#include "core/log.h"
#include "core/tmpfile.h"
#include "mpi/comm.h"

enum { WAIT_POLL_NS = 20000000 }; // how often a pulsed wait looks at the child (20 ms)

// A growing NUL-terminated string.
struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
};

static void sb_add(struct sbuf *b, const char *p, size_t k)
{
    if (b->oom) {
        return;
    }
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + k + 1) {
            cap *= 2;
        }
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, p, k);
    b->n += k;
    b->s[b->n] = '\0';
}

// Appends v as one shell word: '...' with each ' written as '\''.
static void sb_add_quoted(struct sbuf *b, const char *v)
{
    sb_add(b, "'", 1);
    for (const char *p = v; *p; p++) {
        if (*p == '\'') {
            sb_add(b, "'\\''", 4);
        } else {
            sb_add(b, p, 1);
        }
    }
    sb_add(b, "'", 1);
}

enum { PH_MODEL, PH_OUT, PH_TYPE, PH_IMATRIX, PH_RULES, PH_COUNT };
static const char *const ph_names[PH_COUNT] = {"model", "out", "type", "imatrix", "rules"};

// Index of the placeholder "{name}" at p, or -1.
static int placeholder_at(const char *p, size_t *len)
{
    for (int i = 0; i < PH_COUNT; i++) {
        size_t k = strlen(ph_names[i]);
        if (p[0] == '{' && strncmp(p + 1, ph_names[i], k) == 0 && p[k + 1] == '}') {
            *len = k + 2;
            return i;
        }
    }
    return -1;
}

// Every value that is given must be used, and {model} {out} {type} are always needed.
static enum imc_status check_used(const struct imc_quantize_ext_args *a, const bool *used)
{
    const char *const given[PH_COUNT] = {a->model, a->out, a->type, a->imatrix, a->rules};
    for (int i = 0; i < PH_COUNT; i++) {
        if (given[i] && !used[i]) {
            IMC_LOG_ERR("--external: the command has no {%s} placeholder, so the quantizer would "
                        "not get %s",
                        ph_names[i],
                        i == PH_IMATRIX ? "the --imatrix file"
                        : i == PH_RULES ? "the rules"
                                        : "a required argument");
            return IMC_ERR_ARG;
        }
        if (!given[i] && used[i]) {
            IMC_LOG_ERR("--external: the command uses {%s} but %s", ph_names[i],
                        i == PH_IMATRIX ? "no --imatrix was given" : "no rule was given");
            return IMC_ERR_ARG;
        }
    }
    return IMC_OK;
}

enum imc_status imc_quantize_ext_expand(const char *tmpl, const struct imc_quantize_ext_args *a,
                                        char **out)
{
    const char *const values[PH_COUNT] = {a->model, a->out, a->type, a->imatrix, a->rules};
    bool used[PH_COUNT] = {false};
    struct sbuf b = {0};
    *out = NULL;
    for (const char *p = tmpl; *p;) {
        size_t len = 0;
        int ph = placeholder_at(p, &len);
        if (ph < 0) {
            sb_add(&b, p++, 1);
            continue;
        }
        used[ph] = true;
        if (values[ph]) {
            sb_add_quoted(&b, values[ph]);
        }
        p += len;
    }
    enum imc_status st = check_used(a, used);
    if (st == IMC_OK && b.oom) {
        IMC_LOG_ERR("--external: out of memory");
        st = IMC_ERR_NOMEM;
    }
    if (st != IMC_OK) {
        free(b.s);
        return st;
    }
    *out = b.s ? b.s : strdup("");
    return *out ? IMC_OK : IMC_ERR_NOMEM;
}

enum imc_status imc_quantize_ext_rules(const struct imc_quant_rules *r, char **out)
{
    struct sbuf b = {0};
    *out = NULL;
    for (int64_t i = 0; r && i < r->n; i++) {
        const char *pat = r->rules[i].pattern;
        if (strchr(pat, ',')) {
            IMC_LOG_ERR("--external: rule %" PRId64 " '%s' contains ',', which the --custom-q "
                        "list of the external quantizer cannot carry",
                        i + 1, pat);
            free(b.s);
            return IMC_ERR_ARG;
        }
        if (i > 0) {
            sb_add(&b, ",", 1);
        }
        sb_add(&b, pat, strlen(pat));
        sb_add(&b, "=", 1);
        const char *t = imc_type_name(r->rules[i].type);
        sb_add(&b, t, strlen(t));
    }
    if (b.oom) {
        free(b.s);
        IMC_LOG_ERR("--external: out of memory");
        return IMC_ERR_NOMEM;
    }
    *out = b.s;
    return IMC_OK;
}

extern char **environ;

// The environment minus the variables of an MPI launcher (OMPI_*, PMIX_*, PMI_*): the command
// is not a rank of this job (an imc it starts must not try to join it). A new array of
// borrowed strings (free() the array only), or NULL.
static char **child_env(void)
{
    size_t n = 0;
    while (environ[n]) {
        n++;
    }
    char **env = calloc(n + 1, sizeof(*env));
    size_t k = 0;
    for (size_t i = 0; env && i < n; i++) {
        const char *v = environ[i];
        if (strncmp(v, "OMPI_", 5) != 0 && strncmp(v, "PMIX_", 5) != 0 &&
            strncmp(v, "PMI_", 4) != 0) {
            env[k++] = environ[i];
        }
    }
    return env;
}

// Waits for the child pid (status as waitpid's); while it runs, pulse is called each time the
// file out grows (its progress: a stopped or stuck quantizer writes nothing).
static enum imc_status wait_child(pid_t pid, int *status, const char *out,
                                  const struct imc_pulse *pulse)
{
    off_t size = -1;
    for (;;) {
        pid_t r = waitpid(pid, status, pulse && pulse->fn ? WNOHANG : 0);
        if (r == pid) {
            return IMC_OK;
        }
        if (r < 0 && errno != EINTR) {
            IMC_LOG_ERR("--external: waiting for the command failed: %s", strerror(errno));
            return IMC_ERR_IO;
        }
        struct stat sb;
        if (r == 0 && stat(out, &sb) == 0 && sb.st_size != size) {
            size = sb.st_size;
            imc_pulse_emit(pulse);
        }
        if (r == 0) {
            struct timespec ts = {0, WAIT_POLL_NS};
            nanosleep(&ts, NULL);
        }
    }
}

// Runs cmd with /bin/sh -c, its stdout on our stderr; *status gets waitpid's status. pulse: as
// wait_child, for the file out.
static enum imc_status run_shell(const char *cmd, int *status, const char *out,
                                 const struct imc_pulse *pulse)
{
    char **env = child_env();
    if (!env) {
        IMC_LOG_ERR("--external: out of memory");
        return IMC_ERR_NOMEM;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        free(env);
        IMC_LOG_ERR("--external: cannot start /bin/sh: %s", strerror(errno));
        return IMC_ERR_IO;
    }
    if (pid == 0) {                         // only async-signal-safe calls here
        dup2(STDERR_FILENO, STDOUT_FILENO); // stdout carries imc's results only
        char *const argv[] = {"sh", "-c", (char *)cmd, NULL};
        execve("/bin/sh", argv, env);
        _exit(127);
    }
    free(env);
    return wait_child(pid, status, out, pulse);
}

// Checks how the command ended and what it left at tmp.
static enum imc_status check_result(const char *cmd, int status, const char *tmp)
{
    if (WIFSIGNALED(status)) {
        IMC_LOG_ERR("--external: the quantizer was killed by signal %d (%s): %s", WTERMSIG(status),
                    strsignal(WTERMSIG(status)), cmd);
        return IMC_ERR_IO;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code != 0) {
        char why[96] = "";
        if (code == 127) {
            snprintf(why, sizeof(why), " (command not found?)");
        } else if (code > 128 && code < 128 + 65) { // the shell's report of a killed child
            snprintf(why, sizeof(why), " (what it ran was killed by signal %d, %s)", code - 128,
                     strsignal(code - 128));
        }
        IMC_LOG_ERR("--external: the quantizer failed with exit status %d%s: %s", code, why, cmd);
        return IMC_ERR_IO;
    }
    struct stat sb;
    if (stat(tmp, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        IMC_LOG_ERR("--external: the quantizer exited 0 but wrote no file at %s: %s", tmp, cmd);
        return IMC_ERR_IO;
    }
    struct imc_gguf *g = NULL;
    if (imc_gguf_open(&g, tmp) != IMC_OK) { // the reader logged why
        IMC_LOG_ERR("--external: the quantizer's output is not a readable GGUF: %s", cmd);
        return IMC_ERR_FORMAT;
    }
    int64_t n = imc_gguf_n_tensors(g);
    imc_gguf_free(g);
    if (n < 1) {
        IMC_LOG_ERR("--external: the quantizer's output holds no tensor: %s", cmd);
        return IMC_ERR_FORMAT;
    }
    IMC_LOG_INF("--external: the quantizer wrote a GGUF of %" PRId64 " tensors, %.2f MiB", n,
                (double)sb.st_size / 1048576.0);
    return IMC_OK;
}

enum imc_status imc_quantize_external(const struct imc_quantize_opts *o, const char *cmd_template,
                                      const char *type_name)
{
    size_t k = strlen(o->out) + 32;
    char *tmp = malloc(k), *rules = NULL, *cmd = NULL;
    if (!tmp) {
        IMC_LOG_ERR("--external: out of memory");
        return IMC_ERR_NOMEM;
    }
    snprintf(tmp, k, "%s.tmp.%ld", o->out, (long)getpid());
    imc_tmp_sweep_stale(o->out);
    const int slot = imc_tmp_register(tmp); // the child writes it; a signal removes it
    enum imc_status st = imc_quantize_ext_rules(o->rules, &rules);
    if (st == IMC_OK) {
        struct imc_quantize_ext_args a = {.model = o->model,
                                          .out = tmp,
                                          .type = type_name,
                                          .imatrix = o->imatrix,
                                          .rules = rules && *rules ? rules : NULL};
        st = imc_quantize_ext_expand(cmd_template, &a, &cmd);
    }
    int status = 0;
    if (st == IMC_OK) {
        unlink(tmp);
        IMC_LOG_INF("--external: running /bin/sh -c %s", cmd);
        st = run_shell(cmd, &status, tmp, &o->pulse);
    }
    if (st == IMC_OK) {
        st = check_result(cmd, status, tmp);
    }
    if (st == IMC_OK) {
        st = imc_file_commit_rename(tmp, o->out);
    } else {
        unlink(tmp);
    }
    imc_tmp_unregister(slot);
    free(cmd);
    free(rules);
    free(tmp);
    return st;
}

bool imc_quantize_is_type_word(const char *s)
{
    for (const char *p = s; *p; p++) {
        if (!(*p == '_' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z'))) {
            return false;
        }
    }
    return *s != '\0';
}

// TYPE's id for the built-in quantizer; -2 when an external one takes it verbatim; -1 (logged,
// "<what>: ...") when it is not valid.
static int check_type(const char *type, bool external, const char *what)
{
    if (!external) {
        char where[64];
        snprintf(where, sizeof(where), "%s: TYPE", what);
        return imc_quant_type_parse(type, where);
    }
    if (!imc_quantize_is_type_word(type)) {
        IMC_LOG_ERR("%s: TYPE '%s' is not a type name (letters, digits and '_')", what, type);
        return -1;
    }
    return -2;
}

enum imc_status imc_quantize_job_run(const struct imc_quantize_job *j,
                                     struct imc_quantize_stats *st)
{
    struct imc_quantize_opts o = j->o;
    int t = check_type(j->type_name, j->external != NULL, "quantize");
    if (t == -1) {
        return IMC_ERR_ARG;
    }
    o.type = t >= 0 ? (enum imc_type)t : o.type;
    struct imc_quant_rules rules;
    imc_quant_rules_init(&rules);
    rules.any_known = j->external != NULL; // it may write types imc only reads
    enum imc_status s = IMC_OK;
    if (j->rules_file) {
        s = imc_quant_rules_read_file(&rules, j->rules_file);
    } else if (j->custom_q) {
        s = imc_quant_rules_parse_list(&rules, j->custom_q);
    }
    o.rules = &rules;
    if (s == IMC_OK && !j->external) {
        s = imc_quantize_run(&o, st);
    } else if (s == IMC_OK && (!o.comm || imc_comm_rank(o.comm) == 0)) {
        s = imc_quantize_external(&o, j->external, j->type_name);
    }
    imc_quant_rules_free(&rules);
    return s;
}

enum imc_status imc_quantize_then_check(const struct imc_quantize_then *t)
{
    if (check_type(t->type, t->external != NULL, "--then-quantize") == -1) {
        return IMC_ERR_ARG;
    }
    struct imc_quant_rules rules;
    imc_quant_rules_init(&rules);
    rules.any_known = t->external != NULL;
    enum imc_status st = t->rules ? imc_quant_rules_read_file(&rules, t->rules) : IMC_OK;
    char *list = NULL, *cmd = NULL;
    if (st == IMC_OK && t->external) {
        st = imc_quantize_ext_rules(&rules, &list);
    }
    if (st == IMC_OK && t->external) {
        struct imc_quantize_ext_args a = {.model = "m",
                                          .out = "o",
                                          .type = t->type,
                                          .imatrix = "i",
                                          .rules = list && *list ? list : NULL};
        st = imc_quantize_ext_expand(t->external, &a, &cmd);
    }
    free(cmd);
    free(list);
    imc_quant_rules_free(&rules);
    return st;
}

enum imc_status imc_quantize_then_run(const struct imc_quantize_then *t, const char *model,
                                      const char *imatrix_path, int n_threads)
{
    struct imc_quantize_job j = {
        .type_name = t->type, .rules_file = t->rules, .external = t->external};
    imc_quantize_opts_default(&j.o);
    j.o.model = model;
    j.o.out = t->out;
    j.o.imatrix = imatrix_path;
    j.o.n_threads = n_threads;
    IMC_LOG_INF("imatrix: the imatrix is written; quantizing %s -> %s (%s)%s", model, t->out,
                t->type, t->external ? " with the external quantizer" : "");
    return imc_quantize_job_run(&j, NULL);
}
