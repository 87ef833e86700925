/*
 * worker/moe: the FFN block of both architectures (DESIGN.md §5, FFN lines; §6 "Experts"):
 *
 *   h = RMSNorm(x; ffn_norm)
 *   dense:  y = W_down (silu(W_gate h) ⊙ W_up h)
 *   MoE:    p, E, w = route(W_gate_inp h)            (kernels: imc_*_moe_route)
 *           y = Σ_{k in slot order} w_k · W_down,E_k(silu(W_gate,E_k h) ⊙ W_up,E_k h)
 *               + shared expert (unweighted, dense SwiGLU with *_shexp)
 *   x += y
 *
 * Routed experts take one path, for a single engine and for expert shards alike:
 *   1. route this engine's tokens: pairs (t, s) with expert E[t][s] and weight w[t][s];
 *   2. dispatch: the pairs in (t, s) order, grouped by the shard owning their expert. With
 *      shards, each pair's row h[t] and its (token, expert) record go to that shard (all-to-all);
 *      a single engine reads its pairs' rows from h directly;
 *   3. every owned expert, ascending, runs once over the pairs it received, in arrival order:
 *      source shard ascending, then token order (gate, up and down each one backend call over
 *      a group of consecutive experts, whose tiles then run together). Shards own ascending
 *      sequence ranges, so that is the global token order, the rows a single engine gathers for
 *      the expert; the hooks see exactly those rows with their batch token indices;
 *   4. combine: the expert outputs return to the token's shard in dispatch order (all-to-all);
 *      y_t = Σ_s w[t][s] · out[t][s] in slot order (each product rounded to float, then added,
 *      as llama.cpp adds the weighted expert outputs), plus the shared expert.
 * Every per-token value is therefore bitwise the same with or without shards (the matmul's rows
 * do not depend on the other rows of the call). The rows of both all-to-alls travel as
 * worker/exchange.c decides: in the table's memory (NCCL between GPU shards) or through the host
 * (MPI); the counts and records always go through MPI.
 */
#include <inttypes.h>
#include <string.h>

#include "core/log.h"
#include "mpi/xfer.h"
#include "worker/engine_priv.h"

// y [n][d] = W_down (silu(W_gate h) ⊙ W_up h) for 2D weights (dense layer or shared expert).
static enum imc_status dense(struct imc_engine *e, int64_t il, const struct imc_tensor_info *wg,
                             const struct imc_tensor_info *wu, const struct imc_tensor_info *wd,
                             const float *h, float *y, int64_t n)
{
    const int64_t d = e->m->hp.n_embd, ff = wg->ne[1];
    float *g = eng_f32(e, n * ff), *u = eng_f32(e, n * ff);
    if (!g || !u) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(eng_matmul(e, il, wg, -1, ff, g, ff, h, d, n));
    IMC_TRY(eng_matmul(e, il, wu, -1, ff, u, ff, h, d, n));
    ENG_TIMED(e, IMC_PROF_FFN_ACT, e->be->swiglu(e->ex, g, ff, g, ff, u, ff, n, ff));
    return eng_matmul(e, il, wd, -1, d, y, d, g, ff, n);
}

// What travels with a dispatched row.
struct pair_rec {
    int32_t tok;    // batch token index (the hooks' numbering)
    int32_t expert; // routed expert
};

struct moe_pairs {
    int64_t n_pair;       // n * k pairs of this engine's tokens
    int32_t *ids;         // [n][k] selected experts
    float *w;             // [n][k] their weights
    int32_t *order;       // [n_pair] pair index t*k+s in dispatch order (grouped by owner)
    uint64_t *send_cnt;   // [ep] pairs to each shard
    uint64_t *recv_cnt;   // [ep] pairs from each shard
    int64_t n_recv;       // pairs this shard computes
    struct pair_rec *rec; // [n_recv] their records, in arrival order
    const float *rows;    // rows the received pairs read: h (one engine) or the received rows
    bool table_rows;      // rows, out and back are activations (the table's memory): one engine,
                          // or shards whose tables exchange them (exchange.c); else host rows
    int32_t *src;         // [n_recv] row of each received pair in rows
    float *out;           // [n_recv][d] expert output of each received pair (unweighted)
    const float *back;    // [n_pair][d] outputs in dispatch order (out for one engine)
};

