/*
 * tests/e2e/test_engine_stats: the statistics hooks (worker/stats.h) see every matmul input,
 * whichever MLA path computes.
 *   - ds2-tiny-all, absorbed and non-absorbed: the same (tensor, slice) set with the same row
 *     counts and n_in, and Σx² per entry within 1e-5 relative (the inputs agree to float
 *     rounding, as the logits do in test_mla_paths);
 *   - completeness: every 2D weight of every layer and the head once per call with all tokens;
 *     attn_k_b per head (n_in qk_nope), attn_v_b per head (n_in kv_lora), attn_kv_b (kv_lora);
 *     routed experts with Σ rows = n_tok · n_used per MoE layer, the never-routed expert
 *     (preset dead_expert 7) absent; ds2-tiny-ik (2D k_b/v_b) the same per-head slices;
 *   - the rows' token indices: ascending, all tokens 0..n-1 for weights that see every token;
 *   - by blocks of one head (absorbed path) and groups of one expert (opts.block_bytes 1): the
 *     same entries, row counts and hook calls, and Σx² bitwise (each slice's rows are the same);
 *   - a hook returning an error stops the forward with that status.
 */
#include "engine_util.h"

#define N_TOK 37
#define MAX_ENT 512

struct ent {
    const struct imc_tensor_info *w;
    int64_t layer, slice, n_in, rows, calls;
    double sum2;
};

struct rec {
    struct ent e[MAX_ENT];
    int n;
    int fail_after; // return an error on this call (0 = never)
    int calls;
    int bad_tok;    // calls whose token indices were not ascending in [0, N_TOK), or not
                    // 0..N_TOK-1 for a weight that sees every token
};

static enum imc_status on_input(void *user, const struct imc_exec *ex, const struct imc_backend *be,
                                const struct imc_tensor_info *w, int64_t layer, int64_t slice,
                                const float *x, int64_t ldx, int64_t n_rows, int64_t n_in,
                                const int32_t *tok)
{
    (void)ex;
    (void)be;
    struct rec *r = user;
    if (++r->calls == r->fail_after) {
        return IMC_ERR_CANCELLED;
    }
    const bool routed = strstr(w->name, "_exps.") != NULL;
    bool ok = routed || n_rows == N_TOK;
    for (int64_t i = 0; i < n_rows; i++) {
        ok = ok && tok[i] >= 0 && tok[i] < N_TOK && (i == 0 || tok[i] > tok[i - 1]) &&
             (routed || tok[i] == i);
    }
    r->bad_tok += !ok;
    struct ent *e = NULL;
    for (int i = 0; i < r->n && !e; i++) {
        e = r->e[i].w == w && r->e[i].slice == slice ? &r->e[i] : NULL;
    }
    if (!e && r->n < MAX_ENT) {
        e = &r->e[r->n++];
        *e = (struct ent){.w = w, .layer = layer, .slice = slice, .n_in = n_in};
    }
    if (!e) {
        return IMC_ERR_INTERNAL;
    }
    e->rows += n_rows;
    e->calls++;
    for (int64_t i = 0; i < n_rows; i++) {
        for (int64_t j = 0; j < n_in; j++) {
            e->sum2 += (double)x[i * ldx + j] * x[i * ldx + j];
        }
    }
    return IMC_OK;
}

static struct rec *record(const struct imc_model *m, enum imc_attn_path path, int fail_after,
                          int64_t block_bytes, enum imc_status *st)
{
    struct rec *r = calloc(1, sizeof(*r));
    r->fail_after = fail_after;
    struct imc_stats_hooks hk = {.user = r, .on_input = on_input};
    struct imc_engine_opts o = imc_engine_opts_default();
    o.attn = path;
    o.n_threads = 2;
    o.hooks = &hk;
    o.block_bytes = block_bytes;
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, m->hp.n_vocab, 9);
    float *lg = malloc((size_t)(N_TOK * m->hp.n_vocab) * 4);
    struct imc_engine *e = NULL;
    *st = imc_engine_init(&e, m, &o);
    if (*st == IMC_OK) {
        *st = imc_engine_forward(e, tok, N_TOK, lg);
    }
    imc_engine_free(e);
    free(lg);
    return r;
}

static const struct ent *find(const struct rec *r, const struct imc_tensor_info *w, int64_t s)
{
    for (int i = 0; i < r->n; i++) {
        if (r->e[i].w == w && r->e[i].slice == s) {
            return &r->e[i];
        }
    }
    return NULL;
}

// Dense weight w seen once with every token.
static void dense_seen(const struct rec *r, const struct imc_tensor_info *w)
{
    if (!w) {
        return;
    }
    const struct ent *e = find(r, w, -1);
    CHECK(e && e->rows == N_TOK && e->calls == 1 && e->n_in == w->ne[0], "'%s' not reported "
          "once with all tokens", w->name);
}

