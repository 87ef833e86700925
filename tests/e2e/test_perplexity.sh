#!/usr/bin/env bash
# shellcheck disable=SC2317 # the helpers below are called through check
# tests/e2e/test_perplexity: `imc perplexity` on tiny synthetic models (DESIGN.md §4 "Perplexity"):
# the llama-perplexity output lines, batch-size invariance, --kld-save/--kld-base round trip
# (against itself: KLD 0, same top p 100%), both MLA attention paths giving the same PPL, and
# bad input failing with one error line naming the file, without leaving output files.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" perplexity
ppl() { "$IMC_BIN" perplexity "$@"; }
# final_ppl FILE: the PPL of the "Final estimate" line
final_ppl() { sed -n 's/^Final estimate: PPL = \([^ ]*\) +\/- .*/\1/p' "$1"; }
# finite X: X is a finite positive number
finite() { awk -v x="$1" 'BEGIN { exit !(x ~ /^[0-9]+\.[0-9]+$/ && x + 0 > 0) }'; }
# close A B REL: |A - B| <= REL * |B|
close() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d;
                                                    if (b < 0) b = -b; exit !(d <= r * b) }'; }

for p in llama-tiny ds2-tiny-all; do
    if ! "$IMC_BIN" gen-model --preset "$p" -o "$tmp/$p.gguf" >/dev/null; then
        echo "FAIL gen-model $p"
        exit 1
    fi
done
m=$tmp/llama-tiny.gguf
ds=$tmp/ds2-tiny-all.gguf

# plain run: per-chunk running values, then the final estimate; progress on stderr only
ppl -m "$m" -f "$text" --ctx 64 --chunks 4 -b 64 >"$tmp/b1.out" 2>"$tmp/b1.err"
check "llama-tiny: exit 0" test $? -eq 0
check "running values [1]..[4] on one line" \
    grep -Eq '^\[1\][0-9]+\.[0-9]{4},\[2\][0-9.]+,\[3\][0-9.]+,\[4\][0-9.]+,$' "$tmp/b1.out"
v=$(final_ppl "$tmp/b1.out")
check "Final estimate line present and finite ($v)" finite "$v"
check "Final estimate has a finite +/- " \
    grep -Eq '^Final estimate: PPL = [0-9.]+ \+/- [0-9]+\.[0-9]{5}$' "$tmp/b1.out"
check "last running value = final estimate" grep -q "\[4\]$v," "$tmp/b1.out"
check "progress on stderr" grep -q "chunk 4/4" "$tmp/b1.err"
check "no progress on stdout" bash -c "! grep -q 'chunk' '$tmp/b1.out'"

# two chunks per engine call (-b 128 = 2*ctx) and several threads: identical results
ppl -m "$m" -f "$text" --ctx 64 --chunks 4 -b 128 -t 2 -q >"$tmp/b2.out" 2>"$tmp/b2.err"
check "2 chunks per batch: exit 0" test $? -eq 0
check "2 chunks per batch: identical stdout" cmp -s "$tmp/b1.out" "$tmp/b2.out"
check "-q: no progress lines" bash -c "! grep -q 'chunk' '$tmp/b2.err'"

# KLD: save the base, compare the same model against it
ppl -m "$m" -f "$text" --ctx 64 --chunks 4 --kld-save "$tmp/base.kld" -q >"$tmp/s.out" 2>/dev/null
check "--kld-save: exit 0" test $? -eq 0
check "--kld-save: same PPL output" cmp -s "$tmp/b1.out" "$tmp/s.out"
# 20-byte header, 4*64 int32 tokens, 4 chunks * 31 rows * (512 + 4) uint16
check "base file size" \
    test "$(stat -c %s "$tmp/base.kld")" -eq $((20 + 4 * 64 * 4 + 4 * 31 * 516 * 2))
check "base file magic" test "$(head -c 8 "$tmp/base.kld")" = "_logits_"
ppl -m "$m" -f "$text" --kld-base "$tmp/base.kld" -q >"$tmp/k.out" 2>/dev/null
check "--kld-base: exit 0" test $? -eq 0
kld=$(sed -n 's/^Mean    KLD: *\([-0-9.]*\) ± .*/\1/p' "$tmp/k.out")
check "KLD against itself is 0 ($kld)" \
    awk -v x="$kld" 'BEGIN { exit !(x != "" && x < 1e-4 && x > -1e-4) }'
check "same top p 100%" grep -q '^Same top p: 100.000 ± 0.000 %' "$tmp/k.out"
q=$(sed -n 's/^Mean PPL(Q) *: *\([0-9.]*\) ± .*/\1/p' "$tmp/k.out")
check "Mean PPL(Q) ($q) = the plain PPL ($v)" close "$q" "$v" 1e-4
for l in 'Mean ln(PPL(Q)/PPL(base))' 'Mean PPL(Q)/PPL(base)' 'Maximum KLD' '99.9%   KLD' \
         'Median  KLD' 'Minimum KLD' 'Mean    Δp' '95.0%   Δp' 'RMS Δp'; do
    check "report line '$l'" grep -qF "$l" "$tmp/k.out"
done
check "per-chunk table has 4 rows" test "$(grep -cE '^ +[1-4] ' "$tmp/k.out")" -eq 4
ppl -m "$m" --kld-base "$tmp/base.kld" --chunks 2 -q >"$tmp/k2.out" 2>/dev/null
check "--kld-base without -f, --chunks 2" grep -qE '^ +2 ' "$tmp/k2.out"

