/*
 * coordinator/chunks_share: the text of an MPI job is read and tokenized by rank 0 only, and its
 * tokens broadcast (coordinator/chunks.h imc_chunks_share).
 */
#include <stdlib.h>
#include <string.h>

#include "coordinator/chunks.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/xfer.h"

enum imc_status imc_chunks_share(struct imc_chunks *c, const struct imc_comm *comm,
                                 enum imc_status st)
{
    if (!comm || imc_comm_size(comm) < 2) {
        return st;
    }
    const bool root = imc_comm_rank(comm) == 0;
    // rank 0's outcome and the chunks' shape: status, n_tokens, n_ctx, n_chunk, bos
    int64_t head[5] = {st, c->n_tokens, c->n_ctx, c->n_chunk, c->bos};
    IMC_TRY(imc_xfer_bcast(comm, IMC_GROUP_WORLD, 0, head, sizeof(head)));
    if (head[0] != IMC_OK) {
        return root ? st : (enum imc_status)head[0]; // rank 0 logged why
    }
    if (!root) {
        memset(c, 0, sizeof(*c));
        c->tokens = malloc((size_t)(head[1] > 0 ? head[1] : 1) * sizeof(int32_t));
        if (!c->tokens) {
            IMC_LOG_ERR("chunks: out of memory for %lld tokens", (long long)head[1]);
            return IMC_ERR_NOMEM; // the job ends: rank 0 waits in the broadcast under the watchdog
        }
        c->n_tokens = head[1];
        c->n_ctx = head[2];
        c->n_chunk = head[3];
        c->bos = (int32_t)head[4];
    }
    enum imc_status bst =
        imc_xfer_bcast(comm, IMC_GROUP_WORLD, 0, c->tokens, (size_t)c->n_tokens * sizeof(int32_t));
    if (bst != IMC_OK && !root) {
        imc_chunks_free(c);
    }
    return bst;
}
