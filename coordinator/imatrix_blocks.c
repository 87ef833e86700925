/*
 * coordinator/imatrix_blocks: a stage's imatrix entries as flat blocks (imatrix_blocks.h).
 */
#include "coordinator/imatrix_blocks.h"

#include <stdlib.h>
#include <string.h>

#include "coordinator/imatrix_priv.h"
#include "core/log.h"
#include "worker/stats_collect.h"

struct collect {
    struct imx_blocks *b;
    const struct imc_model *m;
    int64_t cap;
};

static enum imc_status add_one(void *user, const struct imc_tensor_info *w)
{
    struct collect *c = user;
    if (c->b->n == c->cap) {
        int64_t cap = c->cap ? 2 * c->cap : 64;
        void *p = realloc(c->b->e, (size_t)cap * sizeof(*c->b->e));
        if (!p) {
            IMC_LOG_ERR("imatrix: out of memory for the entry list");
            return IMC_ERR_NOMEM;
        }
        c->b->e = p;
        c->cap = cap;
    }
    struct imx_block_ent *e = &c->b->e[c->b->n++];
    e->name = w->name;
    imc_stats_entry_shape(w, &e->n_per_row, &e->n_mat);
    e->expert = imx_is_expert_weight(c->m, w);
    return IMC_OK;
}

enum imc_status imx_blocks_init(struct imx_blocks *b, const struct imc_model *m,
                                int64_t layer_begin, int64_t layer_end, bool output)
{
    memset(b, 0, sizeof(*b));
    struct collect c = {b, m, 0};
    enum imc_status st = imx_each_weight(m, layer_begin, layer_end, output, add_one, &c);
    if (st != IMC_OK) {
        imx_blocks_free(b);
    }
    return st;
}

void imx_blocks_free(struct imx_blocks *b)
{
    free(b->e);
    memset(b, 0, sizeof(*b));
}

// Matrices [*m0, *m1) of entry e in a block of kind k; false when e is not in such a block.
static bool block_mats(const struct imx_block_ent *e, enum imx_block_kind k, int64_t eb, int64_t ee,
                       int64_t *m0, int64_t *m1)
{
    if (e->expert != (k == IMX_BLOCK_EXPERTS)) {
        return false;
    }
    *m0 = e->expert ? eb : 0;
    *m1 = e->expert ? ee : e->n_mat;
    return true;
}

size_t imx_blocks_len(const struct imx_blocks *b, enum imx_block_kind k, int64_t eb, int64_t ee)
{
    size_t n = 0;
    int64_t m0, m1;
    for (int64_t i = 0; i < b->n; i++) {
        if (block_mats(&b->e[i], k, eb, ee, &m0, &m1)) {
            n += (size_t)((m1 - m0) * (b->e[i].n_per_row + 1));
        }
    }
    return n;
}

enum imc_status imx_blocks_declare(const struct imx_blocks *b, struct imc_imatrix *im)
{
    struct imc_imatrix_entry *e;
    for (int64_t i = 0; i < b->n; i++) {
        IMC_TRY(imc_imatrix_get_entry(im, b->e[i].name, b->e[i].n_per_row, b->e[i].n_mat, &e));
    }
    return IMC_OK;
}

static struct imc_imatrix_entry *entry_of(const struct imx_block_ent *be,
                                          const struct imc_imatrix *im)
{
    struct imc_imatrix_entry *e = imc_imatrix_find(im, be->name);
    if (!e || e->n_per_row != be->n_per_row || e->n_mat != be->n_mat) {
        IMC_LOG_ERR("imatrix: entry '%s' missing or not %lldx%lld where a block needs it", be->name,
                    (long long)be->n_per_row, (long long)be->n_mat);
        return NULL;
    }
    return e;
}

enum imc_status imx_blocks_pack(const struct imx_blocks *b, enum imx_block_kind k, int64_t eb,
                                int64_t ee, const struct imc_imatrix *im, double *buf)
{
    int64_t m0, m1;
    for (int64_t i = 0; i < b->n; i++) {
        if (!block_mats(&b->e[i], k, eb, ee, &m0, &m1)) {
            continue;
        }
        const struct imc_imatrix_entry *e = entry_of(&b->e[i], im);
        if (!e) {
            return IMC_ERR_INTERNAL;
        }
        const size_t n = (size_t)((m1 - m0) * e->n_per_row);
        memcpy(buf, e->sums + m0 * e->n_per_row, n * sizeof(double));
        memcpy(buf + n, e->counts + m0, (size_t)(m1 - m0) * sizeof(double));
        buf += n + (size_t)(m1 - m0);
    }
    return IMC_OK;
}

enum imc_status imx_blocks_add(const struct imx_blocks *b, enum imx_block_kind k, int64_t eb,
                               int64_t ee, struct imc_imatrix *im, const double *buf)
{
    int64_t m0, m1;
    for (int64_t i = 0; i < b->n; i++) {
        if (!block_mats(&b->e[i], k, eb, ee, &m0, &m1)) {
            continue;
        }
        struct imc_imatrix_entry *e = entry_of(&b->e[i], im);
        if (!e) {
            return IMC_ERR_INTERNAL;
        }
        const int64_t n = (m1 - m0) * e->n_per_row;
        double *sums = e->sums + m0 * e->n_per_row, *counts = e->counts + m0;
        for (int64_t j = 0; j < n; j++) {
            sums[j] += buf[j];
        }
        for (int64_t j = 0; j < m1 - m0; j++) {
            counts[j] += buf[n + j];
        }
        buf += n + (m1 - m0);
    }
    return IMC_OK;
}

void imx_blocks_zero(const struct imx_blocks *b, struct imc_imatrix *im)
{
    for (int64_t i = 0; i < b->n; i++) {
        struct imc_imatrix_entry *e = imc_imatrix_find(im, b->e[i].name);
        if (e) {
            memset(e->sums, 0, (size_t)(e->n_mat * e->n_per_row) * sizeof(double));
            memset(e->counts, 0, (size_t)e->n_mat * sizeof(double));
        }
    }
}
