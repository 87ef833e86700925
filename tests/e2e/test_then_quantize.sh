#!/usr/bin/env bash
# shellcheck disable=SC2016 # the fake quantizer is written with literal $1 ... on purpose
# tests/e2e/test_then_quantize: `imc imatrix ... --then-quantize RULES TYPE OUT` quantizes the
# model with the imatrix just written (src/cmd_imatrix.c, coordinator/quantize.h): OUT has the
# bytes `imc quantize MODEL OUT TYPE --imatrix IMATRIX --rules RULES` gives, also with RULES '-'
# and with --format both (the GGUF form is used); --then-external runs an external quantizer
# instead; under mpirun only rank 0 quantizes. Bad TYPE, rules or template are refused before
# the run (exit 2, no imatrix written); a failing external quantizer fails the command (exit 1)
# after the imatrix is written, without OUT.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" then_quantize
m=$tmp/model.gguf
"$IMC_BIN" gen-model --preset llama-k-tiny -o "$m" >/dev/null 2>&1 || {
    echo "FAIL gen-model"
    exit 1
}
imx() { run imatrix -m "$m" -f "$text" --ctx 64 --chunks 4 "$@"; }
printf 'ffn_down=q4_k\nattn_.*=q8_0\n' >"$tmp/rules.txt"

imx -o "$tmp/a.imat.gguf" --then-quantize "$tmp/rules.txt" q2_k "$tmp/a.gguf" \
    >"$tmp/a.out" 2>"$tmp/a.err"
check "--then-quantize: exit 0" test $? -eq 0
check "--then-quantize: imatrix written" test -s "$tmp/a.imat.gguf"
check "--then-quantize: model written" test -s "$tmp/a.gguf"
check "--then-quantize: logged" grep -q "the imatrix is written; quantizing" "$tmp/a.err"
"$IMC_BIN" quantize "$m" "$tmp/a.ref.gguf" q2_k --imatrix "$tmp/a.imat.gguf" \
    --rules "$tmp/rules.txt" -q >/dev/null 2>&1
check "--then-quantize: same bytes as imc quantize --imatrix --rules" cmp "$tmp/a.gguf" \
    "$tmp/a.ref.gguf"

imx -o "$tmp/b.imat" --format both --then-quantize - q4_0 "$tmp/b.gguf" -q >/dev/null 2>&1
check "--format both, RULES '-': exit 0" test $? -eq 0
"$IMC_BIN" quantize "$m" "$tmp/b.ref.gguf" q4_0 --imatrix "$tmp/b.imat.gguf" -q >/dev/null 2>&1
check "--format both, RULES '-': quantized with the GGUF imatrix" cmp "$tmp/b.gguf" \
    "$tmp/b.ref.gguf"

cat >"$tmp/fake" <<EOF
#!/bin/sh
echo run >>"$tmp/fake.count"
exec "$IMC_BIN" quantize "\$1" "\$2" "\$3" --imatrix "\$4" --custom-q "\$5" -q
EOF
imx -o "$tmp/c.imat.gguf" --then-quantize "$tmp/rules.txt" q2_k "$tmp/c.gguf" \
    --then-external "sh $tmp/fake {model} {out} {type} {imatrix} {rules}" -q >/dev/null 2>&1
check "--then-external: exit 0" test $? -eq 0
"$IMC_BIN" quantize "$m" "$tmp/c.ref.gguf" q2_k --imatrix "$tmp/c.imat.gguf" \
    --rules "$tmp/rules.txt" -q >/dev/null 2>&1
check "--then-external: same bytes as the built-in quantizer" cmp "$tmp/c.gguf" "$tmp/c.ref.gguf"

if command -v "${MPIEXEC:-mpiexec}" >/dev/null; then
    rm -f "$tmp/fake.count"
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 120 \
        "${MPIEXEC:-mpiexec}" -n 2 --oversubscribe "$IMC_BIN" imatrix -m "$m" -f "$text" \
        --ctx 64 --chunks 4 -o "$tmp/d.imat.gguf" --then-quantize - q4_0 "$tmp/d.gguf" \
        --then-external "sh $tmp/fake {model} {out} {type} {imatrix} ''" -q \
        >/dev/null 2>"$tmp/d.err"
    check "under mpirun -n 2: exit 0" test $? -eq 0
    check "under mpirun -n 2: quantized once (rank 0)" \
        test "$(wc -l <"$tmp/fake.count" 2>/dev/null)" = 1
else
    check_skip "--then-quantize under mpirun -n 2" "no ${MPIEXEC:-mpiexec} on this machine"
fi

# refused before the run: exit 2, no imatrix written
before() { # before NAME PATTERN ARGS...
    local name=$1 pat=$2
    shift 2
    rm -f "$tmp/x.imat.gguf" "$tmp/x.gguf"
    imx -o "$tmp/x.imat.gguf" "$@" >/dev/null 2>"$tmp/x.err"
    local rc=$?
    check "$name: exit 2 (was $rc)" test "$rc" -eq 2
    check "$name: message" grep -q -- "$pat" "$tmp/x.err"
    check "$name: no imatrix computed" test ! -e "$tmp/x.imat.gguf"
}
before "unknown TYPE" "unknown type 'q7_k'" --then-quantize - q7_k "$tmp/x.gguf"
before "missing rules file" "$tmp/none.txt" --then-quantize "$tmp/none.txt" q4_0 "$tmp/x.gguf"
printf 'attn=q4_0\nffn=nope\n' >"$tmp/bad.txt"
before "bad rules file" "$tmp/bad.txt:2: unknown type 'nope'" --then-quantize "$tmp/bad.txt" \
    q4_0 "$tmp/x.gguf"
before "template without {imatrix}" "no {imatrix} placeholder" --then-quantize - q4_0 \
    "$tmp/x.gguf" --then-external "cp {model} {out} # {type}"
before "--then-external alone" "needs --then-quantize" --then-external "true"
before "missing values" "needs RULES TYPE OUT" --then-quantize - q4_0

# the external quantizer fails after the imatrix is written
imx -o "$tmp/y.imat.gguf" --then-quantize - q4_0 "$tmp/y.gguf" \
    --then-external "exit 4 # {model} {out} {type} {imatrix}" >/dev/null 2>"$tmp/y.err"
check "failing external: exit 1" test $? -eq 1
check "failing external: message" grep -q "exit status 4" "$tmp/y.err"
check "failing external: the imatrix is kept" test -s "$tmp/y.imat.gguf"
check "failing external: no model" test ! -e "$tmp/y.gguf"
check_done
