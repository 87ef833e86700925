/*
 * coordinator/imatrix_hook: the per-chunk splitter between the engine's stats hooks and the
 * collectors of an imatrix run, and the list of weights it declares (the why and the rules:
 * coordinator/imatrix_priv.h).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/imatrix_priv.h"
#include "core/log.h"

enum imc_status imx_hook_init(struct imx_hook *h, const struct imc_model *m,
                              struct imc_imatrix *const *ims, int64_t n_col, int64_t n_ctx,
                              bool process_output)
{
    memset(h, 0, sizeof(*h));
    h->m = m;
    h->n_ctx = n_ctx;
    h->process_output = process_output;
    h->layer_end = m->hp.n_layer;
    h->head = true;
    h->col = calloc((size_t)n_col, sizeof(*h->col));
    if (!h->col) {
        IMC_LOG_ERR("imatrix: out of memory");
        return IMC_ERR_NOMEM;
    }
    h->n_col = n_col;
    for (int64_t s = 0; s < n_col; s++) {
        IMC_TRY(imc_stats_collect_init(&h->col[s], ims[s]));
    }
    return IMC_OK;
}

void imx_hook_free(struct imx_hook *h)
{
    for (int64_t s = 0; h->col && s < h->n_col; s++) {
        imc_stats_collect_free(h->col[s]);
    }
    free(h->col);
    memset(h, 0, sizeof(*h));
}

void imx_hook_set_layers(struct imx_hook *h, int64_t layer_begin, int64_t layer_end, bool head)
{
    h->layer_begin = layer_begin;
    h->layer_end = layer_end;
    h->head = head;
}

enum imc_status imx_each_weight(const struct imc_model *m, int64_t layer_begin, int64_t layer_end,
                                bool output, imx_weight_fn fn, void *user)
{
    if (output) {
        IMC_TRY(fn(user, m->output));
    }
    for (int64_t il = layer_begin; il < layer_end; il++) {
        const struct imc_layer *l = &m->layers[il];
        const struct imc_tensor_info *w[IMC_LAYER_N_MATRICES];
        imc_layer_matrices(l, w);
        for (int i = 0; i < IMC_LAYER_N_MATRICES; i++) {
            if (w[i]) {
                IMC_TRY(fn(user, w[i]));
            }
        }
    }
    return IMC_OK;
}

static enum imc_status declare_one(void *user, const struct imc_tensor_info *w)
{
    return imc_stats_collect_declare(user, w);
}

enum imc_status imx_hook_declare(struct imx_hook *h)
{
    for (int64_t s = 0; s < h->n_col; s++) {
        IMC_TRY(imx_each_weight(h->m, h->layer_begin, h->layer_end,
                                h->head && h->process_output, declare_one, h->col[s]));
    }
    return IMC_OK;
}

struct fed_check {
    const struct imc_model *m;
    const struct imc_imatrix *im;
    int64_t n_unfed;
};

static bool layer_expert(const struct imc_layer *l, const struct imc_tensor_info *w)
{
    return w == l->ffn_gate_exps || w == l->ffn_up_exps || w == l->ffn_down_exps;
}

bool imx_is_expert_weight(const struct imc_model *m, const struct imc_tensor_info *w)
{
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        if (layer_expert(&m->layers[il], w)) {
            return true;
        }
    }
    return false;
}

static enum imc_status check_one(void *user, const struct imc_tensor_info *w)
{
    struct fed_check *fc = user;
    if (imx_is_expert_weight(fc->m, w)) {
        return IMC_OK; // the coverage table reports experts
    }
    const struct imc_imatrix_entry *e = imc_imatrix_find(fc->im, w->name);
    double n = 0;
    for (int64_t k = 0; e && k < e->n_mat; k++) {
        n += e->counts[k];
    }
    if (n == 0) {
        IMC_LOG_WRN("imatrix: tensor '%s' received no input", w->name);
        fc->n_unfed++;
    }
    return IMC_OK;
}

int64_t imx_check_fed(const struct imc_model *m, const struct imc_imatrix *im,
                      bool process_output)
{
    struct fed_check fc = {m, im, 0};
    imx_each_weight(m, 0, m->hp.n_layer, process_output, check_one, &fc);
    return fc.n_unfed;
}

enum imc_status imx_hook_end_chunk(struct imx_hook *h, int64_t s)
{
    IMC_ASSERT(s >= 0 && s < h->n_col);
    return imc_stats_collect_end_chunk(h->col[s]);
}

// ---- the hook ---------------------------------------------------------------------------------

// Feeds rows [r0, r1) of x to slot s. The collectors of slots >= 1 run with INFO muted: their
// one-time notes (the 2D MLA line) would repeat what slot 0 logged.
static enum imc_status feed(struct imx_hook *h, const struct imc_exec *ex,
                            const struct imc_backend *be, int64_t s,
                            const struct imc_tensor_info *w, int64_t layer, int64_t slice,
                            const float *x, int64_t ldx, int64_t r0, int64_t r1, int64_t n_in)
{
    if (r1 <= r0) {
        return IMC_OK; // as with one chunk per call: no rows, no call
    }
    const enum imc_log_level lvl = imc_log_get_level();
    if (s > 0 && lvl > IMC_LOG_WARN) {
        imc_log_set_level(IMC_LOG_WARN);
    }
    enum imc_status st =
        imc_stats_collect_add(h->col[s], ex, be, w, layer, slice, x + r0 * ldx, ldx, r1 - r0, n_in);
    if (s > 0 && lvl > IMC_LOG_WARN) {
        imc_log_set_level(lvl);
    }
    return st;
}

// Rows arrive in ascending token order (worker/stats.h): each run of rows of one sequence
// goes to that sequence's slot.
static enum imc_status on_input(void *user, const struct imc_exec *ex, const struct imc_backend *be,
                                const struct imc_tensor_info *w, int64_t layer, int64_t slice,
                                const float *x, int64_t ldx, int64_t n_rows, int64_t n_in,
                                const int32_t *tok)
{
    struct imx_hook *h = user;
    if (layer < 0 && w == h->m->output && !h->process_output) {
        return IMC_OK;
    }
    for (int64_t r = 0, r1; r < n_rows; r = r1) {
        const int64_t s = tok[r] / h->n_ctx;
        for (r1 = r + 1; r1 < n_rows && tok[r1] / h->n_ctx == s; r1++) {
        }
        if (s < 0 || s >= h->n_col || (r1 < n_rows && tok[r1] / h->n_ctx < s)) {
            IMC_LOG_ERR("imatrix: '%s' reported token %" PRId32 " (row %" PRId64 "), outside the "
                        "%" PRId64 " sequences of the call or out of order",
                        w->name, tok[r1 < n_rows ? r1 : r], r1 < n_rows ? r1 : r, h->n_col);
            return IMC_ERR_INTERNAL;
        }
        IMC_TRY(feed(h, ex, be, s, w, layer, slice, x, ldx, r, r1, n_in));
    }
    return IMC_OK;
}

// Every slot's collector brings home what it summed in the table's memory.
static enum imc_status on_sync(void *user, const struct imc_exec *ex, const struct imc_backend *be,
                               bool release)
{
    struct imx_hook *h = user;
    enum imc_status st = IMC_OK;
    for (int64_t s = 0; s < h->n_col; s++) {
        const enum imc_status ss = imc_stats_collect_sync(h->col[s], ex, be, release);
        st = st == IMC_OK ? ss : st; // on release every slot lets go of the table's memory
    }
    return st;
}

struct imc_stats_hooks imx_hook_hooks(struct imx_hook *h)
{
    return (struct imc_stats_hooks){.user = h, .on_input = on_input, .on_sync = on_sync};
}
