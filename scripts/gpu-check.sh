#!/usr/bin/env bash
# scripts/gpu-check.sh: the checks that need a GPU (issue 13, item 6), in one run that fits a short
# lease of a GPU machine (< 8 minutes): builds the CUDA kernels with nvcc for the GPU it finds,
# runs `ctest -L cuda` on the real device (each kernel test runs the emulated kernels and then the
# device kernels against kernels/ref, tolerances in tests/cuda/ccheck.h), checks that the device
# parts really ran (no "SKIP-PART: no GPU" while nvidia-smi shows a GPU), and prints a summary
# with timings.
#
# Build: the full build when its dependencies are there (MPI, hwloc, libnuma, PCRE2:
# then cuda.engine_emu runs too), else the kernels-only build (-DIMC_KERNELS_ONLY=ON,
# cmake/imc_kernels_only.cmake), which needs only a C/C++ compiler, CMake and CUDA.
#
# With the full build (it has the imc binary) the engine on the GPU against the CPU: on the
# generated tiny presets (llama, llama MoE, deepseek2 3D, qwen3moe, glm4moe), both --matmul f32,
#   - perplexity: PPL of --device cuda against --device cpu, relative difference <= 1e-4;
#   - logits: --device cuda --kld-base (the cpu run's --kld-save): mean KLD <= 1e-6, maximum KLD
#     <= 1e-4, same top token 100%;
#   - imatrix values (.dat): per entry max|Δ| / max|cpu value| <= 2e-4, the same call counts;
#   - --experts-on cpu (routed experts on the CPU, the rest on the GPU) on llama-moe and qwen3moe:
#     the same three checks;
#   - with mpirun: two expert shards (--layout ep=2) and two pipeline stages (--layout pp=2) on
#     deepseek2 3D, the same three checks. With two GPUs the ranks take one each and pass their
#     rows with NCCL; with one they share it, which NCCL cannot serve, so they fall back to the
#     host and MPI (the summary says which);
# then tokens/s of perplexity on ds2-bench (~243 MB, q8_0): --device cuda against --device cpu
# with --matmul f32 (dequantized to f32 on both sides), and --device cuda with the default
# --matmul q8 (its batches in bf16, the tensor cores' path; its PPL reported beside the f32
# one's, no bound), and the fraction of the GPU's dense bf16 peak (a table of NVIDIA's figures
# by name, or IMC_GPU_BF16_TFLOPS) that rate reaches, counting the weights' FLOPs per token that
# `imc plan` reports (a lower bound: attention over the context is not counted). Bounds: the emulator (cuda.engine_emu) measures the table
# against the cpu engine at <= 1.2e-6 of the largest logit and <= 3.2e-6 on Σx² (bound there 2e-5
# and 4e-5). The GPU differs from the emulator where the emulator cannot follow it: cuBLAS (f32
# accumulation, no TF32) picks its kernels and split-K orders by shape, and nvcc contracts a*b+c
# into FMAs; so the bounds here are 5x the emulator test's: logits within ε = 1e-4 of the largest
# logit L, which moves a token's KLD by about ½(εL)² (the mean bound 1e-6 holds up to L ~ 14);
# Σx² within 2e-4. The KLD floor: the base file stores log-probabilities in 16 bits, so cpu
# against its own base already gives a maximum KLD of ~5e-6 (maximum bound 1e-4). A relative PPL
# difference of 1e-4 is 1e-4 nats of mean NLL.
# IMC_GPU_CHECK_NO_GPU=1 (no GPU) runs the same comparison with --device cpu on both sides, so
# the plumbing is exercised without one (the figures are then the floor: cpu against cpu).
# The tokens/s are perplexity's own (its last progress line: all chunks, the first uploads of the
# weights included). ds2-bench is the largest preset that fits the budget: it generates in ~20 s
# on one core (gen-model is single-threaded); ds3-width (5.3 GB) would take ~8 minutes.
# Then, with a GPU and when at most 240 s have gone, the same on the real-width ds3-width preset
# (5.3 GB of q8_0 at DeepSeek-V3's widths; gen-model -t draws and quantizes on every core: 3 min
# 41 s with -t 2 on the 2-core test VM, 410 s of CPU time, 93% of it spread over both cores;
# skipped when it takes over 120 s): tokens/s of perplexity (ctx 512, 2 chunks, --matmul q8) and
# its fraction of the peak; then, when at most 400 s have gone, the same rate with the op table's
# line between mmv and dequantize + GEMM at 8 and 32 tokens (IMC_CUDA_MMV_TOKENS; default 16),
# and, when at most 430 s have gone, the line between mmq and dequantize + GEMM at 0 (no mmq) and
# 1024 tokens (IMC_CUDA_MMQ_TOKENS; default 256), to show where those lines belong (information,
# no bound).
#
# On a GPU a run whose table could not open cuBLAS (its warning in the log) fails the engine step:
# its batches took the tiled GEMM. The toolkit's library directory goes on LD_LIBRARY_PATH first.
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
# imc opens cuBLAS and NCCL at run time (dlopen of libcublas.so.<major>, libnccl.so.2): the
# toolkit's library directory goes on the loader's path, so that a toolkit the loader's cache
# does not list is still found (else batches would fall back to the tiled GEMM, caught below)
cuda_lib=$(cd "$(dirname "$nvcc")/../lib64" 2>/dev/null && pwd)
[[ -n $cuda_lib ]] && export LD_LIBRARY_PATH=$cuda_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "libs:   ${cuda_lib:-none}: $(cd "${cuda_lib:-/nonexistent}" 2>/dev/null &&
    ls libcublas.so.* libnccl.so.* 2>/dev/null | paste -sd ' ')"
