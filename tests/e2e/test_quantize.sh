#!/usr/bin/env bash
# shellcheck disable=SC2317 # the helpers below are called through check
# tests/e2e/test_quantize: `imc quantize` on tiny synthetic models (DESIGN.md §3, §4 "Quantized
# output"): q8_0 output that `imc info` describes and `imc perplexity` runs (PPL within 3% of
# f32), bytes independent of -t, rules (first match wins, unused rule warned, rules file), bad
# input failing with one error line and no output file, and THE KEY CHECK: at 4 bits (q4_0 and
# iq4_nl: the tiny models' rows are 64 wide, so 256-block types would fall back to these anyway)
# the mean KL divergence to the f32 model is lower with an imatrix than without. The imatrix is
# computed on the first half of the bundled text and the KLD on the second half (held out).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" quantize
q() { "$IMC_BIN" quantize "$@"; }
final_ppl() { sed -n 's/^Final estimate: PPL = \([^ ]*\) +\/- .*/\1/p' "$1"; }
mean_kld() { awk '/^Mean +KLD:/ { print $3; exit }' "$1"; }
# close A B REL: |A - B| <= REL * |B|
close() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d;
                                                    if (b < 0) b = -b; exit !(d <= r * b) }'; }
less() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && a < b) }'; }
# type_of FILE TENSOR: the type column of `imc info`
type_of() { "$IMC_BIN" info "$1" | awk -v t="$2" '$1 == t { print $2; exit }'; }
one_error() { [ "$(grep -c '^error' "$1")" -eq 1 ] || [ "$(wc -l <"$1")" -eq 1 ]; }

for p in llama-tiny ds2-tiny-3d; do
    if ! "$IMC_BIN" gen-model --preset "$p" -o "$tmp/$p.gguf" --type f32 >/dev/null 2>&1; then
        echo "FAIL gen-model $p"
        exit 1
    fi
done
ll=$tmp/llama-tiny.gguf
ds=$tmp/ds2-tiny-3d.gguf

# ---- q8_0: info shows the types, perplexity runs and stays close to f32 --------------------------
for m in llama-tiny ds2-tiny-3d; do
    q "$tmp/$m.gguf" "$tmp/$m-q8.gguf" q8_0 -t 2 >"$tmp/q.out" 2>"$tmp/q.err"
    check "$m: quantize q8_0 exit 0" test $? -eq 0
    check "$m: summary line" grep -q "^quantized .* (q8_0): .* converted" "$tmp/q.out"
    check "$m: blk.0.attn_output q8_0" test "$(type_of "$tmp/$m-q8.gguf" blk.0.attn_output.weight)" = q8_0
    check "$m: norms stay f32" test "$(type_of "$tmp/$m-q8.gguf" blk.0.attn_norm.weight)" = f32
    check "$m: output q8_0" test "$(type_of "$tmp/$m-q8.gguf" output.weight)" = q8_0
    run perplexity -m "$tmp/$m.gguf" -f "$text" --ctx 128 --chunks 8 -q >"$tmp/p32.out" 2>&1
    run perplexity -m "$tmp/$m-q8.gguf" -f "$text" --ctx 128 --chunks 8 -q >"$tmp/p8.out" 2>&1
    check "$m: perplexity runs on q8_0" test $? -eq 0
    a=$(final_ppl "$tmp/p32.out")
    b=$(final_ppl "$tmp/p8.out")
    echo "  $m PPL f32 $a, q8_0 $b"
    # 3%: in the tiny MoE model q8_0 rounding flips some expert choices (mean KLD ~0.01 for
    # ds2-tiny-3d against ~0.0002 for llama-tiny), which moves its PPL by about 1%
    check "$m: q8_0 PPL within 3% of f32" close "$b" "$a" 0.03
done
check "ds2: 16-wide attn_k_b falls back to f16" \
    test "$(type_of "$tmp/ds2-tiny-3d-q8.gguf" blk.0.attn_k_b.weight)" = f16
