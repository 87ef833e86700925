/*
 * tests/cuda/backend_emu: the engine's op table on the emulated CUDA launchers: the production
 * table of kernels/cuda/table.cu compiled for the emulator (imc_cuemu_backend, named "cuda"), so
 * that the whole forward pass runs in tests on the code a GPU rank runs (issue 13 item 5).
 *
 * In the emulator "device" memory is host memory (kernels/cuda/emu/cuemu.h), but the table
 * does not rely on it: it uploads weights and host arrays as it does on a device, and its own
 * buffers (the engine's activations) are closed to the host between ops. Its state
 * comes from its ctx_new, which the engine calls (a test calling ops directly creates it and
 * attaches it with imc_exec_set_backend_ctx). IMC_CUEMU_MEM_LIMIT caps the emulated device
 * memory. Launches run on the calling thread in that thread's cuemu_set_order order.
 */
#ifndef IMC_TESTS_CUDA_BACKEND_EMU_H
#define IMC_TESTS_CUDA_BACKEND_EMU_H

#include <stddef.h>

#include "kernels/backend.h"

// The table, named "cuda-emu". Static, immutable.
const struct imc_backend *tcuda_backend_emu(void);
// Its state's resident weights with host address in [lo, hi) (NULL, NULL: all): their number,
// their device bytes into *bytes (may be NULL) (kernels/cuda/kern_decl.h ctx_resident).
size_t tcuda_emu_resident(const void *ctx, const void *lo, const void *hi, size_t *bytes);
// What its ops copied since ctx_new (kernels/cuda/kern_decl.h ctx_traffic): bytes host -> device
// and device -> host, and the number of copies each way.
void tcuda_emu_traffic(const void *ctx, size_t *up, size_t *down, size_t *n_up, size_t *n_down);
// What its exchanges between ranks moved (backend.h peer_alltoallv): calls, bytes sent and
// received.
void tcuda_emu_peer(const void *ctx, size_t *n_peer, size_t *out, size_t *in);
// The most device memory its state held since ctx_new (kernels/cuda/kern_decl.h ctx_mem: the sum
// of weights, buffers and scratch at its peak).
size_t tcuda_emu_mem_peak(const void *ctx);

#endif // IMC_TESTS_CUDA_BACKEND_EMU_H
