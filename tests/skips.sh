#!/usr/bin/env bash
# tests/skips.sh JUNIT: after `ctest --output-junit JUNIT`, lists the skipped tests with the
# reason each printed ("SKIP: ..."), and exits 1 if any skip is not expected on this machine
# by tests/skips.txt (a pattern naming the test whose condition holds here); exit 0 otherwise.
# Also fails when the run executed no test at all.
set -euo pipefail
junit=${1:?usage: tests/skips.sh JUNIT_XML}
here=$(cd "$(dirname "$0")" && pwd)
shared=${IMC_SHARED_DIR:-$here/../../shared}
[ -r "$junit" ] || { echo "skips: no ctest JUnit report at $junit" >&2; exit 1; }

in_ci() { [ -n "${CI:-}" ] && [ "${CI:-}" != false ] && [ "${CI:-}" != 0 ]; }
holds() { # holds CONDITION: the condition of a tests/skips.txt line is true on this machine
    case $1 in
    no-gpu) ! { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; } ;;
    no-shared) ! in_ci && [ ! -d "$shared/data" ] ;;
    not-root) ! in_ci && [ "$(id -u)" != 0 ] ;;
    *) echo "skips: unknown condition '$1' in tests/skips.txt" >&2; return 1 ;;
    esac
}
expected() { # expected TEST: prints the reason of a matching line whose condition holds
    local pat cond why
    while read -r pat cond why; do
        case $pat in '' | '#'*) continue ;; esac
        # shellcheck disable=SC2254 # the pattern is a glob on purpose
        case $1 in $pat) if holds "$cond"; then echo "$cond: $why"; return 0; fi ;; esac
    done <"$here/skips.txt"
    return 1
}

# ctest's JUnit report: <testcase name="NAME" ... status="run|notrun">, then <skipped .../> and
# <system-out> with the test's output for a skip (whose "SKIP: " line gives the reason).
mapfile -t ran < <(grep -o '<testcase name="[^"]*"[^>]*status="run"' "$junit" | cut -d'"' -f2)
mapfile -t skipped < <(awk '
    /<testcase name=/ { split($0, a, "\""); name = a[2]; skip = ($0 ~ /status="notrun"/);
                        reason = ""; done = 0 }
    skip && !done && /SKIP: / { reason = substr($0, index($0, "SKIP: ") + 6) }
    skip && !done && /<\/testcase>/ { print name "\t" reason; done = 1 }
' "$junit")
if [ "${#ran[@]}" -eq 0 ]; then
    echo "skips: ctest ran no test ($junit)" >&2
    exit 1
fi
bad=0
for row in "${skipped[@]}"; do
    name=${row%%$'\t'*}
    reason=${row#*$'\t'}
    if why=$(expected "$name"); then
        echo "skipped (expected here, $why): $name: ${reason:-no reason printed}"
    else
        echo "UNEXPECTED SKIP: $name: ${reason:-no reason printed} (not in tests/skips.txt" \
            "for this machine)"
        bad=1
    fi
done
echo "skips: ${#ran[@]} tests ran, ${#skipped[@]} skipped, $([ $bad = 0 ] && echo none || echo some) unexpected"
exit "$bad"
