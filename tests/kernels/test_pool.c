/*
 * tests/kernels/test_pool: the pool's contract under load (kernels/cpu/pool.c): every task of a
 * job runs exactly once, on a thread index in [0, n_threads) that no other running task holds at
 * the same time (the per-thread scratch relies on it), and none runs after imc_exec_run returned.
 * Pools of 2, 3 and 8 threads (8 on a 2-core machine: workers routinely wake late, after the job
 * they were woken for has finished) run thousands of short jobs of 2..41 tasks; every 499th job
 * one task sleeps 2 ms so the others finish first and idle workers go back to sleep mid-job.
 * A task that finds its job is no longer the current one counts as a late run (a failure); a
 * pool that hangs (a job whose completion is never signalled) fails by the alarm after 120 s.
 * The caller's scratch (imc_exec_caller_scratch) is apart from every task thread's: tasks that
 * fill their own scratch leave a pattern written into it intact, and it keeps its contents when
 * asked again for fewer floats.
 */
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "kcheck.h"

#define MAX_TASKS 41
#define MAX_THREADS 8

struct state {
    atomic_int hits[MAX_TASKS];
    atomic_int busy[MAX_THREADS]; // 1 while a task runs on that thread index
    atomic_long current;          // the job id now inside imc_exec_run, or -1
    atomic_int late;              // tasks that ran when their job was not the current one
    atomic_int bad_thread;        // thread index out of range or shared by two running tasks
    int n_threads;
};

struct job {
    struct state *s;
    long id;
};

static void task(void *ctx, int64_t t, int thread)
{
    const struct job *j = ctx;
    struct state *s = j->s;
    if (thread < 0 || thread >= s->n_threads || atomic_exchange(&s->busy[thread], 1) != 0) {
        atomic_fetch_add(&s->bad_thread, 1);
        return;
    }
    if (atomic_load(&s->current) != j->id) {
        atomic_fetch_add(&s->late, 1);
    }
    if (j->id % 499 == 0 && t == j->id % 2) {
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    atomic_fetch_add(&s->hits[t], 1);
    atomic_store(&s->busy[thread], 0);
}

static void run_pool(int n_threads, long n_jobs)
{
    struct imc_exec *ex = kexec(n_threads);
    struct state s = {.n_threads = n_threads};
    atomic_store(&s.current, -1);
    long wrong = 0, first_wrong = -1;
    struct job jobs[2];
    for (long id = 0; id < n_jobs; id++) {
        const int64_t n = 2 + id % (MAX_TASKS - 1);
        struct job *j = &jobs[id % 2]; // a stale ctx pointer names the previous job
        *j = (struct job){&s, id};
        atomic_store(&s.current, id);
        imc_exec_run(ex, n, task, j);
        atomic_store(&s.current, -1);
        for (int64_t t = 0; t < MAX_TASKS; t++) {
            const int h = atomic_exchange(&s.hits[t], 0);
            if (h != (t < n)) {
                wrong++;
                first_wrong = first_wrong < 0 ? id : first_wrong;
            }
        }
    }
    // Let any straggler that escaped the job show itself before the counts are read.
    nanosleep(&(struct timespec){0, 20000000}, NULL);
    for (int64_t t = 0; t < MAX_TASKS; t++) {
        wrong += atomic_load(&s.hits[t]) != 0;
    }
    CHECK(wrong == 0, "%d threads: %ld task slots not run exactly once (first in job %ld)",
          n_threads, wrong, first_wrong);
    CHECK(atomic_load(&s.late) == 0, "%d threads: %d tasks ran after their job returned", n_threads,
          atomic_load(&s.late));
    CHECK(atomic_load(&s.bad_thread) == 0, "%d threads: %d tasks on a bad or shared thread index",
          n_threads, atomic_load(&s.bad_thread));
    imc_exec_free(ex);
}

static void caller_scratch(int n_threads)
{
    struct imc_exec *ex = kexec(n_threads);
    const int64_t n = 4096;
    float *c = imc_exec_caller_scratch(ex, n);
    CHECK(c != NULL, "caller scratch of %lld floats", (long long)n);
    for (int64_t i = 0; c && i < n; i++) {
        c[i] = (float)i;
    }
    for (int t = 0; t < n_threads; t++) {
        float *s = imc_exec_scratch(ex, t, n);
        CHECK(s != NULL && s != c, "thread %d's scratch is the caller's", t);
        for (int64_t i = 0; s && i < n; i++) {
            s[i] = -1.0f;
        }
    }
    float *again = imc_exec_caller_scratch(ex, n / 2);
    int64_t bad = 0;
    for (int64_t i = 0; again && i < n; i++) {
        bad += again[i] != (float)i;
    }
    CHECK(again == c && bad == 0, "%d threads: caller scratch moved or changed (%lld floats)",
          n_threads, (long long)bad);
    CHECK(imc_exec_caller_scratch(NULL, 1) == NULL && imc_exec_caller_scratch(ex, -1) == NULL,
          "caller scratch of a NULL exec or a negative size");
    imc_exec_free(ex);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL test_pool: a job did not return within 120 s (pool hung)\n";
    (void)!write(1, msg, sizeof(msg) - 1);
    _exit(1);
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    alarm(120);
    run_pool(2, 20000);
    run_pool(3, 20000);
    run_pool(MAX_THREADS, 5000);
    caller_scratch(1);
    caller_scratch(3);
    return check_summary();
}
