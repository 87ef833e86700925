#!/usr/bin/env bash
# bench/bench_reference: imc against the llama.cpp-family reference tools, side by side in one
# run (a benchmark, not a test). On the ds3-width preset (DeepSeek-V3's real widths, q8_0), its
# Q4_K_M-like version (imc quantize: attn_v and ffn_down q6_k, the rest q4_k) and, with --types
# bf16, its bf16 version (gen-model --type bf16; ~11 GB), it runs
# `imc perplexity` and `imc imatrix` at ctx 512 with 1 and 2 threads and, with --ref DIR (a
# llama.cpp or ik_llama.cpp build's bin folder), the reference's llama-perplexity and
# llama-imatrix with the same arguments (their defaults otherwise), and prints tokens/s and the
# ratio imc / reference. tok/s = tokens scored / wall seconds of the command, model loading
# included (the file is read once before, so it comes from the page cache).
#
#   bench/bench_reference.sh [--ref DIR] [--chunks 2] [--threads "1 2"]
#                            [--types "q8_0 q4_k_m" (also bf16)]
#                            [--matmul q8|f32] [--repeat 1]
#
# --repeat N runs every command N times, in N rounds of (imc perplexity, imc imatrix, reference
# perplexity, reference imatrix), and keeps each command's fastest run: on a machine shared with
# other jobs the best of a few interleaved rounds compares the tools more fairly than one run.
#
# --matmul is imc's matmul mode (default q8, imc's own default); the reference always multiplies
# with 8-bit activations on the CPU.
#
# The models are generated once into $IMC_BENCH_DIR (default ${TMPDIR:-/tmp}/imc_bench; ~5.5 GB
# and ~3 GB; gen-model takes minutes). IMC_BIN selects the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${IMC_BIN:-$here/build/imc}
# shellcheck source=bench/lib.sh
. "$here/bench/lib.sh"
ref='' chunks=2 threads="1 2" types="q8_0 q4_k_m" matmul=q8 repeat=1
while [ $# -gt 0 ]; do
    case $1 in
        --ref) ref=$2 ;;
        --chunks) chunks=$2 ;;
        --threads) threads=$2 ;;
        --types) types=$2 ;;
        --matmul) matmul=$2 ;;
        --repeat) repeat=$2 ;;
        *) echo "bench_reference: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift 2
done
if [ -n "$ref" ] && { [ ! -x "$ref/llama-perplexity" ] || [ ! -x "$ref/llama-imatrix" ]; }; then
    echo "bench_reference: no llama-perplexity / llama-imatrix in $ref" >&2
    exit 2
fi
case $repeat in
    '' | *[!0-9]* | 0)
        echo "bench_reference: --repeat wants a count >= 1, not '$repeat'" >&2
        exit 2 ;;
esac
text=$here/data/text/calibration.txt
q8=$(bench_model ds3-width)
model_of() { # model_of TYPE: the model file of TYPE
    case $1 in
        q8_0) echo "$q8" ;;
        q4_k_m)
            local m="$bench_dir/ds3-width-q4_k_m.gguf"
            [ -f "$m" ] || "$bin" quantize "$q8" "$m" q4_k --custom-q 'attn_v=q6_k,ffn_down=q6_k' \
                -q >"$bench_dir/quantize.log" 2>&1 ||
                { tail -3 "$bench_dir/quantize.log" >&2; exit 1; }
            echo "$m" ;;
        bf16)
            local m="$bench_dir/ds3-width-bf16.gguf"
            [ -f "$m" ] || "$bin" gen-model --preset ds3-width --type bf16 -o "$m" >&2 ||
                exit 1
            echo "$m" ;;
        *) echo "bench_reference: unknown type '$1' (q8_0, q4_k_m, bf16)" >&2; exit 2 ;;
    esac
}
# secs CMD...: runs CMD (output to $bench_dir/last.log) and prints its wall seconds
secs() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$bench_dir/last.log" 2>&1 || { tail -5 "$bench_dir/last.log" >&2; exit 1; }
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
# least A B: the smaller of two second counts (A empty: B)
least() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'; }
tokens=$((512 * chunks))
printf '%-7s %-10s %3s %12s %12s %12s\n' type run threads "imc tok/s" "ref tok/s" "imc/ref"
for ty in $types; do
    m=$(model_of "$ty")
    cat "$m" >/dev/null
    for t in $threads; do
        a=(-f "$text" -t "$t")
        s_ppl='' s_im='' r_ppl='' r_im=''
        for ((i = 0; i < repeat; i++)); do # each secs its own assignment: set -e sees failures
            x=$(secs "$bin" perplexity -m "$m" "${a[@]}" --ctx 512 --chunks "$chunks" -q \
                --matmul "$matmul")
            s_ppl=$(least "$s_ppl" "$x")
            x=$(secs "$bin" imatrix -m "$m" "${a[@]}" --ctx 512 --chunks "$chunks" \
                --matmul "$matmul" -o "$bench_dir/imc.imatrix.gguf" -q)
            s_im=$(least "$s_im" "$x")
            [ -n "$ref" ] || continue
            x=$(cd "$bench_dir" && secs "$ref/llama-perplexity" -m "$m" "${a[@]}" -c 512 \
                --chunks "$chunks" -b 512)
            r_ppl=$(least "$r_ppl" "$x")
            x=$(cd "$bench_dir" && secs "$ref/llama-imatrix" -m "$m" "${a[@]}" -c 512 \
                --chunks "$chunks" -b 512 -o "$bench_dir/ref.imatrix.dat")
            r_im=$(least "$r_im" "$x")
        done
        for run in perplexity imatrix; do
            if [ $run = perplexity ]; then si=$s_ppl sr=$r_ppl; else si=$s_im sr=$r_im; fi
            awk -v ty="$ty" -v run="$run" -v t="$t" -v n="$tokens" -v si="$si" -v sr="$sr" \
                'BEGIN { ti = n / si; tr = sr != "" ? n / sr : 0
                         r = tr ? sprintf("%.2f", tr) : "-"
                         x = tr ? sprintf("%.2fx", ti / tr) : "-"
                         printf "%-7s %-10s %3s %12.2f %12s %12s\n", ty, run, t, ti, r, x }'
        done
    done
done
rm -f "$bench_dir/llama.log"
