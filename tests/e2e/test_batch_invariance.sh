#!/usr/bin/env bash
# tests/e2e/test_batch_invariance: `imc perplexity` on a MoE model (ds2-tiny-3d) prints the same
# bytes whatever the batch size and thread count (DESIGN.md §4 "Perplexity"). MoE experts see a
# number of routed tokens that depends on the batch, so this fails unless a token's matmul output
# is bitwise independent of the other tokens in the call (kernels/cpu/matmul.c). Twice: with f32
# weights (the f32 GEMM) and with q8_0 weights, which the default --matmul q8 multiplies on the
# integer route (kernels/cpu/qmm.h: activations quantized per row).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" batchinv
run() { # run NAME ARGS...: perplexity stdout into $tmp/NAME.out
    local name=$1
    shift
    if ! "$IMC_BIN" perplexity -m "$m" -f "$text" --ctx 64 --chunks 6 "$@" >"$tmp/$name.out" \
        2>"$tmp/$name.err"; then
        echo "FAIL perplexity $*"
        cat "$tmp/$name.err"
        fail=$((fail + 1))
    fi
}
for type in f32 q8_0; do
    m=$tmp/m-$type.gguf
    if ! "$IMC_BIN" gen-model --preset ds2-tiny-3d --type "$type" -o "$m" >/dev/null; then
        echo "FAIL gen-model ds2-tiny-3d --type $type"
        exit 1
    fi
    run b64 -b 64
    if ! grep -q '^Final estimate: PPL = ' "$tmp/b64.out"; then
        echo "FAIL $type: no final estimate in the -b 64 output"
        fail=$((fail + 1))
    fi
    for v in "b128 -b 128" "b192 -b 192" "b2048 -b 2048" "b64t1 -b 64 -t 1" "b192t3 -b 192 -t 3"; do
        read -r name args <<<"$v"
        # shellcheck disable=SC2086 # args is a word list
        run "$name" $args
        if cmp -s "$tmp/b64.out" "$tmp/$name.out"; then
            echo "PASS $type $args: same output as -b 64"
        else
            echo "FAIL $type $args: output differs from -b 64"
            diff "$tmp/b64.out" "$tmp/$name.out" | head -5
            fail=$((fail + 1))
        fi
    done
done
check_done