// Pairs in dispatch order and per-shard counts; for one engine also the received side.
static enum imc_status plan_pairs(struct imc_engine *e, struct moe_pairs *p, const float *h,
                                  int64_t n)
{
    const int64_t k = e->m->hp.n_expert_used;
    const int ep = e->ep_size;
    p->n_pair = n * k;
    p->order = (int32_t *)eng_host(e, p->n_pair);
    p->send_cnt = (uint64_t *)eng_host_zero(e, 2 * ep);
    p->recv_cnt = (uint64_t *)eng_host_zero(e, 2 * ep);
    if (!p->order || !p->send_cnt || !p->recv_cnt) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t q = 0; q < p->n_pair; q++) {
        p->send_cnt[e->expert_owner[p->ids[q]]]++;
    }
    int64_t start[IMC_ENG_MAX_SHARDS + 1];
    IMC_ASSERT(ep <= IMC_ENG_MAX_SHARDS);
    start[0] = 0;
    for (int s = 0; s < ep; s++) {
        start[s + 1] = start[s] + (int64_t)p->send_cnt[s];
    }
    for (int64_t q = 0; q < p->n_pair; q++) {
        p->order[start[e->expert_owner[p->ids[q]]]++] = (int32_t)q;
    }
    if (ep > 1) {
        return IMC_OK;
    }
    p->n_recv = p->n_pair;
    p->rec = (struct pair_rec *)eng_host(e, 2 * p->n_pair);
    p->src = (int32_t *)eng_host(e, p->n_pair);
    if (!p->rec || !p->src) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t q = 0; q < p->n_pair; q++) {
        p->rec[q] = (struct pair_rec){e->tok[q / k], p->ids[q]};
        p->src[q] = (int32_t)(q / k);
    }
    p->rows = h;
    p->table_rows = true;
    return IMC_OK;
}

// The op table's move_rows (a gather, a scatter or both), timed as the exchange's or the
// experts' own work by the caller.
static enum imc_status move_rows(struct imc_engine *e, float *dst, const int32_t *dst_idx,
                                 const float *src, const int32_t *src_idx, int64_t n, int64_t d)
{
    return e->be->move_rows(e->ex, dst, dst_idx, src, src_idx, n, d);
}

// Byte counts of an all-to-all of pair-sized items of `unit` bytes each.
static void item_bytes(const uint64_t *pairs, int ep, size_t unit, size_t *bytes)
{
    for (int s = 0; s < ep; s++) {
        bytes[s] = (size_t)pairs[s] * unit;
    }
}

// Step 2 with shards: sends rows and records of the pairs to their owners.
static enum imc_status dispatch(struct imc_engine *e, struct moe_pairs *p, const float *h,
                                float **send_rows)
{
    const int64_t k = e->m->hp.n_expert_used, d = e->m->hp.n_embd;
    const int ep = e->ep_size;
    const struct imc_comm *c = e->opts.ep_comm;
    IMC_TRY(imc_xfer_alltoall_u64(c, IMC_GROUP_EXPERT, p->send_cnt, p->recv_cnt));
    p->n_recv = 0;
    for (int s = 0; s < ep; s++) {
        p->n_recv += (int64_t)p->recv_cnt[s];
    }
    // the rows stay in the table's memory where the tables exchange them (NCCL), else they
    // travel through MPI (host memory; Open MPI here is not CUDA-aware), moved in and out by the
    // table
    IMC_TRY(eng_xchg_peer(e, &p->table_rows));
    float *xs = p->table_rows ? eng_f32(e, p->n_pair * d) : eng_host(e, p->n_pair * d);
    float *xr = p->table_rows ? eng_f32(e, p->n_recv * d) : eng_host(e, p->n_recv * d);
    struct pair_rec *rs = (struct pair_rec *)eng_host(e, 2 * p->n_pair);
    int32_t *hrow = (int32_t *)eng_host(e, p->n_pair); // the row of h each sent row reads
    p->rec = (struct pair_rec *)eng_host(e, 2 * p->n_recv);
    p->src = (int32_t *)eng_host(e, p->n_recv);
    if (!xs || !xr || !rs || !hrow || !p->rec || !p->src) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t q = 0; q < p->n_pair; q++) {
        const int32_t pq = p->order[q];
        hrow[q] = (int32_t)(pq / k);
        rs[q] = (struct pair_rec){e->tok[pq / k], p->ids[pq]};
    }
    IMC_TRY(move_rows(e, xs, NULL, h, hrow, p->n_pair, d));
    size_t sb[IMC_ENG_MAX_SHARDS], rb[IMC_ENG_MAX_SHARDS];
    item_bytes(p->send_cnt, ep, sizeof(struct pair_rec), sb);
    item_bytes(p->recv_cnt, ep, sizeof(struct pair_rec), rb);
    IMC_TRY(imc_xfer_alltoallv_bytes(c, IMC_GROUP_EXPERT, rs, sb, p->rec, rb));
    IMC_TRY(eng_xchg_rows(e, xs, p->send_cnt, xr, p->recv_cnt));
    for (int64_t q = 0; q < p->n_recv; q++) {
        p->src[q] = (int32_t)q;
    }
    p->rows = xr;
    *send_rows = xs;
    return IMC_OK;
}

