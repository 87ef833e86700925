/*
 * tests/unit/test_imatrix_mla3d: `imc mla-3d` (model/mla3d.h) on ds2-tiny-ik:
 *   - the output loads as MLA layout 3D with attn_k_b [qk_nope, kv_lora, n_head] and attn_v_b
 *     [kv_lora, v_head, n_head] holding the input's bytes, and the mainline MLA keys;
 *   - the engine's logits are bitwise identical to the input's, in both attention paths;
 *   - the imatrix of the 3D file has per-head attn_k_b/attn_v_b whose sum over heads is the 2D
 *     file's entry (to double rounding), with the same counts;
 *   - inputs that are not 2D deepseek2 are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/imatrix.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "model/imatrix_file.h"
#include "model/mla3d.h"
#include "model/synth.h"
#include "tests/check.h"
#include "worker/engine.h"

#define N_TOK 40

struct loaded {
    struct imc_gguf *g;
    struct imc_model *m;
};

static int load(const char *path, struct loaded *l)
{
    memset(l, 0, sizeof(*l));
    return imc_gguf_open(&l->g, path) != IMC_OK || imc_model_load(&l->m, l->g) != IMC_OK;
}

static void unload(struct loaded *l)
{
    imc_model_free(l->m);
    imc_gguf_free(l->g);
}

static float *logits(const struct imc_model *m, enum imc_attn_path path, const int32_t *tok)
{
    struct imc_engine_opts o = imc_engine_opts_default();
    o.attn = path;
    struct imc_engine *e = NULL;
    float *lg = malloc((size_t)(N_TOK * m->hp.n_vocab) * sizeof(float));
    if (!lg || imc_engine_init(&e, m, &o) != IMC_OK ||
        imc_engine_forward(e, tok, N_TOK, lg) != IMC_OK) {
        free(lg);
        lg = NULL;
    }
    imc_engine_free(e);
    return lg;
}

static void check_layout(const struct loaded *in, const struct loaded *out)
{
    const struct imc_hparams *hp = &out->m->hp;
    CHECK(out->m->mla == IMC_MLA_3D && out->m->has_kv_b, "layout 3d with attn_kv_b");
    const struct imc_layer *a = &in->m->layers[1], *b = &out->m->layers[1];
    CHECK(b->wk_b->n_dims == 3 && b->wk_b->ne[0] == hp->qk_nope && b->wk_b->ne[1] == hp->kv_lora &&
              b->wk_b->ne[2] == hp->n_head,
          "attn_k_b shape");
    CHECK(b->wv_b->n_dims == 3 && b->wv_b->ne[0] == hp->kv_lora && b->wv_b->ne[1] == hp->v_head &&
              b->wv_b->ne[2] == hp->n_head,
          "attn_v_b shape");
    CHECK(a->wk_b->nbytes == b->wk_b->nbytes &&
              memcmp(a->wk_b->data, b->wk_b->data, a->wk_b->nbytes) == 0 &&
              memcmp(a->wv_b->data, b->wv_b->data, a->wv_b->nbytes) == 0,
          "same tensor bytes");
    uint32_t kl = 0, vl = 0, klm = 0, vlm = 0, hkv = 0;
    CHECK(imc_gguf_get_u32(out->g, "deepseek2.attention.key_length", &kl) &&
              imc_gguf_get_u32(out->g, "deepseek2.attention.value_length", &vl) &&
              imc_gguf_get_u32(out->g, "deepseek2.attention.key_length_mla", &klm) &&
              imc_gguf_get_u32(out->g, "deepseek2.attention.value_length_mla", &vlm) &&
              imc_gguf_get_u32(out->g, "deepseek2.attention.head_count_kv", &hkv),
          "mainline MLA keys present");
    CHECK(kl == hp->kv_lora + hp->qk_rope && vl == hp->kv_lora &&
              klm == hp->qk_nope + hp->qk_rope && vlm == hp->v_head && hkv == 1,
          "key values %u %u %u %u %u", kl, vl, klm, vlm, hkv);
    CHECK(in->m->hp.qk_nope == hp->qk_nope && in->m->hp.v_head == hp->v_head,
          "same head dims read back");
}

static void check_logits(const struct loaded *in, const struct loaded *out)
{
    int32_t tok[N_TOK];
    for (int i = 0; i < N_TOK; i++) {
        tok[i] = (int32_t)(1 + (i * 7919) % (in->m->hp.n_vocab - 1));
    }
    const enum imc_attn_path paths[] = {IMC_ATTN_ABSORBED, IMC_ATTN_NON_ABSORBED};
    for (int p = 0; p < 2; p++) {
        float *a = logits(in->m, paths[p], tok), *b = logits(out->m, paths[p], tok);
        CHECK(a && b && memcmp(a, b, (size_t)(N_TOK * in->m->hp.n_vocab) * sizeof(float)) == 0,
              "%s path: logits bitwise identical", imc_attn_path_name(paths[p]));
        free(a);
        free(b);
    }
}

static int imatrix_of(const char *model, const char *out, const char *text, struct imc_imatrix *im)
{
    FILE *devnull = fopen("/dev/null", "w");
    struct imc_imatrix_opts o;
    imc_imatrix_opts_default(&o);
    o.model = model;
    o.text = text;
    o.out = out;
    o.n_ctx = 32;
    o.max_chunks = 3;
    o.quiet = true;
    int bad = !devnull || imc_imatrix_run(&o, devnull, NULL) != IMC_OK ||
              imc_imatrix_read_gguf(out, im) != IMC_OK;
    if (devnull) {
        fclose(devnull);
    }
    unlink(out);
    return bad;
}

static void check_heads_sum(const struct imc_imatrix *ik, const struct imc_imatrix *d3,
                            const char *name)
{
    const struct imc_imatrix_entry *a = imc_imatrix_find(ik, name), *b = imc_imatrix_find(d3, name);
    if (!a || !b || a->n_mat != 1 || b->n_mat < 2 || a->n_per_row != b->n_per_row) {
        CHECK(0, "'%s': 2D entry 1 matrix, 3D entry per head", name);
        return;
    }
    double worst = 0;
    for (int64_t j = 0; j < a->n_per_row; j++) {
        double s = 0;
        for (int64_t h = 0; h < b->n_mat; h++) {
            s += b->sums[h * b->n_per_row + j];
        }
        worst = check_worst(worst, fabs(s - a->sums[j]) / a->sums[j]);
    }
    for (int64_t h = 0; h < b->n_mat; h++) {
        CHECK(b->counts[h] == a->counts[0], "'%s' head %lld count", name, (long long)h);
    }
    CHECK(worst < 1e-6, "'%s': Σ heads vs 2D entry, worst relative difference %.3g", name, worst);
}

int main(void)
{
    const char *src = getenv("IMC_SOURCE_DIR");
    const char *tmp = getenv("TMPDIR");
    char dir[256], in_path[400], out_path[400], bad[400], imx[400], text[512];
    snprintf(dir, sizeof(dir), "%s/imc_mla3d.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    snprintf(text, sizeof(text), "%s/data/text/calibration.txt", src ? src : ".");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(in_path, sizeof(in_path), "%s/ik.gguf", dir);
    snprintf(out_path, sizeof(out_path), "%s/3d.gguf", dir);
    snprintf(bad, sizeof(bad), "%s/3d-again.gguf", dir);
    snprintf(imx, sizeof(imx), "%s/imx.gguf", dir);
    struct imc_synth_cfg cfg;
    struct loaded in, out;
    if (imc_synth_preset(&cfg, "ds2-tiny-ik") != IMC_OK ||
        imc_synth_write(&cfg, in_path) != IMC_OK ||
        imc_mla3d_convert(in_path, out_path, false) != IMC_OK || load(in_path, &in) ||
        load(out_path, &out)) {
        printf("setup failed\n");
        return 1;
    }
    check_layout(&in, &out);
    check_logits(&in, &out);
    struct imc_imatrix a, b;
    if (imatrix_of(in_path, imx, text, &a) || imatrix_of(out_path, imx, text, &b)) {
        CHECK(0, "imatrix runs");
    } else {
        check_heads_sum(&a, &b, "blk.0.attn_k_b.weight");
        check_heads_sum(&a, &b, "blk.2.attn_v_b.weight");
        imc_imatrix_free(&a);
        imc_imatrix_free(&b);
    }
    CHECK(imc_mla3d_convert(out_path, bad, false) == IMC_ERR_ARG, "3D input refused");
    CHECK(access(bad, F_OK) != 0, "no output for a refused input");
    CHECK(imc_mla3d_convert(in_path, bad, true) == IMC_OK, "--drop-kv-b");
    struct loaded d;
    if (load(bad, &d) == 0) {
        CHECK(d.m->mla == IMC_MLA_3D && !d.m->has_kv_b, "--drop-kv-b: 3D without attn_kv_b");
        unload(&d);
    } else {
        CHECK(0, "--drop-kv-b output loads");
    }
    unload(&in);
    unload(&out);
    unlink(in_path);
    unlink(out_path);
    unlink(bad);
    rmdir(dir);
    return check_summary();
}
