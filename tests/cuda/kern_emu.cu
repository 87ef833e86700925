/*
 * tests/cuda/kern_emu: kernels that exercise the CUDA emulator (kernels/cuda/emu), compiled for
 * the emulator into tests/cuda/test_emu only. Each launcher takes host-visible (emulated device)
 * pointers and returns the launch status; declarations in test_emu.c.
 */
#include "kernels/cuda/cuda_common.cuh"

// Block sum by a shared-memory tree: needs every __syncthreads. out[block] = sum of its x.
static __global__ void block_sum_kernel(const int *x, int *out, int racy)
{
    __shared__ int s[1024];
    unsigned t = threadIdx.x, n = blockDim.x;
    s[t] = x[blockIdx.x * n + t];
    if (!racy) {
        __syncthreads();
    }
    for (unsigned h = n / 2; h > 0; h /= 2) {
        if (t < h) {
            s[t] += s[t + h];
        }
        __syncthreads();
    }
    if (t == 0) {
        out[blockIdx.x] = s[0];
    }
}

extern "C" enum imc_status imc_cuemu_test_block_sum(const int *x, int *out, int blocks, int n,
                                                    int racy)
{
    IMC_LAUNCH(block_sum_kernel, blocks, n, 0, NULL, x, out, racy);
    return imc_cuda_check_launch("block_sum_kernel");
}

// Two block sums in a row (of x, then of x²) through one shared array of warp partials. racy:
// without the barrier before the second sum writes its partials, so a warp that runs ahead
// overwrites partials of the first sum that other warps have not read yet (the warp-level
// hazard the emulator's run-ahead of a warp after a warp op exposes). out[2t + k] = sum k as
// thread t sees it.
static __device__ int warp_sum(int v)
{
    for (int d = 16; d > 0; d /= 2) {
        v += __shfl_xor_sync(0xffffffffu, v, d);
    }
    return v;
}

static __global__ void two_sums_kernel(const int *x, int *out, int racy)
{
    __shared__ int part[32];
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    const int a = x[threadIdx.x];
    for (int k = 0; k < 2; k++) {
        int v = warp_sum(k ? a * a : a);
        if (!racy || k == 0) {
            __syncthreads();
        }
        if (lane == 0) {
            part[warp] = v;
        }
        __syncthreads();
        v = lane < nw ? part[lane] : 0;
        out[2 * threadIdx.x + k] = warp_sum(v);
    }
}

extern "C" enum imc_status imc_cuemu_test_two_sums(const int *x, int *out, int n, int racy)
{
    IMC_LAUNCH(two_sums_kernel, 1, n, 0, NULL, x, out, racy);
    return imc_cuda_check_launch("two_sums_kernel");
}

// Every warp op on lane values v[i]; out has 12 ints per thread (see test_emu.c: expect_warp).
static __global__ void warp_ops_kernel(const int *v, int *out)
{
    unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int x = v[t];
    int *o = out + 12 * t;
    o[0] = __shfl_sync(0xffffffffu, x, 5);
    o[1] = __shfl_sync(0xffffffffu, x, (int)(t + 3), 8);
    o[2] = __shfl_up_sync(0xffffffffu, x, 3);
    o[3] = __shfl_up_sync(0xffffffffu, x, 2, 16);
    o[4] = __shfl_down_sync(0xffffffffu, x, 7);
    o[5] = __shfl_down_sync(0xffffffffu, x, 1, 4);
    o[6] = __shfl_xor_sync(0xffffffffu, x, 16);
    o[7] = __shfl_xor_sync(0xffffffffu, x, 3, 8);
    o[8] = (int)__ballot_sync(0xffffffffu, x & 1);
    o[9] = __any_sync(0xffffffffu, x > 90);
    o[10] = __all_sync(0xffffffffu, x >= 0);
    float f = (float)x;
    for (int d = 16; d > 0; d /= 2) {
        f += __shfl_xor_sync(0xffffffffu, f, d);
    }
    __syncwarp();
    o[11] = (int)f;
}

extern "C" enum imc_status imc_cuemu_test_warp_ops(const int *v, int *out, int bx, int by)
{
    IMC_LAUNCH(warp_ops_kernel, 1, dim3((unsigned)bx, (unsigned)by), 0, NULL, v, out);
    return imc_cuda_check_launch("warp_ops_kernel");
}

// A half-warp reduction with disjoint masks: lanes 0-15 and 16-31 each sum their own half.
static __global__ void half_warp_kernel(const int *v, int *out)
{
    unsigned t = threadIdx.x;
    unsigned mask = (t & 16) ? 0xffff0000u : 0x0000ffffu;
    int x = v[t];
    for (int d = 8; d > 0; d /= 2) {
        x += __shfl_xor_sync(mask, x, d);
    }
    out[t] = x;
}

extern "C" enum imc_status imc_cuemu_test_half_warp(const int *v, int *out)
{
    IMC_LAUNCH(half_warp_kernel, 1, 32, 0, NULL, v, out);
    return imc_cuda_check_launch("half_warp_kernel");
}

