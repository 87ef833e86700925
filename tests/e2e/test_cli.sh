#!/usr/bin/env bash
# tests/e2e/test_cli: the command line as a user meets it (src/opt.h). README's command table
# agrees with the generated --help of every command (each option README names exists, and
# README names every option but the logging ones: -q -v --log-level -h); --opt=value, -t2 and
# "--" work on the real commands; the usage errors are one line naming the option, exit 2.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh" cli
readme=$IMC_SOURCE_DIR/README.md

# ---- README's table vs --help -------------------------------------------------------------------
cmds=$("$IMC_BIN" --help | awk 'NR > 2 && NF { print $1 }')
check "imc --help lists the commands" test "$(wc -w <<<"$cmds")" -ge 10
for c in $cmds; do
    "$IMC_BIN" "$c" --help >"$tmp/$c.help" 2>"$tmp/$c.err"
    check "$c --help: exit 0, usage first, nothing on stderr" \
        test $? -eq 0 -a ! -s "$tmp/$c.err" -a "$(head -c $((11 + ${#c})) "$tmp/$c.help")" = "usage: imc $c"
    # options in the help: "  -x, --name ARG" or "      --name ARG" lines
    sed -nE 's/^  (-[a-zA-Z], |    )--([a-z0-9-]+).*/--\2/p' "$tmp/$c.help" |
        grep -vxE -- '--(quiet|verbose|log-level|help)' | sort -u >"$tmp/$c.opts"
    # README's row: "| `imc <c> ...` | ..." - the options in its first cell
    row=$(grep -E "^\| \`imc $c( |\`)" "$readme" | head -n 1 | sed 's/\\|/ OR /g' | cut -d'|' -f2)
    check "README has a row for imc $c" test -n "$row"
    # ... long names, and short ones ("-m") mapped to their long names through the help
    {
        grep -oE -- '--[a-z0-9][a-z0-9-]*' <<<"$row"
        for s in $(grep -oE -- '(^|[ [(])-[a-zA-Z]( |\]|$)' <<<"$row" | tr -d ' [(]'); do
            sed -nE "s/^  $s, (--[a-z0-9-]+).*/\1/p" "$tmp/$c.help"
        done
    } | sort -u >"$tmp/$c.readme"
    missing=$(comm -23 "$tmp/$c.opts" "$tmp/$c.readme" | tr '\n' ' ')
    extra=$(comm -13 "$tmp/$c.opts" "$tmp/$c.readme" | tr '\n' ' ')
    check "README row of $c names every option of its --help (missing: ${missing:-none})" \
        test -z "$missing"
    check "README row of $c names no option its --help lacks (extra: ${extra:-none})" \
        test -z "$extra"
done

# ---- forms on the real commands ------------------------------------------------------------------
m=$tmp/llama-tiny.gguf
"$IMC_BIN" gen-model --preset llama-tiny -o "$m" >/dev/null || check_fail "gen-model"
run perplexity -m "$m" -f "$text" --ctx 64 --chunks 2 -t 1 -q >"$tmp/a.out" 2>/dev/null
run perplexity --model="$m" --file="$text" --ctx=64 --chunks=2 -t2 -q >"$tmp/b.out" 2>/dev/null
check "perplexity: --opt=value and -t2 give the output of --opt value" cmp -s "$tmp/a.out" "$tmp/b.out"
check "perplexity: that output has a final estimate" grep -q '^Final estimate: PPL = ' "$tmp/a.out"
run perplexity -q --chunks 2 -f "$text" -c 64 -m "$m" >"$tmp/c.out" 2>/dev/null
check "perplexity: option order does not matter" cmp -s "$tmp/a.out" "$tmp/c.out"
"$IMC_BIN" tokenize -m "$m" --ids -- --no-bos >"$tmp/t1.out" 2>&1
"$IMC_BIN" tokenize -m "$m" --ids --no-bos >"$tmp/t2.out" 2>&1
check "tokenize: after --, '--no-bos' is the text (more tokens than none)" \
    test "$(wc -w <"$tmp/t1.out")" -gt 1 -a "$(cat "$tmp/t2.out")" != "$(cat "$tmp/t1.out")"
"$IMC_BIN" quantize "$m" "$tmp/q.gguf" q8_0 -q -t2 >/dev/null 2>&1
"$IMC_BIN" quantize -q "$m" --threads=1 "$tmp/q1.gguf" q8_0 >/dev/null 2>&1
check "quantize: options among MODEL OUT TYPE, same bytes" cmp -s "$tmp/q.gguf" "$tmp/q1.gguf"

# ---- usage errors: exit 2, one line naming the option -------------------------------------------
usage_error() { # usage_error MESSAGE ARGS...: exit 2, one stderr line containing MESSAGE
    local want=$1
    shift
    "$IMC_BIN" "$@" >"$tmp/u.out" 2>"$tmp/u.err"
    local rc=$?
    check "imc $*: exit 2 (was $rc)" test "$rc" -eq 2
    check "imc $*: one line: '$want'" \
        test "$(wc -l <"$tmp/u.err")" -eq 1 -a "$(grep -cF -- "$want" "$tmp/u.err")" -eq 1
}
usage_error "perplexity: option --ctx needs a value" perplexity -m "$m" -f "$text" --ctx
usage_error "imatrix: option --ctx expects a positive integer, got '0'" imatrix -m "$m" --ctx=0
usage_error "sweep: option --chunks expects a positive integer, got 'x'" sweep --chunks x
usage_error "perplexity: option --attn expects one of auto, absorbed, non-absorbed, got 'x'" \
    perplexity --attn x
usage_error "imatrix: option --format expects one of auto, gguf, dat, both, got 'xml'" \
    imatrix --format xml
usage_error "perplexity: option --model given twice" perplexity -m a -m b
usage_error "perplexity: --stats is not an option of perplexity (it is one of imatrix)" \
    perplexity --stats f
usage_error "quantize: --rules-dir is not an option of quantize (it is one of sweep)" \
    quantize --rules-dir d
usage_error "info: unknown option '--frobnicate' (see imc info --help)" info --frobnicate
usage_error "imatrix: option --resume takes no value" imatrix --resume=yes
usage_error "quantize: missing MODEL OUT TYPE" quantize "$m"
usage_error "mla-3d: too many arguments" mla-3d a b c
usage_error "gen-model: option --seed expects a non-negative integer, got '-3'" \
    gen-model --preset llama-tiny -o "$tmp/x.gguf" --seed -3
check "no output file after usage errors" test ! -e "$tmp/x.gguf"

check_done
