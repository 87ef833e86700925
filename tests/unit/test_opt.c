/*
 * tests/unit/test_opt: the table-driven option parser (src/opt.h) and every command's table.
 * Forms: --opt value, --opt=value, -o value, -ovalue, long-name prefixes, aliases, "--" ending
 * the options, options after positional arguments. Each kind of value with its bounds; the one
 * wording of each error (missing value, bad value, unknown choice, given twice, unknown option,
 * an option of another command, positional counts), each exactly one error line and exit 2.
 * Every real command: no name or short name used twice, every option in its generated help,
 * help lines within 100 columns, and the choice lists in the order of the enums they index.
 */
#include <stddef.h>
#include <string.h>

#include "model/imatrix_file.h"
#include "src/cli.h"
#include "src/opt.h"
#include "tests/check.h"
#include "tests/logcap.h"
#include "worker/engine.h"

struct own {
    bool flag;
    const char *str;
    int64_t count; // UINT
    int64_t pos;   // POS
    double x;      // FLOAT
    int color;     // ENUM
    const char *triple[3];
    int n_item;
};

static int take_triple(const char *cmd, const char *opt, char **v, void *slot)
{
    (void)cmd;
    (void)opt;
    struct own *o = slot;
    for (int i = 0; i < 3; i++) {
        o->triple[i] = v[i];
    }
    return 0;
}

static int count_item(const char *cmd, const char *opt, char **v, void *slot)
{
    if (strcmp(v[0], "bad") == 0) {
        IMC_LOG_ERR("%s: option --%s: bad item", cmd, opt);
        return 2;
    }
    ((struct own *)slot)->n_item++;
    return 0;
}

static const char *const colors[] = {"red", "green", "blue", NULL};

#define OWN(f) IMC_OPT_SLOT(IMC_OPT_OWN, offsetof(struct own, f))

static const struct imc_opt own_opts[] = {
    IMC_OPT("flag", 'F', IMC_OPT_FLAG, OWN(flag), NULL, "a flag"),
    IMC_OPT("str", 's', IMC_OPT_STR, OWN(str), "S", "text"),
    IMC_OPT("count", 0, IMC_OPT_UINT, OWN(count), "N", ">= 0"),
    IMC_OPT("positive", 'p', IMC_OPT_POS, OWN(pos), "N", ">= 1", .alias = "pos-alias"),
    IMC_OPT("x", 0, IMC_OPT_FLOAT, OWN(x), "X", "a number"),
    IMC_OPT("color", 0, IMC_OPT_ENUM, OWN(color), "C", "a color", .choices = colors),
    IMC_OPT("triple", 0, IMC_OPT_FN, IMC_OPT_SLOT(IMC_OPT_OWN, 0), "A B C", "three values",
            .fn = take_triple, .n_values = 3),
    IMC_OPT("item", 0, IMC_OPT_FN, IMC_OPT_SLOT(IMC_OPT_OWN, 0), "I", "repeatable",
            .fn = count_item, .repeat = true),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {imc_opt_group_model, imc_opt_group_chunks, own_opts,
                                               imc_opt_group_log, NULL};

static const struct imc_opt_spec spec = {
    .usage = "-m MODEL [options] [A [B]]",
    .groups = groups,
    .min_pos = 0,
    .max_pos = 2,
    .pos_name = "A B",
};

struct result {
    int rc;
    struct own o;
    struct imc_opt_common c;
    char *pos[8];
    int n_pos;
    struct logcap log;
};

// Parses the words of line (space-separated; no quoting) as "test <line>".
static void parse_line(const char *line, struct result *r)
{
    static char buf[512];
    char *argv[32];
    int argc = 0;
    snprintf(buf, sizeof(buf), "test %s", line);
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " ")) {
        argv[argc++] = t;
    }
    argv[argc] = NULL;
    memset(r, 0, sizeof(*r));
    char **pos = NULL;
    const enum imc_log_level level = imc_log_get_level();
    logcap_start(&r->log);
    r->rc = imc_opt_parse("test", &spec, argc, argv, &r->o, &r->c, NULL, &pos, &r->n_pos);
    logcap_stop();
    imc_log_set_level(level);
    for (int i = 0; r->rc == 0 && i < r->n_pos && i < 8; i++) {
        r->pos[i] = pos[i];
    }
}

