#!/usr/bin/env bash
# tests/e2e/test_matmul: --matmul q8|f32 (kernels/cpu/qmm.h) end to end on q8_0 and q4_0 models
# and on q4_k and iq4_xs ones (the 256-block route, q8_K-like activations), and on bf16 ones (bf16
# activations, kernels/cpu/bmm.h).
# q8 changes the numbers (the integer route is taken) but stays within 0.5% of f32's PPL (630
# scored tokens: on the MoE preset activation rounding flips some expert choices; llama.cpp's own
# PPL on these files lies between the two, see README); its
# output is the same bytes for -t 1 and -t 2 and under mpirun in pipeline and expert layouts
# (perplexity and the imatrix file); the log names the mode; q8 is the default; a bad mode is a
# usage error.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" matmul
ppl_of() { sed -nE 's/^Final estimate: PPL = ([0-9.]+).*/\1/p' "$1"; }
within() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && b > 0 && d <= r * b) }'; }

specs="llama-tiny:q8_0 llama-tiny:q4_0 ds2-tiny-3d:q8_0 llama-k-tiny:q4_k llama-k-tiny:iq4_xs ds2-tiny-3d:bf16"
for spec in $specs; do
    preset=${spec%%:*} type=${spec##*:}
    m=$tmp/$preset-$type.gguf
    "$IMC_BIN" gen-model --preset "$preset" --type "$type" -o "$m" >/dev/null 2>&1 ||
        check_fail "gen-model $preset $type"
    P=(perplexity -m "$m" -f "$text" --ctx 128 --chunks 10)
    run "${P[@]}" --matmul f32 >"$tmp/f32.out" 2>"$tmp/f32.err"
    run "${P[@]}" --matmul q8 -t 1 >"$tmp/q8.out" 2>"$tmp/q8.err"
    run "${P[@]}" --matmul q8 -t 2 >"$tmp/q8t2.out" 2>/dev/null
    f=$(ppl_of "$tmp/f32.out") q=$(ppl_of "$tmp/q8.out")
    check "$spec: f32 and q8 runs give a PPL ($f, $q)" test -n "$f" -a -n "$q"
    check "$spec: q8 takes the integer route (PPL differs from f32)" test "$f" != "$q"
    check "$spec: q8 PPL within 0.5% of f32 ($q vs $f)" within "$q" "$f" 0.005
    check "$spec: q8, -t 1 and -t 2: same output" cmp -s "$tmp/q8.out" "$tmp/q8t2.out"
    check "$spec: the log names the q8 matmul" grep -q ", q8 matmul, " "$tmp/q8.err"
    check "$spec: q8 is the default" \
        bash -c "'$IMC_BIN' ${P[*]} -t 1 2>/dev/null | cmp -s - '$tmp/q8.out'"
    if command -v "${MPIEXEC:-mpiexec}" >/dev/null; then
        layouts="pp=2,ep=1,dp=1"
        [ "$preset" = ds2-tiny-3d ] && layouts="$layouts pp=1,ep=2,dp=1"
        for l in $layouts; do
            timeout 120 "${MPIEXEC:-mpiexec}" -n 2 --oversubscribe "$IMC_BIN" "${P[@]}" \
                --matmul q8 -t 1 --layout "$l" >"$tmp/np2.out" 2>"$tmp/np2.err"
            check "$spec: q8 under mpirun, $l: same output as one process" \
                cmp -s "$tmp/q8.out" "$tmp/np2.out"
        done
        I=(imatrix -m "$m" -f "$text" --ctx 64 --chunks 3 --matmul q8 -t 1)
        run "${I[@]}" -o "$tmp/im1.gguf" >/dev/null 2>&1
        timeout 120 "${MPIEXEC:-mpiexec}" -n 2 --oversubscribe "$IMC_BIN" "${I[@]}" \
            --layout pp=2,ep=1,dp=1 -o "$tmp/im2.gguf" >/dev/null 2>&1
        check "$spec: q8 imatrix, np 1 and np 2: same bytes" cmp -s "$tmp/im1.gguf" "$tmp/im2.gguf"
    else
        check_skip "$spec under mpirun" "no mpiexec"
    fi
done

run perplexity -m "$m" -f "$text" --matmul q4 >/dev/null 2>"$tmp/bad.err"
check "--matmul q4: exit 2" test $? -eq 2
check "--matmul q4: names the choices" grep -q "q8, f32" "$tmp/bad.err"
check_done
