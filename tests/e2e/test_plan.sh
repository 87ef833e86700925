#!/usr/bin/env bash
# shellcheck disable=SC2317 # the helpers below are called through check
# tests/e2e/test_plan: `imc plan` on generated tiny models over a synthetic hwloc topology
# (4 NUMA nodes of 2 cores): one rank per node with disjoint cores, layers of each (replica,
# shard) tiling [0, n_layer) once, experts of each (replica, stage) tiling [0, n_expert), shares
# summing to 100%, the automatic layout, GPU memory (--gpu-mem, --experts-on cpu: the bytes on
# each GPU and CPU, a GPU rank's activations, imatrix sums and op scratch for calls of -b / --ctx
# tokens, --gpu-reserve's allowance per GPU rank, a slice that fits nowhere refused, all of them
# counted) and the errors (one line, exit 1).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" plan
has() { grep -qE -- "$2" "$1"; } # has FILE REGEX
export HWLOC_SYNTHETIC="pack:2 numa:2 core:2 pu:1"
unset HWLOC_XMLFILE

for p in ds2-tiny-3d llama-tiny; do
    "$IMC_BIN" gen-model --preset "$p" -o "$tmp/$p.gguf" >/dev/null || { echo "FAIL gen $p"; exit 1; }
done
ds2=$tmp/ds2-tiny-3d.gguf

# Rank rows as "rank stage shard replica layers experts node cpus share" (weights dropped).
rows() { awk '/^ *[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +\[/ {
    print $1, $2, $3, $4, $5, $6, $9, $10, $13 }' "$1"; }
# "cpus threads" of the rank rows
threads_col() { awk '/^ *[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +\[/ { print $10, $11 }' "$1"; }

# Expands "0-2,5" to one number per line.
expand_cpus() {
    local part
    for part in ${1//,/ }; do
        if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
    done
}

# Checks that the [b,e) ranges in column COL of the rows grouped by the key columns tile
# [0, N) exactly once: tiles FILE KEYCOLS COL N
tiles() {
    rows "$1" | awk -v keys="$2" -v col="$3" -v n="$4" '
        { split(keys, k, ","); key = ""; for (i in k) key = key "/" $(k[i]);
          r = $(col); gsub(/[\[\)]/, "", r); split(r, be, ",");
          for (x = be[1]; x < be[2]; x++) cnt[key "@" x]++; seen[key] = 1 }
        END { bad = 0; for (key in seen) for (x = 0; x < n; x++) if (cnt[key "@" x] != 1) bad++;
              for (c in cnt) { split(c, kx, "@"); if (kx[2] < 0 || kx[2] >= n) bad++ }
              exit bad > 0 || length(seen) == 0 }'
}

# Shares are printed to 0.01%: their sum is 100% within the rounding of the rows.
shares_100() { rows "$1" | awk '{ s += $9; n++ } END { exit !(n > 0 && s > 100 - n * 0.005 &&
                                                       s < 100 + n * 0.005) }'; }

# ---- default layout, 4 ranks on 4 NUMA nodes ----
"$IMC_BIN" plan "$ds2" --ranks 4 >"$tmp/p4.txt" 2>"$tmp/p4.err"
check "ds2 --ranks 4: exit 0" test $? -eq 0
check "ds2 --ranks 4: nothing on stderr" test ! -s "$tmp/p4.err"
check "4 rank rows" test "$(rows "$tmp/p4.txt" | wc -l)" -eq 4
check "4 distinct NUMA nodes" test "$(rows "$tmp/p4.txt" | awk '{print $7}' | sort -u | wc -l)" -eq 4
cpus=$(rows "$tmp/p4.txt" | while read -r _ _ _ _ _ _ _ c _; do expand_cpus "$c"; done)
check "8 cores assigned" test "$(echo "$cpus" | wc -l)" -eq 8
check "cores disjoint" test "$(echo "$cpus" | sort -u | wc -l)" -eq 8
check "threads column: each rank's default -t is the 2 cores of its node" \
    test "$(threads_col "$tmp/p4.txt" | awk '{ print $2 }' | tr '\n' ' ')" = "2 2 2 2 "
