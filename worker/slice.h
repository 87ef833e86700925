/*
 * worker/slice: the bytes of the weights one rank's engine reads — its layers' tensors, only its
 * own experts' slices of the routed-expert tensors, the embedding on the first stage, the head
 * on the last (DESIGN.md §6 "Placement": each rank maps only its own tensors). Used to place
 * them on the rank's NUMA node and to measure what the rank holds resident.
 *
 * Invariants: ranges point into the model's GGUF mapping (borrowed; valid while the model is),
 * sorted by address, page-aligned outwards and merged, so no page is counted twice.
 */
#ifndef IMC_WORKER_SLICE_H
#define IMC_WORKER_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "model/arch.h"

struct imc_slice_range {
    const char *p; // first byte (page-aligned)
    size_t len;    // bytes (whole pages)
};

struct imc_slice {
    struct imc_slice_range *r; // [n] (owned)
    int64_t n;
    uint64_t bytes;            // the tensor bytes the rank reads (before page rounding)
};

struct imc_slice_spec {
    int64_t layer_begin, layer_end;   // layers [begin, end)
    int64_t expert_begin, expert_end; // own routed experts [begin, end)
    bool embedding;                   // token_embd (first stage)
    bool head;                        // output_norm + output (last stage)
};

// Builds the slice of m described by spec in *out (free with imc_slice_free). IMC_ERR_NOMEM.
enum imc_status imc_slice_init(struct imc_slice *out, const struct imc_model *m,
                               const struct imc_slice_spec *spec);
void imc_slice_free(struct imc_slice *s); // safe on a zeroed struct

// Pages of the slice mapped in this process (resident), in bytes. IMC_ERR_UNSUPPORTED (not
// logged) where the kernel does not tell (no /proc/self/pagemap).
enum imc_status imc_slice_resident(const struct imc_slice *s, uint64_t *bytes);

#endif // IMC_WORKER_SLICE_H
