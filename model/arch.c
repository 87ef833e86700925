/*
 * model/arch: dispatch by general.architecture and the key/tensor helpers shared by the
 * per-architecture readers (arch_llama.c, arch_deepseek2.c). DESIGN.md §4, §5.
 */
#include "model/arch.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/arch_priv.h"

static const char *vtype_name(enum imc_gguf_vtype t)
{
    static const char *const names[IMC_GGUF_VTYPE_COUNT] = {"u8",  "i8",  "u16",  "i16",    "u32",
                                                            "i32", "f32", "bool", "string", "array",
                                                            "u64", "i64", "f64"};
    return (unsigned)t < IMC_GGUF_VTYPE_COUNT ? names[t] : "unknown";
}

static void make_key(const struct imc_arch_ld *ld, const char *suffix, char *key, size_t size)
{
    snprintf(key, size, "%s.%s", ld->arch, suffix);
}

// Element j of a scalar integer array (little-endian host, as GGUF); false for non-integer
// element types or a u64 above INT64_MAX.
static bool arr_int_elem(const void *data, enum imc_gguf_vtype t, uint64_t j, int64_t *v)
{
    // bytes per element by type; negative for signed types, 0 for non-integers
    static const int8_t size[IMC_GGUF_VTYPE_COUNT] = {1, -1, 2, -2, 4, -4, 0, 0, 0, 0, 8, -8, 0};
    int s = (unsigned)t < IMC_GGUF_VTYPE_COUNT ? size[t] : 0;
    int n = s < 0 ? -s : s;
    if (n == 0) {
        return false;
    }
    uint64_t u = 0;
    memcpy(&u, (const uint8_t *)data + (uint64_t)n * j, (size_t)n);
    if (s < 0 && n < 8 && ((u >> (8 * n - 1)) & 1)) {
        u |= ~0ull << (8 * n); // sign-extend
    }
    if (s == 8 && u > INT64_MAX) {
        return false;
    }
    *v = (int64_t)u;
    return true;
}

// Per-layer integer array: accepted when every element has the same value.
static enum imc_status get_int_array(const struct imc_arch_ld *ld, const char *key, int64_t i,
                                     int64_t *out)
{
    enum imc_gguf_vtype et = imc_gguf_arr_type(ld->g, i);
    uint64_t n = imc_gguf_arr_n(ld->g, i);
    const void *data = imc_gguf_arr_data(ld->g, i);
    int64_t first = 0;
    if (n == 0 || !data || !arr_int_elem(data, et, 0, &first)) {
        IMC_LOG_ERR("%s: key '%s' is an array of %" PRIu64 " %s, expected an integer", ld->path,
                    key, n, vtype_name(et));
        return IMC_ERR_FORMAT;
    }
    for (uint64_t j = 1; j < n; j++) {
        int64_t v = 0;
        if (!arr_int_elem(data, et, j, &v) || v != first) {
            IMC_LOG_ERR("%s: key '%s' has per-layer values that differ (%" PRId64 " and %" PRId64
                        "); imc supports uniform layers only",
                        ld->path, key, first, v);
            return IMC_ERR_UNSUPPORTED;
        }
    }
    *out = first;
    return IMC_OK;
}

