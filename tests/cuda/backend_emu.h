/*
 * tests/cuda/backend_emu: the engine's op table (kernels/backend.h) on the emulated CUDA
 * launchers imc_cuemu_* (kernels/cuda/kern_decl.h), so that the whole forward pass runs on the
 * .cu kernels in tests (issue 13 item 5). Test infrastructure, not a backend of the program.
 *
 * In the emulator "device" memory is host memory and launches are synchronous
 * (kernels/cuda/emu/cuemu.h), so this table hands the engine's host pointers straight to the
 * launchers. A table for a real GPU cannot: it must upload the activations and download the
 * results per op, or better keep the rank's slice of weights and the activations resident on
 * the device — that table is the next step of issue 13, not this one.
 *
 * Ops and their adaptation to the launchers:
 *   matmul        mmv in groups of <= IMC_CUDA_MMV_MAX_TOK tokens for every batch size (there
 *                 is no GEMM kernel yet: correct and slow, fine for the tiny test models); x rows
 *                 with a stride other than n_in are packed into a contiguous buffer and y is
 *                 scattered back to its stride ldy, since mmv takes neither stride.
 *   matmul_group  a loop over matmul.
 *   get_rows      the launcher wants the row count of W for its bounds, which the table's
 *                 signature lacks: max(ids) + 1 is passed (the engine checks token ids).
 *   rmsnorm, softmax, rope, swiglu, sqacc, attention, moe_route: the launcher of the same name
 *                 with the same arguments (every stride the engine passes has its launcher twin).
 * Types without a device decoder (imc_cuemu_supports_type false: the interleaved _rN types)
 * are unsupported (supports() false, matmul/get_rows return IMC_ERR_UNSUPPORTED). The ops
 * without a status (rmsnorm, softmax, rope, swiglu, sqacc) fill their output with NaN when the
 * launcher fails, so the engine's finiteness check reports it.
 *
 * Launches run on the calling thread in that thread's cuemu_set_order order; the engine calls
 * the table from the thread that runs imc_engine_forward.
 */
#ifndef IMC_TESTS_CUDA_BACKEND_EMU_H
#define IMC_TESTS_CUDA_BACKEND_EMU_H

#include "kernels/backend.h"

// The table, named "cuda-emu". Static, immutable.
const struct imc_backend *tcuda_backend_emu(void);

#endif // IMC_TESTS_CUDA_BACKEND_EMU_H
