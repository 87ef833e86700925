/*
 * worker/engine_mem: the activation arena's high-water mark from the shapes (see engine_mem.h).
 * Each helper below mirrors one function of the forward code: the same buffers in the same
 * order, each as eng_f32 takes it. Where the code changes, this must follow; the bound check of
 * tests/cuda/test_engine_emu fails otherwise (it runs every preset and path).
 */
#include "worker/engine_mem.h"

#include "kernels/cuda/policy.h" // the CUDA table's lines and weight tile
#include "kernels/kernels.h"     // struct imc_nll_row: the scores' bytes
#include "model/arch.h"
#include "types/types.h"
#include "worker/stats_collect_priv.h" // SCOL_*: the collector's slots and blocks

#define ALIGN 64 // worker/engine_step.c: eng_f32's rounding

// The bytes eng_f32(e, n) takes from the arena.
static int64_t f32(int64_t n)
{
    return (n * 4 + 4 + ALIGN - 1) / ALIGN * ALIGN;
}

static int64_t max2(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t min2(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

// forward_llama.c imc_llama_attn: h, q, k, v, o, y.
static int64_t llama_attn(const struct imc_hparams *hp, int64_t n)
{
    const int64_t nq = hp->n_head * hp->head_dim, nkv = hp->n_head_kv * hp->head_dim;
    return 2 * f32(n * hp->n_embd) + 2 * f32(n * nq) + 2 * f32(n * nkv);
}

// forward_deepseek2.c imc_ds2_attn: q, kva, c, o, y; project's h (and qa); then the path's own.
static int64_t ds2_attn(const struct imc_model *m, const struct imc_layer *l,
                        const struct imc_engine_mem_q *q, int64_t n)
{
    const struct imc_hparams *hp = &m->hp;
    const int64_t H = hp->n_head, qk = hp->qk_nope + hp->qk_rope, kvl = hp->kv_lora,
                  kd = hp->kv_lora + hp->qk_rope;
    int64_t b = f32(n * H * qk) + f32(n * kd) + f32(n * kvl) + f32(n * H * hp->v_head) +
                f32(n * hp->n_embd);
    b += f32(n * hp->n_embd) + (hp->q_lora > 0 ? f32(n * hp->q_lora) : 0);
    if (q->path == IMC_ATTN_ABSORBED) { // absorbed: qt, ot of a block of heads (absorbed_heads)
        const int64_t per_head = n * (kd + kvl) * 4;
        const int64_t bytes = q->block_bytes > 0 ? q->block_bytes : IMC_ENGINE_BLOCK_BYTES;
        const int64_t hb = per_head > 0 ? min2(max2(bytes / per_head, 1), H) : H;
        b += f32(n * hb * kd) + f32(n * hb * kvl);
    } else { // non-absorbed: kv, k, and õ when the hooks want attn_v_b's input
        b += f32(n * H * (hp->qk_nope + hp->v_head)) + f32(n * H * qk);
        b += q->hooks && l->wv_b ? f32(n * H * kvl) : 0;
    }
    return b;
}

// Whether a shard's routed rows are host memory: they go through the host (MPI), as they always
// do with the experts on the cpu table (worker/exchange.c).
static bool rows_on_host(const struct imc_engine_mem_q *q)
{
    return q->ep_size > 1 && (q->host_rows || q->experts_on_cpu);
}

// moe.c dense: g, u.
static int64_t dense(const struct imc_tensor_info *wg, int64_t n)
{
    return 2 * f32(n * wg->ne[1]);
}

// The (token, expert) pairs a shard's experts receive in a call of n tokens per shard, at their
// worst: every pair of every shard routed here (min(k, own experts) per token).
static int64_t pairs_received(const struct imc_model *m, const struct imc_engine_mem_q *q,
                              int64_t n)
{
    const int64_t k = m->hp.n_expert_used, n_own = q->expert_end - q->expert_begin;
    return q->ep_size > 1 ? q->ep_size * n * min2(k, n_own) : n * k;
}

// The rows of the largest group of experts (moe.c run_experts): experts whose rows fit
// block_bytes, or one expert alone with every token of the stage (each token once: <= ep·n).
static int64_t group_rows(const struct imc_model *m, const struct imc_engine_mem_q *q, int64_t n)
{
    const int64_t d = m->hp.n_embd, fe = m->hp.n_ff_exp, nr = pairs_received(m, q, n);
    const int64_t ep = q->ep_size > 1 ? q->ep_size : 1;
    const int64_t bytes = q->block_bytes > 0 ? q->block_bytes : IMC_ENGINE_BLOCK_BYTES;
    const int64_t max_rows = max2(bytes / (2 * (d + fe) * 4), 1);
    return max2(min2(max_rows, nr), min2(ep * n, nr));
}

// moe.c moe: logits, w; dispatch's send and received rows (shards; at their worst, every pair
// of every shard routed here; in the tables' memory unless they go through the host);
// run_experts' outputs (likewise), the largest group's four buffers (on the device unless
// --experts-on cpu) and the gather and scatter orders (with the rows in the tables' memory); the
// shared expert's ys and its dense buffers.
static int64_t moe(const struct imc_model *m, const struct imc_layer *l,
                   const struct imc_engine_mem_q *q, int64_t n)
{
    const struct imc_hparams *hp = &m->hp;
    const int64_t k = hp->n_expert_used, d = hp->n_embd, fe = hp->n_ff_exp;
    const int ep = q->ep_size > 1 ? q->ep_size : 1;
    const bool host = rows_on_host(q);
    int64_t b = f32(n * hp->n_expert) + f32(n * k);
    const int64_t nr = pairs_received(m, q, n);
    if (ep > 1 && !host) {
        b += f32(n * k * d) + f32(nr * d);
    }
    b += host ? 0 : f32(nr * d);
    const int64_t g_rows = group_rows(m, q, n);
    if (!q->experts_on_cpu) { // the group's buffers, and the orders uploaded with the rows there
        b += 2 * f32(g_rows * d) + 2 * f32(g_rows * fe) + (host ? 0 : 2 * f32(nr));
    }
    if (l->ffn_gate_shexp) {
        b += f32(n * d) + dense(l->ffn_gate_shexp, n);
    }
    return b;
}

// moe.c imc_ffn: h, y, then the dense FFN or the MoE block.
static int64_t ffn(const struct imc_model *m, const struct imc_layer *l,
                   const struct imc_engine_mem_q *q, int64_t n)
{
    const int64_t b = 2 * f32(n * m->hp.n_embd);
    return b + (l->is_moe ? moe(m, l, q, n) : dense(l->ffn_gate, n));
}

size_t imc_engine_act_bytes(const struct imc_model *m, const struct imc_engine_mem_q *q)
{
    const int64_t n = q->n_tok, d = m->hp.n_embd;
    if (n < 1) {
        return 0;
    }
    struct imc_engine_mem_q r = *q;
    if (r.layer_begin == 0 && r.layer_end == 0) {
        r.layer_end = m->hp.n_layer;
    }
    if (r.expert_begin == 0 && r.expert_end == 0) {
        r.expert_end = m->hp.n_expert;
    }
    // engine.c layers_impl's x, then each layer: attention, released, then the FFN
    int64_t layer = 0;
    for (int64_t il = r.layer_begin; il < r.layer_end; il++) {
        const struct imc_layer *l = &m->layers[il];
        const int64_t attn =
            m->arch == IMC_ARCH_DEEPSEEK2 ? ds2_attn(m, l, &r, n) : llama_attn(&m->hp, n);
        layer = max2(layer, max2(attn, ffn(m, l, &r, n)));
    }
    // embed_impl's and head_impl's rows (at most n: a head call scores rows of the last call)
    return (size_t)(f32(n * d) + layer);
}

// ---- the statistics collector's device slots -------------------------------------------------

// A collector's slots, summed: their bytes and the largest.
struct slots {
    int64_t bytes, largest;
};

// n slots of n_per_row doubles, each rounded as take_slot rounds it.
static void add_slots(struct slots *s, int64_t n, int64_t n_per_row)
{
    const int64_t one = (n_per_row * 8 + SCOL_ALIGN - 1) / SCOL_ALIGN * SCOL_ALIGN;
    s->bytes += n * one;
    s->largest = n > 0 && one > s->largest ? one : s->largest;
}

// The slots of weight w: one per matrix of a 3D weight (own: how many of them this rank runs),
// one per head of a 2D attn_k_b / attn_v_b (reported per head, folded), else one.
static void weight_slots(struct slots *s, const struct imc_tensor_info *w, int64_t own,
                         int64_t heads)
{
    if (w) {
        add_slots(s, w->ne[2] > 1 ? own : heads, w->ne[0]);
    }
}

size_t imc_engine_stats_bytes(const struct imc_model *m, const struct imc_engine_mem_q *q,
                              bool head, size_t *slot_bytes)
{
    struct imc_engine_mem_q r = *q;
    if (r.layer_begin == 0 && r.layer_end == 0) {
        r.layer_end = m->hp.n_layer;
    }
    if (r.expert_begin == 0 && r.expert_end == 0) {
        r.expert_end = m->hp.n_expert;
    }
    const int64_t H = m->hp.n_head, own = r.expert_end - r.expert_begin;
    struct slots s = {0, 0};
    for (int64_t il = r.layer_begin; il < r.layer_end; il++) {
        const struct imc_layer *l = &m->layers[il];
        const struct imc_tensor_info *t[IMC_LAYER_N_MATRICES];
        imc_layer_matrices(l, t);
        for (int i = 0; i < IMC_LAYER_N_MATRICES; i++) {
            if (t[i] && (t[i] == l->wk_b || t[i] == l->wv_b)) { // a slot per head
                weight_slots(&s, t[i], t[i]->ne[2], H);
            } else if (i >= IMC_LAYER_EXPS && i < IMC_LAYER_EXPS + 3) {   // per expert run here
                weight_slots(&s, r.experts_on_cpu ? NULL : t[i], own, 1); // else host sums
            } else {
                weight_slots(&s, t[i], 1, 1);
            }
        }
    }
    if (head) {
        weight_slots(&s, m->output, 1, 1);
    }
    if (slot_bytes) {
        *slot_bytes = (size_t)s.bytes;
    }
    return imc_engine_stats_blocks((size_t)s.bytes, (size_t)s.largest);
}

size_t imc_engine_stats_blocks(size_t slot_bytes, size_t largest)
{
    // blocks from SCOL_FIRST_BLOCK, doubling up to SCOL_LARGEST_BLOCK (or one slot, if larger);
    // a slot that does not fit the last block's rest opens the next one, so a block leaves at
    // most largest - SCOL_ALIGN unused at its end (both multiples of SCOL_ALIGN)
    size_t cap_sum = 0, usable = 0, cap = 0;
    while (usable < slot_bytes) {
        cap = cap ? 2 * cap : SCOL_FIRST_BLOCK;
        cap = cap > SCOL_LARGEST_BLOCK ? SCOL_LARGEST_BLOCK : cap;
        cap = cap < largest ? largest : cap;
        cap_sum += cap;
        usable += cap - (largest > SCOL_ALIGN ? largest - SCOL_ALIGN : 0);
    }
    return cap_sum;
}

// ---- the CUDA op table's scratch --------------------------------------------------------------

static size_t maxz(size_t a, size_t b)
{
    return a > b ? a : b;
}

// The f32 bytes of a vector tensor (0 without one): the engine places each in the table's
// memory once with the table's copy, from the host (worker/engine.c vectors_to_table).
static size_t vec_bytes(const struct imc_tensor_info *t)
{
    return t ? (size_t)imc_tensor_elems(t) * 4 : 0;
}

// Whether a matmul of n_tok tokens on weights of type takes the table's batch path (table.cu
// path_of), at s's lines.
static bool batch(const struct imc_engine_scratch_q *s, enum imc_type type, int64_t n_tok)
{
    const bool both0 = s->mmv_tok == 0 && s->mmq_tok == 0;
    const int64_t mmv = both0 ? IMC_CUDA_MMV_TOKENS : s->mmv_tok;
    const int64_t mmq = both0 ? IMC_CUDA_MMQ_TOKENS : s->mmq_tok;
    return n_tok > mmv && !(s->q8 && type != IMC_TYPE_F32 && n_tok <= mmq);
}

// A matmul of up to n_tok tokens on n_out x n_in weights of type: what the batch path takes when
// n_tok passes the table's line for it (table.cu path_of): the weight tile (rows dequantized to
// f32, or bf16 under q8; none for f32 weights) and under q8 the bf16 activations.
static void batch_scratch(struct imc_engine_scratch *p, enum imc_type type, int64_t n_out,
                          int64_t n_in, int64_t n_tok, const struct imc_engine_scratch_q *s)
{
    const bool bf16 = s->q8 && type != IMC_TYPE_F32;
    if (!batch(s, type, n_tok) || n_out < 1 || n_in < 1) {
        return; // mmv or mmq: straight on the weights
    }
    const size_t es = bf16 ? 2 : 4;
    if (type != IMC_TYPE_F32) {
        int64_t rows = (int64_t)(IMC_CUDA_TILE_BYTES / ((size_t)n_in * es));
        rows = rows < 1 ? 1 : rows > n_out ? n_out : rows;
        p->tile = maxz(p->tile, (size_t)(rows * n_in) * es);
    }
    if (bf16) {
        p->a = maxz(p->a, (size_t)(n_tok * n_in) * 2);
    }
}

// The matrices of layer l this rank multiplies on the device (the attention path's, the routed
// experts' unless they are on the cpu), each at the most tokens it gets; MLA's heads also at
// their strided operands, copied in and out when they leave the group (past its line).
static void layer_scratch(struct imc_engine_scratch *p, const struct imc_model *m,
                          const struct imc_layer *l, const struct imc_engine_mem_q *q,
                          const struct imc_engine_scratch_q *s)
{
    const int64_t n = q->n_tok, ep = q->ep_size > 1 ? q->ep_size : 1;
    const struct imc_tensor_info *t[IMC_LAYER_N_MATRICES];
    imc_layer_matrices(l, t);
    const bool absorbed = q->path == IMC_ATTN_ABSORBED;
    for (int i = 0; i < IMC_LAYER_N_MATRICES; i++) {
        const struct imc_tensor_info *w = t[i];
        const bool exps = i >= IMC_LAYER_EXPS && i < IMC_LAYER_EXPS + 3;
        if (!w || (exps && q->experts_on_cpu) || (w == l->wkv_b && absorbed && l->wk_b) ||
            ((w == l->wk_b || w == l->wv_b) && !absorbed)) {
            continue;
        }
        const enum imc_type ty = (enum imc_type)w->type;
        if (w == l->wk_b || w == l->wv_b) { // per head: n_in = ne[0]
            const int64_t n_out = w == l->wk_b ? m->hp.kv_lora : m->hp.v_head;
            batch_scratch(p, ty, n_out, w->ne[0], n, s);
            if (batch(s, ty, n)) {
                p->x = maxz(p->x, (size_t)(n * w->ne[0]) * 4);
                p->y = maxz(p->y, (size_t)(n * n_out) * 4);
            }
            continue;
        }
        batch_scratch(p, ty, w->ne[1], w->ne[0], exps ? ep * n : n, s);
    }
    if (!l->is_moe) {
        return;
    }
    const size_t np = (size_t)(n * m->hp.n_expert_used), row = (size_t)m->hp.n_embd * 4;
    const size_t g = (size_t)group_rows(m, q, n);
    p->b = maxz(p->b, np * 4); // the routing ids come back to the host
    p->a = maxz(p->a, np * 4); // the weighted sum's positions, the dispatch's order (shards)
    if (rows_on_host(q)) {
        // through the host: the rows sent come down, the rows returned go up for the sum, and
        // the experts on this table gather and scatter each group's rows on the host (the cpu
        // table's experts move host rows without it)
        p->y = maxz(p->y, np * row);
        p->x = maxz(p->x, np * row);
        if (!q->experts_on_cpu) {
            p->x = maxz(p->x, g * row);
            p->y = maxz(p->y, g * row);
        }
    } else if (q->experts_on_cpu) { // a group's rows to the cpu table and back, by index
        p->x = maxz(p->x, g * row);
        p->y = maxz(p->y, g * row);
        p->a = maxz(p->a, g * 4);
        p->b = maxz(p->b, g * 4);
    }
}

size_t imc_engine_scratch_bytes(const struct imc_model *m, const struct imc_engine_mem_q *q,
                                const struct imc_engine_scratch_q *s,
                                struct imc_engine_scratch *parts)
{
    struct imc_engine_scratch p = {0, 0, 0, 8, 0}; // find_nonfinite's index
    struct imc_engine_mem_q r = *q;
    if (r.layer_begin == 0 && r.layer_end == 0) {
        r.layer_end = m->hp.n_layer;
    }
    if (r.expert_begin == 0 && r.expert_end == 0) {
        r.expert_end = m->hp.n_expert;
    }
    const int64_t n = r.n_tok;
    for (int64_t il = r.layer_begin; n > 0 && il < r.layer_end; il++) {
        layer_scratch(&p, m, &m->layers[il], &r, s);
        const struct imc_tensor_info *v[IMC_LAYER_N_VECTORS];
        imc_layer_vectors(&m->layers[il], v);
        for (int i = 0; i < IMC_LAYER_N_VECTORS; i++) { // placed once by the table's copy
            p.x = maxz(p.x, vec_bytes(v[i]));
        }
    }
    p.x = n > 0 ? maxz(p.x, vec_bytes(m->output_norm)) : p.x;
    uint64_t rb = 0;
    if (n > 0 && s->embed && m->tok_embd &&
        imc_type_row_bytes(m->tok_embd->type, m->tok_embd->ne[0], &rb)) {
        p.a = maxz(p.a, (size_t)n * (size_t)rb); // get_rows: the rows gathered on the host
    }
    if (n > 0 && r.layer_end == m->hp.n_layer && m->output) { // the head: at most n rows a call
        batch_scratch(&p, (enum imc_type)m->output->type, m->output->ne[1], m->output->ne[0], n, s);
    }
    // the caller's host hidden rows: in (layers, the head), out (embed, layers)
    if (n > 0 && s->host_hidden) {
        p.x = maxz(p.x, (size_t)(n * m->hp.n_embd) * 4);
        p.y = maxz(p.y, (size_t)(n * m->hp.n_embd) * 4);
    }
    if (s->score_rows > 0) { // nll_rows: targets, base rows, scores
        const int64_t k = s->score_rows;
        p.a = maxz(p.a, (size_t)k * 4);
        p.b = maxz(p.b, (size_t)(k * s->base_len) * 2);
        p.y = maxz(p.y, (size_t)k * sizeof(struct imc_nll_row));
    }
    if (parts) {
        *parts = p;
    }
    return p.tile + p.x + p.y + p.a + p.b;
}
