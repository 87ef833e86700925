#!/usr/bin/env bash
# scripts/record-reference.sh: re-records the pinned reference data of tests/data/reference/
# that tests/e2e/test_reference.sh checks. Re-recording is a deliberate act, committed on its
# own with a message that says why the numbers changed; no test ever writes these files.
#
#   scripts/record-reference.sh presets           presets.sha256: the bytes of every
#                                                 `imc gen-model` preset (default type and seed)
#   scripts/record-reference.sh ref IK_BIN NLC_DIR   ppl.tsv and imatrix.tsv: the figures of the
#                                                 llama.cpp-family reference tools: ik_llama.cpp's
#                                                 llama-perplexity and llama-imatrix in IK_BIN
#                                                 (../shared/scripts/build-reference.sh), and
#                                                 mainline llama.cpp through node-llama-cpp
#                                                 installed (npm) in NLC_DIR, run by
#                                                 scripts/reference-ppl.mjs
#
# Both are built or installed outside the project (tests/data/reference/README.md).
# IMC_BIN selects imc (default build/imc): it only generates the models; IMC_BUILD_DIR (default
# build) holds test_e2e_reference_imatrix, whose --record mode reads the reference's .dat.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${IMC_BIN:-$root/build/imc}
out=$root/tests/data/reference
text=$root/data/text/calibration.txt
tmp=$(mktemp -d "${TMPDIR:-/tmp}/imc_record.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# mainline llama.cpp (f32 KV cache, flash attention off) is the tight reference: ctx 128, 10
# chunks; ds2-tiny-ik and ds2-tiny-all hold ds2-tiny-3d's weights in layouts mainline does not
# load, so they are pinned to its figure for ds2-tiny-3d (imc gives the three the same bytes).
mainline=(llama-tiny llama-k-tiny llama-moe-tiny qwen3-tiny qwen3moe-tiny glm4moe-tiny ds2-tiny-3d
    ds2-lite-tiny)
same_as_3d=(ds2-tiny-ik ds2-tiny-all)
# ik_llama.cpp pads n_ctx to 256 and keeps V in f16 on the CPU (its flash attention takes no f32
# KV; without it V must be f16): ctx 256, 8 chunks, K in f32. It agrees with mainline on the
# presets recorded from it, not on llama-moe-tiny and deepseek2 (see README.md).
ik_ppl=(llama-tiny llama-k-tiny qwen3-tiny qwen3moe-tiny glm4moe-tiny)
ik_imatrix=("llama-tiny" "llama-k-tiny" "llama-moe-tiny blk.0." "qwen3-tiny"
    "qwen3moe-tiny blk.0." "glm4moe-tiny")
ik_args=(-c 256 --chunks 8 -b 256 -ctk f32 -no-fa -t 2)

record_presets() {
    local f=$out/presets.sha256 p
    {
        echo "# sha256 of \`imc gen-model --preset NAME -o NAME.gguf\` (default type and seed)."
        echo "# Recorded by scripts/record-reference.sh presets; checked by tests/e2e/test_reference.sh."
        for p in $("$bin" gen-model --list | awk '{ print $1 }'); do
            "$bin" gen-model --preset "$p" -o "$tmp/$p.gguf" >/dev/null
            echo "$(sha256sum <"$tmp/$p.gguf" | cut -d' ' -f1)  $p"
            rm -f "$tmp/$p.gguf"
        done
    } >"$tmp/presets.sha256"
    mv "$tmp/presets.sha256" "$f"
    echo "wrote $f"
}

# rtol of an imatrix row: the layer-0 attention inputs see only f32 arithmetic on both sides
# (1e-5: summation order); everything downstream of the first attention carries the
# reference's f16 V cache (unit roundoff 2^-11 = 4.9e-4): 1e-3.
imatrix_rtol() { case $1 in blk.0.attn_[qkv].weight) echo 1e-5 ;; *) echo 1e-3 ;; esac; }