check "ds2: fallback message names the tensor" grep -q "blk.2.attn_k_b.weight.*using f16" "$tmp/q.err"
check "ds2: router kept f32" test "$(type_of "$tmp/ds2-tiny-3d-q8.gguf" blk.1.ffn_gate_inp.weight)" = f32

# ---- determinism over -t --------------------------------------------------------------------------
q "$ds" "$tmp/t1.gguf" q4_0 -t 1 -q >/dev/null 2>&1
q "$ds" "$tmp/t4.gguf" q4_0 -t 4 -q >/dev/null 2>&1
check "same bytes for -t 1 and -t 4" cmp -s "$tmp/t1.gguf" "$tmp/t4.gguf"

# ---- rules ----------------------------------------------------------------------------------------
q "$ds" "$tmp/r.gguf" q4_0 --custom-q 'ffn_up_exps=q8_0,_exps=q5_1,^output\.weight$=q6_k,zzz_none=q4_1' \
    >/dev/null 2>"$tmp/r.err"
check "custom-q: exit 0" test $? -eq 0
check "custom-q: first match wins" test "$(type_of "$tmp/r.gguf" blk.1.ffn_up_exps.weight)" = q8_0
check "custom-q: second rule" test "$(type_of "$tmp/r.gguf" blk.1.ffn_down_exps.weight)" = q5_1
check "custom-q: q6_k on 64-wide output falls back to q8_0" \
    test "$(type_of "$tmp/r.gguf" output.weight)" = q8_0
check "custom-q: default elsewhere" test "$(type_of "$tmp/r.gguf" blk.0.ffn_up.weight)" = q4_0
check "custom-q: unused rule warned" grep -q "zzz_none=q4_1.*matches no" "$tmp/r.err"
printf '# attention in 8 bits\n\n  attn_.*=q8_0  \nblk\\.[0-9]{1,2}\\.ffn=iq4_nl\n' >"$tmp/rules.txt"
q "$ll" "$tmp/rf.gguf" q4_1 --rules "$tmp/rules.txt" >/dev/null 2>&1
check "rules file: attn q8_0" test "$(type_of "$tmp/rf.gguf" blk.1.attn_q.weight)" = q8_0
check "rules file: ffn iq4_nl" test "$(type_of "$tmp/rf.gguf" blk.1.ffn_down.weight)" = iq4_nl
check "rules file: default q4_1" test "$(type_of "$tmp/rf.gguf" output.weight)" = q4_1

# ---- bad input: one error line, exit != 0, no output ----------------------------------------------
expect_fail() { # expect_fail NAME PATTERN ARGS...
    local name=$1 pat=$2
    shift 2
    rm -f "$tmp/bad.gguf"
    q "$@" >/dev/null 2>"$tmp/bad.err"
    local rc=$?
    check "$name: exit != 0" test "$rc" -ne 0
    check "$name: message" grep -q -- "$pat" "$tmp/bad.err"
    check "$name: one error line" one_error "$tmp/bad.err"
    check "$name: no output" test ! -e "$tmp/bad.gguf"
}
expect_fail "unknown type" "unknown type 'q7_7' (valid: .*q4_k" "$ll" "$tmp/bad.gguf" q7_7
expect_fail "read-only type" "TYPE: imc reads type iq2_xxs but cannot write it.*--external" \
    "$ll" "$tmp/bad.gguf" IQ2_XXS
expect_fail "read-only type in a rule" "--custom-q: imc reads type iq4_ks_r4 but cannot write it" \
    "$ll" "$tmp/bad.gguf" q8_0 --custom-q 'attn=iq4_ks_r4'
