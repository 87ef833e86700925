#!/usr/bin/env bash
# tests/e2e/test_gen_model: `imc gen-model` is deterministic (same preset and seed -> identical
# bytes, also with any number of quantizing threads), every preset loads with `imc info`,
# options and bad arguments behave.
# ds2-bench (~245 MB) only with IMC_TEST_BENCH=1.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" gen_model

gen() { "$IMC_BIN" gen-model "$@" >/dev/null; }

presets=$("$IMC_BIN" gen-model --list | awk '{print $1}')
check "--list names the presets" grep -q ds2-tiny-3d <<<"$presets"
for p in $presets; do
    if [ "$p" = ds2-bench ] && [ "${IMC_TEST_BENCH:-0}" != 1 ]; then
        continue
    fi
    if "$IMC_BIN" gen-model --list | grep -q "^$p .*large:"; then
        echo "# $p: large (GBs), not generated here" # bench/bench_reference.sh uses it
        continue
    fi
    check "$p generates" gen --preset "$p" -o "$tmp/$p-a.gguf"
    check "$p generates again" gen --preset "$p" -o "$tmp/$p-b.gguf"
    check "$p is deterministic" cmp -s "$tmp/$p-a.gguf" "$tmp/$p-b.gguf"
    check "$p loads with imc info" bash -c "'$IMC_BIN' info '$tmp/$p-a.gguf' >/dev/null"
    rm -f "$tmp/$p-b.gguf"
done

gen --preset llama-tiny -o "$tmp/seed1.gguf" --seed 1
check "another seed gives other bytes" bash -c "! cmp -s '$tmp/seed1.gguf' '$tmp/llama-tiny-a.gguf'"
gen --preset llama-tiny -o "$tmp/notext.gguf" --no-text
check "--no-text gives a vocabulary without merges" \
    bash -c "'$IMC_BIN' info '$tmp/notext.gguf' | grep -q ' 0 merges'"
check "--type q8_0" gen --preset ds2-tiny-all -o "$tmp/q8.gguf" --type q8_0
check "q8_0 weights listed" bash -c "'$IMC_BIN' info '$tmp/q8.gguf' | grep -q 'blk.1.attn_q_a.weight *q8_0'"
# the rows quantized by 1, 3 and 7 threads: the same bytes (each row depends on itself alone)
for n in 1 3 7; do
    check "--type q4_k -t $n" gen --preset ds2-tiny-all -o "$tmp/t$n.gguf" --type q4_k -t "$n"
done
check "-t 1, 3, 7 write the same bytes" bash -c "cmp -s '$tmp/t1.gguf' '$tmp/t3.gguf' &&
    cmp -s '$tmp/t1.gguf' '$tmp/t7.gguf'"
check "--type q4_k falls back for 64-wide rows" \
    bash -c "'$IMC_BIN' gen-model --preset llama-tiny -o '$tmp/q4k.gguf' --type q4_k >/dev/null &&
             '$IMC_BIN' info '$tmp/q4k.gguf' | grep -q 'blk.0.attn_q.weight *q5_0'"

# bad arguments: exit 2 (usage), one error line, no output file
for args in "--preset nope -o $tmp/x.gguf" "--preset llama-tiny -o $tmp/x.gguf --type q9_z" \
            "--preset llama-tiny" "--preset llama-tiny -o $tmp/x.gguf --seed -3"; do
    # shellcheck disable=SC2086
    "$IMC_BIN" gen-model $args >/dev/null 2>"$tmp/err"
    rc=$?
    check "gen-model $args: exit 2 (was $rc)" test "$rc" -eq 2
    check "gen-model $args: one error line" test "$(wc -l <"$tmp/err")" -eq 1
    check "gen-model $args: no file" test ! -e "$tmp/x.gguf"
done

check_done
