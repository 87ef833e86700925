#!/usr/bin/env bash
# tests/e2e/test_imatrix_resume: checkpoints and --resume of `imc imatrix` (DESIGN.md §6
# "Faults": checkpoints every N chunks, atomic; --resume yields the same file as an
# uninterrupted run). The run is really killed (kill -9) once its first checkpoint exists, then
# resumed; output file and stdout must be byte-identical to a run that never stopped, in GGUF
# and .dat form. Also: --save-every alone does not change the output; the checkpoint is removed
# when the run completes; one chunk per engine call gives the same bytes as 16 (the default
# -b 2048), so a resume that restarts mid-group does too; a resume with other options is
# refused with one error line; --resume without a checkpoint starts from the first chunk with a
# warning.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" imatrix_resume
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
# a text long enough that the run lasts a while after its first checkpoint (~45k tokens)
text=$tmp/text.txt
for _ in 1 2 3; do cat "$IMC_SOURCE_DIR/data/text/calibration.txt"; done >"$text"
model=$tmp/ds2-tiny-ik.gguf
if ! "$IMC_BIN" gen-model --preset ds2-tiny-ik -o "$model" >/dev/null 2>&1; then
    echo "FAIL gen-model"
    exit 1
fi
args=(-m "$model" -f "$text" -c 128 --format both)

"$IMC_BIN" imatrix "${args[@]}" -q -o "$tmp/ref" >"$tmp/ref.out" 2>/dev/null
check "uninterrupted run: exit 0" test $? -eq 0
"$IMC_BIN" imatrix "${args[@]}" -q -o "$tmp/se" --save-every 25 >"$tmp/se.out" 2>/dev/null
check "--save-every 25: exit 0" test $? -eq 0
check "--save-every alone: same GGUF" cmp -s "$tmp/se.gguf" "$tmp/ref.gguf"
check "--save-every alone: same .dat" cmp -s "$tmp/se.dat" "$tmp/ref.dat"
check "checkpoint removed after completion" test ! -e "$tmp/se.ckpt"
"$IMC_BIN" imatrix "${args[@]}" -q -o "$tmp/b1" -b 128 >"$tmp/b1.out" 2>/dev/null
check "one chunk per engine call (-b 128) = 16 per call (-b 2048)" cmp -s "$tmp/b1.gguf" "$tmp/ref.gguf"

# kill -9 once the first checkpoint exists
"$IMC_BIN" imatrix "${args[@]}" -q -o "$tmp/k" --save-every 20 >"$tmp/k1.out" 2>/dev/null &
pid=$!
for _ in $(seq 1 2000); do
    [ -e "$tmp/k.ckpt" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.005
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rc=$?
pid=
check "the run was killed (status $rc = 137) after its first checkpoint" \
    test "$rc" -eq 137 -a -e "$tmp/k.ckpt"
cp "$tmp/k.ckpt" "$tmp/k.ckpt.saved"

# a resume with other options is refused and leaves the checkpoint alone
"$IMC_BIN" imatrix "${args[@]/#128/64}" -q -o "$tmp/k" --save-every 20 --resume \
    >/dev/null 2>"$tmp/bad.err"
check "resume with --ctx 64: exit 1" test $? -eq 1
check "resume with --ctx 64: one error line naming --ctx" \
    test "$(grep -c . "$tmp/bad.err")" -eq 1 -a "$(grep -c -- '--ctx 128' "$tmp/bad.err")" -eq 1
check "checkpoint untouched by the refused resume" cmp -s "$tmp/k.ckpt" "$tmp/k.ckpt.saved"

"$IMC_BIN" imatrix "${args[@]}" --log-level info -o "$tmp/k" --save-every 20 --resume \
    >"$tmp/k2.out" 2>"$tmp/k2.err"
check "resume: exit 0" test $? -eq 0
done_at=$(sed -n 's/.*resuming from .* after chunk \([0-9]*\)\/.*/\1/p' "$tmp/k2.err")
check "resume started after chunk ${done_at:-?} (> 0)" test "${done_at:-0}" -gt 0
check "resumed GGUF = uninterrupted GGUF" cmp -s "$tmp/k.gguf" "$tmp/ref.gguf"
check "resumed .dat = uninterrupted .dat" cmp -s "$tmp/k.dat" "$tmp/ref.dat"
check "resumed stdout = uninterrupted stdout" cmp -s "$tmp/k2.out" "$tmp/ref.out"
check "checkpoint removed after the resumed run" test ! -e "$tmp/k.ckpt"

"$IMC_BIN" imatrix "${args[@]}" -q -o "$tmp/n" --resume >"$tmp/n.out" \
    2>"$tmp/n.err"
check "--resume without a checkpoint: exit 0" test $? -eq 0
check "--resume without a checkpoint: warning" grep -q "no checkpoint" "$tmp/n.err"
check "--resume without a checkpoint: same output" cmp -s "$tmp/n.gguf" "$tmp/ref.gguf"

check_done
