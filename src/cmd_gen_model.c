/*
 * imc gen-model: writes a deterministic synthetic GGUF model from a preset (model/synth.h).
 *
 *   imc gen-model --preset NAME -o OUT [--type TYPE] [--seed N] [-t N] [--text FILE | --no-text]
 *   imc gen-model --list
 *
 * The tokenizer's merges are learned from the bundled calibration text
 * (data/text/calibration.txt), found through --text, $IMC_SOURCE_DIR, the executable's location
 * (../data, ../../data) or the source tree this binary was built from.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
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
    int64_t seed;
    int64_t threads;
    bool no_text;
    bool list;
};

#define OWN(field) IMC_OPT_SLOT(IMC_OPT_OWN, offsetof(struct gen_args, field))

static const struct imc_opt own_opts[] = {
    IMC_OPT("preset", 0, IMC_OPT_STR, OWN(preset), "NAME",
            "the model to write (--list shows them)"),
    IMC_OPT("output", 'o', IMC_OPT_STR, OWN(out), "OUT", "the GGUF file to write"),
    IMC_OPT("type", 0, IMC_OPT_STR, OWN(type), "TYPE",
            "matmul weight type (f32, f16, bf16, q8_0, q4_k, ...); rows that\ndo not fit the "
            "block fall "
            "back to a 32-block type or f16"),
    IMC_OPT("seed", 0, IMC_OPT_UINT, OWN(seed), "N", "weights' random seed (default 0)"),
    IMC_OPT("threads", 't', IMC_OPT_UINT, OWN(threads), "N",
            "threads quantizing the weights (default 0: the online CPUs);\nthe bytes do not "
            "depend on it"),
    IMC_OPT("text", 0, IMC_OPT_STR, OWN(text), "FILE",
            "BPE training text (default: the bundled " TEXT_REL ")"),
    IMC_OPT("no-text", 0, IMC_OPT_FLAG, OWN(no_text), NULL,
            "byte-level vocabulary only (no merges)"),
    IMC_OPT("list", 0, IMC_OPT_FLAG, OWN(list), NULL, "list the presets"),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {own_opts, imc_opt_group_log, NULL};

static const struct imc_opt_spec spec = {
    .usage = "--preset NAME -o OUT [--type TYPE] [--seed N] [-t N] [--text FILE | --no-text]\n"
             "--list",
    .groups = groups,
    .notes = "The same preset, type and seed give the same bytes.",
};

// Returns 0 to run, 2 on a bad argument (logged), -1 after printing help.
static int parse(int argc, char **argv, struct gen_args *a)
{
    struct imc_opt_common c;
    char **pos = NULL;
    int n_pos = 0;
    int rc = imc_cli_parse(&imc_cmd_gen_model, argc, argv, a, &c, NULL, &pos, &n_pos);
    if (rc != 0 || a->list) {
        return rc;
    }
    struct imc_synth_cfg cfg;
    if (!a->preset || !a->out) {
        IMC_LOG_ERR("gen-model: --preset NAME and -o OUT are required (--list shows presets)");
        return 2;
    }
    if (imc_synth_preset(&cfg, a->preset) != IMC_OK) {
        return 2; // logged
    }
    if (a->type && imc_type_from_name(a->type) < 0) {
        IMC_LOG_ERR("gen-model: option --type: unknown weight type '%s'", a->type);
        return 2;
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
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    cfg.n_threads = a->threads > 0 ? (int)(a->threads < 256 ? a->threads : 256)
                                   : (int)(online > 0 ? online : 1);
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
        printf("wrote %s: preset %s, %s, weights %s, seed %lld\n", a->out, a->preset,
               imc_arch_name(cfg.arch), imc_type_name(cfg.wtype), (long long)a->seed);
    }
    return st;
}

static int gen_model_run(int argc, char **argv)
{
    struct gen_args a = {0};
    int pr = parse(argc, argv, &a);
    if (pr != 0) {
        return pr < 0 ? 0 : pr;
    }
    if (a.list) {
        list_presets();
        return 0;
    }
    return run_gen(&a) == IMC_OK ? 0 : 1;
}

const struct imc_cli_cmd imc_cmd_gen_model = {
    .name = "gen-model",
    .summary = "write a deterministic synthetic GGUF model (presets: --list)",
    .opts = &spec,
    .run = gen_model_run,
};
