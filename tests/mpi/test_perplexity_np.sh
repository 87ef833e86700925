#!/usr/bin/env bash
# tests/mpi/test_perplexity_np: `imc perplexity` as one MPI job (coordinator/dist.h; DESIGN.md §6)
# gives stdout byte-identical to the single-process run, for replicas (dp), pipeline stages (pp)
# expert shards (ep) and combinations, over shared memory and over TCP; a deepseek2 MoE model and
# a llama model. KL-divergence too: --kld-save writes a base file byte-identical to one
# process's, and --kld-base prints the same figures (every chunk line and the summary), in pp,
# ep, dp and mixed layouts and over TCP, with the base file visible to rank 0 only (it reads
# each chunk's rows and sends them to the rank that scores the chunk). Also:
# bad layouts and options under mpirun exit nonzero with their message, a failure inside the run
# ends every rank (no hang), and ranks other than 0 print nothing to stdout; only rank 0 reads
# the text (the other ranks run where it does not exist).
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
: "${IMC_BIN:?}" "${IMC_SOURCE_DIR:?}"
TEXT="$IMC_SOURCE_DIR/data/text/calibration.txt"
mpi_sanitizer_env
ARGS=(--ctx 64 --chunks 6)

for preset in ds2-tiny-3d llama-tiny; do
    if ! "$IMC_BIN" gen-model --preset "$preset" -o "$MPI_TMP/$preset.gguf" >/dev/null 2>&1; then
        echo "FAIL gen-model --preset $preset"
        exit 1
    fi
done

# ppl_case MODEL TAG N LAYOUT [extra args...]: runs under mpirun; stdout must equal the
# single-process run with the same extra args ($MPI_TMP/MODEL.single<extra>.out).
ppl_case() {
    local model=$1 tag=$2 n=$3 layout=$4
    shift 4
    local ref="$MPI_TMP/$model.single$*.out" opts=()
    [ "${tag%tcp}" != "$tag" ] && opts=("${MPI_TCP_ARGS[@]}")
    mpi_run "$model.$tag" "$n" "${opts[@]}" -- "$IMC_BIN" perplexity -m "$MPI_TMP/$model.gguf" \
        -f "$TEXT" "${ARGS[@]}" --layout "$layout" "$@"
    local rc=$?
    mpi_check "$model np=$n $layout $*: exit 0 (was $rc)" test "$rc" -eq 0
    mpi_check "$model np=$n $layout $*: stdout identical to the single-process run" \
        cmp -s "$ref" "$MPI_TMP/$model.$tag.out"
    if [ "$rc" -ne 0 ] || ! cmp -s "$ref" "$MPI_TMP/$model.$tag.out"; then
        diff "$ref" "$MPI_TMP/$model.$tag.out" | head -5
        tail -5 "$MPI_TMP/$model.$tag.err"
    fi
}

for model in ds2-tiny-3d llama-tiny; do
    # -b 128: batches of 2 chunks, so every replica gets work; default -b: one batch of 6.
    for extra in "-b 128" ""; do
        # shellcheck disable=SC2086 # $extra is a list of words
        "$IMC_BIN" perplexity -m "$MPI_TMP/$model.gguf" -f "$TEXT" "${ARGS[@]}" $extra -q \
            >"$MPI_TMP/$model.single$extra.out" 2>"$MPI_TMP/$model.single.err"
        mpi_check "$model single process $extra: exit 0 and a Final estimate" \
            grep -q '^Final estimate: PPL = ' "$MPI_TMP/$model.single$extra.out"
    done
    # shellcheck disable=SC2086
    {
        ppl_case "$model" np1 1 dp=1 -b 128
        ppl_case "$model" dp2 2 dp=2 -b 128
        ppl_case "$model" pp2 2 pp=2 -b 128
        ppl_case "$model" pp2dp2 4 pp=2,dp=2 -b 128
        ppl_case "$model" dp4 4 dp=4 -b 128
        ppl_case "$model" pp2dp2b 4 pp=2,dp=2
    }
