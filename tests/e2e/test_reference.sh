#!/usr/bin/env bash
# tests/e2e/test_reference: imc against pinned reference data (tests/data/reference/, recorded by
# scripts/record-reference.sh; see its README.md for the sources and commands):
#   - the bytes of every gen-model preset (sha256): a change of the generator fails here first;
#   - `imc perplexity` on the tiny presets equals the PPL of the llama.cpp-family reference tools
#     (ppl.tsv: mainline llama.cpp with an f32 KV cache within 1e-6, ik_llama.cpp, which keeps
#     V in f16, within 1e-4);
#   - `imc imatrix` on the same runs holds the reference llama-imatrix's per-column values
#     (checked by tests/e2e/test_reference_imatrix.c on the files made here).
# A numeric regression shared by every path of imc, which the self-consistency tests cannot see,
# fails this test.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" reference
ref=$IMC_SOURCE_DIR/tests/data/reference

# ---- gen-model presets: sha256 of the bytes -------------------------------------------------------
n=0
while read -r sum p size; do
    case $sum in '' | '#'*) continue ;; esac
    n=$((n + 1))
    if [ "${size:-}" = large ]; then # GBs: pinned, checked by scripts/record-reference.sh only
        echo "  preset $p: large, not generated here"
        continue
    fi
    if ! "$IMC_BIN" gen-model --preset "$p" -o "$tmp/$p.gguf" >/dev/null 2>"$tmp/gen.err"; then
        check_fail "gen-model --preset $p: $(head -n 1 "$tmp/gen.err")"
        continue
    fi
    got=$(sha256sum <"$tmp/$p.gguf" | cut -d' ' -f1)
    check "preset $p: bytes as pinned (sha256 $sum)" test "$got" = "$sum"
    [ "$got" = "$sum" ] || echo "  preset $p: sha256 now $got (re-record only on purpose)"
    case $p in ds2-mid | ds2-bench) rm -f "$tmp/$p.gguf" ;; esac
done <"$ref/presets.sha256"
presets=$("$IMC_BIN" gen-model --list | awk '{ print $1 }' | sort | tr '\n' ' ')
pinned=$(awk '!/^#/ && NF >= 2 { print $2 }' "$ref/presets.sha256" | sort | tr '\n' ' ')
check "every preset of gen-model --list is pinned ($presets)" test "$presets" = "$pinned"
check "presets checked: $n" test "$n" -ge 9

# ---- perplexity: the reference tools' PPL ---------------------------------------------------------
# --matmul f32 below: the pinned PPLs are the reference tools' on the f32 presets (exact f32
# arithmetic, 1e-6); imc's exact path must meet them, whatever the default (q8) does for a type.
# close A B RTOL: |A - B| <= RTOL * |B|, both numbers
close() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b < 0) b = -b
                                                    exit !(a ~ /^[0-9.]+$/ && d <= r * b) }'; }
n=0
while IFS=$'\t' read -r p ctx chunks want rtol source; do
    case $p in '' | '#'*) continue ;; esac
    n=$((n + 1))
    "$IMC_BIN" perplexity -m "$tmp/$p.gguf" -f "$text" --ctx "$ctx" --chunks "$chunks" -q \
        --matmul f32 >"$tmp/ppl.out" 2>"$tmp/ppl.err"
    got=$(sed -n 's/^Final estimate: PPL = \([^ ]*\) +\/- .*/\1/p' "$tmp/ppl.out")
    check "$p ctx $ctx x $chunks: PPL ${got:-none} = $source's $want (rtol $rtol)" \
        close "$got" "$want" "$rtol"
done <"$ref/ppl.tsv"
check "PPL rows checked: $n" test "$n" -ge 9
# ds2-tiny-all carries both MLA layouts: each attention path alone meets the reference
want=$(awk -F'\t' '$1 == "ds2-tiny-all" && $2 == 128 { print $4 }' "$ref/ppl.tsv")
for attn in absorbed non-absorbed; do
    "$IMC_BIN" perplexity -m "$tmp/ds2-tiny-all.gguf" -f "$text" --ctx 128 --chunks 10 \
        --attn "$attn" --matmul f32 -q >"$tmp/ppl.out" 2>"$tmp/ppl.err"
    got=$(sed -n 's/^Final estimate: PPL = \([^ ]*\) +\/- .*/\1/p' "$tmp/ppl.out")
    check "ds2-tiny-all --attn $attn: PPL ${got:-none} = llama.cpp's $want (rtol 1e-6)" \
        close "$got" "$want" 1e-6
done

check_done
