/*
 * kernels/cuda/emu/fiber: the CUDA emulator's launch, block scheduler, barrier and warp ops
 * (model and limits: cuemu.h). Each thread of a block is a fiber; the scheduler (the
 * launching host thread's own stack) resumes runnable fibers from a run queue until every
 * fiber exited, a check failed, or none can run (a deadlock, reported with who waits where).
 * A fiber runs until it exits or waits. At the start and after each __syncthreads every thread
 * is queued in the launch's order (forward, reverse, shuffled); when a warp op completes, its
 * lanes go to the front of the queue in that order, so that a warp runs ahead of the others to
 * the next barrier: data one warp writes after a warp op and another reads without a barrier
 * between is then read too early (or overwritten too soon) in at least one order.
 *
 * State: the running block of each host thread (t_blk), its resume order (t_order), its fiber
 * stack pool (t_pool) and the per-kernel dynamic shared memory opt-ins (max_dyn, behind a
 * mutex): test infrastructure, thread_local so that host threads can launch independently.
 * Under AddressSanitizer every switch is announced (__sanitizer_start/finish_switch_fiber).
 *
 * Context switch: on x86-64 a hand-written one (callee-saved registers, MXCSR and the x87
 * control word, as the SysV ABI requires of a call), some 20 times faster than swapcontext,
 * whose signal-mask system call per switch dominated launches of many small blocks; elsewhere,
 * or with -DCUEMU_UCONTEXT=1, ucontext.
 */
#include "kernels/cuda/emu/cuemu.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <sys/mman.h>
#include <ucontext.h>
#include <unordered_map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUEMU_ASAN 1
#else
#define CUEMU_ASAN 0
#endif

#if defined(__x86_64__) && !defined(CUEMU_UCONTEXT)
#define CUEMU_ASM_SWITCH 1
// cuemu_swap(save, load): saves the caller's callee-saved state on its stack and its stack
// pointer in *save, then continues on the stack load with the state saved there.
extern "C" void cuemu_swap(void **save, void *load);
asm(R"(
    .text
    .p2align 4
    .type cuemu_swap, @function
cuemu_swap:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuemu_swap, .-cuemu_swap
)");
#else
#define CUEMU_ASM_SWITCH 0
#endif

namespace cuemu
{

namespace
{

constexpr unsigned k_max_threads = 1024;
constexpr size_t k_stack = CUEMU_ASAN ? 512 * 1024 : 256 * 1024; // per fiber, guard included
constexpr size_t k_guard = 64 * 1024;                            // a multiple of any page size
constexpr size_t k_dyn_default = 48 * 1024;
constexpr size_t k_dyn_optin_max = 166912; // sm_80: 163 KiB
constexpr int k_max_groups = 8;            // concurrent warp ops with disjoint masks per warp

enum class fstate { runnable, barrier, warp, done };

#if CUEMU_ASM_SWITCH
struct uctx {
    void *sp;
};

// A context that starts entry() on the stack [lo, lo + size) (lo + size 16-byte aligned).
void ctx_make(uctx &c, char *lo, size_t size, void (*entry)())
{
    uintptr_t *sp = reinterpret_cast<uintptr_t *>(lo + size);
    *--sp = 0;                                  // entry's return address: it never returns
    *--sp = reinterpret_cast<uintptr_t>(entry); // cuemu_swap's ret goes here
    for (int k = 0; k < 6; k++) {
        *--sp = 0; // rbp rbx r12-r15
    }
    uint32_t mxcsr;
    uint16_t fcw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fcw));
    *--sp = (uintptr_t)mxcsr | (uintptr_t)fcw << 32;
    c.sp = sp;
}

inline void ctx_swap(uctx &from, uctx &to)
{
    cuemu_swap(&from.sp, to.sp);
}
#else
struct uctx {
    ucontext_t uc;
};

__attribute__((noinline)) void ctx_make(uctx &c, char *lo, size_t size, void (*entry)())
{
    getcontext(&c.uc); // only fills uc: nothing ever returns to it here
    c.uc.uc_stack.ss_sp = lo;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}