// Atomics from every thread of every block into acc: [0] int add, [1] unsigned add,
// [2..3] u64 add, [4] float add, [6..7] double add, [8] int max, [9] int min.
static __global__ void atomics_kernel(int *acc)
{
    int g = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    atomicAdd(&acc[0], g);
    atomicAdd(reinterpret_cast<unsigned *>(&acc[1]), 2u);
    atomicAdd(reinterpret_cast<unsigned long long *>(&acc[2]), 1ull << 33);
    atomicAdd(reinterpret_cast<float *>(&acc[4]), 0.5f);
    atomicAdd(reinterpret_cast<double *>(&acc[6]), 0.25);
    atomicMax(&acc[8], g * 7 % 1000);
    atomicMin(&acc[9], 1000 - g);
}

extern "C" enum imc_status imc_cuemu_test_atomics(int *acc, int blocks, int n)
{
    IMC_LAUNCH(atomics_kernel, blocks, n, 0, NULL, acc);
    return imc_cuda_check_launch("atomics_kernel");
}

// Dynamic shared memory: out[b*n + t] = first byte of the buffer as found (poison check, thread
// 0 only, -1 else) in out2, and the block's x reversed through shared memory in out.
static __global__ void dyn_reverse_kernel(const float *x, float *out, int *first_byte)
{
    IMC_DYN_SHARED(float, s);
    unsigned t = threadIdx.x, n = blockDim.x;
    if (t == 0) {
        first_byte[blockIdx.x] = reinterpret_cast<unsigned char *>(s)[0];
    }
    __syncthreads();
    s[t] = x[blockIdx.x * n + t];
    __syncthreads();
    out[blockIdx.x * n + t] = s[n - 1 - t];
}

extern "C" enum imc_status imc_cuemu_test_dyn_reverse(const float *x, float *out, int *first,
                                                      int blocks, int n, size_t shmem, int optin)
{
    if (optin) {
        IMC_CUDA_CHECK(cudaFuncSetAttribute(dyn_reverse_kernel,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
    }
    IMC_LAUNCH(dyn_reverse_kernel, blocks, n, shmem, NULL, x, out, first);
    return imc_cuda_check_launch("dyn_reverse_kernel");
}

// Broken kernels, one per mode: 0 threads exit before a barrier, 1 two barriers, 2 a lane not
// in its mask, 3 a shuffle reading a lane outside the mask, 4 lanes at different warp ops,
// 5 a mask naming lanes the block lacks, 6 a shuffle waiting for lanes that exited.
static __global__ void broken_kernel(int mode, int *out)
{
    unsigned t = threadIdx.x;
    if (mode == 0) {
        if (t >= 16) {
            return;
        }
        __syncthreads();
    } else if (mode == 1) {
        if (t & 1) {
            __syncthreads();
        } else {
            __syncthreads();
        }
    } else if (mode == 2) {
        out[t] = __shfl_sync(0x1u, (int)t, 0);
    } else if (mode == 3) {
        if (t < 16) {
            out[t] = __shfl_down_sync(0xffffu, (int)t, 8);
        }
    } else if (mode == 4) {
        out[t] = t < 8 ? __any_sync(0xffffffffu, 1) : __all_sync(0xffffffffu, 1);
    } else if (mode == 5) {
        out[t] = __ballot_sync(0xffffffffu, 1);
    } else if (t < 16) {
        out[t] = __shfl_sync(0xffffffffu, (int)t, 0);
    }
}

extern "C" enum imc_status imc_cuemu_test_broken(int mode, int *out, int n)
{
    IMC_LAUNCH(broken_kernel, 2, n, 0, NULL, mode, out);
    return imc_cuda_check_launch("broken_kernel");
}

extern "C" enum imc_status imc_cuemu_test_launch_dims(int *out, unsigned gx, unsigned gy,
                                                      unsigned bx, unsigned by, unsigned bz)
{
    IMC_LAUNCH(broken_kernel, dim3(gx, gy), dim3(bx, by, bz), 0, NULL, 2, out);
    return imc_cuda_check_launch("broken_kernel");
}

// Conversions: for each i, h16[i] = f32->f16 bits of f[i], b16[i] = f32->bf16 bits, and back:
// fh[i] = f16 bits i (i < 65536) -> f32, fb[i] = bf16 bits i -> f32.
static __global__ void convert_kernel(const float *f, unsigned short *h16, unsigned short *b16,
                                      float *fh, float *fb, int n)
{
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= n) {
        return;
    }
    h16[i] = __half_as_ushort(__float2half_rn(f[i]));
    b16[i] = __bfloat16_as_ushort(__float2bfloat16_rn(f[i]));
    if (i < 65536) {
        fh[i] = __half2float(__ushort_as_half((unsigned short)i));
        fb[i] = __bfloat162float(__ushort_as_bfloat16((unsigned short)i));
    }
}

extern "C" enum imc_status imc_cuemu_test_convert(const float *f, unsigned short *h16,
                                                  unsigned short *b16, float *fh, float *fb, int n)
{
    IMC_LAUNCH(convert_kernel, (n + 255) / 256, 256, 0, NULL, f, h16, b16, fh, fb, n);
    return imc_cuda_check_launch("convert_kernel");
}

// One warp's 16 x 16 x 16 product through the wmma subset. a, b: 16 x 16 bf16, c: 16 x 16 f32,
// all row-major, copied to shared memory in the layouts mode asks for:
//   0: A row-major, B column-major, C = A·B stored row-major;
//   1: A column-major, B row-major, C = A·B stored column-major (read back transposed here);
//   2: C loaded first (row-major, ldm 20): C += A·B;
//   3: a pointer 16 bytes off its alignment (refused); 4: lanes 0 .. 15 alone at mma_sync
//   (refused); 5: lane 0 passes another pointer (refused);
//   6: lane 0 reads the element lane 31 stores, with no __syncwarp between (stale in some order);
//   7: the same after __syncwarp.
// out[0 .. 256): C row-major; out[256 + lane]: what lane read in modes 6 and 7.
static __global__ void wmma_kernel(const __nv_bfloat16 *a, const __nv_bfloat16 *b, const float *c,
                                   float *out, int mode)
{
    using namespace nvcuda;
    __shared__ __align__(32) __nv_bfloat16 sa[16 * 16 + 16], sb[16 * 16];
    __shared__ __align__(32) float sc[16 * 20];
    const int lane = (int)threadIdx.x;
    for (int e = lane; e < 256; e += 32) {
        const int r = e / 16, k = e % 16;
        sa[mode == 1 ? r + 16 * k : e] = a[e];   // column-major A: (r, k) at r + 16·k
        sb[mode == 1 ? e : k * 16 + r] = b[e];   // column-major B: (r, k) of b at r·16 + k ...
        sc[r * 20 + k] = c[e];
    }
    __syncwarp();
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    if (mode == 2) {
        wmma::load_matrix_sync(acc, sc, 20, wmma::mem_row_major);
    } else {
        wmma::fill_fragment(acc, 0.0f);
    }
    const __nv_bfloat16 *pa = mode == 3 ? sa + 8 : mode == 5 && lane == 0 ? sa + 16 : sa;
    if (mode == 1) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, pa, 16);
        wmma::load_matrix_sync(fb, sb, 16);
        wmma::mma_sync(acc, fa, fb, acc);
        __syncwarp();
        wmma::store_matrix_sync(sc, acc, 16, wmma::mem_col_major);
    } else {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
        wmma::load_matrix_sync(fa, pa, 16);
        wmma::load_matrix_sync(fb, sb, 16);
        if (mode != 4 || lane < 16) {
            wmma::mma_sync(acc, fa, fb, acc);
        }
        __syncwarp();
        wmma::store_matrix_sync(sc, acc, 16, wmma::mem_row_major);
    }
    if (mode == 7) {
        __syncwarp();
    }
    out[256 + lane] = sc[lane == 0 ? 31 : lane];
    __syncwarp();
    for (int e = lane; e < 256; e += 32) {
        out[e] = mode == 1 ? sc[e % 16 * 16 + e / 16] : sc[e];
    }
}

