/*
 * kernels/cuda/emu/cuemu_api: the CUDA emulator's controls for tests (plain C).
 *
 * The emulator (kernels/cuda/emu/cuemu.h, fiber.cc, runtime.cc) runs the kernels of
 * kernels/cuda/<op>.cu on the CPU for tests; see cuemu.h. A test picks the order in which the
 * threads of a block are resumed (forward, reverse, or a seeded shuffle); a kernel that lacks a
 * __syncthreads gives a wrong result in at least one order, so the tests run every kernel in
 * all of them. The order is per calling host thread (test infrastructure state, kept here).
 */
#ifndef IMC_KERNELS_CUDA_EMU_CUEMU_API_H
#define IMC_KERNELS_CUDA_EMU_CUEMU_API_H

#ifdef __cplusplus
extern "C" {
#endif

enum cuemu_order {
    CUEMU_FORWARD, // threads resumed in increasing linear threadIdx (the default)
    CUEMU_REVERSE, // decreasing linear threadIdx
    CUEMU_SHUFFLE, // a new pseudo-random permutation per pass, from the seed
};
#define CUEMU_ORDER_COUNT 3

// Sets the resume order of the calling host thread's later launches; seed drives SHUFFLE.
void cuemu_set_order(enum cuemu_order order, unsigned seed);
// "forward", "reverse", "shuffle".
const char *cuemu_order_name(enum cuemu_order order);
// Context switches the calling host thread's launches made so far (for cost figures).
unsigned long long cuemu_switch_count(void);
// Kernel launches the calling host thread made so far (valid or not); a product of the emulated
// cuBLAS counts as one.
unsigned long long cuemu_launch_count(void);
// Products the emulated cuBLAS computed for the calling host thread so far (cublasGemmEx calls
// that returned CUBLAS_STATUS_SUCCESS with m, n > 0; kernels/cuda/emu/cuemu_cublas.h).
unsigned long long cuemu_cublas_calls(void);
// Bytes of emulated device memory allocated now (process-wide; runtime.cc), for leak checks.
unsigned long long cuemu_mem_used(void);
// Counts bytes of emulated device memory allocated elsewhere (the op table's mapped buffers,
// kernels/cuda/table_ctx.cu) against IMC_CUEMU_MEM_LIMIT: 0 and nothing counted when they do
// not fit, else 1; cuemu_mem_give gives them back.
int cuemu_mem_take(unsigned long long bytes);
void cuemu_mem_give(unsigned long long bytes);
// Notes (on = 1) or forgets (on = 0) [p, p + bytes) as emulated device memory that cudaMalloc
// did not allocate (the op table's mapped buffers), for the emulated libraries' pointer checks.
void cuemu_dev_track(const void *p, unsigned long long bytes, int on);
// The most bytes of emulated device memory allocated at once since the last
// cuemu_mem_peak_reset (which sets it to what is allocated then).
unsigned long long cuemu_mem_peak(void);
void cuemu_mem_peak_reset(void);

#ifdef __cplusplus
}
#endif

#endif // IMC_KERNELS_CUDA_EMU_CUEMU_API_H