record_ref() {
    local ik=$1 nlc=$2 p pre ppl rec=${IMC_BUILD_DIR:-$root/build}/test_e2e_reference_imatrix
    if [ ! -x "$ik/llama-perplexity" ] || [ ! -x "$ik/llama-imatrix" ]; then
        echo "record-reference: no llama-perplexity / llama-imatrix in $ik" >&2
        exit 1
    fi
    [ -d "$nlc/node_modules/node-llama-cpp" ] || {
        echo "record-reference: no node_modules/node-llama-cpp in $nlc (npm install it there)" >&2
        exit 1; }
    [ -x "$rec" ] || { echo "record-reference: build $rec first" >&2; exit 1; }
    for p in "${mainline[@]}" "${same_as_3d[@]}" "${ik_ppl[@]}"; do
        [ -f "$tmp/$p.gguf" ] || "$bin" gen-model --preset "$p" -o "$tmp/$p.gguf" >/dev/null
    done
    {
        echo "# PPL of the llama.cpp-family reference tools on the presets, data/text/calibration.txt."
        echo "# Recorded by scripts/record-reference.sh ref (commands: README.md); checked by"
        echo "# tests/e2e/test_reference.sh within rtol (relative)."
        echo "# preset	ctx	chunks	ppl	rtol	source"
        for p in "${mainline[@]}"; do
            ppl=$(cd "$nlc" && node "$root/scripts/reference-ppl.mjs" "$tmp/$p.gguf" "$text" 128 10 |
                awk '/^PPL / { print $2 }')
            printf '%s\t128\t10\t%s\t1e-6\tllama.cpp\n' "$p" "$ppl"
            [ "$p" = ds2-tiny-3d ] && for pre in "${same_as_3d[@]}"; do
                printf '%s\t128\t10\t%s\t1e-6\tllama.cpp (ds2-tiny-3d, same weights)\n' "$pre" "$ppl"
            done
        done
        for p in "${ik_ppl[@]}"; do
            ppl=$("$ik/llama-perplexity" -m "$tmp/$p.gguf" -f "$text" "${ik_args[@]}" 2>&1 |
                sed -n 's/^Final estimate: PPL over .* = \([0-9.]*\) .*/\1/p')
            printf '%s\t256\t8\t%s\t1e-4\tik_llama.cpp\n' "$p" "$ppl"
        done
    } >"$tmp/ppl.tsv"
    {
        echo "# Per-column means (sum x^2 / count) of ik_llama.cpp's llama-imatrix (legacy .dat) on the"
        echo "# presets, ctx 256, 8 chunks of data/text/calibration.txt, at columns 0, 1, n/3, n/2, n-1"
        echo "# of every entry (flat over experts). Recorded by scripts/record-reference.sh ref;"
        echo "# checked by tests/e2e/test_reference_imatrix.c within rtol (relative)."
        echo "# preset	tensor	column	value	rtol"
        for row in "${ik_imatrix[@]}"; do
            read -r p pre <<<"$row"
            [ -f "$tmp/$p.gguf" ] || "$bin" gen-model --preset "$p" -o "$tmp/$p.gguf" >/dev/null
            "$ik/llama-imatrix" -m "$tmp/$p.gguf" -f "$text" "${ik_args[@]}" -no-fmoe -no-fug \
                -o "$tmp/$p.dat" >"$tmp/$p.log" 2>&1 || { tail -5 "$tmp/$p.log" >&2; exit 1; }
            "$rec" --record "$tmp/$p.dat" "$p" "${pre:-}" | while IFS=$'\t' read -r a t c v; do
                printf '%s\t%s\t%s\t%s\t%s\n' "$a" "$t" "$c" "$v" "$(imatrix_rtol "$t")"
            done
        done
    } >"$tmp/imatrix.tsv"
    mv "$tmp/ppl.tsv" "$out/ppl.tsv"
    mv "$tmp/imatrix.tsv" "$out/imatrix.tsv"
    echo "wrote $out/ppl.tsv $out/imatrix.tsv"
}

case ${1:-} in
presets) record_presets ;;
ref) record_ref "${2:?usage: record-reference.sh ref IK_BIN NLC_DIR}" \
    "${3:?usage: record-reference.sh ref IK_BIN NLC_DIR}" ;;
*)
    echo "usage: scripts/record-reference.sh presets | ref IK_BIN NLC_DIR" >&2
    exit 2
    ;;
esac
