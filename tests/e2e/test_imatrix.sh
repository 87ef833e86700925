#!/usr/bin/env bash
# shellcheck disable=SC2317 # the helpers below are called through check
# tests/e2e/test_imatrix: `imc imatrix` and `imc mla-3d` from the command line on tiny synthetic
# models (DESIGN.md §3, §4 "What each tensor gets", §6): llama-imatrix output lines and a
# running PPL equal to `imc perplexity`'s, the expert coverage table showing the never-routed
# expert 7, progress on stderr only; bitwise identical output for 1, 2 or 3 chunks per engine
# call (-b) and 1 vs 2 threads; GGUF <-> .dat round trip through the command (and --dat-zero
# skip); --in-file; --stats; the ik-layout log line; mla-3d (info shows 3d, same PPL output,
# per-head entries);
# bad input failing with one error line, a nonzero exit and no file left behind.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" imatrix
imx() { "$IMC_BIN" imatrix "$@"; }
final_ppl() { sed -n 's/^Final estimate: PPL = \([^ ]*\) +\/- .*/\1/p' "$1"; }
# stat_row FILE TENSOR: "n_mat values" of TENSOR in an --stats table
stat_row() { awk -v t="$2" '$1 == t { print $2, $3 }' "$1"; }
# stat_means FILE PATTERN: tensor name and mean column of the matching rows
stat_means() { awk -v p="$2" '$1 ~ p { print $1, $5, $6 }' "$1"; }
no_leftovers() { test -z "$(find "$tmp" -maxdepth 2 \( -name '*.tmp.*' -o -name '*.part.*' \))"; }

for p in ds2-tiny-3d ds2-tiny-ik llama-tiny; do
    if ! "$IMC_BIN" gen-model --preset "$p" -o "$tmp/$p.gguf" >/dev/null 2>&1; then
        echo "FAIL gen-model $p"
        exit 1
    fi
done
ds=$tmp/ds2-tiny-3d.gguf
ik=$tmp/ds2-tiny-ik.gguf

# ---- a plain run ------------------------------------------------------------------------------
imx -m "$ds" -f "$text" -o "$tmp/a.gguf" -c 64 --chunks 4 >"$tmp/a.out" 2>"$tmp/a.err"
check "ds2-tiny-3d: exit 0" test $? -eq 0
check "running values [1]..[4]" \
    grep -Eq '^\[1\][0-9]+\.[0-9]{4},\[2\][0-9.]+,\[3\][0-9.]+,\[4\][0-9.]+,$' "$tmp/a.out"
v=$(final_ppl "$tmp/a.out")
check "Final estimate line" grep -Eq '^Final estimate: PPL = [0-9.]+ \+/- [0-9]+\.[0-9]{5}$' \
    "$tmp/a.out"
check "last running value = final estimate ($v)" grep -q "\[4\]$v," "$tmp/a.out"
"$IMC_BIN" perplexity -m "$ds" -f "$text" -c 64 --chunks 4 -q >"$tmp/p.out" 2>/dev/null
check "running PPL = imc perplexity's ($(final_ppl "$tmp/p.out"))" \
    test "$(final_ppl "$tmp/p.out")" = "$v"
check "coverage table: layers 1 and 2 with expert 7 unrouted" \
    test "$(grep -cE '^ +[12] +8 +1 +0 .* 7$' "$tmp/a.out")" -eq 2
check "progress with ETA on stderr" grep -q "imatrix: chunk 4/4, .* tok/s, ETA" "$tmp/a.err"
check "no progress on stdout" bash -c "! grep -q 'tok/s' '$tmp/a.out'"
check "output is GGUF" test "$(head -c 4 "$tmp/a.gguf")" = GGUF
imx --stats "$tmp/a.gguf" >"$tmp/a.stats" 2>"$tmp/a.stats.err"
check "--stats: exit 0" test $? -eq 0
check "--stats: header (4 chunks of 64, dataset = the text)" \
    grep -qF "35 entries, 4 chunks of 64 tokens, dataset $text" "$tmp/a.stats"
check "--stats: attn_k_b 4 heads x 16" test "$(stat_row "$tmp/a.stats" blk.1.attn_k_b.weight)" = "4 64"
check "--stats: attn_v_b 4 heads x 32" test "$(stat_row "$tmp/a.stats" blk.1.attn_v_b.weight)" = "4 128"
check "--stats: experts 8 x 64" test "$(stat_row "$tmp/a.stats" blk.2.ffn_up_exps.weight)" = "8 512"
check "--stats: expert tensors 87.5% active (expert 7 saw nothing)" \
    grep -Eq '^blk\.1\.ffn_gate_exps\.weight .* 87\.5% ' "$tmp/a.stats"
