/*
 * imc gen-model: writes a deterministic synthetic GGUF model from a preset (model/synth.h).
 *
 *   imc gen-model --preset NAME -o OUT [--type TYPE] [--seed N] [--text FILE | --no-text]
 *   imc gen-model --list
 *
 * The tokenizer's merges are learned from the bundled calibration text
 * (data/text/calibration.txt), found through --text, $IMC_SOURCE_DIR, the executable's location
 * (../data, ../../data) or the source tree this binary was built from.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/file.h"
#include "core/log.h"
#include "model/synth.h"
#include "src/cli.h"

#define TEXT_REL "data/text/calibration.txt"

struct gen_args {
    const char *preset;
    const char *out;
    const char *type;
    const char *text;
    long seed;
    bool no_text;
    bool list;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: imc gen-model --preset NAME -o OUT [--type TYPE] [--seed N]\n"
               "                     [--text FILE | --no-text]\n"
               "       imc gen-model --list\n"
               "  --type TYPE  matmul weight type (f32, f16, bf16, q8_0, q4_k, ...); rows that\n"
               "               do not fit the block fall back to a 32-block type or f16\n"
               "  --text FILE  BPE training text (default: the bundled %s)\n"
               "  --no-text    byte-level vocabulary only (no merges)\n",
            TEXT_REL);
}

// Option taking a value: returns the slot it fills, or NULL when o is not one.
static const char **value_slot(struct gen_args *a, const char *o)
{
    if (strcmp(o, "--preset") == 0) {
        return &a->preset;
    }
    if (strcmp(o, "-o") == 0 || strcmp(o, "--output") == 0) {
        return &a->out;
    }
    if (strcmp(o, "--type") == 0) {
        return &a->type;
    }
    if (strcmp(o, "--text") == 0) {
        return &a->text;
    }
    return NULL;
}

// Returns 0 to run, 1 on a bad argument (logged), -1 after printing help.
static int parse(int argc, char **argv, struct gen_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char **slot = value_slot(a, o);
        int used = imc_cli_log_option(argc, argv, i);
        if (used > 0) {
            i += used - 1;
        } else if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(o, "--list") == 0) {
            a->list = true;
        } else if (strcmp(o, "--no-text") == 0) {
            a->no_text = true;
        } else if (slot || strcmp(o, "--seed") == 0) {
            if (imc_cli_need_value("gen-model", argc, argv, i)) {
                return 1;
            }
            const char *v = argv[++i];
            if (slot) {
                *slot = v;
            } else if ((a->seed = imc_cli_parse_long("gen-model", o, v)) < 0) {
                return 1;
            }
        } else {
            IMC_LOG_ERR("gen-model: unknown argument '%s' (see imc gen-model --help)", o);
            return 1;
        }
    }
    return 0;
}

// Finds the bundled calibration text; returns a path in buf or NULL.
static const char *find_text(char *buf, size_t size)
{
    const char *src = getenv("IMC_SOURCE_DIR");
    if (src && *src) {
        snprintf(buf, size, "%s/%s", src, TEXT_REL);
        if (access(buf, R_OK) == 0) {
            return buf;
        }
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
        }
        static const char *const up[] = {"..", "../..", "."};
        for (size_t i = 0; i < sizeof(up) / sizeof(up[0]); i++) {
            snprintf(buf, size, "%s/%s/%s", exe, up[i], TEXT_REL);
            if (access(buf, R_OK) == 0) {
                return buf;
            }
        }
    }
    // The source tree this file was compiled from (CMake passes absolute source paths).
    const char *file = __FILE__, *tail = strstr(file, "src/cmd_gen_model.c");
    if (tail && tail > file) {
        snprintf(buf, size, "%.*s%s", (int)(tail - file), file, TEXT_REL);
        if (access(buf, R_OK) == 0) {
            return buf;
        }
    }
    return NULL;
}

static void list_presets(void)
{
    for (int i = 0; i < imc_synth_n_presets(); i++) {
        printf("%-16s %s\n", imc_synth_preset_name(i), imc_synth_preset_desc(i));
    }
}

static enum imc_status run_gen(const struct gen_args *a)
{
    struct imc_synth_cfg cfg;
    IMC_TRY(imc_synth_preset(&cfg, a->preset));
    cfg.seed = (uint64_t)a->seed;
    if (a->type) {
        int t = imc_type_from_name(a->type);
        if (t < 0) {
            IMC_LOG_ERR("gen-model: unknown weight type '%s'", a->type);
            return IMC_ERR_ARG;
        }
        cfg.wtype = (enum imc_type)t;
    }
    char path[PATH_MAX + 64];
    const char *text_path = a->no_text ? NULL : a->text ? a->text : find_text(path, sizeof(path));
    if (!a->no_text && !text_path) {
        IMC_LOG_ERR("gen-model: bundled text %s not found; pass --text FILE or --no-text",
                    TEXT_REL);
        return IMC_ERR_IO;
    }
    char *text = NULL;
    size_t len = 0;
    if (text_path) {
        IMC_TRY(imc_file_read_all(text_path, &text, &len));
    }
    cfg.text = text;
    cfg.text_len = len;
    enum imc_status st = imc_synth_write(&cfg, a->out);
    free(text);
    if (st == IMC_OK) {
        printf("wrote %s: preset %s, %s, weights %s, seed %ld\n", a->out, a->preset,
               imc_arch_name(cfg.arch), imc_type_name(cfg.wtype), a->seed);
    }
    return st;
}

static int gen_model_run(int argc, char **argv)
{
    struct gen_args a = {0};
    int pr = parse(argc, argv, &a);
    if (pr != 0) {
        return pr < 0 ? 0 : 1;
    }
    if (a.list) {
        list_presets();
        return 0;
    }
    if (!a.preset || !a.out) {
        IMC_LOG_ERR("gen-model: --preset NAME and -o OUT are required (--list shows presets)");
        return 1;
    }
    return run_gen(&a) == IMC_OK ? 0 : 1;
}

const struct imc_cli_cmd imc_cmd_gen_model = {
    .name = "gen-model",
    .summary = "write a deterministic synthetic GGUF model (presets: --list)",
    .run = gen_model_run,
};
