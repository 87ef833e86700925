#!/usr/bin/env bash
# tests/e2e/test_device: --device cpu|cuda on perplexity, imatrix and sweep (src/cli_device.c).
# Where --device cuda cannot run (a build without CUDA, or no GPU visible) each command exits 1
# before loading anything, with one error naming the rank, its host and what is missing, and
# writes no output; under mpirun every rank stops with exit 1 (no abort, no hang). --device cpu
# gives the default's output where there is no GPU (auto = cpu there); a bad value is a usage
# error. With CUDA and a GPU, --device cuda runs perplexity and gives a PPL. --experts-on cpu
# (routed experts on the CPU table, the rest on the GPU) is accepted with --device cpu and
# changes nothing there (the same output); with a GPU, --device cuda --experts-on cpu on a MoE
# model gives a PPL; a bad value is a usage error. --exchange host (expert rows through MPI) is
# accepted and changes nothing on the CPU; a bad value is a usage error. A CPU run loads neither
# cuBLAS nor NCCL (opened at run time by a device op table only).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" device
# this test is about the GPUs: the ones the caller made visible (check.sh hid them)
if [ "$check_cuda_devices" = unset ]; then
    unset CUDA_VISIBLE_DEVICES
else
    export CUDA_VISIBLE_DEVICES=$check_cuda_devices
fi

m=$tmp/m.gguf
"$IMC_BIN" gen-model --preset llama-tiny -o "$m" >/dev/null 2>&1 || check_fail "gen-model"
has_cuda=0
grep -q '^CMAKE_CUDA_FLAGS:' "${IMC_BUILD_DIR:-/nonexistent}/CMakeCache.txt" 2>/dev/null &&
    has_cuda=1
gpu=0
[ $has_cuda = 1 ] && nvidia-smi -L 2>/dev/null | grep -q GPU && gpu=1
if [ $has_cuda = 1 ]; then why="no CUDA device visible"; else why="this build has no CUDA"; fi

P=(perplexity -m "$m" -f "$text" --ctx 64 --chunks 3)
run "${P[@]}" >"$tmp/default.out" 2>/dev/null
check "perplexity, default device: exit 0" test $? -eq 0
run "${P[@]}" --device cpu >"$tmp/cpu.out" 2>/dev/null
check "perplexity --device cpu: exit 0" test $? -eq 0
if [ $gpu = 0 ]; then
    check "--device cpu: the default's output (auto is cpu without a GPU)" \
        cmp -s "$tmp/default.out" "$tmp/cpu.out"
fi

# cuBLAS is opened at run time by a device op table (kernels/cuda/blas.cu), never linked: a CPU
# run does not load it (LD_DEBUG=files lists every object the dynamic loader brings in)
LD_DEBUG=files run "${P[@]}" --device cpu >/dev/null 2>"$tmp/ld.log"
check "--device cpu: the loader brought objects in (LD_DEBUG works)" grep -q "file=" "$tmp/ld.log"
check "--device cpu: cuBLAS not loaded" bash -c "! grep -q 'file=libcublas' '$tmp/ld.log'"
check "--device cpu: NCCL not loaded" bash -c "! grep -q 'file=libnccl' '$tmp/ld.log'"

run "${P[@]}" --device cpu --experts-on cpu >"$tmp/cpu_exp.out" 2>/dev/null
check "--device cpu --experts-on cpu: exit 0" test $? -eq 0
check "--device cpu --experts-on cpu: no effect (the --device cpu output)" \
    cmp -s "$tmp/cpu.out" "$tmp/cpu_exp.out"
I=(imatrix -m "$m" -f "$text" --ctx 64 --chunks 3 --device cpu)
run "${I[@]}" -o "$tmp/im.dat" >/dev/null 2>&1 &&
    run "${I[@]}" --experts-on cpu -o "$tmp/im_exp.dat" >/dev/null 2>&1
check "imatrix --device cpu --experts-on cpu: exit 0, the same .dat" \
    cmp -s "$tmp/im.dat" "$tmp/im_exp.dat"
