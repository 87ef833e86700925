/*
 * kernels/cuda/emu/cuemu: a small CUDA emulation layer, so that the kernels of
 * kernels/cuda/<op>.cu, compiled by g++ as C++17 with IMC_CUDA_EMU defined, run on the CPU in
 * tests (issue 13 item 5, STYLE b.6). Test infrastructure, not a second implementation of any
 * kernel. Included through kernels/cuda/cuda_common.cuh, never directly.
 *
 * Execution model (runtime in fiber.cc):
 *   - A launch runs synchronously on the calling host thread; its blocks run one after another
 *     (z, y, x order). The threads of a block are user-level fibers (a hand-written switch on
 *     x86-64, ucontext elsewhere) on lazily mapped stacks of 192 KiB (448 KiB under ASan) above
 *     a 64 KiB guard: a kernel's locals past that crash on the guard; at most 1024 threads.
 *   - A fiber runs until it exits or waits at __syncthreads or a warp op. At the start and after
 *     each __syncthreads the threads are queued in the order set by cuemu_set_order (forward,
 *     reverse, seeded shuffle); when a warp op completes its lanes are queued first, so a warp
 *     runs ahead of the others up to the next barrier. Code that misses a barrier therefore
 *     reads stale data, or data overwritten too soon, in at least one order.
 *   - __syncthreads: every thread of the block must arrive at the same call site (file:line);
 *     a thread that exits while others wait, or threads at different barriers, abort the launch
 *     with a message naming the kernel, block, sites and thread counts (no hang).
 *   - Warp ops (__shfl*_sync, __ballot/any/all_sync, __syncwarp): warps are 32 consecutive linear
 *     thread ids; the op completes when every lane named in the mask has arrived at the same op
 *     with the same mask. A lane missing from its own mask, a mask naming lanes the block lacks,
 *     a shuffle reading a lane outside the mask, or lanes at different ops abort the launch.
 *   - __shared__ is `static`: correct because blocks run one at a time, but static shared memory
 *     keeps the previous block's values (it is not poisoned). Dynamic shared memory
 *     (IMC_DYN_SHARED) is a per-launch heap buffer of exactly the requested size (ASan sees
 *     overruns), filled with 0xFF before each block.
 *   - Atomics are plain read-modify-writes (fibers never run in parallel).
 *   - Launch limits are checked: block dims <= (1024, 1024, 64) and <= 1024 threads, grid dims
 *     <= (2^31-1, 65535, 65535), dynamic shared memory <= 48 KiB unless raised with
 *     cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), which
 *     accepts up to 163 KiB (sm_80, the smallest opt-in maximum of the built archs).
 *   - A failed launch sets the sticky error that cudaGetLastError returns; cudaGetErrorString
 *     gives the emulator's detailed message for it.
 *   - fp16/bf16 conversions are bit-exact with the device (round to nearest even, subnormals;
 *     every NaN becomes the canonical 0x7fff, as in CUDA's own host code in cuda_fp16.hpp).
 *   - Warp matrix ops (nvcuda::wmma: fragments of 16 x 16 x 16, fill, load, mma, store; the
 *     layout of a fragment's elements among the lanes is CUDA's to choose, so kernels never look
 *     inside one): each is a warp op (every lane of a full warp, the same pointer and ldm; the
 *     device's alignment rules: pointer 32-byte aligned, ldm a multiple of 16 bytes). An operand
 *     fragment holds the whole tile in every lane; an accumulator holds a lane's share of the
 *     elements (element e of the row-major tile in lane e % 32), which that lane alone computes
 *     and stores, so a lane that reads another's stored elements without a barrier reads stale
 *     data in some order. mma_sync sums each output as one fmaf chain over k = 0 .. 15 from the
 *     accumulator's value: with f16 or bf16 inputs the products are exact in f32, so the bits are
 *     those of a scalar fmaf loop; the device's tensor cores add in an order (and, by published
 *     measurements, with a truncating adder) of their own, so device tests need a tolerance.
 *   - Fast-math intrinsics are the exact libm functions (__expf = expf, rsqrtf = 1/sqrtf,
 *     __fdividef = /): the device's results differ by a few ulp, so device tests need a
 *     tolerance where an emulated test may be bitwise.
 *   - Two libraries, each in a header of its own included by the one .cu that calls it: NCCL's
 *     grouped send/receive (cuemu_nccl.h, peer.cu) and cuBLAS's cublasGemmEx (cuemu_cublas.h,
 *     blas.cu), which requires its operands in device memory (dev_has) and counts as a launch.
 * Not emulated: streams and events (everything is synchronous), cooperative groups, warp-level
 * matrix ops other than the wmma subset, texture/surface memory, independent thread scheduling
 * inside a warp (lanes between warp ops run in scheduler order, not in lock step), memory-model
 * races between blocks (blocks never overlap).
 */
