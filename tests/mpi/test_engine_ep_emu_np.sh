#!/usr/bin/env bash
# tests/mpi/test_engine_ep_emu_np: test_mpi_engine_ep_emu (expert shards on the emulated CUDA
# table) under mpirun, N = 1, 2, 4 and 4 over TCP.
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
mpi_test_program engine_ep_emu
mpi_summary
