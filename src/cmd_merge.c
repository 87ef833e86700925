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
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/imatrix_file.h"
#include "src/cli.h"

struct merge_args {
    const char *out;
    const char *weights; // comma-separated, or NULL
    int fmt;             // enum imc_imatrix_format
    int zero;            // enum imc_dat_zero_policy
    int64_t chunk_size;  // 0: IMC_IMATRIX_DEFAULT_CHUNK_SIZE
};

#define OWN(field) IMC_OPT_SLOT(IMC_OPT_OWN, offsetof(struct merge_args, field))

static const struct imc_opt own_opts[] = {
    IMC_OPT("output", 'o', IMC_OPT_STR, OWN(out), "OUT", "the merged imatrix"),
    IMC_OPT("weights", 0, IMC_OPT_STR, OWN(weights), "w1,w2,...",
            "one finite weight >= 0 per input (default: all 1)"),
    IMC_OPT("format", 0, IMC_OPT_ENUM, OWN(fmt), "FMT",
            "auto | gguf | dat | both (default auto: by the extension of OUT)",
            .choices = imc_opt_imatrix_formats),
    IMC_OPT("dat-zero", 0, IMC_OPT_ENUM, OWN(zero), "POLICY",
            ".dat values of experts without tokens: one (default) | skip |\nzero | mean",
            .choices = imc_opt_dat_zero_policies),
    IMC_OPT("chunk-size", 0, IMC_OPT_POS, OWN(chunk_size), "N",
            "chunk size assumed for a .dat input (default 512)"),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {own_opts, imc_opt_group_log, NULL};

static const struct imc_opt_spec spec = {
    .usage = "A [B ...] -o OUT [--weights w1,w2,...] [options]",
    .groups = groups,
    .notes = "Inputs are GGUF or .dat imatrix files; the sums and counts add exactly. One input\n"
             "converts between the forms.",
    .min_pos = 1,
    .max_pos = -1,
    .pos_name = "input files",
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
            IMC_LOG_ERR("merge: option --weights '%s': expected %d comma-separated numbers >= 0", s,
                        n);
            return 2;
        }
        p = end + 1;
    }
    return 0;
}

static int merge_run(int argc, char **argv)
{
    struct merge_args a = {0};
    struct imc_opt_common c;
    char **inputs = NULL;
    int n_inputs = 0;
    int rc = imc_cli_parse(&imc_cmd_merge, argc, argv, &a, &c, NULL, &inputs, &n_inputs);
    if (rc == 0 && !a.out) {
        IMC_LOG_ERR("merge: missing -o OUT (see imc merge --help)");
        rc = 2;
    }
    if (rc == 0 && a.chunk_size > UINT32_MAX) {
        IMC_LOG_ERR("merge: option --chunk-size expects at most %u, got %lld", UINT32_MAX,
                    (long long)a.chunk_size);
        rc = 2;
    }
    double *w = rc == 0 ? calloc((size_t)n_inputs, sizeof(double)) : NULL;
    if (rc == 0 && !w) {
        IMC_LOG_ERR("merge: out of memory");
        rc = 1;
    }
    if (rc == 0 && a.weights) {
        rc = parse_weights(a.weights, w, n_inputs);
    }
    if (rc != 0) {
        free(w);
        return rc < 0 ? 0 : rc;
    }
    struct imc_imatrix im;
    imc_imatrix_init(&im);
    const uint32_t cs = a.chunk_size ? (uint32_t)a.chunk_size : IMC_IMATRIX_DEFAULT_CHUNK_SIZE;
    rc = 1;
    if (imc_imatrix_merge_files(&im, (const char *const *)inputs, a.weights ? w : NULL, n_inputs,
                                cs) == IMC_OK &&
        imc_imatrix_write(&im, a.out, (enum imc_imatrix_format)a.fmt,
                          (enum imc_dat_zero_policy)a.zero) == IMC_OK) {
        printf("merged %d file(s): %lld entries, %u chunks, %lld dataset(s) -> %s\n", n_inputs,
               (long long)im.n_entries, im.chunk_count, (long long)im.n_datasets, a.out);
        rc = 0;
    }
    imc_imatrix_free(&im);
    free(w);
    return rc;
}

const struct imc_cli_cmd imc_cmd_merge = {
    .name = "merge",
    .summary = "add imatrix files (GGUF or .dat, optional weights) into one; converts forms",
    .opts = &spec,
    .run = merge_run,
};