check "--stats: layer table" grep -Eq '^2 +13 +1920 ' "$tmp/a.stats"

# ---- determinism: chunks per engine call (-b) and threads ------------------------------------
for b in 64 128 192; do # 1, 2 and 3 chunks per call over 5 chunks (groups 3 + 2)
    imx -m "$ds" -f "$text" -o "$tmp/b$b.gguf" -c 64 --chunks 5 -b "$b" -t $((b / 64 % 2 + 1)) -q \
        >"$tmp/b$b.out" 2>/dev/null
done
check "-b 64 -t 2 vs -b 128 -t 1: identical imatrix" cmp -s "$tmp/b64.gguf" "$tmp/b128.gguf"
check "-b 64 -t 2 vs -b 192 -t 2: identical imatrix" cmp -s "$tmp/b64.gguf" "$tmp/b192.gguf"
check "-b 64 vs 128 vs 192: identical stdout" \
    bash -c "cmp -s '$tmp/b64.out' '$tmp/b128.out' && cmp -s '$tmp/b64.out' '$tmp/b192.out'"
imx -m "$ds" -f "$text" -o "$tmp/b1.gguf" -c 64 --chunks 4 -b 64 -t 1 -q >/dev/null 2>&1
check "-b 64 -t 1: same bytes as the first run (-b 2048, 4 chunks per call)" \
    cmp -s "$tmp/a.gguf" "$tmp/b1.gguf"

# ---- formats -------------------------------------------------------------------------------------
imx -m "$ds" -f "$text" -o "$tmp/both" -c 64 --chunks 4 --format both -q >/dev/null 2>&1
check "--format both: exit 0, both files" test -s "$tmp/both.gguf" -a -s "$tmp/both.dat"
check "--format both: GGUF part identical to the plain run" cmp -s "$tmp/both.gguf" "$tmp/a.gguf"
imx --stats "$tmp/both.dat" >"$tmp/dat.stats" 2>/dev/null
"$IMC_BIN" merge "$tmp/both.dat" -o "$tmp/back.gguf" -q >/dev/null 2>&1
check "dat -> gguf (imc merge): exit 0" test -s "$tmp/back.gguf"
imx --stats "$tmp/back.gguf" >"$tmp/back.stats" 2>/dev/null
re='^blk\.[0-9]+\.(attn|ffn_(gate|up|down)\.|ffn_.*shexp)'
check "gguf -> dat -> gguf: same per-column means and max (dense tensors)" \
    test "$(stat_means "$tmp/a.stats" "$re")" = "$(stat_means "$tmp/back.stats" "$re")"
check "dat: same entries" test "$(grep -c 'weight ' "$tmp/dat.stats")" -eq 35
imx -m "$ds" -f "$text" -o "$tmp/skip.dat" -c 64 --chunks 4 --dat-zero skip -q >/dev/null 2>&1
imx --stats "$tmp/skip.dat" >"$tmp/skip.stats" 2>/dev/null
check "--dat-zero skip: experts with an unrouted expert dropped, 29 entries" \
    test "$(grep -c 'weight ' "$tmp/skip.stats")" -eq 29

# ---- --in-file ----------------------------------------------------------------------------------
imx -m "$ds" -f "$text" -o "$tmp/h1.gguf" -c 64 --chunks 2 -q >/dev/null 2>&1
imx -m "$ds" -f "$text" -o "$tmp/h2.gguf" -c 64 --from-chunk 2 --chunks 2 \
    --in-file "$tmp/h1.gguf" -q >/dev/null 2>&1
check "--in-file: exit 0" test $? -eq 0
imx --stats "$tmp/h2.gguf" >"$tmp/h2.stats" 2>/dev/null
check "--in-file: chunk counts add to 4" grep -q "4 chunks of 64 tokens" "$tmp/h2.stats"
imx -m "$ds" -f "$text" -o "$tmp/w.gguf" -c 64 --chunks 2 --in-file "$tmp/h1.gguf:0.5" -q \
    >/dev/null 2>&1
