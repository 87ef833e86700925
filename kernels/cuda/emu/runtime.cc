/*
 * kernels/cuda/emu/runtime: the CUDA runtime API subset of the emulator (cuemu.h) on host
 * memory: allocation (new memory filled with 0xFF so that reads of unwritten device memory
 * show), copies, memset, synchronization (everything is synchronous), one emulated device, and
 * the sticky launch error with its message. The error state is per host thread, as in CUDA.
 *
 * Device memory limit: IMC_CUEMU_MEM_LIMIT=<bytes> in the environment caps the bytes allocated
 * at once (read at each cudaMalloc; unset or 0: no cap), so that tests see cudaMalloc fail with
 * cudaErrorMemoryAllocation as on a full device. The count of allocated bytes is process-wide,
 * as a device's memory is; each block carries its size in a 16-byte header before the pointer.
 * The op table's buffers, which the emulator maps itself (to close them to the host between
 * ops), count against the same cap through cuemu_mem_take / cuemu_mem_give.
 *
 * Device spans: every cudaMalloc block, and every op table buffer (cuemu_dev_track), is noted
 * with its extent, so that the emulated libraries (cuBLAS: cublas.cc) can tell device memory
 * from host memory as the device's address space does (cuemu::dev_has).
 */
#include "kernels/cuda/emu/cuemu.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

namespace cuemu
{

namespace
{
thread_local cudaError_t t_err = cudaSuccess; // sticky until cudaGetLastError
thread_local cudaError_t t_msg_err = cudaSuccess;
thread_local char t_msg[1024];

constexpr size_t HDR = 16;     // size header before each block (keeps 16-byte alignment)
std::atomic<size_t> g_used{0}; // the emulated device's allocated bytes (process-wide)
std::atomic<size_t> g_peak{0}; // the most g_used held since the last cuemu_mem_peak_reset

// The device spans: start -> bytes (process-wide, as a device's address space).
std::mutex g_span_mu;
std::map<uintptr_t, size_t> g_spans;

void span_note(const void *p, size_t bytes, bool on)
{
    const std::lock_guard<std::mutex> lock(g_span_mu);
    if (on) {
        g_spans[(uintptr_t)p] = bytes;
    } else {
        g_spans.erase((uintptr_t)p);
    }
}

// Raises g_peak to used.
void note_peak(size_t used)
{
    size_t p = g_peak.load();
    while (used > p && !g_peak.compare_exchange_weak(p, used)) {
    }
}

// IMC_CUEMU_MEM_LIMIT in bytes, or 0 (no limit) when unset or not a number.
size_t mem_limit()
{
    const char *v = getenv("IMC_CUEMU_MEM_LIMIT");
    if (!v || !*v) {
        return 0;
    }
    char *end = nullptr;
    const unsigned long long x = strtoull(v, &end, 10);
    return *end == '\0' ? (size_t)x : 0;
}
} // namespace

bool dev_has(const void *p, size_t bytes)
{
    const uintptr_t a = (uintptr_t)p;
    const std::lock_guard<std::mutex> lock(g_span_mu);
    auto it = g_spans.upper_bound(a); // the first span that starts after p
    if (it == g_spans.begin()) {
        return false;
    }
    --it;
    return a - it->first <= it->second && bytes <= it->second - (a - it->first);
}

void set_error(cudaError_t err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_msg, sizeof(t_msg), fmt, ap);
    va_end(ap);
    t_msg_err = err;
    if (t_err == cudaSuccess) {
        t_err = err;
    }
}

} // namespace cuemu

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    *p = nullptr;
    const size_t limit = cuemu::mem_limit();
    const size_t used = cuemu::g_used.fetch_add(bytes) + bytes;
    if (limit && used > limit) {
        cuemu::g_used.fetch_sub(bytes);
        cuemu::set_error(cudaErrorMemoryAllocation,
                         "cudaMalloc: out of memory (%zu bytes; %zu of IMC_CUEMU_MEM_LIMIT=%zu "
                         "in use)",
                         bytes, used - bytes, limit);
        return cudaErrorMemoryAllocation;
    }
    unsigned char *b = (unsigned char *)malloc(cuemu::HDR + (bytes ? bytes : 1));
    if (!b) {
        cuemu::g_used.fetch_sub(bytes);
        cuemu::set_error(cudaErrorMemoryAllocation, "cudaMalloc: out of memory (%zu bytes)", bytes);
        return cudaErrorMemoryAllocation;
    }
    cuemu::note_peak(used);
    memcpy(b, &bytes, sizeof(bytes));
    memset(b + cuemu::HDR, 0xff, bytes);
    *p = b + cuemu::HDR;
    cuemu::span_note(*p, bytes, true);
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (p) {
        cuemu::span_note(p, 0, false);
        unsigned char *b = (unsigned char *)p - cuemu::HDR;
        size_t bytes;
        memcpy(&bytes, b, sizeof(bytes));
        cuemu::g_used.fetch_sub(bytes);
        free(b);
    }
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free, size_t *total)
{
    const size_t limit = cuemu::mem_limit(), used = cuemu::g_used.load();
    *total = limit ? limit : (size_t)1 << 40;
    *free = used < *total ? *total - used : 0;
    return cudaSuccess;
}

