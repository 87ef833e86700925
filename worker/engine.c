/*
 * worker/engine: engine creation (options, RoPE/YaRN and score scale as llama.cpp derives them,
 * f32 copies of the small vectors) and the forward entry points (worker/engine.h). The layers
 * themselves: forward_llama.c, forward_deepseek2.c, moe.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/log.h"
#include "kernels/cuda/cuda.h"
#include "mpi/comm.h"
#include "numa/plan.h"
#include "worker/engine_priv.h"
#include "worker/slice.h"

struct imc_engine_opts imc_engine_opts_default(void)
{
    return (struct imc_engine_opts){
        .n_threads = 1, .attn = IMC_ATTN_AUTO, .device = IMC_DEVICE_CPU, .matmul = IMC_MATMUL_F32};
}

const char *imc_attn_path_name(enum imc_attn_path p)
{
    switch (p) {
    case IMC_ATTN_AUTO:
        return "auto";
    case IMC_ATTN_ABSORBED:
        return "absorbed";
    case IMC_ATTN_NON_ABSORBED:
        return "non-absorbed";
    }
    return "unknown";
}

const struct imc_model *imc_engine_model(const struct imc_engine *e)
{
    return e->m;
}

struct imc_exec *imc_engine_exec(struct imc_engine *e)
{
    return e->ex;
}

enum imc_attn_path imc_engine_attn_path(const struct imc_engine *e)
{
    return e->m->arch == IMC_ARCH_DEEPSEEK2 ? e->path : IMC_ATTN_AUTO;
}

// ---- creation ----------------------------------------------------------------------------------

// llama.cpp's get_mscale: the YaRN attention magnitude for scale factor f.
static float yarn_mscale(float f, float mscale)
{
    return f <= 1.0f ? 1.0f : 0.1f * mscale * logf(f) + 1.0f;
}

// RoPE parameters and kq_scale exactly as llama.cpp derives them (llama-context.cpp: the
// yarn_attn_factor and its cancellation; deepseek2 graph: attn_factor_org, mscale, kq_scale).
// For DeepSeek-V3 (yarn_log_multiplier 0.1) this gives a pure rotation in RoPE and
// kq_scale = (1 + 0.1 ln(1/freq_scale))² / sqrt(qk_nope + qk_rope) (DESIGN.md §5).
static void rope_setup(struct imc_engine *e)
{
    const struct imc_hparams *hp = &e->m->hp;
    const bool ds2 = e->m->arch == IMC_ARCH_DEEPSEEK2;
    const float fs =
        hp->rope_scaling == IMC_ROPE_SCALING_NONE ? 1.0f : 1.0f / hp->rope_scale_factor;
    const float f = 1.0f / fs, ext = hp->rope_scaling == IMC_ROPE_SCALING_YARN ? 1.0f : 0.0f;
    // llama.cpp reads the converter's 0.1·mscale_all_dim back as mscale_all_dim (deepseek2 only).
    const float log_mul = ds2 ? hp->yarn_log_mul / 0.1f : 0.0f;
    float attn = 1.0f;
    if (ext != 0.0f) {
        if (log_mul != 0.0f) {
            const float msc = ds2 && log_mul != 1.0f ? log_mul : 1.0f;
            attn = yarn_mscale(f, msc) / yarn_mscale(f, log_mul);
        } else {
            attn = yarn_mscale(f, 1.0f);
        }
        attn *= 1.0f / (1.0f + 0.1f * logf(f)); // cancels the factor ggml's rope applies
    }
    e->rope = (struct imc_rope){.n_dims = ds2 ? hp->qk_rope : hp->n_rot,
                                .freq_base = hp->rope_freq_base,
                                .freq_scale = fs,
                                .ext_factor = ext,
                                .attn_factor = attn,
                                .beta_fast = hp->yarn_beta_fast,
                                .beta_slow = hp->yarn_beta_slow,
                                .n_ctx_orig = hp->rope_orig_ctx,
                                .neox = imc_arch_rope_neox(e->m->arch)};
    if (ds2) {
        const float attn_org = attn * (1.0f + 0.1f * logf(f));
        const float mscale = attn_org * (1.0f + 0.1f * log_mul * logf(f));
        e->kq_scale = mscale * mscale / sqrtf((float)(hp->qk_nope + hp->qk_rope));
    } else {
        e->kq_scale = 1.0f / sqrtf((float)hp->head_dim);
    }
}

// f32 copy of a vector tensor (NULL when t is NULL).
static enum imc_status vec_copy(const struct imc_tensor_info *t, float **out)
{
    *out = NULL;
    if (!t) {
        return IMC_OK;
    }
    const int64_t n = imc_tensor_elems(t);
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)t->type);
    if (!imc_type_can_decode(tr) || t->ne[0] % tr->block_size != 0) {
        IMC_LOG_ERR("engine: tensor '%s' of type %s cannot be converted to f32", t->name,
                    imc_type_name((uint32_t)t->type));
        return IMC_ERR_UNSUPPORTED;
    }
    *out = malloc((size_t)n * sizeof(float));
    if (!*out) {
        IMC_LOG_ERR("engine: out of memory copying '%s'", t->name);
        return IMC_ERR_NOMEM;
    }
    if (t->type == IMC_TYPE_F32) {
        memcpy(*out, t->data, (size_t)n * sizeof(float));
    } else {
        imc_type_decode_rows(tr, t->data, 0, n / t->ne[0], t->ne[0], *out);
    }
    return IMC_OK;
}

#define N_LAYER_VEC IMC_LAYER_N_VECTORS

// The vector tensors of layer l (model/arch.h imc_layer_vectors) and the fields of v that hold
// their f32 copies, in that order.
static void layer_vectors(const struct imc_layer *l, struct eng_layer *v,
                          const struct imc_tensor_info *t[N_LAYER_VEC], float **f[N_LAYER_VEC])
{
    imc_layer_vectors(l, t);
    float **fl[N_LAYER_VEC] = {&v->attn_norm,   &v->q_a_norm, &v->kv_a_norm, &v->ffn_norm,
                               &v->exp_probs_b, &v->q_norm,   &v->k_norm,    &v->bq,
                               &v->bk,          &v->bv};
    memcpy(f, fl, sizeof(fl));
}

static enum imc_status copy_vectors(struct imc_engine *e)
{
    const struct imc_model *m = e->m;
    e->lv = calloc((size_t)m->hp.n_layer, sizeof(*e->lv));
    if (!e->lv) {
        IMC_LOG_ERR("engine: out of memory");
        return IMC_ERR_NOMEM;
    }
    for (int64_t il = e->opts.layer_begin; il < e->opts.layer_end; il++) {
        const struct imc_tensor_info *t[N_LAYER_VEC];
        float **f[N_LAYER_VEC];
        layer_vectors(&m->layers[il], &e->lv[il], t, f);
        for (int i = 0; i < N_LAYER_VEC; i++) {
            IMC_TRY(vec_copy(t[i], f[i]));
        }
    }
    e->lvo = e->lv;
    IMC_TRY(vec_copy(m->output_norm, &e->output_norm));
    e->output_norm_o = e->output_norm;
    return IMC_OK;
}

// Elements of a vector tensor (0 without one); vec_floats: its space in the table's buffer,
// rounded up to 16 floats (64-byte offsets).
static int64_t vec_elems(const struct imc_tensor_info *t)
{
    return t ? imc_tensor_elems(t) : 0;
}

static int64_t vec_floats(const struct imc_tensor_info *t)
{
    return (vec_elems(t) + 15) / 16 * 16;
}

// Places v, the f32 copy of t (NULL without one), at *next in the table's buffer (uploaded by
// the table's copy) and advances *next.
static enum imc_status vec_place(struct imc_engine *e, const struct imc_tensor_info *t,
                                 const float *v, float **next, float **out)
{
    *out = NULL;
    if (!v) {
        return IMC_OK;
    }
    const int64_t n = vec_elems(t);
    const struct imc_copy_args a = {.dst = *next, .src = v, .n_tok = 1, .n_head = 1, .n = n};
    IMC_TRY(e->be->copy(e->ex, &a));
    *out = *next;
    *next += vec_floats(t);
    return IMC_OK;
}

// On a table with its own memory: the vectors (norm weights, biases, the router's bias) copied
// into one buffer of it once, so the ops read them in place (lvo, output_norm_o).
static enum imc_status vectors_to_table(struct imc_engine *e)
{
    const struct imc_model *m = e->m;
    int64_t total = vec_floats(m->output_norm);
    for (int64_t il = e->opts.layer_begin; il < e->opts.layer_end; il++) {
        const struct imc_tensor_info *t[N_LAYER_VEC];
        float **f[N_LAYER_VEC];
        layer_vectors(&m->layers[il], &e->lv[il], t, f);
        for (int i = 0; i < N_LAYER_VEC; i++) {
            total += vec_floats(t[i]);
        }
    }
    e->lvo = calloc((size_t)m->hp.n_layer, sizeof(*e->lvo));
    e->vec_buf = e->lvo ? e->be->buf_alloc(e->be_ctx, (size_t)(total + 1) * sizeof(float)) : NULL;
    if (!e->lvo || !e->vec_buf) {
        IMC_LOG_ERR("engine: cannot place %" PRId64 " floats of norm weights and biases", total);
        return IMC_ERR_NOMEM;
    }
    float *next = e->vec_buf;
    for (int64_t il = e->opts.layer_begin; il < e->opts.layer_end; il++) {
        const struct imc_tensor_info *t[N_LAYER_VEC], *to[N_LAYER_VEC];
        float **f[N_LAYER_VEC], **fo[N_LAYER_VEC];
        layer_vectors(&m->layers[il], &e->lv[il], t, f);
        layer_vectors(&m->layers[il], &e->lvo[il], to, fo);
        for (int i = 0; i < N_LAYER_VEC; i++) {
            IMC_TRY(vec_place(e, t[i], *f[i], &next, fo[i]));
        }
    }
    return vec_place(e, m->output_norm, e->output_norm, &next, &e->output_norm_o);
}

// Every matmul weight of the engine's layers can run on its backend.
static enum imc_status check_types(const struct imc_engine *e)
{
    const struct imc_model *m = e->m;
    const struct imc_tensor_info *head[] = {m->tok_embd, m->output};
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
        if (head[i] && !e->be->supports(IMC_OP_MATMUL, head[i]->type)) {
            IMC_LOG_ERR("engine: tensor '%s': type %s not supported by backend %s", head[i]->name,
                        imc_type_name((uint32_t)head[i]->type), e->be->name);
            return IMC_ERR_UNSUPPORTED;
        }
    }
    for (int64_t il = e->opts.layer_begin; il < e->opts.layer_end; il++) {
        const struct imc_layer *l = &m->layers[il];
        const struct imc_tensor_info *t[IMC_LAYER_N_MATRICES];
        imc_layer_matrices(l, t);
        for (int i = 0; i < IMC_LAYER_N_MATRICES; i++) {
            const bool exps = i >= IMC_LAYER_EXPS && i < IMC_LAYER_EXPS + 3;
            const struct imc_backend *b = exps ? e->be_exp : e->be;
            if (t[i] && !b->supports(IMC_OP_MATMUL, t[i]->type)) {
                IMC_LOG_ERR("engine: tensor '%s': type %s not supported by backend %s", t[i]->name,
                            imc_type_name((uint32_t)t[i]->type), b->name);
                return IMC_ERR_UNSUPPORTED;
            }
        }
    }
    return IMC_OK;
}

// This shard's experts and the owner of every expert (all here without ep_comm).
static enum imc_status resolve_experts(struct imc_engine *e)
{
    const int64_t ne = e->m->hp.n_expert;
    e->ep_size = e->opts.ep_comm ? imc_comm_group_size(e->opts.ep_comm, IMC_GROUP_EXPERT) : 1;
    e->ep_rank = e->opts.ep_comm ? imc_comm_group_rank(e->opts.ep_comm, IMC_GROUP_EXPERT) : 0;
    if (e->ep_size > IMC_ENG_MAX_SHARDS) {
        IMC_LOG_ERR("engine: %d expert shards per stage, at most %d are supported", e->ep_size,
                    IMC_ENG_MAX_SHARDS);
        return IMC_ERR_ARG;
    }
    if (e->ep_size > 1 && e->ep_size > ne) {
        IMC_LOG_ERR("engine: %d expert shards for a model with %" PRId64 " experts per layer",
                    e->ep_size, ne);
        return IMC_ERR_ARG;
    }
    imc_plan_expert_range(ne, e->ep_size, e->ep_rank, &e->expert_begin, &e->expert_end);
    e->expert_owner = ne > 0 ? malloc((size_t)ne * sizeof(*e->expert_owner)) : NULL;
    if (ne > 0 && !e->expert_owner) {
        IMC_LOG_ERR("engine: out of memory");
        return IMC_ERR_NOMEM;
    }
    for (int s = 0; s < e->ep_size; s++) {
        int64_t b, end;
        imc_plan_expert_range(ne, e->ep_size, s, &b, &end);
        for (int64_t x = b; x < end; x++) {
            e->expert_owner[x] = s;
        }
    }
    return IMC_OK;
}

// The op table of o: o->backend when given, else by o->device (AUTO: cuda when this build has
// it and a device is visible, else cpu). NULL after logging what is missing for cuda.
static const struct imc_backend *pick_backend(const struct imc_engine_opts *o)
{
    if (o->backend) {
        return o->backend;
    }
    const struct imc_backend *cuda = imc_cuda_backend();
    const bool gpu = cuda && imc_cuda_devices() > 0;
    if (o->device == IMC_DEVICE_CUDA && !gpu) {
        IMC_LOG_ERR("engine: --device cuda: %s", cuda ? "no CUDA device visible"
                                                      : "this build has no CUDA (build with "
                                                        "-DIMC_CUDA=ON)");
        return NULL;
    }
    return o->device == IMC_DEVICE_CPU || !gpu ? imc_backend_cpu() : cuda;
}

static enum imc_status resolve_opts(struct imc_engine *e, const struct imc_engine_opts *o)
{
    const struct imc_model *m = e->m;
    e->opts = *o;
    e->opts.n_threads = o->n_threads > 0 ? o->n_threads : 1;
    e->opts.block_bytes = o->block_bytes > 0 ? o->block_bytes : IMC_ENGINE_BLOCK_BYTES;
    e->be = pick_backend(o);
    if (!e->be) {
        return IMC_ERR_UNSUPPORTED;
    }
    e->be_exp = o->experts_on_cpu ? imc_backend_cpu() : e->be;
    if (o->layer_begin == 0 && o->layer_end == 0) {
        e->opts.layer_end = m->hp.n_layer;
    }
    if (e->opts.layer_begin < 0 || e->opts.layer_begin >= e->opts.layer_end ||
        e->opts.layer_end > m->hp.n_layer) {
        IMC_LOG_ERR("engine: layer range [%" PRId64 ", %" PRId64 ") not within [0, %" PRId64 ")",
                    o->layer_begin, o->layer_end, m->hp.n_layer);
        return IMC_ERR_ARG;
    }
    return resolve_experts(e);
}

enum imc_attn_path imc_attn_path_for(const struct imc_model *m, enum imc_attn_path req)
{
    if (m->arch != IMC_ARCH_DEEPSEEK2) {
        return IMC_ATTN_AUTO;
    }
    if (req == IMC_ATTN_AUTO) {
        return m->has_k_b ? IMC_ATTN_ABSORBED : IMC_ATTN_NON_ABSORBED;
    }
    return req;
}

static enum imc_status resolve_path(struct imc_engine *e)
{
    const struct imc_model *m = e->m;
    e->path = imc_attn_path_for(m, e->opts.attn);
    if (m->arch != IMC_ARCH_DEEPSEEK2) {
        return IMC_OK;
    }
    if (e->path == IMC_ATTN_ABSORBED && !m->has_k_b) {
        IMC_LOG_ERR("%s: absorbed MLA attention needs attn_k_b and attn_v_b, which this file "
                    "lacks (layout %s); use the non-absorbed path",
                    imc_gguf_path(m->gguf), imc_mla_layout_name(m->mla));
        return IMC_ERR_ARG;
    }
    if (e->path == IMC_ATTN_NON_ABSORBED && !m->has_kv_b) {
        IMC_LOG_ERR("%s: non-absorbed MLA attention needs attn_kv_b, which this file lacks "
                    "(layout %s); use the absorbed path",
                    imc_gguf_path(m->gguf), imc_mla_layout_name(m->mla));
        return IMC_ERR_ARG;
    }
    return IMC_OK;
}

// Maps the pages of the weights this engine reads (worker/slice.h: its layers, its own experts,
// the head where it runs the last layer; not the token embedding, of which a run reads a few
// rows) with one madvise per range, instead of taking a page fault every few pages on first use
// during the forward pass (llama.cpp maps the whole file with MAP_POPULATE). Best effort: where
// the kernel lacks MADV_POPULATE_READ (Linux < 5.14) the pages fault in as before.
static void prefault_weights(const struct imc_engine *e)
{
#ifdef MADV_POPULATE_READ
    const struct imc_slice_spec sp = {.layer_begin = e->opts.layer_begin,
                                      .layer_end = e->opts.layer_end,
                                      .expert_begin = e->expert_begin,
                                      .expert_end = e->expert_end,
                                      .embedding = false,
                                      .head = e->opts.layer_end == e->m->hp.n_layer};
    struct imc_slice s;
    if (imc_slice_init(&s, e->m, &sp) != IMC_OK) {
        return; // (logged) the pages fault in as they are used
    }
    for (int64_t i = 0; i < s.n; i++) {
        if (madvise((void *)(uintptr_t)s.r[i].p, s.r[i].len, MADV_POPULATE_READ) != 0) {
            IMC_LOG_DBG("engine: prefaulting %zu bytes of weights: %s", s.r[i].len,
                        strerror(errno));
            break;
        }
    }
    imc_slice_free(&s);
#else
    (void)e;
#endif
}

// Whether the engine's layers include an MoE layer (then shards exchange routed rows).
static bool runs_moe(const struct imc_engine *e)
{
    for (int64_t il = e->opts.layer_begin; il < e->opts.layer_end; il++) {
        if (e->m->layers[il].is_moe) {
            return true;
        }
    }
    return false;
}

enum imc_status imc_engine_init(struct imc_engine **out, const struct imc_model *m,
                                const struct imc_engine_opts *opts)
{
    *out = NULL;
    struct imc_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        IMC_LOG_ERR("engine: out of memory");
        return IMC_ERR_NOMEM;
    }
    e->m = m;
    struct imc_engine_opts def = imc_engine_opts_default();
    enum imc_status st = resolve_opts(e, opts ? opts : &def);
    if (st == IMC_OK) {
        st = resolve_path(e);
    }
    if (st == IMC_OK) {
        st = check_types(e);
    }
    if (st == IMC_OK) {
        st = copy_vectors(e);
    }
    if (st == IMC_OK) {
        st = imc_exec_init(&e->ex, e->opts.n_threads);
        if (st == IMC_OK) {
            imc_exec_set_matmul(e->ex, e->opts.matmul);
        }
    }
    if (st == IMC_OK && e->be->ctx_new) { // the table's state: freed in imc_engine_free
        st = e->be->ctx_new(&e->be_ctx);
        imc_exec_set_backend_ctx(e->ex, e->be_ctx);
    }
    if (st == IMC_OK && e->be->buf_alloc) { // activations in the table's memory
        e->dev = true;
        e->arena.be = e->be;
        e->arena.ctx = e->be_ctx;
        st = vectors_to_table(e);
    }
    if (st == IMC_OK && e->ep_size > 1 && runs_moe(e)) {
        // the shards agree now how their routed rows travel (collective over the group), so that
        // the activations' arena, reserved at the first call, leaves out rows the host keeps
        bool peer;
        st = eng_xchg_peer(e, &peer);
    }
    if (st != IMC_OK) {
        imc_engine_free(e);
        return st;
    }
    rope_setup(e);
    prefault_weights(e);
    *out = e;
    return IMC_OK;
}

float *imc_engine_hidden_alloc(struct imc_engine *e, int64_t n)
{
    const size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    if (e->n_hid_buf == IMC_ENG_MAX_HIDDEN) {
        IMC_LOG_ERR("engine: more than %d hidden arrays", IMC_ENG_MAX_HIDDEN);
        return NULL;
    }
    float *p = e->be->buf_alloc ? (float *)e->be->buf_alloc(e->be_ctx, bytes)
                                : (float *)aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
        IMC_LOG_ERR("engine: out of %s memory for %" PRId64 " hidden values",
                    e->be->buf_alloc ? e->be->name : "host", n);
        return NULL;
    }
    e->hid_buf[e->n_hid_buf++] = p;
    return p;
}

void *imc_engine_backend_ctx(const struct imc_engine *e)
{
    return e->be_ctx;
}

enum imc_status eng_stats_sync(struct imc_engine *e, bool release)
{
    const struct imc_stats_hooks *hk = e->opts.hooks;
    return hk && hk->on_sync ? hk->on_sync(hk->user, e->ex, e->be, release) : IMC_OK;
}

void imc_engine_free(struct imc_engine *e)
{
    if (!e) {
        return;
    }
    if (e->ex && e->be_ctx) { // the hooks let go of the table's memory while it is attached
        (void)eng_stats_sync(e, true);
    }
    eng_xchg_free(e);
    for (int i = 0; i < e->n_hid_buf; i++) {
        if (e->be->buf_free) {
            e->be->buf_free(e->be_ctx, e->hid_buf[i]);
        } else {
            free(e->hid_buf[i]);
        }
    }
    if (e->ex) {
        imc_exec_set_backend_ctx(e->ex, NULL);
    }
    if (e->arena.hw > 0) {
        IMC_LOG_DBG("engine: the activations' arena at its most %zu bytes (%s memory%s); the "
                    "bound of worker/engine_mem.h for the last call's %lld tokens %zu bytes",
                    e->arena.hw, e->dev ? e->be->name : "host",
                    e->dev ? "" : ", the engine's host arrays among them",
                    (long long)(e->n_seq * e->n_ctx), eng_act_bound(e, e->n_seq * e->n_ctx));
    }
    eng_arena_free(&e->arena); // the table's buffers among them: before its state
    eng_arena_free(&e->harena);
    if (e->vec_buf) {
        e->be->buf_free(e->be_ctx, e->vec_buf);
    }
    eng_head_free(e);
    if (e->dev) {
        e->be->buf_free(e->be_ctx, e->pos_o);
    }
    if (e->lvo != e->lv) {
        free(e->lvo);
    }
    if (e->be && e->be->ctx_free) {
        e->be->ctx_free(e->be_ctx);
    }
    imc_exec_free(e->ex);
    for (int64_t il = 0; e->lv && il < e->m->hp.n_layer; il++) {
        struct eng_layer *v = &e->lv[il];
        free(v->attn_norm);
        free(v->q_a_norm);
        free(v->kv_a_norm);
        free(v->ffn_norm);
        free(v->exp_probs_b);
        free(v->q_norm);
        free(v->k_norm);
        free(v->bq);
        free(v->bk);
        free(v->bv);
    }
    free(e->lv);
    free(e->output_norm);
    free(e->pos);
    free(e->tok);
    free(e->chk);
    free(e->expert_owner);
    free(e);
}

// ---- forward ------------------------------------------------------------------------------------

// On a table with its own memory: the call's n positions copied there, so RoPE (twice a layer)
// reads them in place (pos_o; a buffer of pos_cap positions, grown with it). Positions depend
// only on n_ctx, so the copy is made when the sequence length changes or the call is longer
// than any before it, not per call (a pipeline stage's batches all have the same shape).
static enum imc_status positions_to_table(struct imc_engine *e, int64_t n)
{
    if (e->pos_o_cap < e->pos_cap) {
        e->be->buf_free(e->be_ctx, e->pos_o);
        e->pos_o = e->be->buf_alloc(e->be_ctx, (size_t)e->pos_cap * sizeof(int32_t));
        e->pos_o_cap = e->pos_o ? e->pos_cap : 0;
        e->pos_o_n = 0;
        if (!e->pos_o) {
            return IMC_ERR_NOMEM;
        }
    }
    if (e->pos_o_ctx == e->n_ctx && n <= e->pos_o_n) {
        return IMC_OK; // the table holds them already
    }
    e->pos_o_n = 0; // until the copy is made
    IMC_TRY(e->be->upload(e->ex, e->pos_o, e->pos, (size_t)n * sizeof(int32_t)));
    e->pos_o_n = n;
    e->pos_o_ctx = e->n_ctx;
    return IMC_OK;
}

// Positions 0..n_ctx-1 of every sequence of the call and the batch token index of every row
// (sequences seq0 ..). No sequence at all only for an expert shard.
static enum imc_status set_shape(struct imc_engine *e, int64_t n_seq, int64_t n_ctx, int64_t seq0)
{
    const int64_t min_seq = e->opts.ep_comm ? 0 : 1;
    if (n_seq < min_seq || n_ctx < 1 || seq0 < 0 || seq0 + n_seq > INT32_MAX / n_ctx) {
        IMC_LOG_ERR("engine: bad batch shape %" PRId64 " sequences (from %" PRId64 ") x %" PRId64
                    " tokens",
                    n_seq, seq0, n_ctx);
        return IMC_ERR_ARG;
    }
    const int64_t n = n_seq * n_ctx;
    if (n > e->pos_cap) {
        int32_t *p = realloc(e->pos, (size_t)n * sizeof(*p));
        int32_t *t = p ? realloc(e->tok, (size_t)n * sizeof(*t)) : NULL;
        if (p) {
            e->pos = p;
        }
        if (!t) {
            IMC_LOG_ERR("engine: out of memory for %" PRId64 " positions", n);
            return IMC_ERR_NOMEM;
        }
        e->tok = t;
        e->pos_cap = n;
    }
    for (int64_t i = 0; i < n; i++) {
        e->pos[i] = (int32_t)(i % n_ctx);
        e->tok[i] = (int32_t)(seq0 * n_ctx + i);
    }
    e->n_seq = n_seq;
    e->n_ctx = n_ctx;
    if (!e->dev) {
        e->pos_o = e->pos;
        return IMC_OK;
    }
    return positions_to_table(e, n);
}

static enum imc_status embed_impl(struct imc_engine *e, const int32_t *tokens, int64_t n_tokens,
                                  float *hidden)
{
    const struct imc_tensor_info *te = e->m->tok_embd;
    for (int64_t t = 0; t < n_tokens; t++) {
        if (tokens[t] < 0 || tokens[t] >= e->m->hp.n_vocab) {
            IMC_LOG_ERR("engine: token id %" PRId32 " at position %" PRId64
                        " outside the vocabulary [0, %" PRId64 ")",
                        tokens[t], t, e->m->hp.n_vocab);
            return IMC_ERR_ARG;
        }
    }
    // on a table with its own memory: looked up and checked there, then moved out once
    if (e->dev && !eng_arena_first(e, n_tokens)) {
        return IMC_ERR_NOMEM;
    }
    struct eng_mark mk = eng_mark(e);
    float *h = e->dev ? eng_f32(e, n_tokens * te->ne[0]) : hidden;
    enum imc_status st = h ? IMC_OK : IMC_ERR_NOMEM;
    if (st == IMC_OK) {
        ENG_TIMED(e, IMC_PROF_EMBED,
                  st = e->be->get_rows(e->ex, h, te->data, te->type, te->ne[0], tokens, n_tokens));
    }
    if (st == IMC_OK) {
        st = eng_check(e, -1, "the token embeddings", h, te->ne[0], n_tokens, te->ne[0]);
    }
    const enum imc_status pst = eng_check_poll(e); // deferred checks: answered here
    st = st != IMC_OK ? st : pst;
    if (st == IMC_OK && h != hidden) {
        st = e->be->move_rows(e->ex, hidden, NULL, h, NULL, n_tokens, te->ne[0]);
    }
    eng_release(e, mk);
    return st;
}

enum imc_status imc_engine_embed(struct imc_engine *e, const int32_t *tokens, int64_t n_tokens,
                                 float *hidden)
{
    const double t0 = imc_clock_now();
    eng_head_forget(e);
    const enum imc_status st = embed_impl(e, tokens, n_tokens, hidden);
    e->prof_total += imc_clock_now() - t0;
    return st;
}

static enum imc_status run_layers(struct imc_engine *e, float *hidden, int64_t n)
{
    const bool ds2 = e->m->arch == IMC_ARCH_DEEPSEEK2;
    for (int64_t il = e->opts.layer_begin; il < e->opts.layer_end; il++) {
        // Attention adds its output into hidden: its scratch (at 128 heads and 512 tokens ~0.4
        // GB: the absorbed queries and the latent outputs) is free before the FFN takes its own.
        struct eng_mark mk = eng_mark(e);
        enum imc_status st =
            ds2 ? imc_ds2_attn(e, il, hidden, n) : imc_llama_attn(e, il, hidden, n);
        eng_release(e, mk);
        if (st == IMC_OK) {
            st = imc_ffn(e, il, hidden, n);
        }
        eng_release(e, mk);
        if (st == IMC_OK) {
            st = eng_check(e, il, "the layer output", hidden, e->m->hp.n_embd, n, e->m->hp.n_embd);
        }
        const enum imc_status pst = eng_check_poll(e); // deferred checks: once per layer
        IMC_TRY(st != IMC_OK ? st : pst);
    }
    return IMC_OK;
}

// On a table with its own memory the hidden rows move in once, stay there through the layers
// and move back once (the caller's hidden is host memory: MPI sends it between stages).
static enum imc_status layers_impl(struct imc_engine *e, float *hidden, int64_t n_seq,
                                   int64_t n_ctx, int64_t seq0)
{
    IMC_TRY(set_shape(e, n_seq, n_ctx, seq0));
    const int64_t n = n_seq * n_ctx, d = e->m->hp.n_embd;
    if (!e->dev) {
        return run_layers(e, hidden, n);
    }
    if (!eng_arena_first(e, n)) {
        return IMC_ERR_NOMEM;
    }
    struct eng_mark mk = eng_mark(e);
    float *x = eng_f32(e, n * d);
    enum imc_status st = x ? e->be->move_rows(e->ex, x, NULL, hidden, NULL, n, d) : IMC_ERR_NOMEM;
    if (st == IMC_OK) {
        st = run_layers(e, x, n);
    }
    if (st == IMC_OK) {
        st = e->be->move_rows(e->ex, hidden, NULL, x, NULL, n, d);
    }
    eng_release(e, mk);
    return st;
}

enum imc_status imc_engine_layers(struct imc_engine *e, float *hidden, int64_t n_seq, int64_t n_ctx,
                                  int64_t seq0)
{
    const double t0 = imc_clock_now();
    eng_head_forget(e);
    enum imc_status st = layers_impl(e, hidden, n_seq, n_ctx, seq0);
    st = st == IMC_OK ? eng_stats_sync(e, false) : st;
    e->prof_total += imc_clock_now() - t0;
    return st;
}

static bool owns_all_layers(const struct imc_engine *e)
{
    if (e->ep_size > 1) {
        IMC_LOG_ERR("engine: a whole-model forward cannot run on one of %d expert shards (use "
                    "embed/layers/head on every shard)",
                    e->ep_size);
        return false;
    }
    if (e->opts.layer_begin == 0 && e->opts.layer_end == e->m->hp.n_layer) {
        return true;
    }
    IMC_LOG_ERR("engine: a whole-model forward needs all layers; this engine runs [%" PRId64
                ", %" PRId64 ") (use embed/layers/head)",
                e->opts.layer_begin, e->opts.layer_end);
    return false;
}

enum imc_status imc_engine_forward_batch(struct imc_engine *e, const int32_t *tokens, int64_t n_seq,
                                         int64_t n_ctx, int64_t out_begin, float *logits)
{
    if (!owns_all_layers(e)) {
        return IMC_ERR_ARG;
    }
    if (out_begin < 0 || out_begin > n_ctx || (out_begin < n_ctx && !logits)) {
        IMC_LOG_ERR("engine: output range [%" PRId64 ", %" PRId64 ") invalid", out_begin, n_ctx);
        return IMC_ERR_ARG;
    }
    IMC_TRY(set_shape(e, n_seq, n_ctx, 0));
    const int64_t d = e->m->hp.n_embd, n = n_seq * n_ctx, n_out = n_ctx - out_begin;
    float *hidden = malloc((size_t)n * (size_t)d * sizeof(float));
    if (!hidden) {
        IMC_LOG_ERR("engine: out of memory for %" PRId64 " x %" PRId64 " activations", n, d);
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = imc_engine_embed(e, tokens, n, hidden);
    if (st == IMC_OK) {
        st = imc_engine_layers(e, hidden, n_seq, n_ctx, 0);
    }
    for (int64_t s = 0; st == IMC_OK && n_out > 0 && s < n_seq; s++) {
        st = imc_engine_head(e, hidden, s * n_ctx + out_begin, n_out,
                             logits + s * n_out * e->m->hp.n_vocab);
    }
    free(hidden);
    return st;
}

enum imc_status imc_engine_forward(struct imc_engine *e, const int32_t *tokens, int64_t n_tokens,
                                   float *logits)
{
    return imc_engine_forward_batch(e, tokens, 1, n_tokens, 0, logits);
}

const char *imc_prof_name(enum imc_prof k)
{
    static const char *const names[IMC_PROF_COUNT] = {"matmul", "attention", "norm",  "rope",
                                                      "swiglu", "route",     "embed", "hooks",
                                                      "checks", "exchange",  "other"};
    return k >= 0 && k < IMC_PROF_COUNT ? names[k] : "unknown";
}

void imc_engine_profile(const struct imc_engine *e, double seconds[IMC_PROF_COUNT])
{
    double known = 0;
    for (int k = 0; k < IMC_PROF_OTHER; k++) {
        seconds[k] = e->prof[k];
        known += e->prof[k];
    }
    seconds[IMC_PROF_OTHER] = e->prof_total > known ? e->prof_total - known : 0.0;
}

void imc_prof_format(const double seconds[IMC_PROF_COUNT], char *buf, size_t size)
{
    double total = 0;
    for (int k = 0; k < IMC_PROF_COUNT; k++) {
        total += seconds[k];
    }
    size_t n = 0;
    buf[0] = '\0';
    bool used[IMC_PROF_COUNT] = {false};
    for (int i = 0; total > 0 && i < IMC_PROF_COUNT; i++) { // kinds by decreasing time
        int best = -1;
        for (int k = 0; k < IMC_PROF_COUNT; k++) {
            best = !used[k] && (best < 0 || seconds[k] > seconds[best]) ? k : best;
        }
        used[best] = true;
        if (seconds[best] / total >= 0.0005 && n + 64 < size) {
            n += (size_t)snprintf(buf + n, size - n, "%s%s %.1f%% (%.3f s)", n ? ", " : "",
                                  imc_prof_name((enum imc_prof)best), 100.0 * seconds[best] / total,
                                  seconds[best]);
        }
    }
    if (n + 32 < size) {
        snprintf(buf + n, size - n, "%s%.3f s in all", n ? "; " : "", total);
    }
}

void imc_engine_log_profile(const struct imc_engine *e, const char *who)
{
    double t[IMC_PROF_COUNT];
    char line[512];
    imc_engine_profile(e, t);
    imc_prof_format(t, line, sizeof(line));
    IMC_LOG_DBG("%sprofile: %s", who, line);
}