static void complete(const char *preset, const struct imc_model *m, const struct rec *r)
{
    const struct imc_hparams *hp = &m->hp;
    dense_seen(r, m->output);
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const struct imc_layer *l = &m->layers[il];
        const struct imc_tensor_info *d[] = {l->wq, l->wk, l->wv, l->wo, l->wq_a, l->wq_b,
                                             l->wkv_a_mqa, l->wkv_b, l->ffn_gate, l->ffn_up,
                                             l->ffn_down, l->ffn_gate_inp, l->ffn_gate_shexp,
                                             l->ffn_up_shexp, l->ffn_down_shexp};
        for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
            dense_seen(r, d[i]);
        }
        for (int64_t h = 0; l->wk_b && h < hp->n_head; h++) {
            const struct ent *k = find(r, l->wk_b, h), *v = find(r, l->wv_b, h);
            CHECK(k && k->rows == N_TOK && k->n_in == hp->qk_nope, "%s: attn_k_b head %lld",
                  preset, (long long)h);
            CHECK(v && v->rows == N_TOK && v->n_in == hp->kv_lora, "%s: attn_v_b head %lld",
                  preset, (long long)h);
        }
        if (!l->is_moe) {
            continue;
        }
        int64_t rows = 0;
        for (int64_t ex = 0; ex < hp->n_expert; ex++) {
            const struct ent *g = find(r, l->ffn_gate_exps, ex), *u = find(r, l->ffn_up_exps, ex);
            const struct ent *dn = find(r, l->ffn_down_exps, ex);
            CHECK(!g == !u && !g == !dn, "expert %lld partly reported", (long long)ex);
            if (g && u && dn) {
                CHECK(g->rows == u->rows && g->rows == dn->rows && dn->n_in == hp->n_ff_exp,
                      "expert %lld rows/n_in", (long long)ex);
                rows += g->rows;
            }
        }
        CHECK(rows == N_TOK * hp->n_expert_used, "%s layer %lld: %lld expert rows, expected %lld",
              preset, (long long)il, (long long)rows, (long long)(N_TOK * hp->n_expert_used));
        if (l->ffn_exp_probs_b) {
            CHECK(!find(r, l->ffn_gate_exps, 7), "%s: dead expert 7 was routed", preset);
        }
    }
}

static void same(const struct rec *a, const struct rec *b)
{
    CHECK(a->n == b->n, "entries %d vs %d", a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const struct ent *x = &a->e[i], *y = find(b, x->w, x->slice);
        CHECK(y != NULL, "'%s' slice %lld only in one path", x->w->name, (long long)x->slice);
        if (y) {
            CHECK(x->rows == y->rows && x->n_in == y->n_in, "'%s' shape", x->w->name);
            CHECK_CLOSE(x->sum2, y->sum2, 0, 1e-5);
        }
    }
}

// a and b recorded the same hook calls: entries, rows, calls and Σx² bitwise.
static void identical(const char *preset, const struct rec *a, const struct rec *b)
{
    CHECK(a->n == b->n && a->calls == b->calls, "%s: entries %d vs %d, calls %d vs %d", preset,
          a->n, b->n, a->calls, b->calls);
    for (int i = 0; i < a->n; i++) {
        const struct ent *x = &a->e[i], *y = find(b, x->w, x->slice);
        CHECK(y && x->rows == y->rows && x->calls == y->calls && x->sum2 == y->sum2,
              "%s: '%s' slice %lld differs with blocks of one head / expert", preset, x->w->name,
              (long long)x->slice);
    }
}

int main(void)
{
    char dir[256];
    tmkdir(dir, sizeof(dir), "engine_stats");
    static const char *const presets[] = {"ds2-tiny-all", "ds2-tiny-ik", "llama-moe-tiny",
                                          "qwen3moe-tiny", "glm4moe-tiny"};
    for (int p = 0; p < 5; p++) {
        struct tmodel t;
        if (tmodel_open(&t, dir, presets[p]) != 0) {
            CHECK(0, "preset %s", presets[p]);
            continue;
        }
        enum imc_status st;
        struct rec *a = record(t.m, IMC_ATTN_ABSORBED, 0, 0, &st);
        CHECK(st == IMC_OK, "%s: forward with hooks", presets[p]);
        complete(presets[p], t.m, a);
        CHECK(a->bad_tok == 0, "%s: %d hook calls with wrong token indices", presets[p],
              a->bad_tok);
        if (t.m->has_kv_b && t.m->has_k_b) {
            struct rec *b = record(t.m, IMC_ATTN_NON_ABSORBED, 0, 0, &st);
            CHECK(st == IMC_OK, "%s: non-absorbed forward with hooks", presets[p]);
            complete(presets[p], t.m, b);
            same(a, b);
            free(b);
        }
        struct rec *c = record(t.m, IMC_ATTN_ABSORBED, 0, 1, &st);
        CHECK(st == IMC_OK, "%s: forward with hooks, blocks of one head / expert", presets[p]);
        identical(presets[p], a, c);
        free(c);
        printf("%s: %d (tensor, slice) entries\n", presets[p], a->n);
        free(a);
        if (p == 0) {
            free(record(t.m, IMC_ATTN_AUTO, 5, 0, &st));
            CHECK(st == IMC_ERR_CANCELLED, "hook error not propagated (%d)", (int)st);
        }
        tmodel_close(&t);
    }
    trmdir(dir, presets, 3);
    return check_summary();
}
