/*
 * src/opt: the table-driven option parser (src/opt.h) and the shared option groups.
 */
#include "src/opt.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "src/cli.h"

#define OPT_MAX 96   // options of one command, aliases included
#define HELP_COL 26  // column of the help text
#define OPT_VAL0 256 // getopt_long value of row 0 (above every short option)

#define COMMON(field) IMC_OPT_SLOT(IMC_OPT_COMMON, offsetof(struct imc_opt_common, field))

const char *const imc_opt_attn_names[] = {"auto", "absorbed", "non-absorbed", NULL};
const char *const imc_opt_matmul_names[] = {"q8", "f32", NULL};
const char *const imc_opt_device_names[] = {"auto", "cpu", "cuda", NULL};
const char *const imc_opt_experts_on_names[] = {"gpu", "cpu", NULL};
const char *const imc_opt_exchange_names[] = {"auto", "host", NULL};
const char *const imc_opt_imatrix_formats[] = {"auto", "gguf", "dat", "both", NULL};
const char *const imc_opt_dat_zero_policies[] = {"one", "skip", "zero", "mean", NULL};

static int parse_log_level(const char *cmd, const char *opt, char **values, void *slot)
{
    const int l = imc_log_parse_level(values[0]);
    if (l < 0) {
        IMC_LOG_ERR("%s: option --%s expects one of error, warn, info, debug, got '%s'", cmd, opt,
                    values[0]);
        return 2;
    }
    *(int *)slot = l + 1;
    return 0;
}

static int parse_layout(const char *cmd, const char *opt, char **values, void *slot)
{
    (void)cmd;
    (void)opt;
    return imc_layout_parse(values[0], slot) == IMC_OK ? 0 : 2;
}

const struct imc_opt imc_opt_group_model[] = {
    IMC_OPT("model", 'm', IMC_OPT_STR, COMMON(model), "MODEL", "GGUF model"),
    IMC_OPT_END,
};

const struct imc_opt imc_opt_group_text[] = {
    IMC_OPT("file", 'f', IMC_OPT_STR, COMMON(text), "TEXT",
            "text file (calibration or evaluation text)"),
    IMC_OPT_END,
};

const struct imc_opt imc_opt_group_chunks[] = {
    IMC_OPT("ctx", 'c', IMC_OPT_POS, COMMON(n_ctx), "N",
            "tokens per chunk (default 512, or n_ctx_train if smaller)", .alias = "ctx-size"),
    IMC_OPT("chunks", 0, IMC_OPT_POS, COMMON(max_chunks), "N",
            "use at most N chunks (default: all)"),
    IMC_OPT_END,
};

const struct imc_opt imc_opt_group_batch[] = {
    IMC_OPT("batch", 'b', IMC_OPT_POS, COMMON(n_batch), "N",
            "tokens per engine call; batch >= 2*ctx runs batch/ctx chunks per call\n"
            "(default 2048; results do not depend on it)",
            .alias = "batch-size"),
    IMC_OPT_END,
};

// -t N, -t 0 or -t auto (0: automatic).
// A whole decimal integer >= min in v (no sign tricks, no trailing text, no overflow).
static bool int_at_least(const char *v, long long min, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    const long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < min) {
        return false;
    }
    *out = (int64_t)x;
    return true;
}

static int parse_threads(const char *cmd, const char *opt, char **values, void *slot)
{
    const char *v = values[0];
    if (strcmp(v, "auto") == 0) {
        *(int64_t *)slot = 0;
        return 0;
    }
    if (!int_at_least(v, 0, slot)) {
        IMC_LOG_ERR("%s: option --%s expects a non-negative integer or auto, got '%s'", cmd, opt,
                    v);
        return 2;
    }
    return 0;
}

const struct imc_opt imc_opt_group_threads[] = {
    IMC_OPT("threads", 't', IMC_OPT_FN, COMMON(threads), "N",
            "compute threads per rank; 0 or auto (default): the physical cores\n"
            "of the rank's share of the host, within its CPU affinity; results\n"
            "do not depend on it",
            .fn = parse_threads),
    IMC_OPT("threads-per-core", 0, IMC_OPT_POS, COMMON(threads_per_core), "K",
            "with the automatic -t: K threads per core where a core has K\n"
            "hardware threads (default 1)"),
    IMC_OPT_END,
};

