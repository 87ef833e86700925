#!/usr/bin/env bash
# tests/mpi/test_connectivity_np: test_mpi_connectivity under mpirun, N = 1, 2, 4 and 4 over
# TCP; rank 0 must print "Connectivity test on N processes PASSED".
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
mpi_test_program connectivity
for r in 1 2 4 4tcp; do
    mpi_check "connectivity np=$r: verdict line" \
        grep -qx "Connectivity test on ${r%tcp} processes PASSED" "$MPI_TMP/connectivity.$r.out"
done
mpi_summary
