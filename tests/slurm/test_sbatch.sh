#!/usr/bin/env bash
# tests/slurm/test_sbatch: the real imc through the batch scripts on the local Slurm cluster
# (STYLE b.7, kind slurm): a tiny generated model (gen-model ds2-tiny-all) goes through
# slurm/perplexity.sbatch (2 ranks under mpirun) and slurm/imatrix.sbatch (2 ranks under srun,
# PMIx). The job's `Final estimate: PPL = ...` line must match a direct single-process
# `imc perplexity` within 1e-3 relative, and the job's imatrix must be a GGUF file identical to
# a direct single-process `imc imatrix` (DESIGN §6: the same imatrix for any layout).
# 1 rank each where a node has a single CPU. A binary without `imc perplexity` or `imc imatrix`
# fails; Slurm that cannot be started: see slurm_test_require (common.sh).
set -u
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"
: "${IMC_BIN:?IMC_BIN must point to the imc binary}"
sd=$IMC_SOURCE_DIR/slurm

slurm_test_require

tmp=$(mktemp -d "${TMPDIR:-/tmp}/imc_slurm_sbatch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
J=$tmp/jobs
mkdir -p "$J"
model=$tmp/model.gguf text=$tmp/text.txt
"$IMC_BIN" gen-model --preset ds2-tiny-all -o "$model" >/dev/null || exit 1
for i in 1 2 3; do
    cat <<EOF
Part $i. The river rose slowly through the night, and by morning the lower fields were under
water. Farmers moved their animals to the hill behind the church, where the ground stayed dry.
Nobody in the village could remember a flood like it, although the oldest woman said her
mother had told her about one, long ago, when the bridge was still made of wood.
The school closed for a week. Children helped to fill sandbags, carried bread to the families
whose houses stood nearest the bank, and counted the boats that passed on the brown current.
When the water finally fell, it left a line of mud on every wall, about as high as a table,
and a smell that stayed until the first frost. The council promised a new dyke; $((i * 7))
engineers came to measure the banks, and the work began the following spring.
EOF
done >"$text"

# references: one process, no Slurm
if ! "$IMC_BIN" perplexity -m "$model" -f "$text" --ctx 64 \
    >"$tmp/ref-ppl.out" 2>"$tmp/ref-ppl.err" ||
    ! "$IMC_BIN" imatrix -m "$model" -f "$text" -o "$tmp/ref.imatrix.gguf" --ctx 64 --chunks 4 \
        >"$tmp/ref-imx.out" 2>"$tmp/ref-imx.err"; then
    echo "FAIL the direct runs (no Slurm) fail:"
    cat "$tmp"/ref-*.err
    exit 1
fi

ranks=$(slurm_ranks)
slurm_test_wait=sbatch # STYLE b.7: a real `sbatch --wait`
t0=$SECONDS
slurm_submit "$J" ppl IMC_LAUNCH=mpirun IMC_MODEL="$model" IMC_TEXT="$text" IMC_CTX=64 -- \
    --ntasks="$ranks" "$sd/perplexity.sbatch" &
slurm_submit "$J" imx IMC_LAUNCH=srun IMC_MODEL="$model" IMC_TEXT="$text" \
    IMC_OUT="$tmp/slurm.imatrix.gguf" IMC_CTX=64 IMC_CHUNKS=4 -- \
    --ntasks="$ranks" "$sd/imatrix.sbatch" &
# threads: --cpus-per-task=2 gives the rank 2 threads; IMC_THREADS overrides it
slurm_submit "$J" cpt2 IMC_LAUNCH=srun IMC_MODEL="$model" IMC_TEXT="$text" IMC_CTX=64 -- \
    --ntasks=1 --cpus-per-task=2 "$sd/perplexity.sbatch" &
slurm_submit "$J" cpt2t1 IMC_THREADS=1 IMC_MODEL="$model" IMC_TEXT="$text" IMC_CTX=64 -- \
    --ntasks=1 --cpus-per-task=2 "$sd/perplexity.sbatch" &
wait
echo "4 jobs ($ranks rank(s), $ranks rank(s), 1 rank x 2 CPUs twice) took $((SECONDS - t0)) s"

# shellcheck disable=SC2317 # called through check
has() { grep -qE -- "$2" "$1"; } # has FILE REGEX
ppl_of() { sed -n 's/.*Final estimate: PPL = \([0-9.]*\) .*/\1/p' "$1" | head -n 1; }
ref=$(ppl_of "$tmp/ref-ppl.out")
got=$(ppl_of "$J/ppl.out")
check "direct perplexity prints the final estimate" test -n "$ref"
check "perplexity job: exit 0" test "$(slurm_rc "$J" ppl)" = 0
check "perplexity job: 'Final estimate: PPL =' in the job output" test -n "$got"
check "perplexity job: PPL $got = direct run $ref (1e-3 relative)" \
    awk -v a="$got" -v b="$ref" 'BEGIN { d = a - b; exit !(b > 0 && d * d <= 1e-6 * b * b) }'

check "--cpus-per-task=2: exit 0" test "$(slurm_rc "$J" cpt2)" = 0
check "--cpus-per-task=2: imc started with --threads 2" has "$J/cpt2.err" "perplexity.*--threads 2"
check "--cpus-per-task=2: the rank ran 2 threads (its log)" has "$J/cpt2.err" " 2 thread\(s\)"
check "--cpus-per-task=2: same PPL as the direct run" test "$(ppl_of "$J/cpt2.out")" = "$ref"
check "IMC_THREADS=1 overrides --cpus-per-task: exit 0" test "$(slurm_rc "$J" cpt2t1)" = 0
check "IMC_THREADS=1: 1 thread" has "$J/cpt2t1.err" " 1 thread\(s\)"

out=$tmp/slurm.imatrix.gguf
check "imatrix job: exit 0" test "$(slurm_rc "$J" imx)" = 0
check "imatrix job: wrote $out" test -s "$out"
check "imatrix job: the file is GGUF" test "$(head -c 4 "$out" 2>/dev/null)" = GGUF
check "imatrix job: same bytes as the direct run" cmp "$out" "$tmp/ref.imatrix.gguf"
check "imatrix job: no temporary file left" \
    test -z "$(find "$tmp" -maxdepth 1 -name 'slurm.imatrix.gguf?*')"
check "imatrix job: imc merge reads the file" \
    "$IMC_BIN" merge "$out" -o "$tmp/reread.imatrix.gguf" -q

if [ "$fail" -gt 0 ]; then
    show_job "$J" ppl imx cpt2 cpt2t1
fi
check_done