HWLOC_SYNTHETIC="pack:1 numa:1 core:4 pu:2" "$IMC_BIN" plan "$ds2" --ranks 2 >"$tmp/smt.txt" 2>&1
check "threads column with 2 PUs per core: one thread per core (4 PUs = 2 cores each)" \
    test "$(threads_col "$tmp/smt.txt" | awk '{ print $2 }' | tr '\n' ' ')" = "2 2 "
check "layers tile [0,3) per (replica, shard)" tiles "$tmp/p4.txt" 4,3 5 3
check "experts tile [0,8) per (replica, stage)" tiles "$tmp/p4.txt" 4,2 6 8
check "shares sum to 100%" shares_100 "$tmp/p4.txt"
check "automatic layout named" has "$tmp/p4.txt" '^layout: +pp=[0-9]+,ep=[0-9]+,dp=1 \(automatic'
check "totals and imbalance" has "$tmp/p4.txt" '^imbalance: max/mean compute [0-9.]+, weights [0-9.]+'

# ---- explicit layouts ----
"$IMC_BIN" plan "$ds2" --ranks 4 --layout pp=2,ep=2,dp=1 >"$tmp/e.txt" 2>&1
check "pp=2,ep=2: exit 0" test $? -eq 0
check "pp=2,ep=2: experts split [0,4) [4,8)" test \
    "$(rows "$tmp/e.txt" | awk '{print $6}' | sort | uniq -c | awk '{print $1 $2}' | tr '\n' ' ')" \
    = "2[0,4) 2[4,8) "
check "pp=2,ep=2: two stages" test "$(rows "$tmp/e.txt" | awk '{print $2}' | sort -u | wc -l)" -eq 2
check "pp=2,ep=2: layers tile" tiles "$tmp/e.txt" 4,3 5 3
"$IMC_BIN" plan "$ds2" --ranks 6 --layout pp=3,dp=2 >"$tmp/r.txt" 2>"$tmp/r.err"
check "pp=3,dp=2: exit 0" test $? -eq 0
check "pp=3,dp=2: layers tile per replica" tiles "$tmp/r.txt" 4,3 5 3
check "pp=3,dp=2: shares sum to 100%" shares_100 "$tmp/r.txt"
check "6 ranks on 4 nodes: ranks share nodes" test \
    "$(rows "$tmp/r.txt" | awk '{print $7}' | sort -u | wc -l)" -eq 4
"$IMC_BIN" plan "$ds2" --ranks 8 --hosts 2 --layout pp=2,ep=2,dp=2 >"$tmp/h.txt" 2>&1
check "2 hosts: host column" has "$tmp/h.txt" '^host rank'
check "2 hosts: 8 rows, ranks 0-7" test "$(awk '$1 ~ /^[01]$/ && $2 ~ /^[0-7]$/ { print $2 }' \
    "$tmp/h.txt" | sort -n | tr '\n' ' ')" = "0 1 2 3 4 5 6 7 "
check "2 hosts: ranks 0-3 on host 0, 4-7 on host 1" test "$(awk '$1 ~ /^[01]$/ &&
    $2 ~ /^[0-7]$/ && $1 != int($2 / 4) { bad++ } END { print bad + 0 }' "$tmp/h.txt")" = 0

# ---- dense model: pp = N when it has >= N layers, replicas beyond ----
llama=$tmp/llama-tiny.gguf
"$IMC_BIN" plan "$llama" --ranks 2 >"$tmp/l2.txt" 2>&1
check "dense, 2 ranks, 2 layers: pp=2" has "$tmp/l2.txt" '^layout: +pp=2,ep=1,dp=1 '
check "dense: no experts column values" test "$(rows "$tmp/l2.txt" | awk '{print $6}' | sort -u)" = "-"
"$IMC_BIN" plan "$llama" --ranks 4 >"$tmp/l4.txt" 2>&1
check "dense, 4 ranks, 2 layers: pp=2, dp=2" has "$tmp/l4.txt" '^layout: +pp=2,ep=1,dp=2 '
check "dense: shares sum to 100%" shares_100 "$tmp/l4.txt"

