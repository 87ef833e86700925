#!/usr/bin/env bash
# tests/mpi/test_imatrix_np: `imc imatrix` as one MPI job (coordinator/imatrix_dist.c; DESIGN.md
# §6) writes the same bytes as the single-process run — GGUF imatrix, legacy .dat and stdout —
# for pipeline stages (pp), expert shards (ep), replicas (dp) and their combinations at np 1, 2,
# 3, 4 and 8, over shared memory and over TCP, on MLA models in both layouts (3D, and 2D ik with
# heads folded), a llama MoE with --process-output, a qwen3moe, a glm4moe (with a NextN layer),
# and a dense llama; only rank 0 reads the text. Also:
#   - checkpoints: a job killed after its first checkpoint resumes on another rank count (and as
#     a single process) to the bytes of an uninterrupted run; a single-process checkpoint
#     resumes under mpirun;
#   - faults: a rank killed (SIGKILL) or stopped (SIGSTOP: a node that vanishes) ends the job
#     non-zero within 30 s, naming the rank; no output file is left;
#   - other batch sizes (-b: chunks per engine call) give the same bytes;
#   - the automatic layout and bad layouts.
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
: "${IMC_BIN:?}" "${IMC_SOURCE_DIR:?}"
TEXT="$IMC_SOURCE_DIR/data/text/calibration.txt"
mpi_sanitizer_env

for preset in ds2-tiny-3d ds2-tiny-ik llama-moe-tiny llama-tiny qwen3moe-tiny glm4moe-tiny; do
    if ! "$IMC_BIN" gen-model --preset "$preset" -o "$MPI_TMP/$preset.gguf" >/dev/null 2>&1; then
        echo "FAIL gen-model --preset $preset"
        exit 1
    fi
done

# same_as REF OUT: the GGUF, the .dat and stdout of two runs are identical.
same_as() {
    cmp -s "$MPI_TMP/$1.gguf" "$MPI_TMP/$2.gguf" && cmp -s "$MPI_TMP/$1.dat" "$MPI_TMP/$2.dat" &&
        cmp -s "$MPI_TMP/$1.out" "$MPI_TMP/$2.out"
}

# single TAG MODEL [args]: the single-process reference run.
single() {
    local tag=$1 model=$2
    shift 2
    "$IMC_BIN" imatrix -m "$MPI_TMP/$model.gguf" -f "$TEXT" -o "$MPI_TMP/$tag" --format both \
        -q "$@" >"$MPI_TMP/$tag.out" 2>"$MPI_TMP/$tag.err"
    mpi_check "$tag: single process exits 0" test $? -eq 0
}

# job REF TAG N LAYOUT MODEL [args]: under mpirun; must equal REF. A TAG ending in "tcp" runs over
# the TCP transport.
job() {
    local ref=$1 tag=$2 n=$3 layout=$4 model=$5
    shift 5
    local opts=()
    [ "${tag%tcp}" != "$tag" ] && opts=("${MPI_TCP_ARGS[@]}")
    mpi_run "$tag" "$n" "${opts[@]}" -- "$IMC_BIN" imatrix -m "$MPI_TMP/$model.gguf" -f "$TEXT" \
        -o "$MPI_TMP/$tag" --format both --layout "$layout" "$@"
    local rc=$?
    mpi_check "$tag: np=$n $layout exits 0 (was $rc)" test "$rc" -eq 0
    mpi_check "$tag: np=$n $layout: GGUF, .dat and stdout identical to $ref" same_as "$ref" "$tag"
    if [ "$rc" -ne 0 ] || ! same_as "$ref" "$tag"; then
        tail -5 "$MPI_TMP/$tag.err"
    fi
}