check "--in-file F:0.5: exit 0" test $? -eq 0
# the same 2 chunks again plus half of them: every sum(x^2) is 1.5x h1's (to the 6 digits
# --stats prints), every per-column mean unchanged, on all 35 entries
imx --stats "$tmp/h1.gguf" >"$tmp/h1.stats" 2>/dev/null
imx --stats "$tmp/w.gguf" >"$tmp/w.stats" 2>/dev/null
check "--in-file F:0.5: sums 1.5x, means unchanged, 35 entries" awk '
    FNR == NR && $1 ~ /weight$/ { sum[$1] = $4; mean[$1] = $5; next }
    $1 ~ /weight$/ { n++; r = $4 / (1.5 * sum[$1]); if (!(r > 1 - 1e-5 && r < 1 + 1e-5) ||
                                                       $5 != mean[$1]) bad++ }
    END { exit !(n == 35 && bad == 0) }' "$tmp/h1.stats" "$tmp/w.stats"

# ---- ik layout: the per-head note, mla-3d -----------------------------------------------------
imx -m "$ik" -f "$text" -o "$tmp/ik.gguf" -c 64 --chunks 2 >"$tmp/ik.out" 2>"$tmp/ik.err"
check "ik layout: exit 0" test $? -eq 0
check "ik layout: log names imc mla-3d" grep -q "imc mla-3d" "$tmp/ik.err"
imx --stats "$tmp/ik.gguf" >"$tmp/ik.stats" 2>/dev/null
check "ik layout: attn_k_b one matrix of qk_nope" \
    test "$(stat_row "$tmp/ik.stats" blk.0.attn_k_b.weight)" = "1 16"
check "ik layout: attn_kv_b one matrix of kv_lora" \
    test "$(stat_row "$tmp/ik.stats" blk.0.attn_kv_b.weight)" = "1 32"
"$IMC_BIN" mla-3d "$ik" "$tmp/ik3d.gguf" 2>"$tmp/m.err"
check "mla-3d: exit 0" test $? -eq 0
"$IMC_BIN" info "$tmp/ik3d.gguf" >"$tmp/info.out" 2>/dev/null
check "mla-3d: imc info shows MLA layout 3d" grep -Eq '^MLA layout: +3d' "$tmp/info.out"
# the tensor data (the sum of `imc info`'s bytes column: every tensor of the tiny preset is a
# multiple of the 32-byte alignment, so no padding) ends both files, byte for byte; only the
# header differs, by less than a page
data_bytes=$("$IMC_BIN" info "$ik" | awk '/^tensors:/ { t = 1; next } t && $3 ~ /^\[/ {
                                               s += $NF } END { print s + 0 }')
check "mla-3d: same tensor data ($data_bytes bytes), new header" \
    cmp -s <(tail -c "$data_bytes" "$ik") <(tail -c "$data_bytes" "$tmp/ik3d.gguf")
check "mla-3d: tensor data is most of the file" test "$data_bytes" -gt 1000000
check "mla-3d: header grew by under 4 KiB" test "$(($(stat -c %s "$tmp/ik3d.gguf") - \
    $(stat -c %s "$ik")))" -ge 0 -a "$(($(stat -c %s "$tmp/ik3d.gguf") - $(stat -c %s "$ik")))" \
    -lt 4096
"$IMC_BIN" perplexity -m "$ik" -f "$text" -c 64 --chunks 2 -q >"$tmp/p1.out" 2>/dev/null
"$IMC_BIN" perplexity -m "$tmp/ik3d.gguf" -f "$text" -c 64 --chunks 2 -q >"$tmp/p2.out" 2>/dev/null
check "mla-3d: perplexity on the 2D file prints a final estimate" \
    grep -q '^Final estimate: PPL = [0-9]' "$tmp/p1.out"
check "mla-3d: identical perplexity output" cmp -s "$tmp/p1.out" "$tmp/p2.out"
imx -m "$tmp/ik3d.gguf" -f "$text" -o "$tmp/ik3d.imatrix.gguf" -c 64 --chunks 2 -q >/dev/null 2>&1
imx --stats "$tmp/ik3d.imatrix.gguf" >"$tmp/ik3d.stats" 2>/dev/null
check "mla-3d: attn_k_b now per head (4 x 16)" \
    test "$(stat_row "$tmp/ik3d.stats" blk.0.attn_k_b.weight)" = "4 64"
"$IMC_BIN" mla-3d "$ds" "$tmp/z.gguf" 2>"$tmp/z.err"
check "mla-3d on a 3D file: exit 1, one error line" \
    test $? -eq 1 -a "$(grep -c . "$tmp/z.err")" -eq 1

