#!/usr/bin/env bash
# tests/mpi/test_pipe_emu_np: test_mpi_pipe_emu (pipeline stages passing hidden rows from table to
# table on the emulated CUDA table) under mpirun, N = 1, 2, 4 and 4 over TCP.
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
mpi_test_program pipe_emu
mpi_summary
