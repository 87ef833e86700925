#include "core/status.h"

const char *imc_status_str(enum imc_status st)
{
    static const char *const names[IMC_STATUS_COUNT] = {
        [IMC_OK] = "ok",
        [IMC_ERR_ARG] = "bad argument",
        [IMC_ERR_IO] = "I/O error",
        [IMC_ERR_FORMAT] = "format error",
        [IMC_ERR_NOMEM] = "out of memory",
        [IMC_ERR_NUMERIC] = "numeric error",
        [IMC_ERR_CUDA] = "CUDA error",
        [IMC_ERR_NCCL] = "NCCL error",
        [IMC_ERR_MPI] = "MPI error",
        [IMC_ERR_NUMA] = "NUMA placement error",
        [IMC_ERR_UNSUPPORTED] = "unsupported",
        [IMC_ERR_CANCELLED] = "cancelled",
        [IMC_ERR_INTERNAL] = "internal error",
    };
    if ((unsigned)st >= IMC_STATUS_COUNT) {
        return "unknown status";
    }
    return names[st];
}
