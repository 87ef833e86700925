# shellcheck shell=bash
# slurm/lib.sh - the shared part of the imc batch scripts (DESIGN.md §2 slurm/, §3 commands).
# Sourced by slurm/*.sbatch, never run by itself. It
#   - refuses to run outside a Slurm job (imc_slurm_require_job),
#   - finds the pre-built imc binary: IMC_BIN, else `imc` on PATH (a job never builds it),
#   - builds the launcher: IMC_LAUNCH=mpirun (default) | srun | none, with the rank count,
#     ranks per node, CPU binding (IMC_BIND), GPU options and labelled output,
#   - runs imc through it and reports the exit status and time (imc_slurm_launch), or only
#     prints the command line when IMC_DRY_RUN=1.
# Nothing here names a path, a NIC or a cluster: everything comes from the environment and
# from Slurm's own variables. Every variable and its default: slurm/README.md.
# Messages go to stderr (the job's .err file), prefixed with the script name; imc's results go
# to stdout (the .out file).

# imc_slurm_die MESSAGE: print "<script>: MESSAGE" on stderr and end the job with status 1.
imc_slurm_die() {
    echo "${IMC_SLURM_SCRIPT:-imc-slurm}: $*" >&2
    exit 1
}

imc_slurm_note() {
    echo "${IMC_SLURM_SCRIPT:-imc-slurm}: $*" >&2
}

# imc_slurm_require_job: refuse to run outside Slurm (the batch script needs the allocation).
imc_slurm_require_job() {
    if [ -z "${SLURM_JOB_ID:-}" ]; then
        imc_slurm_die "not inside a Slurm job (SLURM_JOB_ID is unset): submit it with" \
            "'sbatch [options] ${IMC_SLURM_SCRIPT:-script}'; for one process without Slurm" \
            "run imc directly"
    fi
}

# imc_slurm_check_uint NAME VALUE: VALUE must be a positive integer.
imc_slurm_check_uint() {
    [[ "$2" =~ ^[1-9][0-9]*$ ]] || imc_slurm_die "$1 must be a positive integer, found '$2'"
}

# imc_slurm_check_bool NAME VALUE: VALUE must be 0 or 1.
imc_slurm_check_bool() {
    [[ "$2" =~ ^[01]$ ]] || imc_slurm_die "$1 must be 0 or 1, found '$2'"
}

# imc_slurm_abspath NAME...: rewrite each named variable to an absolute path, so that it stays
# valid after a cd. The path must exist.
imc_slurm_abspath() {
    local name abs
    for name in "$@"; do
        abs=$(realpath -e -- "${!name}" 2>/dev/null) ||
            imc_slurm_die "$name: '${!name}' does not exist (working directory $PWD)"
        printf -v "$name" '%s' "$abs"
    done
}

# imc_slurm_find_bin COMMAND...: set IMC_BIN to the absolute path of the imc binary (IMC_BIN,
# else `imc` on PATH) and check that its --help lists every COMMAND. With IMC_DRY_RUN=1 a
# missing command is only a warning.
imc_slurm_find_bin() {
    local bin=${IMC_BIN:-} cmds cmd
    if [ -z "$bin" ]; then
        bin=$(command -v imc) ||
            imc_slurm_die "no imc binary: set IMC_BIN to the pre-built imc, or put imc on PATH" \
                "(build it before submitting; the job does not build)"
    fi
    if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
        imc_slurm_die "IMC_BIN: '$bin' is not an executable file"
    fi
    IMC_BIN=$(realpath -e -- "$bin")
    cmds=$("$IMC_BIN" --help 2>/dev/null | awk 'NR > 1 && NF { print $1 }' | tr '\n' ' ') ||
        cmds=""
    for cmd in "$@"; do
        case " $cmds " in
            *" $cmd "*) ;;
            *)
                if [ "${IMC_DRY_RUN:-0}" = 1 ]; then
                    imc_slurm_note "warning: $IMC_BIN has no '$cmd' command (it has: $cmds)"
                else
                    imc_slurm_die "$IMC_BIN has no '$cmd' command (it has: $cmds)"
                fi
                ;;
        esac
    done
}