enum imc_status imc_arch_get_int(const struct imc_arch_ld *ld, const char *suffix, bool required,
                                 int64_t def, int64_t lo, int64_t hi, int64_t *out)
{
    char key[192];
    make_key(ld, suffix, key, sizeof(key));
    int64_t i = imc_gguf_find_key(ld->g, key);
    if (i < 0) {
        if (required) {
            IMC_LOG_ERR("%s: missing key '%s'", ld->path, key);
            return IMC_ERR_FORMAT;
        }
        *out = def;
        return IMC_OK;
    }
    int64_t v = 0;
    enum imc_gguf_vtype t = imc_gguf_kv_type(ld->g, i);
    if (t == IMC_GGUF_ARRAY) {
        IMC_TRY(get_int_array(ld, key, i, &v));
    } else if (!imc_gguf_get_i64(ld->g, key, &v)) {
        IMC_LOG_ERR("%s: key '%s' has type %s, expected an integer", ld->path, key, vtype_name(t));
        return IMC_ERR_FORMAT;
    }
    if (v < lo || v > hi) {
        IMC_LOG_ERR("%s: key '%s' = %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                    ld->path, key, v, lo, hi);
        return IMC_ERR_FORMAT;
    }
    *out = v;
    return IMC_OK;
}

enum imc_status imc_arch_get_float(const struct imc_arch_ld *ld, const char *suffix, bool required,
                                   float def, float *out)
{
    char key[192];
    make_key(ld, suffix, key, sizeof(key));
    int64_t i = imc_gguf_find_key(ld->g, key);
    if (i < 0) {
        if (required) {
            IMC_LOG_ERR("%s: missing key '%s'", ld->path, key);
            return IMC_ERR_FORMAT;
        }
        *out = def;
        return IMC_OK;
    }
    float v = 0;
    if (!imc_gguf_get_f32(ld->g, key, &v) || v != v) {
        IMC_LOG_ERR("%s: key '%s' has type %s, expected a finite float", ld->path, key,
                    vtype_name(imc_gguf_kv_type(ld->g, i)));
        return IMC_ERR_FORMAT;
    }
    *out = v;
    return IMC_OK;
}

enum imc_status imc_arch_get_bool(const struct imc_arch_ld *ld, const char *suffix, bool def,
                                  bool *out)
{
    char key[192];
    make_key(ld, suffix, key, sizeof(key));
    int64_t i = imc_gguf_find_key(ld->g, key);
    if (i < 0) {
        *out = def;
        return IMC_OK;
    }
    if (!imc_gguf_get_bool(ld->g, key, out)) {
        IMC_LOG_ERR("%s: key '%s' has type %s, expected bool", ld->path, key,
                    vtype_name(imc_gguf_kv_type(ld->g, i)));
        return IMC_ERR_FORMAT;
    }
    return IMC_OK;
}

static enum imc_status get_rope_scaling_type(const struct imc_arch_ld *ld, bool *present,
                                             enum imc_rope_scaling *out)
{
    char key[192];
    make_key(ld, "rope.scaling.type", key, sizeof(key));
    int64_t i = imc_gguf_find_key(ld->g, key);
    *present = i >= 0;
    if (i < 0) {
        return IMC_OK;
    }
    const char *s = imc_gguf_kv_type(ld->g, i) == IMC_GGUF_STRING ? imc_gguf_str(ld->g, i) : NULL;
    if (!s) {
        IMC_LOG_ERR("%s: key '%s' has type %s, expected string", ld->path, key,
                    vtype_name(imc_gguf_kv_type(ld->g, i)));
        return IMC_ERR_FORMAT;
    }
    if (strcmp(s, "none") == 0) {
        *out = IMC_ROPE_SCALING_NONE;
    } else if (strcmp(s, "linear") == 0) {
        *out = IMC_ROPE_SCALING_LINEAR;
    } else if (strcmp(s, "yarn") == 0) {
        *out = IMC_ROPE_SCALING_YARN;
    } else {
        IMC_LOG_ERR("%s: key '%s' = '%s': rope scaling type not supported (none, linear, yarn)",
                    ld->path, key, s);
        return IMC_ERR_UNSUPPORTED;
    }
    return IMC_OK;
}

enum imc_status imc_arch_get_rope_scaling(const struct imc_arch_ld *ld, struct imc_hparams *hp)
{
    bool has_type = false;
    hp->rope_scaling = IMC_ROPE_SCALING_NONE;
    IMC_TRY(get_rope_scaling_type(ld, &has_type, &hp->rope_scaling));
    float factor = 0;
    IMC_TRY(imc_arch_get_float(ld, "rope.scaling.factor", false, 0.0f, &factor));
    if (factor == 0.0f) { // older files: rope.scale_linear
        IMC_TRY(imc_arch_get_float(ld, "rope.scale_linear", false, 0.0f, &factor));
    }
    if (factor < 0.0f) {
        IMC_LOG_ERR("%s: key '%s.rope.scaling.factor' = %g must be positive", ld->path, ld->arch,
                    (double)factor);
        return IMC_ERR_FORMAT;
    }
    hp->rope_scale_factor = factor == 0.0f ? 1.0f : factor;
    if (!has_type && hp->rope_scale_factor != 1.0f) {
        hp->rope_scaling = IMC_ROPE_SCALING_LINEAR; // llama.cpp's default type
    }
    if (hp->rope_scaling == IMC_ROPE_SCALING_NONE) {
        hp->rope_scale_factor = 1.0f;
    }
    IMC_TRY(imc_arch_get_int(ld, "rope.scaling.original_context_length", false, hp->n_ctx_train, 1,
                             IMC_ARCH_MAX_DIM, &hp->rope_orig_ctx));
    IMC_TRY(
        imc_arch_get_float(ld, "rope.scaling.yarn_log_multiplier", false, 0.0f, &hp->yarn_log_mul));
    IMC_TRY(
        imc_arch_get_float(ld, "rope.scaling.yarn_beta_fast", false, 32.0f, &hp->yarn_beta_fast));
    IMC_TRY(
        imc_arch_get_float(ld, "rope.scaling.yarn_beta_slow", false, 1.0f, &hp->yarn_beta_slow));
    return IMC_OK;
}

bool imc_arch_shape_eq(const struct imc_tensor_info *t, struct imc_arch_shape s)
{
    for (int d = 0; d < IMC_GGUF_MAX_DIMS; d++) {
        int64_t want = d < s.n_dims ? s.ne[d] : 1;
        int64_t have = d < t->n_dims ? t->ne[d] : 1;
        if (want != have) {
            return false;
        }
    }
    return true;
}

const char *imc_arch_shape_str(const int64_t *ne, int n_dims, char *buf, int size)
{
    int off = snprintf(buf, (size_t)size, "[");
    for (int d = 0; d < n_dims && off < size; d++) {
        off += snprintf(buf + off, (size_t)(size - off), "%s%" PRId64, d ? ", " : "", ne[d]);
    }
    if (off < size) {
        snprintf(buf + off, (size_t)(size - off), "]");
    }
    return buf;
}

// Expands the "%d" of a tensor-name pattern with layer il (il < 0: the name as is).
static void tensor_name(const char *name, int il, char *buf, size_t size)
{
    const char *pct = il >= 0 ? strstr(name, "%d") : NULL;
    if (!pct) {
        snprintf(buf, size, "%s", name);
        return;
    }
    snprintf(buf, size, "%.*s%d%s", (int)(pct - name), name, il, pct + 2);
}

const struct imc_tensor_info *imc_arch_find(const struct imc_arch_ld *ld, const char *name, int il)
{
    char buf[128];
    tensor_name(name, il, buf, sizeof(buf));
    return imc_gguf_find_tensor(ld->g, buf);
}

enum imc_status imc_arch_tensor(const struct imc_arch_ld *ld, const char *name, int il,
                                struct imc_arch_shape s, bool required,
                                const struct imc_tensor_info **out)
{
    char buf[128], want[96], have[96];
    tensor_name(name, il, buf, sizeof(buf));
    const struct imc_tensor_info *t = imc_gguf_find_tensor(ld->g, buf);
    *out = NULL;
    if (!t) {
        if (!required) {
            return IMC_OK;
        }
        IMC_LOG_ERR("%s: missing tensor '%s' (%s expects shape %s)", ld->path, buf, ld->arch,
                    imc_arch_shape_str(s.ne, s.n_dims, want, sizeof(want)));
        return IMC_ERR_FORMAT;
    }
    if (!imc_arch_shape_eq(t, s)) {
        IMC_LOG_ERR("%s: tensor '%s': expected shape %s, found %s", ld->path, buf,
                    imc_arch_shape_str(s.ne, s.n_dims, want, sizeof(want)),
                    imc_arch_shape_str(t->ne, t->n_dims, have, sizeof(have)));
        return IMC_ERR_FORMAT;
    }
    *out = t;
    return IMC_OK;
}

enum imc_status imc_arch_ffn_tensors(const struct imc_arch_ld *ld, const struct imc_hparams *hp,
                                     int il, struct imc_layer *l)
{
    IMC_TRY(imc_arch_tensor(ld, "blk.%d.ffn_norm.weight", il, imc_shape1(hp->n_embd), true,
                            &l->ffn_norm));
    return imc_arch_ffn_body(ld, hp, il, l);
}

enum imc_status imc_arch_ffn_body(const struct imc_arch_ld *ld, const struct imc_hparams *hp,
                                  int il, struct imc_layer *l)
{
    const int64_t d = hp->n_embd;
    l->is_moe = hp->n_expert > 0 && il >= hp->n_layer_dense;
    if (!l->is_moe) {
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.ffn_gate.weight", il, imc_shape2(d, hp->n_ff), true,
                                &l->ffn_gate));
        IMC_TRY(imc_arch_tensor(ld, "blk.%d.ffn_up.weight", il, imc_shape2(d, hp->n_ff), true,
                                &l->ffn_up));
        return imc_arch_tensor(ld, "blk.%d.ffn_down.weight", il, imc_shape2(hp->n_ff, d), true,
                               &l->ffn_down);
    }
    const int64_t ne = hp->n_expert, ff = hp->n_ff_exp;
    IMC_TRY(imc_arch_tensor(ld, "blk.%d.ffn_gate_inp.weight", il, imc_shape2(d, ne), true,
                            &l->ffn_gate_inp));
    IMC_TRY(imc_arch_tensor(ld, "blk.%d.ffn_gate_exps.weight", il, imc_shape3(d, ff, ne), true,
                            &l->ffn_gate_exps));
    IMC_TRY(imc_arch_tensor(ld, "blk.%d.ffn_up_exps.weight", il, imc_shape3(d, ff, ne), true,
                            &l->ffn_up_exps));
    IMC_TRY(imc_arch_tensor(ld, "blk.%d.ffn_down_exps.weight", il, imc_shape3(ff, d, ne), true,
                            &l->ffn_down_exps));
    IMC_TRY(imc_arch_tensor(ld, "blk.%d.exp_probs_b.bias", il, imc_shape1(ne), false,
                            &l->ffn_exp_probs_b));
    if (l->ffn_exp_probs_b && l->ffn_exp_probs_b->type != IMC_TYPE_F32) {
        IMC_LOG_ERR("%s: tensor 'blk.%d.exp_probs_b.bias': expected type f32, found %s", ld->path,
                    il, imc_type_name(l->ffn_exp_probs_b->type));
        return IMC_ERR_FORMAT;
    }
    if (hp->n_expert_shared == 0) {
        return IMC_OK;
    }
    const int64_t fs = ff * hp->n_expert_shared;
    IMC_TRY(imc_arch_tensor(ld, "blk.%d.ffn_gate_shexp.weight", il, imc_shape2(d, fs), true,
                            &l->ffn_gate_shexp));
    IMC_TRY(imc_arch_tensor(ld, "blk.%d.ffn_up_shexp.weight", il, imc_shape2(d, fs), true,
                            &l->ffn_up_shexp));
    return imc_arch_tensor(ld, "blk.%d.ffn_down_shexp.weight", il, imc_shape2(fs, d), true,
                           &l->ffn_down_shexp);
}