// A buffer of an expert group: host scratch (host) or activations.
static float *group_buf(struct imc_engine *e, bool host, int64_t n)
{
    return host ? (float *)eng_host(e, n) : eng_f32(e, n);
}

// The end of the group of experts starting at x0: as many as keep its rows within max_rows (at
// least one expert, whatever its rows).
static int64_t group_end(const int32_t *first, int64_t x0, int64_t n_own, int64_t max_rows)
{
    int64_t x1 = x0 + 1;
    while (x1 < n_own && first[x1 + 1] - first[x0] <= max_rows) {
        x1++;
    }
    return x1;
}

// Step 3: every owned expert, ascending, over the pairs it received (arrival order kept): the
// pairs grouped by expert (a counting sort, one pass whatever the number of experts); then, by
// groups of consecutive experts whose gathered rows, gate and up values and outputs fit
// opts.block_bytes, their rows gathered in that order and gate, up and down each as one call
// over the group's experts (their tiles run together, so experts of few tokens still keep every
// thread busy). All pairs of 1024 tokens at DeepSeek-V3's widths would take 0.6 GB, first touched
// (zeroed by the kernel) by every process and then held; rows are independent, so the bits do not
// depend on the groups.
static enum imc_status run_experts(struct imc_engine *e, int64_t il, struct moe_pairs *p)
{
    const struct imc_layer *l = &e->m->layers[il];
    const int64_t d = e->m->hp.n_embd, fe = e->m->hp.n_ff_exp, nr = p->n_recv;
    const int64_t eb = e->expert_begin, n_own = e->expert_end - e->expert_begin;
    // the outputs: activations, or host memory where they go back through MPI
    p->out = p->table_rows ? eng_f32(e, nr * d) : eng_host(e, nr * d);
    int32_t *sel = (int32_t *)eng_host(e, nr), *tok = (int32_t *)eng_host(e, nr);
    int32_t *srow = (int32_t *)eng_host(e, nr); // the row of p->rows each gathered row reads
    int32_t *first = (int32_t *)eng_host_zero(e, n_own + 1);
    if (!p->out || !sel || !tok || !srow || !first) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t q = 0; q < nr; q++) {
        first[p->rec[q].expert - eb + 1]++;
    }
    for (int64_t x = 0; x < n_own; x++) {
        first[x + 1] += first[x];
    }
    for (int64_t q = 0; q < nr; q++) {
        sel[first[p->rec[q].expert - eb]++] = (int32_t)q;
    }
    for (int64_t x = n_own; x > 0; x--) { // back to the start of each group
        first[x] = first[x - 1];
    }
    first[0] = 0;
    for (int64_t r = 0; r < nr; r++) {
        tok[r] = p->rec[sel[r]].tok;
        srow[r] = p->src[sel[r]];
    }
    const int64_t row_bytes = 2 * (d + fe) * (int64_t)sizeof(float);
    const int64_t max_rows =
        e->opts.block_bytes / row_bytes > 1 ? e->opts.block_bytes / row_bytes : 1;
    int64_t g_rows = 0; // rows of the largest group
    for (int64_t x0 = 0, x1; x0 < n_own; x0 = x1) {
        x1 = group_end(first, x0, n_own, max_rows);
        g_rows = first[x1] - first[x0] > g_rows ? first[x1] - first[x0] : g_rows;
    }
    // the routed experts' table (be_exp) reads and writes these: host memory for the cpu table
    // beside a table of its own memory (--experts-on cpu)
    const bool host = e->be_exp != e->be;
    float *xe = group_buf(e, host, g_rows * d), *g = group_buf(e, host, g_rows * fe);
    float *u = group_buf(e, host, g_rows * fe), *ye = group_buf(e, host, g_rows * d);
    if (!xe || !g || !u || !ye) {
        return IMC_ERR_NOMEM;
    }
    // a table of its own memory with the rows there: the gather and scatter orders go up once for
    // all groups, not once per group
    const int32_t *gsrow = srow, *gsel = sel;
    if (e->dev && !host && p->table_rows && nr > 0) {
        int32_t *dsrow = (int32_t *)(void *)eng_f32(e, nr),
                *dsel = (int32_t *)(void *)eng_f32(e, nr);
        if (!dsrow || !dsel) {
            return IMC_ERR_NOMEM;
        }
        IMC_TRY(e->be->upload(e->ex, dsrow, srow, (size_t)nr * sizeof(int32_t)));
        IMC_TRY(e->be->upload(e->ex, dsel, sel, (size_t)nr * sizeof(int32_t)));
        gsrow = dsrow;
        gsel = dsel;
    }
    for (int64_t x0 = 0, x1; x0 < n_own; x0 = x1) {
        x1 = group_end(first, x0, n_own, max_rows);
        const int64_t r0 = first[x0], n = first[x1] - r0;
        IMC_TRY(move_rows(e, xe, NULL, p->rows, gsrow + r0, n, d));
        const int32_t *fx = first + x0, *tx = tok + r0;
        IMC_TRY(
            eng_matmul_slices(e, il, l->ffn_gate_exps, eb + x0, fe, g, fe, xe, d, fx, x1 - x0, tx));
        IMC_TRY(
            eng_matmul_slices(e, il, l->ffn_up_exps, eb + x0, fe, u, fe, xe, d, fx, x1 - x0, tx));
        ENG_TIMED(e, IMC_PROF_FFN_ACT, e->be_exp->swiglu(e->ex, g, fe, g, fe, u, fe, n, fe));
        IMC_TRY(
            eng_matmul_slices(e, il, l->ffn_down_exps, eb + x0, d, ye, d, g, fe, fx, x1 - x0, tx));
        IMC_TRY(move_rows(e, p->out, gsel + r0, ye, NULL, n, d));
    }
    return IMC_OK;
}