A=(--ctx 64 --chunks 7 -b 192) # 3 chunks per engine call: batches of 3, 3 and 1
single ds3 ds2-tiny-3d "${A[@]}"
job ds3 ds3.np1 1 pp=1 ds2-tiny-3d "${A[@]}"
job ds3 ds3.pp3 3 pp=3 ds2-tiny-3d "${A[@]}"
job ds3 ds3.ep2 2 ep=2 ds2-tiny-3d "${A[@]}"
job ds3 ds3.ep4 4 ep=4 ds2-tiny-3d "${A[@]}"
job ds3 ds3.dp2 2 dp=2 ds2-tiny-3d "${A[@]}"
job ds3 ds3.pp2ep2 4 pp=2,ep=2 ds2-tiny-3d "${A[@]}"
job ds3 ds3.ep2dp2 4 ep=2,dp=2 ds2-tiny-3d "${A[@]}"
job ds3 ds3.pp2ep2dp2 8 pp=2,ep=2,dp=2 ds2-tiny-3d "${A[@]}"
job ds3 ds3.pp2dp2tcp 4 pp=2,dp=2 ds2-tiny-3d "${A[@]}"
job ds3 ds3.ep2tcp 2 ep=2 ds2-tiny-3d "${A[@]}"
# other batch sizes: one chunk per call, all 7 in one call
job ds3 ds3.pp2ep2b64 4 pp=2,ep=2 ds2-tiny-3d --ctx 64 --chunks 7 -b 64
job ds3 ds3.ep2b448 2 ep=2 ds2-tiny-3d --ctx 64 --chunks 7 -b 448

single ik ds2-tiny-ik "${A[@]}" --attn non-absorbed
job ik ik.pp2ep2 4 pp=2,ep=2 ds2-tiny-ik "${A[@]}" --attn non-absorbed
job ik ik.dp3 3 dp=3 ds2-tiny-ik "${A[@]}" --attn non-absorbed

single moe llama-moe-tiny "${A[@]}" --process-output
job moe moe.pp2 2 pp=2 llama-moe-tiny "${A[@]}" --process-output
job moe moe.ep2dp2 4 ep=2,dp=2 llama-moe-tiny "${A[@]}" --process-output

single q3moe qwen3moe-tiny "${A[@]}"
job q3moe q3moe.pp2ep2 4 pp=2,ep=2 qwen3moe-tiny "${A[@]}"
job q3moe q3moe.ep2dp2 4 ep=2,dp=2 qwen3moe-tiny "${A[@]}"
single glm glm4moe-tiny "${A[@]}"
job glm glm.pp3 3 pp=3 glm4moe-tiny "${A[@]}"
job glm glm.pp2ep2 4 pp=2,ep=2 glm4moe-tiny "${A[@]}"

single dense llama-tiny --ctx 64 --chunks 5 -b 64
job dense dense.pp2dp2 4 pp=2,dp=2 llama-tiny --ctx 64 --chunks 5 -b 64
# only rank 0 reads the text: the other ranks start in a folder without it (the file records the
# text's path as given, so the reference runs from rank 0's folder too)
mkdir -p "$MPI_TMP/i0" "$MPI_TMP/i1"
cp "$TEXT" "$MPI_TMP/i0/text.txt"
(cd "$MPI_TMP/i0" && "$IMC_BIN" imatrix -m "$MPI_TMP/llama-tiny.gguf" -f text.txt \
    -o "$MPI_TMP/d0" --format both -q --ctx 64 --chunks 5 -b 64 >"$MPI_TMP/d0.out" 2>/dev/null)
mpi_run d0.np2 2 -- bash -c 'cd "$1/i$OMPI_COMM_WORLD_RANK" && shift && exec "$@"' _ "$MPI_TMP" \
    "$IMC_BIN" imatrix -m "$MPI_TMP/llama-tiny.gguf" -f text.txt -o "$MPI_TMP/d0.np2" \
    --format both --layout pp=2 --ctx 64 --chunks 5 -b 64
mpi_check "text only where rank 0 runs: GGUF, .dat and stdout identical" same_as d0 d0.np2
mpi_check "text only where rank 0 runs: no other rank tried to open it" \
    bash -c "! grep -q 'text.txt: cannot open' '$MPI_TMP/d0.np2.err'"