inline void ctx_swap(uctx &from, uctx &to)
{
    swapcontext(&from.uc, &to.uc);
}
#endif // CUEMU_ASM_SWITCH

struct fiber {
    uctx ctx;
    uint3 tid;
    unsigned lin;
    fstate state;
    char *stack;
    void *fake_stack; // ASan's fake stack of this fiber while switched out
};

struct wgroup {
    unsigned mask;    // lanes taking part; 0 = free slot
    unsigned arrived; // lanes arrived so far
    warp_kind kind;
};

struct warp {
    wgroup g[k_max_groups];
    uint64_t val[32];
    int param[32];
    int width[32];
    uint64_t out[32];
};

struct block {
    const char *kname;
    dim3 grid, bdim;
    uint3 bidx;
    unsigned n;
    std::vector<fiber> *f;
    std::vector<warp> *w;
    fiber *cur;
    uctx sched;
    void *sched_fake;
    const void *sched_bottom;
    size_t sched_size;
    invoke_fn fn;
    void *closure;
    unsigned char *dyn;
    unsigned bar_arrived;
    const char *bar_file;
    int bar_line;
    unsigned n_done;
    bool failed;
    std::deque<unsigned> runq;     // runnable threads, next first
    std::vector<unsigned> scratch; // wake's order
    unsigned rng;                  // SHUFFLE's state
    std::string msg;
    char err[512]; // a failed check's message, written by the fiber
};

// A thread's fiber stacks: k_max_threads stacks, mapped once on first use (pages on touch).
struct stack_pool {
    char *base = nullptr;
    ~stack_pool()
    {
        if (base) {
            munmap(base, k_stack * k_max_threads);
        }
    }
    char *get(unsigned i)
    {
        if (!base) {
            void *p = mmap(nullptr, k_stack * k_max_threads, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p == MAP_FAILED) {
                return nullptr;
            }
            base = static_cast<char *>(p);
            for (unsigned k = 0; k < k_max_threads; k++) { // guard page below each stack
                mprotect(base + k * k_stack, k_guard, PROT_NONE);
            }
        }
        return base + (size_t)i * k_stack;
    }
};

thread_local block *t_blk = nullptr;
thread_local cuemu_order t_order = CUEMU_FORWARD;
thread_local unsigned t_seed = 1;
thread_local unsigned long long t_switches = 0;
thread_local unsigned long long t_launches = 0;
thread_local stack_pool t_pool;

std::mutex g_attr_mu;
std::unordered_map<const void *, size_t> g_max_dyn; // kernel -> opted-in dynamic shared bytes

const char *kind_name(warp_kind k)
{
    static const char *const names[] = {"__shfl_sync",     "__shfl_up_sync", "__shfl_down_sync",
                                        "__shfl_xor_sync", "__ballot_sync",  "__any_sync",
                                        "__all_sync",      "__syncwarp",     "a wmma op"};
    return names[k];
}

std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *f, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof(buf), f, ap);
    va_end(ap);
    return buf;
}

std::string where(const block *b)
{
    // the launcher's log line names the kernel
    return fmt("block (%u,%u,%u)", b->bidx.x, b->bidx.y, b->bidx.z);
}

std::string tid_str(const fiber &f)
{
    return fmt("(%u,%u,%u)", f.tid.x, f.tid.y, f.tid.z);
}