# ---- memory: 100 kB nodes cannot hold the ranks' weights ----
HWLOC_SYNTHETIC="pack:2 numa:2(memory=100kB) core:2 pu:1" \
    "$IMC_BIN" plan "$ds2" --ranks 4 >/dev/null 2>"$tmp/m.err"
check "small nodes: still exit 0" test $? -eq 0
check "small nodes: warning per rank" test "$(grep -c 'needs .* of weights; its NUMA node has' "$tmp/m.err")" -eq 4

# ---- GPU memory: ds2-tiny-3d's ranks 0 and 1 hold 471.53 KiB, 96 KiB of them routed experts ----
# Memory table rows "rank gpu on-gpu gpu-mem on-cpu node-mem" (sizes as "N unit").
mem_rows() { awk '/^memory:/ { on = 1; next } on && /^ *[0-9]+ / { print }' "$1"; }
kib() { awk -v u="$2" -v v="$1" 'BEGIN { f["B"] = 1 / 1024; f["KiB"] = 1; f["MiB"] = 1024
                                         f["GiB"] = 1048576; printf "%.2f", v * f[u] }'; }
# "rank on-gpu-KiB on-cpu-KiB" per row
mem_kib() { mem_rows "$1" | while read -r r _ g gu _ _ c cu _; do
    echo "$r $(kib "$g" "$gu") $(kib "$c" "$cu")"; done; }
weights_kib() { awk '/^ *[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +\[/ {
    print $1, $7, $8 }' "$1" | while read -r r v u; do echo "$r $(kib "$v" "$u")"; done; }
"$IMC_BIN" plan "$ds2" --ranks 4 --gpus 4 --gpu-mem 2 >"$tmp/g.txt" 2>"$tmp/g.err"
check "--gpu-mem 2: exit 0, nothing on stderr" test $? -eq 0 -a ! -s "$tmp/g.err"
check "--gpu-mem 2: memory table of 4 ranks" test "$(mem_rows "$tmp/g.txt" | wc -l)" -eq 4
check "--gpu-mem 2: each rank's weights all on its GPU, 0 B on the CPU" test \
    "$(mem_kib "$tmp/g.txt" | awk '{ print $1, $2 }')" = "$(weights_kib "$tmp/g.txt")" -a \
    "$(mem_kib "$tmp/g.txt" | awk '{ print $3 }' | sort -u)" = "0.00"
check "--gpu-mem 2: 2.00 GiB per rank on GPUs 0-3" test \
    "$(mem_rows "$tmp/g.txt" | awk '{ print $2 "=" $5 $6 }' | tr '\n' ' ')" = \
    "0=2.00GiB 1=2.00GiB 2=2.00GiB 3=2.00GiB "
check "--gpu-mem 2: says the 1 GiB reserved per GPU rank" \
    has "$tmp/g.txt" 'on top, 1.00 GiB per GPU rank for the CUDA context .*\(--gpu-reserve\)'
# the op scratch (worker/engine_mem.h imc_engine_scratch_bytes): more tokens per call, more
# bytes (the embedding rows, the routing ids); a fit counts it
scr_kib() { # scr_kib FILE RANK: the rank's op scratch in KiB
    mem_rows "$1" | awk -v r="$2" '$1 == r { print $15, $16 }' | while read -r v u; do
        kib "$v" "$u"; done; }
check "--gpu-mem 2: op scratch on every GPU rank" test \
    "$(for r in 0 1 2 3; do scr_kib "$tmp/g.txt" $r; echo; done | awk '$1 > 0' | wc -l)" -eq 4
"$IMC_BIN" plan "$ds2" --ranks 4 --gpus 4 --gpu-mem 0.0014 --experts-on cpu --ctx 4 -b 4 \
    --gpu-reserve 0 >"$tmp/x.txt" 2>"$tmp/x.err"
check "--experts-on cpu, 1.43 MiB GPUs, calls of 4 tokens: fits, exit 0" \
    test $? -eq 0 -a ! -s "$tmp/x.err"
