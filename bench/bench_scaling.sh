#!/usr/bin/env bash
# bench/bench_scaling: tokens/s of `imc imatrix` as one MPI job over 1, 2 and 4 ranks in pipeline
# (pp), expert (ep) and replica (dp) layouts on the same model and text, side by side in one run,
# with the idle share of the ranks (pipeline bubble, exchanges, waits: the "dist:" summary line)
# and a check that every layout wrote the same imatrix bytes. A benchmark, not a test.
#
#   bench/bench_scaling.sh [--preset ds2-bench] [--ctx 256] [--chunks 16] [--batch 512]
#                          [--configs "1:pp=1:2 2:pp=2:1 ..."] [--reps 1]
#
# A config is RANKS:LAYOUT:THREADS_PER_RANK; the default compares, on the same total of threads
# where the machine allows it, one process with 2 threads against 2 ranks of 1 thread (pp=2,
# ep=2, dp=2) and 4 oversubscribed ranks (pp=2,dp=2; pp=2,ep=2). tok/s = chunks x ctx / the
# slowest rank's time inside the distributed run (model loading and MPI start excluded).
# The model is generated once into $IMC_BENCH_DIR (default ${TMPDIR:-/tmp}/imc_bench).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${IMC_BIN:-$here/build/imc}
preset=ds2-bench ctx=256 chunks=16 batch=512 reps=1
configs="1:pp=1:1 1:pp=1:2 2:pp=2:1 2:ep=2:1 2:dp=2:1 4:pp=2,dp=2:1 4:pp=2,ep=2:1 4:pp=4:1"
while [ $# -gt 0 ]; do
    case $1 in
        --preset) preset=$2 ;;
        --ctx) ctx=$2 ;;
        --chunks) chunks=$2 ;;
        --batch) batch=$2 ;;
        --configs) configs=$2 ;;
        --reps) reps=$2 ;;
        *) echo "bench_scaling: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift 2
done
# shellcheck source=bench/lib.sh
. "$here/bench/lib.sh"
dir=$bench_dir
model=$(bench_model "$preset")
text=$(bench_text scaling.txt 4)
printf 'model %s (%s bytes), ctx %s, chunks %s, batch %s, %s core(s)\n' "$model" \
    "$(stat -c %s "$model")" "$ctx" "$chunks" "$batch" "$(nproc)"
printf '%6s %-14s %8s %10s %8s %8s %s\n' ranks layout threads tok/s speedup idle% imatrix
base='' ref=''
for c in $configs; do
    IFS=: read -r n layout t <<<"$c"
    best=''
    for _ in $(seq 1 "$reps"); do
        out="$dir/scaling.$n.$layout.$t"
        log=$(mpirun -n "$n" --oversubscribe --bind-to none "$bin" imatrix -m "$model" -f "$text" \
            -o "$out.gguf" --ctx "$ctx" --chunks "$chunks" -b "$batch" -t "$t" --layout "$layout" \
            -v 2>&1 >/dev/null)
        secs=$(printf '%s\n' "$log" | sed -nE 's/.*dist: rank [0-9]+: ([0-9.]+) s, .*/\1/p' |
            sort -g | tail -n 1)
        idle=$(printf '%s\n' "$log" | sed -nE 's/.*idle .*\) ([0-9.]+)% on average.*/\1/p')
        tps=$(awk -v s="$secs" -v n=$((chunks * ctx)) 'BEGIN { printf "%.1f", n / s }')
        if [ -z "$best" ] || awk -v a="$tps" -v b="$best" 'BEGIN { exit !(a > b) }'; then
            best=$tps best_idle=$idle
        fi
    done
    [ -z "$base" ] && base=$best
    [ -z "$ref" ] && ref="$out.gguf"
    same=$(cmp -s "$ref" "$out.gguf" && echo same || echo DIFFERS)
    printf '%6s %-14s %8s %10s %8s %8s %s\n' "$n" "$layout" "$t" "$best" \
        "$(awk -v a="$best" -v b="$base" 'BEGIN { printf "%.2fx", a / b }')" "$best_idle" "$same"
done
