#!/usr/bin/env bash
# tests/slurm/test_scripts: the batch scripts of slurm/ (STYLE b.7, kind slurm) without needing
# any particular imc command: shellcheck on every script, the guard outside Slurm,
# `sbatch --test-only` on each script, then real jobs on the local Slurm cluster with a
# stand-in imc that prints its rank, working directory and arguments. Checks ranks under
# mpirun and srun (with labels), argument quoting, CPU binding options that the launchers must
# accept, exit status, missing variables and commands, dry runs, lib.sh found from a relative
# submission, and a 3-task sweep array with one distinct recipe per task.
# Slurm that cannot be started (after the checks that need no Slurm): see slurm_test_require.
set -u
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"
sd=$IMC_SOURCE_DIR/slurm
scripts=(imatrix perplexity sweep sweep-array)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/imc_slurm_scripts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---- shellcheck (scripts/deps.sh installs it)
if command -v shellcheck >/dev/null; then
    for f in "$sd"/*.sbatch "$sd"/lib.sh "$slurm_test_here"/test_*.sh \
        "$slurm_test_here"/common.sh; do
        check "shellcheck ${f#"$IMC_SOURCE_DIR"/}" shellcheck -x "$f"
    done
    # a verbatim copy of ../shared/scripts/local-slurm.sh: only errors count
    check "shellcheck -S error tests/slurm/local-slurm.sh" \
        shellcheck -S error "$slurm_test_here/local-slurm.sh"
else
    check "shellcheck is installed (bash scripts/deps.sh)" false
fi
shared_copy=${IMC_SHARED_DIR:-$IMC_SOURCE_DIR/../shared}/scripts/local-slurm.sh
if [ -f "$shared_copy" ] && ! cmp -s "$shared_copy" "$slurm_test_here/local-slurm.sh"; then
    echo "NOTE tests/slurm/local-slurm.sh differs from $shared_copy"
fi

# ---- every script refuses to run outside Slurm
for s in "${scripts[@]}"; do
    env -u SLURM_JOB_ID bash "$sd/$s.sbatch" >"$tmp/guard.out" 2>&1
    rc=$?
    check "$s.sbatch outside Slurm: exit 1" test "$rc" = 1
    check "$s.sbatch outside Slurm: says so" grep -q "not inside a Slurm job" "$tmp/guard.out"
done

slurm_test_require

# ---- sbatch --test-only: the #SBATCH lines are valid for this Slurm
for s in "${scripts[@]}"; do
    extra=()
    [ "$s" != sweep-array ] || extra=(--array=0-2)
    check "sbatch --test-only $s.sbatch" \
        sbatch --test-only "${extra[@]}" "$sd/$s.sbatch"
done

# ---- inputs and the stand-in imc
mkdir -p "$tmp/bin" "$tmp/in put" "$tmp/rules/sub" "$tmp/jobs"
cat >"$tmp/bin/imc" <<'EOF'
#!/usr/bin/env bash
# stand-in imc: lists FAKE_IMC_COMMANDS, prints rank, working directory and arguments
if [ "${1:-}" = --help ]; then
    printf 'usage: imc COMMAND [options]\n\n'
    for c in ${FAKE_IMC_COMMANDS:-info imatrix perplexity sweep}; do printf '  %-12s x\n' "$c"; done
    exit 0
fi
line="fake-imc rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${SLURM_PROCID:-0}}} cwd=$PWD args:"
for a in "$@"; do line+=" [$a]"; done
printf '%s\n' "$line"
exit "${FAKE_IMC_EXIT:-0}"
EOF
chmod +x "$tmp/bin/imc"
model="$tmp/in put/model.gguf" text="$tmp/in put/text.txt" imat="$tmp/in put/m.imatrix.gguf"
touch "$model" "$text" "$imat"
for r in b.rules "a x.rules" c.rules .hidden sub/d.rules; do
    echo "ffn_down=q4_k" >"$tmp/rules/$r"
done
export IMC_BIN=$tmp/bin/imc
J=$tmp/jobs
unset IMC_LAUNCH IMC_BIND IMC_NTASKS IMC_RANKS_PER_NODE IMC_DRY_RUN IMC_SLURM_DIR IMC_OUT_DIR \
    IMC_LAUNCH_ARGS IMC_GPUS_PER_TASK IMC_GPU_BIND IMC_CTX IMC_CHUNKS IMC_SAVE_EVERY IMC_RESUME \
    IMC_FORMAT IMC_LAYOUT IMC_KLD_SAVE IMC_KLD_BASE IMC_RULES_GLOB

# ---- the jobs, submitted together (they share the 2 CPUs, so Slurm runs them in turn)
cd "$J" || exit 1
t0=$SECONDS
slurm_submit "$J" ppl IMC_BIND=numa IMC_MODEL="$model" IMC_TEXT="$text" IMC_CTX=64 -- \
    --ntasks=2 --ntasks-per-node=2 "$sd/perplexity.sbatch" --x "a b" &
slurm_submit "$J" imx IMC_LAUNCH=srun IMC_MODEL="$model" IMC_TEXT="$text" IMC_OUT="$tmp/o.gguf" \
    IMC_CHUNKS=3 IMC_RESUME=1 IMC_FORMAT=both IMC_LAYOUT=pp=2 -- --ntasks=2 "$sd/imatrix.sbatch" &
slurm_submit "$J" core-mpirun IMC_BIND=core IMC_MODEL="$model" IMC_TEXT="$text" -- \
    --ntasks=1 --cpus-per-task=2 "$sd/perplexity.sbatch" &
slurm_submit "$J" core-srun IMC_LAUNCH=srun IMC_BIND=core IMC_MODEL="$model" IMC_TEXT="$text" -- \
    --ntasks=1 --cpus-per-task=2 "$sd/perplexity.sbatch" &
# relative script path (lib.sh is found through scontrol) and relative inputs (--chdir)
(cd "$IMC_SOURCE_DIR" && slurm_submit "$J" sweep IMC_LAUNCH=none IMC_MODEL="in put/model.gguf" \
    IMC_TEXT="in put/text.txt" IMC_IMATRIX="in put/m.imatrix.gguf" IMC_RULES_DIR=rules \
    IMC_OUT_DIR=sw -- --chdir="$tmp" slurm/sweep.sbatch) &
slurm_submit "$J" array IMC_LAUNCH=none IMC_MODEL="$model" IMC_TEXT="$text" IMC_IMATRIX="$imat" \
    IMC_RULES_DIR="$tmp/rules" IMC_OUT_DIR="$tmp/swa" -- --array=0-2 "$sd/sweep-array.sbatch" &
slurm_submit "$J" array-range IMC_LAUNCH=none IMC_MODEL="$model" IMC_TEXT="$text" \
    IMC_IMATRIX="$imat" IMC_RULES_DIR="$tmp/rules" IMC_OUT_DIR="$tmp/swb" -- \
    --array=3 "$sd/sweep-array.sbatch" &
slurm_submit "$J" no-text IMC_MODEL="$model" -- "$sd/perplexity.sbatch" &
slurm_submit "$J" no-cmd FAKE_IMC_COMMANDS="info imatrix perplexity" IMC_MODEL="$model" \
    IMC_TEXT="$text" IMC_IMATRIX="$imat" IMC_RULES_DIR="$tmp/rules" -- --chdir="$tmp" \
    "$sd/sweep.sbatch" &
slurm_submit "$J" dry IMC_DRY_RUN=1 IMC_MODEL="$model" IMC_TEXT="$text" IMC_OUT="$tmp/o.gguf" -- \
    --ntasks=2 "$sd/imatrix.sbatch" &
slurm_submit "$J" status FAKE_IMC_EXIT=3 IMC_LAUNCH=none IMC_MODEL="$model" IMC_TEXT="$text" -- \
    "$sd/perplexity.sbatch" &
slurm_submit "$J" bad-bind IMC_BIND=tight IMC_MODEL="$model" IMC_TEXT="$text" -- \
    "$sd/perplexity.sbatch" &
wait
echo "jobs took $((SECONDS - t0)) s"

# args LIST...: the stand-in's rendering of an argument list
args() {
    local a s=""
    for a in "$@"; do s+=" [$a]"; done
    echo "args:$s"
}
# has FILE STRING / count FILE STRING (called through check)
# shellcheck disable=SC2317
has() { grep -qF -- "$2" "$1"; }
# shellcheck disable=SC2317
count() { grep -cF -- "$2" "$1" 2>/dev/null; }

# perplexity, mpirun, 2 ranks, 2 per node, an extra argument with a blank
check "perplexity job: exit 0" test "$(slurm_rc "$J" ppl)" = 0
want=$(args perplexity -m "$model" -f "$text" --ctx 64 --x "a b")
check "perplexity job: rank 0 under mpirun, labelled" \
    has "$J/ppl.out" "[1,0]<stdout>:fake-imc rank=0 cwd=$tmp/jobs"
check "perplexity job: rank 1 under mpirun, labelled" \
    has "$J/ppl.out" "[1,1]<stdout>:fake-imc rank=1"
check "perplexity job: arguments intact on every rank" test "$(count "$J/ppl.out" "$want")" = 2
check "perplexity job: mpirun binds to NUMA nodes, maps 2 ranks per node" \
    has "$J/ppl.err" "--bind-to numa --map-by ppr:2:node"
check "perplexity job: reports the status" has "$J/ppl.err" "imc perplexity ended with status 0"

# imatrix, srun, 2 ranks, every option variable
check "imatrix job: exit 0" test "$(slurm_rc "$J" imx)" = 0
want=$(args imatrix -m "$model" -f "$text" -o "$tmp/o.gguf" --chunks 3 --resume --format both \
    --layout pp=2)
check "imatrix job: rank 0 under srun, labelled" has "$J/imx.out" "0: fake-imc rank=0"
check "imatrix job: rank 1 under srun, labelled" has "$J/imx.out" "1: fake-imc rank=1"
check "imatrix job: arguments intact on every rank" test "$(count "$J/imx.out" "$want")" = 2
check "imatrix job: srun uses pmix" has "$J/imx.err" "srun --mpi=pmix --label"

# binding options reach the launchers, which accept them
check "IMC_BIND=core, mpirun: exit 0" test "$(slurm_rc "$J" core-mpirun)" = 0
check "IMC_BIND=core, mpirun: 2 cores per rank" \
    has "$J/core-mpirun.err" "--bind-to core --map-by slot:PE=2"
check "IMC_BIND=core, mpirun: imc ran" has "$J/core-mpirun.out" "fake-imc rank=0"
check "IMC_BIND=core, mpirun: --threads 2 from --cpus-per-task=2" \
    has "$J/core-mpirun.out" "[--threads] [2]"
check "IMC_BIND=core, srun: exit 0" test "$(slurm_rc "$J" core-srun)" = 0
check "IMC_BIND=core, srun: cores, cpus per task passed on" \
    has "$J/core-srun.err" "--cpu-bind=cores --cpus-per-task=2"
check "IMC_BIND=core, srun: imc ran" has "$J/core-srun.out" "0: fake-imc rank=0"

# sweep: relative submission and inputs, runs in IMC_OUT_DIR with absolute paths
check "sweep job: exit 0" test "$(slurm_rc "$J" sweep)" = 0
want=$(args sweep --base "$model" --imatrix "$imat" --rules-dir "$tmp/rules" -f "$text")
check "sweep job: runs in IMC_OUT_DIR with absolute inputs" \
    has "$J/sweep.out" "fake-imc rank=0 cwd=$tmp/sw $want"

# sweep array: task i gets recipe i of the sorted list (hidden files and folders skipped)
check "sweep array: exit 0" test "$(slurm_rc "$J" array)" = 0
i=0
for r in "a x.rules" b.rules c.rules; do
    want=$(args sweep --base "$model" --imatrix "$imat" --rules-dir "$tmp/swa/$r/rules" -f "$text")
    check "sweep array task $i: recipe '$r'" has "$J/array.$i.out" "cwd=$tmp/swa/$r $want"
    check "sweep array task $i: rules folder holds only '$r'" \
        test "$(ls -A "$tmp/swa/$r/rules" 2>/dev/null)" = "$r"
    i=$((i + 1))
done
check "sweep array task 3 of 3 recipes: fails" test "$(slurm_rc "$J" array-range)" != 0
check "sweep array task 3 of 3 recipes: names the range" \
    has "$J/array-range.3.err" "has 3, so use --array=0-2"

# failures: missing variable, missing imc command, imc's status, bad IMC_BIND
check "IMC_TEXT unset: job fails" test "$(slurm_rc "$J" no-text)" != 0
check "IMC_TEXT unset: says so" has "$J/no-text.err" "set IMC_TEXT"
check "IMC_TEXT unset: imc not started" test ! -s "$J/no-text.out"
check "imc without sweep: job fails" test "$(slurm_rc "$J" no-cmd)" != 0
check "imc without sweep: says so" has "$J/no-cmd.err" "has no 'sweep' command"
check "imc exit 3: job exit 3" test "$(slurm_rc "$J" status)" = 3
check "imc exit 3: reported" has "$J/status.err" "imc perplexity ended with status 3"
check "IMC_BIND=tight: job fails" test "$(slurm_rc "$J" bad-bind)" != 0
check "IMC_BIND=tight: says so" has "$J/bad-bind.err" "IMC_BIND must be"

# dry run: the command line only
check "dry run: exit 0" test "$(slurm_rc "$J" dry)" = 0
check "dry run: prints the command" \
    has "$J/dry.out" "dry-run: mpirun -np 2 --tag-output --bind-to none $IMC_BIN imatrix"
check "dry run: imc not started" test "$(count "$J/dry.out" "fake-imc")" = 0

if [ "$fail" -gt 0 ]; then
    show_job "$J" ppl imx core-mpirun core-srun sweep array array-range no-text \
        no-cmd status bad-bind dry
fi
check_done