run "${P[@]}" --device cpu --exchange host >"$tmp/cpu_xchg.out" 2>/dev/null
check "--device cpu --exchange host: exit 0, no effect (the --device cpu output)" \
    cmp -s "$tmp/cpu.out" "$tmp/cpu_xchg.out"
run "${P[@]}" --exchange nccl >/dev/null 2>"$tmp/bad_xchg.err"
check "--exchange nccl: exit 2" test $? -eq 2
check "--exchange nccl: names the choices" grep -q "auto, host" "$tmp/bad_xchg.err"
run "${P[@]}" --experts-on disk >/dev/null 2>"$tmp/bad_exp.err"
check "--experts-on disk: exit 2" test $? -eq 2
check "--experts-on disk: names the choices" grep -q "gpu, cpu" "$tmp/bad_exp.err"

if [ $gpu = 1 ]; then
    "$IMC_BIN" gen-model --preset llama-moe-tiny -o "$tmp/moe.gguf" >/dev/null 2>&1 ||
        check_fail "gen-model llama-moe-tiny"
    run perplexity -m "$tmp/moe.gguf" -f "$text" --ctx 64 --chunks 3 --device cuda \
        --experts-on cpu >"$tmp/hyb.out" 2>/dev/null
    check "perplexity --device cuda --experts-on cpu: exit 0" test $? -eq 0
    check "--experts-on cpu: a PPL" grep -q "^Final estimate: PPL = " "$tmp/hyb.out"
    run "${P[@]}" --device cuda >"$tmp/cuda.out" 2>"$tmp/cuda.err"
    check "perplexity --device cuda on the GPU: exit 0" test $? -eq 0
    check "perplexity --device cuda: a PPL" grep -q "^Final estimate: PPL = " "$tmp/cuda.out"
else
    declare -A cmds=(
        [perplexity]="perplexity -m $m -f $text --ctx 64 --chunks 3"
        [imatrix]="imatrix -m $m -f $text --ctx 64 --chunks 3 -o $tmp/out/im.gguf"
        [sweep]="sweep --base $m --rules-dir $tmp --type q8_0 -f $text -o $tmp/out"
    )
    for c in perplexity imatrix sweep; do
        read -r -a args <<<"${cmds[$c]}"
        run "${args[@]}" --device cuda >"$tmp/$c.out" 2>"$tmp/$c.err"
        check "$c --device cuda ($why): exit 1" test $? -eq 1
        check "$c --device cuda: names the rank, its host and what is missing" \
            grep -q "^error: $c: --device cuda on rank 0 (host .*): $why" "$tmp/$c.err"
        check "$c --device cuda: one error line" test "$(grep -c error "$tmp/$c.err")" -eq 1
        check "$c --device cuda: nothing written" test ! -e "$tmp/out"
    done
    if command -v "${MPIEXEC:-mpiexec}" >/dev/null; then
        timeout 120 "${MPIEXEC:-mpiexec}" -n 2 --oversubscribe "$IMC_BIN" "${P[@]}" \
            --device cuda --layout pp=2,ep=1,dp=1 >"$tmp/np2.out" 2>"$tmp/np2.err"
        rc=$?
        check "mpirun -n 2 --device cuda: exit 1 (rc $rc; 124 would be a hang)" test $rc -eq 1
        for r in 0 1; do
            check "mpirun -n 2: rank $r names itself" \
                grep -q "imc\[r$r@.*--device cuda on rank $r (host .*): $why" "$tmp/np2.err"
        done
        check "mpirun -n 2: no MPI abort" bash -c "! grep -q MPI_ABORT '$tmp/np2.err'"
    else
        check_skip "--device cuda under mpirun" "no mpiexec"
    fi
fi

run "${P[@]}" --device gpu >/dev/null 2>"$tmp/bad.err"
check "--device gpu: exit 2" test $? -eq 2
check "--device gpu: names the choices" grep -q "auto, cpu, cuda" "$tmp/bad.err"
check_done
