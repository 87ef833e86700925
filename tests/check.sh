# shellcheck shell=bash
# tests/check.sh - the shell side of the test harness (tests/check.h's twin), sourced by
# tests/e2e/lib.sh, tests/mpi/lib.sh and tests/slurm/common.sh. Exit codes, whatever the number
# of checks: 0 every check passed, 1 any failed (check_done), 77 the whole test skipped with an
# announced reason (check_skip_test), which scripts/test.sh accepts only where tests/skips.txt
# expects it on this machine. Tested by tests/unit/test_check_sh.sh.
#   check DESCRIPTION COMMAND...   runs COMMAND: "PASS DESCRIPTION" or "FAIL DESCRIPTION"
#   check_fail DESCRIPTION         a failure found without a command
#   check_skip DESCRIPTION REASON  a check whose precondition this machine lacks: a SKIP line
#   check_done                     "N passed, M failed[, K skipped]"; exits 0 or 1
#   check_skip_test REASON         "SKIP: REASON"; exits 77
#   check_in_ci                    true under CI (CI set, not "false" or "0")
fail=0
check_passed=0
check_skipped=0

# The commands under test run on the CPU even where a GPU is visible: --device auto would pick
# it, and on a GPU the bits depend on the batch shape (cuBLAS picks kernels by shape), which the
# byte-identity tests across batch sizes, threads and layouts must not see. The GPU is tested by
# the tests/cuda tests, e2e.device (which restores check_cuda_devices) and scripts/gpu-check.sh.
# shellcheck disable=SC2034 # read by tests/e2e/test_device.sh
check_cuda_devices=${CUDA_VISIBLE_DEVICES-unset}
export CUDA_VISIBLE_DEVICES=

check() {
    local what=$1
    shift
    if "$@"; then
        echo "PASS $what"
        check_passed=$((check_passed + 1))
    else
        echo "FAIL $what"
        fail=$((fail + 1))
    fi
}

check_fail() {
    echo "FAIL $1"
    fail=$((fail + 1))
}

check_skip() {
    echo "SKIP $1: $2"
    check_skipped=$((check_skipped + 1))
}

check_done() {
    local line="$check_passed passed, $fail failed"
    [ "$check_skipped" -eq 0 ] || line+=", $check_skipped skipped"
    echo "$line"
    [ "$fail" -eq 0 ] && exit 0
    exit 1
}

check_skip_test() {
    echo "SKIP: ${1:-no reason given}"
    exit 77
}

check_in_ci() {
    [ -n "${CI:-}" ] && [ "${CI:-}" != false ] && [ "${CI:-}" != 0 ]
}
