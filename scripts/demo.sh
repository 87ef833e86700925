#!/usr/bin/env bash
# The main job on the bundled tiny model and text (README "Quick start"): installs the Debian
# packages, builds imc, generates a tiny DeepSeek2 (MLA + MoE) model, then computes its
# importance matrix and the perplexity of the bundled text. Outputs go to out/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/out"
bash "$root/scripts/deps.sh"
cmake -S "$root" -B "$root/build" >/dev/null
cmake --build "$root/build" -j"$(nproc)"
imc="$root/build/imc"
text="$root/data/text/calibration.txt"
mkdir -p "$out"

"$imc" gen-model --preset ds2-tiny-all -o "$out/ds2-tiny.gguf"
"$imc" info "$out/ds2-tiny.gguf" > "$out/ds2-tiny.info.txt"
sed -n 1,12p "$out/ds2-tiny.info.txt"
"$imc" imatrix -m "$out/ds2-tiny.gguf" -f "$text" -o "$out/ds2-tiny.imatrix.gguf" \
       --ctx 128 --format both
"$imc" perplexity -m "$out/ds2-tiny.gguf" -f "$text" --ctx 128
echo "demo: wrote $out/ds2-tiny.imatrix.gguf and $out/ds2-tiny.imatrix.dat"