void asan_start(void **fake, const void *bottom, size_t size)
{
#if CUEMU_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

void asan_finish(void *fake, const void **bottom, size_t *size)
{
#if CUEMU_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

// From the running fiber back to the scheduler; returns when the scheduler resumes it.
void yield_to_sched(block *b)
{
    fiber *f = b->cur;
    t_switches++;
    asan_start(&f->fake_stack, b->sched_bottom, b->sched_size);
    ctx_swap(f->ctx, b->sched);
    asan_finish(f->fake_stack, nullptr, nullptr);
}

// Aborts the block from inside a fiber: records the message, never returns to the fiber.
// Formats into b->err without temporaries: the fiber's frames are never unwound.
[[noreturn]] void fail(block *b, const char *f, ...) __attribute__((format(printf, 2, 3)));
[[noreturn]] void fail(block *b, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(b->err, sizeof(b->err), f, ap);
    va_end(ap);
    b->failed = true;
    yield_to_sched(b);
    abort(); // the scheduler never resumes a failed block
}

void fiber_entry()
{
    block *b = t_blk;
    asan_finish(nullptr, &b->sched_bottom, &b->sched_size);
    b->fn(b->closure);
    b->cur->state = fstate::done;
    b->n_done++;
    t_switches++;
    asan_start(nullptr, b->sched_bottom, b->sched_size); // this fiber's fake stack ends here
    ctx_swap(b->cur->ctx, b->sched);                     // never resumed
}

void resume(block *b, fiber *f)
{
    b->cur = f;
    t_switches++;
    asan_start(&b->sched_fake, f->stack + k_guard, k_stack - k_guard);
    ctx_swap(b->sched, f->ctx);
    asan_finish(b->sched_fake, nullptr, nullptr);
}

unsigned next_rand(unsigned &s)
{
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
}

// Who waits where, for a block in which no fiber can run.
std::string describe_deadlock(block *b)
{
    std::vector<fiber> &fs = *b->f;
    unsigned at_bar = 0; // the waiters at warp ops are listed per warp below
    const fiber *first_done = nullptr;
    for (const fiber &f : fs) {
        at_bar += f.state == fstate::barrier;
        if (f.state == fstate::done && !first_done) {
            first_done = &f;
        }
    }
    std::string m = "deadlock (barrier or warp divergence):";
    if (at_bar) {
        m += fmt(" %u of %u threads wait at __syncthreads at %s:%d;", at_bar, b->n, b->bar_file,
                 b->bar_line);
    }
    for (size_t wi = 0; wi < b->w->size(); wi++) {
        for (const wgroup &g : (*b->w)[wi].g) {
            if (g.mask) {
                m += fmt(" warp %zu lanes 0x%08x wait at %s with mask 0x%08x for lanes 0x%08x;", wi,
                         g.arrived, kind_name(g.kind), g.mask, g.mask & ~g.arrived);
            }
        }
    }
    if (first_done) {
        m += fmt(" %u threads exited (the first threadIdx %s)", b->n_done,
                 tid_str(*first_done).c_str());
    }
    return m;
}

// A fresh fiber for thread i.
void init_fiber(block *b, unsigned i)
{
    fiber &f = (*b->f)[i];
    f.lin = i;
    f.tid = {i % b->bdim.x, i / b->bdim.x % b->bdim.y, i / (b->bdim.x * b->bdim.y)};
    f.state = fstate::runnable;
    f.fake_stack = nullptr;
    f.stack = t_pool.get(i);
    ctx_make(f.ctx, f.stack + k_guard, k_stack - k_guard, fiber_entry);
}

// Makes the threads base + lanes[k] runnable, queued in the launch's order: at the back (a new
// phase, after a barrier) or at the front (after a warp op: the warp runs ahead).
void wake(block *b, unsigned base, const unsigned *lanes, unsigned n, bool front)
{
    std::vector<unsigned> &o = b->scratch;
    o.assign(lanes, lanes + n);
    if (t_order == CUEMU_REVERSE) {
        std::reverse(o.begin(), o.end());
    } else if (t_order == CUEMU_SHUFFLE) {
        for (unsigned i = n; i > 1; i--) {
            std::swap(o[i - 1], o[next_rand(b->rng) % i]);
        }
    }
    for (unsigned k = 0; k < n; k++) {
        unsigned i = base + o[front ? n - 1 - k : k];
        (*b->f)[i].state = fstate::runnable;
        if (front) {
            b->runq.push_front(i);
        } else {
            b->runq.push_back(i);
        }
    }
}

void wake_all(block *b)
{
    std::vector<unsigned> all(b->n);
    for (unsigned i = 0; i < b->n; i++) {
        all[i] = i;
    }
    wake(b, 0, all.data(), b->n, false);
}

bool run_block(block *b)
{
    std::vector<fiber> &fs = *b->f;
    for (unsigned i = 0; i < b->n; i++) {
        init_fiber(b, i);
    }
    for (warp &w : *b->w) {
        for (wgroup &g : w.g) {
            g.mask = 0;
        }
    }
    b->bar_arrived = 0;
    b->n_done = 0;
    b->rng = t_seed * 2654435761u + b->bidx.x * 40503u + b->bidx.y * 977u + b->bidx.z + 1;
    b->runq.clear();
    wake_all(b);
    while (!b->runq.empty()) {
        unsigned i = b->runq.front();
        b->runq.pop_front();
        resume(b, &fs[i]);
        if (b->failed) {
            b->msg = where(b) + ": " + b->err;
            return false;
        }
    }
    if (b->n_done < b->n) {
        b->msg = where(b) + ": " + describe_deadlock(b);
        return false;
    }
    return true;
}

void complete_group(block *b, warp &w, wgroup &g, unsigned base_lane)
{
    unsigned ballot = 0, lanes[32], n_lanes = 0;
    for (unsigned l = 0; l < 32; l++) {
        if ((g.mask >> l & 1u) && w.val[l]) {
            ballot |= 1u << l;
        }
    }
    for (unsigned l = 0; l < 32; l++) {
        if (!(g.mask >> l & 1u)) {
            continue;
        }
        int width = w.width[l];
        int seg = (int)l & ~(width - 1);
        int src = (int)l;
        switch (g.kind) {
        case W_SHFL_IDX:
            src = seg + (w.param[l] & (width - 1));
            break;
        case W_SHFL_UP:
            src = (int)l - w.param[l] >= seg ? (int)l - w.param[l] : (int)l;
            break;
        case W_SHFL_DOWN:
            src = (int)l + w.param[l] < seg + width ? (int)l + w.param[l] : (int)l;
            break;
        case W_SHFL_XOR:
            src = ((int)l ^ w.param[l]) < seg + width ? (int)l ^ w.param[l] : (int)l;
            break;
        case W_BALLOT:
            w.out[l] = ballot;
            break;
        case W_ANY:
            w.out[l] = ballot != 0;
            break;
        case W_ALL:
            w.out[l] = ballot == g.mask;
            break;
        case W_SYNC:
            w.out[l] = 0;
            break;
        case W_MMA:
            src = seg;
            break;
        }
        if (g.kind <= W_SHFL_XOR || g.kind == W_MMA) {
            if (src < 0 || src > 31 || !(g.mask >> src & 1u)) {
                fail(b, "%s: lane %u reads lane %d, which is not in the mask 0x%08x",
                     kind_name(g.kind), l, src, g.mask);
            }
            w.out[l] = w.val[src];
        }
        lanes[n_lanes++] = l;
    }
    g.mask = 0;
    wake(b, base_lane, lanes, n_lanes, true);
}

} // namespace

const uint3 &thread_idx()
{
    return t_blk->cur->tid;
}

const uint3 &block_idx()
{
    return t_blk->bidx;
}

const dim3 &block_dim()
{
    return t_blk->bdim;
}

const dim3 &grid_dim()
{
    return t_blk->grid;
}

void *dyn_shared()
{
    return t_blk->dyn;
}

void syncthreads(const char *file, int line)
{
    block *b = t_blk;
    fiber *f = b->cur;
    if (b->bar_arrived > 0 && (line != b->bar_line || strcmp(file, b->bar_file) != 0)) {
        fail(b,
             "barrier divergence: threadIdx (%u,%u,%u) reached __syncthreads at %s:%d while %u "
             "threads wait at the one at %s:%d",
             f->tid.x, f->tid.y, f->tid.z, file, line, b->bar_arrived, b->bar_file, b->bar_line);
    }
    b->bar_file = file;
    b->bar_line = line;
    b->bar_arrived++;
    f->state = fstate::barrier;
    if (b->bar_arrived == b->n) {
        b->bar_arrived = 0;
        wake_all(b);
    }
    yield_to_sched(b);
}

uint64_t warp_op(warp_kind kind, unsigned mask, uint64_t val, int param, int width)
{
    block *b = t_blk;
    fiber *f = b->cur;
    unsigned wi = f->lin / 32, lane = f->lin % 32;
    unsigned nl = b->n - wi * 32 < 32 ? b->n - wi * 32 : 32;
    unsigned exists = nl == 32 ? 0xffffffffu : (1u << nl) - 1u;
    const char *op = kind_name(kind);
    if (!(mask >> lane & 1u)) {
        fail(b,
             "%s: lane %u of warp %u (threadIdx (%u,%u,%u)) calls it with mask 0x%08x, which "
             "leaves the lane out",
             op, lane, wi, f->tid.x, f->tid.y, f->tid.z, mask);
    }
    if (mask & ~exists) {
        fail(b, "%s: mask 0x%08x names lanes warp %u lacks (it has %u threads)", op, mask, wi, nl);
    }
    if (width < 1 || width > 32 || (width & (width - 1))) {
        fail(b, "%s: width %d is not a power of two in [1, 32]", op, width);
    }
    warp &w = (*b->w)[wi];
    wgroup *g = nullptr;
    for (wgroup &c : w.g) {
        if (c.mask == mask) {
            g = &c;
        } else if (c.mask & mask) {
            fail(b,
                 "warp divergence: lane %u of warp %u calls %s with mask 0x%08x while "
                 "lanes 0x%08x wait at %s with mask 0x%08x",
                 lane, wi, op, mask, c.arrived, kind_name(c.kind), c.mask);
        }
    }
    if (g && g->kind != kind) {
        fail(b,
             "warp divergence: lane %u of warp %u calls %s while lanes 0x%08x wait at %s "
             "(mask 0x%08x)",
             lane, wi, op, g->arrived, kind_name(g->kind), mask);
    }
    if (!g) {
        for (wgroup &c : w.g) {
            if (!c.mask) {
                g = &c;
                break;
            }
        }
        if (!g) {
            fail(b, "warp %u: more than %d warp ops pending at once", wi, k_max_groups);
        }
        g->mask = mask;
        g->arrived = 0;
        g->kind = kind;
    }
    w.val[lane] = val;
    w.param[lane] = param;
    w.width[lane] = width;
    g->arrived |= 1u << lane;
    f->state = fstate::warp;
    if (g->arrived == mask) {
        complete_group(b, w, *g, wi * 32);
    }
    yield_to_sched(b);
    return w.out[lane];
}

void mma_point(const char *op, const void *ptr, unsigned ldm, size_t elem)
{
    block *b = t_blk;
    const fiber *f = b->cur;
    if (elem > 0 &&
        (reinterpret_cast<uintptr_t>(ptr) % 32 != 0 || ldm * elem % 16 != 0 || ldm >= 1u << 16)) {
        fail(b,
             "%s: threadIdx (%u,%u,%u) passes %p with ldm %u (elements of %zu bytes): the device "
             "needs a 32-byte aligned pointer and an ldm of a multiple of 16 bytes",
             op, f->tid.x, f->tid.y, f->tid.z, ptr, ldm, elem);
    }
    // one warp op: the whole warp meets here; lane 0's pointer and ldm come back to each lane
    const uint64_t mine = reinterpret_cast<uintptr_t>(ptr) | (uint64_t)ldm << 48;
    const uint64_t lane0 = warp_op(W_MMA, 0xffffffffu, mine, 0, 32);
    if (lane0 != mine) {
        fail(b, "%s: lane %u of warp %u passes %p with ldm %u, lane 0 %p with ldm %u", op,
             f->lin % 32, f->lin / 32, ptr, ldm,
             reinterpret_cast<const void *>(lane0 & ((1ull << 48) - 1)), (unsigned)(lane0 >> 48));
    }
}

unsigned active_mask()
{
    block *b = t_blk;
    unsigned wi = b->cur->lin / 32, m = 0;
    for (unsigned l = 0; l < 32 && wi * 32 + l < b->n; l++) {
        m |= ((*b->f)[wi * 32 + l].state != fstate::done) << l;
    }
    return m;
}

cudaError_t set_max_dyn_shared(const void *kernel_id, int bytes)
{
    if (bytes < 0 || (size_t)bytes > k_dyn_optin_max) {
        set_error(cudaErrorInvalidValue,
                  "cudaFuncSetAttribute: %d bytes of dynamic shared memory, the most is %zu", bytes,
                  k_dyn_optin_max);
        return cudaErrorInvalidValue;
    }
    std::lock_guard<std::mutex> lk(g_attr_mu);
    g_max_dyn[kernel_id] = (size_t)bytes;
    return cudaSuccess;
}

static size_t max_dyn_shared(const void *kernel_id)
{
    std::lock_guard<std::mutex> lk(g_attr_mu);
    auto it = g_max_dyn.find(kernel_id);
    return it == g_max_dyn.end() || it->second < k_dyn_default ? k_dyn_default : it->second;
}

void launch(const char *name, const void *kernel_id, dim3 grid, dim3 bdim, size_t shmem,
            invoke_fn fn, void *closure)
{
    t_launches++;
    unsigned long long nt = (unsigned long long)bdim.x * bdim.y * bdim.z;
    if (!bdim.x || !bdim.y || !bdim.z || bdim.x > 1024 || bdim.y > 1024 || bdim.z > 64 ||
        nt > k_max_threads) {
        set_error(cudaErrorInvalidConfiguration,
                  "block dims (%u,%u,%u) outside the limits (each >= 1, <= (1024,1024,64), "
                  "<= 1024 threads)",
                  bdim.x, bdim.y, bdim.z);
        return;
    }
    if (!grid.x || !grid.y || !grid.z || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        set_error(cudaErrorInvalidConfiguration,
                  "grid dims (%u,%u,%u) outside the limits (each >= 1, <= "
                  "(2^31-1,65535,65535))",
                  grid.x, grid.y, grid.z);
        return;
    }
    size_t dyn_max = max_dyn_shared(kernel_id);
    if (shmem > dyn_max) {
        set_error(cudaErrorInvalidConfiguration,
                  "%zu bytes of dynamic shared memory, more than the %zu allowed%s", shmem, dyn_max,
                  dyn_max == k_dyn_default ? " without cudaFuncSetAttribute" : "");
        return;
    }
    if (!t_pool.get(0)) {
        set_error(cudaErrorMemoryAllocation, "no memory for fiber stacks");
        return;
    }
    if (t_blk) {
        set_error(cudaErrorLaunchFailure, "launched from inside a kernel");
        return;
    }
    std::vector<fiber> fibers(nt);
    std::vector<warp> warps((nt + 31) / 32);
    std::vector<unsigned char> dyn(shmem ? shmem : 1);
    block b{};
    b.kname = name;
    b.grid = grid;
    b.bdim = bdim;
    b.n = (unsigned)nt;
    b.f = &fibers;
    b.w = &warps;
    b.fn = fn;
    b.closure = closure;
    b.dyn = dyn.data();
    t_blk = &b;
    bool ok = true;
    for (unsigned z = 0; ok && z < grid.z; z++) {
        for (unsigned y = 0; ok && y < grid.y; y++) {
            for (unsigned x = 0; ok && x < grid.x; x++) {
                b.bidx = {x, y, z};
                memset(b.dyn, 0xff, dyn.size());
                ok = run_block(&b);
            }
        }
    }
    t_blk = nullptr;
    if (!ok) {
#if CUEMU_ASAN
        // Abandoned fibers leave poisoned frames on their stacks; clean them for the next launch.
        for (unsigned i = 0; i < b.n; i++) {
            __asan_unpoison_memory_region(t_pool.get(i), k_stack);
        }
#endif
        set_error(cudaErrorLaunchFailure, "%s", b.msg.c_str());
    }
}

} // namespace cuemu

extern "C" void cuemu_set_order(enum cuemu_order order, unsigned seed)
{
    cuemu::t_order = order;
    cuemu::t_seed = seed ? seed : 1;
}

extern "C" const char *cuemu_order_name(enum cuemu_order order)
{
    return order == CUEMU_FORWARD ? "forward" : order == CUEMU_REVERSE ? "reverse" : "shuffle";
}

extern "C" unsigned long long cuemu_switch_count(void)
{
    return cuemu::t_switches;
}

extern "C" unsigned long long cuemu_launch_count(void)
{
    return cuemu::t_launches;
}

void cuemu::count_launch()
{
    t_launches++;
}
