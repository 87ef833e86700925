/*
 * kernels/cpu/pool: the execution context of the CPU kernels — a persistent pthread pool that
 * runs a batch of independent tasks, plus per-thread scratch (kernels/kernels.h).
 *
 * Why pthreads and not OpenMP: the build links no OpenMP runtime, worker threads must later be
 * pinned to one NUMA node per rank (numa/), and a plain pool keeps the task split explicit, which
 * is what makes results independent of the thread count (a task always computes the same
 * outputs in the same order; only which thread runs it varies).
 *
 * Protocol: imc_exec_run publishes a job (fn, ctx, n_tasks) under the mutex, bumps the
 * generation and sets the claim word to (generation << 32 | 0). Workers copy the job under the
 * mutex; the workers and the caller claim task indices by compare-and-swap on the claim word,
 * which succeeds only while its generation is still the one the claimer copied, so a worker
 * that wakes late (descheduled, the machine busy) claims nothing of a finished job nor of a
 * later one it has not copied. Each finished task counts in `done`; the caller returns when
 * done reaches n_tasks (the last finisher signals it), not when every worker has woken: a job
 * never waits for a thread that has no task of it. One job at a time (not reentrant).
 *
 * Waiting: a worker that finished a job, and the caller waiting for a job's last task, first
 * spin (pause) for up to SPIN_S on an atomic word (the published generation; done) before they
 * sleep on the condition variable. A forward pass posts thousands of jobs, many of a fraction of
 * a millisecond (per-head matmuls, checks, quantization), with short serial steps between them:
 * a sleeping worker must be woken through the kernel (a futex, an interrupt to its CPU: tens of
 * microseconds on a virtual machine), and meanwhile the caller runs the job's tasks alone.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/log.h"
#include "kernels/cpu/bmm.h"
#include "kernels/cpu/cpu_priv.h"
#include "kernels/cpu/gemm.h"
#include "kernels/kernels.h"

#define SPIN_S 100e-6 // spin before sleeping: longer than a wake through the kernel costs

struct scratch {
    float *p;
    int64_t n;
};

struct imc_exec {
    int n_threads;
    enum imc_gemm_path gemm_path; // GEMM kernels of matmul (set once at init, or by tests)
    enum imc_matmul_mode matmul;  // how matmul multiplies quantized weights
    bool bf16_dot;                // vdpbf16ps passed bmm.h's probe (set once at init)
    pthread_t *threads;           // n_threads - 1 workers
    int n_started;                // workers actually started
    pthread_mutex_t mu;
    pthread_cond_t cv_work;  // a new job or stop
    pthread_cond_t cv_done;  // the job's last task finished
    uint64_t generation;     // bumped per job
    _Atomic uint64_t posted; // generation, for spinning workers (stored after the job is set)
    bool stop;
    imc_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    _Atomic uint64_t claim;       // generation << 32 | next unclaimed task
    atomic_int_fast64_t done;     // tasks of the current job finished
    struct scratch *scratch;      // [n_threads + 1]: the task threads', then the caller's
    struct imc_exec_trace *trace; // recording (1 thread only), or NULL
    int cut_threads;              // while tracing: the thread count kernels cut work for
    void *backend_ctx;            // borrowed: the op table's state (kernels/backend.h), or NULL
};

struct worker_arg {
    struct imc_exec *ex;
    int thread;
};

// A job as a thread copied it (under the mutex).
struct job {
    imc_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    uint64_t gen; // low 32 bits of the generation
};

// Claims and runs tasks of job j until none is left or the claim word has moved on to another
// job; the thread that finishes the job's last task wakes the caller.
static void work(struct imc_exec *ex, const struct job *j, int thread)
{
    uint64_t c = atomic_load_explicit(&ex->claim, memory_order_acquire);
    for (;;) {
        const uint64_t t = c & 0xffffffffu;
        if (c >> 32 != j->gen || t >= (uint64_t)j->n_tasks) {
            return;
        }
        if (!atomic_compare_exchange_weak_explicit(&ex->claim, &c, c + 1, memory_order_acquire,
                                                   memory_order_acquire)) {
            continue; // c reloaded
        }
        j->fn(j->ctx, (int64_t)t, thread);
        if (atomic_fetch_add_explicit(&ex->done, 1, memory_order_acq_rel) + 1 == j->n_tasks) {
            pthread_mutex_lock(&ex->mu);
            pthread_cond_signal(&ex->cv_done);
            pthread_mutex_unlock(&ex->mu);
            return;
        }
        c = atomic_load_explicit(&ex->claim, memory_order_acquire);
    }
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// One step of a spin begun at t0: a pause; false once SPIN_S has passed (the clock read every 64
// steps).
static bool spin_step(double t0, unsigned *i)
{
    cpu_relax();
    return ++*i % 64 != 0 || imc_clock_now() - t0 <= SPIN_S;
}

// Spins until *w != old or SPIN_S has passed.
static void spin_while_equal(_Atomic uint64_t *w, uint64_t old)
{
    const double t0 = imc_clock_now();
    for (unsigned i = 0;
         atomic_load_explicit(w, memory_order_acquire) == old && spin_step(t0, &i);) {
    }
}

// Spins until *done >= n or SPIN_S has passed.
static void spin_until_done(atomic_int_fast64_t *done, int64_t n)
{
    const double t0 = imc_clock_now();
    for (unsigned i = 0;
         atomic_load_explicit(done, memory_order_acquire) < n && spin_step(t0, &i);) {
    }
}

static void *worker_main(void *p)
{
    struct imc_exec *ex = ((struct worker_arg *)p)->ex;
    const int thread = ((struct worker_arg *)p)->thread;
    free(p);
    uint64_t seen = 0;
    pthread_mutex_lock(&ex->mu);
    for (;;) {
        while (!ex->stop && ex->generation == seen) {
            pthread_cond_wait(&ex->cv_work, &ex->mu);
        }
        if (ex->stop) {
            break;
        }
        seen = ex->generation;
        const struct job j = {ex->fn, ex->ctx, ex->n_tasks, seen & 0xffffffffu};
        pthread_mutex_unlock(&ex->mu);
        work(ex, &j, thread);
        spin_while_equal(&ex->posted, seen); // the next job, often a few µs away
        pthread_mutex_lock(&ex->mu);
    }
    pthread_mutex_unlock(&ex->mu);
    return NULL;
}

static enum imc_status start_workers(struct imc_exec *ex)
{
    for (int i = 1; i < ex->n_threads; i++) {
        struct worker_arg *a = malloc(sizeof(*a));
        if (!a) {
            IMC_LOG_ERR("exec: out of memory starting thread %d", i);
            return IMC_ERR_NOMEM;
        }
        a->ex = ex;
        a->thread = i;
        if (pthread_create(&ex->threads[i - 1], NULL, worker_main, a) != 0) {
            free(a);
            IMC_LOG_ERR("exec: cannot start compute thread %d of %d", i, ex->n_threads);
            return IMC_ERR_INTERNAL;
        }
        ex->n_started++;
    }
    return IMC_OK;
}

enum imc_status imc_exec_init(struct imc_exec **out, int n_threads)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 4096) {
        IMC_LOG_ERR("exec: thread count %d out of range [1, 4096]", n_threads);
        return IMC_ERR_ARG;
    }
    struct imc_exec *ex = calloc(1, sizeof(*ex));
    if (!ex) {
        IMC_LOG_ERR("exec: out of memory");
        return IMC_ERR_NOMEM;
    }
    ex->n_threads = n_threads;
    ex->gemm_path = imc_gemm_path_best();
    ex->matmul = IMC_MATMUL_F32; // exact unless the caller asks for q8
    ex->bf16_dot = imc_bmm_probe();
    ex->threads = calloc((size_t)n_threads, sizeof(*ex->threads));
    ex->scratch = calloc((size_t)n_threads + 1, sizeof(*ex->scratch));
    pthread_mutex_init(&ex->mu, NULL);
    pthread_cond_init(&ex->cv_work, NULL);
    pthread_cond_init(&ex->cv_done, NULL);
    atomic_init(&ex->claim, 0);
    atomic_init(&ex->done, 0);
    atomic_init(&ex->posted, 0);
    if (!ex->threads || !ex->scratch) {
        IMC_LOG_ERR("exec: out of memory");
        imc_exec_free(ex);
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = start_workers(ex);
    if (st != IMC_OK) {
        imc_exec_free(ex);
        return st;
    }
    *out = ex;
    return IMC_OK;
}

void imc_exec_free(struct imc_exec *ex)
{
    if (!ex) {
        return;
    }
    pthread_mutex_lock(&ex->mu);
    ex->stop = true;
    pthread_cond_broadcast(&ex->cv_work);
    pthread_mutex_unlock(&ex->mu);
    for (int i = 0; i < ex->n_started; i++) {
        pthread_join(ex->threads[i], NULL);
    }
    for (int i = 0; ex->scratch && i <= ex->n_threads; i++) {
        free(ex->scratch[i].p);
    }
    pthread_cond_destroy(&ex->cv_done);
    pthread_cond_destroy(&ex->cv_work);
    pthread_mutex_destroy(&ex->mu);
    free(ex->scratch);
    free(ex->threads);
    free(ex);
}

int imc_exec_n_threads(const struct imc_exec *ex)
{
    return ex ? ex->n_threads : 1;
}

enum imc_gemm_path imc_exec_gemm_path(const struct imc_exec *ex)
{
    return ex ? ex->gemm_path : imc_gemm_path_best();
}

enum imc_bmm_kernel imc_exec_bmm_kernel(const struct imc_exec *ex)
{
    return imc_bmm_kernel_for(imc_exec_gemm_path(ex), ex && ex->bf16_dot);
}

void imc_exec_set_matmul(struct imc_exec *ex, enum imc_matmul_mode mode)
{
    ex->matmul = mode;
}

enum imc_matmul_mode imc_exec_matmul(const struct imc_exec *ex)
{
    return ex ? ex->matmul : IMC_MATMUL_F32;
}

void imc_exec_set_backend_ctx(struct imc_exec *ex, void *ctx)
{
    ex->backend_ctx = ctx;
}

void *imc_exec_backend_ctx(const struct imc_exec *ex)
{
    return ex ? ex->backend_ctx : NULL;
}

const char *imc_matmul_mode_name(enum imc_matmul_mode mode)
{
    return mode == IMC_MATMUL_Q8 ? "q8" : "f32";
}

enum imc_status imc_exec_set_gemm_path(struct imc_exec *ex, enum imc_gemm_path path)
{
    if (!imc_gemm_path_supported(path)) {
        IMC_LOG_ERR("exec: GEMM path %s (%d) cannot run on this CPU (avx2 needs AVX2 and FMA)",
                    imc_gemm_path_name(path), (int)path);
        return IMC_ERR_UNSUPPORTED;
    }
    ex->gemm_path = path;
    return IMC_OK;
}

void imc_exec_trace_free(struct imc_exec_trace *tr)
{
    if (tr) {
        free(tr->job_first);
        free(tr->serial_s);
        free(tr->task_s);
        *tr = (struct imc_exec_trace){0};
    }
}

void imc_exec_trace_set(struct imc_exec *ex, struct imc_exec_trace *tr, int cut_threads)
{
    IMC_ASSERT(!tr || ex->n_threads == 1);
    if (tr) {
        imc_exec_trace_free(tr);
        tr->last = imc_clock_now();
    }
    ex->trace = tr;
    ex->cut_threads = tr && cut_threads > 0 ? cut_threads : ex->n_threads;
}

int imc_exec_cut_threads(const struct imc_exec *ex)
{
    return !ex ? 1 : ex->trace ? ex->cut_threads : ex->n_threads;
}

// Room for one more job of n tasks in tr; false (truncated) when memory runs out.
static bool trace_grow(struct imc_exec_trace *tr, int64_t n)
{
    if (tr->truncated) {
        return false;
    }
    if (tr->n_jobs + 2 > tr->cap_jobs) {
        int64_t cap = tr->cap_jobs ? 2 * tr->cap_jobs : 1024;
        int64_t *f = realloc(tr->job_first, (size_t)cap * sizeof(*f));
        tr->job_first = f ? f : tr->job_first;
        double *s = f ? realloc(tr->serial_s, (size_t)cap * sizeof(*s)) : NULL;
        tr->serial_s = s ? s : tr->serial_s;
        tr->cap_jobs = f && s ? cap : tr->cap_jobs;
        tr->truncated = !f || !s;
    }
    while (!tr->truncated && tr->n_tasks + n > tr->cap_tasks) {
        int64_t cap = tr->cap_tasks ? 2 * tr->cap_tasks : 65536;
        double *t = realloc(tr->task_s, (size_t)cap * sizeof(*t));
        tr->task_s = t ? t : tr->task_s;
        tr->cap_tasks = t ? cap : tr->cap_tasks;
        tr->truncated = !t;
    }
    return !tr->truncated;
}

// Runs a job on the caller, timing each task into the trace.
static void run_traced(struct imc_exec *ex, int64_t n_tasks, imc_task_fn fn, void *ctx)
{
    struct imc_exec_trace *tr = ex->trace;
    const bool rec = trace_grow(tr, n_tasks);
    double t = imc_clock_now();
    if (rec) {
        tr->serial_s[tr->n_jobs] = t - tr->last;
        tr->job_first[tr->n_jobs] = tr->n_tasks;
    }
    for (int64_t i = 0; i < n_tasks; i++) {
        fn(ctx, i, 0);
        const double t1 = imc_clock_now();
        if (rec) {
            tr->task_s[tr->n_tasks++] = t1 - t;
        }
        t = t1;
    }
    if (rec) {
        tr->job_first[++tr->n_jobs] = tr->n_tasks;
    }
    tr->last = t;
}

void imc_exec_run(const struct imc_exec *cex, int64_t n_tasks, imc_task_fn fn, void *ctx)
{
    // The pool's synchronization state is private; callers see it as a read-only handle.
    struct imc_exec *ex = (struct imc_exec *)cex;
    if (n_tasks <= 0) {
        return;
    }
    if (!ex) {
        for (int64_t t = 0; t < n_tasks; t++) {
            fn(ctx, t, 0);
        }
        return;
    }
    if (ex->trace) {
        run_traced(ex, n_tasks, fn, ctx);
        return;
    }
    if (ex->n_threads == 1 || n_tasks == 1 || n_tasks > 0xffffffff) { // > 2^32: not in a claim
        for (int64_t t = 0; t < n_tasks; t++) {
            fn(ctx, t, 0);
        }
        return;
    }
    pthread_mutex_lock(&ex->mu);
    ex->fn = fn;
    ex->ctx = ctx;
    ex->n_tasks = n_tasks;
    ex->generation++;
    const struct job j = {fn, ctx, n_tasks, ex->generation & 0xffffffffu};
    atomic_store_explicit(&ex->done, 0, memory_order_relaxed);
    atomic_store_explicit(&ex->claim, j.gen << 32, memory_order_release);
    atomic_store_explicit(&ex->posted, ex->generation, memory_order_release);
    pthread_cond_broadcast(&ex->cv_work);
    pthread_mutex_unlock(&ex->mu);
    work(ex, &j, 0);
    spin_until_done(&ex->done, n_tasks); // the other threads' last tasks
    pthread_mutex_lock(&ex->mu);
    while (atomic_load_explicit(&ex->done, memory_order_acquire) < n_tasks) {
        pthread_cond_wait(&ex->cv_done, &ex->mu);
    }
    pthread_mutex_unlock(&ex->mu);
}

// Slot i of ex's scratch grown to n floats.
static float *scratch_of(const struct imc_exec *cex, int i, int64_t n)
{
    struct scratch *s = &((struct imc_exec *)cex)->scratch[i];
    if (s->n < n) {
        float *p = realloc(s->p, (size_t)n * sizeof(float));
        if (!p) {
            return NULL;
        }
        s->p = p;
        s->n = n;
    }
    return s->p;
}

float *imc_exec_scratch(const struct imc_exec *cex, int thread, int64_t n)
{
    if (!cex || thread < 0 || thread >= cex->n_threads || n < 0) {
        return NULL;
    }
    return scratch_of(cex, thread, n);
}

float *imc_exec_caller_scratch(const struct imc_exec *cex, int64_t n)
{
    return cex && n >= 0 ? scratch_of(cex, cex->n_threads, n) : NULL;
}
