#!/usr/bin/env bash
# tests/mpi/test_sweep_watchdog_np: the waits of `imc sweep` for another rank's work of one
# process run under the watchdog (coordinator/sweep.h "MPI", mpi/beat.h), at IMC_MPI_TIMEOUT=2:
#   (a) the final gather: world rank 0 waits for a rank's last recipe;
#   (b) --ranks-per-recipe 1: the other ranks wait while world rank 0 computes the base;
#   (c) a recipe group waits while its rank 0 quantizes and writes the recipe's model.
# Slow but progressing work (a base and recipe scoring of several seconds, an external quantizer
# whose output grows for 5 s) is not killed: the sweep ends with files identical to one
# process. A rank that is alive but stuck (SIGSTOP: by an !external command that stops its own
# rank, or by the test while rank 0 computes the base) ends the job within the timeout with a
# line naming the stuck rank and what it was doing.
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
: "${IMC_BIN:?}" "${IMC_SOURCE_DIR:?}"
mpi_sanitizer_env
T=$MPI_TMP
m=$T/model.gguf
text=$T/long.txt
# the slow base: SLOW chunks of ctx 256, several seconds even on a fast idle machine (200 chunks
# took under 3 s on a 2-core Zen 4/5 EPYC: the check below that the base outlasted the timeout
# then failed)
SLOW=400
for _ in $(seq 16); do cat "$IMC_SOURCE_DIR/data/text/calibration.txt"; done >"$text"
if ! "$IMC_BIN" gen-model --preset llama-k-tiny -o "$m" >/dev/null 2>&1; then
    echo "FAIL gen-model"
    exit 1
fi
TMO=2
# ends every process of this test still alive (a rank stopped by a fault is SIGKILLed)
cleanup() {
    local p
    for p in $(pgrep -f "imc sweep --base $m" 2>/dev/null); do
        kill -KILL "$p" 2>/dev/null
    done
}
trap 'cleanup; rm -rf "$T"' EXIT

# recipe directories: one quick built-in recipe and one external quantizer of 5 s whose output
# grows every 0.5 s (it then copies the base: figures as the base's, the same in every run)
mkdir -p "$T/slow" "$T/stop1" "$T/stop0"
printf '!type q4_0\n' >"$T/slow/a-q4"
# shellcheck disable=SC2016 # $i is the external command's
printf '!external for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.5; echo $i >>{out}; done; ' \
    >"$T/slow/b-ext"
printf 'cp {model} {out}; : {type}\n' >>"$T/slow/b-ext"
# a recipe whose quantizer stops the rank that runs it (alive, never progressing)
# shellcheck disable=SC2016 # $PPID is the external command's
stop='!external kill -STOP $PPID; cp {model} {out}; : {type}\n'
cp "$T/slow/a-q4" "$T/stop1/a-q4"
# shellcheck disable=SC2059
printf "$stop" >"$T/stop1/b-stop"
# shellcheck disable=SC2059
printf "$stop" >"$T/stop0/b-stop"
ARGS=(--base "$m" -f "$text" --ctx 256)

"$IMC_BIN" sweep "${ARGS[@]}" --chunks "$SLOW" --rules-dir "$T/slow" --out-dir "$T/one" \
    >"$T/one.out" 2>"$T/one.err"
mpi_check "single process: exit 0" test $? -eq 0

# ---- slow but progressing: not killed ----
for g in 1 2; do
    start=$(date +%s.%N)
    IMC_MPI_TIMEOUT=$TMO mpi_run "slow$g" 2 -- "$IMC_BIN" sweep "${ARGS[@]}" --chunks "$SLOW" \
        --rules-dir "$T/slow" --out-dir "$T/slow$g" --ranks-per-recipe "$g"
    rc=$?
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    echo "slow G=$g: $secs s at IMC_MPI_TIMEOUT=$TMO"
    mpi_check "slow G=$g: exit 0 (was $rc)" test "$rc" -eq 0
    for f in results.csv results.md b-ext.kld.txt; do
        mpi_check "slow G=$g: $f identical to one process" cmp "$T/one/$f" "$T/slow$g/$f"
    done
    mpi_check "slow G=$g: no watchdog line" bash -c "! grep -q 'gave up' '$T/slow$g.err'"
    [ "$rc" -eq 0 ] || tail -5 "$T/slow$g.err"
