#!/usr/bin/env bash
# tests/mpi/test_sweep_inputs_np: the inputs of an MPI job other than the model are read by world
# rank 0 only (coordinator/share.h; README "Inputs from rank 0"). They lie in a folder that every
# other rank sees empty (MPI_HIDE: a tmpfs mounted over it in a mount namespace of its own), and
# the outputs are byte-identical to one process's:
#   - imatrix --in-file (np 2 pp=2, np 2 ep=2, np 4 pp=2,ep=2), with the text hidden too;
#   - quantize --imatrix (np 2, np 4), its imatrix sent by rank 0;
#   - sweep --imatrix --rules-dir -f at np 2 (--ranks-per-recipe 1: each rank quantizes alone
#     from rank 0's imatrix bytes) and np 4 with --ranks-per-recipe 2.
# (perplexity --kld-base with the base file on rank 0 only: tests/mpi/test_perplexity_np.sh.)
# A rank that cannot open the model names its host and the path.
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
: "${IMC_BIN:?}" "${IMC_SOURCE_DIR:?}"
mpi_sanitizer_env
T=$MPI_TMP
IN=$T/in # only rank 0 sees what is in here
mkdir -p "$IN/r"
cp "$IMC_SOURCE_DIR/data/text/calibration.txt" "$IN/text.txt"
for p in ds2-tiny-3d llama-k-tiny; do
    "$IMC_BIN" gen-model --preset "$p" -o "$T/$p.gguf" >/dev/null 2>&1 ||
        { echo "FAIL gen-model --preset $p" && exit 1; }
done
moe=$T/ds2-tiny-3d.gguf
m=$T/llama-k-tiny.gguf
ASAN_OPTIONS=detect_leaks=0 "$IMC_BIN" imatrix -m "$moe" -f "$IN/text.txt" -o "$IN/prev.gguf" \
    --ctx 64 --chunks 2 -q >/dev/null 2>&1
ASAN_OPTIONS=detect_leaks=0 "$IMC_BIN" imatrix -m "$m" -f "$IN/text.txt" -o "$IN/imat.gguf" \
    --ctx 64 --chunks 4 -q >/dev/null 2>&1
mpi_check "setup: the imatrix files" test -s "$IN/prev.gguf" -a -s "$IN/imat.gguf"
mpi_run hide 2 -- "${MPI_HIDE[@]}" "$IN" test -s "$IN/imat.gguf"
mpi_check "the folder of inputs is empty on rank 1" test $? -ne 0

# hidden TAG N REF OUT WHAT -- IMC_ARGS...: runs imc under mpirun with $IN empty on every rank
# but 0; it must exit 0 and write OUT identical to REF (one process's).
hidden() {
    local tag=$1 n=$2 ref=$3 out=$4 what=$5
    shift 6
    mpi_run "$tag" "$n" -- "${MPI_HIDE[@]}" "$IN" "$IMC_BIN" "$@"
    local rc=$?
    mpi_check "$what: exit 0 (was $rc)" test "$rc" -eq 0
    mpi_check "$what: $(basename "$ref") identical to one process" cmp "$ref" "$out"
    [ "$rc" -eq 0 ] || tail -3 "$T/$tag.err"
}

# ---- imatrix --in-file ----
IM=(imatrix -m "$moe" -f "$IN/text.txt" --ctx 64 --chunks 4 --in-file "$IN/prev.gguf:0.5")
"$IMC_BIN" "${IM[@]}" -o "$T/im.one.gguf" -q >/dev/null 2>&1
mpi_check "imatrix --in-file, one process: exit 0" test $? -eq 0
for case in "pp2 2 pp=2" "ep2 2 ep=2" "pp2ep2 4 pp=2,ep=2"; do
    read -r tag n layout <<<"$case"
    hidden "im.$tag" "$n" "$T/im.one.gguf" "$T/im.$tag.gguf" "imatrix --in-file np=$n $layout" \
        -- "${IM[@]}" -o "$T/im.$tag.gguf" --layout "$layout"
done

# ---- quantize --imatrix ----
"$IMC_BIN" quantize "$m" "$T/q.one.gguf" q4_k --imatrix "$IN/imat.gguf" -q >/dev/null 2>&1
mpi_check "quantize --imatrix, one process: exit 0" test $? -eq 0
for n in 2 4; do
    hidden "q.np$n" "$n" "$T/q.one.gguf" "$T/q.np$n.gguf" "quantize --imatrix np=$n" \
        -- quantize "$m" "$T/q.np$n.gguf" q4_k --imatrix "$IN/imat.gguf"
done

# ---- sweep: imatrix, recipes and text from rank 0 ----
printf '!type q2_k\n' >"$IN/r/a-q2"
printf 'attn_.*=q8_0\n!type q3_k\n' >"$IN/r/b-q3"
printf '!type q4_0\n!imatrix no\n' >"$IN/r/c-q4"
SW=(sweep --base "$m" --imatrix "$IN/imat.gguf" --rules-dir "$IN/r" -f "$IN/text.txt" --ctx 64
    --chunks 6)
ASAN_OPTIONS=detect_leaks=0 "$IMC_BIN" "${SW[@]}" --out-dir "$T/one" >"$T/one.out" 2>"$T/one.err"
mpi_check "sweep, one process: exit 0" test $? -eq 0
for case in "g1 2 1" "g2 4 2"; do
    read -r tag n g <<<"$case"
    hidden "sw.$tag" "$n" "$T/one/results.csv" "$T/$tag/results.csv" "sweep np=$n G=$g" \
        -- "${SW[@]}" --out-dir "$T/$tag" --ranks-per-recipe "$g"
    for f in results.md b-q3.kld.txt; do
        mpi_check "sweep np=$n G=$g: $f identical to one process" cmp "$T/one/$f" "$T/$tag/$f"
    done
    mpi_check "sweep np=$n G=$g: a recipe ran on another rank than 0" \
        grep -q "imc\[r[1-9]@.*sweep: \[.*quantizing" "$T/sw.$tag.err"
done

# ---- the model must be visible on every rank: the message names the host and the path ----
mkdir -p "$T/models"
cp "$m" "$T/models/m.gguf"
for layout in auto pp=2; do
    lo=()
    [ "$layout" = auto ] || lo=(--layout "$layout")
    mpi_run "nomodel.$layout" 2 -- "${MPI_HIDE[@]}" "$T/models" "$IMC_BIN" perplexity \
        -m "$T/models/m.gguf" -f "$IN/text.txt" --ctx 64 --chunks 4 "${lo[@]}"
    rc=$?
    mpi_check "a model missing on rank 1 ($layout layout): exit non-zero (was $rc), no hang" \
        test "$rc" -ne 0 -a "$rc" -ne 124
    mpi_check "a model missing on rank 1 ($layout layout): rank 1 names its host and the path" \
        grep -qE "imc\[r1@$(hostname)\].*$T/models/m.gguf: cannot open" "$T/nomodel.$layout.err"
    grep -q "cannot open" "$T/nomodel.$layout.err" || tail -3 "$T/nomodel.$layout.err"
done
mpi_summary
