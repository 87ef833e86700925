#!/usr/bin/env bash
# shellcheck disable=SC2317 # the helpers below are called through check
# tests/e2e/test_imatrix_matters: the imatrix must make low-bit quantization better. On the
# generated llama-k-tiny model (every row 256 or 512 wide, so q2_k and q3_k apply without a type
# fallback) the imatrix is computed on the first half of the bundled text, and for q2_k, q3_k
# and q4_0 the model is quantized without and with it; the mean KL divergence to the f32 model
# on the held-out second half must be lower with the imatrix, for every type. The figures are
# printed. The check fails when quantize ignores the imatrix (equal KLD) or when the weighting
# hurts; the quantized bytes must also differ.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" imatrix_matters
differ() { ! cmp -s "$1" "$2"; }
type_of() { "$IMC_BIN" info "$1" | awk -v t="$2" '$1 == t { print $2; exit }'; }
mean_kld() { awk '/^Mean +KLD:/ { print $3 " " $5; exit }' "$1"; }
change() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%+.1f%%", 100 * (b - a) / a }'; }
less() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && a < b) }'; }

m=$tmp/model.gguf
if ! "$IMC_BIN" gen-model --preset llama-k-tiny -o "$m" >/dev/null 2>&1; then
    echo "FAIL gen-model --preset llama-k-tiny"
    exit 1
fi
n=$(wc -l <"$text")
head -n $((n / 2)) "$text" >"$tmp/calib.txt"
tail -n +$((n / 2 + 1)) "$text" >"$tmp/eval.txt"
run imatrix -m "$m" -f "$tmp/calib.txt" -o "$tmp/imat.gguf" --ctx 128 -q >/dev/null 2>&1
check "imatrix computed on the first half" test -s "$tmp/imat.gguf"
run perplexity -m "$m" -f "$tmp/eval.txt" --ctx 128 --kld-save "$tmp/base.kld" -q >/dev/null 2>&1
check "f32 base logits on the held-out half" test -s "$tmp/base.kld"

printf '%-6s %-24s %-24s %s\n' type "KLD without imatrix" "KLD with imatrix" change
for t in q2_k q3_k q4_0; do
    "$IMC_BIN" quantize "$m" "$tmp/$t.gguf" "$t" -q >/dev/null 2>&1
    "$IMC_BIN" quantize "$m" "$tmp/$t-im.gguf" "$t" --imatrix "$tmp/imat.gguf" -q \
        >/dev/null 2>&1
    check "$t: both quantizations written" test -s "$tmp/$t.gguf" -a -s "$tmp/$t-im.gguf"
    check "$t: the imatrix changes the bytes" differ "$tmp/$t.gguf" "$tmp/$t-im.gguf"
    check "$t: no type fallback (rows fit the blocks)" \
        test "$(type_of "$tmp/$t-im.gguf" blk.0.ffn_down.weight)" = "$t"
    run perplexity -m "$tmp/$t.gguf" --kld-base "$tmp/base.kld" -q >"$tmp/k0.out" 2>&1
    run perplexity -m "$tmp/$t-im.gguf" --kld-base "$tmp/base.kld" -q >"$tmp/k1.out" 2>&1
    read -r k0 u0 <<<"$(mean_kld "$tmp/k0.out")"
    read -r k1 u1 <<<"$(mean_kld "$tmp/k1.out")"
    printf '%-6s %-24s %-24s %s\n' "$t" "${k0:-?} ± ${u0:-?}" "${k1:-?} ± ${u1:-?}" \
        "$(change "${k0:-0}" "${k1:-0}")"
    check "$t: mean KLD with imatrix ($k1) < without ($k0)" less "${k1:-x}" "${k0:-x}"
done
check_done