# deepseek2 with both attention paths: same PPL to 4 significant digits
ppl -m "$ds" -f "$text" --ctx 64 --chunks 3 --attn absorbed -q >"$tmp/abs.out" 2>/dev/null
check "ds2 absorbed: exit 0" test $? -eq 0
ppl -m "$ds" -f "$text" --ctx 64 --chunks 3 --attn non-absorbed -q >"$tmp/non.out" 2>/dev/null
check "ds2 non-absorbed: exit 0" test $? -eq 0
a=$(final_ppl "$tmp/abs.out")
b=$(final_ppl "$tmp/non.out")
check "ds2 absorbed PPL $a = non-absorbed $b (4 significant digits)" close "$a" "$b" 1e-4
check "ds2 PPL finite" finite "$a"

# no --ctx: the default 512 is clamped to the model's n_ctx_train (256) with a warning
ppl -m "$m" -f "$text" --chunks 1 -q >"$tmp/d.out" 2>"$tmp/d.err"
check "default ctx clamped: exit 0" test $? -eq 0
check "default ctx clamped: warning names 256" grep -q "using 256" "$tmp/d.err"

# bad input: exit != 0, one error line naming the cause, no output file
expect_error() { # expect_error DESCRIPTION PATTERN ARGS...
    local what=$1 pat=$2
    shift 2
    ppl "$@" -q >"$tmp/e.out" 2>"$tmp/e.err"
    local rc=$?
    check "$what: exit != 0" test "$rc" -ne 0
    check "$what: one error line" test "$(grep -c . "$tmp/e.err")" -eq 1
    check "$what: message names '$pat'" grep -qF -- "$pat" "$tmp/e.err"
    check "$what: no kld file left" bash -c "! ls '$tmp'/new.kld* >/dev/null 2>&1"
}
head -c 100 "$text" >"$tmp/short.txt" # about 50 tokens
expect_error "short text" "$tmp/short.txt: text has" -m "$m" -f "$tmp/short.txt" --ctx 64 \
    --kld-save "$tmp/new.kld"
expect_error "ctx beyond n_ctx_train" "$m: --ctx 512 exceeds" -m "$m" -f "$text" --ctx 512 \
    --kld-save "$tmp/new.kld"
expect_error "missing text" "$tmp/none.txt" -m "$m" -f "$tmp/none.txt" --ctx 64
expect_error "missing model" "$tmp/none.gguf" -m "$tmp/none.gguf" -f "$text" --ctx 64
expect_error "base with another ctx" "$tmp/base.kld: computed with ctx 64" -m "$m" \
    --kld-base "$tmp/base.kld" --ctx 32
# a well-formed base of a 100-token vocabulary: header, 64 zero tokens, 31 zero rows of 104
{ printf '_logits_\x40\x00\x00\x00\x64\x00\x00\x00\x01\x00\x00\x00'
  head -c $((64 * 4 + 31 * 104 * 2)) /dev/zero; } >"$tmp/v100.kld"
expect_error "base of another vocabulary" "$tmp/v100.kld: has 100-token" -m "$m" \
    --kld-base "$tmp/v100.kld"
printf 'not a logits file at all' >"$tmp/junk.kld"
expect_error "junk base" "$tmp/junk.kld" -m "$m" --kld-base "$tmp/junk.kld"
head -c 2000 "$tmp/base.kld" >"$tmp/cut.kld"
expect_error "truncated base" "$tmp/cut.kld" -m "$m" --kld-base "$tmp/cut.kld"
tail -c +1000 "$text" >"$tmp/other.txt"
expect_error "base of another text" "tokens differ" -m "$m" --kld-base "$tmp/base.kld" \
    -f "$tmp/other.txt"
expect_error "unwritable kld-save" "$tmp/nodir/x.kld" -m "$m" -f "$text" --ctx 64 --chunks 2 \
    --kld-save "$tmp/nodir/x.kld"
ppl -m "$m" -f "$text" --kld-save a --kld-base b >/dev/null 2>&1
check "--kld-save with --kld-base: usage error 2" test $? -eq 2
ppl -m "$m" -f "$text" --attn sideways >/dev/null 2>&1
check "--attn sideways: usage error 2" test $? -eq 2

# a text that never ends (a device, a FIFO without end) is refused with a message, not read
# forever (core/file.h IMC_FILE_STREAM_MAX); a directory at once
run perplexity -m "$m" -f /dev/zero >/dev/null 2>"$tmp/zero.err"
check "-f /dev/zero: exit 1" test $? -eq 1
check "-f /dev/zero: names the file and what to do" \
    grep -q "/dev/zero: not a regular file.*pass the text as a regular file" "$tmp/zero.err"
run perplexity -m "$m" -f "$tmp" >/dev/null 2>"$tmp/dir.err"
check "-f DIR: exit 1" test $? -eq 1
check "-f DIR: says it is a directory" grep -q "is a directory" "$tmp/dir.err"
# -v: where the time went, by kind of operation (engine.h imc_prof), shares summing to 100%
run perplexity -m "$m" -f "$text" --ctx 64 --chunks 2 -v >/dev/null 2>"$tmp/prof.err"
check "-v: a profile line led by the matmuls' share" \
    grep -qE '^perplexity: profile: .*matmul [0-9.]+% \([0-9.]+ s\).*s in all$' "$tmp/prof.err"
sum=$(sed -n 's/^perplexity: profile: //p' "$tmp/prof.err" | grep -oE '[0-9.]+%' | tr -d % |
    awk '{ s += $1 } END { print s + 0 }')
check "-v: the shares sum to 100% ($sum; kinds under 0.05% left out)" \
    awk -v s="$sum" 'BEGIN { exit !(s >= 99.0 && s <= 100.6) }'
run perplexity -m "$m" -f "$text" --ctx 64 --chunks 2 >/dev/null 2>"$tmp/noprof.err"
check "without -v: no profile line" bash -c "! grep -q 'profile:' '$tmp/noprof.err'"
check_done