// Step 4: outputs back in dispatch order (into back, the send rows' buffer, with shards).
static enum imc_status combine(struct imc_engine *e, struct moe_pairs *p, float *back)
{
    if (e->ep_size == 1) {
        p->back = p->out;
        return IMC_OK;
    }
    IMC_TRY(eng_xchg_rows(e, p->out, p->recv_cnt, back, p->send_cnt));
    p->back = back;
    return IMC_OK;
}

// y_t = Σ_s w[t][s] · out[t][s], slots in order, plus add_t when add is given (the op table's
// moe_wsum).
static enum imc_status weighted_sum(struct imc_engine *e, const struct moe_pairs *p, float *y,
                                    const float *add, int64_t n)
{
    const int64_t k = e->m->hp.n_expert_used, d = e->m->hp.n_embd;
    int32_t *pos = (int32_t *)eng_host(e, p->n_pair);
    if (!pos) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t q = 0; q < p->n_pair; q++) {
        pos[p->order[q]] = (int32_t)q;
    }
    return e->be->moe_wsum(e->ex, y, p->back, pos, p->w, add, n, k, d);
}

// Every routed id names an expert. With deferred checks (the device's) the router may have run
// on non-finite logits: the poll reports what went bad first; any other bad id is a table fault.
static enum imc_status check_ids(struct imc_engine *e, int64_t il, const int32_t *ids, int64_t n)
{
    for (int64_t q = 0; q < n; q++) {
        if (ids[q] < 0 || ids[q] >= e->m->hp.n_expert) {
            IMC_TRY(eng_check_poll(e));
            IMC_LOG_ERR("layer %" PRId64 ": the %s table routed a token to expert %" PRId32
                        " of %" PRId64,
                        il, e->be->name, ids[q], e->m->hp.n_expert);
            return IMC_ERR_INTERNAL;
        }
    }
    return IMC_OK;
}

