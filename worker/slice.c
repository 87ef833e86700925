/*
 * worker/slice: a rank's slice of the weights (worker/slice.h).
 */
#include "worker/slice.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "numa/mem.h"

struct build {
    struct imc_slice *s;
    int64_t cap;
    uintptr_t page;
};

static enum imc_status add_range(struct build *b, const void *p, uint64_t len)
{
    if (!p || len == 0) {
        return IMC_OK;
    }
    if (b->s->n == b->cap) {
        int64_t cap = b->cap ? 2 * b->cap : 64;
        void *q = realloc(b->s->r, (size_t)cap * sizeof(*b->s->r));
        if (!q) {
            IMC_LOG_ERR("slice: out of memory");
            return IMC_ERR_NOMEM;
        }
        b->s->r = q;
        b->cap = cap;
    }
    const uintptr_t a = (uintptr_t)p & ~(b->page - 1);
    const uintptr_t e = ((uintptr_t)p + (uintptr_t)len + b->page - 1) & ~(b->page - 1);
    b->s->r[b->s->n++] = (struct imc_slice_range){(const char *)a, (size_t)(e - a)};
    b->s->bytes += len;
    return IMC_OK;
}

static enum imc_status add_tensor(struct build *b, const struct imc_tensor_info *t)
{
    return t ? add_range(b, t->data, t->nbytes) : IMC_OK;
}

// Experts [eb, ee) of a routed-expert tensor (ne[2] experts, each a contiguous block).
static enum imc_status add_experts(struct build *b, const struct imc_tensor_info *t, int64_t eb,
                                   int64_t ee)
{
    if (!t || t->ne[2] < 1) {
        return IMC_OK;
    }
    const uint64_t per = t->nbytes / (uint64_t)t->ne[2];
    return add_range(b, (const char *)t->data + (uint64_t)eb * per, (uint64_t)(ee - eb) * per);
}

static enum imc_status add_layer(struct build *b, const struct imc_layer *l,
                                 const struct imc_slice_spec *sp)
{
    const struct imc_tensor_info *t[] = {l->attn_norm,
                                         l->wq,
                                         l->wk,
                                         l->wv,
                                         l->wo,
                                         l->wq_a,
                                         l->q_a_norm,
                                         l->wq_b,
                                         l->wkv_a_mqa,
                                         l->kv_a_norm,
                                         l->wkv_b,
                                         l->wk_b,
                                         l->wv_b,
                                         l->ffn_norm,
                                         l->ffn_gate,
                                         l->ffn_up,
                                         l->ffn_down,
                                         l->ffn_gate_inp,
                                         l->ffn_exp_probs_b,
                                         l->ffn_gate_shexp,
                                         l->ffn_up_shexp,
                                         l->ffn_down_shexp};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        IMC_TRY(add_tensor(b, t[i]));
    }
    const struct imc_tensor_info *x[] = {l->ffn_gate_exps, l->ffn_up_exps, l->ffn_down_exps};
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) {
        IMC_TRY(add_experts(b, x[i], sp->expert_begin, sp->expert_end));
    }
    return IMC_OK;
}

static int by_address(const void *a, const void *b)
{
    const struct imc_slice_range *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

static void merge(struct imc_slice *s)
{
    qsort(s->r, (size_t)s->n, sizeof(*s->r), by_address);
    int64_t k = 0;
    for (int64_t i = 0; i < s->n; i++) {
        if (k > 0 && s->r[i].p <= s->r[k - 1].p + s->r[k - 1].len) {
            const char *end = s->r[i].p + s->r[i].len;
            const char *prev = s->r[k - 1].p + s->r[k - 1].len;
            s->r[k - 1].len += end > prev ? (size_t)(end - prev) : 0;
        } else {
            s->r[k++] = s->r[i];
        }
    }
    s->n = k;
}

enum imc_status imc_slice_init(struct imc_slice *out, const struct imc_model *m,
                               const struct imc_slice_spec *spec)
{
    memset(out, 0, sizeof(*out));
    struct build b = {out, 0, (uintptr_t)sysconf(_SC_PAGESIZE)};
    enum imc_status st = IMC_OK;
    for (int64_t il = spec->layer_begin; st == IMC_OK && il < spec->layer_end; il++) {
        st = add_layer(&b, &m->layers[il], spec);
    }
    if (st == IMC_OK && spec->embedding) {
        st = add_tensor(&b, m->tok_embd);
    }
    if (st == IMC_OK && spec->head) {
        st = add_tensor(&b, m->output_norm);
    }
    if (st == IMC_OK && spec->head && !(spec->embedding && m->output == m->tok_embd)) {
        st = add_tensor(&b, m->output);
    }
    if (st != IMC_OK) {
        imc_slice_free(out);
        return st;
    }
    merge(out);
    return IMC_OK;
}

void imc_slice_free(struct imc_slice *s)
{
    free(s->r);
    memset(s, 0, sizeof(*s));
}

enum imc_status imc_slice_resident(const struct imc_slice *s, uint64_t *bytes)
{
    *bytes = 0;
    for (int64_t i = 0; i < s->n; i++) {
        uint64_t b = 0;
        IMC_TRY(imc_numa_resident(s->r[i].p, s->r[i].len, &b));
        *bytes += b;
    }
    return IMC_OK;
}