static void test_forms(void)
{
    struct result r;
    parse_line("-m a.gguf --ctx=64 --chunks 3 -F -s hello --count 0 -p7 --x=2.5 --color blue", &r);
    CHECK(r.rc == 0 && r.log.n_err == 0, "rc %d: %s", r.rc, r.log.text);
    CHECK(r.c.model && strcmp(r.c.model, "a.gguf") == 0, "-m");
    CHECK(r.c.n_ctx == 64 && r.c.max_chunks == 3, "--ctx=64 --chunks 3: %lld %lld",
          (long long)r.c.n_ctx, (long long)r.c.max_chunks);
    CHECK(r.o.flag && r.o.str && strcmp(r.o.str, "hello") == 0, "-F -s");
    CHECK(r.o.count == 0 && r.o.pos == 7 && r.o.x == 2.5 && r.o.color == 2, "values");
    parse_line("-c 32 --pos-alias 3 --chu 5 --mod m", &r); // alias, unique prefixes
    CHECK(r.rc == 0 && r.c.n_ctx == 32 && r.o.pos == 3 && r.c.max_chunks == 5 && r.c.model &&
              strcmp(r.c.model, "m") == 0,
          "alias and prefixes: rc %d %s", r.rc, r.log.text);
    parse_line("--ctx-size 16", &r);
    CHECK(r.rc == 0 && r.c.n_ctx == 16, "--ctx-size alias");
    parse_line("one --flag two", &r); // options after positional arguments
    CHECK(r.rc == 0 && r.n_pos == 2 && strcmp(r.pos[0], "one") == 0 &&
              strcmp(r.pos[1], "two") == 0 && r.o.flag,
          "mixed positional: rc %d n %d", r.rc, r.n_pos);
    parse_line("-- --flag -x", &r); // "--" ends the options
    CHECK(r.rc == 0 && r.n_pos == 2 && strcmp(r.pos[0], "--flag") == 0 && !r.o.flag,
          "-- ends options: rc %d n %d", r.rc, r.n_pos);
    parse_line("--triple a b c --item i --item j", &r);
    CHECK(r.rc == 0 && r.o.triple[2] && strcmp(r.o.triple[0], "a") == 0 &&
              strcmp(r.o.triple[2], "c") == 0 && r.o.n_item == 2,
          "three values, repeatable: rc %d %s", r.rc, r.log.text);
    parse_line("-h", &r);
    CHECK(r.rc == -1 && r.c.help, "-h returns -1");
    parse_line("-q -F -F", &r);
    CHECK(r.rc == 0 && r.c.quiet, "flags may repeat");
}

// line must fail with exit 2, exactly one error line containing want.
static void expect_error(const char *line, const char *want)
{
    struct result r;
    parse_line(line, &r);
    CHECK(r.rc == 2 && r.log.n_err == 1 && strstr(r.log.text, want) != NULL,
          "'%s': rc %d, %d error line(s) '%s', expected '%s'", line, r.rc, r.log.n_err, r.log.text,
          want);
}

static void test_errors(void)
{
    expect_error("--ctx", "test: option --ctx needs a value");
    expect_error("-c", "test: option --ctx needs a value");
    expect_error("--ctx 0", "test: option --ctx expects a positive integer, got '0'");
    expect_error("--ctx=12x", "test: option --ctx expects a positive integer, got '12x'");
    expect_error("--ctx 99999999999999999999", "expects a positive integer");
    expect_error("--count -1", "test: option --count expects a non-negative integer, got '-1'");
    expect_error("--x inf", "test: option --x expects a number, got 'inf'");
    expect_error("--x nan", "expects a number");
    expect_error("--color pink",
                 "test: option --color expects one of red, green, blue, got 'pink'");
    expect_error("--ctx 1 --ctx 2", "test: option --ctx given twice");
    expect_error("-c 1 --ctx-size 2", "test: option --ctx given twice");
    expect_error("--bogus", "test: unknown option '--bogus' (see imc test --help)");
    expect_error("--bogus=3", "test: unknown option '--bogus=3'");
    expect_error("-Z", "test: unknown option '-Z'");
    expect_error("--stats x", "test: --stats is not an option of test (it is one of imatrix)");
    expect_error("--rules-dir=d",
                 "test: --rules-dir is not an option of test (it is one of sweep)");
    expect_error("--triple a b", "test: option --triple needs A B C");
    expect_error("--item bad", "test: option --item: bad item");
    expect_error("--log-level loud", "test: option --log-level expects one of error, warn");
    expect_error("a b c", "test: too many arguments: 3 given, A B takes 2");
    expect_error("--flag=1", "test: option --flag takes no value");
    expect_error("--c 3", "test: option --c is ambiguous (--ctx, --chunks, --count, --color)");
}

