/*
 * imc merge: adds imatrix files (GGUF or legacy .dat, mixed) into one (DESIGN.md §3, §4).
 *
 *   imc merge A [B ...] -o OUT [--weights w1,w2,...] [--format auto|gguf|dat|both]
 *             [--dat-zero one|skip|zero|mean] [--chunk-size N]
 *
 * Sums and counts add exactly (in double), each file's scaled by its weight; chunk counts add;
 * datasets are concatenated; entries present in only some files are kept. One input converts
 * between forms. --format auto picks by OUT's extension (.dat → dat, else GGUF); both writes
 * OUT without its .gguf/.dat extension plus ".gguf" and ".dat". --dat-zero sets how the .dat
 * form fills experts that saw no token (default one: llama.cpp's 1.0). --chunk-size is the
 * chunk size assumed for .dat inputs, which do not record it (default 512).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/imatrix_file.h"
#include "src/cli.h"

#define USAGE                                                                                      \
    "usage: imc merge A [B ...] -o OUT [--weights w1,w2,...] [--format auto|gguf|dat|both]\n"      \
    "                 [--dat-zero one|skip|zero|mean] [--chunk-size N]\n"

struct merge_args {
    const char **inputs; // [n_inputs] borrowed from argv
    int n_inputs;
    const char *out;
    const char *weights; // comma-separated, or NULL
    enum imc_imatrix_format fmt;
    enum imc_dat_zero_policy zero;
    long chunk_size;
};

// Parses n comma-separated finite weights >= 0 into w.
static int parse_weights(const char *s, double *w, int n)
{
    const char *p = s;
    for (int i = 0; i < n; i++) {
        char *end = NULL;
        errno = 0;
        w[i] = strtod(p, &end);
        bool last = i == n - 1;
        if (end == p || errno != 0 || !isfinite(w[i]) || w[i] < 0.0 ||
            *end != (last ? '\0' : ',')) {
            IMC_LOG_ERR("merge: --weights '%s': expected %d comma-separated numbers >= 0", s, n);
            return 1;
        }
        p = end + 1;
    }
    return 0;
}

// Handles one option at argv[i]; returns the arguments consumed, or -1 on error.
static int parse_option(struct merge_args *a, int argc, char **argv, int i)
{
    const char *o = argv[i];
    bool with_value = strcmp(o, "-o") == 0 || strcmp(o, "--output") == 0 ||
                      strcmp(o, "--weights") == 0 || strcmp(o, "--format") == 0 ||
                      strcmp(o, "--dat-zero") == 0 || strcmp(o, "--chunk-size") == 0;
    if (!with_value) {
        IMC_LOG_ERR("merge: unknown option '%s'\n%s", o, USAGE);
        return -1;
    }
    if (imc_cli_need_value("merge", argc, argv, i)) {
        return -1;
    }
    const char *v = argv[i + 1];
    int k = 0;
    if (strcmp(o, "--format") == 0) {
        k = imc_imatrix_parse_format(v);
        a->fmt = (enum imc_imatrix_format)k;
    } else if (strcmp(o, "--dat-zero") == 0) {
        k = imc_imatrix_parse_zero_policy(v);
        a->zero = (enum imc_dat_zero_policy)k;
    } else if (strcmp(o, "--chunk-size") == 0) {
        a->chunk_size = imc_cli_parse_long("merge", o, v);
        if (a->chunk_size < 0) {
            return -1; // logged
        }
        k = a->chunk_size > 0 && a->chunk_size <= UINT32_MAX ? 0 : -1;
    } else if (strcmp(o, "--weights") == 0) {
        a->weights = v;
    } else {
        a->out = v;
    }
    if (k < 0) {
        IMC_LOG_ERR("merge: bad value '%s' for %s\n%s", v, o, USAGE);
        return -1;
    }
    return 2;
}

static int parse_args(struct merge_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc;) {
        int used = imc_cli_log_option(argc, argv, i);
        if (used == 0 && argv[i][0] == '-' && argv[i][1] != '\0') {
            used = parse_option(a, argc, argv, i);
        } else if (used == 0) {
            a->inputs[a->n_inputs++] = argv[i];
            used = 1;
        }
        if (used < 0) {
            return 1;
        }
        i += used;
    }
    if (a->n_inputs < 1 || !a->out) {
        IMC_LOG_ERR("merge: need at least one input and -o OUT\n%s", USAGE);
        return 1;
    }
    return 0;
}

static int merge_run(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("%s", USAGE);
            return 0;
        }
    }
    struct merge_args a = {.inputs = calloc((size_t)argc, sizeof(char *)),
                           .chunk_size = IMC_IMATRIX_DEFAULT_CHUNK_SIZE};
    double *w = calloc((size_t)argc, sizeof(double));
    int rc = 1;
    struct imc_imatrix im;
    imc_imatrix_init(&im);
    if (!a.inputs || !w) {
        IMC_LOG_ERR("merge: out of memory");
    } else if (parse_args(&a, argc, argv) == 0 &&
               (!a.weights || parse_weights(a.weights, w, a.n_inputs) == 0) &&
               imc_imatrix_merge_files(&im, a.inputs, a.weights ? w : NULL, a.n_inputs,
                                       (uint32_t)a.chunk_size) == IMC_OK &&
               imc_imatrix_write(&im, a.out, a.fmt, a.zero) == IMC_OK) {
        printf("merged %d file(s): %lld entries, %u chunks, %lld dataset(s) -> %s\n", a.n_inputs,
               (long long)im.n_entries, im.chunk_count, (long long)im.n_datasets, a.out);
        rc = 0;
    }
    imc_imatrix_free(&im);
    free(w);
    free(a.inputs);
    return rc;
}

const struct imc_cli_cmd imc_cmd_merge = {
    .name = "merge",
    .summary = "add imatrix files (GGUF or .dat, optional weights) into one; converts forms",
    .run = merge_run,
};
