/*
 * tests/unit/test_sweep_recipe: the text-level contracts of the sweep and of the external
 * quantizer (coordinator/sweep.h, coordinator/quantize.h "external quantizer"):
 *   - --external templates: each placeholder becomes one single-quoted shell word (quotes
 *     inside escaped), other braces stay, missing or value-less placeholders are refused;
 *     rules become one --custom-q list, a ',' in a regex is refused;
 *   - recipe folders: file order, names without the extension, hidden files skipped, the
 *     directives !type and !imatrix, errors naming file:line (bad directive, repeated
 *     directive, bad rule), clashing and unsafe names, an empty folder, an out dir that cannot
 *     be created;
 *   - recipe hashes: equal for equal inputs, changed by the recipe bytes, by the default type
 *     only for recipes without !type, by ctx for every recipe.
 * Expected values come from those contracts, not from running the code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/quantize.h"
#include "coordinator/sweep.h"
#include "coordinator/sweep_priv.h"
#include "tests/check.h"
#include "tests/logcap.h"

static char g_dir[256]; // the test's temporary folder (set once in main)

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "create %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_expand(void)
{
    struct imc_quantize_ext_args a = {.model = "/m/it's a model.gguf",
                                      .out = "o.tmp",
                                      .type = "Q4_K_M",
                                      .imatrix = "im.gguf",
                                      .rules = "attn_.*=q8_0,ffn=q4_k"};
    char *cmd = NULL;
    CHECK(imc_quantize_ext_expand("q --imatrix {imatrix} --custom-q {rules} {model} {out} {type} "
                                  "${HOME} {other}",
                                  &a, &cmd) == IMC_OK,
          "expand a full template");
    const char *want = "q --imatrix 'im.gguf' --custom-q 'attn_.*=q8_0,ffn=q4_k' "
                       "'/m/it'\\''s a model.gguf' 'o.tmp' 'Q4_K_M' ${HOME} {other}";
    CHECK(cmd && strcmp(cmd, want) == 0, "quoted words, other braces kept: got [%s]",
          cmd ? cmd : "(null)");
    free(cmd);
    struct logcap c;
    const char *bad[] = {"cp {model} x {type} {imatrix} {rules}", // no {out}
                         "cp {model} {out} {type} {rules}",       // imatrix given, unused
                         "cp {model} {out} {imatrix} {rules}"};   // no {type}
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        logcap_start(&c);
        cmd = NULL;
        CHECK(imc_quantize_ext_expand(bad[i], &a, &cmd) == IMC_ERR_ARG && !cmd, "refused: %s",
              bad[i]);
        logcap_stop();
        CHECK(c.n_err == 1 && strstr(c.text, "placeholder"), "one error naming the placeholder");
    }
    struct imc_quantize_ext_args none = {.model = "m", .out = "o", .type = "t"};
    logcap_start(&c);
    CHECK(imc_quantize_ext_expand("x {model} {out} {type} {imatrix}", &none, &cmd) == IMC_ERR_ARG,
          "{imatrix} without an imatrix is refused");
    logcap_stop();
    CHECK(strstr(c.text, "no --imatrix was given") != NULL, "message: %s", c.text);
}

static void test_rules_list(void)
{
    struct imc_quant_rules r;
    imc_quant_rules_init(&r);
    char *list = NULL;
    CHECK(imc_quantize_ext_rules(&r, &list) == IMC_OK && list == NULL, "no rule: no list");
    CHECK(imc_quant_rules_parse_text(&r, "ffn_down=Q4_K\nattn_(q|k)=q8_0\n", "t") == IMC_OK,
          "parse two rules");
    CHECK(imc_quantize_ext_rules(&r, &list) == IMC_OK && list &&
              strcmp(list, "ffn_down=q4_k,attn_(q|k)=q8_0") == 0,
          "list with ggml type names: %s", list ? list : "(null)");
    free(list);
    list = NULL;
    CHECK(imc_quant_rules_parse_text(&r, "blk\\.(1,2)=q4_0\n", "t") == IMC_OK, "a regex with ,");
    struct logcap c;
    logcap_start(&c);
    CHECK(imc_quantize_ext_rules(&r, &list) == IMC_ERR_ARG && !list, "',' cannot be carried");
    logcap_stop();
    CHECK(strstr(c.text, "contains ','") != NULL, "message: %s", c.text);
    imc_quant_rules_free(&r);
}

// imc_sweep_init on g_dir/rules with the given default type and ctx; NULL on failure.
static struct imc_sweep *init(enum imc_type type, int64_t ctx, struct logcap *c)
{
    char rules[300], base[300], text[300], out[300];
    snprintf(rules, sizeof(rules), "%s/rules", g_dir);
    snprintf(base, sizeof(base), "%s/base.gguf", g_dir);
    snprintf(text, sizeof(text), "%s/text.txt", g_dir);
    snprintf(out, sizeof(out), "%s/out", g_dir);
    struct imc_sweep_opts o;
    imc_sweep_opts_default(&o);
    o.base = base;
    o.imatrix = base; // any existing file: only its identity is hashed here
    o.rules_dir = rules;
    o.text = text;
    o.out_dir = out;
    o.type = type;
    o.n_ctx = ctx;
    struct imc_sweep *s = NULL;
    logcap_start(c);
    enum imc_status st = imc_sweep_init(&s, &o);
    logcap_stop();
    return st == IMC_OK ? s : NULL;
}

static void test_recipes(void)
{
    write_file("rules/b-mix.rules", "# comment\nattn=q8_0\n  !type q2_k\nffn=q4_0\n");
    write_file("rules/a.plain", "");
    write_file("rules/c.x.txt", "!imatrix no\n");
    write_file("rules/.hidden", "junk");
    struct logcap c;
    struct imc_sweep *s = init(IMC_TYPE_Q4_K, 0, &c);
    CHECK(s != NULL, "init: %s", c.text);
    if (!s) {
        return;
    }
    CHECK(imc_sweep_n_recipes(s) == 3, "3 recipes (hidden skipped): %lld",
          (long long)imc_sweep_n_recipes(s));
    const char *names[] = {"a", "b-mix", "c.x"};
    for (int i = 0; i < 3 && i < imc_sweep_n_recipes(s); i++) {
        CHECK(strcmp(imc_sweep_recipe_name(s, i), names[i]) == 0, "recipe %d is %s", i, names[i]);
    }
    CHECK(s->rec[0].type == IMC_TYPE_Q4_K && s->rec[0].use_imatrix && s->rec[0].rules.n == 0,
          "empty recipe: the sweep's type, with the imatrix, no rule");
    CHECK(s->rec[1].type == IMC_TYPE_Q2_K && s->rec[1].rules.n == 2,
          "!type with leading blanks; the directive line is not a rule");
    CHECK(!s->rec[2].use_imatrix, "!imatrix no");
    uint64_t h[3] = {s->rec[0].hash, s->rec[1].hash, s->rec[2].hash};
    imc_sweep_free(s);

    s = init(IMC_TYPE_Q4_K, 0, &c);
    CHECK(s && s->rec[0].hash == h[0] && s->rec[1].hash == h[1], "same inputs, same hashes");
    imc_sweep_free(s);
    s = init(IMC_TYPE_Q5_K, 0, &c);
    CHECK(s && s->rec[0].hash != h[0] && s->rec[1].hash == h[1],
          "--type changes only recipes without !type");
    imc_sweep_free(s);
    s = init(IMC_TYPE_Q4_K, 128, &c);
    CHECK(s && s->rec[0].hash != h[0] && s->rec[1].hash != h[1] && s->rec[2].hash != h[2],
          "ctx changes every recipe");
    imc_sweep_free(s);
    write_file("rules/b-mix.rules", "# comment\nattn=q8_0\n  !type q2_k\nffn=q4_1\n");
    s = init(IMC_TYPE_Q4_K, 0, &c);
    CHECK(s && s->rec[1].hash != h[1] && s->rec[0].hash == h[0], "an edit changes that recipe");
    imc_sweep_free(s);
}

// Empties the rules folder, then writes file (when not NULL) into it.
static void reset_rules(const char *file, const char *text)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/rules' && mkdir '%s/rules'", g_dir, g_dir);
    CHECK(system(cmd) == 0, "reset the rules folder");
    if (file) {
        char name[300];
        snprintf(name, sizeof(name), "rules/%s", file);
        write_file(name, text);
    }
}

// A recipe folder holding only the given file must fail with a message containing want.
static void expect_bad(const char *file, const char *text, const char *want)
{
    reset_rules(file, text);
    struct logcap c;
    struct imc_sweep *s = init(IMC_TYPE_Q4_K, 0, &c);
    CHECK(s == NULL && c.n_err >= 1 && strstr(c.text, want), "%s: expected '%s' in: %s",
          file ? file : "(empty)", want, c.text);
    imc_sweep_free(s);
}

static void test_bad_recipes(void)
{
    expect_bad(NULL, NULL, "holds no recipe file");
    expect_bad("r1", "attn=q8_0\n\n!typ q4_0\n", "rules/r1:3: unknown directive '!typ'");
    expect_bad("r2", "!type q4_0\n!type q2_k\n", "rules/r2:2: the directive is given twice");
    expect_bad("r3", "!imatrix maybe\n", "rules/r3:1: expected '!imatrix yes' or");
    expect_bad("r4", "!type q4_0 q2_k\n", "rules/r4:1: expected '!type TYPE'");
    expect_bad("r5", "!type q9_0\n", "rules/r5:1: unknown type 'q9_0'");
    expect_bad("r6", "x=q4_0\ny=q1\n", "rules/r6:2: unknown type 'q1'");
    expect_bad("_r7", "", "must start with a letter or digit");
    expect_bad("r 8", "", "must start with a letter or digit");
    reset_rules("r9.a", "");
    write_file("rules/r9.b", "");
    struct logcap c;
    struct imc_sweep *s = init(IMC_TYPE_Q4_K, 0, &c);
    CHECK(s == NULL && strstr(c.text, "give the same recipe name 'r9'"), "clash: %s", c.text);
    imc_sweep_free(s);
}

static void test_out_dir(void)
{
    reset_rules("ok", "");
    char path[300], cmd[700];
    snprintf(path, sizeof(path), "%s/out", g_dir);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && touch '%s'", path, path); // out is a plain file
    CHECK(system(cmd) == 0, "make out a file");
    struct logcap c;
    struct imc_sweep *s = init(IMC_TYPE_Q4_K, 0, &c);
    CHECK(s == NULL && strstr(c.text, "cannot create output file"), "out dir not usable: %s",
          c.text);
    imc_sweep_free(s);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(g_dir, sizeof(g_dir), "%s/imc_sweep_recipe.XXXXXX", tmp);
    CHECK(mkdtemp(g_dir) != NULL, "temporary folder");
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/rules", g_dir);
    mkdir(sub, 0777);
    write_file("base.gguf", "not read, only stat'ed");
    write_file("text.txt", "some text");
    test_expand();
    test_rules_list();
    test_recipes();
    test_bad_recipes();
    test_out_dir();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", g_dir);
    }
    return check_summary();
}
