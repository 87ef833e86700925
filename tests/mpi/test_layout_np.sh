#!/usr/bin/env bash
# tests/mpi/test_layout_np: test_mpi_layout under mpirun, N = 1, 2, 4 and 4 over TCP (N = 4 runs
# every layout of 4 ranks: 4x1x1, 1x4x1, 1x1x4, 2x2x1, 2x1x2, 1x2x2, and the invalid 2x1x3).
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
mpi_test_program layout
mpi_summary
