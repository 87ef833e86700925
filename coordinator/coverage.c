/*
 * coordinator/coverage: expert coverage table and metadata (coordinator/coverage.h).
 */
#include "coordinator/coverage.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "model/imatrix_file.h"

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// The expert entry of layer l with one matrix per expert, or NULL.
static const struct imc_imatrix_entry *expert_entry(const struct imc_layer *l, int64_t n_expert,
                                                    const struct imc_imatrix *im)
{
    const struct imc_tensor_info *w[] = {l->ffn_gate_exps, l->ffn_up_exps, l->ffn_down_exps};
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        const struct imc_imatrix_entry *e = w[i] ? imc_imatrix_find(im, w[i]->name) : NULL;
        if (e && e->n_mat == n_expert) {
            return e;
        }
        if (e) {
            IMC_LOG_DBG("coverage: '%s' has %" PRId64 " matrices, not %" PRId64 " experts", e->name,
                        e->n_mat, n_expert);
        }
    }
    return NULL;
}

static enum imc_status layer_cov(struct imc_coverage_layer *c, int64_t il,
                                 const struct imc_imatrix_entry *e)
{
    const int64_t n = e->n_mat;
    double *sorted = malloc((size_t)n * sizeof(double));
    c->layer = il;
    c->n_expert = n;
    c->unrouted = malloc((size_t)n * sizeof(int64_t));
    if (!sorted || !c->unrouted) {
        free(sorted);
        IMC_LOG_ERR("coverage: out of memory");
        return IMC_ERR_NOMEM;
    }
    for (int64_t x = 0; x < n; x++) {
        sorted[x] = e->counts[x];
        if (e->counts[x] == 0.0) {
            c->unrouted[c->n_unrouted++] = x;
        }
    }
    qsort(sorted, (size_t)n, sizeof(double), cmp_double);
    c->min = sorted[0];
    c->max = sorted[n - 1];
    c->median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    free(sorted);
    return IMC_OK;
}

enum imc_status imc_coverage_compute(struct imc_coverage *cov, const struct imc_model *m,
                                     const struct imc_imatrix *im)
{
    memset(cov, 0, sizeof(*cov));
    if (m->hp.n_expert <= 0) {
        return IMC_OK;
    }
    cov->layers = calloc((size_t)m->hp.n_layer, sizeof(*cov->layers));
    if (!cov->layers) {
        IMC_LOG_ERR("coverage: out of memory");
        return IMC_ERR_NOMEM;
    }
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        const struct imc_layer *l = &m->layers[il];
        const struct imc_imatrix_entry *e = l->is_moe ? expert_entry(l, m->hp.n_expert, im) : NULL;
        if (!e) {
            continue;
        }
        enum imc_status st = layer_cov(&cov->layers[cov->n_layers++], il, e);
        if (st != IMC_OK) {
            imc_coverage_free(cov);
            return st;
        }
    }
    return IMC_OK;
}

void imc_coverage_free(struct imc_coverage *cov)
{
    for (int64_t i = 0; i < cov->n_layers; i++) {
        free(cov->layers[i].unrouted);
    }
    free(cov->layers);
    memset(cov, 0, sizeof(*cov));
}

void imc_coverage_print(FILE *f, const struct imc_coverage *cov)
{
    if (cov->n_layers == 0) {
        return;
    }
    fprintf(f, "expert coverage: tokens routed per expert\n");
    fprintf(f, "%5s %7s %8s %8s %8s %8s  %s\n", "layer", "experts", "unrouted", "min", "median",
            "max", "unrouted ids");
    for (int64_t i = 0; i < cov->n_layers; i++) {
        const struct imc_coverage_layer *c = &cov->layers[i];
        fprintf(f, "%5" PRId64 " %7" PRId64 " %8" PRId64 " %8.6g %8.6g %8.6g  ", c->layer,
                c->n_expert, c->n_unrouted, c->min, c->median, c->max);
        for (int64_t k = 0; k < c->n_unrouted; k++) {
            fprintf(f, "%s%" PRId64, k ? "," : "", c->unrouted[k]);
        }
        fprintf(f, "%s\n", c->n_unrouted ? "" : "-");
    }
    fflush(f);
}

static enum imc_status layer_keys(struct imc_gguf_writer *w, const struct imc_coverage_layer *c)
{
    char key[96];
    uint32_t *ids = malloc((size_t)(c->n_unrouted > 0 ? c->n_unrouted : 1) * sizeof(uint32_t));
    if (!ids) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t k = 0; k < c->n_unrouted; k++) {
        ids[k] = (uint32_t)c->unrouted[k];
    }
    const long long il = (long long)c->layer;
    enum imc_status st;
    snprintf(key, sizeof(key), "imc.coverage.blk.%lld.unrouted", il);
    st = imc_gguf_set_arr(w, key, IMC_GGUF_UINT32, ids, (uint64_t)c->n_unrouted);
    free(ids);
    IMC_TRY(st);
    snprintf(key, sizeof(key), "imc.coverage.blk.%lld.n_expert", il);
    IMC_TRY(imc_gguf_set_u32(w, key, (uint32_t)c->n_expert));
    snprintf(key, sizeof(key), "imc.coverage.blk.%lld.n_unrouted", il);
    IMC_TRY(imc_gguf_set_u32(w, key, (uint32_t)c->n_unrouted));
    snprintf(key, sizeof(key), "imc.coverage.blk.%lld.tokens_min", il);
    IMC_TRY(imc_gguf_set_f32(w, key, (float)c->min));
    snprintf(key, sizeof(key), "imc.coverage.blk.%lld.tokens_median", il);
    IMC_TRY(imc_gguf_set_f32(w, key, (float)c->median));
    snprintf(key, sizeof(key), "imc.coverage.blk.%lld.tokens_max", il);
    return imc_gguf_set_f32(w, key, (float)c->max);
}

enum imc_status imc_coverage_set_keys(struct imc_gguf_writer *w, const struct imc_coverage *cov)
{
    if (cov->n_layers == 0) {
        return IMC_OK;
    }
    uint32_t *layers = malloc((size_t)cov->n_layers * sizeof(uint32_t));
    if (!layers) {
        return IMC_ERR_NOMEM;
    }
    for (int64_t i = 0; i < cov->n_layers; i++) {
        layers[i] = (uint32_t)cov->layers[i].layer;
    }
    enum imc_status st = imc_gguf_set_arr(w, "imc.coverage.layers", IMC_GGUF_UINT32, layers,
                                          (uint64_t)cov->n_layers);
    free(layers);
    for (int64_t i = 0; st == IMC_OK && i < cov->n_layers; i++) {
        st = layer_keys(w, &cov->layers[i]);
    }
    return st;
}
