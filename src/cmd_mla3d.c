/*
 * imc mla-3d: rewrite an ik-style deepseek2 GGUF (2D attn_k_b/attn_v_b) into the mainline 3D
 * layout — same tensor bytes, new shapes and MLA keys (model/mla3d.h; DESIGN.md §4: the 3D
 * layout gives per-head imatrix data).
 *
 *   imc mla-3d IN OUT [--drop-kv-b] [-q]
 *
 * Exit 0 on success, 1 when the conversion fails (one error line naming the file and cause),
 * 2 on bad usage.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "model/mla3d.h"
#include "src/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: imc mla-3d IN OUT [--drop-kv-b]\n"
               "  IN           deepseek2 GGUF with 2D (ik_llama.cpp) attn_k_b/attn_v_b\n"
               "  OUT          the same model with 3D attn_k_b/attn_v_b and mainline MLA keys\n"
               "  --drop-kv-b  leave attn_kv_b out (mainline llama.cpp loads only k_b/v_b)\n");
}

static int run(int argc, char **argv)
{
    const char *pos[2] = {NULL, NULL};
    int n_pos = 0;
    bool drop = false;
    for (int i = 1; i < argc; i++) {
        int used = imc_cli_log_option(argc, argv, i);
        if (used > 0) {
            i += used - 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--drop-kv-b") == 0) {
            drop = true;
        } else if (argv[i][0] == '-' || n_pos == 2) {
            IMC_LOG_ERR("mla-3d: unexpected argument '%s' (see imc mla-3d --help)", argv[i]);
            return 2;
        } else {
            pos[n_pos++] = argv[i];
        }
    }
    if (n_pos != 2) {
        IMC_LOG_ERR("mla-3d: need IN and OUT");
        usage(stderr);
        return 2;
    }
    return imc_mla3d_convert(pos[0], pos[1], drop) == IMC_OK ? 0 : 1;
}

const struct imc_cli_cmd imc_cmd_mla_3d = {
    .name = "mla-3d",
    .summary = "rewrite a 2D (ik) MLA deepseek2 GGUF into the 3D layout (same bytes)",
    .run = run,
};
