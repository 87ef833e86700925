/*
 * imc info: what a GGUF file holds and what an imatrix run will collect from it (DESIGN.md §3,
 * §4 "What each tensor gets").
 *
 *   imc info MODEL [--process-output]
 *
 * Prints the file, metadata and tokenizer summary; for a model also the hyper-parameters, the
 * MLA layout and the attention paths it allows, the tensor table with totals, and the imatrix
 * targets with their number of values. A vocab-only file (no tensors) gets the summary and a
 * note, exit 0. A file that cannot be read or described: one error line, exit 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "src/cli.h"

static const char *shape_str(const struct imc_tensor_info *t, char *buf, size_t size)
{
    int off = snprintf(buf, size, "[");
    for (int d = 0; d < t->n_dims && off > 0 && (size_t)off < size; d++) {
        off += snprintf(buf + off, size - (size_t)off, "%s%" PRId64, d ? ", " : "", t->ne[d]);
    }
    if (off > 0 && (size_t)off < size) {
        snprintf(buf + off, size - (size_t)off, "]");
    }
    return buf;
}

static void print_file(const struct imc_gguf *g)
{
    const char *arch = imc_gguf_get_str(g, "general.architecture");
    const char *name = imc_gguf_get_str(g, "general.name");
    printf("file:          %s\n", imc_gguf_path(g));
    printf("format:        GGUF v%" PRIu32 ", %d split(s), %" PRIu64 " bytes, alignment %" PRIu32
           "\n",
           imc_gguf_version(g), imc_gguf_n_splits(g), imc_gguf_file_size(g), imc_gguf_alignment(g));
    printf("architecture:  %s\n", arch ? arch : "(none)");
    if (name) {
        printf("name:          %s\n", name);
    }
    printf("metadata:      %" PRId64 " keys, %" PRId64 " tensors\n", imc_gguf_n_kv(g),
           imc_gguf_n_tensors(g));
}

static void print_special(const struct imc_gguf *g, const char *what, const char *key)
{
    uint32_t id = 0;
    if (!imc_gguf_get_u32(g, key, &id)) {
        return;
    }
    int64_t kt = imc_gguf_find_key(g, "tokenizer.ggml.tokens");
    const char *s = NULL;
    if (kt >= 0 && imc_gguf_kv_type(g, kt) == IMC_GGUF_ARRAY &&
        imc_gguf_arr_type(g, kt) == IMC_GGUF_STRING && id < imc_gguf_arr_n(g, kt)) {
        s = imc_gguf_arr_str(g, kt, id, NULL);
    }
    printf("  %-4s %" PRIu32 " '%s'\n", what, id, s ? s : "?");
}

static void print_token_types(const struct imc_gguf *g)
{
    int64_t k = imc_gguf_find_key(g, "tokenizer.ggml.token_type");
    if (k < 0 || imc_gguf_kv_type(g, k) != IMC_GGUF_ARRAY ||
        imc_gguf_arr_type(g, k) != IMC_GGUF_INT32) {
        return;
    }
    static const char *const names[] = {"undefined",    "normal", "unknown", "control",
                                        "user-defined", "unused", "byte"};
    uint64_t counts[7] = {0}, other = 0, n = imc_gguf_arr_n(g, k);
    const uint8_t *data = imc_gguf_arr_data(g, k);
    for (uint64_t j = 0; data && j < n; j++) {
        int32_t t;
        memcpy(&t, data + 4 * j, 4);
        if (t >= 0 && t < 7) {
            counts[t]++;
        } else {
            other++;
        }
    }
    printf("  types");
    for (int t = 0; t < 7; t++) {
        if (counts[t]) {
            printf(" %s %" PRIu64 ",", names[t], counts[t]);
        }
    }
    printf(" other %" PRIu64 "\n", other);
}

static void print_tokenizer(const struct imc_gguf *g)
{
    const char *model = imc_gguf_get_str(g, "tokenizer.ggml.model");
    if (!model) {
        printf("tokenizer:     (none)\n");
        return;
    }
    const char *pre = imc_gguf_get_str(g, "tokenizer.ggml.pre");
    int64_t kt = imc_gguf_find_key(g, "tokenizer.ggml.tokens");
    int64_t km = imc_gguf_find_key(g, "tokenizer.ggml.merges");
    bool add_bos = false,
         has_add_bos = imc_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos);
    printf("tokenizer:     model %s, pre %s, %" PRIu64 " tokens, %" PRIu64 " merges%s\n", model,
           pre ? pre : "(none)",
           kt >= 0 && imc_gguf_kv_type(g, kt) == IMC_GGUF_ARRAY ? imc_gguf_arr_n(g, kt) : 0,
           km >= 0 && imc_gguf_kv_type(g, km) == IMC_GGUF_ARRAY ? imc_gguf_arr_n(g, km) : 0,
           has_add_bos ? (add_bos ? ", adds BOS" : ", no BOS") : "");
    print_token_types(g);
    print_special(g, "bos", "tokenizer.ggml.bos_token_id");
    print_special(g, "eos", "tokenizer.ggml.eos_token_id");
    print_special(g, "unk", "tokenizer.ggml.unknown_token_id");
    print_special(g, "pad", "tokenizer.ggml.padding_token_id");
}

static void print_hparams(const struct imc_model *m)
{
    const struct imc_hparams *h = &m->hp;
    printf("hyper-parameters:\n");
    printf("  n_vocab %" PRId64 ", n_ctx_train %" PRId64 ", n_embd %" PRId64 ", n_layer %" PRId64
           ", n_ff %" PRId64 "\n",
           h->n_vocab, h->n_ctx_train, h->n_embd, h->n_layer, h->n_ff);
    printf("  n_head %" PRId64 ", n_head_kv %" PRId64 ", head_dim %" PRId64 ", n_rot %" PRId64
           ", rms_eps %g, rope_freq_base %g\n",
           h->n_head, h->n_head_kv, h->head_dim, h->n_rot, (double)h->rms_eps,
           (double)h->rope_freq_base);
    static const char *const scal[] = {"none", "linear", "yarn"};
    printf("  rope scaling %s", scal[h->rope_scaling]);
    if (h->rope_scaling != IMC_ROPE_SCALING_NONE) {
        printf(": factor %g, original ctx %" PRId64 ", yarn_log_multiplier %g",
               (double)h->rope_scale_factor, h->rope_orig_ctx, (double)h->yarn_log_mul);
    }
    printf("\n");
    if (h->n_layer_nextn > 0) {
        printf("  NextN layers %" PRId64 " (blk.%" PRId64 "..%" PRId64
               "): multi-token prediction, not run; no imatrix entries\n",
               h->n_layer_nextn, h->n_layer, h->n_layer + h->n_layer_nextn - 1);
    }
    if (m->arch == IMC_ARCH_DEEPSEEK2) {
        printf("  MLA: q_lora %" PRId64 "%s, kv_lora %" PRId64 ", qk_nope %" PRId64
               ", qk_rope %" PRId64 ", v_head %" PRId64 "\n",
               h->q_lora, h->q_lora ? "" : " (plain attn_q)", h->kv_lora, h->qk_nope, h->qk_rope,
               h->v_head);
    }
    if (h->n_expert == 0) {
        return;
    }
    printf("  MoE: %" PRId64 " experts, %" PRId64 " used, %" PRId64 " shared, n_ff_exp %" PRId64
           ", leading dense layers %" PRId64 "\n",
           h->n_expert, h->n_expert_used, h->n_expert_shared, h->n_ff_exp, h->n_layer_dense);
    printf("  routing: %s, weights %s, scale %g",
           h->gating == IMC_GATING_SIGMOID ? "sigmoid" : "softmax",
           h->expert_weights_norm ? "normalized" : "not normalized",
           (double)h->expert_weights_scale);
    if (h->n_group > 1) {
        printf(", groups %" PRId64 " (%" PRId64 " used)", h->n_group, h->n_group_used);
    }
    printf("\n");
}

static void print_mla(const struct imc_model *m)
{
    if (m->arch != IMC_ARCH_DEEPSEEK2) {
        return;
    }
    printf("MLA layout:    %s%s\n", imc_mla_layout_name(m->mla),
           m->has_kv_b ? ", with attn_kv_b" : "");
    printf("  absorbed path (attn_k_b/attn_v_b):     %s\n",
           m->has_k_b ? "possible" : "not possible (no attn_k_b/attn_v_b)");
    printf("  non-absorbed path (attn_kv_b):          %s\n",
           m->has_kv_b ? "possible" : "not possible (no attn_kv_b)");
}

struct totals {
    uint64_t bytes[IMC_TYPE_MAX_ID];
    int64_t count[IMC_TYPE_MAX_ID];
    uint64_t params;
};

static void print_tensors(const struct imc_gguf *g)
{
    struct totals t;
    memset(&t, 0, sizeof(t));
    printf("tensors:\n  %-36s %-7s %-22s %14s\n", "name", "type", "shape", "bytes");
    for (int64_t i = 0; i < imc_gguf_n_tensors(g); i++) {
        const struct imc_tensor_info *ti = imc_gguf_tensor(g, i);
        char sh[96];
        printf("  %-36s %-7s %-22s %14" PRIu64 "\n", ti->name, imc_type_name(ti->type),
               shape_str(ti, sh, sizeof(sh)), ti->nbytes);
        uint64_t n = 1;
        for (int d = 0; d < ti->n_dims; d++) {
            n *= (uint64_t)ti->ne[d];
        }
        t.params += n;
        if ((unsigned)ti->type < IMC_TYPE_MAX_ID) {
            t.bytes[ti->type] += ti->nbytes;
            t.count[ti->type]++;
        }
    }
    uint64_t total = 0;
    for (int k = 0; k < IMC_TYPE_MAX_ID; k++) {
        total += t.bytes[k];
    }
    printf("totals:        %" PRId64 " tensors, %" PRIu64 " parameters, %" PRIu64
           " bytes (%.2f MiB)\n",
           imc_gguf_n_tensors(g), t.params, total, (double)total / (1024.0 * 1024.0));
    for (int k = 0; k < IMC_TYPE_MAX_ID; k++) {
        if (t.count[k]) {
            printf("  %-7s %5" PRId64 " tensors %14" PRIu64 " bytes\n", imc_type_name((uint32_t)k),
                   t.count[k], t.bytes[k]);
        }
    }
}

// ---- imatrix targets (DESIGN.md §4) -------------------------------------------------------------

struct targets {
    int64_t n;     // entries
    uint64_t vals; // values over all entries
};

static void target(struct targets *tg, const struct imc_tensor_info *t, int64_t per_row,
                   int64_t n_mat, const char *note)
{
    if (!t) {
        return;
    }
    printf("  %-36s %6" PRId64 " x %-5" PRId64 " = %9" PRId64 "%s%s\n", t->name, per_row, n_mat,
           per_row * n_mat, note ? "  " : "", note ? note : "");
    tg->n++;
    tg->vals += (uint64_t)(per_row * n_mat);
}

static void dense(struct targets *tg, const struct imc_tensor_info *t)
{
    if (t) {
        target(tg, t, t->ne[0], 1, NULL);
    }
}

static void layer_targets(struct targets *tg, const struct imc_model *m, const struct imc_layer *l)
{
    const struct imc_hparams *h = &m->hp;
    dense(tg, l->wq);
    dense(tg, l->wk);
    dense(tg, l->wv);
    dense(tg, l->wq_a);
    dense(tg, l->wq_b);
    dense(tg, l->wkv_a_mqa);
    if (l->wkv_b) {
        target(tg, l->wkv_b, h->kv_lora, 1, "from the normalized latent c");
    }
    if (m->mla == IMC_MLA_3D) {
        target(tg, l->wk_b, h->qk_nope, h->n_head, "per head, from q_nope");
        target(tg, l->wv_b, h->kv_lora, h->n_head, "per head, from the weighted latent");
    } else if (m->mla == IMC_MLA_2D) {
        const char *note = "heads summed; `imc mla-3d` gives per-head data";
        target(tg, l->wk_b, l->wk_b->ne[0], 1, note);
        target(tg, l->wv_b, l->wv_b->ne[0], 1, note);
    }
    dense(tg, l->wo);
    dense(tg, l->ffn_gate);
    dense(tg, l->ffn_up);
    dense(tg, l->ffn_down);
    dense(tg, l->ffn_gate_inp);
    if (l->ffn_gate_exps) {
        const char *note = "one count per expert";
        target(tg, l->ffn_gate_exps, l->ffn_gate_exps->ne[0], h->n_expert, note);
        target(tg, l->ffn_up_exps, l->ffn_up_exps->ne[0], h->n_expert, note);
        target(tg, l->ffn_down_exps, l->ffn_down_exps->ne[0], h->n_expert, note);
    }
    dense(tg, l->ffn_gate_shexp);
    dense(tg, l->ffn_up_shexp);
    dense(tg, l->ffn_down_shexp);
}

static void print_targets(const struct imc_model *m, bool process_output)
{
    struct targets tg = {0, 0};
    printf("imatrix targets (n_per_row x n_mat = values):\n");
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        layer_targets(&tg, m, &m->layers[il]);
    }
    if (m->output == m->tok_embd) {
        printf("  (output tied to token_embd.weight: not collected)\n");
    } else if (process_output) {
        target(&tg, m->output, m->output->ne[0], 1, "--process-output");
    } else {
        printf("  (output.weight skipped; --process-output includes it)\n");
    }
    printf("  total: %" PRId64 " entries, %" PRIu64 " values\n", tg.n, tg.vals);
}

struct info_args {
    bool process_output; // --process-output
};

static const struct imc_opt own_opts[] = {
    IMC_OPT("process-output", 0, IMC_OPT_FLAG,
            IMC_OPT_SLOT(IMC_OPT_OWN, offsetof(struct info_args, process_output)), NULL,
            "list output.weight among the imatrix targets"),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {own_opts, imc_opt_group_log, NULL};

static const struct imc_opt_spec spec = {
    .usage = "MODEL [--process-output]",
    .groups = groups,
    .notes = "MODEL: a GGUF model, or a vocab-only GGUF (tokenizer only).",
    .min_pos = 1,
    .max_pos = 1,
    .pos_name = "MODEL",
};

static int info_run(int argc, char **argv)
{
    struct info_args a = {false};
    struct imc_opt_common c;
    char **pos = NULL;
    int n_pos = 0;
    int pr = imc_cli_parse(&imc_cmd_info, argc, argv, &a, &c, NULL, &pos, &n_pos);
    if (pr != 0) {
        return pr < 0 ? 0 : pr;
    }
    const char *path = pos[0];
    const bool process_output = a.process_output;
    struct imc_gguf *g = NULL;
    if (imc_gguf_open(&g, path) != IMC_OK) {
        return 1;
    }
    struct imc_model *m = NULL;
    int rc = 0;
    if (imc_gguf_n_tensors(g) > 0 && imc_model_load(&m, g) != IMC_OK) {
        rc = 1;
    } else {
        print_file(g);
        print_tokenizer(g);
        if (!m) {
            printf("weights:       none (vocab-only file): nothing to compute\n");
        } else {
            print_hparams(m);
            print_mla(m);
            print_tensors(g);
            print_targets(m, process_output);
        }
    }
    imc_model_free(m);
    imc_gguf_free(g);
    return rc;
}

const struct imc_cli_cmd imc_cmd_info = {
    .name = "info",
    .summary = "tensors, sizes, architecture, MLA layout and imatrix targets of a GGUF file",
    .opts = &spec,
    .run = info_run,
};