expect_fail "bad regex" "bad regex 'attn_(q'" "$ll" "$tmp/bad.gguf" q8_0 --custom-q 'attn_(q=q4_0'
expect_fail "missing model" "$tmp/nope.gguf" "$tmp/nope.gguf" "$tmp/bad.gguf" q8_0
expect_fail "missing imatrix" "$tmp/nope.dat" "$ll" "$tmp/bad.gguf" q8_0 --imatrix "$tmp/nope.dat"
expect_fail "missing rules" "$tmp/nope.txt" "$ll" "$tmp/bad.gguf" q8_0 --rules "$tmp/nope.txt"
# a legacy .dat whose only entry has 32 values where blk.0.attn_output.weight has 64 columns
{
    printf '\x01\x00\x00\x00\x18\x00\x00\x00%s' "blk.0.attn_output.weight"
    printf '\x01\x00\x00\x00\x20\x00\x00\x00'
    for _ in $(seq 32); do printf '\x00\x00\x80\x3f'; done
} >"$tmp/short.dat"
expect_fail "imatrix shape" "'blk.0.attn_output.weight'.*expected 64 values x 1 matrices, found 32 x 1" \
    "$ll" "$tmp/bad.gguf" q4_0 --imatrix "$tmp/short.dat"

# an imatrix entry for a tensor the model lacks: a warning, not an error
{
    printf '\x01\x00\x00\x00\x11\x00\x00\x00%s' "blk.9.none.weight"
    printf '\x01\x00\x00\x00\x20\x00\x00\x00'
    for _ in $(seq 32); do printf '\x00\x00\x80\x3f'; done
} >"$tmp/foreign.dat"
q "$ll" "$tmp/f.gguf" q4_0 --imatrix "$tmp/foreign.dat" >/dev/null 2>"$tmp/f.err"
check "foreign imatrix entry: exit 0" test $? -eq 0
check "foreign imatrix entry: warned" grep -q "1 of 1 imatrix entries name no tensor.*blk.9.none" \
    "$tmp/f.err"
check "missing entries: warned per tensor" grep -q "no imatrix entry for tensor 'output.weight'" \
    "$tmp/f.err"

# ---- THE KEY CHECK: imatrix lowers the KL divergence at 4 bits ------------------------------------
n=$(wc -l <"$text")
head -n $((n / 2)) "$text" >"$tmp/calib.txt" # imatrix text
tail -n +$((n / 2 + 1)) "$text" >"$tmp/eval.txt" # held-out KLD text
for c in "llama-tiny iq4_nl" "ds2-tiny-3d q4_0"; do
    read -r m t <<<"$c"
    run imatrix -m "$tmp/$m.gguf" -f "$tmp/calib.txt" -o "$tmp/$m-imat.gguf" --ctx 128 \
        >/dev/null 2>&1
    check "$m: imatrix computed" test -s "$tmp/$m-imat.gguf"
    run perplexity -m "$tmp/$m.gguf" -f "$tmp/eval.txt" --ctx 128 --kld-save "$tmp/$m.kld" \
        -q >/dev/null 2>&1
    q "$tmp/$m.gguf" "$tmp/$m-$t.gguf" "$t" -q >/dev/null 2>&1
    q "$tmp/$m.gguf" "$tmp/$m-$t-im.gguf" "$t" --imatrix "$tmp/$m-imat.gguf" >/dev/null \
        2>"$tmp/im.err"
    check "$m: quantized with the imatrix" test -s "$tmp/$m-$t-im.gguf"
    run perplexity -m "$tmp/$m-$t.gguf" --kld-base "$tmp/$m.kld" -q >"$tmp/k0.out" 2>&1
    run perplexity -m "$tmp/$m-$t-im.gguf" --kld-base "$tmp/$m.kld" -q >"$tmp/k1.out" 2>&1
    k0=$(mean_kld "$tmp/k0.out")
    k1=$(mean_kld "$tmp/k1.out")
    echo "  $m $t mean KLD vs f32 (held-out half): without imatrix $k0, with imatrix $k1"
    check "$m $t: mean KLD with imatrix < without" less "$k1" "$k0"
done

check_done