arch=${IMC_GPU_ARCH:-$(awk -F', ' '{ gsub(/\./, "", $4); print $4 }' <<<"$gpu")}
arch=${arch:-90}
step machine 0 INFO "${gpu:-no GPU}; sm_$arch"

# ---- configure ----
have_full_deps() {
    command -v mpicc >/dev/null && command -v pkg-config >/dev/null &&
        pkg-config --exists hwloc libpcre2-8 2>/dev/null && [[ -e /usr/include/numa.h ]]
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

# ---- the engine: --device cuda against --device cpu (full build) ----
imc=$build/imc
work=$build/gpu-check/engine
text=$root/data/text/calibration.txt
dev=cuda
[[ -z $gpu ]] && dev=cpu # IMC_GPU_CHECK_NO_GPU=1: the same comparison, cpu on both sides
B_PPL=1e-4 B_KLD_MEAN=1e-6 B_KLD_MAX=1e-4 B_IM=2e-4
fails=()
verdict() { # verdict WHAT VALUE BOUND: records a failure when VALUE > BOUND (or not a number)
    if ! awk -v v="$2" -v b="$3" 'BEGIN { exit !(v == v + 0 && v + 0 <= b + 0) }'; then
        fails+=("$1 $2 > $3")
    fi
}
rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d;
    if (b + 0 == 0) print "nan"; else printf "%.3g", d / (b < 0 ? -b : b) }'; }
# peak_step NAME MODEL TOKS SECONDS: the fraction of the GPU's bf16 peak that TOKS tok/s on MODEL
# reach, counting the weights' FLOPs per token `imc plan` reports.
peak_step() {
    local flops peak
    flops=$("$imc" plan "$2" --ranks 1 --gpus 0 2>/dev/null |
        sed -n 's/.*, \([0-9.e+]*\) FLOP\/token).*/\1/p' | head -n 1)
    peak=${IMC_GPU_BF16_TFLOPS:-$(bf16_peak "$gpu")}
    if [[ -n $flops && -n $peak ]]; then
        step bf16peak "$4" INFO "$1, $dev q8: $3 tok/s x $flops FLOP/token = $(awk -v r="$3" \
            -v f="$flops" -v p="$peak" 'BEGIN { printf "%.3g TFLOP/s, %.2f%% of %s TFLOP/s", \
            r * f / 1e12, 100 * r * f / (p * 1e12), p }') (weights' FLOPs only)"
    else
        step bf16peak "$4" SKIP "$1: FLOP/token '$flops' or the GPU's bf16 peak '$peak' unknown \
(IMC_GPU_BF16_TFLOPS=... gives the peak)"
    fi
}
# bf16_peak GPU: the dense bf16 tensor-core peak in TFLOP/s of the GPU nvidia-smi names (NVIDIA's
# data sheets, without sparsity), or nothing when unknown.
bf16_peak() {
    case $1 in
    *H100*PCIe*) echo 756 ;;
    *H100*NVL*) echo 835 ;;
    *H100* | *H200* | *H800*) echo 989 ;; # GH200 too
    *B200*) echo 2250 ;; # GB200 too
    *A100*) echo 312 ;;
    *L40S*) echo 362 ;;
    *) ;;
    esac
}
# im_cmp CPU.dat DEV.dat: the worst per-entry max|Δ|/max|cpu|, or "bad: ..." (entries, counts)
im_cmp() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
def load(path):
    d, o, out = open(path, "rb").read(), 4, {}
    for _ in range(struct.unpack_from("<i", d, 0)[0]):
        n = struct.unpack_from("<i", d, o)[0]; o += 4
        name = d[o:o + n].decode(); o += n
        ncall, nval = struct.unpack_from("<ii", d, o); o += 8
        out[name] = (ncall, struct.unpack_from("<%df" % nval, d, o)); o += 4 * nval
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
if sorted(a) != sorted(b) or not a:
    sys.exit(print("bad: entries differ"))