const struct imc_opt imc_opt_group_layout[] = {
    IMC_OPT("layout", 0, IMC_OPT_FN, COMMON(layout), "pp=A,ep=B,dp=C",
            "MPI job layout: pipeline stages x expert shards x replicas,\n"
            "product = ranks (default: automatic, as imc plan MODEL --ranks N\n"
            "prints it)",
            .fn = parse_layout),
    IMC_OPT_END,
};

const struct imc_opt imc_opt_group_attn[] = {
    IMC_OPT("attn", 0, IMC_OPT_ENUM, COMMON(attn), "PATH",
            "deepseek2 attention path: auto, absorbed or non-absorbed",
            .choices = imc_opt_attn_names),
    IMC_OPT_END,
};

const struct imc_opt imc_opt_group_matmul[] = {
    IMC_OPT("matmul", 0, IMC_OPT_ENUM, COMMON(matmul), "MODE",
            "quantized weights: q8 (default) quantizes the activations to\n"
            "8 bits per block (of 32, or 256 for K types) and multiplies\n"
            "q8_0, q4_0, iq4_nl, q2_k..q6_k and iq4_xs weights as integers,\n"
            "as llama.cpp does on the CPU (other types as f32); f32\n"
            "dequantizes every type and multiplies in f32 (exact); on a\n"
            "GPU q8 multiplies batches in bf16 on the tensor cores",
            .choices = imc_opt_matmul_names),
    IMC_OPT_END,
};

const struct imc_opt imc_opt_group_device[] = {
    IMC_OPT("device", 0, IMC_OPT_ENUM, COMMON(device), "DEV",
            "where each rank computes: cpu, or cuda (kernels on its GPU,\n"
            "the weights of its slice resident in device memory); default\n"
            "auto: cuda when this build has CUDA and a GPU is visible, else cpu",
            .choices = imc_opt_device_names),
    IMC_OPT("experts-on", 0, IMC_OPT_ENUM, COMMON(experts_on), "WHERE",
            "with cuda: gpu (default), or cpu: the routed experts' matmuls\n"
            "on the CPU (this rank's threads), attention, dense layers and\n"
            "shared experts on the GPU; the experts' weights never go to\n"
            "the device. With --device cpu: accepted, no effect",
            .choices = imc_opt_experts_on_names),
    IMC_OPT("exchange", 0, IMC_OPT_ENUM, COMMON(exchange), "HOW",
            "how expert shards move routed rows and pipeline stages hidden\n"
            "rows (--layout ep=B / pp=A > 1): auto (default): GPU to GPU with\n"
            "NCCL when every rank of the group has them on its own GPU, else\n"
            "through the host and MPI; host: always through the host and MPI.\n"
            "Same results either way",
            .choices = imc_opt_exchange_names),
    IMC_OPT_END,
};

const struct imc_opt imc_opt_group_log[] = {
    IMC_OPT("quiet", 'q', IMC_OPT_FLAG, COMMON(quiet), NULL,
            "no progress lines; warnings and errors only"),
    IMC_OPT("verbose", 'v', IMC_OPT_FLAG, COMMON(verbose), NULL, "debug messages too"),
    IMC_OPT("log-level", 0, IMC_OPT_FN, COMMON(log_level), "LEVEL", "error, warn, info or debug",
            .fn = parse_log_level),
    IMC_OPT("help", 'h', IMC_OPT_FLAG, COMMON(help), NULL, "this help"),
    IMC_OPT_END,
};

// The rows of a spec, flattened: rows[i] is getopt value OPT_VAL0 + i.
struct table {
    const struct imc_opt *rows[OPT_MAX];
    int n;
};