// token_embd, output_norm, output (tied to token_embd when absent); sets hp->n_vocab.
static enum imc_status global_tensors(const struct imc_arch_ld *ld, struct imc_model *m)
{
    const struct imc_tensor_info *te = imc_gguf_find_tensor(ld->g, "token_embd.weight");
    char have[96];
    if (!te) {
        IMC_LOG_ERR("%s: missing tensor 'token_embd.weight' (expects shape [%" PRId64 ", n_vocab])",
                    ld->path, m->hp.n_embd);
        return IMC_ERR_FORMAT;
    }
    if (te->n_dims > 2 || te->ne[0] != m->hp.n_embd || te->ne[1] < 1) {
        IMC_LOG_ERR("%s: tensor 'token_embd.weight': expected shape [%" PRId64
                    ", n_vocab], found %s",
                    ld->path, m->hp.n_embd, imc_arch_shape_str(te->ne, te->n_dims, have, 96));
        return IMC_ERR_FORMAT;
    }
    m->tok_embd = te;
    m->hp.n_vocab = te->ne[1];
    int64_t kt = imc_gguf_find_key(ld->g, "tokenizer.ggml.tokens");
    if (kt >= 0 && imc_gguf_kv_type(ld->g, kt) == IMC_GGUF_ARRAY &&
        imc_gguf_arr_n(ld->g, kt) != (uint64_t)m->hp.n_vocab) {
        IMC_LOG_ERR("%s: tensor 'token_embd.weight' has %" PRId64
                    " rows but 'tokenizer.ggml.tokens' has %" PRIu64 " tokens",
                    ld->path, m->hp.n_vocab, imc_gguf_arr_n(ld->g, kt));
        return IMC_ERR_FORMAT;
    }
    IMC_TRY(imc_arch_tensor(ld, "output_norm.weight", -1, imc_shape1(m->hp.n_embd), true,
                            &m->output_norm));
    IMC_TRY(imc_arch_tensor(ld, "output.weight", -1, imc_shape2(m->hp.n_embd, m->hp.n_vocab), false,
                            &m->output));
    if (!m->output) {
        m->output = m->tok_embd; // tied embeddings
    }
    return IMC_OK;
}

