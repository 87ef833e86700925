# shellcheck shell=bash
# tests/slurm/common.sh - shared by tests/slurm/test_*.sh (sourced): PASS/FAIL bookkeeping,
# starting the local Slurm cluster (tests/slurm/local-slurm.sh, a copy of
# ../shared/scripts/local-slurm.sh), and submitting jobs and waiting for them under a time limit.
# The daemons stay up after the test; local-slurm.sh start is idempotent, so the next test
# reuses them in well under a second.

slurm_test_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMC_SOURCE_DIR=${IMC_SOURCE_DIR:-$(cd "$slurm_test_here/../.." && pwd)}
# the harness: check, check_skip, check_done (exit 0 or 1), check_skip_test (exit 77)
# shellcheck source-path=SCRIPTDIR source=../check.sh
. "$slurm_test_here/../check.sh"

# slurm_test_up: make sure the local Slurm cluster runs and load its environment
# (/etc/slurm/local-slurm.env). On failure prints the reason and returns 1.
# Concurrent tests are serialised with a lock; a cluster already running in another mode
# (--nodes N, --netns) is kept as it is.
slurm_test_up() {
    local env=/etc/slurm/local-slurm.env mode nodes args=() log rc
    if [ "$(id -u)" != 0 ]; then
        # shellcheck source=/dev/null
        if [ -r "$env" ] && . "$env" && timeout 10 sinfo -h >/dev/null 2>&1; then
            return 0
        fi
        echo "NOTE Slurm cannot be started here: not root, and no local Slurm is running" \
            "(as root: bash tests/slurm/local-slurm.sh start)"
        return 1
    fi
    if read -r mode nodes </var/lib/slurm-local/mode 2>/dev/null; then
        args=(--nodes "$nodes")
        [ "$mode" != netns ] || args+=(--netns)
    fi
    # -o: the daemons that start must not inherit (and keep) the lock. If the lock cannot be
    # had within 60 s (a stuck holder), start anyway: start is idempotent.
    log=$(flock -o -E 75 -w 60 /tmp/imc-local-slurm-start.lock \
        bash "$slurm_test_here/local-slurm.sh" start "${args[@]}" 2>&1)
    rc=$?
    if [ "$rc" = 75 ]; then
        echo "NOTE /tmp/imc-local-slurm-start.lock still held after 60 s: starting Slurm without it"
        log=$(bash "$slurm_test_here/local-slurm.sh" start "${args[@]}" 2>&1)
        rc=$?
    fi
    if [ "$rc" != 0 ]; then
        echo "NOTE local-slurm.sh start failed:"
        tail -n 5 <<<"$log"
        return 1
    fi
    # shellcheck source=/dev/null
    . "$env"
    echo "${log##*$'\n'}"
}

# slurm_test_require: slurm_test_up, or end the test. A skip (exit 77) only where this user
# cannot start Slurm (not root, none running) outside CI; as root (scripts/test.sh installs
# Slurm) or under CI a cluster that does not start is a failure (exit 1).
slurm_test_require() {
    slurm_test_up && return 0
    if [ "$(id -u)" != 0 ] && ! check_in_ci; then
        check_skip_test "Slurm cannot be started by this user (not root, none running)"
    fi
    check_fail "the local Slurm cluster started"
    check_done
}

# slurm_submit DIR NAME [VAR=VALUE...] -- SBATCH-ARGS...: submit a batch job with the
# environment plus the VAR=VALUE settings and wait for it, at most SLURM_TEST_TIMEOUT seconds
# (120; then the job is cancelled). With slurm_test_wait=sbatch it waits with
# `timeout ... sbatch --wait`; otherwise it polls squeue every 0.3 s, because `sbatch --wait`
# sleeps 2, 4, 8 ... s between its own polls, which adds up when a test runs many short jobs.
# The job's stdout/stderr go to DIR/NAME.out/.err (array task N: DIR/NAME.N.out/.err),
# sbatch's messages to DIR/NAME.sbatch, and to DIR/NAME.rc the job's exit status (the highest
# of an array's tasks; 128+signal if killed; 124 on timeout).
slurm_submit() {
    local dir=$1 name=$2 vars=() rc=0 out err jid deadline limit=${SLURM_TEST_TIMEOUT:-120}
    local jobname
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        vars+=("$1")
        shift
    done
    shift
    jobname="imc-test-$name-$$"
    out="$dir/$name.out" err="$dir/$name.err"
    case " $* " in *" --array"*) out="$dir/$name.%a.out" err="$dir/$name.%a.err" ;; esac
    if [ "${slurm_test_wait:-poll}" = sbatch ]; then
        env "${vars[@]}" timeout "$limit" sbatch --wait --export=ALL --job-name="$jobname" \
            --output="$out" --error="$err" "$@" >"$dir/$name.sbatch" 2>&1 || rc=$?
        if [ "$rc" = 124 ]; then
            echo "timed out after $limit s: cancelled" >>"$dir/$name.sbatch"
            scancel --name="$jobname"
        fi
        echo "$rc" >"$dir/$name.rc"
        return
    fi
    if ! jid=$(env "${vars[@]}" sbatch --parsable --export=ALL --job-name="$jobname" \
        --output="$out" --error="$err" "$@" 2>"$dir/$name.sbatch"); then
        echo "sbatch failed" >"$dir/$name.rc"
        return
    fi
    jid=${jid%%;*}
    echo "Submitted batch job $jid" >>"$dir/$name.sbatch"
    deadline=$((SECONDS + limit))
    while [ -n "$(squeue -h -j "$jid" -t PD,CF,R,CG,S -o %i 2>/dev/null)" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "timed out after $limit s: cancelled" >>"$dir/$name.sbatch"
            scancel "$jid"
            echo 124 >"$dir/$name.rc"
            return
        fi
        sleep 0.3
    done
    rc=$(scontrol show job "$jid" 2>/dev/null | tr ' ' '\n' | awk -F'[=:]' '
        BEGIN { max = -1 }
        $1 == "ExitCode" { r = $3 > 0 ? 128 + $3 : $2; if (r + 0 > max) max = r + 0; n++ }
        END { print n ? max : "unknown" }')
    echo "$rc" >"$dir/$name.rc"
}

# slurm_ranks: prints 2, or 1 where the cluster's nodes have a single CPU (ranks per test job).
slurm_ranks() {
    local cpus
    cpus=$(sinfo -h -o %c | sort -n | tail -n 1)
    if [ "${cpus:-1}" -ge 2 ]; then echo 2; else echo 1; fi
}

# slurm_rc DIR NAME: the exit status slurm_submit recorded.
slurm_rc() {
    cat "$1/$2.rc" 2>/dev/null || echo missing
}

# show_job DIR NAME...: print what the jobs wrote (for a failing test's log).
show_job() {
    local dir=$1 name f
    shift
    for name in "$@"; do
        for f in "$dir/$name".*; do
            [ -f "$f" ] || continue
            echo "---- ${f##*/}"
            cat "$f"
        done
    done
}
