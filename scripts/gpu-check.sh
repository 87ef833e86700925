#!/usr/bin/env bash
# scripts/gpu-check.sh: the checks that need a GPU (issue 13, item 6), in one run that fits a short
# lease of a GPU machine (< 8 minutes): builds the CUDA kernels with nvcc for the GPU it finds,
# runs `ctest -L cuda` on the real device (each kernel test runs the emulated kernels and then the
# device kernels against kernels/ref, tolerances in tests/cuda/ccheck.h), checks that the device
# parts really ran (no "SKIP-PART: no GPU" while nvidia-smi shows a GPU), and prints a summary
# with timings.
#
# Build: the full build when its dependencies are there (MPI, hwloc, libnuma, PCRE2, OpenBLAS:
# then cuda.engine_emu runs too), else the kernels-only build (-DIMC_KERNELS_ONLY=ON,
# cmake/imc_kernels_only.cmake), which needs only a C/C++ compiler, CMake and CUDA.
#
# Not yet checked here, as the tree cannot run it: the engine on the GPU against the CPU (logits,
# PPL, imatrix values on the generated models) and the tokens/s and bf16-peak benchmark: no engine
# op runs on a GPU yet (imc has no --device option); the script says so in its summary.
#
# Usage: bash scripts/gpu-check.sh [BUILD_DIR]      (default BUILD_DIR: build-gpu in the tree)
# Environment: IMC_GPU_CHECK_MODE=auto|kernels|full (default auto), IMC_GPU_ARCH (e.g. 90;
# default: the compute capability nvidia-smi reports, else 90), IMC_GPU_CHECK_NO_GPU=1 runs
# without a GPU (the device parts skipped; to try the script itself). Exit 0 when every step
# passed, 1 when one failed, 2 without a GPU (unless IMC_GPU_CHECK_NO_GPU=1).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-gpu}
mode=${IMC_GPU_CHECK_MODE:-auto}
jobs=$(nproc)
t_start=$(date +%s)
summary=()
failed=0

step() { # step NAME SECONDS STATUS [NOTE]: one summary line
    summary+=("$(printf '%-10s %6ss  %-4s %s' "$1" "$2" "$3" "${4:-}")")
    [[ $3 == FAIL ]] && failed=1
    return 0
}

print_summary() {
    echo
    echo "==== gpu-check summary ($(date -u +%Y-%m-%dT%H:%M:%SZ)) ===="
    printf '%s\n' "${summary[@]}"
    local total=$(($(date +%s) - t_start))
    echo "total      ${total}s (budget 480s)$([[ $total -gt 480 ]] && echo ': OVER BUDGET')"
    echo "result     $([[ $failed -eq 0 ]] && echo PASS || echo FAIL)"
}

# ---- the machine ----
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader \
    2>/dev/null | head -n 1)
nvcc=$(command -v nvcc || { [[ -x /usr/local/cuda/bin/nvcc ]] && echo /usr/local/cuda/bin/nvcc; })
echo "gpu:    ${gpu:-none}"
nvcc_version() { [[ -n $nvcc ]] && "$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'; }
echo "nvcc:   ${nvcc:-none} $(nvcc_version)"
echo "cmake:  $(cmake --version | head -n 1)"
echo "cores:  $jobs"
if [[ -z $gpu && ${IMC_GPU_CHECK_NO_GPU:-0} != 1 ]]; then
    echo "gpu-check: no GPU (nvidia-smi lists none); IMC_GPU_CHECK_NO_GPU=1 runs without one" >&2
    exit 2
fi
if [[ -z $nvcc ]]; then
    echo "gpu-check: no nvcc (PATH or /usr/local/cuda/bin): cannot build the CUDA kernels" >&2
    exit 1
fi
arch=${IMC_GPU_ARCH:-$(awk -F', ' '{ gsub(/\./, "", $4); print $4 }' <<<"$gpu")}
arch=${arch:-90}
step machine 0 INFO "${gpu:-no GPU}; sm_$arch"

# ---- configure ----
have_full_deps() {
    command -v mpicc >/dev/null && command -v pkg-config >/dev/null &&
        pkg-config --exists hwloc libpcre2-8 openblas 2>/dev/null && [[ -e /usr/include/numa.h ]]
}
if [[ $mode == auto ]]; then
    mode=kernels
    have_full_deps && mode=full
fi
case $mode in
kernels) flags=(-DIMC_KERNELS_ONLY=ON) ;;
full) flags=(-DIMC_KERNELS_ONLY=OFF) ;;
*)
    echo "gpu-check: IMC_GPU_CHECK_MODE must be auto, kernels or full, not '$mode'" >&2
    exit 1
    ;;
esac
log=$build/gpu-check
mkdir -p "$log"
t=$(date +%s)
if timeout 120 cmake -S "$root" -B "$build" -DIMC_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" -DIMC_WERROR=ON "${flags[@]}" >"$log/configure.log" \
    2>&1; then
    step configure $(($(date +%s) - t)) ok "$mode build, $build"
else
    step configure $(($(date +%s) - t)) FAIL "see $log/configure.log"
    tail -n 20 "$log/configure.log"
    print_summary
    exit 1
fi

# ---- build ----
t=$(date +%s)
if timeout 330 cmake --build "$build" -j"$jobs" >"$log/build.log" 2>&1; then
    step build $(($(date +%s) - t)) ok "-j$jobs"
else
    step build $(($(date +%s) - t)) FAIL "see $log/build.log (stopped at 330 s)"
    grep -m 20 -E 'error|Error' "$log/build.log"
    print_summary
    exit 1
fi

# ---- ctest -L cuda on the device ----
t=$(date +%s)
timeout 300 ctest --test-dir "$build" -L cuda -j"$jobs" -V >"$log/ctest.log" 2>&1
rc=$?
dt=$(($(date +%s) - t))
n_pass=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed' "$log/ctest.log")
n_all=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: ' "$log/ctest.log")
n_skip_part=$(grep -c 'SKIP-PART: no GPU' "$log/ctest.log")
if [[ $rc -eq 0 && $n_all -gt 0 ]]; then
    step ctest "$dt" ok "$n_pass/$n_all cuda tests passed"
else
    step ctest "$dt" FAIL "$n_pass/$n_all passed (rc $rc), see $log/ctest.log"
    grep -E '^ *[0-9]+/[0-9]+ Test .*(Failed|Timeout|Not Run)' "$log/ctest.log"
fi
if [[ -n $gpu && $n_skip_part -gt 0 ]]; then
    step device 0 FAIL "$n_skip_part device part(s) skipped although nvidia-smi shows a GPU"
elif [[ -n $gpu ]]; then
    # the lines the tests print for their device ("cuda") runs: figures against kernels/ref
    grep -E '^[0-9]+: cuda[ :/]' "$log/ctest.log" >"$log/device.txt"
    step device 0 ok "every device part ran (vs kernels/ref); $(wc -l <"$log/device.txt") result \
lines in $log/device.txt"
else
    step device 0 SKIP "no GPU: $n_skip_part device part(s) skipped, emulated kernels only"
fi

# ---- what the tree cannot check yet ----
step engine 0 SKIP "GPU vs CPU on the generated models: no engine op runs on a GPU yet \
(no --device)"
step bench 0 SKIP "tokens/s and bf16 peak on ds3-width: needs the GPU engine"

print_summary
exit "$failed"
