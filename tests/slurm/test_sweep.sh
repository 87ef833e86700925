#!/usr/bin/env bash
# tests/slurm/test_sweep: the real `imc sweep` through slurm/sweep.sbatch (2 ranks under mpirun:
# the two recipes run on different ranks), sweep.sbatch with IMC_RANKS_PER_RECIPE=2 (one group
# of 2 ranks: every recipe quantized and scored over both) and slurm/sweep-array.sbatch (a job
# array, one recipe per task, 1 rank each) on the local Slurm cluster (STYLE b.7, kind slurm),
# on a tiny generated model (gen-model llama-k-tiny) with 2 recipes. The jobs' results.csv,
# results.md and results.svg must be byte-identical to a direct single-process `imc sweep`; the
# array's per-recipe results.csv files, joined as slurm/README.md shows, must equal the direct one.
# Where the local Slurm has fake nodes (local-slurm.sh --nodes N), a group of 2 ranks on 2 nodes
# (IMC_RANKS_PER_RECIPE=2, --ntasks-per-node=1) must give the same files too.
# 1 rank where a node has a single CPU. Slurm that cannot be started: see slurm_test_require
# (common.sh).
set -u
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"
: "${IMC_BIN:?IMC_BIN must point to the imc binary}"
sd=$IMC_SOURCE_DIR/slurm

slurm_test_require

