#!/usr/bin/env bash
# bench/bench_imatrix_overhead: what collecting the imatrix costs on top of the forward pass
# (DESIGN.md §2 bench/: "overhead of stats collection"). Runs `imc perplexity` (forward + scoring)
# and `imc imatrix` (the same forward with the stats hooks and the collectors, plus the same
# scoring) side by side on the same model, text, context, chunks, batch and threads, alternating
# them `reps` times, and prints tokens/s of each (median over the reps, read from the last
# progress line, so model loading and output writing are excluded) and the overhead ratio.
#
#   bench/bench_imatrix_overhead.sh [--preset ds2-bench] [--model FILE] [--ctx 512] [--chunks 8]
#                                   [--batch 2048] [--threads 2] [--reps 3] [--attn auto]
#
# The model is generated once into $IMC_BENCH_DIR (default ${TMPDIR:-/tmp}/imc_bench) with
# `imc gen-model --preset NAME` (ds2-bench: ~243 MB, q8_0). IMC_BIN selects the binary (default:
# build/imc of this tree). A benchmark, not a test.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${IMC_BIN:-$here/build/imc}
preset=ds2-bench model='' ctx=512 chunks=8 batch=2048 threads=2 reps=3 attn=auto
while [ $# -gt 0 ]; do
    case $1 in
        --preset) preset=$2 ;;
        --model) model=$2 ;;
        --ctx) ctx=$2 ;;
        --chunks) chunks=$2 ;;
        --batch) batch=$2 ;;
        --threads) threads=$2 ;;
        --reps) reps=$2 ;;
        --attn) attn=$2 ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "bench_imatrix_overhead: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift 2
done
if [ ! -x "$bin" ]; then
    echo "bench_imatrix_overhead: no imc binary at $bin (set IMC_BIN)" >&2
    exit 2
fi
dir=${IMC_BENCH_DIR:-${TMPDIR:-/tmp}/imc_bench}
mkdir -p "$dir"
if [ -z "$model" ]; then
    model=$dir/$preset.gguf
    [ -s "$model" ] || "$bin" gen-model --preset "$preset" -o "$model" >&2
fi
# the bundled text repeated until it holds the chunks (its BPE gives ~2.3 bytes per token)
text=$dir/text.txt
need=$(((chunks + 2) * ctx * 4))
: >"$text"
while [ "$(stat -c %s "$text")" -lt "$need" ]; do
    cat "$here/data/text/calibration.txt" >>"$text"
done
out=$(mktemp -d "${TMPDIR:-/tmp}/imc_bench_imx.XXXXXX")
trap 'rm -rf "$out"' EXIT

# rate LOG: tokens/s of the last progress line
rate() { sed -n 's/.*chunk \([0-9]*\)\/\1, \([0-9.]*\) tok\/s.*/\2/p' "$1" | tail -n 1; }
median() {
    sort -g | awk '{ v[NR] = $1 }
                   END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
final_ppl() { sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$1"; }

common=(-m "$model" -f "$text" -c "$ctx" --chunks "$chunks" -b "$batch" -t "$threads"
    --attn "$attn")
: >"$out/ppl.rates"
: >"$out/imx.rates"
for r in $(seq 1 "$reps"); do
    "$bin" perplexity "${common[@]}" >"$out/ppl.out" 2>"$out/ppl.err"
    rate "$out/ppl.err" >>"$out/ppl.rates"
    "$bin" imatrix "${common[@]}" -o "$out/imx.gguf" >"$out/imx.out" 2>"$out/imx.err"
    rate "$out/imx.err" >>"$out/imx.rates"
    echo "rep $r: perplexity $(tail -n 1 "$out/ppl.rates") tok/s," \
        "imatrix $(tail -n 1 "$out/imx.rates") tok/s" >&2
done
p=$(median <"$out/ppl.rates")
i=$(median <"$out/imx.rates")
entries=$("$bin" imatrix --stats "$out/imx.gguf" |
    sed -n 's/^imatrix .*: \([0-9]*\) entries.*/\1/p')
echo "model      $model ($(stat -c %s "$model") bytes)"
echo "workload   $chunks chunks x $ctx tokens, -b $batch, $threads thread(s), attention $attn," \
    "median of $reps"
echo "perplexity $p tok/s   (PPL $(final_ppl "$out/ppl.out"))"
echo "imatrix    $i tok/s   (PPL $(final_ppl "$out/imx.out"), $entries entries)"
awk -v p="$p" -v i="$i" 'BEGIN { r = p / i
    printf "overhead   %.3fx the plain forward time (%+.1f%%)\n", r, 100 * (r - 1) }'