#ifndef IMC_KERNELS_CUDA_EMU_CUEMU_H
#define IMC_KERNELS_CUDA_EMU_CUEMU_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/cuda/emu/cuemu_api.h"

// ---- qualifiers -----------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

// ---- vector and index types -----------------------------------------------------------------
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz)
    {
    }
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z)
    {
    }
};
struct float2 {
    float x, y;
};
struct float4 {
    float x, y, z, w;
};
struct int2 {
    int x, y;
};
struct int4 {
    int x, y, z, w;
};
struct uint2 {
    unsigned x, y;
};
struct uint4 {
    unsigned x, y, z, w;
};
inline float2 make_float2(float x, float y)
{
    return {x, y};
}
inline float4 make_float4(float x, float y, float z, float w)
{
    return {x, y, z, w};
}
inline int2 make_int2(int x, int y)
{
    return {x, y};
}
inline int4 make_int4(int x, int y, int z, int w)
{
    return {x, y, z, w};
}
inline uint2 make_uint2(unsigned x, unsigned y)
{
    return {x, y};
}
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w)
{
    return {x, y, z, w};
}

// ---- runtime API subset (runtime.cc) ----------------------------------------------------------
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct CUstream_st;
typedef struct CUstream_st *cudaStream_t;

cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
// The emulated device's memory: total IMC_CUEMU_MEM_LIMIT (2^40 bytes without one), free what
// the emulated allocations leave of it (no context of its own).
cudaError_t cudaMemGetInfo(size_t *free, size_t *total);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaMemset(void *p, int v, size_t n);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream); // cudaSuccess: the work is done at once
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int dev); // the emulated device is 0
cudaError_t cudaDeviceGetPCIBusId(char *buf, int len, int dev);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t err);

