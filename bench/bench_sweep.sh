#!/usr/bin/env bash
# bench/bench_sweep: wall time of `imc sweep` as one MPI job of N ranks with recipe groups of
# G = 1, 2, 4 ranks (--ranks-per-recipe) on the same model, recipes and text, side by side in
# one run, with a check that every G wrote the same results.csv. A benchmark, not a test.
#
#   bench/bench_sweep.sh [--preset ds2-bench] [--ranks 4] [--groups "1 2 4"] [--ctx 128]
#                        [--chunks 8] [--threads 1]
#
# Recipes: q8_0, q4_0, q4_k, and q2_k with attention in q8_0, all with an imatrix computed
# once (distributed, a few chunks) into $IMC_BENCH_DIR (default ${TMPDIR:-/tmp}/imc_bench),
# where the model is generated once too. Each G runs from an empty out-dir (base logits
# included, so G = 1 computes the base on rank 0 alone, G > 1 on all ranks). seconds = wall time
# of mpirun; ratio = G = 1's seconds / this G's (above 1: faster). G = 1 runs N recipes at once
# on N ranks (each rank holds a whole model); G = N runs one recipe at a time over all ranks
# (each holds 1/N): the figure shows what holding less per rank costs in time.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${IMC_BIN:-$here/build/imc}
preset=ds2-bench ranks=4 groups="1 2 4" ctx=128 chunks=8 threads=1
while [ $# -ge 2 ]; do
    name=${1#--}
    case $name in
        preset | ranks | groups | ctx | chunks | threads) printf -v "$name" '%s' "$2" ;;
        *) break ;;
    esac
    shift 2
done
[ $# -eq 0 ] || { echo "bench_sweep: unknown argument '$1'" >&2; exit 2; }
# shellcheck source=bench/lib.sh
. "$here/bench/lib.sh"
dir=$bench_dir
model=$(bench_model "$preset")
text=$(bench_text sweep.txt 4)
imat="$dir/$preset.sweep.imatrix.gguf"
[ -f "$imat" ] || mpirun -n "$ranks" --oversubscribe --bind-to none "$bin" imatrix -m "$model" \
    -f "$text" -o "$imat" --ctx "$ctx" --chunks 4 -t "$threads" -q >&2
rules="$dir/sweep.recipes"
rm -rf "$rules"
mkdir -p "$rules"
printf '!type q8_0\n' >"$rules/a-q8_0"
printf '!type q4_0\n' >"$rules/b-q4_0"
printf '!type q4_K\n' >"$rules/c-q4_k"
printf 'attn_.*=q8_0\n!type q2_K\n' >"$rules/d-q2_k-attn8"
printf 'model %s (%s bytes), %s recipes, ctx %s, chunks %s, %s rank(s) x %s thread(s), ' \
    "$model" "$(stat -c %s "$model")" "$(find "$rules" -type f | wc -l)" "$ctx" "$chunks" "$ranks" \
    "$threads"
printf '%s core(s)\n' "$(nproc)"
printf '%6s %6s %10s %8s %s\n' ranks G seconds ratio results.csv
base='' ref=''
for g in $groups; do
    out="$dir/sweep.np$ranks.g$g"
    rm -rf "$out"
    t0=$(date +%s.%N)
    mpirun -n "$ranks" --oversubscribe --bind-to none "$bin" sweep --base "$model" \
        --imatrix "$imat" --rules-dir "$rules" -f "$text" --ctx "$ctx" --chunks "$chunks" \
        -t "$threads" -o "$out" --ranks-per-recipe "$g" -q >/dev/null
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    [ -z "$base" ] && base=$secs
    [ -z "$ref" ] && ref="$out/results.csv"
    same=$(cmp -s "$ref" "$out/results.csv" && echo same || echo DIFFERS)
    printf '%6s %6s %10s %8s %s\n' "$ranks" "$g" "$secs" \
        "$(awk -v a="$base" -v b="$secs" 'BEGIN { printf "%.2fx", a / b }')" "$same"
done
