#!/usr/bin/env bash
# tests/e2e/test_threads: the default thread count (numa/threads.h, src/cli_job.c). Without -t a
# single process runs one thread per physical core it may use (hwloc-calc counts them
# independently); -t auto and -t 0 mean the same; taskset narrows it; -t above the hardware
# threads warns; under mpirun each rank gets its share of the host's cores and rank 0 logs every
# rank's count; the output never depends on any of it.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" threads
m=$tmp/llama-tiny.gguf
"$IMC_BIN" gen-model --preset llama-tiny -o "$m" >/dev/null || check_fail "gen-model"
P=(perplexity -m "$m" -f "$text" --ctx 64 --chunks 3)
threads_of() { sed -nE 's/.*, ([0-9]+) thread\(s\).*/\1/p' "$1" | head -n 1; }

cores=$(hwloc-calc -N core all 2>/dev/null)
run "${P[@]}" >"$tmp/def.out" 2>"$tmp/def.err"
check "default: ${cores:-?} thread(s), one per physical core (hwloc-calc)" \
    test -n "$cores" -a "$(threads_of "$tmp/def.err")" = "$cores"
check "default: a final estimate" grep -q '^Final estimate' "$tmp/def.out"
for t in auto 0 1 2; do
    run "${P[@]}" -t "$t" >"$tmp/t$t.out" 2>"$tmp/t$t.err"
    check "-t $t: same output as the default" cmp -s "$tmp/def.out" "$tmp/t$t.out"
done
check "-t auto = the default" test "$(threads_of "$tmp/tauto.err")" = "$cores"
check "-t 0 = the default" test "$(threads_of "$tmp/t0.err")" = "$cores"
check "-t 1: 1 thread" test "$(threads_of "$tmp/t1.err")" = 1
run "${P[@]}" -t 64 >"$tmp/t64.out" 2>"$tmp/t64.err"
check "-t 64: runs, same output" cmp -s "$tmp/def.out" "$tmp/t64.out"
check "-t 64: a warning that threads share cores" grep -q 'exceeds the .* hardware thread' \
    "$tmp/t64.err"
if command -v taskset >/dev/null; then
    taskset -c 0 "$IMC_BIN" "${P[@]}" >"$tmp/ts.out" 2>"$tmp/ts.err"
    check "taskset -c 0: 1 thread" test "$(threads_of "$tmp/ts.err")" = 1
    check "taskset -c 0: same output" cmp -s "$tmp/def.out" "$tmp/ts.out"
else
    check_skip "taskset narrows the default" "no taskset on this machine"
fi
"$IMC_BIN" "${P[@]}" -t x >/dev/null 2>"$tmp/x.err"
check "-t x: exit 2" test $? -eq 2
check "-t x: says what -t takes" grep -q "option --threads expects a non-negative integer or auto" \
    "$tmp/x.err"

if command -v "${MPIEXEC:-mpiexec}" >/dev/null; then
    timeout 120 "${MPIEXEC:-mpiexec}" -n 2 --oversubscribe "$IMC_BIN" "${P[@]}" \
        >"$tmp/np2.out" 2>"$tmp/np2.err"
    check "np 2: exit 0, same output" cmp -s "$tmp/def.out" "$tmp/np2.out"
    per=$(sed -nE 's/.*threads per rank: ([0-9 ]+) \(automatic.*/\1/p' "$tmp/np2.err")
    check "np 2: rank 0 logs both ranks' counts ($per)" test "$(wc -w <<<"$per")" -eq 2
    check "np 2: the ranks split the ${cores:-?} cores" \
        test "$(($(tr ' ' '+' <<<"$per")))" -le "$((cores > 2 ? cores : 2))"
else
    check_skip "threads per rank under mpirun" "no ${MPIEXEC:-mpiexec} on this machine"
fi
check_done