worst = 0.0
for k in a:
    (ca, va), (cb, vb) = a[k], b[k]
    if ca != cb or len(va) != len(vb):
        sys.exit(print("bad: %s calls/values %d/%d vs %d/%d" % (k, ca, len(va), cb, len(vb))))
    m = max(abs(x) for x in va) or 1.0
    worst = max(worst, max(abs(x - y) for x, y in zip(va, vb)) / m)
print("%.3g" % worst)
PY
}
# compare PRESET [EXTRA...]: perplexity and imatrix on $dev (EXTRA added; under the command in
# launch, when set) against the cpu files of PRESET; one summary line.
launch=()
compare() {
    local p=$1 tag=$1
    shift
    [[ $# -gt 0 ]] && tag="$p $*"
    local run=(-m "$work/$p.gguf" -f "$text" --ctx 128 --chunks 4 -t "$jobs"
        --matmul f32)
    local t0 out=$work/${tag// /_}
    t0=$(date +%s)
    fails=()
    "${launch[@]}" "$imc" perplexity "${run[@]}" --device "$dev" "$@" --kld-base "$work/$p.kld" \
        >"$out.ppl" 2>"$out.err" || fails+=("perplexity rc $?")
    "${launch[@]}" "$imc" imatrix "${run[@]}" --device "$dev" "$@" -o "$out.dat" >/dev/null \
        2>>"$out.err" || fails+=("imatrix rc $?")
    local pc pd kmean kmax top im
    pc=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' "$work/$p.cpu.ppl")
    pd=$(sed -n 's/^Mean PPL(Q) *: *\([0-9.]*\).*/\1/p' "$out.ppl")
    kmean=$(sed -n 's/^Mean *KLD: *\([-0-9.]*\).*/\1/p' "$out.ppl")
    kmax=$(sed -n 's/^Maximum KLD: *\([-0-9.]*\).*/\1/p' "$out.ppl")
    top=$(sed -n 's/^Same top p: *\([0-9.]*\).*/\1/p' "$out.ppl")
    if command -v python3 >/dev/null; then
        im=$(im_cmp "$work/$p.cpu.dat" "$out.dat" 2>&1 | tail -n 1)
        verdict imatrix "$im" "$B_IM"
    else
        im="n/a (no python3)"
    fi
    verdict "PPL rel" "$(rel "$pd" "$pc")" "$B_PPL"
    verdict "mean KLD" "$kmean" "$B_KLD_MEAN"
    verdict "max KLD" "$kmax" "$B_KLD_MAX"
    [[ $top == 100.000 ]] || fails+=("same top p $top%")
    # on a GPU every batch goes through cuBLAS: a table that could not open it used the tiled GEMM
    if [[ $dev == cuda ]] && grep -q "cannot load cuBLAS\|lacks an entry point" "$out.err"; then
        fails+=("cuBLAS did not load ($(grep -m 1 -o "cannot load cuBLAS.*\|lacks an entry point.*" \
            "$out.err"))")
    fi
    local note
    note="PPL $pd vs $pc (rel $(rel "$pd" "$pc")), KLD mean $kmean max $kmax, imatrix $im"
    if [[ ${#launch[@]} -gt 0 ]]; then # ranks of a group: how they passed rows
        if [[ $dev == cpu ]]; then
            note+="; cpu ranks: host exchange"
        elif grep -q "share a GPU" "$out.err"; then
            note+="; ranks share a GPU: host exchange"
        elif grep -q "does not load\|lacks a function" "$out.err"; then
            note+="; NCCL did not load: host exchange"
        elif grep -q "rows go through the host" "$out.err"; then
            note+="; NCCL init failed: host exchange ($(grep -m 1 "rows go through the host" \
                "$out.err"))"
        else
            note+="; NCCL exchange"
        fi
    fi
    if [[ ${#fails[@]} -eq 0 ]]; then
        step "  $tag" $(($(date +%s) - t0)) ok "$note"
    else
        step "  $tag" $(($(date +%s) - t0)) FAIL "$note: ${fails[*]}; see $out.err"
    fi
}

if [[ $mode != full || ! -x $imc ]]; then
    step engine 0 SKIP "kernels-only build: no imc binary, no engine comparison"
    step bench 0 SKIP "kernels-only build"
else
    t=$(date +%s)
    rm -rf "$work"
    mkdir -p "$work"
    presets=(llama-tiny llama-moe-tiny ds2-tiny-3d qwen3moe-tiny glm4moe-tiny)
    ok=1
    for p in "${presets[@]}"; do
        "$imc" gen-model --preset "$p" -o "$work/$p.gguf" >/dev/null 2>&1 &&
            "$imc" perplexity -m "$work/$p.gguf" -f "$text" --ctx 128 --chunks 4 -t "$jobs" \
                --matmul f32 --device cpu --kld-save "$work/$p.kld" >"$work/$p.cpu.ppl" 2>&1 &&
            "$imc" imatrix -m "$work/$p.gguf" -f "$text" --ctx 128 --chunks 4 -t "$jobs" \
                --matmul f32 --device cpu -o "$work/$p.cpu.dat" >/dev/null 2>&1 || ok=0
    done
    if [[ $ok == 1 ]]; then
        step engine $(($(date +%s) - t)) ok "--device $dev vs cpu, bounds: PPL rel $B_PPL, KLD \
mean $B_KLD_MEAN max $B_KLD_MAX, imatrix $B_IM$([[ $dev == cpu ]] && echo '; no GPU: cpu vs cpu')"
        for p in "${presets[@]}"; do
            compare "$p"
        done
        compare llama-moe-tiny --experts-on cpu
        compare qwen3moe-tiny --experts-on cpu
        if command -v mpirun >/dev/null; then # two ranks: NCCL between two GPUs
            [[ $(id -u) == 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
            launch=(timeout 300 mpirun -n 2 --oversubscribe)
            compare ds2-tiny-3d --layout ep=2
            compare ds2-tiny-3d --layout pp=2
            launch=()
        else
            step "  mpirun" 0 SKIP "no mpirun: no ep=2 / pp=2 runs"
        fi
    else
        step engine $(($(date +%s) - t)) FAIL "generating the presets or the cpu runs failed"
    fi

    # tokens/s of perplexity on ds2-bench (the rate of the last progress line): cpu and $dev with
    # --matmul f32, and $dev with the default --matmul q8 (on a GPU: batches in bf16, the tensor
    # cores' path); then the fraction of the GPU's dense bf16 peak that rate reaches, counting
    # the weights' FLOPs per token that `imc plan` reports (attention over the context not
    # counted: a lower bound).
    t=$(date +%s)
    bm=$work/ds2-bench.gguf
    bctx=512 # 2048 tokens; without a GPU (cpu vs cpu: the plumbing only) 512 tokens
    [[ $dev == cpu ]] && bctx=128
    rate() { # rate DEVICE MATMUL [CHUNKS]: "tok/s PPL" of a run on $bm (the last chunk line);
        # its output in $work/rate.log
        local o r p
        o=$(timeout 120 "$imc" perplexity -m "$bm" -f "$text" --ctx "$bctx" --chunks "${3:-4}" \
            -t "$jobs" --matmul "$2" --device "$1" 2>&1 | tr ',\r' '\n' | tee "$work/rate.log")
        r=$(sed -n 's/^ *\([0-9.]*\) tok\/s.*/\1/p' <<<"$o" | tail -n 1)
        p=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\).*/\1/p' <<<"$o")
        if [[ -n $r && -n $p ]]; then echo "$r $p"; else echo failed; fi
    }
    if "$imc" gen-model --preset ds2-bench -o "$bm" >/dev/null 2>&1; then
        read -r r_cpu p_cpu <<<"$(rate cpu f32)"
        read -r r_dev p_dev <<<"$(rate "$dev" f32)"
        read -r r_q8 p_q8 <<<"$(rate "$dev" q8)"
        if [[ $r_cpu == failed || $r_dev == failed || $r_q8 == failed ]]; then
            step bench $(($(date +%s) - t)) FAIL "ds2-bench perplexity: cpu $r_cpu, $dev $r_dev, \
$dev q8 $r_q8"
        else
            step bench $(($(date +%s) - t)) ok "ds2-bench perplexity, $((4 * bctx)) tokens, \
-t $jobs, tok/s (PPL): cpu f32 $r_cpu ($p_cpu), $dev f32 $r_dev ($p_dev, $(awk -v a="$r_dev" \
                -v b="$r_cpu" 'BEGIN { printf "%.2fx", a / b }')), $dev q8 $r_q8 ($p_q8, PPL rel \
$(rel "$p_q8" "$p_cpu") from cpu f32)"
            peak_step ds2-bench "$bm" "$r_q8" 0
        fi
    else
        step bench $(($(date +%s) - t)) FAIL "gen-model ds2-bench failed"
    fi
    rm -f "$bm"

    # the same fraction at DeepSeek-V3's widths (ds3-width, 5.3 GB of q8_0: 3 dense + 2 MoE
    # layers), when the budget has room for generating it (~1 min with 16 threads)
    t=$(date +%s)
    bm=$work/ds3-width.gguf
    if [[ $dev != cuda ]]; then
        step ds3width 0 SKIP "no GPU"
    elif ((t - t_start > 240)); then
        step ds3width 0 SKIP "$((t - t_start)) s spent: no room for ds3-width in the budget"
    elif timeout 120 "$imc" gen-model --preset ds3-width -o "$bm" -t "$jobs" >/dev/null 2>&1; then
        tg=$(($(date +%s) - t))
        bctx=512
        read -r r_w p_w <<<"$(IMC_LOG_LEVEL=debug rate cuda q8 2)"
        # the engine's device memory at its most, and what the device held besides (kernels/cuda
        # table_ctx.cu: cudaMemGetInfo at the end of the run); the bytes its ops copied between
        # host and device (debug), which should be far below the hidden rows' once per call
        mem_re='device memory at its most [0-9.]+ MiB|the device holds [0-9.]+ MiB besides'
        mem_re+='|the ops copied [0-9]+ bytes to the device in [0-9]+ copies and [0-9]+ bytes back'
        mem_re+=' in [0-9]+'
        if [[ $r_w == failed ]]; then
            step ds3width $(($(date +%s) - t)) FAIL "ds3-width perplexity on the GPU failed"
        else
            step ds3width $(($(date +%s) - t)) ok "generated in ${tg} s; perplexity, 1024 tokens, \
cuda q8: $r_w tok/s (PPL $p_w); $(grep -oE "$mem_re" "$work/rate.log" | head -n 3 | paste -sd ';') \
(besides: the CUDA context and cuBLAS's workspace, what imc plan --gpu-reserve allows for)"
            peak_step ds3-width "$bm" "$r_w" $(($(date +%s) - t))
            # the table's line between mmv and dequantize + GEMM (kern_decl.h
            # IMC_CUDA_MMV_TOKENS, 16): DeepSeek-V3's experts get 16 tokens each on average at
            # ctx 512, so 8 sends most of them to the GEMM and 32 nearly all to mmv
            t=$(date +%s)
            if ((t - t_start > 400)); then
                step mmvline 0 SKIP "$((t - t_start)) s spent: no room for the mmv line's runs"
            else
                read -r r_8 p_8 <<<"$(IMC_CUDA_MMV_TOKENS=8 rate cuda q8 2)"
                read -r r_32 p_32 <<<"$(IMC_CUDA_MMV_TOKENS=32 rate cuda q8 2)"
                step mmvline $(($(date +%s) - t)) INFO "ds3-width cuda q8 tok/s (PPL) with \
IMC_CUDA_MMV_TOKENS 8: $r_8 ($p_8), 16 (default): $r_w ($p_w), 32: $r_32 ($p_32)"
            fi
            # the line between mmq (the quantized rows on the tensor cores) and dequantize +
            # GEMM (IMC_CUDA_MMQ_TOKENS, 256): 0 is the path before mmq; ds3-width's 32 experts
            # get ~256 tokens each in a call of 1024, so 1024 sends them all to mmq
            t=$(date +%s)
            if ((t - t_start > 430)); then
                step mmqline 0 SKIP "$((t - t_start)) s spent: no room for the mmq line's runs"
            else
                read -r r_0 p_0 <<<"$(IMC_CUDA_MMQ_TOKENS=0 rate cuda q8 2)"
                read -r r_1k p_1k <<<"$(IMC_CUDA_MMQ_TOKENS=1024 rate cuda q8 2)"
                step mmqline $(($(date +%s) - t)) INFO "ds3-width cuda q8 tok/s (PPL) with \
IMC_CUDA_MMQ_TOKENS 0 (no mmq): $r_0 ($p_0), 256 (default): $r_w ($p_w), 1024: $r_1k ($p_1k)"
            fi
        fi
    else
        step ds3width $(($(date +%s) - t)) SKIP "gen-model ds3-width failed or took over 120 s \
(3 min 41 s with -t 2 on the 2-core test VM)"
    fi
    rm -f "$bm"
fi

print_summary
exit "$failed"
