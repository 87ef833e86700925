#!/usr/bin/env bash
# tests/mpi/test_slice_np: what each rank of a job holds and where it runs (DESIGN.md §6
# "Placement"; coordinator/dist.h, coordinator/rank_place.h, worker/slice.h). On ds2-mid (~42 MiB
# of f32 weights, expert tensors of MBs) under pp=2,ep=2, ep=4 and pp=2:
#   - every rank's mapped tensor pages (/proc/self/pagemap) are its slice: within 5% (+64 KiB of
#     page rounding) of the slice's bytes, and nothing of the model beyond the slice (+64 KiB);
#   - a slice is well below the whole model (ep=4: < 45%; pp=2 stage 0: < 60%);
#   - with a synthetic 2-node topology (HWLOC_SYNTHETIC) the 4 ranks of a host go to NUMA nodes
#     0, 1, 0, 1 and nothing is bound (not this machine), the output unchanged.
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
: "${IMC_BIN:?}" "${IMC_SOURCE_DIR:?}"
TEXT="$IMC_SOURCE_DIR/data/text/calibration.txt"
mpi_sanitizer_env
M="$MPI_TMP/mid.gguf"
if ! "$IMC_BIN" gen-model --preset ds2-mid -o "$M" >/dev/null 2>&1; then
    echo "FAIL gen-model --preset ds2-mid"
    exit 1
fi
model_bytes=$(stat -c %s "$M")
P=(perplexity -m "$M" -f "$TEXT" --ctx 64 --chunks 4 -v)
"$IMC_BIN" "${P[@]}" -q >"$MPI_TMP/single.out" 2>/dev/null
mpi_check "single process: exit 0" test $? -eq 0
mpi_check "single process: a final estimate (the output the ranks must match)" \
    grep -q '^Final estimate: PPL = [0-9]' "$MPI_TMP/single.out"

# ranks TAG: "rank slice resident model node" per rank, from rank 0's summary lines (MiB).
ranks() {
    sed -nE 's/.*dist: rank ([0-9]+): .*resident ([0-9.]+) MiB of its slice of ([0-9.]+) MiB, '`
        `'([0-9.]+) MiB of the model mapped; NUMA node (-?[0-9]+).*/\1 \3 \2 \4 \5/p' \
        "$MPI_TMP/$1.err"
}

# slices TAG N LAYOUT MAXSHARE: runs the job and checks every rank's residency.
slices() {
    local tag=$1 n=$2 layout=$3 max=$4
    mpi_run "$tag" "$n" -- "$IMC_BIN" "${P[@]}" --layout "$layout"
    local rc=$?
    mpi_check "$tag: np=$n $layout exits 0 (was $rc)" test "$rc" -eq 0
    mpi_check "$tag: output identical to the single process" cmp -s "$MPI_TMP/single.out" \
        "$MPI_TMP/$tag.out"
    mpi_check "$tag: a summary line for each of the $n ranks" test "$(ranks "$tag" | wc -l)" -eq "$n"
    local r slice res all node
    while read -r r slice res all node; do
        mpi_check "$tag rank $r: resident $res MiB within 5% of its slice $slice MiB" \
            awk -v a="$res" -v s="$slice" 'BEGIN { exit !(a <= s * 1.05 + 0.0625 && a >= s * 0.95 - 0.0625) }'
        mpi_check "$tag rank $r: nothing mapped beyond the slice ($all MiB of the model)" \
            awk -v a="$all" -v s="$slice" 'BEGIN { exit !(a <= s * 1.05 + 0.0625) }'
        mpi_check "$tag rank $r: slice $slice MiB below $max of the model" \
            awk -v s="$slice" -v m="$model_bytes" -v x="$max" 'BEGIN { exit !(s * 1048576 < m * x) }'
    done < <(ranks "$tag")
}
slices pp2ep2 4 pp=2,ep=2 0.45
slices ep4 4 ep=4 0.45
slices pp2 2 pp=2 0.70

HWLOC_SYNTHETIC="node:2 core:2 pu:1" mpi_run synth 4 -x HWLOC_SYNTHETIC -- "$IMC_BIN" "${P[@]}" \
    --layout pp=2,ep=2
rc=$?
mpi_check "synthetic 2-node host: exit 0 (was $rc)" test "$rc" -eq 0
mpi_check "synthetic 2-node host: output identical" cmp -s "$MPI_TMP/single.out" \
    "$MPI_TMP/synth.out"
mpi_check "synthetic 2-node host: ranks on NUMA nodes 0 1 0 1" \
    test "$(ranks synth | awk '{ printf "%s ", $5 }')" = "0 1 0 1 "
mpi_check "synthetic 2-node host: not bound (not this machine)" \
    grep -q 'PUs [0-9].*(the topology is not this machine)' "$MPI_TMP/synth.err"
[ "$fail" -ne 0 ] && grep -E 'dist: rank|place' "$MPI_TMP"/*.err | head -20
mpi_summary
