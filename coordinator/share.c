/*
 * coordinator/share: rank 0's bytes to every rank of the job (share.h).
 */
#include "coordinator/share.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/file.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/xfer.h"

enum imc_status imc_share_bytes(const struct imc_comm *comm, enum imc_status st, char **data,
                                size_t *size)
{
    if (!comm || imc_comm_size(comm) < 2) {
        return st;
    }
    const bool root = imc_comm_rank(comm) == 0;
    int64_t head[2] = {st, root && st == IMC_OK ? (int64_t)*size : 0};
    IMC_TRY(imc_xfer_bcast(comm, IMC_GROUP_WORLD, 0, head, sizeof(head)));
    if (head[0] != IMC_OK) {
        return (enum imc_status)head[0]; // logged on rank 0
    }
    if (!root) {
        *size = (size_t)head[1];
        *data = malloc(*size + 1);
        if (!*data) {
            IMC_LOG_ERR("out of memory for %zu bytes from rank 0", *size);
            return IMC_ERR_NOMEM; // the job ends: rank 0 waits under the watchdog
        }
        (*data)[*size] = '\0';
    }
    enum imc_status bst = imc_xfer_bcast(comm, IMC_GROUP_WORLD, 0, *data, *size);
    if (bst != IMC_OK && !root) {
        free(*data);
        *data = NULL;
    }
    return bst;
}

enum imc_status imc_share_file(const struct imc_comm *comm, const char *path, char **data,
                               size_t *size)
{
    *data = NULL;
    *size = 0;
    const bool root = !comm || imc_comm_rank(comm) == 0;
    enum imc_status st = root ? imc_file_read_all(path, data, size) : IMC_OK;
    st = imc_share_bytes(comm, st, data, size);
    if (st != IMC_OK) {
        free(*data);
        *data = NULL;
    }
    return st;
}