extern "C" unsigned long long cuemu_mem_used(void)
{
    return cuemu::g_used.load();
}

extern "C" int cuemu_mem_take(unsigned long long bytes)
{
    const size_t limit = cuemu::mem_limit();
    const size_t used = cuemu::g_used.fetch_add(bytes) + bytes;
    if (limit && used > limit) {
        cuemu::g_used.fetch_sub(bytes);
        return 0;
    }
    cuemu::note_peak(used);
    return 1;
}

extern "C" void cuemu_dev_track(const void *p, unsigned long long bytes, int on)
{
    cuemu::span_note(p, (size_t)bytes, on != 0);
}

extern "C" unsigned long long cuemu_mem_peak(void)
{
    return cuemu::g_peak.load();
}

extern "C" void cuemu_mem_peak_reset(void)
{
    cuemu::g_peak.store(cuemu::g_used.load());
}

extern "C" void cuemu_mem_give(unsigned long long bytes)
{
    cuemu::g_used.fetch_sub(bytes);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
    (void)kind;
    if (n) {
        memmove(dst, src, n);
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    (void)stream;
    return cudaMemcpy(dst, src, n, kind);
}

cudaError_t cudaMemset(void *p, int v, size_t n)
{
    if (n) {
        memset(p, v, n);
    }
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t stream)
{
    (void)stream;
    return cudaMemset(p, v, n);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    (void)stream;
    return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream)
{
    (void)stream;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1; // the emulated device
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev)
{
    if (dev != 0) {
        cuemu::set_error(cudaErrorInvalidValue, "cudaSetDevice(%d): the emulator has device 0",
                         dev);
        return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceGetPCIBusId(char *buf, int len, int dev)
{
    if (dev != 0 || len < 1) {
        cuemu::set_error(cudaErrorInvalidValue,
                         "cudaDeviceGetPCIBusId(%d, len %d): the emulator has device 0", dev, len);
        return cudaErrorInvalidValue;
    }
    snprintf(buf, (size_t)len, "00000000:00:00.0");
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = cuemu::t_err;
    cuemu::t_err = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void)
{
    return cuemu::t_err;
}

const char *cudaGetErrorString(cudaError_t err)
{
    if (err != cudaSuccess && err == cuemu::t_msg_err) {
        return cuemu::t_msg;
    }
    switch (err) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorNotReady:
        return "device not ready";
    case cudaErrorLaunchFailure:
        return "unspecified launch failure";
    case cudaErrorIllegalAddress:
        return "an illegal memory access was encountered";
    }
    return "unknown error";
}
