#!/usr/bin/env bash
# shellcheck disable=SC2016 # the fake quantizers are written with literal $1 ... on purpose
# tests/e2e/test_quantize_external: `imc quantize --external CMD` (coordinator/quantize.h): the
# placeholders reach the command as single shell words (paths with blanks and quotes included),
# {rules} carries the rules as one --custom-q list, a fake external quantizer that calls
# `imc quantize` itself gives the same bytes as the built-in one, and every failure of the
# external side (exit 3, a signal, a missing command, exit 0 without output, garbage output) or
# of the template fails with the command named, exit != 0, and leaves OUT untouched and no
# temporary file. llama-quantize itself is not needed: the fakes stand in for it.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" qext
d="$tmp/dir with 'quote'"
mkdir -p "$d"
m=$d/model.gguf
"$IMC_BIN" gen-model --preset llama-k-tiny -o "$m" >/dev/null 2>&1 || {
    echo "FAIL gen-model"
    exit 1
}
run imatrix -m "$m" -f "$text" -o "$d/imat.gguf" --ctx 64 --chunks 4 -q >/dev/null 2>&1 || {
    echo "FAIL imatrix"
    exit 1
}

# A fake llama-quantize: --imatrix F --custom-q LIST MODEL OUT TYPE; records its arguments.
cat >"$tmp/fake-quantize" <<EOF
#!/bin/sh
printf '%s\n' "\$@" >"$tmp/args"
echo "fake-quantize: to stdout"
[ "\$1" = --imatrix ] || exit 9
exec "$IMC_BIN" quantize "\$5" "\$6" "\$7" --imatrix "\$2" --custom-q "\$4" -q
EOF
chmod +x "$tmp/fake-quantize"
printf '# recipe\nffn_(up|gate)=q4_k\nattn_.*=q5_0\n' >"$tmp/rules.txt"
tmpl="$tmp/fake-quantize --imatrix {imatrix} --custom-q {rules} {model} {out} {type}"

out=$d/out.gguf
"$IMC_BIN" quantize "$m" "$out" q2_k --imatrix "$d/imat.gguf" --rules "$tmp/rules.txt" \
    --external "$tmpl" >"$tmp/ok.out" 2>"$tmp/ok.err"
check "fake llama-quantize: exit 0" test $? -eq 0
check "fake llama-quantize: its stdout went to stderr" grep -q "fake-quantize: to stdout" \
    "$tmp/ok.err"
check "fake llama-quantize: stdout has only the summary" \
    test "$(cat "$tmp/ok.out")" = "quantized $m -> $out (q2_k) with the external quantizer"
check "{model} is one word" test "$(sed -n 5p "$tmp/args")" = "$m"
check "{out} is a temporary beside OUT" grep -qx "$out.tmp.[0-9]*" <(sed -n 6p "$tmp/args")
check "{type} as given" test "$(sed -n 7p "$tmp/args")" = q2_k
check "{imatrix}" test "$(sed -n 2p "$tmp/args")" = "$d/imat.gguf"
check "{rules}: the rules as one --custom-q list" \
    test "$(sed -n 4p "$tmp/args")" = 'ffn_(up|gate)=q4_k,attn_.*=q5_0'
"$IMC_BIN" quantize "$m" "$tmp/ref.gguf" q2_k --imatrix "$d/imat.gguf" --rules "$tmp/rules.txt" \
    -q >/dev/null 2>&1
check "fake llama-quantize: same bytes as the built-in quantizer" cmp "$out" "$tmp/ref.gguf"
check "no temporary file left" test -z "$(find "$d" -name '*.tmp.*')"

# TYPE is passed verbatim to an external quantizer (it may know types imc does not)
"$IMC_BIN" quantize "$m" "$tmp/k.gguf" Q4_K_M \
    --external "sh -c 'echo \"\$0\" >$tmp/type; cp \"\$1\" \"\$2\"' {type} {model} {out}" \
    >/dev/null 2>"$tmp/type.err"
check "TYPE verbatim: exit 0" test $? -eq 0
check "TYPE verbatim: the command got Q4_K_M" test "$(cat "$tmp/type" 2>/dev/null)" = Q4_K_M

# failures: exit != 0, the message, OUT untouched, no temporary file
echo "old" >"$tmp/keep.gguf"
expect_fail() { # expect_fail NAME PATTERN QUANTIZE-ARGS...
    local name=$1 pat=$2
    shift 2
    "$IMC_BIN" quantize "$m" "$tmp/keep.gguf" "$@" >"$tmp/f.out" 2>"$tmp/f.err"
    local rc=$?
    check "$name: exit != 0" test "$rc" -ne 0
    check "$name: message" grep -q -- "$pat" "$tmp/f.err"
    check "$name: OUT untouched" test "$(cat "$tmp/keep.gguf")" = old
    check "$name: no temporary file" test -z "$(find "$tmp" -maxdepth 1 -name 'keep.gguf.tmp*')"
    check "$name: nothing on stdout" test ! -s "$tmp/f.out"
    [ "$(grep -c . "$tmp/f.err")" -le 3 ] || { echo "  (stderr:)"; cat "$tmp/f.err"; }
}
printf '#!/bin/sh\necho partial >"$2"\nexit 3\n' >"$tmp/exit3"
expect_fail "exit 3" "failed with exit status 3: sh $tmp/exit3 model '" q4_0 \
    --external "sh $tmp/exit3 model {out} {model} {type}"
printf '#!/bin/sh\necho partial >"$1"\nkill -9 $$\n' >"$tmp/killed"
expect_fail "child killed" "status 137 (what it ran was killed by signal 9" q4_0 \
    --external "sh $tmp/killed {out} {model} {type}"
expect_fail "killed" "the quantizer was killed by signal 9" q4_0 \
    --external 'kill -9 $$ # {out} {model} {type}'
expect_fail "not found" "exit status 127 (command not found?)" q4_0 \
    --external "$tmp/no-such-quantizer {model} {out} {type}"
expect_fail "exit 0, no file" "exited 0 but wrote no file at $tmp/keep.gguf.tmp" q4_0 \
    --external "true {model} {out} {type}"
expect_fail "exit 0, garbage" "output is not a readable GGUF" q4_0 \
    --external "sh -c 'head -c 4096 /dev/urandom >\"\$0\"' {out} {model} {type}"
expect_fail "--imatrix not in the template" "no {imatrix} placeholder" q4_0 \
    --imatrix "$d/imat.gguf" --external "cp {model} {out} # {type}"
expect_fail "{imatrix} without --imatrix" "uses {imatrix} but no --imatrix" q4_0 \
    --external "cp {model} {out} {imatrix} {type}"
expect_fail "rules not in the template" "no {rules} placeholder" q4_0 --custom-q 'attn=q8_0' \
    --external "cp {model} {out} # {type}"
expect_fail "no {out}" "no {out} placeholder" q4_0 --external "cp {model} x # {type}"
printf 'blk\\.(1,2)\\.attn_q=q8_0\n' >"$tmp/comma.txt"
expect_fail "regex with ','" "contains ','" q4_0 --rules "$tmp/comma.txt" \
    --external "cp {model} {out} {rules} {type}"
expect_fail "bad TYPE word" "TYPE 'q4 0' is not a type name" 'q4 0' \
    --external "cp {model} {out} {type}"
expect_fail "unknown rule type" "unknown type 'q9_z'" q4_0 --custom-q 'attn=q9_z' \
    --external "cp {model} {out} {rules} {type}"

check_done