check "--experts-on cpu: GPU + CPU bytes = the rank's weights, 96 KiB of experts on the CPU" test \
    "$(mem_kib "$tmp/x.txt" | awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $3 }')" = \
    "$(weights_kib "$tmp/x.txt" | awk '{ print $0, "96.00" }')"
check "--experts-on cpu: says where the experts are" \
    has "$tmp/x.txt" '^memory: .*on the CPU of their NUMA node \(--experts-on cpu\)'
# activations: calls of b / ctx sequences (one below 2 ctx), the last stage's logits of one
# sequence (ctx x 512 vocabulary x 4 bytes) on top of its arena; more tokens per call, more bytes
act_kib() { # act_kib FILE RANK: the rank's activations in KiB
    mem_rows "$1" | awk -v r="$2" '$1 == r { print $11, $12 }' | while read -r v u; do
        kib "$v" "$u"; done; }
"$IMC_BIN" plan "$ds2" --ranks 1 --gpus 1 --gpu-mem 2 --ctx 64 -b 64 >"$tmp/a1.txt" 2>&1
"$IMC_BIN" plan "$ds2" --ranks 1 --gpus 1 --gpu-mem 2 --ctx 64 -b 256 >"$tmp/a4.txt" 2>&1
check "-b 64 --ctx 64: calls of 1 x 64 tokens" has "$tmp/a1.txt" 'calls of 1 x 64 tokens'
check "-b 256 --ctx 64: calls of 4 x 64 tokens" has "$tmp/a4.txt" 'calls of 4 x 64 tokens'
check "4 sequences a call take more than 3 times one's activations (logits once)" awk \
    -v a="$(act_kib "$tmp/a1.txt" 0)" -v b="$(act_kib "$tmp/a4.txt" 0)" \
    'BEGIN { exit !(a > 128 && b - 128 > 3 * (a - 128)) }'
check "op scratch: calls of 4 x 64 tokens take more than calls of 1 x 64" awk \
    -v a="$(scr_kib "$tmp/a1.txt" 0)" -v b="$(scr_kib "$tmp/a4.txt" 0)" 'BEGIN { exit !(b > a) }'
# the op scratch follows the table's lines as the environment sets them for the GPU ranks: with
# IMC_CUDA_MMV_TOKENS=1 calls of 4 tokens take the batch path (MLA's heads' strided operands)
"$IMC_BIN" plan "$ds2" --ranks 1 --gpus 1 --gpu-mem 2 --ctx 4 -b 4 >"$tmp/l16.txt" 2>&1
IMC_CUDA_MMV_TOKENS=1 "$IMC_BIN" plan "$ds2" --ranks 1 --gpus 1 --gpu-mem 2 --ctx 4 -b 4 \
    >"$tmp/l1.txt" 2>&1
check "op scratch: IMC_CUDA_MMV_TOKENS=1 takes more than the default line" awk \
    -v a="$(scr_kib "$tmp/l16.txt" 0)" -v b="$(scr_kib "$tmp/l1.txt" 0)" 'BEGIN { exit !(b > a) }'
check "imatrix sums: a set per sequence, 4 times one's" test \
    "$(mem_rows "$tmp/a4.txt" | awk '{ print $13 $14 }')" = "4.00MiB" -a \
    "$(mem_rows "$tmp/a1.txt" | awk '{ print $13 $14 }')" = "1.00MiB"
"$IMC_BIN" plan "$ds2" --ranks 2 --gpus 2 --layout pp=2 --gpu-mem 2 --ctx 64 -b 64 >"$tmp/a2.txt" 2>&1
check "pp=2: only the last stage holds the 128 KiB of logits" awk \
    -v f="$(act_kib "$tmp/a2.txt" 0)" -v l="$(act_kib "$tmp/a2.txt" 1)" \
    'BEGIN { exit !(f > 0 && l >= 128 && f < l) }'