done
# the work the waits lasted through was longer than the timeout
mpi_check "slow G=1: the base on rank 0 took longer than $TMO s" \
    grep -qE "r0@.*sweep: base: PPL .*\((([3-9]|[1-9][0-9]+)\.[0-9]+s|[0-9]+m[^)]*)\)$" \
    "$T/slow1.err"
mpi_check "slow G=1: the external recipe ran on rank 1 (rank 0 waited for it in the gather)" \
    grep -q "r1@.*sweep: \[2/2\] b-ext: quantizing" "$T/slow1.err"

# ---- stuck: the job ends naming the rank ----
# stuck TAG G DIR: runs the sweep at np 2 on fewer chunks; sets rc and secs (launch to end).
stuck() {
    local tag=$1 g=$2 dir=$3 start
    start=$(date +%s.%N)
    IMC_MPI_TIMEOUT=$TMO mpi_run "$tag" 2 -- "$IMC_BIN" sweep "${ARGS[@]}" --chunks 40 \
        --rules-dir "$dir" --out-dir "$T/$tag" --ranks-per-recipe "$g"
    rc=$?
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    cleanup
}
check_stuck() { # check_stuck TAG WHAT PATTERN
    echo "$1: ended after $secs s (exit $rc)"
    mpi_check "$1: exit non-zero (was $rc), not by the test's timeout" \
        test "$rc" -ne 0 -a "$rc" -ne 124
    mpi_check "$1: $2" grep -qE "$3" "$T/$1.err"
    mpi_check "$1: no results written" test ! -e "$T/$1/results.csv"
    grep -q 'gave up' "$T/$1.err" || tail -5 "$T/$1.err"
}
gaveup="fatal: gave up after $TMO s waiting for progress from world rank"

stuck stop_gather 1 "$T/stop1"
check_stuck stop_gather "(a) rank 0 names the stuck rank 1 in the gather" \
    "r0@.*$gaveup 1 \(its recipes\)"

stuck stop_group 2 "$T/stop0"
check_stuck stop_group "(c) the group's rank 1 names its stuck rank 0 writing the model" \
    "r1@.*$gaveup 0 \(group rank 0 writing .*b-stop.gguf\)"

# (b): the test stops world rank 0 once it computes the base
IMC_MPI_TIMEOUT=$TMO timeout 120 "$MPIEXEC" -n 2 --oversubscribe "$IMC_BIN" sweep "${ARGS[@]}" \
    --chunks "$SLOW" --rules-dir "$T/stop1" --out-dir "$T/stop_base" >"$T/stop_base.out" \
    2>"$T/stop_base.err" &
pid=$!
victim=$(mpi_wait_rank "imc sweep --base $m" 0 "$T/stop_base.err" 'sweep: base logits of')
mpi_check "(b) found world rank 0 (pid ${victim:-none}) computing the base" test -n "$victim"
[ -n "$victim" ] && kill -STOP "$victim"
stopped=$(date +%s.%N)
wait "$pid"
rc=$?
secs=$(echo "$(date +%s.%N) - $stopped" | bc)
cleanup
check_stuck stop_base "(b) rank 1 names the stuck rank 0 computing the base" \
    "r1@.*$gaveup 0 \(the base logits .*_base.logits\)"
mpi_check "(b) detected within $TMO s + 10 s of the stop (took $secs s)" \
    test "$(echo "$secs < $TMO + 10" | bc)" -eq 1
mpi_check "(b) the base was still running when stopped" \
    bash -c "! grep -q 'sweep: base: PPL' '$T/stop_base.err'"
mpi_summary