static void flatten(const struct imc_opt_spec *s, struct table *t)
{
    t->n = 0;
    for (const struct imc_opt *const *g = s->groups; *g; g++) {
        for (const struct imc_opt *o = *g; o->name; o++) {
            if (t->n < OPT_MAX) {
                t->rows[t->n++] = o;
            }
        }
    }
}

static void *slot_of(const struct imc_opt *o, void *own, struct imc_opt_common *common)
{
    return (char *)(o->base == IMC_OPT_COMMON ? (void *)common : own) + o->off;
}

static int parse_int(const char *cmd, const struct imc_opt *o, const char *v, int64_t *out)
{
    const int64_t min = o->kind == IMC_OPT_POS ? 1 : 0;
    if (!int_at_least(v, min, out)) {
        IMC_LOG_ERR("%s: option --%s expects %s integer, got '%s'", cmd, o->name,
                    min == 1 ? "a positive" : "a non-negative", v);
        return 2;
    }
    return 0;
}

static int parse_enum(const char *cmd, const struct imc_opt *o, const char *v, void *slot)
{
    for (int i = 0; o->choices[i]; i++) {
        if (strcmp(v, o->choices[i]) == 0) {
            *(int *)slot = i;
            return 0;
        }
    }
    char list[256] = "";
    for (int i = 0; o->choices[i]; i++) {
        strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
        strncat(list, o->choices[i], sizeof(list) - strlen(list) - 1);
    }
    IMC_LOG_ERR("%s: option --%s expects one of %s, got '%s'", cmd, o->name, list, v);
    return 2;
}

// Stores the value(s) of row o; values[0] is optarg, further ones follow in argv at *optind_p.
static int store(const char *cmd, const struct imc_opt *o, int argc, char **argv, int *optind_p,
                 void *slot)
{
    double d;
    char *end = NULL;
    switch (o->kind) {
    case IMC_OPT_FLAG:
        *(bool *)slot = true;
        return 0;
    case IMC_OPT_STR:
        *(const char **)slot = optarg;
        return 0;
    case IMC_OPT_UINT:
    case IMC_OPT_POS:
        return parse_int(cmd, o, optarg, slot);
    case IMC_OPT_FLOAT:
        errno = 0;
        d = strtod(optarg, &end);
        if (errno != 0 || end == optarg || *end != '\0' || !isfinite(d)) {
            IMC_LOG_ERR("%s: option --%s expects a number, got '%s'", cmd, o->name, optarg);
            return 2;
        }
        *(double *)slot = d;
        return 0;
    case IMC_OPT_ENUM:
        return parse_enum(cmd, o, optarg, slot);
    case IMC_OPT_FN:
        break;
    }
    const int extra = (o->n_values > 1 ? o->n_values : 1) - 1;
    char *values[8] = {optarg};
    if (extra > 7 || *optind_p + extra > argc) {
        IMC_LOG_ERR("%s: option --%s needs %s", cmd, o->name, o->arg);
        return 2;
    }
    for (int k = 0; k < extra; k++) {
        values[1 + k] = argv[(*optind_p)++];
    }
    return o->fn(cmd, o->name, values, slot);
}

struct owner_search {
    const char *name; // the option, without dashes
    bool found;
};

static void match_name(const char *name, void *user)
{
    struct owner_search *w = user;
    w->found |= strcmp(name, w->name) == 0;
}

// The first other command (by imc --help order) that has long option name, or NULL.
static const char *owner_of(const char *cmd, const char *name)
{
    size_t n = 0;
    const struct imc_cli_cmd *const *all = imc_cli_commands(&n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i]->name, cmd) == 0 || !all[i]->opts) {
            continue;
        }
        struct owner_search w = {name, false};
        imc_opt_each_name(all[i]->opts, match_name, &w);
        if (w.found) {
            return all[i]->name;
        }
    }
    return NULL;
}

