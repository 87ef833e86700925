#!/usr/bin/env bash
# bench/bench_perplexity: tokens/s of `imc perplexity` on a model of a few hundred MB with the
# default thread count (auto: this machine's physical cores), 1 and 2 threads, measured side by
# side in one run (a benchmark, not a test).
#
#   bench/bench_perplexity.sh [--preset ds2-bench] [--ctx 256] [--chunks 4] [--threads "auto 1 2"]
#
# The model is generated once into $IMC_BENCH_DIR (default ${TMPDIR:-/tmp}/imc_bench). tok/s is
# read from the last progress line (model loading excluded). IMC_BIN selects the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${IMC_BIN:-$here/build/imc}
preset=ds2-bench ctx=256 chunks=4 threads="auto 1 2"
while [ $# -gt 0 ]; do
    case $1 in
        --preset) preset=$2 ;;
        --ctx) ctx=$2 ;;
        --chunks) chunks=$2 ;;
        --threads) threads=$2 ;;
        *) echo "bench_perplexity: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift 2
done
dir=${IMC_BENCH_DIR:-${TMPDIR:-/tmp}/imc_bench}
mkdir -p "$dir"
model="$dir/$preset.gguf"
[ -f "$model" ] || "$bin" gen-model --preset "$preset" -o "$model" >&2
printf 'model %s (%s bytes), ctx %s, chunks %s\n' "$model" "$(stat -c %s "$model")" "$ctx" "$chunks"
printf '%8s %10s %14s\n' threads tok/s "final PPL"
for t in $threads; do
    log=$("$bin" perplexity -m "$model" -f "$here/data/text/calibration.txt" --ctx "$ctx" \
          --chunks "$chunks" -t "$t" 2>&1 >"$dir/ppl.$t.out")
    tps=$(printf '%s\n' "$log" | grep -o '[0-9.]* tok/s' | tail -n 1 | cut -d' ' -f1)
    ppl=$(grep -o 'PPL = [0-9.]*' "$dir/ppl.$t.out" | cut -d' ' -f3)
    printf '%8s %10s %14s\n' "$t" "$tps" "$ppl"
done
