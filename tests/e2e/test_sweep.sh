#!/usr/bin/env bash
# shellcheck disable=SC2317 # the helpers below are called through check
# tests/e2e/test_sweep: `imc sweep` (coordinator/sweep.h) on llama-k-tiny with three recipes
# (a !type-only recipe, rules plus !type, and !imatrix no): results.csv/.md/.svg written, the
# Markdown table alone on stdout, every figure equal to what `imc quantize` + `imc perplexity
# --kld-base` give by hand, bpw of the plain types exact (q2_k 2.625, q4_0 4.5), the models
# deleted (kept with --keep-models); resume: a rerun recomputes nothing and writes the same
# files, a changed recipe alone is recomputed; bad input (empty folder, bad recipe line, bad
# directive, clashing names, unwritable --out-dir, a recipe that fails at run time) fails with
# its message naming the file or recipe, exit 1, and no results.* written.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" sweep
sw() { run sweep --base "$m" --imatrix "$im" -f "$eval" --ctx 64 --chunks 12 "$@"; }
col() { # col CSV RECIPE COLUMN: a value of results.csv
    awk -F, -v r="$2" -v c="$3" 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
                                 $1 == r { print $(k[c]); exit }' "$1"
}
# close A B ABS: |A - B| <= ABS (the by-hand figures are printed rounded)
close() { awk -v a="$1" -v b="$2" -v e="$3" 'BEGIN { d = a - b; if (d < 0) d = -d;
                                                    exit !(a != "" && b != "" && d <= e) }'; }
one_line() { [ "$(grep -c "$2" "$1")" -ge 1 ]; }

m=$tmp/model.gguf
"$IMC_BIN" gen-model --preset llama-k-tiny -o "$m" >/dev/null 2>&1 || {
    echo "FAIL gen-model"
    exit 1
}
n=$(wc -l <"$text")
head -n $((n / 2)) "$text" >"$tmp/calib.txt"
eval=$tmp/eval.txt
tail -n +$((n / 2 + 1)) "$text" >"$eval"
im=$tmp/imat.gguf
run imatrix -m "$m" -f "$tmp/calib.txt" -o "$im" --ctx 64 --chunks 8 -q >/dev/null 2>&1
check "imatrix computed" test -s "$im"

R=$tmp/recipes
mkdir -p "$R"
printf '# all q2_k\n!type q2_k\n' >"$R/q2.rules"
printf 'attn_(q|k|v)\\.=q8_0\n  !type q3_k\nffn_down=q4_k\n' >"$R/q3-mix.txt"
printf '!imatrix no\n!type q4_0\n' >"$R/q4_0-noim"
touch "$R/.hidden"
O=$tmp/out
sw --rules-dir "$R" --out-dir "$O" -t 2 >"$tmp/s1.out" 2>"$tmp/s1.err"
check "sweep: exit 0" test $? -eq 0
for f in results.csv results.md results.svg _base.logits _base.result q2.result q3-mix.kld.txt; do
    check "sweep: wrote $f" test -s "$O/$f"
done
check "sweep: models deleted after scoring" test -z "$(find "$O" -name '*.gguf')"
check "sweep: no temporary file left" test -z "$(find "$O" -name '*.tmp.*')"
check "sweep: stdout is the Markdown table" cmp -s "$tmp/s1.out" "$O/results.md"
check "results.csv: header and 3 rows in recipe order" \
    test "$(cut -d, -f1 "$O/results.csv" | tr '\n' ' ')" = "recipe q2 q3-mix q4_0-noim "
check "results.md: base row and 3 recipe rows" test "$(grep -c '^| [a-z0-9]' "$O/results.md")" -eq 5
check "results.md: same top p column" grep -q 'same top p' "$O/results.md"
if command -v python3 >/dev/null; then
    check "results.svg: well-formed XML" python3 -c \
        "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])" "$O/results.svg"
fi
check "results.svg: one point per recipe" test "$(grep -c '<circle' "$O/results.svg")" -eq 6
check "bpw: q2_k 2.625" test "$(col "$O/results.csv" q2 bpw)" = 2.625
check "bpw: q4_0 4.5" test "$(col "$O/results.csv" q4_0-noim bpw)" = 4.5
check "q4_0-noim ran without the imatrix" test "$(col "$O/results.csv" q4_0-noim imatrix)" = no
check "log: progress of each recipe" one_line "$tmp/s1.err" 'sweep: \[3/3\] q4_0-noim: .* bpw'

# the same figures by hand: quantize with the recipe's rules, perplexity against the base file
printf 'attn_(q|k|v)\\.=q8_0\nffn_down=q4_k\n' >"$tmp/q3-rules.txt"
"$IMC_BIN" quantize "$m" "$tmp/q3.gguf" q3_k --imatrix "$im" --rules "$tmp/q3-rules.txt" -q \
    >/dev/null 2>&1
run perplexity -m "$tmp/q3.gguf" --kld-base "$O/_base.logits" -q >"$tmp/q3.kld" 2>&1
kld=$(awk '/^Mean +KLD:/ { print $3; exit }' "$tmp/q3.kld")
top=$(awk '/^Same top p:/ { print $4; exit }' "$tmp/q3.kld")
ppl=$(awk '/^Mean PPL\(Q\)/ { print $4; exit }' "$tmp/q3.kld")
check "q3-mix: KLD $(col "$O/results.csv" q3-mix kld) = by hand $kld" \
    close "$(col "$O/results.csv" q3-mix kld)" "$kld" 5e-7
