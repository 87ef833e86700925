/*
 * model/mla3d: 2D (ik) → 3D MLA layout header rewrite (model/mla3d.h).
 */
#include "model/mla3d.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "model/arch.h"
#include "model/gguf.h"

static enum imc_status check_input(const char *in, const struct imc_model *m)
{
    if (m->arch != IMC_ARCH_DEEPSEEK2) {
        IMC_LOG_ERR("%s: architecture %s has no MLA attention (need deepseek2)", in,
                    imc_arch_name(m->arch));
        return IMC_ERR_ARG;
    }
    if (m->mla == IMC_MLA_3D) {
        IMC_LOG_ERR("%s: MLA layout is already 3D; nothing to rewrite", in);
        return IMC_ERR_ARG;
    }
    if (m->mla != IMC_MLA_2D) {
        IMC_LOG_ERR("%s: MLA layout is '%s': no attn_k_b/attn_v_b to reshape (splitting "
                    "attn_kv_b is a conversion, not a header rewrite)",
                    in, imc_mla_layout_name(m->mla));
        return IMC_ERR_UNSUPPORTED;
    }
    return IMC_OK;
}

static enum imc_status set_keys(struct imc_gguf_writer *w, const struct imc_gguf *g,
                                const struct imc_hparams *hp)
{
    for (int64_t i = 0; i < imc_gguf_n_kv(g); i++) {
        IMC_TRY(imc_gguf_set_from(w, g, i));
    }
    const struct {
        const char *suffix;
        int64_t value;
    } keys[] = {
        {"attention.key_length", hp->kv_lora + hp->qk_rope},
        {"attention.value_length", hp->kv_lora},
        {"attention.key_length_mla", hp->qk_nope + hp->qk_rope},
        {"attention.value_length_mla", hp->v_head},
        {"attention.head_count_kv", 1},
    };
    const char *arch = imc_gguf_get_str(g, "general.architecture");
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char key[128];
        snprintf(key, sizeof(key), "%s.%s", arch ? arch : "deepseek2", keys[i].suffix);
        IMC_TRY(imc_gguf_set_u32(w, key, (uint32_t)keys[i].value));
    }
    return IMC_OK;
}

// The 3D shape of t when it is one of the model's 2D attn_k_b/attn_v_b, else its own shape.
static int shape_of(const struct imc_model *m, const struct imc_tensor_info *t, int64_t ne[4])
{
    const struct imc_hparams *hp = &m->hp;
    memcpy(ne, t->ne, sizeof(t->ne));
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const struct imc_layer *l = &m->layers[il];
        if (t == l->wk_b || t == l->wv_b) {
            ne[1] = t == l->wk_b ? hp->kv_lora : hp->v_head;
            ne[2] = hp->n_head;
            IMC_ASSERT(ne[0] * ne[1] * ne[2] == t->ne[0] * t->ne[1]);
            return 3;
        }
    }
    return t->n_dims;
}

static bool is_kv_b(const struct imc_model *m, const struct imc_tensor_info *t)
{
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        if (t == m->layers[il].wkv_b) {
            return true;
        }
    }
    return false;
}

static enum imc_status convert(const struct imc_gguf *g, const struct imc_model *m, const char *out,
                               bool drop_kv_b)
{
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    if (!w) {
        IMC_LOG_ERR("%s: out of memory", out);
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = set_keys(w, g, &m->hp);
    int64_t n_reshaped = 0, n_dropped = 0;
    for (int64_t i = 0; st == IMC_OK && i < imc_gguf_n_tensors(g); i++) {
        const struct imc_tensor_info *t = imc_gguf_tensor(g, i);
        if (drop_kv_b && is_kv_b(m, t)) {
            n_dropped++;
            continue;
        }
        int64_t ne[4];
        const int n_dims = shape_of(m, t, ne);
        n_reshaped += n_dims != t->n_dims;
        st = imc_gguf_add_tensor(w, t->name, t->type, n_dims, ne, t->data);
    }
    if (st == IMC_OK) {
        st = imc_gguf_write(w, out);
    }
    if (st == IMC_OK) {
        IMC_LOG_INF("mla-3d: wrote %s: %" PRId64 " tensors reshaped to 3D%s", out, n_reshaped,
                    n_dropped ? ", attn_kv_b dropped" : "");
    }
    imc_gguf_writer_free(w);
    return st;
}

enum imc_status imc_mla3d_convert(const char *in, const char *out, bool drop_kv_b)
{
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    IMC_TRY(imc_gguf_open(&g, in));
    enum imc_status st = imc_model_load(&m, g);
    if (st == IMC_OK) {
        st = check_input(in, m);
    }
    if (st == IMC_OK) {
        st = convert(g, m, out, drop_kv_b);
    }
    imc_model_free(m);
    imc_gguf_free(g);
    return st;
}