tmp=$(mktemp -d "${TMPDIR:-/tmp}/imc_slurm_sweep.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
J=$tmp/jobs
mkdir -p "$J" "$tmp/rules"
model=$tmp/model.gguf text=$IMC_SOURCE_DIR/data/text/calibration.txt
args=(--ctx 64 --chunks 6)
if ! "$IMC_BIN" gen-model --preset llama-k-tiny -o "$model" >/dev/null 2>&1 ||
    ! "$IMC_BIN" imatrix -m "$model" -f "$text" -o "$tmp/imat.gguf" --ctx 64 --chunks 4 -q \
        >/dev/null 2>&1; then
    echo "FAIL gen-model / imatrix (no Slurm)"
    exit 1
fi
printf '# 2-bit\n!type q2_k\n' >"$tmp/rules/q2.rules"
printf 'attn_.*=q8_0\n!type q4_0\n' >"$tmp/rules/q4-attn8.rules"

# reference: one process, no Slurm
if ! "$IMC_BIN" sweep --base "$model" --imatrix "$tmp/imat.gguf" --rules-dir "$tmp/rules" \
    -f "$text" "${args[@]}" --out-dir "$tmp/ref" >"$tmp/ref.out" 2>"$tmp/ref.err"; then
    echo "FAIL the direct imc sweep (no Slurm) fails:"
    tail -5 "$tmp/ref.err"
    exit 1
fi

ranks=$(slurm_ranks)
slurm_test_wait=sbatch # STYLE b.7: a real `sbatch --wait`
t0=$SECONDS
slurm_submit "$J" sweep IMC_LAUNCH=mpirun IMC_MODEL="$model" IMC_IMATRIX="$tmp/imat.gguf" \
    IMC_RULES_DIR="$tmp/rules" IMC_TEXT="$text" IMC_OUT_DIR="$tmp/job" -- \
    --ntasks="$ranks" "$sd/sweep.sbatch" "${args[@]}" &
if [ "$ranks" = 2 ]; then # recipe groups: the base over both ranks, each recipe over both
    slurm_submit "$J" group IMC_LAUNCH=mpirun IMC_MODEL="$model" IMC_IMATRIX="$tmp/imat.gguf" \
        IMC_RULES_DIR="$tmp/rules" IMC_TEXT="$text" IMC_OUT_DIR="$tmp/group" \
        IMC_RANKS_PER_RECIPE=2 -- --ntasks=2 "$sd/sweep.sbatch" "${args[@]}" &
fi
n_nodes=$(sinfo -h -o %D 2>/dev/null | awk '{ n += $1 } END { print n + 0 }')
if [ "$n_nodes" -ge 2 ]; then # a recipe group across two nodes (local-slurm.sh --nodes N)
    slurm_submit "$J" nodes IMC_LAUNCH=mpirun IMC_MODEL="$model" IMC_IMATRIX="$tmp/imat.gguf" \
        IMC_RULES_DIR="$tmp/rules" IMC_TEXT="$text" IMC_OUT_DIR="$tmp/nodes" \
        IMC_RANKS_PER_RECIPE=2 -- --nodes=2 --ntasks=2 --ntasks-per-node=1 "$sd/sweep.sbatch" \
        "${args[@]}" &
fi
slurm_submit "$J" array IMC_LAUNCH=none IMC_NTASKS=1 IMC_MODEL="$model" \
    IMC_IMATRIX="$tmp/imat.gguf" IMC_RULES_DIR="$tmp/rules" IMC_TEXT="$text" \
    IMC_OUT_DIR="$tmp/arr" -- --ntasks=1 --array=0-1 "$sd/sweep-array.sbatch" "${args[@]}" &
wait
n_jobs=$(find "$J" -name '*.rc' | wc -l)
echo "$n_jobs jobs ($ranks rank(s); an array of 2 tasks) took $((SECONDS - t0)) s"

check "sweep job: exit 0" test "$(slurm_rc "$J" sweep)" = 0
for f in results.csv results.md results.svg; do
    check "sweep job: $f identical to the direct imc sweep" cmp "$tmp/ref/$f" "$tmp/job/$f"
done
check "sweep job: the table in the job's .out (rank-tagged)" grep -q '| q4-attn8 | q4_0 | yes |' \
    "$J/sweep.out"
if [ "$ranks" = 2 ]; then
    check "sweep job: a recipe ran on rank 1" grep -q 'imc\[r1@.*sweep: \[2/2\] q4-attn8' \
        "$J/sweep.err"
fi
check "sweep job: no model left (deleted after scoring)" \
    test -z "$(find "$tmp/job" -name '*.gguf')"
if [ "$ranks" = 2 ]; then
    check "sweep job, IMC_RANKS_PER_RECIPE=2: exit 0" test "$(slurm_rc "$J" group)" = 0
    for f in results.csv results.md results.svg; do
        check "sweep job, IMC_RANKS_PER_RECIPE=2: $f identical to the direct imc sweep" \
            cmp "$tmp/ref/$f" "$tmp/group/$f"
    done
    check "sweep job, IMC_RANKS_PER_RECIPE=2: each recipe quantized over 2 ranks" \
        test "$(grep -c 'quantize: .* 2 rank(s)' "$J/group.err")" -ge 2
fi

if [ "$n_nodes" -ge 2 ]; then
    check "sweep job, a group over 2 nodes: exit 0" test "$(slurm_rc "$J" nodes)" = 0
    for f in results.csv results.md results.svg; do
        check "sweep job, a group over 2 nodes: $f identical to the direct imc sweep" \
            cmp "$tmp/ref/$f" "$tmp/nodes/$f"
    done
    hosts=$(grep -o 'imc\[r[01]@[^]]*\]' "$J/nodes.err" | sort -u | sed 's/.*@//' | sort -u |
        wc -l)
    check "sweep job, a group over 2 nodes: its ranks ran on 2 hosts ($hosts)" test "$hosts" -eq 2
else
    check_skip "a recipe group over 2 nodes" "the local Slurm has one node (--nodes 3 gives 3)"
fi
check "sweep array: exit 0" test "$(slurm_rc "$J" array)" = 0
for r in q2.rules q4-attn8.rules; do # the task folders are named after the recipe files
    check "sweep array: task of '$r' wrote its results.csv" test -s "$tmp/arr/$r/results.csv"
done
awk 'FNR > 1 || NR == 1' "$tmp"/arr/*/results.csv >"$tmp/arr.csv"
check "sweep array: the joined results.csv equals the direct one" cmp "$tmp/ref/results.csv" \
    "$tmp/arr.csv"

if [ "$fail" -gt 0 ]; then
    show_job "$J" sweep array group nodes
fi
check_done
