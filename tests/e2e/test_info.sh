#!/usr/bin/env bash
# tests/e2e/test_info: `imc info` on the tiny presets (architecture, MLA layout, attention
# paths, imatrix targets per DESIGN.md §4), on every vocab-only GGUF in
# $IMC_SHARED_DIR/data/tokenizer, and on bad files (exit 1, one line naming the file).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" info
# shellcheck disable=SC2317
has() { grep -qE -- "$2" "$1"; } # has FILE REGEX

for p in llama-tiny llama-moe-tiny qwen3moe-tiny glm4moe-tiny ds2-tiny-3d ds2-tiny-ik ds2-tiny-all \
    ds2-lite-tiny; do
    "$IMC_BIN" gen-model --preset "$p" -o "$tmp/$p.gguf" >/dev/null || { echo "FAIL gen $p"; exit 1; }
    "$IMC_BIN" info "$tmp/$p.gguf" >"$tmp/$p.txt" 2>"$tmp/$p.err"
    check "$p: exit 0" test $? -eq 0
    check "$p: nothing on stderr" test ! -s "$tmp/$p.err"
    check "$p: tokenizer" has "$tmp/$p.txt" '^tokenizer: +model gpt2, pre default, 512 tokens'
    check "$p: totals" has "$tmp/$p.txt" '^totals: +[0-9]+ tensors'
done

t=$tmp/llama-tiny.txt
check "llama: arch" has "$t" '^architecture: +llama$'
check "llama: GQA" has "$t" 'n_head 4, n_head_kv 2, head_dim 16'
check "llama: attn_k dense target" has "$t" 'blk\.1\.attn_k\.weight +64 x 1 += +64$'
check "llama: output skipped" has "$t" 'output\.weight skipped'
"$IMC_BIN" info "$tmp/llama-tiny.gguf" --process-output >"$tmp/po.txt"
check "llama: --process-output" has "$tmp/po.txt" '^  output\.weight +64 x 1 += +64'
check "llama-moe: expert target" has "$tmp/llama-moe-tiny.txt" \
    'blk\.0\.ffn_down_exps\.weight +64 x 4 += +256'
check "llama-moe: tied output" has "$tmp/llama-moe-tiny.txt" 'tied to token_embd'

t=$tmp/qwen3moe-tiny.txt
check "qwen3moe: arch" has "$t" '^architecture: +qwen3moe$'
check "qwen3moe: head_dim 32 from key_length" has "$t" 'n_head 4, n_head_kv 2, head_dim 32'
check "qwen3moe: experts of their own width" has "$t" \
    'blk\.1\.ffn_down_exps\.weight +32 x 8 += +256'
check "qwen3moe: no target for the q/k norms" \
    bash -c "! grep -qE '^  blk\.[0-9]+\.attn_[qk]_norm\.weight +[0-9]+ x ' '$t'"
t=$tmp/glm4moe-tiny.txt
check "glm4moe: arch" has "$t" '^architecture: +glm4moe$'
check "glm4moe: NextN layer named, not run" has "$t" 'NextN layers 1 \(blk\.3\.\.3\): .*not run'
check "glm4moe: dense layer 0" has "$t" 'blk\.0\.ffn_down\.weight +96 x 1 += +96'
check "glm4moe: shared expert" has "$t" 'blk\.2\.ffn_up_shexp\.weight +64 x 1 += +64'
check "glm4moe: no target in the NextN layer" bash -c "! grep -qE '^  blk\.3\..* +[0-9]+ x ' '$t'"
check "glm4moe: a target in the last layer that runs" has "$t" 'blk\.2\.attn_q\.weight +64 x 1 += +64'

t=$tmp/ds2-tiny-3d.txt
check "3d: layout" has "$t" '^MLA layout: +3d$'
check "3d: absorbed possible" has "$t" 'absorbed path .*: +possible'
check "3d: non-absorbed impossible" has "$t" 'non-absorbed path .*: +not possible'
check "3d: attn_k_b per head" has "$t" 'blk\.2\.attn_k_b\.weight +16 x 4 += +64'
check "3d: attn_v_b per head" has "$t" 'blk\.2\.attn_v_b\.weight +32 x 4 += +128'
check "3d: experts" has "$t" 'blk\.1\.ffn_gate_exps\.weight +64 x 8 += +512'
check "3d: router" has "$t" 'blk\.1\.ffn_gate_inp\.weight +64 x 1 += +64'
check "3d: no kv_b target" bash -c "! grep -qE '^  blk\\.[0-9]+\\.attn_kv_b' '$t'"
t=$tmp/ds2-tiny-ik.txt
check "ik: layout" has "$t" '^MLA layout: +2d \(ik\), with attn_kv_b$'
check "ik: kv_b target" has "$t" 'blk\.0\.attn_kv_b\.weight +32 x 1 += +32'
check "ik: 2D attn_k_b ne[0] values + note" has "$t" 'blk\.0\.attn_k_b\.weight +16 x 1 += +16 .*mla-3d'
check "ik: 2D attn_v_b ne[0] values" has "$t" 'blk\.0\.attn_v_b\.weight +32 x 1 += +32'
t=$tmp/ds2-tiny-all.txt
check "all: both paths" bash -c "grep -q '^MLA layout: *3d, with attn_kv_b' '$t' &&
    [ \$(grep -c ': *possible' '$t') -eq 2 ]"
t=$tmp/ds2-lite-tiny.txt
check "lite: kv_b only" has "$t" '^MLA layout: +kv_b only, with attn_kv_b'
check "lite: absorbed impossible" has "$t" 'absorbed path .*not possible'
check "lite: plain attn_q" has "$t" 'blk\.0\.attn_q\.weight +64 x 1'

# vocab-only files (../shared: required under CI, a SKIP line elsewhere when absent)
shared=${IMC_SHARED_DIR:-$IMC_SOURCE_DIR/../shared}/data/tokenizer
n_vocab=0
for f in "$shared"/*.gguf; do
    [ -e "$f" ] || continue
    n_vocab=$((n_vocab + 1))
    "$IMC_BIN" info "$f" >"$tmp/v.txt" 2>"$tmp/v.err"
    check "$(basename "$f"): exit 0" test $? -eq 0
    check "$(basename "$f"): says no weights" has "$tmp/v.txt" 'vocab-only'
    check "$(basename "$f"): tokenizer" has "$tmp/v.txt" '^tokenizer: +model [a-z0-9]+'
done
if [ -d "$shared" ] || check_in_ci; then
    check "vocab files checked: $n_vocab (at least 4 in $shared)" test "$n_vocab" -ge 4
else
    check_skip "imc info on the vocab GGUFs" "no $shared (a clone without ../shared)"
fi

# bad files: exit 1, exactly one line on stderr naming the file, nothing on stdout
printf 'not a gguf file at all' >"$tmp/garbage.gguf"
head -c 300 "$tmp/llama-tiny.gguf" >"$tmp/truncated.gguf"
: >"$tmp/empty.gguf"
for f in "$tmp/missing.gguf" "$tmp/garbage.gguf" "$tmp/truncated.gguf" "$tmp/empty.gguf"; do
    "$IMC_BIN" info "$f" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    b=$(basename "$f")
    check "$b: exit 1" test "$rc" -eq 1
    check "$b: one error line" test "$(wc -l <"$tmp/err")" -eq 1
    check "$b: error names the file" grep -qF "$f" "$tmp/err"
    check "$b: no stdout" test ! -s "$tmp/out"
done
"$IMC_BIN" info >/dev/null 2>"$tmp/err"
check "no argument: exit 2 (usage)" test $? -eq 2

check_done
