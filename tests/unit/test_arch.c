/*
 * tests/unit/test_arch: model/arch (hyper-parameters, tensors, MLA layout detection, errors)
 * on models from model/synth, and the generator's own contracts (determinism, the kv_b ->
 * k_b/v_b split, weight types, vocabulary). DESIGN.md §4, §5.
 *
 * Expected values are the presets' specification (n_embd 64, ...) and llama.cpp facts (GPT-2
 * byte tokens, shapes), not values computed by the code under test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/file.h"
#include "core/log.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "model/synth.h"
#include "tests/check.h"

// ---- helpers ------------------------------------------------------------------------------------

struct logcap {
    char text[4096]; // error lines, '\n'-separated
    int n_err;       // error lines seen
};

static void cap_sink(enum imc_log_level level, const char *line, void *user)
{
    struct logcap *c = user;
    if (level != IMC_LOG_ERROR) {
        return;
    }
    size_t n = strlen(c->text);
    snprintf(c->text + n, sizeof(c->text) - n, "%s\n", line);
    c->n_err++;
}

static void cap_start(struct logcap *c)
{
    memset(c, 0, sizeof(*c));
    imc_log_set_sink(cap_sink, c);
}

static void cap_stop(void)
{
    imc_log_set_sink(NULL, NULL);
}

struct env {
    char dir[256];  // temp dir
    char *text;     // bundled calibration text or NULL
    size_t text_len;
};

static const char *tmp_path(const struct env *e, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", e->dir, name);
    return buf;
}

static enum imc_status gen(const struct env *e, const char *preset, enum imc_type wtype,
                           uint64_t seed, const char *path)
{
    struct imc_synth_cfg cfg;
    IMC_TRY(imc_synth_preset(&cfg, preset));
    cfg.text = e->text;
    cfg.text_len = e->text_len;
    cfg.seed = seed;
    if ((int)wtype >= 0) {
        cfg.wtype = wtype;
    }
    return imc_synth_write(&cfg, path);
}

// Opens and loads path; returns the load status (model and reader in *m / *g on success).
static enum imc_status load(const char *path, struct imc_gguf **g, struct imc_model **m)
{
    *g = NULL;
    *m = NULL;
    IMC_TRY(imc_gguf_open(g, path));
    enum imc_status st = imc_model_load(m, *g);
    if (st != IMC_OK) {
        imc_gguf_free(*g);
        *g = NULL;
    }
    return st;
}

static void unload(struct imc_gguf *g, struct imc_model *m)
{
    imc_model_free(m);
    imc_gguf_free(g);
}

static bool files_equal(const char *a, const char *b)
{
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    bool eq = imc_file_read_all(a, &x, &nx) == IMC_OK && imc_file_read_all(b, &y, &ny) == IMC_OK &&
              nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return eq;
}

// ---- presets load with the specified hyper-parameters and layouts ----------------------------

static void check_llama(const struct env *e)
{
    char p[320];
    struct imc_gguf *g;
    struct imc_model *m;
    CHECK(gen(e, "llama-tiny", (enum imc_type)-1, 0, tmp_path(e, "llama.gguf", p, sizeof(p))) ==
              IMC_OK,
          "generate llama-tiny");
    CHECK(load(p, &g, &m) == IMC_OK, "load llama-tiny");
    if (!m) {
        return;
    }
    const struct imc_hparams *h = &m->hp;
    CHECK(m->arch == IMC_ARCH_LLAMA && m->mla == IMC_MLA_NONE, "arch");
    CHECK(h->n_vocab == 512 && h->n_embd == 64 && h->n_layer == 2 && h->n_head == 4 &&
              h->n_head_kv == 2 && h->head_dim == 16 && h->n_rot == 16 && h->n_ff == 128 &&
              h->n_ctx_train == 256,
          "llama dims %lld %lld %lld", (long long)h->n_vocab, (long long)h->n_head_kv,
          (long long)h->head_dim);
    CHECK(h->rope_scaling == IMC_ROPE_SCALING_NONE && h->n_expert == 0, "no scaling, dense");
    CHECK_CLOSE(h->rms_eps, 1e-5, 0, 1e-6);
    CHECK_CLOSE(h->rope_freq_base, 10000.0, 0, 0);
    const struct imc_layer *l = &m->layers[1];
    CHECK(l->wk && l->wk->ne[0] == 64 && l->wk->ne[1] == 32, "attn_k is [64, 32] (GQA)");
    CHECK(l->wq && l->wq->ne[1] == 64 && l->wo && l->ffn_down && l->ffn_down->ne[0] == 128,
          "attn_q, attn_output, ffn_down");
    CHECK(m->output && m->output != m->tok_embd && l->wq->type == IMC_TYPE_F32, "untied, f32");
    unload(g, m);

    CHECK(gen(e, "llama-moe-tiny", (enum imc_type)-1, 0,
              tmp_path(e, "llama-moe.gguf", p, sizeof(p))) == IMC_OK,
          "generate llama-moe-tiny");
    CHECK(load(p, &g, &m) == IMC_OK, "load llama-moe-tiny");
    if (m) {
        CHECK(m->hp.n_expert == 4 && m->hp.n_expert_used == 2 && m->layers[0].is_moe &&
                  m->layers[0].ffn_gate_exps && m->layers[0].ffn_gate_exps->ne[2] == 4 &&
                  m->hp.expert_weights_norm && m->hp.gating == IMC_GATING_SOFTMAX,
              "llama MoE experts");
        CHECK(m->output == m->tok_embd, "tied output is token_embd");
        unload(g, m);
    }
}

// qwen3moe-tiny: llama's keys and GQA tensors plus the per-head q/k norms, experts of their own
// width (expert_feed_forward_length), renormalized softmax routing, every layer MoE.
static void check_qwen3(const struct env *e)
{
    char p[320];
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    CHECK(gen(e, "qwen3moe-tiny", (enum imc_type)-1, 0,
              tmp_path(e, "qwen3moe.gguf", p, sizeof(p))) == IMC_OK,
          "generate qwen3moe-tiny");
    CHECK(load(p, &g, &m) == IMC_OK, "load qwen3moe-tiny");
    if (!m) {
        return;
    }
    const struct imc_hparams *h = &m->hp;
    CHECK(m->arch == IMC_ARCH_QWEN3MOE && strcmp(imc_arch_name(m->arch), "qwen3moe") == 0 &&
              imc_arch_is_gqa(m->arch),
          "architecture qwen3moe");
    CHECK(h->head_dim == 32 && h->n_embd == 64 && h->n_head == 4 && h->n_head_kv == 2,
          "head_dim 32 from attention.key_length (not n_embd / n_head)");
    CHECK(h->n_expert == 8 && h->n_expert_used == 2 && h->n_ff_exp == 32 && h->n_ff == 96 &&
              h->expert_weights_norm && h->gating == IMC_GATING_SOFTMAX &&
              h->n_expert_shared == 0,
          "experts: 8 of width 32, 2 used, renormalized softmax, no shared expert");
    for (int il = 0; il < h->n_layer; il++) {
        const struct imc_layer *l = &m->layers[il];
        CHECK(l->is_moe && l->q_norm && l->k_norm && l->q_norm->ne[0] == 32 &&
                  l->k_norm->ne[0] == 32 && l->wq->ne[1] == 128 && l->ffn_gate_exps->ne[1] == 32,
              "layer %d: MoE, q/k norms [32], attn_q [64, 128], experts [64, 32, 8]", il);
    }
    unload(g, m);
}

// glm4moe-tiny: block_count 4 of which 1 NextN layer (not part of the model), biases, q/k norms,
// partial rope, post_attention_norm as the FFN norm, 1 dense layer, sigmoid routing with
// exp_probs_b, a shared expert, scale 2.5.
static void check_glm4moe(const struct env *e)
{
    char p[320];
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    CHECK(gen(e, "glm4moe-tiny", (enum imc_type)-1, 0,
              tmp_path(e, "glm4moe.gguf", p, sizeof(p))) == IMC_OK,
          "generate glm4moe-tiny");
    CHECK(load(p, &g, &m) == IMC_OK, "load glm4moe-tiny");
    if (!m) {
        return;
    }
    const struct imc_hparams *h = &m->hp;
    CHECK(m->arch == IMC_ARCH_GLM4MOE && imc_arch_is_gqa(m->arch) && imc_arch_rope_neox(m->arch),
          "architecture glm4moe: GQA, NEOX rope");
    CHECK(h->n_layer == 3 && h->n_layer_nextn == 1 &&
              imc_gguf_find_tensor(g, "blk.3.attn_q.weight"),
          "block_count 4 = 3 layers that run + 1 NextN layer (its tensors stay in the file)");
    CHECK(h->head_dim == 32 && h->n_rot == 16 && h->n_layer_dense == 1 && h->n_expert == 8 &&
              h->n_expert_shared == 1 && h->n_ff_exp == 32 && h->gating == IMC_GATING_SIGMOID &&
              h->expert_weights_norm && h->expert_weights_scale == 2.5f,
          "partial rope 16/32, 1 dense layer, 8 experts + 1 shared, sigmoid, norm, scale 2.5");
    const struct imc_layer *l0 = &m->layers[0], *l2 = &m->layers[2];
    CHECK(!l0->is_moe && l0->ffn_gate && l2->is_moe && l2->ffn_exp_probs_b && l2->ffn_up_shexp,
          "layer 0 dense, layer 2 MoE with exp_probs_b and a shared expert");
    CHECK(l2->bq && l2->bq->ne[0] == 128 && l2->bk && l2->bv && l2->q_norm && l2->k_norm &&
              l2->ffn_norm && strcmp(l2->ffn_norm->name, "blk.2.post_attention_norm.weight") == 0,
          "q/k/v biases, q/k norms, FFN norm = post_attention_norm");
    unload(g, m);
}

struct ds2_expect {
    const char *preset;
    enum imc_mla_layout mla;
    bool kv_b;
    int64_t n_head_kv; // 1 with mainline keys
    int64_t q_lora;
    enum imc_gating gating;
    int64_t n_group;
};

static void check_ds2_common(const struct imc_model *m, const struct ds2_expect *x)
{
    const struct imc_hparams *h = &m->hp;
    CHECK(m->arch == IMC_ARCH_DEEPSEEK2, "%s arch", x->preset);
    CHECK(m->mla == x->mla && m->has_kv_b == x->kv_b &&
              m->has_k_b == (x->mla == IMC_MLA_3D || x->mla == IMC_MLA_2D),
          "%s layout %s kv_b %d", x->preset, imc_mla_layout_name(m->mla), m->has_kv_b);
    CHECK(h->n_embd == 64 && h->n_layer == 3 && h->n_layer_dense == 1 && h->n_head == 4 &&
              h->n_head_kv == x->n_head_kv && h->q_lora == x->q_lora && h->kv_lora == 32 &&
              h->qk_nope == 16 && h->qk_rope == 8 && h->n_rot == 8 && h->v_head == 16,
          "%s MLA dims (n_head_kv %lld, qk_nope %lld, v_head %lld)", x->preset,
          (long long)h->n_head_kv, (long long)h->qk_nope, (long long)h->v_head);
    CHECK(h->n_expert == 8 && h->n_expert_used == 2 && h->n_ff_exp == 32 &&
              h->gating == x->gating && h->n_group == x->n_group && h->n_ctx_train == 256,
          "%s MoE", x->preset);
    CHECK(h->rope_scaling == IMC_ROPE_SCALING_YARN && h->rope_orig_ctx == 64, "%s YaRN",
          x->preset);
    CHECK_CLOSE(h->rope_scale_factor, 4.0, 0, 0);
    CHECK_CLOSE(h->yarn_log_mul, 0.1, 0, 1e-6);
    CHECK(!m->layers[0].is_moe && m->layers[0].ffn_gate && m->layers[1].is_moe &&
              m->layers[2].ffn_down_exps && m->layers[2].ffn_down_exps->ne[0] == 32,
          "%s leading dense layer then MoE", x->preset);
    CHECK((x->q_lora > 0) == (m->layers[1].wq_a != NULL) &&
              (x->q_lora == 0) == (m->layers[1].wq != NULL),
          "%s q projection", x->preset);
}

static void check_ds2(const struct env *e)
{
    static const struct ds2_expect cases[] = {
        {"ds2-tiny-3d", IMC_MLA_3D, false, 1, 32, IMC_GATING_SIGMOID, 2},
        {"ds2-tiny-ik", IMC_MLA_2D, true, 4, 32, IMC_GATING_SIGMOID, 2},
        {"ds2-tiny-all", IMC_MLA_3D, true, 1, 32, IMC_GATING_SIGMOID, 2},
        {"ds2-lite-tiny", IMC_MLA_KVB, true, 4, 0, IMC_GATING_SOFTMAX, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char p[320], name[64];
        snprintf(name, sizeof(name), "%s.gguf", cases[i].preset);
        struct imc_gguf *g;
        struct imc_model *m;
        CHECK(gen(e, cases[i].preset, (enum imc_type)-1, 0, tmp_path(e, name, p, sizeof(p))) ==
                  IMC_OK,
              "generate %s", cases[i].preset);
        CHECK(load(p, &g, &m) == IMC_OK, "load %s", cases[i].preset);
        if (!m) {
            continue;
        }
        check_ds2_common(m, &cases[i]);
        const struct imc_layer *l = &m->layers[2];
        if (cases[i].mla == IMC_MLA_3D) {
            CHECK(l->wk_b->n_dims == 3 && l->wk_b->ne[0] == 16 && l->wk_b->ne[1] == 32 &&
                      l->wk_b->ne[2] == 4 && l->wv_b->ne[0] == 32 && l->wv_b->ne[1] == 16,
                  "%s 3D k_b/v_b shapes", cases[i].preset);
        }
        if (cases[i].gating == IMC_GATING_SIGMOID) {
            const float *b = l->ffn_exp_probs_b ? l->ffn_exp_probs_b->data : NULL;
            CHECK(b && b[7] < -1000.0f && b[0] > -1.0f, "%s exp_probs_b, expert 7 dead",
                  cases[i].preset);
        }
        unload(g, m);
    }
}

// ---- the split of attn_kv_b into attn_k_b / attn_v_b computes the same function --------------

// ggml mul_mat for one matrix: y[r] = sum_i W[r*ne0 + i] x[i].
static void matvec(const float *w, int64_t ne0, int64_t ne1, const float *x, float *y)
{
    for (int64_t r = 0; r < ne1; r++) {
        double s = 0;
        for (int64_t i = 0; i < ne0; i++) {
            s += (double)w[r * ne0 + i] * x[i];
        }
        y[r] = (float)s;
    }
}

// For head h: q_nope · (K_h c) == (W_kb,h q_nope) · c and V_h c == W_vb,h c (DESIGN.md §5).
static void check_split_layer(const struct imc_layer *l, const struct imc_hparams *hp)
{
    const int64_t nope = hp->qk_nope, vh = hp->v_head, kvl = hp->kv_lora;
    const float *kvb = l->wkv_b->data, *kb = l->wk_b->data, *vb = l->wv_b->data;
    float q[64], c[64], knope[256], qt[64], v1[64], v2[64];
    for (int64_t i = 0; i < kvl; i++) {
        c[i] = (float)((i * 7) % 11) - 5.0f;
    }
    for (int64_t i = 0; i < nope; i++) {
        q[i] = (float)((i * 5) % 7) - 3.0f;
    }
    double worst = 0;
    for (int64_t h = 0; h < hp->n_head; h++) {
        const float *blk = kvb + kvl * h * (nope + vh); // rows of head h: [k_nope | v]
        matvec(blk, kvl, nope + vh, c, knope);          // non-absorbed: [k_nope_h | v_h]
        matvec(kb + nope * kvl * h, nope, kvl, q, qt);  // absorbed: q~ = W_kb,h q_nope
        double s1 = 0, s2 = 0;
        for (int64_t j = 0; j < nope; j++) {
            s1 += (double)q[j] * knope[j];
        }
        for (int64_t j = 0; j < kvl; j++) {
            s2 += (double)qt[j] * c[j];
        }
        matvec(vb + kvl * vh * h, kvl, vh, c, v1);
        memcpy(v2, knope + nope, (size_t)vh * sizeof(float));
        worst = check_worst(worst, fabs(s1 - s2));
        for (int64_t j = 0; j < vh; j++) {
            worst = check_worst(worst, fabs((double)v1[j] - v2[j]));
        }
    }
    CHECK(worst < 1e-4, "absorbed and non-absorbed paths differ by %g", worst);
}

static void check_split(const struct env *e)
{
    static const char *const presets[] = {"ds2-tiny-all", "ds2-tiny-ik"};
    for (int i = 0; i < 2; i++) {
        char p[320], name[64];
        snprintf(name, sizeof(name), "%s.gguf", presets[i]);
        struct imc_gguf *g;
        struct imc_model *m;
        if (load(tmp_path(e, name, p, sizeof(p)), &g, &m) != IMC_OK) {
            CHECK(0, "load %s", presets[i]);
            continue;
        }
        for (int64_t il = 0; il < m->hp.n_layer; il++) {
            const struct imc_layer *l = &m->layers[il];
            CHECK(l->wkv_b->type == IMC_TYPE_F32 && l->wk_b->type == IMC_TYPE_F32, "f32");
            check_split_layer(l, &m->hp);
        }
        unload(g, m);
    }
    // Same seed, different file layout: identical attn_k_b bytes (values depend on the name).
    char a[320], b[320];
    struct imc_gguf *ga = NULL, *gb = NULL;
    if (imc_gguf_open(&ga, tmp_path(e, "ds2-tiny-3d.gguf", a, sizeof(a))) == IMC_OK &&
        imc_gguf_open(&gb, tmp_path(e, "ds2-tiny-all.gguf", b, sizeof(b))) == IMC_OK) {
        const struct imc_tensor_info *x = imc_gguf_find_tensor(ga, "blk.1.attn_k_b.weight");
        const struct imc_tensor_info *y = imc_gguf_find_tensor(gb, "blk.1.attn_k_b.weight");
        CHECK(x && y && x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0,
              "3d and all presets hold the same attn_k_b");
    }
    imc_gguf_free(ga);
    imc_gguf_free(gb);
}

// ---- determinism, weight types, vocabulary ----------------------------------------------------

static void check_determinism(const struct env *e)
{
    char a[320], b[320], c[320];
    CHECK(gen(e, "ds2-tiny-ik", (enum imc_type)-1, 7, tmp_path(e, "det-a.gguf", a, sizeof(a))) ==
                  IMC_OK &&
              gen(e, "ds2-tiny-ik", (enum imc_type)-1, 7,
                  tmp_path(e, "det-b.gguf", b, sizeof(b))) == IMC_OK &&
              gen(e, "ds2-tiny-ik", (enum imc_type)-1, 8,
                  tmp_path(e, "det-c.gguf", c, sizeof(c))) == IMC_OK,
          "generate three times");
    CHECK(files_equal(a, b), "same cfg gives identical bytes");
    CHECK(!files_equal(a, c), "another seed gives other bytes");
}

static void check_types(const struct env *e)
{
    // llama.cpp's fallbacks for rows that do not fit a 256-block (llama-quant.cpp)
    CHECK(imc_synth_weight_type(IMC_TYPE_Q4_K, 64) == IMC_TYPE_Q5_0, "q4_k -> q5_0");
    CHECK(imc_synth_weight_type(IMC_TYPE_Q6_K, 64) == IMC_TYPE_Q8_0, "q6_k -> q8_0");
    CHECK(imc_synth_weight_type(IMC_TYPE_Q4_K, 512) == IMC_TYPE_Q4_K, "q4_k fits 512");
    CHECK(imc_synth_weight_type(IMC_TYPE_Q8_0, 16) == IMC_TYPE_F16, "q8_0 -> f16 for 16");
    CHECK(imc_synth_weight_type(IMC_TYPE_Q2_K, 32) == IMC_TYPE_IQ4_NL, "q2_k -> iq4_nl");

    static const enum imc_type types[] = {IMC_TYPE_F16, IMC_TYPE_Q8_0, IMC_TYPE_Q4_K};
    static const enum imc_type want_q[] = {IMC_TYPE_F16, IMC_TYPE_Q8_0, IMC_TYPE_Q5_0};
    static const enum imc_type want_kb[] = {IMC_TYPE_F16, IMC_TYPE_F16, IMC_TYPE_F16};
    for (int i = 0; i < 3; i++) {
        char p[320], name[64];
        snprintf(name, sizeof(name), "type-%s.gguf", imc_type_name(types[i]));
        struct imc_gguf *g;
        struct imc_model *m;
        CHECK(gen(e, "ds2-tiny-all", types[i], 0, tmp_path(e, name, p, sizeof(p))) == IMC_OK,
              "generate %s", name);
        if (load(p, &g, &m) != IMC_OK) {
            CHECK(0, "load %s", name);
            continue;
        }
        const struct imc_layer *l = &m->layers[1];
        CHECK(l->wq_a->type == want_q[i] && l->ffn_gate_exps->type == want_q[i] &&
                  l->wk_b->type == want_kb[i] && l->attn_norm->type == IMC_TYPE_F32 &&
                  l->ffn_gate_inp->type == IMC_TYPE_F32 &&
                  l->ffn_exp_probs_b->type == IMC_TYPE_F32,
              "%s: attn_q_a %s, attn_k_b %s", name, imc_type_name(l->wq_a->type),
              imc_type_name(l->wk_b->type));
        unload(g, m);
    }
}

static void check_vocab(const struct env *e)
{
    char p[320];
    struct imc_gguf *g = NULL;
    if (imc_gguf_open(&g, tmp_path(e, "llama.gguf", p, sizeof(p))) != IMC_OK) {
        CHECK(0, "open llama.gguf");
        return;
    }
    int64_t kt = imc_gguf_find_key(g, "tokenizer.ggml.tokens");
    int64_t km = imc_gguf_find_key(g, "tokenizer.ggml.merges");
    uint32_t bos = 0, eos = 0;
    CHECK(kt >= 0 && km >= 0 && imc_gguf_arr_n(g, kt) == 512, "tokens and merges");
    CHECK(strcmp(imc_gguf_get_str(g, "tokenizer.ggml.model"), "gpt2") == 0 &&
              strcmp(imc_gguf_get_str(g, "tokenizer.ggml.pre"), "default") == 0,
          "gpt2 / default");
    // GPT-2 byte tokens: 'A' -> "A", ' ' -> "Ġ" (U+0120), '\n' -> "Ċ" (U+010A)
    CHECK(strcmp(imc_gguf_arr_str(g, kt, 'A', NULL), "A") == 0 &&
              strcmp(imc_gguf_arr_str(g, kt, ' ', NULL), "\xC4\xA0") == 0 &&
              strcmp(imc_gguf_arr_str(g, kt, '\n', NULL), "\xC4\x8A") == 0,
          "GPT-2 byte tokens");
    CHECK(imc_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos) &&
              imc_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos) && bos != eos &&
              bos < 512 && eos < 512,
          "bos/eos ids");
    const int32_t *types = imc_gguf_arr_data(g, imc_gguf_find_key(g, "tokenizer.ggml.token_type"));
    CHECK(types && types[bos] == 3 && types[eos] == 3 && types['A'] == 1, "token types");
    uint64_t nm = imc_gguf_arr_n(g, km), bad = 0;
    CHECK(e->text == NULL || nm > 100, "%llu merges learned", (unsigned long long)nm);
    for (uint64_t j = 0; j < nm; j++) { // "a b": a, b and ab are tokens
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", imc_gguf_arr_str(g, km, j, NULL));
        char *sp = strchr(buf, ' ');
        bool ok = sp != NULL;
        if (ok) {
            *sp = '\0';
            char joined[256];
            snprintf(joined, sizeof(joined), "%s%s", buf, sp + 1);
            int found = 0;
            for (uint64_t t = 0; t < 512; t++) {
                const char *s = imc_gguf_arr_str(g, kt, t, NULL);
                found |= (strcmp(s, buf) == 0) | (strcmp(s, sp + 1) == 0) << 1 |
                         (strcmp(s, joined) == 0) << 2;
            }
            ok = found == 7;
        }
        bad += !ok;
    }
    CHECK(bad == 0, "%llu malformed merges", (unsigned long long)bad);
    imc_gguf_free(g);
}

// ---- corrupted files: one error line naming the key or tensor -----------------------------------

struct edit {
    const char *what;        // test label
    const char *base;        // source file name in the temp dir
    const char *drop_key;    // key to remove
    const char *str_key;     // key to set to the string "x" (wrong type) or the arch name
    const char *str_val;
    const char *drop_tensor; // tensor to remove (up to two, ';'-separated)
    const char *reshape;     // tensor to give shape ne[0..n_dims)
    int n_dims;
    int64_t ne[3];
    enum imc_status want;    // expected load status
    const char *msg[3];      // substrings the error line must contain
};

static bool dropped(const char *list, const char *name)
{
    if (!list) {
        return false;
    }
    size_t n = strlen(name);
    for (const char *p = strstr(list, name); p; p = strstr(p + 1, name)) {
        if ((p == list || p[-1] == ';') && (p[n] == '\0' || p[n] == ';')) {
            return true;
        }
    }
    return false;
}

static enum imc_status add_tensors(struct imc_gguf_writer *w, const struct imc_gguf *g,
                                   const struct edit *ed, void **extra)
{
    for (int64_t i = 0; i < imc_gguf_n_tensors(g); i++) {
        const struct imc_tensor_info *t = imc_gguf_tensor(g, i);
        if (dropped(ed->drop_tensor, t->name)) {
            continue;
        }
        if (ed->reshape && strcmp(ed->reshape, t->name) == 0) {
            uint64_t rb = 0, rows = 1;
            for (int d = 1; d < ed->n_dims; d++) {
                rows *= (uint64_t)ed->ne[d];
            }
            if (!imc_type_row_bytes(t->type, ed->ne[0], &rb) || !(*extra = calloc(rows, rb))) {
                return IMC_ERR_ARG;
            }
            IMC_TRY(imc_gguf_add_tensor(w, t->name, t->type, ed->n_dims, ed->ne, *extra));
        } else {
            IMC_TRY(imc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data));
        }
    }
    return IMC_OK;
}

static enum imc_status rewrite(const struct env *e, const struct edit *ed, const char *out)
{
    char src[320];
    struct imc_gguf *g = NULL;
    IMC_TRY(imc_gguf_open(&g, tmp_path(e, ed->base, src, sizeof(src))));
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    void *extra = NULL;
    enum imc_status st = w ? IMC_OK : IMC_ERR_NOMEM;
    for (int64_t i = 0; st == IMC_OK && i < imc_gguf_n_kv(g); i++) {
        if (!ed->drop_key || strcmp(imc_gguf_key(g, i), ed->drop_key) != 0) {
            st = imc_gguf_set_from(w, g, i);
        }
    }
    if (st == IMC_OK && ed->str_key) {
        st = imc_gguf_set_str(w, ed->str_key, ed->str_val);
    }
    st = st == IMC_OK ? add_tensors(w, g, ed, &extra) : st;
    st = st == IMC_OK ? imc_gguf_write(w, out) : st;
    imc_gguf_writer_free(w);
    free(extra);
    imc_gguf_free(g);
    return st;
}

static void check_corrupt(const struct env *e)
{
    static const struct edit edits[] = {
        {"drop attn_q_b", "ds2-tiny-3d.gguf", .drop_tensor = "blk.1.attn_q_b.weight",
         .want = IMC_ERR_FORMAT, .msg = {"'blk.1.attn_q_b.weight'", "missing", "[32, 96]"}},
        {"reshape attn_k_b", "ds2-tiny-3d.gguf", .reshape = "blk.0.attn_k_b.weight", .n_dims = 3,
         .ne = {32, 16, 4}, .want = IMC_ERR_FORMAT,
         .msg = {"'blk.0.attn_k_b.weight'", "[16, 32, 4]", "[32, 16, 4]"}},
        {"drop attn_v_b", "ds2-tiny-all.gguf", .drop_tensor = "blk.2.attn_v_b.weight",
         .want = IMC_ERR_FORMAT, .msg = {"'blk.2.attn_v_b.weight'", "missing", NULL}},
        {"drop every up-projection", "ds2-tiny-ik.gguf",
         .drop_tensor = "blk.1.attn_kv_b.weight;blk.1.attn_k_b.weight;blk.1.attn_v_b.weight",
         .want = IMC_ERR_FORMAT, .msg = {"'blk.1.attn_kv_b.weight'", "missing", NULL}},
        {"drop kv_lora_rank", "ds2-tiny-3d.gguf", .drop_key = "deepseek2.attention.kv_lora_rank",
         .want = IMC_ERR_FORMAT, .msg = {"'deepseek2.attention.kv_lora_rank'", "missing", NULL}},
        {"string block_count", "llama.gguf", .str_key = "llama.block_count", .str_val = "x",
         .want = IMC_ERR_FORMAT, .msg = {"'llama.block_count'", "string", NULL}},
        {"unknown arch", "llama.gguf", .str_key = "general.architecture", .str_val = "mamba9",
         .want = IMC_ERR_UNSUPPORTED, .msg = {"'mamba9'", "not supported", NULL}},
        {"reshape llama attn_k", "llama.gguf", .reshape = "blk.1.attn_k.weight", .n_dims = 2,
         .ne = {64, 64}, .want = IMC_ERR_FORMAT,
         .msg = {"'blk.1.attn_k.weight'", "[64, 32]", "[64, 64]"}},
        {"drop output (tied)", "llama.gguf", .drop_tensor = "output.weight", .want = IMC_OK},
        {"glm4moe without expert_gating_func (sigmoid)", "glm4moe.gguf",
         .drop_key = "glm4moe.expert_gating_func", .want = IMC_OK},
        {"drop glm4moe post_attention_norm", "glm4moe.gguf",
         .drop_tensor = "blk.2.post_attention_norm.weight", .want = IMC_ERR_FORMAT,
         .msg = {"'blk.2.post_attention_norm.weight'", "missing", "[64]"}},
        {"drop qwen3 attn_k_norm", "qwen3moe.gguf", .drop_tensor = "blk.1.attn_k_norm.weight",
         .want = IMC_ERR_FORMAT, .msg = {"'blk.1.attn_k_norm.weight'", "missing", "[32]"}},
        {"reshape qwen3 attn_q_norm", "qwen3moe.gguf", .reshape = "blk.0.attn_q_norm.weight",
         .n_dims = 1, .ne = {64}, .want = IMC_ERR_FORMAT,
         .msg = {"'blk.0.attn_q_norm.weight'", "[32]", "[64]"}},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        const struct edit *ed = &edits[i];
        char out[320];
        tmp_path(e, "corrupt.gguf", out, sizeof(out));
        if (rewrite(e, ed, out) != IMC_OK) {
            CHECK(0, "%s: rewrite", ed->what);
            continue;
        }
        struct imc_gguf *g = NULL;
        struct imc_model *m = NULL;
        struct logcap cap;
        cap_start(&cap);
        enum imc_status st = load(out, &g, &m);
        cap_stop();
        CHECK(st == ed->want, "%s: status %s, want %s", ed->what, imc_status_str(st),
              imc_status_str(ed->want));
        CHECK(cap.n_err == (ed->want == IMC_OK ? 0 : 1), "%s: %d error lines:\n%s", ed->what,
              cap.n_err, cap.text);
        for (int k = 0; k < 3 && ed->want != IMC_OK; k++) {
            CHECK(!ed->msg[k] || (strstr(cap.text, ed->msg[k]) && strstr(cap.text, out)),
                  "%s: message lacks \"%s\" or the path: %s", ed->what, ed->msg[k], cap.text);
        }
        if (m && m->arch == IMC_ARCH_GLM4MOE) {
            CHECK(m->hp.gating == IMC_GATING_SIGMOID, "%s: sigmoid routing", ed->what);
        } else if (m) {
            CHECK(m->output == m->tok_embd, "%s: output tied to token_embd", ed->what);
        }
        unload(g, m);
    }
}

static void check_bad_cfg(const struct env *e)
{
    struct imc_synth_cfg cfg;
    struct logcap cap;
    char p[320];
    cap_start(&cap);
    CHECK(imc_synth_preset(&cfg, "no-such-preset") == IMC_ERR_ARG, "unknown preset");
    CHECK(imc_synth_preset(&cfg, "ds2-tiny-3d") == IMC_OK, "preset");
    cfg.hp.n_group = 3; // 8 experts do not split into 3 groups
    CHECK(imc_synth_write(&cfg, tmp_path(e, "bad.gguf", p, sizeof(p))) == IMC_ERR_ARG,
          "bad groups rejected");
    cap_stop();
    CHECK(cap.n_err == 2 && strstr(cap.text, "no-such-preset") && strstr(cap.text, "group"),
          "messages: %s", cap.text);
    CHECK(access(p, F_OK) != 0, "no file written for a bad cfg");
}

static void cleanup(const struct env *e)
{
    static const char *const names[] = {
        "llama.gguf", "llama-moe.gguf", "qwen3moe.gguf", "glm4moe.gguf", "ds2-tiny-3d.gguf",
        "ds2-tiny-ik.gguf",
        "ds2-tiny-all.gguf", "ds2-lite-tiny.gguf", "det-a.gguf", "det-b.gguf", "det-c.gguf",
        "type-f16.gguf", "type-q8_0.gguf", "type-q4_k.gguf", "corrupt.gguf"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char p[320];
        unlink(tmp_path(e, names[i], p, sizeof(p)));
    }
    rmdir(e->dir);
}

int main(void)
{
    struct env e = {0};
    const char *tmp = getenv("TMPDIR");
    snprintf(e.dir, sizeof(e.dir), "%s/imc_test_arch_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(e.dir)) {
        perror("mkdtemp");
        return 1;
    }
    const char *src = getenv("IMC_SOURCE_DIR");
    if (src) {
        char p[512];
        snprintf(p, sizeof(p), "%s/data/text/calibration.txt", src);
        if (imc_file_read_all(p, &e.text, &e.text_len) != IMC_OK) {
            e.text = NULL;
        }
    }
    check_llama(&e);
    check_qwen3(&e);
    check_glm4moe(&e);
    check_ds2(&e);
    check_split(&e);
    check_determinism(&e);
    check_types(&e);
    check_vocab(&e);
    check_corrupt(&e);
    check_bad_cfg(&e);
    cleanup(&e);
    free(e.text);
    return check_summary();
}