check "q3-mix: same top p = by hand $top" \
    close "$(col "$O/results.csv" q3-mix same_top_p)" "$top" 5e-4
check "q3-mix: PPL = by hand $ppl" close "$(col "$O/results.csv" q3-mix ppl)" "$ppl" 5e-7
check "q3-mix: size = the file by hand" \
    test "$(col "$O/results.csv" q3-mix size_bytes)" = "$(stat -c %s "$tmp/q3.gguf")"

# ---- resume ----------------------------------------------------------------------------------
cp "$O/results.csv" "$tmp/r1.csv"
cp "$O/results.svg" "$tmp/r1.svg"
sw --rules-dir "$R" -o "$O" >"$tmp/s2.out" 2>"$tmp/s2.err" # -o is --out-dir
check "rerun (-o for --out-dir): exit 0" test $? -eq 0
check "rerun: every recipe 'finished earlier'" \
    test "$(grep -c 'finished earlier' "$tmp/s2.err")" -eq 3
check "rerun: the base not recomputed" one_line "$tmp/s2.err" 'base: .* up to date'
check "rerun: no quantization ran" test "$(grep -c 'quantizing' "$tmp/s2.err")" -eq 0
check "rerun: same results.csv" cmp "$tmp/r1.csv" "$O/results.csv"
check "rerun: same results.svg" cmp "$tmp/r1.svg" "$O/results.svg"
echo "# changed" >>"$R/q2.rules"
sw --rules-dir "$R" --out-dir "$O" --keep-models >"$tmp/s3.out" 2>"$tmp/s3.err"
check "changed recipe: exit 0" test $? -eq 0
check "changed recipe: reported" one_line "$tmp/s3.err" 'q2: the recipe or its inputs changed'
check "changed recipe: only it recomputed" test "$(grep -c 'quantizing' "$tmp/s3.err")" -eq 1
check "changed recipe: same figures (a comment changed)" cmp "$tmp/r1.csv" "$O/results.csv"
check "--keep-models: q2.gguf kept" test -s "$O/q2.gguf"

# ---- bad input ---------------------------------------------------------------------------------
expect_fail() { # expect_fail NAME PATTERN OUT-DIR SWEEP-ARGS...
    local name=$1 pat=$2 out=$3
    shift 3
    sw --out-dir "$out" "$@" >"$tmp/f.out" 2>"$tmp/f.err"
    local rc=$?
    check "$name: exit 1 (was $rc)" test "$rc" -eq 1
    check "$name: message" grep -q -- "$pat" "$tmp/f.err"
    check "$name: no results written" test -z "$(find "$out" -name 'results.*' 2>/dev/null)"
    check "$name: nothing on stdout" test ! -s "$tmp/f.out"
}
mkdir -p "$tmp/empty" "$tmp/bad1" "$tmp/bad2" "$tmp/clash" "$tmp/fails"
expect_fail "empty folder" "holds no recipe file" "$tmp/o1" --rules-dir "$tmp/empty"
printf '!type q4_0\nattn=q9_9\n' >"$tmp/bad1/r1.rules"
expect_fail "bad rule" "$tmp/bad1/r1.rules:2: unknown type 'q9_9'" "$tmp/o2" --rules-dir "$tmp/bad1"
printf '\n!tpye q4_0\n' >"$tmp/bad2/r2"
expect_fail "bad directive" "$tmp/bad2/r2:2: unknown directive '!tpye'" "$tmp/o3" \
    --rules-dir "$tmp/bad2"
printf '!type q4_0\n' >"$tmp/clash/a.txt"
cp "$tmp/clash/a.txt" "$tmp/clash/a.rules"
expect_fail "clashing names" "give the same recipe name 'a'" "$tmp/o4" --rules-dir "$tmp/clash"
touch "$tmp/plainfile"
expect_fail "unwritable --out-dir" "out-dir $tmp/plainfile/out: cannot create" \
    "$tmp/plainfile/out" --rules-dir "$R"
# at run time: an imatrix of another model fails the recipes that use it, by name
"$IMC_BIN" gen-model --preset llama-tiny -o "$tmp/other.gguf" >/dev/null 2>&1
run imatrix -m "$tmp/other.gguf" -f "$tmp/calib.txt" -o "$tmp/other.imat.gguf" --ctx 64 \
    --chunks 2 -q >/dev/null 2>&1
printf '!type q4_0\n' >"$tmp/fails/uses-imatrix"
printf '!type q4_0\n!imatrix no\n' >"$tmp/fails/plain"
im=$tmp/other.imat.gguf
expect_fail "failing recipe" "recipe 'uses-imatrix' .* failed" "$tmp/o5" --rules-dir "$tmp/fails"
check "failing recipe: the summary names it" grep -q "1 of 2 recipe(s) failed.*: uses-imatrix" \
    "$tmp/f.err"
check "failing recipe: the other recipe's result is kept" test -s "$tmp/o5/plain.result"
check_done
