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
#   scripts/record-reference.sh types IK_BIN      types.tsv: every type ik_llama.cpp's
#                                                 llama-quantize writes, scored by its
#                                                 llama-perplexity and by imc on the same file
#
# All are built or installed outside the project (tests/data/reference/README.md).
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
        echo "# A third field 'large': a preset of GBs, which the test does not generate."
        for p in $("$bin" gen-model --list | awk '{ print $1 }'); do
            "$bin" gen-model --preset "$p" -o "$tmp/$p.gguf" >/dev/null
            printf '%s  %s%s\n' "$(sha256sum <"$tmp/$p.gguf" | cut -d' ' -f1)" "$p" \
                "$("$bin" gen-model --list | awk -v p="$p" '$1 == p && /large:/ { print "  large" }')"
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

# Every tensor type ik_llama.cpp's llama-quantize writes, as its file types (--pure: every matrix
# in that type where the row fits its block; token_embd q8_0, which the i-quants could not take
# without an imatrix entry): llama-k-tiny (rows of 256) quantized by the
# reference with its own imatrix, scored by the reference and by imc on the same file, and KLD
# of imc's logits against the reference's base logits of the f32 model.
ik_types=(Q4_0 Q4_1 Q5_0 Q5_1 Q6_0 Q8_0 MXFP4 IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ1_S IQ1_M IQ1_BN IQ2_BN Q2_K
    IQ3_XXS IQ3_S Q3_K IQ1_KT IQ2_KT IQ3_KT IQ4_KT IQ4_NL IQ4_XS Q8_KV IQ4_KS IQ5_KS IQ4_KSS IQ2_K
    IQ2_KS IQ2_KL IQ3_KS IQ3_K IQ4_K IQ5_K IQ6_K Q4_K Q5_K Q6_K BF16 F16
    Q4_0_R8 Q5_0_R4 Q6_0_R4 Q8_0_R8 MXFP4_R8 IQ2_XXS_R4 IQ2_XS_R4 IQ2_M_R4 IQ1_S_R4 IQ1_M_R4
    IQ2_BN_R4 Q2_K_R4 IQ3_XXS_R4 IQ3_S_R4 Q3_K_R4 IQ4_NL_R4 IQ4_XS_R8 Q8_KV_R8 IQ4_KS_R4 IQ5_KS_R4
    IQ2_K_R4 IQ3_K_R4 IQ4_K_R4 IQ5_K_R4 Q4_K_R4 Q5_K_R4 Q6_K_R4 Q8_K_R8 BF16_R16)

# The value after "label" on the reference's or imc's output (first match).
grab() { sed -n "s/^$1 *\([-0-9.e]*\).*/\1/p" | head -1; }

# (a - b) / b, or "-" when either is missing.
rel() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a > 0) printf "%.2e", (a - b) / b; else print "-" }'; }

