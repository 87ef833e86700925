/*
 * model/synth_tensors: the weights of a synthetic model (model/synth.h). Names and shapes
 * follow llama.cpp (ggml ne order); values come from a per-tensor xoshiro256** stream seeded
 * by splitmix64(seed ^ hash(name)) (model/synth_rng.c), so a tensor depends only on (seed,
 * name, shape).
 *
 * Scales: matmul weights ~ (0, 1/sqrt(n_in)) so outputs stay O(1); projections back into the
 * residual stream (attn_output, ffn_down*) are further scaled by 1/sqrt(2 n_layer); norm
 * weights uniform in [0.9, 1.1]; routers f32. Values are Irwin-Hall(4) normalized to unit
 * variance: close to Gaussian, bounded (|x| < 3.47 std), and computed without libm.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/synth_priv.h"

// ---- tensor output ------------------------------------------------------------------------------

struct gen {
    const struct imc_synth_cfg *cfg;
    struct imc_gguf_writer *w;
    struct imc_synth_bufs *bufs;
    double res_scale; // 1/sqrt(2 n_layer) for residual-stream projections
};

// Takes ownership of p (freed now on failure, else with the bufs).
static enum imc_status keep(struct gen *g, void *p)
{
    struct imc_synth_bufs *b = g->bufs;
    if (p && b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        void **np = realloc(b->p, cap * sizeof(*np));
        if (np) {
            b->p = np;
            b->cap = cap;
        }
    }
    if (!p || b->n == b->cap) {
        free(p);
        IMC_LOG_ERR("synth: out of memory");
        return IMC_ERR_NOMEM;
    }
    b->p[b->n++] = p;
    return IMC_OK;
}

void imc_synth_bufs_free(struct imc_synth_bufs *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->p[i]);
    }
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static int64_t n_elems(int n_dims, const int64_t *ne)
{
    int64_t n = 1;
    for (int d = 0; d < n_dims; d++) {
        n *= ne[d];
    }
    return n;
}

// Rows [r0, r1) of a tensor quantized by one thread.
struct qrows {
    const struct imc_type_traits *tr;
    const float *f32;
    uint8_t *data;
    int64_t ne0, r0, r1;
    uint64_t row_bytes;
};

static void *qrows_run(void *arg)
{
    const struct qrows *q = arg;
    for (int64_t r = q->r0; r < q->r1; r++) {
        q->tr->from_float(q->f32 + r * q->ne0, q->data + (uint64_t)r * q->row_bytes, q->ne0, NULL);
    }
    return NULL;
}

// The rows of f32 quantized into data by up to n_threads threads, each a contiguous share of the
// rows (a row's bytes depend on that row alone, so not on the split); a thread that does not
// start leaves its share to this one.
static void quant_rows(const struct imc_type_traits *tr, const float *f32, int64_t rows,
                       int64_t ne0, uint64_t row_bytes, uint8_t *data, int n_threads)
{
    enum { MAX_THREADS = 256 };
    int nt = n_threads < 1 ? 1 : n_threads > MAX_THREADS ? MAX_THREADS : n_threads;
    nt = (int64_t)nt > rows ? (int)(rows > 0 ? rows : 1) : nt;
    struct qrows q[MAX_THREADS];
    for (int i = 0; i < nt; i++) {
        q[i] = (struct qrows){tr, f32, data, ne0, rows * i / nt, rows * (i + 1) / nt, row_bytes};
    }
    imc_synth_parallel(nt, qrows_run, q, sizeof(q[0]));
}

// Converts f32 (owned; consumed) to type t row by row and adds tensor `name` to the writer.
static enum imc_status put(struct gen *g, const char *name, enum imc_type t, int n_dims,
                           const int64_t *ne, float *f32)
{
    char *nm = strdup(name);
    enum imc_status st = keep(g, nm);
    if (st != IMC_OK) {
        free(f32);
        return st;
    }
    void *data = f32;
    if (t != IMC_TYPE_F32) {
        const struct imc_type_traits *tr = imc_type_traits(t);
        uint64_t row_bytes = 0;
        if (!tr || !tr->from_float || !imc_type_row_bytes(t, ne[0], &row_bytes)) {
            free(f32);
            IMC_LOG_ERR("synth: tensor '%s': cannot store rows of %lld as %s", name,
                        (long long)ne[0], imc_type_name(t));
            return IMC_ERR_UNSUPPORTED;
        }
        int64_t rows = n_elems(n_dims, ne) / ne[0];
        data = malloc((size_t)(row_bytes * (uint64_t)rows));
        if (data) {
            quant_rows(tr, f32, rows, ne[0], row_bytes, data, g->cfg->n_threads);
        }
        free(f32);
    }
    IMC_TRY(keep(g, data));
    st = imc_gguf_add_tensor(g->w, nm, t, n_dims, ne, data);
    if (st != IMC_OK) {
        IMC_LOG_ERR("synth: cannot add tensor '%s' (%s)", name, imc_status_str(st));
    }
    return st;
}

static float *alloc_f32(int64_t n)
{
    float *p = malloc((size_t)n * sizeof(float));
    if (!p) {
        IMC_LOG_ERR("synth: out of memory for %lld floats", (long long)n);
    }
    return p;
}

// Random values (0, std) for tensor `name`; NULL on allocation failure (logged).
static float *randn(const struct gen *g, const char *name, int64_t n, double std)
{
    float *p = alloc_f32(n);
    if (p) {
        imc_synth_randn(p, n, g->cfg->seed, name, std, g->cfg->n_threads);
    }
    return p;
}

// A matmul weight [ne0, ne1(, ne2)] with std scale/sqrt(ne0), stored as cfg's type.
static enum imc_status weight(struct gen *g, const char *name, int n_dims, int64_t ne0,
                              int64_t ne1, int64_t ne2, double scale)
{
    const int64_t ne[3] = {ne0, ne1, ne2};
    float *f = randn(g, name, n_elems(n_dims, ne), scale / sqrt((double)ne0));
    if (!f) {
        return IMC_ERR_NOMEM;
    }
    return put(g, name, imc_synth_weight_type(g->cfg->wtype, ne0), n_dims, ne, f);
}

// An f32 vector: norm weights uniform in [0.9, 1.1] (std < 0) or values (0, std).
static enum imc_status vec_f32(struct gen *g, const char *name, int64_t n, double std)
{
    float *f = randn(g, name, n, std < 0 ? 1.0 : std);
    if (!f) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t i = 0; std < 0 && i < n; i++) {
        f[i] = 1.0f + 0.05f * (f[i] / 1.7320508f); // f[i] lies in ±2·sqrt(3)
    }
    return put(g, name, IMC_TYPE_F32, 1, &n, f);
}

static const char *lname(char *buf, size_t size, int il, const char *suffix)
{
    snprintf(buf, size, "blk.%d.%s", il, suffix);
    return buf;
}

// ---- layers -------------------------------------------------------------------------------------

static enum imc_status llama_attn(struct gen *g, int il)
{
    const struct imc_hparams *hp = &g->cfg->hp;
    const int64_t d = hp->n_embd, q = hp->n_head * hp->head_dim, kv = hp->n_head_kv * hp->head_dim;
    char nm[96];
    IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "attn_q.weight"), 2, d, q, 1, 1.0));
    IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "attn_k.weight"), 2, d, kv, 1, 1.0));
    IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "attn_v.weight"), 2, d, kv, 1, 1.0));
    if (g->cfg->attn_bias) {
        IMC_TRY(vec_f32(g, lname(nm, sizeof(nm), il, "attn_q.bias"), q, 0.1));
        IMC_TRY(vec_f32(g, lname(nm, sizeof(nm), il, "attn_k.bias"), kv, 0.1));
        IMC_TRY(vec_f32(g, lname(nm, sizeof(nm), il, "attn_v.bias"), kv, 0.1));
    }
    if (g->cfg->arch == IMC_ARCH_QWEN3 || g->cfg->arch == IMC_ARCH_QWEN3MOE || g->cfg->qk_norm) {
        IMC_TRY(vec_f32(g, lname(nm, sizeof(nm), il, "attn_q_norm.weight"), hp->head_dim, -1));
        IMC_TRY(vec_f32(g, lname(nm, sizeof(nm), il, "attn_k_norm.weight"), hp->head_dim, -1));
    }
    return weight(g, lname(nm, sizeof(nm), il, "attn_output.weight"), 2, q, d, 1, g->res_scale);
}

// attn_kv_b and its exact per-head split into attn_k_b (transposed k_nope blocks) and attn_v_b:
//   kv_b[c, h*(nope+v) + j]        = k_nope of head h, output j, latent c
//   k_b [j, c, h] = kv_b[c, h*(nope+v) + j]          (ne [qk_nope, kv_lora, n_head])
//   v_b [c, i, h] = kv_b[c, h*(nope+v) + nope + i]   (ne [kv_lora, v_head, n_head])
// The 2D ik layout has the same bytes with ne [qk_nope, n_head*kv_lora] / [kv_lora, n_head*v].
static enum imc_status ds2_kvb(struct gen *g, int il)
{
    const struct imc_synth_cfg *c = g->cfg;
    const int64_t nope = c->hp.qk_nope, vh = c->hp.v_head, kvl = c->hp.kv_lora, nh = c->hp.n_head;
    const int64_t rows = nh * (nope + vh);
    char nm[96];
    float *kvb = randn(g, lname(nm, sizeof(nm), il, "attn_kv_b.weight"), kvl * rows,
                       1.0 / sqrt((double)kvl));
    if (!kvb) {
        return IMC_ERR_NOMEM;
    }
    if (c->k_b != IMC_MLA_NONE) {
        float *kb = alloc_f32(nope * kvl * nh), *vb = alloc_f32(kvl * vh * nh);
        if (!kb || !vb) {
            free(kb);
            free(vb);
            free(kvb);
            return IMC_ERR_NOMEM;
        }
        for (int64_t h = 0; h < nh; h++) {
            const float *blk = kvb + kvl * h * (nope + vh);
            for (int64_t ch = 0; ch < kvl; ch++) {
                for (int64_t j = 0; j < nope; j++) {
                    kb[j + nope * (ch + kvl * h)] = blk[ch + kvl * j];
                }
            }
            for (int64_t i = 0; i < vh; i++) {
                memcpy(vb + kvl * (i + vh * h), blk + kvl * (nope + i), (size_t)kvl * 4);
            }
        }
        const bool d3 = c->k_b == IMC_MLA_3D;
        const int64_t kne[3] = {nope, d3 ? kvl : kvl * nh, nh};
        const int64_t vne[3] = {kvl, d3 ? vh : vh * nh, nh};
        enum imc_status st = put(g, lname(nm, sizeof(nm), il, "attn_k_b.weight"),
                                 imc_synth_weight_type(c->wtype, nope), d3 ? 3 : 2, kne, kb);
        if (st == IMC_OK) {
            st = put(g, lname(nm, sizeof(nm), il, "attn_v_b.weight"),
                     imc_synth_weight_type(c->wtype, kvl), d3 ? 3 : 2, vne, vb);
        } else {
            free(vb);
        }
        if (st != IMC_OK) {
            free(kvb);
            return st;
        }
    }
    if (!c->kv_b) {
        free(kvb);
        return IMC_OK;
    }
    const int64_t ne[2] = {kvl, rows};
    return put(g, lname(nm, sizeof(nm), il, "attn_kv_b.weight"),
               imc_synth_weight_type(c->wtype, kvl), 2, ne, kvb);
}

static enum imc_status ds2_attn(struct gen *g, int il)
{
    const struct imc_hparams *hp = &g->cfg->hp;
    const int64_t d = hp->n_embd, qdim = hp->n_head * (hp->qk_nope + hp->qk_rope);
    char nm[96];
    if (hp->q_lora > 0) {
        IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "attn_q_a.weight"), 2, d, hp->q_lora, 1, 1));
        IMC_TRY(vec_f32(g, lname(nm, sizeof(nm), il, "attn_q_a_norm.weight"), hp->q_lora, -1));
        IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "attn_q_b.weight"), 2, hp->q_lora, qdim, 1,
                       1.0));
    } else {
        IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "attn_q.weight"), 2, d, qdim, 1, 1.0));
    }
    IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "attn_kv_a_mqa.weight"), 2, d,
                   hp->kv_lora + hp->qk_rope, 1, 1.0));
    IMC_TRY(vec_f32(g, lname(nm, sizeof(nm), il, "attn_kv_a_norm.weight"), hp->kv_lora, -1));
    IMC_TRY(ds2_kvb(g, il));
    return weight(g, lname(nm, sizeof(nm), il, "attn_output.weight"), 2, hp->n_head * hp->v_head,
                  d, 1, g->res_scale);
}

static enum imc_status router(struct gen *g, int il)
{
    const struct imc_synth_cfg *c = g->cfg;
    const int64_t d = c->hp.n_embd, ne[2] = {d, c->hp.n_expert};
    char nm[96];
    float *f = randn(g, lname(nm, sizeof(nm), il, "ffn_gate_inp.weight"), d * ne[1],
                     1.0 / sqrt((double)d));
    if (!f) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(put(g, nm, IMC_TYPE_F32, 2, ne, f));
    if (!c->exp_probs_b) {
        return IMC_OK;
    }
    f = randn(g, lname(nm, sizeof(nm), il, "exp_probs_b.bias"), ne[1], 0.05);
    if (!f) {
        return IMC_ERR_NOMEM;
    }
    if (c->dead_expert >= 0) {
        f[c->dead_expert] = -1e4f; // never among the top-k of p + bias
    }
    return put(g, nm, IMC_TYPE_F32, 1, &ne[1], f);
}

static enum imc_status ffn(struct gen *g, int il)
{
    const struct imc_hparams *hp = &g->cfg->hp;
    const int64_t d = hp->n_embd, ff = hp->n_ff, fe = hp->n_ff_exp, ne = hp->n_expert;
    const double rs = g->res_scale;
    char nm[96];
    IMC_TRY(vec_f32(g,
                    lname(nm, sizeof(nm), il,
                          g->cfg->arch == IMC_ARCH_GLM4MOE ? "post_attention_norm.weight"
                                                           : "ffn_norm.weight"),
                    d, -1));
    if (hp->n_expert == 0 || il < hp->n_layer_dense) {
        IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "ffn_gate.weight"), 2, d, ff, 1, 1.0));
        IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "ffn_up.weight"), 2, d, ff, 1, 1.0));
        return weight(g, lname(nm, sizeof(nm), il, "ffn_down.weight"), 2, ff, d, 1, rs);
    }
    IMC_TRY(router(g, il));
    IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "ffn_gate_exps.weight"), 3, d, fe, ne, 1.0));
    IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "ffn_up_exps.weight"), 3, d, fe, ne, 1.0));
    IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "ffn_down_exps.weight"), 3, fe, d, ne, rs));
    if (hp->n_expert_shared == 0) {
        return IMC_OK;
    }
    const int64_t fs = fe * hp->n_expert_shared;
    IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "ffn_gate_shexp.weight"), 2, d, fs, 1, 1.0));
    IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "ffn_up_shexp.weight"), 2, d, fs, 1, 1.0));
    return weight(g, lname(nm, sizeof(nm), il, "ffn_down_shexp.weight"), 2, fs, d, 1, rs);
}

// The extra tensors of a NextN (multi-token prediction) layer, as llama.cpp names them.
static enum imc_status nextn(struct gen *g, int il)
{
    const int64_t d = g->cfg->hp.n_embd;
    char nm[96];
    IMC_TRY(weight(g, lname(nm, sizeof(nm), il, "nextn.eh_proj.weight"), 2, 2 * d, d, 1, 1.0));
    IMC_TRY(vec_f32(g, lname(nm, sizeof(nm), il, "nextn.enorm.weight"), d, -1));
    IMC_TRY(vec_f32(g, lname(nm, sizeof(nm), il, "nextn.hnorm.weight"), d, -1));
    return vec_f32(g, lname(nm, sizeof(nm), il, "nextn.shared_head_norm.weight"), d, -1);
}

enum imc_status imc_synth_add_tensors(const struct imc_synth_cfg *cfg,
                                      struct imc_gguf_writer *w, struct imc_synth_bufs *bufs)
{
    const struct imc_hparams *hp = &cfg->hp;
    struct gen g = {cfg, w, bufs, 1.0 / sqrt(2.0 * (double)hp->n_layer)};
    char nm[96];
    IMC_TRY(weight(&g, "token_embd.weight", 2, hp->n_embd, hp->n_vocab, 1, 1.0));
    for (int il = 0; il < hp->n_layer + cfg->n_nextn; il++) {
        IMC_TRY(vec_f32(&g, lname(nm, sizeof(nm), il, "attn_norm.weight"), hp->n_embd, -1));
        if (imc_arch_is_gqa(cfg->arch)) {
            IMC_TRY(llama_attn(&g, il));
        } else {
            IMC_TRY(ds2_attn(&g, il));
        }
        IMC_TRY(ffn(&g, il));
        if (il >= hp->n_layer) {
            IMC_TRY(nextn(&g, il));
        }
    }
    IMC_TRY(vec_f32(&g, "output_norm.weight", hp->n_embd, -1));
    if (cfg->tied_output) {
        return IMC_OK;
    }
    return weight(&g, "output.weight", 2, hp->n_embd, hp->n_vocab, 1, 1.0);
}

enum imc_type imc_synth_weight_type(enum imc_type t, int64_t ne0)
{
    const struct imc_type_traits *tr = imc_type_traits(t);
    if (!tr || ne0 % tr->block_size == 0) {
        return t;
    }
    enum imc_type f = IMC_TYPE_F16;
    switch (t) {
    case IMC_TYPE_Q2_K:
    case IMC_TYPE_Q3_K:
    case IMC_TYPE_IQ4_XS: f = IMC_TYPE_IQ4_NL; break;
    case IMC_TYPE_Q4_K: f = IMC_TYPE_Q5_0; break;
    case IMC_TYPE_Q5_K: f = IMC_TYPE_Q5_1; break;
    case IMC_TYPE_Q6_K: f = IMC_TYPE_Q8_0; break;
    default: break;
    }
    const struct imc_type_traits *ft = imc_type_traits(f);
    return ft && ne0 % ft->block_size == 0 ? f : IMC_TYPE_F16;
}
