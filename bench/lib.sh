# shellcheck shell=bash
# bench/lib.sh: what the bench/*.sh scripts share (after `set -euo pipefail` and `bin=`):
# the folder of generated inputs and the MPI environment. Sourced, not run.
bench_dir=${IMC_BENCH_DIR:-${TMPDIR:-/tmp}/imc_bench}
# Open MPI refuses root without these (as tests/mpi/lib.sh).
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}

# bench_model PRESET: prints the path of gen-model's PRESET in $bench_dir, generated once.
bench_model() {
    : "${bin:?bench_model: set bin to the imc binary first}"
    mkdir -p "$bench_dir"
    local m="$bench_dir/$1.gguf"
    [ -f "$m" ] || "$bin" gen-model --preset "$1" -o "$m" >&2
    echo "$m"
}

# bench_text NAME COPIES: prints the path of $bench_dir/NAME, COPIES copies of the calibration
# text (written each time).
bench_text() {
    local t="$bench_dir/$1" here_
    here_=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    for _ in $(seq 1 "$2"); do cat "$here_/data/text/calibration.txt"; done >"$t"
    echo "$t"
}