done
# expert shards (ds2-tiny-3d: 8 experts): -b 128 gives batches of 2 chunks, so with ep=4 two
# shards have no sequence of their own; -b 64 one chunk per batch (shard 1 only serves experts).
# shellcheck disable=SC2086
{
    ppl_case ds2-tiny-3d ep2 2 ep=2 -b 128
    ppl_case ds2-tiny-3d ep4 4 ep=4 -b 128
    ppl_case ds2-tiny-3d pp2ep2 4 pp=2,ep=2 -b 128
    ppl_case ds2-tiny-3d ep2dp2 4 ep=2,dp=2 -b 128
    ppl_case ds2-tiny-3d ep2b 2 ep=2
}
"$IMC_BIN" perplexity -m "$MPI_TMP/ds2-tiny-3d.gguf" -f "$TEXT" "${ARGS[@]}" -b 64 -q \
    >"$MPI_TMP/ds2-tiny-3d.single-b 64.out" 2>/dev/null
ppl_case ds2-tiny-3d ep2b64 2 ep=2 -b 64
# --exchange host (rows through MPI even where the tables could exchange them; on the CPU they
# always do): the same output
cp "$MPI_TMP/ds2-tiny-3d.single-b 64.out" "$MPI_TMP/ds2-tiny-3d.single-b 64 --exchange host.out"
ppl_case ds2-tiny-3d ep2host 2 ep=2 -b 64 --exchange host
ppl_case ds2-tiny-3d ep2tcp 2 ep=2 -b 128
ppl_case ds2-tiny-3d pp2dp2tcp 4 pp=2,dp=2 -b 128
ppl_case llama-tiny dp2tcp 2 dp=2 -b 128
# default layout under mpirun: every rank a replica
mpi_run ds2.default 3 -- "$IMC_BIN" perplexity -m "$MPI_TMP/ds2-tiny-3d.gguf" -f "$TEXT" \
    "${ARGS[@]}" -b 64
mpi_check "np=3 default layout (dp=3): exit 0" test $? -eq 0
"$IMC_BIN" perplexity -m "$MPI_TMP/ds2-tiny-3d.gguf" -f "$TEXT" "${ARGS[@]}" -b 64 \
    >"$MPI_TMP/ds2.b64.out" 2>/dev/null
mpi_check "np=3 default layout: stdout identical" cmp -s "$MPI_TMP/ds2.b64.out" \
    "$MPI_TMP/ds2.default.out"

# ---- only rank 0 reads the text: the other ranks start in a folder without it ------------------
mkdir -p "$MPI_TMP/r0" "$MPI_TMP/r1"
cp "$TEXT" "$MPI_TMP/r0/text.txt"
mpi_run only0 2 -- bash -c 'cd "$1/r$OMPI_COMM_WORLD_RANK" && shift && exec "$@"' _ "$MPI_TMP" \
    "$IMC_BIN" perplexity -m "$MPI_TMP/llama-tiny.gguf" -f text.txt "${ARGS[@]}" -b 128 \
    --layout dp=2 -t 1
mpi_check "text only where rank 0 runs: exit 0, stdout identical (its tokens are broadcast)" \
    cmp -s "$MPI_TMP/llama-tiny.single-b 128.out" "$MPI_TMP/only0.out"
mpi_check "text only where rank 0 runs: no other rank tried to open it" \
    bash -c "! grep -q 'text.txt: cannot open' '$MPI_TMP/only0.err'"

# ---- -v: a profile line per rank, gathered to rank 0 ---------------------------------------------
mpi_run prof 2 -- "$IMC_BIN" perplexity -m "$MPI_TMP/ds2-tiny-3d.gguf" -f "$TEXT" "${ARGS[@]}" \
    --layout pp=2 -t 1 -v
mpi_check "-v under mpirun: rank 0 logs the profile of rank 0 and of rank 1" \
    bash -c "grep -q 'dist: rank 0: profile: .*matmul' '$MPI_TMP/prof.err' &&
             grep -q 'dist: rank 1: profile: .*matmul' '$MPI_TMP/prof.err'"

# ---- KL-divergence under MPI -----------------------------------------------------------------
D=(-m "$MPI_TMP/ds2-tiny-3d.gguf" -f "$TEXT" "${ARGS[@]}" -b 128)
"$IMC_BIN" perplexity "${D[@]}" --kld-save "$MPI_TMP/base.single.kld" -q \
    >"$MPI_TMP/kld.save.single.out" 2>/dev/null
