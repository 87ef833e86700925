#!/usr/bin/env bash
# tests/mpi/test_quantize_np: `imc quantize` as one MPI job (coordinator/quantize_dist.c): every
# rank quantizes a share of the tensors, rank 0 writes the file, and the output is
# byte-identical to the single-process run: np 2, np 3 (--oversubscribe) and np 2 over TCP, on a
# deepseek2 MoE model (per-expert imatrix weights, rules) and on llama-k-tiny (K types). Also:
# the plan names the ranks, a bad imatrix under mpirun fails on every rank with the tensor named
# and leaves no output, --external runs once (rank 0), and ranks other than 0 print no result.
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
: "${IMC_BIN:?}" "${IMC_SOURCE_DIR:?}"
TEXT="$IMC_SOURCE_DIR/data/text/calibration.txt"
mpi_sanitizer_env
T=$MPI_TMP

for p in ds2-tiny-3d llama-k-tiny; do
    if ! "$IMC_BIN" gen-model --preset "$p" -o "$T/$p.gguf" >/dev/null 2>&1 ||
        ! ASAN_OPTIONS=detect_leaks=0 "$IMC_BIN" imatrix -m "$T/$p.gguf" -f "$TEXT" \
            -o "$T/$p.imat.gguf" --ctx 64 --chunks 4 -q >/dev/null 2>&1; then
        echo "FAIL gen-model / imatrix for $p"
        exit 1
    fi
done

# q_case TAG MODEL N TYPE [quantize options...]: mpirun -np N must write the same bytes as one
# process with the same options.
q_case() {
    local tag=$1 model=$2 n=$3 type=$4 opts=()
    shift 4
    [ "${tag%tcp}" != "$tag" ] && opts=("${MPI_TCP_ARGS[@]}")
    "$IMC_BIN" quantize "$T/$model.gguf" "$T/$tag.ref.gguf" "$type" "$@" >/dev/null 2>&1
    mpi_run "$tag" "$n" "${opts[@]}" -- "$IMC_BIN" quantize "$T/$model.gguf" "$T/$tag.gguf" \
        "$type" "$@"
    local rc=$?
    mpi_check "$tag: np=$n exit 0 (was $rc)" test "$rc" -eq 0
    mpi_check "$tag: np=$n output byte-identical to one process" cmp "$T/$tag.ref.gguf" \
        "$T/$tag.gguf"
    mpi_check "$tag: one summary line on stdout (rank 0)" \
        test "$(grep -c '^quantized ' "$T/$tag.out")" -eq 1
    mpi_check "$tag: the plan names rank $((n - 1))" grep -q "\[rank $((n - 1))\]" "$T/$tag.err"
    mpi_check "$tag: no temporary file left" \
        test -z "$(find "$T" -maxdepth 1 -name "$tag.gguf.tmp*")"
    [ "$rc" -eq 0 ] || tail -5 "$T/$tag.err"
}

rules='ffn_up_exps=q8_0,_exps=q5_1,attn_kv_a=iq4_nl'
q_case ds2-np2 ds2-tiny-3d 2 q4_0 --imatrix "$T/ds2-tiny-3d.imat.gguf" --custom-q "$rules"
q_case ds2-np3 ds2-tiny-3d 3 q4_0 --imatrix "$T/ds2-tiny-3d.imat.gguf" --custom-q "$rules" -t 2
q_case k-np2 llama-k-tiny 2 q2_k --imatrix "$T/llama-k-tiny.imat.gguf"
q_case k-np3 llama-k-tiny 3 q4_k --imatrix "$T/llama-k-tiny.imat.gguf"
q_case k-np2tcp llama-k-tiny 2 q3_k --imatrix "$T/llama-k-tiny.imat.gguf"

# a bad imatrix (entries of another model) fails on every rank, naming the tensor; no output
mpi_run bad 2 -- "$IMC_BIN" quantize "$T/llama-k-tiny.gguf" "$T/bad.gguf" q4_0 \
    --imatrix "$T/ds2-tiny-3d.imat.gguf"
rc=$?
mpi_check "mismatching imatrix under mpirun: exit != 0 (was $rc)" test "$rc" -ne 0
mpi_check "mismatching imatrix: the message names the tensor" \
    grep -q "tensor 'blk.0.attn_output.weight'.*does not fit" "$T/bad.err"
mpi_check "mismatching imatrix: no output file" test ! -e "$T/bad.gguf"

# --external under mpirun runs the command on rank 0 only
# shellcheck disable=SC2016 # $1 ... belong to the fake script
printf '#!/bin/sh\necho run >>"%s"\nexec "%s" quantize "$1" "$2" "$3" -q\n' "$T/ext.count" \
    "$IMC_BIN" >"$T/ext.sh"
mpi_run ext 3 -- "$IMC_BIN" quantize "$T/llama-k-tiny.gguf" "$T/ext.gguf" q4_0 \
    --external "sh $T/ext.sh {model} {out} {type}"
mpi_check "--external under mpirun: exit 0" test $? -eq 0
mpi_check "--external under mpirun: the command ran once" \
    test "$(wc -l <"$T/ext.count" 2>/dev/null)" -eq 1
"$IMC_BIN" quantize "$T/llama-k-tiny.gguf" "$T/ext.ref.gguf" q4_0 >/dev/null 2>&1
mpi_check "--external under mpirun: output equals the built-in one" cmp "$T/ext.ref.gguf" \
    "$T/ext.gguf"
mpi_summary