// Long names of t that start with prefix, written to list ("--a, --b"); returns their count.
static int prefix_matches(const struct table *t, const char *prefix, char *list, size_t size)
{
    int n = 0;
    list[0] = '\0';
    for (int i = 0; i < t->n; i++) {
        if (strncmp(t->rows[i]->name, prefix, strlen(prefix)) == 0) {
            size_t len = strlen(list);
            snprintf(list + len, size - len, "%s--%s", n++ ? ", " : "", t->rows[i]->name);
        }
    }
    return n;
}

// Logs an unknown option; arg is the argument as given ("--foo=1", "-x").
static void unknown(const char *cmd, const struct table *t, const char *arg, int short_opt)
{
    char name[64], list[256];
    if (short_opt) {
        IMC_LOG_ERR("%s: unknown option '-%c' (see imc %s --help)", cmd, short_opt, cmd);
        return;
    }
    const char *s = arg && strncmp(arg, "--", 2) == 0 ? arg + 2 : arg ? arg : "";
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(s, "="), s);
    const char *other = NULL;
    if (*name && prefix_matches(t, name, list, sizeof(list)) > 1) {
        IMC_LOG_ERR("%s: option --%s is ambiguous (%s)", cmd, name, list);
    } else if ((other = owner_of(cmd, name)) != NULL) {
        IMC_LOG_ERR("%s: --%s is not an option of %s (it is one of %s)", cmd, name, cmd, other);
    } else {
        IMC_LOG_ERR("%s: unknown option '%s' (see imc %s --help)", cmd, arg ? arg : "?", cmd);
    }
}

// getopt_long's tables for t: long options (rows and aliases) and the short option string.
static void getopt_tables(const struct table *t, struct option *lo, char *so)
{
    int k = 0, j = 0;
    so[j++] = ':'; // ':' for a missing value, '?' for an unknown option
    for (int i = 0; i < t->n; i++) {
        const struct imc_opt *o = t->rows[i];
        const int has_arg = o->kind == IMC_OPT_FLAG ? no_argument : required_argument;
        lo[k++] = (struct option){o->name, has_arg, NULL, OPT_VAL0 + i};
        if (o->alias) {
            lo[k++] = (struct option){o->alias, has_arg, NULL, OPT_VAL0 + i};
        }
        if (o->short_name) {
            so[j++] = o->short_name;
            if (has_arg == required_argument) {
                so[j++] = ':';
            }
        }
    }
    lo[k] = (struct option){NULL, 0, NULL, 0};
    so[j] = '\0';
}

static int row_of_short(const struct table *t, int c)
{
    for (int i = 0; i < t->n; i++) {
        if (t->rows[i]->short_name == c) {
            return i;
        }
    }
    return -1;
}

// Applies the log options of common to the log level.
static void apply_log(const struct imc_opt_common *c)
{
    if (c->quiet) {
        imc_log_set_level(IMC_LOG_WARN);
    }
    if (c->verbose) {
        imc_log_set_level(IMC_LOG_DEBUG);
    }
    if (c->log_level > 0) {
        imc_log_set_level((enum imc_log_level)(c->log_level - 1));
    }
}

// The option at argv[optind - 1] for a missing value: its row's long name.
static void missing_value(const char *cmd, const struct table *t, int c, const char *arg)
{
    const int r = c ? row_of_short(t, c) : -1;
    if (r >= 0) {
        IMC_LOG_ERR("%s: option --%s needs a value", cmd, t->rows[r]->name);
    } else {
        IMC_LOG_ERR("%s: option %.*s needs a value", cmd, (int)strcspn(arg ? arg : "?", "="),
                    arg ? arg : "?");
    }
}

static int check_positional(const char *cmd, const struct imc_opt_spec *s, int n)
{
    if (n < s->min_pos) {
        IMC_LOG_ERR("%s: missing %s (see imc %s --help)", cmd,
                    s->pos_name ? s->pos_name : "arguments", cmd);
        return 2;
    }
    if (s->max_pos >= 0 && n > s->max_pos) {
        IMC_LOG_ERR("%s: too many arguments: %d given, %s takes %d (see imc %s --help)", cmd, n,
                    s->pos_name ? s->pos_name : "the command", s->max_pos, cmd);
        return 2;
    }
    return 0;
}