mpi_check "kld: single-process base file" test -s "$MPI_TMP/base.single.kld"
"$IMC_BIN" quantize "$MPI_TMP/ds2-tiny-3d.gguf" "$MPI_TMP/q.gguf" q8_0 -q >/dev/null 2>&1
# the base file in a folder that only rank 0 sees (MPI_HIDE: an empty tmpfs on the others)
mkdir -p "$MPI_TMP/only0"
cp "$MPI_TMP/base.single.kld" "$MPI_TMP/only0/base.kld"
mpi_run hide 2 -- "${MPI_HIDE[@]}" "$MPI_TMP/only0" test -s "$MPI_TMP/only0/base.kld"
mpi_check "kld: the hidden folder is empty on rank 1" test $? -ne 0
Q=(-m "$MPI_TMP/q.gguf" --kld-base "$MPI_TMP/only0/base.kld" -b 128)
"$IMC_BIN" perplexity "${Q[@]}" -q >"$MPI_TMP/kld.base.single.out" 2>/dev/null
mpi_check "kld: single-process --kld-base prints the summary" \
    grep -q '^Mean    KLD:' "$MPI_TMP/kld.base.single.out"
for case in "pp2 2 pp=2" "ep2 2 ep=2" "dp2 2 dp=2" "pp2ep2 4 pp=2,ep=2" "ep2dp2 4 ep=2,dp=2" \
    "dp3 3 dp=3" "ep2tcp 2 ep=2"; do
    read -r tag n layout <<<"$case"
    opts=()
    [ "${tag%tcp}" != "$tag" ] && opts=("${MPI_TCP_ARGS[@]}")
    mpi_run "kld.save.$tag" "$n" "${opts[@]}" -- "$IMC_BIN" perplexity "${D[@]}" -t 1 \
        --layout "$layout" --kld-save "$MPI_TMP/base.$tag.kld"
    mpi_check "kld-save np=$n $layout: exit 0, same stdout" \
        cmp -s "$MPI_TMP/kld.save.single.out" "$MPI_TMP/kld.save.$tag.out"
    mpi_check "kld-save np=$n $layout: base file byte-identical" \
        cmp -s "$MPI_TMP/base.single.kld" "$MPI_TMP/base.$tag.kld"
    mpi_run "kld.base.$tag" "$n" "${opts[@]}" -- "${MPI_HIDE[@]}" "$MPI_TMP/only0" \
        "$IMC_BIN" perplexity "${Q[@]}" -t 1 --layout "$layout"
    mpi_check "kld-base np=$n $layout: every chunk line and the summary identical" \
        cmp -s "$MPI_TMP/kld.base.single.out" "$MPI_TMP/kld.base.$tag.out"
done

# expect_fail TAG N MESSAGE [mpirun options] -- imc args: exit nonzero, MESSAGE on stderr, no
# stdout.
expect_fail() {
    local tag=$1 n=$2 msg=$3
    shift 3
    if [ "$n" -eq 0 ]; then
        shift
        "$@" >"$MPI_TMP/$tag.out" 2>"$MPI_TMP/$tag.err"
    else
        mpi_run "$tag" "$n" "$@"
    fi
    local rc=$?
    mpi_check "$tag: exits nonzero (was $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
    mpi_check "$tag: says '$msg'" grep -qF -- "$msg" "$MPI_TMP/$tag.err"
    mpi_check "$tag: nothing on stdout" test ! -s "$MPI_TMP/$tag.out"
}
M=(-m "$MPI_TMP/llama-tiny.gguf" -f "$TEXT" "${ARGS[@]}")
expect_fail bad_count 4 "layout pp=2,ep=1,dp=3 needs 6 ranks, the job has 4" \
    -- "$IMC_BIN" perplexity "${M[@]}" --layout pp=2,dp=3
expect_fail bad_count_single 0 "layout pp=1,ep=1,dp=2 needs 2 ranks, the job has 1" \
    -- "$IMC_BIN" perplexity "${M[@]}" --layout dp=2
expect_fail ep_dense 2 "needs a MoE model; this one has no routed experts" \
    -- "$IMC_BIN" perplexity "${M[@]}" --layout ep=2
# llama-tiny has fewer layers than 3 stages: found inside the run, on every rank -> imc_fatal.
n_layer=$("$IMC_BIN" info "$MPI_TMP/llama-tiny.gguf" 2>/dev/null |
    grep -oE 'n_layer [0-9]+' | grep -oE '[0-9]+$' | head -1)
mpi_check "llama-tiny: n_layer read from imc info ($n_layer)" test -n "$n_layer"
pp=$((${n_layer:-2} + 1))
expect_fail too_many_stages "$pp" "layers, the model has $n_layer" \
    -- "$IMC_BIN" perplexity "${M[@]}" --layout "pp=$pp"
mpi_summary
