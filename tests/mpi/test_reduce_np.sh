#!/usr/bin/env bash
# tests/mpi/test_reduce_np: test_mpi_reduce under mpirun, N = 1, 2, 4 and 4 over TCP. Besides
# each run passing, the exact sums must be bit-identical across N (one distinct digest).
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
mpi_test_program reduce
digests=$(cat "$MPI_TMP"/reduce.*.out | grep '^exact digest' | sort -u)
mpi_check "reduce: exact digest printed" test -n "$digests"
mpi_check "reduce: one exact digest for N = 1, 2, 4 (got: $(echo "$digests" | tr '\n' ';'))" \
    test "$(echo "$digests" | wc -l)" -eq 1
mpi_summary