# imc_slurm_ranks: set IMC_SLURM_NTASKS (total ranks) and IMC_SLURM_PPN (ranks per node, may be
# empty = as the allocation gives) from IMC_NTASKS / IMC_RANKS_PER_NODE, else from Slurm.
imc_slurm_ranks() {
    local nodes=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
    IMC_SLURM_PPN=${IMC_RANKS_PER_NODE:-${SLURM_NTASKS_PER_NODE:-}}
    [ -z "$IMC_SLURM_PPN" ] || imc_slurm_check_uint IMC_RANKS_PER_NODE "$IMC_SLURM_PPN"
    if [ -n "${IMC_NTASKS:-}" ]; then
        IMC_SLURM_NTASKS=$IMC_NTASKS
    elif [ -n "${SLURM_NTASKS:-}" ]; then
        IMC_SLURM_NTASKS=$SLURM_NTASKS
    elif [ -n "$IMC_SLURM_PPN" ]; then
        IMC_SLURM_NTASKS=$((IMC_SLURM_PPN * nodes))
    else
        IMC_SLURM_NTASKS=$nodes
    fi
    imc_slurm_check_uint IMC_NTASKS "$IMC_SLURM_NTASKS"
}

# imc_slurm_launcher_mpirun: mpirun reads the allocation (hosts, slots) from Slurm itself.
imc_slurm_launcher_mpirun() {
    local map="" cpt=${SLURM_CPUS_PER_TASK:-}
    IMC_SLURM_LAUNCHER=("${IMC_MPIRUN:-mpirun}" -np "$IMC_SLURM_NTASKS" --tag-output)
    [ -z "$IMC_SLURM_PPN" ] || map="ppr:$IMC_SLURM_PPN:node"
    case "$IMC_SLURM_BIND" in
        # Open MPI would bind each rank to one core (2 ranks or fewer) or one socket: too
        # narrow for a multi-threaded rank, so auto means no binding within the allocation
        auto) IMC_SLURM_LAUNCHER+=(--bind-to none) ;;
        none | numa | socket) IMC_SLURM_LAUNCHER+=(--bind-to "$IMC_SLURM_BIND") ;;
        core)
            IMC_SLURM_LAUNCHER+=(--bind-to core)
            [ -z "$cpt" ] || map="${map:-slot}:PE=$cpt"
            ;;
    esac
    [ -z "$map" ] || IMC_SLURM_LAUNCHER+=(--map-by "$map")
    if [ -n "${IMC_GPUS_PER_TASK:-}${IMC_GPU_BIND:-}" ]; then
        imc_slurm_note "IMC_GPUS_PER_TASK/IMC_GPU_BIND apply to IMC_LAUNCH=srun; under mpirun" \
            "every rank sees the node's GPUs and imc takes one per node-local rank"
    fi
}

# imc_slurm_launcher_srun: srun starts the ranks through Slurm's PMIx plugin.
imc_slurm_launcher_srun() {
    local -A cpu_bind=([none]=none [core]=cores [numa]=ldoms [socket]=sockets)
    IMC_SLURM_LAUNCHER=(srun "--mpi=${IMC_SRUN_MPI:-pmix}" --label --kill-on-bad-exit=1
        "--ntasks=$IMC_SLURM_NTASKS")
    # auto: Slurm's own default (each task kept to its allocated CPUs where the site binds)
    [ "$IMC_SLURM_BIND" = auto ] ||
        IMC_SLURM_LAUNCHER+=("--cpu-bind=${cpu_bind[$IMC_SLURM_BIND]}")
    [ -z "$IMC_SLURM_PPN" ] || IMC_SLURM_LAUNCHER+=("--ntasks-per-node=$IMC_SLURM_PPN")
    # srun (Slurm 22.05+) does not inherit the job's --cpus-per-task: pass it on
    [ -z "${SLURM_CPUS_PER_TASK:-}" ] ||
        IMC_SLURM_LAUNCHER+=("--cpus-per-task=$SLURM_CPUS_PER_TASK")
    [ -z "${IMC_GPUS_PER_TASK:-}" ] || IMC_SLURM_LAUNCHER+=("--gpus-per-task=$IMC_GPUS_PER_TASK")
    [ -z "${IMC_GPU_BIND:-}" ] || IMC_SLURM_LAUNCHER+=("--gpu-bind=$IMC_GPU_BIND")
}

