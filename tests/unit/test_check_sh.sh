#!/usr/bin/env bash
# tests/unit/test_check_sh: the shell side of the harness tests itself. A script sourcing
# tests/check.sh, tests/e2e/lib.sh, tests/mpi/lib.sh or tests/slurm/common.sh with N failing
# checks exits 1 from its summary for N = 1, 77, 256 and 1000 (never the count), 0 for N = 0;
# check_skip_test exits 77; a SKIP line is not a failure.
set -u
: "${IMC_SOURCE_DIR:?IMC_SOURCE_DIR must point to the source tree}"
# shellcheck source=tests/check.sh
. "$IMC_SOURCE_DIR/tests/check.sh"
t=$IMC_SOURCE_DIR/tests
export IMC_BIN=${IMC_BIN:-/bin/false} IMC_BUILD_DIR=${IMC_BUILD_DIR:-/tmp}

# child LIB SUMMARY N [EXTRA]: sources LIB, fails N checks, passes N, runs EXTRA, then SUMMARY
child() {
    bash -c '. "$1"; for ((i = 0; i < $3; i++)); do check "bad $i" false; check "good $i" true
             done; ${4:-:}; $2' _ "$1" "$2" "$3" "${4:-}" >/dev/null 2>&1
}

for lib in "check.sh check_done" "e2e/lib.sh check_done" "mpi/lib.sh mpi_summary" \
    "slurm/common.sh check_done"; do
    read -r file summary <<<"$lib"
    for n in 1 77 256 1000; do
        child "$t/$file" "$summary" "$n"
        rc=$?
        check "$file: $n failed checks exit 1 (was $rc)" test "$rc" -eq 1
    done
    child "$t/$file" "$summary" 0
    rc=$?
    check "$file: no failed check exits 0 (was $rc)" test "$rc" -eq 0
    child "$t/$file" "$summary" 0 "check_skip x y"
    rc=$?
    check "$file: a skipped check is not a failure (was $rc)" test "$rc" -eq 0
    child "$t/$file" "check_skip_test why" 0
    rc=$?
    check "$file: check_skip_test exits 77 (was $rc)" test "$rc" -eq 77
done
out=$(bash -c '. "$1"; check a true; check b false; check_skip c d; check_done' _ "$t/check.sh")
check "summary line" test "$(tail -n 1 <<<"$out")" = "1 passed, 1 failed, 1 skipped"
check_done
