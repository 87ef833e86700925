/*
 * coordinator/dist: the distributed chunk runner (coordinator/dist.h).
 */
#include "coordinator/dist.h"

#include <stdlib.h>
#include <string.h>

#include "coordinator/chunks.h"
#include "coordinator/model_cost.h"
#include "coordinator/ppl.h"
#include "coordinator/progress.h"
#include "core/log.h"
#include "core/size.h"
#include "model/arch.h"
#include "mpi/comm.h"
#include "mpi/reduce.h"
#include "mpi/xfer.h"

struct dist {
    const struct imc_dist_job *j;
    struct imc_engine *e;
    int stage, pp, replica, dp;
    int64_t n_ctx, n_embd, n_vocab, first, n_scored;
    int32_t *in;              // [n_seq][n_ctx] engine input (stage 0)
    float *hid[2];            // [n_seq * n_ctx][n_embd], double-buffered
    struct imc_xfer *send[2]; // isend in flight from hid[k], or NULL
    float *logits;            // [n_ctx - first][n_vocab] (last stage)
    double *nll;              // [n_chunk][n_scored], the caller's
};

enum imc_status imc_dist_stage_layers(const struct imc_model *m, const struct imc_layout *l,
                                      int stage, int64_t *begin, int64_t *end)
{
    IMC_ASSERT(stage >= 0 && stage < l->pp);
    const int64_t n_layer = m->hp.n_layer;
    struct imc_layer_cost *layers = n_layer > 0 ? calloc((size_t)n_layer, sizeof(*layers)) : NULL;
    int *bounds = calloc((size_t)l->pp + 1, sizeof(int));
    enum imc_status st = IMC_ERR_NOMEM;
    if (!layers || !bounds) {
        IMC_LOG_ERR("dist: out of memory for the layer split of %lld layers", (long long)n_layer);
        goto out_free;
    }
    struct imc_model_cost cost;
    st = imc_model_cost_build(m, layers, &cost);
    if (st == IMC_OK) {
        st = imc_plan_stages(&cost, l, bounds);
    }
    if (st == IMC_OK) {
        *begin = bounds[stage];
        *end = bounds[stage + 1];
    }
out_free:
    free(layers);
    free(bounds);
    return st;
}

static enum imc_status check_layout(const struct imc_dist_job *j)
{
    const struct imc_layout *l = &j->layout;
    if (l->ep != 1) {
        IMC_LOG_ERR("layout pp=%d,ep=%d,dp=%d: expert parallelism is not implemented yet", l->pp,
                    l->ep, l->dp);
        return IMC_ERR_ARG;
    }
    IMC_TRY(imc_layout_check(l, imc_comm_size(j->comm)));
    if (imc_comm_group_size(j->comm, IMC_GROUP_PIPELINE) != l->pp ||
        imc_comm_group_size(j->comm, IMC_GROUP_REPLICA) != l->dp) {
        IMC_LOG_ERR("dist: communicators are not split into layout pp=%d,dp=%d", l->pp, l->dp);
        return IMC_ERR_ARG;
    }
    return IMC_OK;
}

static void *alloc_array(int64_t n, size_t elem, const char *what)
{
    uint64_t bytes = 0;
    void *p = NULL;
    if (n > 0 && imc_size_mul((uint64_t)n, elem, &bytes) && bytes <= SIZE_MAX) {
        p = malloc((size_t)bytes);
    }
    if (!p) {
        IMC_LOG_ERR("dist: out of memory for %lld %s", (long long)n, what);
    }
    return p;
}