# automatic layout (ds2-tiny-3d, 3 layers, 3 ranks: pp=3)
mpi_run auto 3 -- "$IMC_BIN" imatrix -m "$MPI_TMP/ds2-tiny-3d.gguf" -f "$TEXT" \
    -o "$MPI_TMP/auto" --format both "${A[@]}"
rc=$?
mpi_check "automatic layout: exit 0 (was $rc)" test "$rc" -eq 0
mpi_check "automatic layout: logged as pp=3" grep -q 'layout pp=3,ep=1,dp=1 (automatic' \
    "$MPI_TMP/auto.err"
mpi_check "automatic layout: identical output" same_as ds3 auto

# ---- checkpoints ----
long=$MPI_TMP/long.txt
for _ in 1 2 3; do cat "$TEXT"; done >"$long"
R=(-m "$MPI_TMP/ds2-tiny-ik.gguf" -f "$long" --ctx 64 --format both --save-every 10)
"$IMC_BIN" imatrix "${R[@]}" -q -o "$MPI_TMP/full" >"$MPI_TMP/full.out" 2>/dev/null
mpi_check "checkpoints: uninterrupted single-process run exits 0" test $? -eq 0

# kill_after_ckpt TAG N LAYOUT: starts the job in the background and kills its ranks (SIGKILL,
# at once) once TAG.ckpt exists; leaves a copy in TAG.ckpt.saved.
kill_after_ckpt() {
    local tag=$1 n=$2 layout=$3
    "$MPIEXEC" -n "$n" --oversubscribe "$IMC_BIN" imatrix "${R[@]}" -q -o "$MPI_TMP/$tag" \
        --layout "$layout" >"$MPI_TMP/$tag.out" 2>"$MPI_TMP/$tag.err" &
    local pid=$! i
    for i in $(seq 1 3000); do
        [ -e "$MPI_TMP/$tag.ckpt" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.005
    done
    # shellcheck disable=SC2046 # the list of rank pids
    kill -KILL $(pgrep -P "$pid") 2>/dev/null
    wait "$pid" 2>/dev/null
    local rc=$?
    sleep 0.2 # let every rank go
    mpi_check "$tag: job stopped (status $rc) after its first checkpoint" \
        test "$rc" -ne 0 -a -e "$MPI_TMP/$tag.ckpt"
    cp "$MPI_TMP/$tag.ckpt" "$MPI_TMP/$tag.ckpt.saved" 2>/dev/null
}

# resume TAG N LAYOUT: resumes TAG's saved checkpoint (N = 0: single process); must equal full.
resume() {
    local tag=$1 n=$2 layout=$3 rc
    cp "$MPI_TMP/$tag.ckpt.saved" "$MPI_TMP/$tag.ckpt"
    if [ "$n" -eq 0 ]; then
        "$IMC_BIN" imatrix "${R[@]}" -q -o "$MPI_TMP/$tag" --resume >"$MPI_TMP/$tag.out" \
            2>"$MPI_TMP/$tag.err"
    else
        mpi_run "$tag" "$n" -- "$IMC_BIN" imatrix "${R[@]}" -o "$MPI_TMP/$tag" --resume \
            --layout "$layout"
    fi
    rc=$?
    mpi_check "$tag: resumed on np=$n $layout: exit 0 (was $rc)" test "$rc" -eq 0
    mpi_check "$tag: resumed on np=$n $layout: identical to the uninterrupted run" \
        same_as full "$tag"
    mpi_check "$tag: checkpoint removed" test ! -e "$MPI_TMP/$tag.ckpt"
    [ "$rc" -ne 0 ] && tail -3 "$MPI_TMP/$tag.err"
}

kill_after_ckpt k4 4 pp=2,dp=2
cp "$MPI_TMP/k4.ckpt.saved" "$MPI_TMP/k4.ckpt"
"$IMC_BIN" imatrix "${R[@]/#64/32}" -o "$MPI_TMP/k4" --resume -q >/dev/null \
    2>"$MPI_TMP/k4.refused.err"
mpi_check "k4: a resume with other options is refused (exit $?)" test $? -ne 0
mpi_check "k4: ... naming the option" grep -q 'checkpoint written for --ctx 64, but this run' \
    "$MPI_TMP/k4.refused.err"
resume k4 0 -
kill_after_ckpt k2 2 ep=2
resume k2 3 pp=3
kill_after_ckpt k1 1 pp=1
resume k1 4 pp=2,ep=2

# ---- faults ----
# fault TAG SIGNAL: np=4 pp=2,dp=2 on a long text (10 copies: still running when the signal
# lands on a loaded machine); world rank 2 gets SIGNAL once the job runs.
faulttext=$MPI_TMP/fault.txt
for _ in $(seq 1 10); do cat "$TEXT"; done >"$faulttext"
fault() {
    local tag=$1 sig=$2 start end rc
    start=$(date +%s)
    IMC_MPI_TIMEOUT=3 timeout 60 "$MPIEXEC" -n 4 --oversubscribe "$IMC_BIN" imatrix \
        -m "$MPI_TMP/ds2-tiny-ik.gguf" -f "$faulttext" --ctx 64 -o "$MPI_TMP/$tag.gguf" \
        --layout pp=2,dp=2 >"$MPI_TMP/$tag.out" 2>"$MPI_TMP/$tag.err" &
    local pid=$! victim
    victim=$(mpi_wait_rank "imatrix .*-o $MPI_TMP/$tag.gguf" 2 "$MPI_TMP/$tag.err" 'imatrix: chunk')
    mpi_check "$tag: found world rank 2 (pid ${victim:-none}) while the job runs" test -n "$victim"
    [ -n "$victim" ] && kill "-$sig" "$victim"
    wait "$pid"
    rc=$?
    end=$(date +%s)
    [ "$sig" = STOP ] && [ -n "$victim" ] && kill -KILL "$victim" 2>/dev/null
    mpi_check "$tag: job exits non-zero (was $rc), not by the test's timeout" \
        test "$rc" -ne 0 -a "$rc" -ne 124
    mpi_check "$tag: ends within 30 s (took $((end - start)) s)" test $((end - start)) -lt 30
    mpi_check "$tag: no output file left" test ! -e "$MPI_TMP/$tag.gguf"
}
fault kill9 KILL
mpi_check "kill9: the error names rank 2" grep -qE 'rank 2 .*signal 9|rank 2 .*Killed' \
    "$MPI_TMP/kill9.err"
mpi_check "kill9: rank 2's role was logged" grep -q 'dist: rank 2: stage 0' "$MPI_TMP/kill9.err"
fault stop STOP
mpi_check "stop: the watchdog names the silent peer, world rank 2" \
    grep -qE 'fatal: gave up after 3 s waiting for .*(world|stage|pipeline|replica) rank' \
    "$MPI_TMP/stop.err"

# ---- bad layouts ----
mpi_run badcount 4 -- "$IMC_BIN" imatrix -m "$MPI_TMP/llama-tiny.gguf" -f "$TEXT" \
    -o "$MPI_TMP/bad.gguf" --layout pp=2,dp=3
mpi_check "pp=2,dp=3 on 4 ranks: exit 2 with the rank count message" bash -c \
    "[ $? -eq 2 ] && grep -q 'layout pp=2,ep=1,dp=3 needs 6 ranks, the job has 4' \
    '$MPI_TMP/badcount.err' && [ ! -e '$MPI_TMP/bad.gguf' ]"
mpi_run epdense 2 -- "$IMC_BIN" imatrix -m "$MPI_TMP/llama-tiny.gguf" -f "$TEXT" \
    -o "$MPI_TMP/bad.gguf" --layout ep=2
mpi_check "ep=2 on a dense model: nonzero exit, says why" bash -c \
    "[ $? -ne 0 ] && grep -q 'needs a MoE model' '$MPI_TMP/epdense.err'"
if [ "$fail" -ne 0 ]; then
    for f in "$MPI_TMP"/*.err; do
        echo "--- $f"
        grep -v '^\[' "$f" | tail -5
    done
fi
mpi_summary