"$IMC_BIN" plan "$ds2" --ranks 2 --gpus 1 --layout pp=2 --gpu-mem 3 >"$tmp/s.txt" 2>&1
check "2 ranks on 1 GPU: 1.5 GiB each" test \
    "$(mem_rows "$tmp/s.txt" | awk '{ print $2 "=" $5 $6 }' | tr '\n' ' ')" = "0=1.50GiB 0=1.50GiB "
"$IMC_BIN" plan "$ds2" --ranks 4 >"$tmp/nog.txt" 2>&1
check "without --gpu-mem / --experts-on: no memory table" test -z "$(mem_rows "$tmp/nog.txt")"

# ---- errors: exit 1 (a plan that cannot be made) or 2 (bad usage), one line on stderr ----
err_case() { # err_case NAME EXIT REGEX ARGS...
    local name=$1 want=$2 re=$3
    shift 3
    "$IMC_BIN" plan "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    check "$name: exit $want (was $rc)" test "$rc" -eq "$want"
    check "$name: one line" test "$(wc -l <"$tmp/err")" -eq 1
    check "$name: message" grep -qE -- "$re" "$tmp/err"
    check "$name: no stdout" test ! -s "$tmp/out"
}
err_case "layout/ranks mismatch" 1 'layout pp=2,ep=1,dp=3 needs 6 ranks, --ranks is 4' \
    "$ds2" --ranks 4 --layout pp=2,ep=1,dp=3
err_case "more stages than layers" 1 'pp=4 needs at least 4 layers, the model has 3' \
    "$ds2" --ranks 4 --layout pp=4
err_case "ep > experts" 1 'ep=16 exceeds the 8 experts' "$ds2" --ranks 16 --layout ep=16
err_case "ep on a dense model" 1 'ep=2 needs a MoE model' "$llama" --ranks 2 --layout ep=2
err_case "bad layout text" 1 "--layout 'pp=x'" "$ds2" --ranks 1 --layout pp=x
err_case "missing model" 1 "$tmp/missing.gguf" "$tmp/missing.gguf" --ranks 2
err_case "no --ranks" 2 'missing --ranks' "$ds2"
IMC_CUDA_MMQ_TOKENS=many err_case "a bad IMC_CUDA_MMQ_TOKENS" 2 \
    'IMC_CUDA_MMQ_TOKENS=many: expected a number of tokens in 0\.\.1048576' "$ds2" --ranks 1
IMC_CUDA_MMV_TOKENS=65 err_case "a bad IMC_CUDA_MMV_TOKENS" 2 \
    'IMC_CUDA_MMV_TOKENS=65: expected a number of tokens in 1\.\.64' "$ds2" --ranks 1
# (an imatrix run's sums take at least one block of 1 MiB; the activations are the arena's 28.31
# KiB and the stage's two hidden arrays of 4 x 64 floats, 2 KiB)
re='rank 0 \(layers \[0,2\), experts \[0,4\)\) does not fit: it needs 471.53 KiB of weights, '
re+='30.31 KiB of activations, 1.00 MiB of imatrix sums and 1.28 KiB of op scratch \(calls of 1 x '
re+='4 tokens\) on GPU 0, which has 1.43 MiB per rank \(1 more rank does not fit either\); '
re+='--experts-on cpu keeps'
err_case "slice above its GPU" 1 "$re" "$ds2" --ranks 4 --gpus 4 --gpu-mem 0.0014 --ctx 4 -b 4 \
    --gpu-reserve 0
err_case "GPU part above its GPU with --experts-on cpu" 1 \
    'rank 0 .* needs 375.53 KiB of weights, 14.25 KiB of activations, 1.00 MiB of imatrix sums and 5.03 KiB of op scratch .* on GPU 0, which has 1.33 MiB per rank \(1 more' \
    "$ds2" --ranks 4 --gpus 4 --gpu-mem 0.0013 --experts-on cpu --ctx 4 -b 4 --gpu-reserve 0