record_types() {
    local ik=$1 t d=$tmp/types ippl ikld ppl kld kinds dppl skld
    for b in llama-quantize llama-perplexity llama-imatrix; do
        [ -x "$ik/$b" ] || { echo "record-reference: no $b in $ik" >&2; exit 1; }
    done
    mkdir -p "$d"
    "$bin" gen-model --preset llama-k-tiny -o "$d/base.gguf" >/dev/null
    (cd "$d" && "$ik/llama-imatrix" -m base.gguf -f "$text" "${ik_args[@]}" --process-output \
        -o imatrix.dat \
        >imatrix.log 2>&1) || { tail -5 "$d/imatrix.log" >&2; exit 1; }
    (cd "$d" && "$ik/llama-perplexity" -m base.gguf -f "$text" "${ik_args[@]}" \
        --kl-divergence-base base.kld >base.log 2>&1) || { tail -5 "$d/base.log" >&2; exit 1; }
    {
        echo "# Every type ik_llama.cpp's llama-quantize writes: llama-k-tiny quantized by it"
        echo "# (--pure, its own imatrix), ctx 256, 8 chunks of data/text/calibration.txt. ik: its"
        echo "# llama-perplexity (8-bit activations, f16 V cache); imc: imc perplexity (f32). kld:"
        echo "# mean KLD against the reference's base logits of the f32 model. ppl ik deq: its"
        echo "# llama-perplexity on the f32 model its llama-quantize dequantizes the file to"
        echo "# (--allow-requantize ... F32: its to_float, the decoder of the golden blocks). kld same:"
        echo "# mean KLD of imc's logits against the reference's saved logits of the same file."
        echo "# Recorded by scripts/record-reference.sh types IK_BIN (tests/data/reference/README.md)."
        echo "# ftype	tensor types	ppl ik	ppl imc	rel diff	kld ik	kld imc	ppl ik deq	rel diff deq	kld same"
        for t in "${ik_types[@]}"; do
            (cd "$d" && "$ik/llama-quantize" --pure --token-embedding-type q8_0 \
                --imatrix imatrix.dat base.gguf "q.gguf" "$t" 2 \
                >"q.log" 2>&1) || { echo "record-reference: quantizing to $t failed" >&2; exit 1; }
            ippl=$(cd "$d" && "$ik/llama-perplexity" -m q.gguf -f "$text" "${ik_args[@]}" 2>&1 |
                sed -n 's/^Final estimate: PPL over .* = \([0-9.]*\) .*/\1/p') || true
            ikld=$(cd "$d" && "$ik/llama-perplexity" -m q.gguf --kl-divergence-base base.kld \
                --kl-divergence "${ik_args[@]}" 2>&1 | grep -a 'Mean    KLD' | awk '{ print $3 }') ||
                true
            kinds=$("$bin" info "$d/q.gguf" 2>/dev/null | awk '/^tensors:/ { t = 1; next }
                t && $3 ~ /^\[/ { print $2 }' | sort -u | paste -sd, -) || true
            ppl=$("$bin" perplexity -m "$d/q.gguf" -f "$text" --ctx 256 --chunks 8 2>&1 |
                sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p') || true
            kld=$("$bin" perplexity -m "$d/q.gguf" --kld-base "$d/base.kld" 2>&1 |
                grep -a 'Mean    KLD' | awk '{ print $3 }') || true
            dppl=$(cd "$d" && "$ik/llama-quantize" --allow-requantize q.gguf deq.gguf F32 2 \
                >deq.log 2>&1 && "$ik/llama-perplexity" -m deq.gguf -f "$text" "${ik_args[@]}" 2>&1 |
                sed -n 's/^Final estimate: PPL over .* = \([0-9.]*\) .*/\1/p') || true
            rm -f "$d/deq.gguf" "$d/q.kld"
            skld=$(cd "$d" && "$ik/llama-perplexity" -m q.gguf -f "$text" "${ik_args[@]}" \
                --kl-divergence-base q.kld >/dev/null 2>&1 && "$bin" perplexity -m q.gguf \
                --kld-base q.kld 2>&1 | grep -a 'Mean    KLD' | awk '{ print $3 }') || true
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "${kinds:--}" \
                "${ippl:--}" "${ppl:--}" "$(rel "${ppl:-0}" "${ippl:-0}")" "${ikld:--}" \
                "${kld:--}" "${dppl:--}" "$(rel "${ppl:-0}" "${dppl:-0}")" "${skld:--}"
        done
    } >"$tmp/types.tsv"
    rm -f "$d"/llama.log
    mv "$tmp/types.tsv" "$out/types.tsv"
    echo "wrote $out/types.tsv"
}

case ${1:-} in
presets) record_presets ;;
types) record_types "${2:?usage: record-reference.sh types IK_BIN}" ;;
ref) record_ref "${2:?usage: record-reference.sh ref IK_BIN NLC_DIR}" \
    "${3:?usage: record-reference.sh ref IK_BIN NLC_DIR}" ;;
*)
    echo "usage: scripts/record-reference.sh presets | ref IK_BIN NLC_DIR | types IK_BIN" >&2
    exit 2
    ;;
esac