static enum imc_status moe(struct imc_engine *e, int64_t il, const float *h, float *y, int64_t n)
{
    const struct imc_hparams *hp = &e->m->hp;
    const struct imc_layer *l = &e->m->layers[il];
    const int64_t k = hp->n_expert_used, d = hp->n_embd, ne = hp->n_expert;
    struct moe_pairs p;
    memset(&p, 0, sizeof(p));
    float *logits = eng_f32(e, n * ne);
    p.ids = (int32_t *)eng_host(e, n * k); // read here to plan the dispatch
    p.w = eng_f32(e, n * k);               // read by the table's moe_wsum only: stays there
    if (!logits || !p.ids || !p.w) {
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(eng_matmul(e, il, l->ffn_gate_inp, -1, ne, logits, ne, h, d, n));
    const struct imc_route_cfg rc = {.n_expert = ne,
                                     .n_used = k,
                                     .gating = hp->gating == IMC_GATING_SIGMOID ? IMC_ROUTE_SIGMOID
                                                                                : IMC_ROUTE_SOFTMAX,
                                     .bias = e->lvo[il].exp_probs_b,
                                     .n_group = e->opts.plain_topk ? 0 : hp->n_group,
                                     .n_group_used = hp->n_group_used,
                                     .norm = hp->expert_weights_norm,
                                     .scale = hp->expert_weights_scale};
    if (n > 0) {
        enum imc_status st;
        ENG_TIMED(e, IMC_PROF_ROUTE, st = e->be->moe_route(e->ex, &rc, logits, n, p.ids, p.w));
        IMC_TRY(st);
        IMC_TRY(check_ids(e, il, p.ids, n * k));
    }
    IMC_TRY(plan_pairs(e, &p, h, n));
    float *send_rows = NULL;
    enum imc_status st = IMC_OK;
    if (e->ep_size > 1) {
        ENG_TIMED(e, IMC_PROF_EXCHANGE, st = dispatch(e, &p, h, &send_rows));
        IMC_TRY(st);
    }
    IMC_TRY(run_experts(e, il, &p));
    ENG_TIMED(e, IMC_PROF_EXCHANGE, st = combine(e, &p, send_rows));
    IMC_TRY(st);
    float *ys = NULL; // the shared expert, added to each token's weighted sum
    if (l->ffn_gate_shexp) {
        ys = eng_f32(e, n * d);
        if (!ys) {
            return IMC_ERR_NOMEM;
        }
        IMC_TRY(dense(e, il, l->ffn_gate_shexp, l->ffn_up_shexp, l->ffn_down_shexp, h, ys, n));
    }
    return weighted_sum(e, &p, y, ys, n);
}

enum imc_status imc_ffn(struct imc_engine *e, int64_t il, float *x, int64_t n)
{
    const struct imc_hparams *hp = &e->m->hp;
    const struct imc_layer *l = &e->m->layers[il];
    const int64_t d = hp->n_embd;
    float *h = eng_f32(e, n * d), *y = eng_f32(e, n * d);
    if (!h || !y) {
        return IMC_ERR_NOMEM;
    }
    ENG_TIMED(e, IMC_PROF_NORM,
              e->be->rmsnorm(e->ex, h, x, e->lvo[il].ffn_norm, n, d, hp->rms_eps));
    if (l->is_moe) {
        IMC_TRY(moe(e, il, h, y, n));
    } else {
        IMC_TRY(dense(e, il, l->ffn_gate, l->ffn_up, l->ffn_down, h, y, n));
    }
    return eng_add(e, x, y, n, d);
}
