/*
 * kernels/cuda/policy: the CUDA op table's choices (kernels/cuda/table.cu) that code outside
 * kernels/cuda needs to count the device memory a GPU rank takes (worker/engine_mem.c, for
 * `imc plan`): which kernel a matmul of n tokens runs, and the batch path's weight tile. Plain C.
 *
 * A matmul of up to IMC_CUDA_MMV_TOKENS tokens runs mmv; under --matmul q8 on weights other than
 * f32, one of up to IMC_CUDA_MMQ_TOKENS runs mmq; both straight on the weights, without scratch.
 * Larger ones take the batch path: rows of the weight dequantized into a tile of at most
 * IMC_CUDA_TILE_BYTES (f32, or bf16 under --matmul q8; f32 weights are used in place) and, under
 * --matmul q8, the activations rounded to bf16. The environment variables IMC_CUDA_MMV_TOKENS
 * (1 .. IMC_CUDA_MMV_MAX_TOK) and IMC_CUDA_MMQ_TOKENS (0 .. IMC_CUDA_MMQ_MAX_TOK) move the lines,
 * read when a table's context is made (scripts/gpu-check.sh compares them) and by `imc plan`.
 */
#ifndef IMC_KERNELS_CUDA_POLICY_H
#define IMC_KERNELS_CUDA_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#define IMC_CUDA_MMV_MAX_TOK 64 // most tokens per mmv call (in passes of 8)
#define IMC_CUDA_MMV_TOKENS 16
#define IMC_CUDA_MMQ_TOKENS 256
#define IMC_CUDA_MMQ_MAX_TOK (1 << 20)
#define IMC_CUDA_TILE_BYTES ((size_t)64 << 20)

// *out = the line the environment variable's value env gives, tokens in lo .. hi, or def where it
// is unset (NULL) or empty; false for anything else (the caller names the variable and range).
static inline bool imc_cuda_env_tokens(const char *env, int def, int lo, int hi, int *out)
{
    *out = def;
    if (!env || !*env) {
        return true;
    }
    char *end = NULL;
    const long v = strtol(env, &end, 10);
    if (*end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = (int)v;
    return true;
}

#endif // IMC_KERNELS_CUDA_POLICY_H