# ---- bad input ------------------------------------------------------------------------------------
expect_error() { # expect_error DESCRIPTION PATTERN ARGS...
    local what=$1 pat=$2
    shift 2
    imx "$@" -q >"$tmp/e.out" 2>"$tmp/e.err"
    local rc=$?
    check "$what: exit 1" test "$rc" -eq 1
    check "$what: one error line" test "$(grep -c . "$tmp/e.err")" -eq 1
    check "$what: message names '$pat'" grep -qF -- "$pat" "$tmp/e.err"
    check "$what: no output file" test ! -e "$tmp/new.gguf"
    check "$what: no temporary file left" no_leftovers
}
head -c 100 "$text" >"$tmp/short.txt"
expect_error "missing model" "$tmp/none.gguf" -m "$tmp/none.gguf" -f "$text" -o "$tmp/new.gguf"
expect_error "missing text" "$tmp/none.txt" -m "$ds" -f "$tmp/none.txt" -o "$tmp/new.gguf" -c 64
expect_error "too little text (< 2 chunks)" "need at least 2*ctx = 128" -m "$ds" \
    -f "$tmp/short.txt" -o "$tmp/new.gguf" -c 64
expect_error "--from-chunk beyond the text" "leaves none" -m "$ds" -f "$text" \
    -o "$tmp/new.gguf" -c 64 --from-chunk 100000
expect_error "missing --in-file" "$tmp/none.imatrix" -m "$ds" -f "$text" -o "$tmp/new.gguf" \
    -c 64 --chunks 1 --in-file "$tmp/none.imatrix"
touch "$tmp/plainfile"
expect_error "output dir is a file" "$tmp/plainfile/x.gguf" -m "$ds" -f "$text" \
    -o "$tmp/plainfile/x.gguf" -c 64 --chunks 1
mkdir -p "$tmp/adir"
expect_error "output is a directory" "$tmp/adir" -m "$ds" -f "$text" -o "$tmp/adir" -c 64 \
    --chunks 1
expect_error "--stats of a missing file" "$tmp/none.imatrix" --stats "$tmp/none.imatrix"
imx -m "$ds" -f "$text" >/dev/null 2>&1
check "missing -o: usage error 2" test $? -eq 2
imx -m "$ds" -f "$text" -o x --format xml >/dev/null 2>&1
check "--format xml: usage error 2" test $? -eq 2
imx -m "$ds" -f "$text" -o x --attn sideways >/dev/null 2>&1
check "--attn sideways: usage error 2" test $? -eq 2

# ---- merge of files of different models ----------------------------------------------------------
imx -m "$tmp/llama-tiny.gguf" -f "$text" -o "$tmp/ll.gguf" -c 64 --chunks 2 -q >/dev/null 2>&1
"$IMC_BIN" merge "$tmp/a.gguf" "$tmp/ll.gguf" -o "$tmp/mixed.gguf" 2>"$tmp/mixed.err" >/dev/null
check "merge ds2 + llama imatrix: runs (no same-name shape clash)" test -s "$tmp/mixed.gguf"
check "merge ds2 + llama imatrix: warns that the entry sets differ" \
    grep -q "warning: imatrix merge: .*ll.gguf' has [0-9]* entries the files before it lack.*same" \
    "$tmp/mixed.err"
"$IMC_BIN" merge "$tmp/a.gguf" "$tmp/a.gguf" -o "$tmp/twice.gguf" 2>"$tmp/twice.err" >/dev/null
check "merge of one model's files: no warning" test ! -s "$tmp/twice.err"
"$IMC_BIN" gen-model --preset llama-k-tiny -o "$tmp/lk.gguf" >/dev/null 2>&1
imx -m "$tmp/lk.gguf" -f "$text" -o "$tmp/lk.imatrix.gguf" -c 64 --chunks 2 -q >/dev/null 2>&1
"$IMC_BIN" merge "$tmp/ll.gguf" "$tmp/lk.imatrix.gguf" -o "$tmp/clash.gguf" 2>"$tmp/clash.err" \
    >/dev/null
check "merge with a same-name shape clash: exit 1" test $? -eq 1
check "merge with a same-name shape clash: names the tensor and both files" \
    grep -q "tensor 'blk.0.attn_k.weight': imatrix shape .*ll.gguf.*lk.imatrix.gguf" \
    "$tmp/clash.err"
check "merge with a same-name shape clash: no output" test ! -e "$tmp/clash.gguf"
check "merge: no temporaries left" no_leftovers

check_done
