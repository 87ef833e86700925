/*
 * coordinator/model_cost: weight bytes and FLOPs per token per layer (coordinator/model_cost.h).
 */
#include "coordinator/model_cost.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/gguf.h"

static double elements(const struct imc_tensor_info *t)
{
    double n = 1;
    for (int d = 0; d < t->n_dims; d++) {
        n *= (double)t->ne[d];
    }
    return n;
}

// 2 FLOPs per weight of a matrix applied once per token; 0 for an absent tensor.
static double mm_flops(const struct imc_tensor_info *t)
{
    return t ? 2.0 * elements(t) : 0.0;
}

// Layer index of a tensor named "blk.<i>.<rest>", or -1 for any other name.
static long layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0 || name[4] < '0' || name[4] > '9') {
        return -1;
    }
    char *end = NULL;
    long i = strtol(name + 4, &end, 10);
    return *end == '.' ? i : -1;
}

static bool is_expert(const struct imc_layer *l, const struct imc_tensor_info *t)
{
    const struct imc_tensor_info *e[3] = {l->ffn_gate_exps, l->ffn_up_exps, l->ffn_down_exps};
    for (int k = 0; k < 3; k++) {
        if (e[k] && strcmp(e[k]->name, t->name) == 0) {
            return true;
        }
    }
    return false;
}

static void layer_flops(const struct imc_model *m, const struct imc_layer *l,
                        struct imc_layer_cost *c)
{
    const struct imc_tensor_info *mm[] = {
        l->wq, l->wk, l->wv, l->wo, l->wq_a, l->wq_b, l->wkv_a_mqa,
        l->ffn_gate, l->ffn_up, l->ffn_down, l->ffn_gate_inp,
        l->ffn_gate_shexp, l->ffn_up_shexp, l->ffn_down_shexp,
    };
    for (size_t k = 0; k < sizeof(mm) / sizeof(mm[0]); k++) {
        c->flops += mm_flops(mm[k]);
    }
    // Absorbed (k_b, v_b) or not (kv_b): the same weights multiplied, counted once.
    if (l->wk_b && l->wv_b) {
        c->flops += mm_flops(l->wk_b) + mm_flops(l->wv_b);
    } else {
        c->flops += mm_flops(l->wkv_b);
    }
    const struct imc_tensor_info *e[3] = {l->ffn_gate_exps, l->ffn_up_exps, l->ffn_down_exps};
    for (int k = 0; k < 3; k++) {
        if (e[k]) {
            // ne[2] experts of ne[0] x ne[1] each; n_expert_used of them per token.
            c->expert_flops += 2.0 * (double)e[k]->ne[0] * (double)e[k]->ne[1] *
                               (double)m->hp.n_expert_used;
        }
    }
}

// Adds one tensor's bytes to the entry it belongs to.
static void add_bytes(const struct imc_model *m, const struct imc_tensor_info *t,
                      struct imc_layer_cost *layers, struct imc_model_cost *out)
{
    long il = layer_of(t->name);
    if (il >= 0 && il < out->n_layer) {
        if (is_expert(&m->layers[il], t)) {
            layers[il].expert_bytes += t->nbytes;
        } else {
            layers[il].bytes += t->nbytes;
        }
    } else if (m->tok_embd && strcmp(t->name, m->tok_embd->name) == 0) {
        out->embd.bytes += t->nbytes;
    } else {
        out->head.bytes += t->nbytes; // output_norm, output, and tensors of no layer
    }
}

enum imc_status imc_model_cost_build(const struct imc_model *m, struct imc_layer_cost *layers,
                                     struct imc_model_cost *out)
{
    if (m->hp.n_layer < 1 || m->hp.n_layer > INT_MAX) {
        IMC_LOG_ERR("%s: %lld layers: expected 1 to %d", imc_gguf_path(m->gguf),
                    (long long)m->hp.n_layer, INT_MAX);
        return IMC_ERR_ARG;
    }
    memset(out, 0, sizeof(*out));
    out->n_layer = (int)m->hp.n_layer;
    out->n_expert = m->hp.n_expert > 0 && m->hp.n_expert <= INT_MAX ? (int)m->hp.n_expert : 0;
    memset(layers, 0, (size_t)out->n_layer * sizeof(*layers));
    for (int64_t i = 0; i < imc_gguf_n_tensors(m->gguf); i++) {
        add_bytes(m, imc_gguf_tensor(m->gguf, i), layers, out);
    }
    if (m->output && m->tok_embd && m->output == m->tok_embd) {
        out->head.bytes += m->tok_embd->nbytes; // tied: the last stage holds its own copy
    }
    for (int i = 0; i < out->n_layer; i++) {
        layer_flops(m, &m->layers[i], &layers[i]);
    }
    out->head.flops = mm_flops(m->output);
    out->layer = layers;
    return IMC_OK;
}

void imc_model_cost_totals(const struct imc_model *m, const struct imc_model_cost *c,
                           double *bytes, double *flops)
{
    const struct imc_layer_cost *parts[2] = {&c->embd, &c->head};
    *bytes = 0;
    *flops = 0;
    for (int i = 0; i < c->n_layer + 2; i++) {
        const struct imc_layer_cost *x = i < c->n_layer ? &c->layer[i] : parts[i - c->n_layer];
        *bytes += (double)(x->bytes + x->expert_bytes);
        *flops += x->flops + x->expert_flops;
    }
    if (m->output == m->tok_embd) {
        *bytes -= (double)m->tok_embd->nbytes; // tied: one copy in the file
    }
}