// The architectures: one row each (its reader is model/arch_<name>.c; the attention and rope
// flags pick the engine's attention block, worker/forward_llama.c or forward_deepseek2.c).
static const struct arch_desc {
    const char *name; // general.architecture
    enum imc_status (*hparams)(const struct imc_arch_ld *ld, struct imc_hparams *hp);
    enum imc_status (*tensors)(const struct imc_arch_ld *ld, struct imc_model *m);
    bool gqa;  // llama's GQA attention (else MLA)
    bool neox; // RoPE pairs (i, i + n_rot/2)
} archs[IMC_ARCH_COUNT] = {
    [IMC_ARCH_LLAMA] = {"llama", imc_arch_llama_hparams, imc_arch_llama_tensors, true, false},
    [IMC_ARCH_DEEPSEEK2] = {"deepseek2", imc_arch_ds2_hparams, imc_arch_ds2_tensors, false, false},
    [IMC_ARCH_QWEN3] = {"qwen3", imc_arch_llama_hparams, imc_arch_qwen3_tensors, true, true},
    [IMC_ARCH_QWEN3MOE] = {"qwen3moe", imc_arch_llama_hparams, imc_arch_qwen3_tensors, true, true},
    [IMC_ARCH_GLM4MOE] = {"glm4moe", imc_arch_glm4moe_hparams, imc_arch_glm4moe_tensors, true,
                          true},
};

