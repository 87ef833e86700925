/*
 * core/status: the status codes every action returns (STYLE b.4).
 *
 * Invariant: IMC_OK is 0; every other value is a failure class. The message describing a failure
 * is logged once, where it was found; callers only pass the code up.
 */
#ifndef IMC_CORE_STATUS_H
#define IMC_CORE_STATUS_H

enum imc_status {
    IMC_OK = 0,
    IMC_ERR_ARG,         // bad command line or argument
    IMC_ERR_IO,          // a file could not be opened, read or written
    IMC_ERR_FORMAT,      // bytes that do not follow the format (GGUF, imatrix, text)
    IMC_ERR_NOMEM,       // allocation failed or a size overflowed
    IMC_ERR_NUMERIC,     // NaN/Inf in activations or statistics
    IMC_ERR_CUDA,        // CUDA runtime or cuBLAS failure
    IMC_ERR_NCCL,        // NCCL failure
    IMC_ERR_MPI,         // MPI failure or a peer that died
    IMC_ERR_NUMA,        // hwloc/libnuma placement failure
    IMC_ERR_UNSUPPORTED, // valid input this build cannot handle
    IMC_ERR_CANCELLED,   // stopped on request
    IMC_ERR_INTERNAL,    // a broken invariant reported as a status
    IMC_STATUS_COUNT
};

// Returns a static, human-readable name of the status ("format error", ...).
const char *imc_status_str(enum imc_status st);

// Evaluates an expression returning enum imc_status; returns it from the caller on failure.
#define IMC_TRY(expr)                                                                              \
    do {                                                                                           \
        enum imc_status imc_try_st_ = (expr);                                                      \
        if (imc_try_st_ != IMC_OK) {                                                               \
            return imc_try_st_;                                                                    \
        }                                                                                          \
    } while (0)

#endif // IMC_CORE_STATUS_H