namespace cuemu
{

// One launch (fiber.cc). kernel_id identifies the kernel for cudaFuncSetAttribute.
using invoke_fn = void (*)(void *closure);
void launch(const char *name, const void *kernel_id, dim3 grid, dim3 block, size_t shmem,
            invoke_fn fn, void *closure);
cudaError_t set_max_dyn_shared(const void *kernel_id, int bytes);
// Whether [p, p + bytes) lies in one emulated device allocation (runtime.cc: cudaMalloc's
// blocks and the spans noted by cuemu_dev_track): the emulated libraries' test of a device
// pointer.
bool dev_has(const void *p, size_t bytes);
// Counts a library's product (the emulated cuBLAS's GEMM) as one launch of the calling thread,
// as the device runs at least one kernel for it (fiber.cc).
void count_launch();
// Sets the calling thread's sticky error (if none is set) and the message cudaGetErrorString
// gives for err (runtime.cc).
void set_error(cudaError_t err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// The calling fiber's coordinates and block state.
const uint3 &thread_idx();
const uint3 &block_idx();
const dim3 &block_dim();
const dim3 &grid_dim();
void *dyn_shared();
void syncthreads(const char *file, int line);

enum warp_kind {
    W_SHFL_IDX,
    W_SHFL_UP,
    W_SHFL_DOWN,
    W_SHFL_XOR,
    W_BALLOT,
    W_ANY,
    W_ALL,
    W_SYNC,
    W_MMA // a warp matrix op (nvcuda::wmma below): lane 0's value to every lane
};
uint64_t warp_op(warp_kind kind, unsigned mask, uint64_t val, int param, int width);
unsigned active_mask();
// A warp matrix op of the calling lane (op: its name), its warp's meeting point: every lane of
// a full warp arrives at the same op with the same ptr and ldm. With elem > 0, ptr must be
// 32-byte aligned and ldm (in elements of elem bytes) a multiple of 16 bytes, as the device
// requires. Fails the launch otherwise.
void mma_point(const char *op, const void *ptr, unsigned ldm, size_t elem);

template <class... P, class... A>
void launch_kernel(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shmem,
                   A &&...args)
{
    struct closure {
        void (*k)(P...);
        std::tuple<std::decay_t<P>...> a;
    };
    closure c{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
    launch(
        name, reinterpret_cast<const void *>(kernel), grid, block, shmem,
        [](void *p) {
            closure *cl = static_cast<closure *>(p);
            std::apply(cl->k, cl->a);
        },
        &c);
}

template <class T> T shfl(warp_kind kind, unsigned mask, T var, int param, int width)
{
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of T");
    uint64_t u = 0;
    std::memcpy(&u, &var, sizeof(T));
    u = warp_op(kind, mask, u, param, width);
    T r;
    std::memcpy(&r, &u, sizeof(T));
    return r;
}

} // namespace cuemu

template <class K> cudaError_t cudaFuncSetAttribute(K *kernel, cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) {
        return cudaErrorInvalidValue;
    }
    return cuemu::set_max_dyn_shared(reinterpret_cast<const void *>(kernel), value);
}

#define threadIdx (::cuemu::thread_idx())
#define blockIdx (::cuemu::block_idx())
#define blockDim (::cuemu::block_dim())
#define gridDim (::cuemu::grid_dim())
#define warpSize 32
#define __syncthreads() ::cuemu::syncthreads(__FILE__, __LINE__)

// ---- warp ops ---------------------------------------------------------------------------------
template <class T> T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32)
{
    return cuemu::shfl(cuemu::W_SHFL_IDX, mask, var, src_lane, width);
}
template <class T> T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32)
{
    return cuemu::shfl(cuemu::W_SHFL_UP, mask, var, (int)delta, width);
}
template <class T> T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32)
{
    return cuemu::shfl(cuemu::W_SHFL_DOWN, mask, var, (int)delta, width);
}
template <class T> T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32)
{
    return cuemu::shfl(cuemu::W_SHFL_XOR, mask, var, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int pred)
{
    return (unsigned)cuemu::warp_op(cuemu::W_BALLOT, mask, pred != 0, 0, 32);
}
inline int __any_sync(unsigned mask, int pred)
{
    return (int)cuemu::warp_op(cuemu::W_ANY, mask, pred != 0, 0, 32);
}
inline int __all_sync(unsigned mask, int pred)
{
    return (int)cuemu::warp_op(cuemu::W_ALL, mask, pred != 0, 0, 32);
}
inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    (void)cuemu::warp_op(cuemu::W_SYNC, mask, 0, 0, 32);
}
inline unsigned __activemask()
{
    return cuemu::active_mask();
}

// ---- atomics (fibers never run in parallel: plain read-modify-write) ---------------------------
template <class T, class F> inline T cuemu_rmw(T *p, F f)
{
    T old = *p;
    *p = f(old);
    return old;
}
template <class T> inline T cuemu_atomic_cas(T *p, T cmp, T v)
{
    return cuemu_rmw(p, [cmp, v](T o) { return o == cmp ? v : o; });
}
// The overloads CUDA has: NAME(T *p, T v) storing EXPR of the old value o and v.
#define CUEMU_ATOMIC(name, T, expr)                                                                \
    inline T name(T *p, T v)                                                                       \
    {                                                                                              \
        return cuemu_rmw(p, [v](T o) { return expr; });                                            \
    }