static enum imc_status load_arch(const struct imc_arch_ld *ld, struct imc_model *m)
{
    IMC_TRY(archs[m->arch].hparams(ld, &m->hp));
    IMC_TRY(global_tensors(ld, m));
    m->layers = calloc((size_t)m->hp.n_layer, sizeof(*m->layers));
    if (!m->layers) {
        IMC_LOG_ERR("%s: out of memory for %" PRId64 " layers", ld->path, m->hp.n_layer);
        return IMC_ERR_NOMEM;
    }
    return archs[m->arch].tensors(ld, m);
}

enum imc_status imc_model_load(struct imc_model **out, const struct imc_gguf *g)
{
    *out = NULL;
    struct imc_arch_ld ld = {g, imc_gguf_path(g), NULL};
    ld.arch = imc_gguf_get_str(g, "general.architecture");
    if (!ld.arch) {
        IMC_LOG_ERR("%s: missing key 'general.architecture' (string)", ld.path);
        return IMC_ERR_FORMAT;
    }
    enum imc_arch a = IMC_ARCH_COUNT;
    for (int i = 0; i < IMC_ARCH_COUNT; i++) {
        if (strcmp(ld.arch, imc_arch_name((enum imc_arch)i)) == 0) {
            a = (enum imc_arch)i;
        }
    }
    if (a == IMC_ARCH_COUNT) {
        char list[160] = "";
        for (int i = 0; i < IMC_ARCH_COUNT; i++) {
            const size_t n = strlen(list);
            snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", archs[i].name);
        }
        IMC_LOG_ERR("%s: architecture '%s' is not supported (supported: %s)", ld.path, ld.arch,
                    list);
        return IMC_ERR_UNSUPPORTED;
    }
    struct imc_model *m = calloc(1, sizeof(*m));
    if (!m) {
        IMC_LOG_ERR("%s: out of memory", ld.path);
        return IMC_ERR_NOMEM;
    }
    m->gguf = g;
    m->arch = a;
    enum imc_status st = load_arch(&ld, m);
    if (st != IMC_OK) {
        imc_model_free(m);
        return st;
    }
    *out = m;
    return IMC_OK;
}

