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
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "model/mla3d.h"
#include "src/cli.h"

struct mla3d_args {
    bool drop; // --drop-kv-b
};

static const struct imc_opt own_opts[] = {
    IMC_OPT("drop-kv-b", 0, IMC_OPT_FLAG,
            IMC_OPT_SLOT(IMC_OPT_OWN, offsetof(struct mla3d_args, drop)), NULL,
            "leave attn_kv_b out (mainline llama.cpp loads only k_b/v_b)"),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {own_opts, imc_opt_group_log, NULL};

static const struct imc_opt_spec spec = {
    .usage = "IN OUT [--drop-kv-b]",
    .groups = groups,
    .notes = "IN: a deepseek2 GGUF with 2D (ik_llama.cpp) attn_k_b/attn_v_b; OUT: the same model\n"
             "with 3D attn_k_b/attn_v_b and mainline MLA keys (same tensor bytes).",
    .min_pos = 2,
    .max_pos = 2,
    .pos_name = "IN and OUT",
};

static int run(int argc, char **argv)
{
    struct mla3d_args a = {false};
    struct imc_opt_common c;
    char **pos = NULL;
    int n_pos = 0;
    int rc = imc_cli_parse(&imc_cmd_mla_3d, argc, argv, &a, &c, NULL, &pos, &n_pos);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    return imc_mla3d_convert(pos[0], pos[1], a.drop) == IMC_OK ? 0 : 1;
}

const struct imc_cli_cmd imc_cmd_mla_3d = {
    .name = "mla-3d",
    .summary = "rewrite a 2D (ik) MLA deepseek2 GGUF into the 3D layout (same bytes)",
    .opts = &spec,
    .run = run,
};
