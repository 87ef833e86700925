#!/usr/bin/env bash
# tests/mpi/test_sweep_np: `imc sweep` as one MPI job (coordinator/sweep.h): the recipes are dealt
# over the ranks (np 2, np 3, and np 4 with fewer recipes than ranks), the base logits computed
# once (rank 0), the figures gathered to rank 0, and results.csv/.md/.svg are byte-identical to
# a single-process sweep. Also: a rerun under mpirun recomputes nothing; a recipe that fails on a
# rank other than 0 fails the whole job (every rank exits, no hang) naming the recipe, with no
# results written; only rank 0 prints the table. Recipe groups (--ranks-per-recipe G): np 4 with
# G = 2 and G = 4 gives the same files (base over all ranks, each recipe quantized and scored by
# a group), stale claim files of a killed run do not block it, a rerun resumes, a failing recipe
# is named, and a G that does not divide the ranks fails on rank 0 before any work. Automatic G
# (--mem-per-rank): the fewest ranks whose groups hold the base; too small a G, or a job too
# small for any, fails on rank 0 with the numbers.
# shellcheck source=tests/mpi/lib.sh
. "$(dirname "$0")/lib.sh"
: "${IMC_BIN:?}" "${IMC_SOURCE_DIR:?}"
TEXT="$IMC_SOURCE_DIR/data/text/calibration.txt"
mpi_sanitizer_env
T=$MPI_TMP
m=$T/model.gguf
if ! "$IMC_BIN" gen-model --preset llama-k-tiny -o "$m" >/dev/null 2>&1 ||
    ! ASAN_OPTIONS=detect_leaks=0 "$IMC_BIN" imatrix -m "$m" -f "$TEXT" -o "$T/imat.gguf" \
        --ctx 64 --chunks 4 -q >/dev/null 2>&1; then
    echo "FAIL gen-model / imatrix"
    exit 1
fi
mkdir -p "$T/r"
printf '!type q2_k\n' >"$T/r/a-q2"
printf 'attn_.*=q8_0\n!type q3_k\n' >"$T/r/b-q3"
printf '!type q4_0\n!imatrix no\n' >"$T/r/c-q4"
ARGS=(--base "$m" --imatrix "$T/imat.gguf" --rules-dir "$T/r" -f "$TEXT" --ctx 64 --chunks 6)

ASAN_OPTIONS=detect_leaks=0 "$IMC_BIN" sweep "${ARGS[@]}" --out-dir "$T/one" \
    >"$T/one.out" 2>"$T/one.err"
mpi_check "single process: exit 0" test $? -eq 0

for n in 2 3 4; do
    mpi_run "np$n" "$n" -- "$IMC_BIN" sweep "${ARGS[@]}" --out-dir "$T/np$n"
    rc=$?
    mpi_check "np=$n: exit 0 (was $rc)" test "$rc" -eq 0
    for f in results.csv results.md results.svg; do
        mpi_check "np=$n: $f identical to one process" cmp "$T/one/$f" "$T/np$n/$f"
    done
    mpi_check "np=$n: stdout is the table once (rank 0)" cmp "$T/one.out" "$T/np$n.out"
    mpi_check "np=$n: the base computed once" \
        test "$(grep -c 'sweep: base logits of' "$T/np$n.err")" -eq 1
    mpi_check "np=$n: a recipe ran on rank $((n > 3 ? 2 : n - 1))" \
        grep -q "imc\[r$((n > 3 ? 2 : n - 1))@.*sweep: \[.*quantizing" "$T/np$n.err"
    [ "$rc" -eq 0 ] || tail -5 "$T/np$n.err"
done

mpi_run again 3 -- "$IMC_BIN" sweep "${ARGS[@]}" --out-dir "$T/np3"
mpi_check "rerun np=3: exit 0" test $? -eq 0
mpi_check "rerun np=3: nothing recomputed" test "$(grep -c 'quantizing' "$T/again.err")" -eq 0
mpi_check "rerun np=3: same results.csv" cmp "$T/one/results.csv" "$T/np3/results.csv"

# recipe groups: stale claims (as a killed run leaves them) are cleared at the start
mkdir -p "$T/g2"
touch "$T/g2/a-q2.claim" "$T/g2/b-q3.claim" "$T/g2/c-q4.claim"
for g in 2 4; do
    mpi_run "g$g" 4 -- "$IMC_BIN" sweep "${ARGS[@]}" --out-dir "$T/g$g" --ranks-per-recipe "$g"
    rc=$?
    mpi_check "np=4 G=$g: exit 0 (was $rc)" test "$rc" -eq 0
    for f in results.csv results.md results.svg b-q3.kld.txt; do
        mpi_check "np=4 G=$g: $f identical to one process" cmp "$T/one/$f" "$T/g$g/$f"
    done
    mpi_check "np=4 G=$g: stdout is the table once" cmp "$T/one.out" "$T/g$g.out"
    mpi_check "np=4 G=$g: the base computed once" \
        test "$(grep -c 'sweep: base logits of' "$T/g$g.err")" -eq 1
    mpi_check "np=4 G=$g: every recipe computed once" \
        test "$(grep -c 'sweep: \[.*quantizing' "$T/g$g.err")" -eq 3
    mpi_check "np=4 G=$g: no claim file left" test -z "$(find "$T/g$g" -name '*.claim')"
    [ "$rc" -eq 0 ] || tail -5 "$T/g$g.err"
done
mpi_check "np=4 G=2: two groups of two ranks" \
    grep -q "imc\[r2@.*sweep: group 1: world ranks 2-3" "$T/g2.err"