void imc_model_free(struct imc_model *m)
{
    if (!m) {
        return;
    }
    free(m->layers);
    free(m);
}

const char *imc_arch_name(enum imc_arch a)
{
    return a >= 0 && a < IMC_ARCH_COUNT ? archs[a].name : "unknown";
}

bool imc_arch_is_gqa(enum imc_arch a)
{
    return a >= 0 && a < IMC_ARCH_COUNT && archs[a].gqa;
}

bool imc_arch_rope_neox(enum imc_arch a)
{
    return a >= 0 && a < IMC_ARCH_COUNT && archs[a].neox;
}

const char *imc_mla_layout_name(enum imc_mla_layout l)
{
    switch (l) {
    case IMC_MLA_NONE:
        return "none";
    case IMC_MLA_3D:
        return "3d";
    case IMC_MLA_2D:
        return "2d (ik)";
    case IMC_MLA_KVB:
        return "kv_b only";
    default:
        return "unknown";
    }
}

void imc_layer_matrices(const struct imc_layer *l,
                        const struct imc_tensor_info *out[IMC_LAYER_N_MATRICES])
{
    const struct imc_tensor_info *const t[IMC_LAYER_N_MATRICES] = {l->wq,
                                                                   l->wk,
                                                                   l->wv,
                                                                   l->wq_a,
                                                                   l->wq_b,
                                                                   l->wkv_a_mqa,
                                                                   l->wkv_b,
                                                                   l->wk_b,
                                                                   l->wv_b,
                                                                   l->wo,
                                                                   l->ffn_gate,
                                                                   l->ffn_up,
                                                                   l->ffn_down,
                                                                   l->ffn_gate_inp,
                                                                   l->ffn_gate_exps,
                                                                   l->ffn_up_exps,
                                                                   l->ffn_down_exps,
                                                                   l->ffn_gate_shexp,
                                                                   l->ffn_up_shexp,
                                                                   l->ffn_down_shexp};
    _Static_assert(IMC_LAYER_EXPS == 14, "ffn_gate_exps is at index 14");
    for (int i = 0; i < IMC_LAYER_N_MATRICES; i++) {
        out[i] = t[i];
    }
}

void imc_layer_vectors(const struct imc_layer *l,
                       const struct imc_tensor_info *out[IMC_LAYER_N_VECTORS])
{
    const struct imc_tensor_info *const t[IMC_LAYER_N_VECTORS] = {
        l->attn_norm, l->q_a_norm, l->kv_a_norm, l->ffn_norm, l->ffn_exp_probs_b,
        l->q_norm,    l->k_norm,   l->bq,        l->bk,       l->bv};
    for (int i = 0; i < IMC_LAYER_N_VECTORS; i++) {
        out[i] = t[i];
    }
}
