#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317 # literal {model} ... and $1 on purpose; helpers via check
# tests/e2e/test_sweep_types: `imc sweep` recipes with `!external CMD` score the tensor types
# imc reads but cannot write, without the reference tools: tests/e2e/tool_golden_quantize
# stands in for llama-quantize and writes the reference's golden blocks of the type (an i-quant,
# a trellis type, a type with per-row meta and interleaved rows, a row-interleaved legacy type).
# Each row of results.csv carries the type as the recipe wrote it, a finite PPL, and the figures
# `imc perplexity --kld-base` gives by hand on the stand-in's output (bytes compared); imc
# quantize reads such a file (to f32: the same PPL, bit for bit); an
# external recipe's rules may name a type imc only reads, and reach the command as the
# {rules} list. Bad input: a built-in recipe with such a type (the message points to
# --external), an empty !external, !external twice, a !type that is not a type name: exit 1
# naming the file and line, no results written.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" sweept
tool=${IMC_BUILD_DIR:?IMC_BUILD_DIR must point to the build folder}/tool_golden_quantize
[ -x "$tool" ] || {
    echo "FAIL no $tool (build the project)"
    exit 1
}
col() { # col CSV RECIPE COLUMN: a value of results.csv
    awk -F, -v r="$2" -v c="$3" 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
                                 $1 == r { print $(k[c]); exit }' "$1"
}
close() { awk -v a="$1" -v b="$2" -v e="$3" 'BEGIN { d = a - b; if (d < 0) d = -d;
                                                    exit !(a != "" && b != "" && d <= e) }'; }
finite() { awk -v a="$1" 'BEGIN { exit !(a + 0 > 1 && a + 0 < 1e30) }'; }

m=$tmp/model.gguf
"$IMC_BIN" gen-model --preset llama-k-tiny -o "$m" >/dev/null 2>&1 || {
    echo "FAIL gen-model"
    exit 1
}
R=$tmp/recipes
mkdir -p "$R"
types=(IQ2_XXS iq2_kt IQ4_KS_R4 q4_0_r8)
for t in "${types[@]}"; do
    printf '!imatrix no\n!type %s\n!external %s {model} {out} {type}\n' "$t" "$tool" \
        >"$R/x-$t.txt"
done
# rules naming a type imc only reads: the command gets them as --custom-q's list
printf '!external sh -c '"'"'printf %%s "$1" >%s; exec %s "$2" "$3" "$4"'"'"' _ {rules} {model} {out} {type}\n!type iq3_s\nffn_down=iq2_xs\n' \
    "$tmp/rules.got" "$tool" >"$R/y-rules.txt"
printf '!type q4_0\n' >"$R/z-builtin.txt"
O=$tmp/out
run sweep --base "$m" -f "$text" --ctx 64 --chunks 4 --rules-dir "$R" -o "$O" -t 2 \
    >"$tmp/s.out" 2>"$tmp/s.err"
check "sweep: exit 0" test $? -eq 0 || tail -5 "$tmp/s.err"
check "sweep: a row per recipe" \
    test "$(cut -d, -f1 "$O/results.csv" | tr '\n' ' ')" = \
    "recipe x-IQ2_XXS x-IQ4_KS_R4 x-iq2_kt x-q4_0_r8 y-rules z-builtin "
check "{rules}: the list the command got" test "$(cat "$tmp/rules.got" 2>/dev/null)" = \
    'ffn_down=iq2_xs'
check "built-in recipe beside them: q4_0, 4.5 bpw" test "$(col "$O/results.csv" z-builtin bpw)" = 4.5
for t in "${types[@]}" iq3_s; do
    r=x-$t
    [ "$t" = iq3_s ] && r=y-rules
    check "$r: type as written" test "$(col "$O/results.csv" "$r" type)" = "$t"
    check "$r: finite PPL $(col "$O/results.csv" "$r" ppl)" finite "$(col "$O/results.csv" "$r" ppl)"
    IMC_SOURCE_DIR=$IMC_SOURCE_DIR "$tool" "$m" "$tmp/$t.gguf" "$t" >/dev/null
    check "$r: the model holds $t" grep -qi " $t " <("$IMC_BIN" info "$tmp/$t.gguf" 2>/dev/null)
    run perplexity -m "$tmp/$t.gguf" --kld-base "$O/_base.logits" -q >"$tmp/$t.kld" 2>&1
    ppl=$(awk '/^Mean PPL\(Q\)/ { print $4; exit }' "$tmp/$t.kld")
    kld=$(awk '/^Mean +KLD:/ { print $3; exit }' "$tmp/$t.kld")
    # results.csv prints 9 significant digits (1e-5 at PPL ~ 1000)
    check "$r: PPL = by hand $ppl" close "$(col "$O/results.csv" "$r" ppl)" "$ppl" 2e-5
    check "$r: KLD = by hand $kld" close "$(col "$O/results.csv" "$r" kld)" "$kld" 5e-7
    check "$r: size = the file by hand" \
        test "$(col "$O/results.csv" "$r" size_bytes)" = "$(stat -c %s "$tmp/$t.gguf")"
done

# imc quantize reads these types too: IQ4_KS_R4 (per-row meta, interleaved rows) to f32 scores
# the same PPL, bit for bit, as the file itself
"$IMC_BIN" quantize "$tmp/IQ4_KS_R4.gguf" "$tmp/deq.gguf" f32 -q >/dev/null 2>&1
for f in IQ4_KS_R4 deq; do
    run perplexity -m "$tmp/$f.gguf" -f "$text" --ctx 64 --chunks 4 -q 2>/dev/null |
        sed -n 's/^Final estimate: PPL = //p' >"$tmp/$f.ppl"
done
check "quantize IQ4_KS_R4 -> f32: the same PPL $(cat "$tmp/deq.ppl")" \
    test -s "$tmp/deq.ppl" -a "$(cat "$tmp/deq.ppl")" = "$(cat "$tmp/IQ4_KS_R4.ppl")"

# ---- bad input ---------------------------------------------------------------------------------
expect_fail() { # expect_fail NAME PATTERN RECIPE-TEXT
    local d=$tmp/bad$((++nbad))
    mkdir -p "$d/r"
    printf '%s\n' "$3" >"$d/r/r.txt"
    run sweep --base "$m" -f "$text" --ctx 64 --chunks 4 --rules-dir "$d/r" -o "$d/o" \
        >"$d/out" 2>"$d/err"
    local rc=$?
    check "$1: exit 1 (was $rc)" test "$rc" -eq 1
    check "$1: message" grep -q -- "$2" "$d/err"
    check "$1: no results written" test -z "$(find "$d/o" -name 'results.*' 2>/dev/null)"
}
nbad=0
expect_fail "built-in recipe, read-only type" \
    "r.txt:1: imc reads type iq2_xxs but cannot write it.*--external" '!type iq2_xxs'
expect_fail "built-in rule, read-only type" \
    "r.txt:2: imc reads type iq4_kt but cannot write it" $'!type q4_0\nffn=iq4_kt'
expect_fail "empty !external" "r.txt:1: expected '!external CMD'" '!external   '
expect_fail "!external twice" "r.txt:2: the directive is given twice" \
    $'!external a {model} {out} {type}\n!external b {model} {out} {type}'
expect_fail "!type not a name" "r.txt:2: '!type q4/0'" $'!external a {model} {out} {type}\n!type q4/0'
check_done
