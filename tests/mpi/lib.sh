# shellcheck shell=bash
# tests/mpi/lib.sh: helpers for the tests/mpi/test_*.sh wrappers, which run the C test programs
# (built as $IMC_BUILD_DIR/test_mpi_<name>) under mpirun for several rank counts, over shared
# memory and once over TCP on loopback. Sourced, not run. The harness is tests/check.sh: each
# check prints PASS/FAIL; the wrapper ends with `mpi_summary` (check_done: exit 0 or 1).
set -u
: "${IMC_BUILD_DIR:?IMC_BUILD_DIR must point to the build directory}"
MPIEXEC=${MPIEXEC:-mpiexec}
# Open MPI refuses root without these; ctest sets them, manual runs get them here.
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
MPI_TCP_ARGS=(--mca btl "tcp,self" --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo)
MPI_TMP=$(mktemp -d "${TMPDIR:-/tmp}/imc_mpi.XXXXXX")
trap 'rm -rf "$MPI_TMP"' EXIT
# shellcheck source=tests/check.sh
. "$(dirname "${BASH_SOURCE[0]}")/../check.sh"

# mpi_sanitizer_env: under -DIMC_SANITIZE, Open MPI's one-time allocations are not leaks of imc
# (tests/mpi/lsan.h has the same list for the C tests); other builds ignore these variables.
mpi_sanitizer_env() {
    printf 'leak:%s\n' libmpi.so libopen-pal.so libopen-rte.so libpmix.so libevent \
        >"$MPI_TMP/lsan.supp"
    export LSAN_OPTIONS="suppressions=$MPI_TMP/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
    export ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
}

mpi_check() { check "$@"; } # mpi_check DESCRIPTION COMMAND...

mpi_exe() { # mpi_exe NAME: path of test_mpi_NAME, or exit 1
    local exe="$IMC_BUILD_DIR/test_mpi_$1"
    if [ ! -x "$exe" ]; then
        echo "FAIL $exe is missing (build the tests first)" >&2
        exit 1
    fi
    echo "$exe"
}

# mpi_run TAG N [mpirun options...] -- PROGRAM [args...]: runs under mpirun with N ranks,
# stdout to $MPI_TMP/TAG.out, stderr to $MPI_TMP/TAG.err; returns mpirun's exit code.
mpi_run() {
    local tag=$1 n=$2
    shift 2
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        opts+=("$1")
        shift
    done
    shift
    timeout 120 "$MPIEXEC" -n "$n" --oversubscribe "${opts[@]}" "$@" \
        >"$MPI_TMP/$tag.out" 2>"$MPI_TMP/$tag.err"
}

# mpi_test_program NAME: runs test_mpi_NAME with N = 1, 2, 4 and N = 4 over TCP; each run must
# exit 0 and print "<k> passed, 0 failed" exactly once (rank 0's summary).
mpi_test_program() {
    local name=$1 exe
    exe=$(mpi_exe "$name") || exit 1
    local runs=("1" "2" "4" "4tcp")
    for r in "${runs[@]}"; do
        local n=${r%tcp} opts=()
        [ "$r" != "$n" ] && opts=("${MPI_TCP_ARGS[@]}")
        mpi_run "$name.$r" "$n" "${opts[@]}" -- "$exe"
        local rc=$?
        mpi_check "$name np=$r: exit 0 (was $rc)" test "$rc" -eq 0
        mpi_check "$name np=$r: one summary with 0 failed" \
            test "$(grep -cE '^[0-9]+ passed, 0 failed$' "$MPI_TMP/$name.$r.out")" -eq 1
        if [ "$rc" -ne 0 ]; then
            grep -E 'FAIL' "$MPI_TMP/$name.$r.out" | head -20
            tail -20 "$MPI_TMP/$name.$r.err"
        fi
    done
}

# mpi_wait_rank PATTERN RANK LOG LINE: waits (up to ~30 s) until a process whose command line
# matches PATTERN (pgrep -f) runs as world rank RANK and LOG holds LINE (grep); prints its pid,
# or nothing when none came. PATTERN must name a path under this test's $MPI_TMP: ctest runs
# tests in parallel, and a bare "imc imatrix" also matches another test's ranks (a signal sent
# there failed both tests now and then).
mpi_wait_rank() {
    local pattern=$1 rank=$2 log=$3 line=$4 victim='' p
    for _ in $(seq 1 3000); do
        for p in $(pgrep -f "$pattern" 2>/dev/null); do
            if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null |
                grep -qx "OMPI_COMM_WORLD_RANK=$rank"; then
                victim=$p
            fi
        done
        [ -n "$victim" ] && grep -q "$line" "$log" 2>/dev/null && break
        sleep 0.01
    done
    echo "$victim"
}

# MPI_HIDE DIR PROGRAM [args...] (as "${MPI_HIDE[@]}" after mpi_run's --): runs PROGRAM with
# DIR replaced by an empty tmpfs on every rank but world rank 0 (a mount namespace of its own:
# unshare -m, as root), so that only rank 0 can read the inputs DIR holds.
# shellcheck disable=SC2016,SC2034 # expanded by the ranks' shells; used by the tests
MPI_HIDE=(bash -c 'd=$1; shift; if [ "${OMPI_COMM_WORLD_RANK:-0}" != 0 ]; then
    exec unshare -m sh -c '"'"'mount -t tmpfs none "$0" && exec "$@"'"'"' "$d" "$@"; fi
    exec "$@"' mpi_hide)

mpi_summary() { check_done; }