struct names {
    const char *seen[96];
    int n;
    int dup;
};

static void note_name(const char *name, void *user)
{
    struct names *n = user;
    for (int i = 0; i < n->n; i++) {
        if (strcmp(n->seen[i], name) == 0) {
            n->dup++;
            printf("  duplicate option name --%s\n", name);
        }
    }
    if (n->n < 96) {
        n->seen[n->n++] = name;
    }
}

// Every option row of spec s, with the help text of command name.
static void check_command(const char *name, const struct imc_opt_spec *s)
{
    struct names nm = {.n = 0};
    imc_opt_each_name(s, note_name, &nm);
    CHECK(nm.dup == 0 && nm.n > 0, "%s: %d duplicate long names", name, nm.dup);
    char shorts[128] = {0};
    char *help = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&help, &len);
    imc_opt_help(name, s, f);
    fclose(f);
    for (const struct imc_opt *const *g = s->groups; *g; g++) {
        for (const struct imc_opt *o = *g; o->name; o++) {
            if (o->short_name) {
                CHECK(!shorts[(unsigned char)o->short_name], "%s: -%c used twice", name,
                      o->short_name);
                shorts[(unsigned char)o->short_name] = 1;
            }
            char want[80];
            snprintf(want, sizeof(want), "--%s", o->name);
            CHECK(strstr(help, want) != NULL, "%s: %s missing from the help", name, want);
            CHECK(o->help && *o->help, "%s: --%s has no help", name, o->name);
            CHECK((o->kind == IMC_OPT_ENUM) == (o->choices != NULL) &&
                      (o->kind == IMC_OPT_FN) == (o->fn != NULL) &&
                      (o->kind == IMC_OPT_FLAG) == (o->arg == NULL),
                  "%s: --%s: kind, choices, fn and arg disagree", name, o->name);
        }
    }
    char usage[64];
    snprintf(usage, sizeof(usage), "usage: imc %s ", name);
    CHECK(strncmp(help, usage, strlen(usage)) == 0, "%s: help starts '%.40s'", name, help);
    int col = 0, widest = 0;
    for (const char *p = help; *p; p++) {
        col = *p == '\n' ? 0 : col + 1;
        widest = col > widest ? col : widest;
    }
    CHECK(widest <= 100, "%s: help line of %d columns", name, widest);
    free(help);
}

static void test_commands(void)
{
    size_t n = 0;
    const struct imc_cli_cmd *const *all = imc_cli_commands(&n);
    CHECK(n >= 10, "%zu commands", n);
    for (size_t i = 0; i < n; i++) {
        CHECK(all[i]->opts != NULL && all[i]->run != NULL, "%s: no option table", all[i]->name);
        if (all[i]->opts) {
            check_command(all[i]->name, all[i]->opts);
        }
    }
}

// The choice lists index enums: each name must map back to its index.
static void test_choice_order(void)
{
    for (int i = 0; imc_opt_attn_names[i]; i++) {
        CHECK(strcmp(imc_attn_path_name((enum imc_attn_path)i), imc_opt_attn_names[i]) == 0,
              "--attn choice %d '%s'", i, imc_opt_attn_names[i]);
    }
    for (int i = 0; imc_opt_imatrix_formats[i]; i++) {
        CHECK(imc_imatrix_parse_format(imc_opt_imatrix_formats[i]) == i, "--format choice %d '%s'",
              i, imc_opt_imatrix_formats[i]);
    }
    for (int i = 0; imc_opt_dat_zero_policies[i]; i++) {
        CHECK(imc_imatrix_parse_zero_policy(imc_opt_dat_zero_policies[i]) == i,
              "--dat-zero choice %d '%s'", i, imc_opt_dat_zero_policies[i]);
    }
}

int main(void)
{
    test_forms();
    test_errors();
    test_commands();
    test_choice_order();
    return check_summary();
}
