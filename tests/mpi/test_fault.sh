#!/usr/bin/env bash
# tests/mpi/test_fault: a failing rank ends the whole job, non-zero, within 30 s, and stderr says
# which rank and what (DESIGN.md §6 "Faults"; STYLE b.4 item 2). Runs test_mpi_fault_ring on 3
# ranks; rank 1 fails in round 3 of a ring exchange:
#   kill   SIGKILL itself: mpirun reports the rank and the signal
#   hang   stop without dying: our watchdog (IMC_MPI_TIMEOUT=3) aborts, naming the rank it waits on
#   fatal  imc_fatal: "imc[r1@host] fatal: <what>: I/O error", exit code IMC_ERR_IO (2)
#   assert IMC_ASSERT: the abort hook calls MPI_Abort (exit code IMC_ERR_INTERNAL, 12; a plain
#          abort() would end with signal 6)
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
exe=$(mpi_exe fault_ring) || exit 1
# shellcheck disable=SC2317
has() { grep -qE -- "$2" "$MPI_TMP/$1.err"; } # has TAG REGEX (in stderr)

fault() { # fault MODE: runs it, checks exit code and time; leaves stderr in $MPI_TMP/MODE.err
    local mode=$1 start end rc
    start=$(date +%s)
    IMC_MPI_TIMEOUT=3 mpi_run "$mode" 3 -- "$exe" "$mode"
    rc=$?
    end=$(date +%s)
    mpi_check "$mode: job exits non-zero (was $rc)" test "$rc" -ne 0
    mpi_check "$mode: not killed by the test's own timeout" test "$rc" -ne 124
    mpi_check "$mode: ends within 30 s (took $((end - start)) s)" test $((end - start)) -lt 30
    fault_rc=$rc
}

fault kill
mpi_check "kill: mpirun names rank 1 and the signal" has kill 'rank 1 .*signal 9'
fault hang
waited='fatal: gave up after 3 s waiting for receive of 1 floats from world rank [12] '
mpi_check "hang: watchdog names the waiting rank and the silent peer" \
    has hang "imc\\[r[02]@[^]]+\\] $waited"
fault fatal
mpi_check "fatal: one line naming rank 1, what and the status" \
    has fatal '^imc\[r1@[^]]+\] fatal: reading shard 3 of the weights: I/O error$'
mpi_check "fatal: exit code is IMC_ERR_IO (2), was $fault_rc" test "$fault_rc" -eq 2
fault assert
mpi_check "assert: the assertion is reported by rank 1" \
    has assert '^imc\[r1@[^]]+\] .*test_fault_ring\.c:[0-9]+: assertion failed'
mpi_check "assert: MPI_Abort ended the job with IMC_ERR_INTERNAL (12), was $fault_rc" \
    test "$fault_rc" -eq 12

IMC_MPI_TIMEOUT=3 mpi_run clean 3 -- "$exe"
mpi_check "no fault: exit 0 and a clean summary" \
    grep -qE '^[0-9]+ passed, 0 failed$' "$MPI_TMP/clean.out"
if [ "$fail" -ne 0 ]; then
    for m in kill hang fatal assert clean; do
        echo "--- stderr of $m"
        head -30 "$MPI_TMP/$m.err"
    done
fi
mpi_summary