CUEMU_ATOMIC(atomicAdd, int, o + v)
CUEMU_ATOMIC(atomicAdd, unsigned, o + v)
CUEMU_ATOMIC(atomicAdd, unsigned long long, o + v)
CUEMU_ATOMIC(atomicAdd, float, o + v)
CUEMU_ATOMIC(atomicAdd, double, o + v)
CUEMU_ATOMIC(atomicMax, int, o > v ? o : v)
CUEMU_ATOMIC(atomicMax, unsigned, o > v ? o : v)
CUEMU_ATOMIC(atomicMin, int, o < v ? o : v)
CUEMU_ATOMIC(atomicMin, unsigned, o < v ? o : v)
CUEMU_ATOMIC(atomicMin, unsigned long long, o < v ? o : v)
#undef CUEMU_ATOMIC
template <class T> inline T cuemu_atomic_exch(T *p, T v)
{
    return cuemu_rmw(p, [v](T) { return v; });
}
inline int atomicExch(int *p, int v)
{
    return cuemu_atomic_exch(p, v);
}
inline unsigned atomicExch(unsigned *p, unsigned v)
{
    return cuemu_atomic_exch(p, v);
}
inline float atomicExch(float *p, float v)
{
    return cuemu_atomic_exch(p, v);
}
inline int atomicCAS(int *p, int cmp, int v)
{
    return cuemu_atomic_cas(p, cmp, v);
}
inline unsigned atomicCAS(unsigned *p, unsigned cmp, unsigned v)
{
    return cuemu_atomic_cas(p, cmp, v);
}
inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long cmp,
                                    unsigned long long v)
{
    return cuemu_atomic_cas(p, cmp, v);
}

// ---- bit casts, integer intrinsics, math --------------------------------------------------------
template <class To, class From> inline To cuemu_bits(From f)
{
    static_assert(sizeof(To) == sizeof(From), "bit cast size");
    To t;
    std::memcpy(&t, &f, sizeof(To));
    return t;
}
inline unsigned __float_as_uint(float f)
{
    return cuemu_bits<unsigned>(f);
}
inline float __uint_as_float(unsigned u)
{
    return cuemu_bits<float>(u);
}
inline int __float_as_int(float f)
{
    return cuemu_bits<int>(f);
}
inline float __int_as_float(int i)
{
    return cuemu_bits<float>(i);
}
inline long long __double_as_longlong(double d)
{
    return cuemu_bits<long long>(d);
}
inline double __longlong_as_double(long long i)
{
    return cuemu_bits<double>(i);
}
inline int __popc(unsigned x)
{
    return __builtin_popcount(x);
}
inline int __popcll(unsigned long long x)
{
    return __builtin_popcountll(x);
}
inline int __clz(int x)
{
    return x == 0 ? 32 : __builtin_clz((unsigned)x);
}
inline int __ffs(int x)
{
    return __builtin_ffs(x);
}
template <class T> inline T __ldg(const T *p)
{
    return *p;
}
inline float __fmaf_rn(float a, float b, float c)
{
    return std::fma(a, b, c);
}
// One rounding each: plain operations, which the host build (x86-64 baseline, no FMA
// instruction) cannot contract into an fma; qdecode.cuh's mul_rn and add_rn assume the same.
inline float __fmul_rn(float a, float b)
{
    return a * b;
}
inline float __fadd_rn(float a, float b)
{
    return a + b;
}
inline float rsqrtf(float x)
{
    return 1.0f / std::sqrt(x);
}
inline double rsqrt(double x)
{
    return 1.0 / std::sqrt(x);
}
inline float __expf(float x)
{
    return std::exp(x);
}
inline float __logf(float x)
{
    return std::log(x);
}
inline float __powf(float x, float y)
{
    return std::pow(x, y);
}
inline float __sinf(float x)
{
    return std::sin(x);
}
inline float __cosf(float x)
{
    return std::cos(x);
}
inline float __fdividef(float a, float b)
{
    return a / b;
}
inline float __saturatef(float x)
{
    return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x != x ? 0.0f : x;
}
// CUDA's device min/max overloads.
#define CUEMU_MINMAX(T)                                                                            \
    inline T min(T a, T b)                                                                         \
    {                                                                                              \
        return a < b ? a : b;                                                                      \
    }                                                                                              \
    inline T max(T a, T b)                                                                         \
    {                                                                                              \
        return a > b ? a : b;                                                                      \
    }
CUEMU_MINMAX(int)
CUEMU_MINMAX(unsigned)
CUEMU_MINMAX(long)
CUEMU_MINMAX(unsigned long)
CUEMU_MINMAX(long long)
CUEMU_MINMAX(unsigned long long)
#undef CUEMU_MINMAX
inline float min(float a, float b)
{
    return std::fmin(a, b);
}
inline float max(float a, float b)
{
    return std::fmax(a, b);
}
inline double min(double a, double b)
{
    return std::fmin(a, b);
}
inline double max(double a, double b)
{
    return std::fmax(a, b);
}

