#!/usr/bin/env bash
# The test command of README.md (and of CI): installs dependencies, builds with warnings as
# errors, runs every ctest test, then builds and runs the unit, kernel and GGUF tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer (with the emulated CUDA kernels: the
# emulator announces its fiber switches to ASan). After each ctest run, tests/skips.sh
# lists the skipped tests with their reasons and fails on any skip tests/skips.txt does not
# expect on this machine (a skip is never a silent pass). Last, the kernels-only configuration
# (IMC_KERNELS_ONLY, what scripts/gpu-check.sh builds on a GPU machine without MPI & co.) builds
# and passes its cuda tests (~1 min on two cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
bash "$root/scripts/deps.sh"

cmake -S "$root" -B "$root/build" -DIMC_WERROR=ON >/dev/null
cmake --build "$root/build" -j"$jobs"
ctest --test-dir "$root/build" --output-on-failure --output-junit junit.xml
bash "$root/tests/skips.sh" "$root/build/junit.xml"

cmake -S "$root" -B "$root/build-asan" -DIMC_WERROR=ON -DIMC_CUDA=OFF \
      -DIMC_SANITIZE=address,undefined >/dev/null
cmake --build "$root/build-asan" -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$root/build-asan" -L 'unit|kernels|gguf|cuda' --output-on-failure \
    --output-junit junit.xml
bash "$root/tests/skips.sh" "$root/build-asan/junit.xml"

cmake -S "$root" -B "$root/build-kernels" -DIMC_WERROR=ON -DIMC_CUDA=OFF -DIMC_KERNELS_ONLY=ON \
      >/dev/null
cmake --build "$root/build-kernels" -j"$jobs"
ctest --test-dir "$root/build-kernels" -L cuda --output-on-failure