extern "C" enum imc_status imc_cuemu_test_wmma(const unsigned short *a, const unsigned short *b,
                                               const float *c, float *out, int mode)
{
    IMC_LAUNCH(wmma_kernel, 1, 32, 0, NULL, (const __nv_bfloat16 *)a, (const __nv_bfloat16 *)b, c,
               out, mode);
    return imc_cuda_check_launch("wmma_kernel");
}

// ---- the emulated cuBLAS (kernels/cuda/emu/cuemu_cublas.h) ------------------------------------
#include "kernels/cuda/emu/cuemu_cublas.h"

// One cublasGemmEx on a fresh handle in math mode math (enumerators as ints, cuBLAS's values);
// returns the cublasStatus_t.
extern "C" int imc_cuemu_test_gemm_ex(int math, int transa, int transb, int m, int n, int k,
                                      float alpha, const void *a, int atype, int lda,
                                      const void *b, int btype, int ldb, float beta, void *c,
                                      int ctype, int ldc, int compute)
{
    cublasHandle_t h = nullptr;
    cublasStatus_t s = cuemu_cublas_create(&h);
    if (s == CUBLAS_STATUS_SUCCESS) {
        s = cuemu_cublas_set_math_mode(h, (cublasMath_t)math);
    }
    if (s == CUBLAS_STATUS_SUCCESS) {
        s = cuemu_cublas_gemm_ex(h, (cublasOperation_t)transa, (cublasOperation_t)transb, m, n, k,
                                 &alpha, a, (cudaDataType)atype, lda, b, (cudaDataType)btype, ldb,
                                 &beta, c, (cudaDataType)ctype, ldc,
                                 (cublasComputeType_t)compute, CUBLAS_GEMM_DEFAULT);
    }
    (void)cuemu_cublas_destroy(h);
    return (int)s;
}

// The calling thread's sticky error (cudaGetLastError: read and cleared), as an int.
extern "C" int imc_cuemu_test_last_error(void)
{
    return (int)cudaGetLastError();
}