static enum imc_status setup(struct dist *d, const struct imc_dist_job *j)
{
    IMC_TRY(check_layout(j));
    const struct imc_comm *c = j->comm;
    d->j = j;
    d->pp = j->layout.pp;
    d->dp = j->layout.dp;
    d->stage = imc_comm_group_rank(c, IMC_GROUP_PIPELINE);
    d->replica = imc_comm_group_rank(c, IMC_GROUP_REPLICA);
    d->n_ctx = j->ch->n_ctx;
    d->n_embd = j->model->hp.n_embd;
    d->n_vocab = j->model->hp.n_vocab;
    d->first = imc_ppl_first(d->n_ctx);
    d->n_scored = imc_ppl_n_scored(d->n_ctx);
    struct imc_engine_opts eo = imc_engine_opts_default();
    eo.n_threads = j->n_threads > 0 ? j->n_threads : 1;
    eo.attn = j->attn;
    IMC_TRY(imc_dist_stage_layers(j->model, &j->layout, d->stage, &eo.layer_begin, &eo.layer_end));
    IMC_TRY(imc_engine_init(&d->e, j->model, &eo));
    const int64_t rows = j->n_seq * d->n_ctx;
    d->in = alloc_array(rows, sizeof(int32_t), "token ids");
    d->hid[0] = alloc_array(rows * d->n_embd, sizeof(float), "activations");
    d->hid[1] = alloc_array(rows * d->n_embd, sizeof(float), "activations");
    d->logits = alloc_array((d->n_ctx - d->first) * d->n_vocab, sizeof(float), "logits");
    if (!d->in || !d->hid[0] || !d->hid[1] || !d->logits) {
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

// Head and NLLs of chunks c0 .. c0+ns-1 from their hidden rows.
static enum imc_status score(struct dist *d, const float *hidden, int64_t c0, int64_t ns)
{
    for (int64_t s = 0; s < ns; s++) {
        IMC_TRY(imc_engine_head(d->e, hidden + (s * d->n_ctx + d->first) * d->n_embd,
                                d->n_ctx - d->first, d->logits));
        const int32_t *text = imc_chunks_text(d->j->ch, c0 + s);
        double *dst = d->nll + (c0 + s) * d->n_scored;
        for (int64_t pos = d->first; pos < d->n_ctx - 1; pos++) {
            const float *row = d->logits + (pos - d->first) * d->n_vocab;
            dst[pos - d->first] = imc_ppl_nll_row(row, d->n_vocab, text[pos + 1]);
        }
    }
    return IMC_OK;
}

// Batch b (chunks b*n_seq .. +ns-1) through this stage; k = the replica's local batch count,
// which picks the buffer.
static enum imc_status stage_batch(struct dist *d, int64_t b, int64_t k, int64_t ns)
{
    const struct imc_comm *c = d->j->comm;
    const int tag = imc_xfer_tag(c, b);
    const int64_t c0 = b * d->j->n_seq;
    float *h = d->hid[k % 2];
    const size_t n = (size_t)(ns * d->n_ctx * d->n_embd);
    IMC_TRY(imc_xfer_wait(d->send[k % 2])); // h is free again
    d->send[k % 2] = NULL;
    if (d->stage == 0) {
        for (int64_t s = 0; s < ns; s++) {
            imc_chunks_input(d->j->ch, c0 + s, d->in + s * d->n_ctx);
        }
        IMC_TRY(imc_engine_embed(d->e, d->in, ns * d->n_ctx, h));
    } else {
        IMC_TRY(imc_xfer_recv(c, IMC_GROUP_PIPELINE, d->stage - 1, tag, h, n));
    }
    IMC_TRY(imc_engine_layers(d->e, h, ns, d->n_ctx));
    if (d->stage + 1 < d->pp) {
        return imc_xfer_isend(c, IMC_GROUP_PIPELINE, d->stage + 1, tag, h, n, &d->send[k % 2]);
    }
    return score(d, h, c0, ns);
}

// Batches of n_seq consecutive chunks, as the single-process run cuts them; replica r runs
// batches b with b % dp == r.
static enum imc_status run_batches(struct dist *d)
{
    const int64_t n_chunk = d->j->ch->n_chunk, n_seq = d->j->n_seq;
    const int64_t n_batch = (n_chunk + n_seq - 1) / n_seq;
    enum imc_status st = IMC_OK;
    int64_t k = 0;
    for (int64_t b = d->replica; st == IMC_OK && b < n_batch; b += d->dp, k++) {
        const int64_t c0 = b * n_seq;
        const int64_t ns = n_chunk - c0 < n_seq ? n_chunk - c0 : n_seq;
        st = stage_batch(d, b, k, ns);
        if (st == IMC_OK && d->j->prog) {
            int64_t done = (b + d->dp) * n_seq; // the replicas run side by side
            done = done < n_chunk ? done : n_chunk;
            imc_progress_update(d->j->prog, done, done * d->n_ctx);
        }
    }
    // On failure the sends in flight are left behind (the caller aborts the job): waiting for a
    // peer that may be gone would only delay the abort by the watchdog's timeout.
    for (int i = 0; st == IMC_OK && i < 2; i++) {
        st = imc_xfer_wait(d->send[i]);
        d->send[i] = NULL;
    }
    return st;
}

static void dist_free(struct dist *d)
{
    imc_engine_free(d->e);
    free(d->in);
    free(d->hid[0]);
    free(d->hid[1]);
    free(d->logits);
}

enum imc_status imc_dist_run(const struct imc_dist_job *j, double *nll)
{
    IMC_ASSERT(j->comm && j->model && j->ch && j->n_seq >= 1 && nll);
    struct dist d;
    memset(&d, 0, sizeof(d));
    const size_t n = (size_t)(j->ch->n_chunk * imc_ppl_n_scored(j->ch->n_ctx));
    memset(nll, 0, n * sizeof(double));
    d.nll = nll;
    enum imc_status st = setup(&d, j);
    if (st == IMC_OK) {
        st = run_batches(&d);
    }
    dist_free(&d);
    if (st == IMC_OK) {
        st = imc_reduce_sum_f64(j->comm, IMC_GROUP_WORLD, nll, nll, n);
    }
    return st;
}