int imc_opt_parse(const char *cmd, const struct imc_opt_spec *s, int argc, char **argv, void *own,
                  struct imc_opt_common *common, FILE *help_out, char ***pos, int *n_pos)
{
    struct table t;
    struct option lo[2 * OPT_MAX + 1];
    char so[3 * OPT_MAX + 2];
    int seen[OPT_MAX] = {0};
    *common = (struct imc_opt_common){0};
    flatten(s, &t);
    getopt_tables(&t, lo, so);
    opterr = 0;
    optind = 0; // glibc: a full reset before the next scan
    for (;;) {
        int li = -1;
        const int c = getopt_long(argc, argv, so, lo, &li);
        if (c == -1) {
            break;
        }
        if (c == '?' && optopt >= OPT_VAL0 && optopt < OPT_VAL0 + t.n) { // "--flag=x"
            IMC_LOG_ERR("%s: option --%s takes no value", cmd, t.rows[optopt - OPT_VAL0]->name);
            return 2;
        }
        if (c == '?') {
            unknown(cmd, &t, argv[optind - 1], optopt);
            return 2;
        }
        if (c == ':') {
            missing_value(cmd, &t, optopt, argv[optind - 1]);
            return 2;
        }
        const int r = c >= OPT_VAL0 ? c - OPT_VAL0 : row_of_short(&t, c);
        const struct imc_opt *o = t.rows[r];
        if (seen[r]++ && !o->repeat && o->kind != IMC_OPT_FLAG) {
            IMC_LOG_ERR("%s: option --%s given twice", cmd, o->name);
            return 2;
        }
        if (store(cmd, o, argc, argv, &optind, slot_of(o, own, common)) != 0) {
            return 2;
        }
    }
    apply_log(common);
    if (common->help) {
        if (help_out) {
            imc_opt_help(cmd, s, help_out);
        }
        return -1;
    }
    *pos = argv + optind;
    *n_pos = argc - optind;
    return check_positional(cmd, s, *n_pos);
}

// One help line: "  -m, --model MODEL" or "      --chunks N" padded to HELP_COL, then the
// help text, its continuation lines indented to HELP_COL.
static void help_row(const struct imc_opt *o, FILE *f)
{
    char head[96];
    int n = snprintf(head, sizeof(head), "  %c%c%c --%s%s%s", o->short_name ? '-' : ' ',
                     o->short_name ? o->short_name : ' ', o->short_name ? ',' : ' ', o->name,
                     o->arg ? " " : "", o->arg ? o->arg : "");
    fputs(head, f);
    if (n >= HELP_COL - 1) {
        fprintf(f, "\n%*s", HELP_COL, "");
    } else {
        fprintf(f, "%*s", HELP_COL - n, "");
    }
    for (const char *p = o->help ? o->help : ""; *p; p++) {
        fputc(*p, f);
        if (*p == '\n') {
            fprintf(f, "%*s", HELP_COL, "");
        }
    }
    fputc('\n', f);
}

void imc_opt_help(const char *cmd, const struct imc_opt_spec *s, FILE *f)
{
    const char *u = s->usage;
    const char *lead = "usage:";
    while (u && *u) {
        const size_t len = strcspn(u, "\n");
        fprintf(f, "%s imc %s %.*s\n", lead, cmd, (int)len, u);
        lead = "      ";
        u += len + (u[len] == '\n');
    }
    for (const struct imc_opt *const *g = s->groups; *g; g++) {
        for (const struct imc_opt *o = *g; o->name; o++) {
            help_row(o, f);
        }
    }
    if (s->notes) {
        fprintf(f, "%s\n", s->notes);
    }
}

void imc_opt_each_name(const struct imc_opt_spec *s, void (*fn)(const char *name, void *user),
                       void *user)
{
    for (const struct imc_opt *const *g = s->groups; *g; g++) {
        for (const struct imc_opt *o = *g; o->name; o++) {
            fn(o->name, user);
            if (o->alias) {
                fn(o->alias, user);
            }
        }
    }
}
