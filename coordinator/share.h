/*
 * coordinator/share: inputs read by world rank 0 only and sent to the other ranks of an MPI job
 * (README "Inputs from rank 0"): the imatrix file, a sweep's recipes. Only the model files must
 * be visible on every rank; these inputs need not be on the other hosts at all.
 *
 * Each call is collective over comm's world (every rank calls it, whatever happened before on
 * it) and carries rank 0's outcome first, so a failure there (logged once, on rank 0) ends the
 * call on every rank with the same status instead of leaving some ranks waiting.
 */
#ifndef IMC_COORDINATOR_SHARE_H
#define IMC_COORDINATOR_SHARE_H

#include <stddef.h>

#include "core/status.h"

struct imc_comm;

// Rank 0's st and, when IMC_OK, its n bytes of *data go to every rank: on the others *data
// becomes a new buffer (free()) of *size bytes plus a NUL. comm NULL or of one rank: returns st.
// Returns rank 0's st (other ranks: as rank 0 had it), IMC_ERR_NOMEM (logged) or IMC_ERR_MPI.
enum imc_status imc_share_bytes(const struct imc_comm *comm, enum imc_status st, char **data,
                                size_t *size);
// Reads the whole file path on world rank 0 (imc_file_read_all: errors logged there, naming the
// file) and shares its bytes: every rank gets a new NUL-terminated buffer in *data (free()) of
// *size bytes. In one process (comm NULL or of one rank) it just reads the file.
enum imc_status imc_share_file(const struct imc_comm *comm, const char *path, char **data,
                               size_t *size);

#endif // IMC_COORDINATOR_SHARE_H