# imc_slurm_setup COMMAND...: check the job and the variables common to every script, find
# imc (which must offer every COMMAND) and build the launcher in IMC_SLURM_LAUNCHER.
imc_slurm_setup() {
    local extra=()
    imc_slurm_require_job
    imc_slurm_check_bool IMC_DRY_RUN "${IMC_DRY_RUN:=0}"
    imc_slurm_find_bin "$@"
    imc_slurm_ranks
    IMC_SLURM_BIND=${IMC_BIND:-auto}
    case "$IMC_SLURM_BIND" in
        auto | none | core | numa | socket) ;;
        *) imc_slurm_die "IMC_BIND must be auto, none, core, numa or socket," \
            "found '$IMC_SLURM_BIND'" ;;
    esac
    case "${IMC_LAUNCH:-mpirun}" in
        mpirun) imc_slurm_launcher_mpirun ;;
        srun) imc_slurm_launcher_srun ;;
        none)
            [ "$IMC_SLURM_NTASKS" = 1 ] ||
                imc_slurm_die "IMC_LAUNCH=none runs one process, but $IMC_SLURM_NTASKS ranks" \
                    "were asked for (IMC_NTASKS or sbatch --ntasks)"
            IMC_SLURM_LAUNCHER=()
            ;;
        *) imc_slurm_die "IMC_LAUNCH must be mpirun, srun or none, found '${IMC_LAUNCH}'" ;;
    esac
    if [ "${IMC_LAUNCH:-mpirun}" != none ] && [ -n "${IMC_LAUNCH_ARGS:-}" ]; then
        read -r -a extra <<<"$IMC_LAUNCH_ARGS"
        IMC_SLURM_LAUNCHER+=("${extra[@]}")
    fi
    imc_slurm_note "job ${SLURM_JOB_ID} on ${SLURM_JOB_NUM_NODES:-1} node(s)" \
        "[${SLURM_JOB_NODELIST:-?}], $IMC_SLURM_NTASKS" \
        "rank(s)${IMC_SLURM_PPN:+ ($IMC_SLURM_PPN per node)}, launcher ${IMC_LAUNCH:-mpirun}," \
        "bind $IMC_SLURM_BIND, imc $IMC_BIN"
}

# imc_slurm_threads ARG...: prints the thread count to pass to imc (nothing when imc's own
# default should apply or ARG... already has -t / --threads): IMC_THREADS, else the job's
# SLURM_CPUS_PER_TASK (each rank one task), else nothing (imc then takes the physical cores of
# each rank's share of its node, within the CPUs Slurm allows it).
imc_slurm_threads() {
    local a n=${IMC_THREADS:-${SLURM_CPUS_PER_TASK:-}}
    for a in "$@"; do
        case $a in -t* | --threads | --threads=*) return 0 ;; esac
    done
    [ -z "$n" ] || { imc_slurm_check_uint IMC_THREADS "$n"; echo "$n"; }
}

# imc_slurm_launch ARG...: run `imc ARG...` on every rank through the launcher, with
# --threads from imc_slurm_threads; returns imc's exit status. With IMC_DRY_RUN=1 it prints the
# command line on stdout instead.
imc_slurm_launch() {
    local threads t0 rc=0
    threads=$(imc_slurm_threads "$@") || exit 1
    local cmd=("${IMC_SLURM_LAUNCHER[@]}" "$IMC_BIN" "$@" ${threads:+--threads "$threads"})
    if [ "$IMC_DRY_RUN" = 1 ]; then
        printf 'dry-run:'
        printf ' %q' "${cmd[@]}"
        printf '\n'
        return 0
    fi
    imc_slurm_note "+$(printf ' %q' "${cmd[@]}")"
    t0=$SECONDS
    "${cmd[@]}" || rc=$?
    imc_slurm_note "imc $1 ended with status $rc after $((SECONDS - t0)) s"
    return "$rc"
}