mpi_run g2again 4 -- "$IMC_BIN" sweep "${ARGS[@]}" --out-dir "$T/g2" --ranks-per-recipe 2
mpi_check "rerun np=4 G=2: exit 0" test $? -eq 0
mpi_check "rerun np=4 G=2: nothing recomputed" \
    test "$(grep -c 'quantizing' "$T/g2again.err")" -eq 0
mpi_check "rerun np=4 G=2: same results.csv" cmp "$T/one/results.csv" "$T/g2/results.csv"
mpi_run g3 4 -- "$IMC_BIN" sweep "${ARGS[@]}" --out-dir "$T/g3" --ranks-per-recipe 3
rc=$?
mpi_check "np=4 G=3: exit 1 (was $rc)" test "$rc" -eq 1
mpi_check "np=4 G=3: rank 0 names the numbers" \
    grep -q "imc\[r0@.*ranks-per-recipe 3 does not divide the job's 4 rank" "$T/g3.err"
mpi_check "np=4 G=3: said once" test "$(grep -c 'does not divide' "$T/g3.err")" -eq 1
mpi_check "np=4 G=3: no work done" test ! -e "$T/g3/_base.logits"
# automatic G: the fewest ranks whose groups hold the base in --mem-per-rank each
mb=$(awk -v b="$(stat -c %s "$m")" 'BEGIN { printf "%.9f", b / 2.5 / 1073741824 }')
mpi_run gauto 4 -- "$IMC_BIN" sweep "${ARGS[@]}" --out-dir "$T/gauto" --mem-per-rank "$mb"
rc=$?
mpi_check "np=4 automatic G (base / 2.5 per rank): exit 0 (was $rc)" test "$rc" -eq 0
mpi_check "automatic G: 4 (2 ranks would hold base / 2 each)" \
    grep -q "imc\[r0@.*ranks per recipe: 4 (automatic; the base" "$T/gauto.err"
mpi_check "automatic G: results.csv identical to one process" \
    cmp "$T/one/results.csv" "$T/gauto/results.csv"
mpi_run gbig 4 -- "$IMC_BIN" sweep "${ARGS[@]}" --out-dir "$T/gbig" --ranks-per-recipe 2 \
    --mem-per-rank "$mb"
rc=$?
mpi_check "np=4 G=2 too small for the base: exit 1 (was $rc)" test "$rc" -eq 1
pat="imc\[r0@.*needs .* GiB per rank in groups of 2 rank(s), more than the .* GiB a rank"
pat="$pat has (--mem-per-rank); use a larger --ranks-per-recipe"
mpi_check "G too small: rank 0 gives the numbers" grep -q "$pat" "$T/gbig.err"
mpi_check "G too small: no work done" test ! -e "$T/gbig/_base.logits"
mpi_run gnone 2 -- "$IMC_BIN" sweep "${ARGS[@]}" --out-dir "$T/gnone" --mem-per-rank "$mb"
rc=$?
mpi_check "np=2, no group holds the base: exit 1 (was $rc)" test "$rc" -eq 1
mpi_check "no group holds the base: said" grep -q "the job has too few ranks" "$T/gnone.err"

# the second recipe (rank 1 at np 2) uses an imatrix of another model: the job fails by name
"$IMC_BIN" gen-model --preset llama-tiny -o "$T/other.gguf" >/dev/null 2>&1
ASAN_OPTIONS=detect_leaks=0 "$IMC_BIN" imatrix -m "$T/other.gguf" -f "$TEXT" \
    -o "$T/other.imat.gguf" --ctx 64 --chunks 2 -q >/dev/null 2>&1
mkdir -p "$T/bad"
printf '!type q4_0\n!imatrix no\n' >"$T/bad/a"
printf '!type q4_0\n' >"$T/bad/b"
mpi_run bad 2 -- "$IMC_BIN" sweep --base "$m" --imatrix "$T/other.imat.gguf" --rules-dir "$T/bad" \
    -f "$TEXT" --ctx 64 --chunks 4 --out-dir "$T/badout"
rc=$?
mpi_check "failing recipe on rank 1: exit != 0 (was $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
mpi_check "failing recipe on rank 1: rank 1 names it" \
    grep -q "imc\[r1@.*recipe 'b' .* failed" "$T/bad.err"
mpi_check "failing recipe on rank 1: rank 0's summary names it" \
    grep -q "imc\[r0@.*1 of 2 recipe(s) failed.*: b" "$T/bad.err"
mpi_check "failing recipe on rank 1: no results written" test ! -e "$T/badout/results.csv"
mpi_check "failing recipe on rank 1: rank 0's recipe kept" test -s "$T/badout/a.result"
mpi_run badg 4 -- "$IMC_BIN" sweep --base "$m" --imatrix "$T/other.imat.gguf" \
    --rules-dir "$T/bad" -f "$TEXT" --ctx 64 --chunks 4 --out-dir "$T/badg" --ranks-per-recipe 2
rc=$?
mpi_check "failing recipe in a group: exit 1 (was $rc)" test "$rc" -eq 1
mpi_check "failing recipe in a group: its group names it" \
    grep -q "recipe 'b' .* failed" "$T/badg.err"
mpi_check "failing recipe in a group: rank 0's summary names it" \
    grep -q "imc\[r0@.*1 of 2 recipe(s) failed.*: b" "$T/badg.err"
mpi_check "failing recipe in a group: no results written" test ! -e "$T/badg/results.csv"
mpi_summary
