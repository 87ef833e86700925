# shellcheck shell=bash
# tests/e2e/lib.sh - the shared start of the tests/e2e/test_*.sh scripts (sourced): required
# variables, a temporary folder removed at exit ($tmp), and the harness of tests/check.sh
# (check, check_skip, check_done: exit 0 or 1, check_skip_test: exit 77).
#   . "$(dirname "$0")/lib.sh" NAME     (NAME: the temporary folder's prefix)
set -u
: "${IMC_BIN:?IMC_BIN must point to the imc binary}"
: "${IMC_SOURCE_DIR:?IMC_SOURCE_DIR must point to the source tree}"
# shellcheck disable=SC2034 # used by the tests that source this file
text="$IMC_SOURCE_DIR/data/text/calibration.txt"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/imc_${1:-e2e}.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/check.sh
. "$IMC_SOURCE_DIR/tests/check.sh"

# run ARGS...: imc with LeakSanitizer off (perplexity / imatrix start MPI and hwloc, whose
# one-time allocations a -DIMC_SANITIZE build reports; leaks are not these tests' subject).
run() { ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$IMC_BIN" "$@"; }