# 482 KiB GPUs hold rank 0's 471.53 KiB of weights, not its activations and sums as well
err_case "weights fit, the rest does not" 1 \
    'rank 0 .* needs 471.53 KiB of weights, 30.31 KiB of activations, 1.00 MiB of imatrix sums and 1.28 KiB of op scratch \(calls of 1 x 4 tokens\) on GPU 0, which has 482.34 KiB' \
    "$ds2" --ranks 4 --gpus 4 --gpu-mem 0.00046 --ctx 4 -b 4 --gpu-reserve 0
# the op scratch counts: 1526.73 KiB GPUs hold rank 0's weights, activations and sums (1525.84
# KiB), not its 1.28 KiB of op scratch as well (its shard's rows in the tables' memory: the way
# that takes more, the arena holding the rows received at their worst)
err_case "all but the op scratch fits" 1 \
    'rank 0 .* 1.28 KiB of op scratch \(calls of 1 x 4 tokens\) on GPU 0, which has 1.49 MiB' \
    "$ds2" --ranks 4 --gpus 4 --gpu-mem 0.001456 --ctx 4 -b 4 --gpu-reserve 0
# the reserve counts: 1 GiB GPUs hold the slice, not the slice and 1 GiB besides; half as much does
err_case "the default reserve on 1 GiB GPUs" 1 \
    'rank 0 .* needs 471.53 KiB of weights, [0-9.]+ MiB of activations, 8.00 MiB of imatrix sums, [0-9.]+ [KM]iB of op scratch \(calls of 8 x 256 tokens\) and 1.00 GiB reserved \(--gpu-reserve\) on GPU 0, which has 1.00 GiB per rank' \
    "$ds2" --ranks 4 --gpus 4 --gpu-mem 1
"$IMC_BIN" plan "$ds2" --ranks 4 --gpus 4 --gpu-mem 1 --gpu-reserve 0.5 >/dev/null 2>"$tmp/r.err"
check "--gpu-reserve 0.5 on 1 GiB GPUs: fits" test $? -eq 0 -a ! -s "$tmp/r.err"
err_case "--gpu-reserve -1" 2 'option --gpu-reserve expects GiB in \[0, ' "$ds2" --ranks 2 --gpus 1 \
    --gpu-mem 1 --gpu-reserve -1
HWLOC_SYNTHETIC="pack:2 numa:2(memory=50kB) core:2 pu:1" err_case "experts above the node" 1 \
    'rank 0 .* needs 96.00 KiB of weights on NUMA node 0, which has 48.83 KiB per rank \(3 more' \
    "$ds2" --ranks 4 --gpus 4 --experts-on cpu
err_case "dense slice above its GPU" 1 \
    'rank 0 \(layers \[0,1\)\) does not fit: it needs [0-9.]+ KiB of weights, [0-9.]+ [KM]iB of activations, [0-9.]+ [KM]iB of imatrix sums and [0-9.]+ [KM]iB of op scratch \(calls of 8 x 256 tokens\) on GPU 0' \
    "$llama" --ranks 2 --gpus 2 --gpu-mem 0.0001 --gpu-reserve 0
err_case "--gpu-mem without GPU ranks" 1 '--gpu-mem needs GPU ranks, but the plan has none' \
    "$ds2" --ranks 2 --gpus 0 --gpu-mem 1
err_case "--experts-on cpu without GPU ranks" 1 '--experts-on cpu needs GPU ranks' \
    "$ds2" --ranks 2 --experts-on cpu
err_case "--gpu-mem 0" 2 'option --gpu-mem expects GiB in \(0, ' "$ds2" --ranks 2 --gpus 1 --gpu-mem 0
err_case "--experts-on disk" 2 "experts-on" "$ds2" --ranks 2 --experts-on disk
err_case "--ranks 0" 2 "option --ranks expects a positive integer, got '0'" "$ds2" --ranks 0
err_case "--ranks=x" 2 "option --ranks expects a positive integer, got 'x'" "$ds2" --ranks=x
err_case "no MODEL" 2 'missing MODEL' --ranks 2
err_case "two MODELs" 2 'too many arguments' "$ds2" "$ds2" --ranks 2
err_case "--ranks twice" 2 'option --ranks given twice' "$ds2" --ranks 2 --ranks 4
check_done