// ---- fp16 / bf16, bit-exact with the device --------------------------------------------------
inline unsigned short cuemu_f32_to_f16(float f)
{
    uint32_t x = cuemu_bits<uint32_t>(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) {
        return 0x7fff; // every NaN: the canonical one (cuda_fp16.hpp)
    }
    if (ax >= 0x477ff000u) { // rounds to >= 65520: inf
        return (unsigned short)(sign | 0x7c00u);
    }
    if (ax < 0x38800000u) {      // half subnormal or zero: round m * 2^(e-126) to an integer
        if (ax <= 0x33000000u) { // <= 2^-25: ties to even give 0
            return (unsigned short)sign;
        }
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; // 14..24
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        r += rem > half || (rem == half && (r & 1u));
        return (unsigned short)(sign | r);
    }
    uint32_t rounded = ax + 0xfffu + ((ax >> 13) & 1u);
    return (unsigned short)(sign | ((rounded - 0x38000000u) >> 13));
}
inline float cuemu_f16_to_f32(unsigned short h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;
    if (e == 0x1fu) {
        return cuemu_bits<float>(m ? 0x7fffffffu : sign | 0x7f800000u);
    }
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-8f; // exact: m * 2^-24
        return (h & 0x8000u) ? -v : v;
    }
    return cuemu_bits<float>(sign | ((e + 112u) << 23) | (m << 13));
}
inline unsigned short cuemu_f32_to_bf16(float f)
{
    uint32_t x = cuemu_bits<uint32_t>(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return 0x7fff;
    }
    return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
inline float cuemu_bf16_to_f32(unsigned short h)
{
    return cuemu_bits<float>((uint32_t)h << 16);
}

// The two 16-bit float types, with CUDA's conversion and bit-access functions.
#define CUEMU_F16_TYPE(T, to16, to32, ushort_as, as_ushort, f2t_rn, f2t, t2f)                      \
    struct T {                                                                                     \
        unsigned short __x;                                                                        \
        T() = default;                                                                             \
        T(float f) : __x(to16(f))                                                                  \
        {                                                                                          \
        }                                                                                          \
        operator float() const                                                                     \
        {                                                                                          \
            return to32(__x);                                                                      \
        }                                                                                          \
    };                                                                                             \
    inline T ushort_as(unsigned short u)                                                           \
    {                                                                                              \
        T h;                                                                                       \
        h.__x = u;                                                                                 \
        return h;                                                                                  \
    }                                                                                              \
    inline unsigned short as_ushort(T h)                                                           \
    {                                                                                              \
        return h.__x;                                                                              \
    }                                                                                              \
    inline T f2t_rn(float f)                                                                       \
    {                                                                                              \
        return ushort_as(to16(f));                                                                 \
    }                                                                                              \
    inline T f2t(float f)                                                                          \
    {                                                                                              \
        return ushort_as(to16(f));                                                                 \
    }                                                                                              \
    inline float t2f(T h)                                                                          \
    {                                                                                              \
        return to32(h.__x);                                                                        \
    }
CUEMU_F16_TYPE(__half, cuemu_f32_to_f16, cuemu_f16_to_f32, __ushort_as_half, __half_as_ushort,
               __float2half_rn, __float2half, __half2float)
CUEMU_F16_TYPE(__nv_bfloat16, cuemu_f32_to_bf16, cuemu_bf16_to_f32, __ushort_as_bfloat16,
               __bfloat16_as_ushort, __float2bfloat16_rn, __float2bfloat16, __bfloat162float)
#undef CUEMU_F16_TYPE

// ---- warp matrix ops: the nvcuda::wmma subset the kernels use (see the top) ---------------------
namespace nvcuda
{
namespace wmma
{
struct matrix_a {
};
struct matrix_b {
};
struct accumulator {
};
struct row_major {
};
struct col_major {
};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment;
// An operand: the whole R x C tile (matrix_a: M x K, matrix_b: K x N) in every lane, row-major.
template <int R, int C, class T, class Layout> struct cuemu_operand {
    static_assert(R * C == 256, "the 16 x 16 x 16 shapes");
    float v[R * C];
};
template <int M, int N, int K, class T, class L>
struct fragment<matrix_a, M, N, K, T, L> : cuemu_operand<M, K, T, L> {
};
template <int M, int N, int K, class T, class L>
struct fragment<matrix_b, M, N, K, T, L> : cuemu_operand<K, N, T, L> {
};
// The accumulator: this lane's elements e = lane, lane + 32, ... of the row-major M x N tile.
template <int M, int N, int K> struct fragment<accumulator, M, N, K, float, void> {
    static_assert(M * N == 256, "the 16 x 16 x 16 shapes");
    float v[M * N / 32];
};

inline unsigned cuemu_lane()
{
    return (threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y) % 32;
}

template <int M, int N, int K>
inline void fill_fragment(fragment<accumulator, M, N, K, float, void> &f, float v)
{
    ::cuemu::mma_point("wmma::fill_fragment", nullptr, 0, 0);
    for (float &e : f.v) {
        e = v;
    }
}

// Element (r, c) of an R x C tile at p: row-major p[r·ldm + c], column-major p[r + c·ldm].
template <int R, int C, class T, class L>
inline void load_matrix_sync(cuemu_operand<R, C, T, L> &f, const T *p, unsigned ldm)
{
    static_assert(std::is_same<L, row_major>::value || std::is_same<L, col_major>::value,
                  "an operand's layout");
    ::cuemu::mma_point("wmma::load_matrix_sync", p, ldm, sizeof(T));
    for (int r = 0; r < R; r++) {
        for (int c = 0; c < C; c++) {
            f.v[r * C + c] =
                (float)(std::is_same<L, row_major>::value ? p[r * ldm + c] : p[r + c * ldm]);
        }
    }
}

template <int M, int N, int K>
inline void load_matrix_sync(fragment<accumulator, M, N, K, float, void> &f, const float *p,
                             unsigned ldm, layout_t l)
{
    ::cuemu::mma_point("wmma::load_matrix_sync", p, ldm, sizeof(float));
    for (int i = 0; i < M * N / 32; i++) {
        const int e = (int)cuemu_lane() + 32 * i, r = e / N, c = e % N;
        f.v[i] = l == mem_row_major ? p[r * ldm + c] : p[r + c * ldm];
    }
}

template <int M, int N, int K>
inline void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, float, void> &f,
                              unsigned ldm, layout_t l)
{
    ::cuemu::mma_point("wmma::store_matrix_sync", p, ldm, sizeof(float));
    for (int i = 0; i < M * N / 32; i++) {
        const int e = (int)cuemu_lane() + 32 * i, r = e / N, c = e % N;
        (l == mem_row_major ? p[r * ldm + c] : p[r + c * ldm]) = f.v[i];
    }
}

// d = a·b + c: each of this lane's outputs one fmaf chain over k from c's value.
template <int M, int N, int K, class T, class LA, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float, void> &d,
                     const fragment<matrix_a, M, N, K, T, LA> &a,
                     const fragment<matrix_b, M, N, K, T, LB> &b,
                     const fragment<accumulator, M, N, K, float, void> &c)
{
    ::cuemu::mma_point("wmma::mma_sync", nullptr, 0, 0);
    for (int i = 0; i < M * N / 32; i++) {
        const int e = (int)cuemu_lane() + 32 * i, r = e / N, col = e % N;
        float s = c.v[i];
        for (int k = 0; k < K; k++) {
            s = std::fma(a.v[r * K + k], b.v[k * N + col], s);
        }
        d.v[i] = s; // after c.v[i] is read: d may be c
    }
}
} // namespace wmma
} // namespace nvcuda

// ---- the launch and dynamic shared memory macros of cuda_common.cuh ----------------------------
#define CUEMU_LAUNCH(kernel, grid, block, shmem, stream, ...)                                      \
    ((void)(stream), ::cuemu::launch_kernel(#kernel, kernel, dim3(grid), dim3(block),              \
                                            (size_t)(shmem), ##__VA_ARGS__))
#define CUEMU_DYN_SHARED(T, name) T *name = static_cast<T *>(::cuemu::dyn_shared())

#endif // IMC_KERNELS_CUDA_EMU_CUEMU_H
