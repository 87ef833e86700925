/*
 * kernels/cpu/attention: causal softmax attention on the pool (kernels/kernels.h).
 *
 * Tasks are (head, block of QB queries). A task computes the scores of its queries against the
 * keys they may see (0 .. last query) with one sgemm, masks and normalizes them row by row, and
 * applies them to the values (and the optional second value set) with one sgemm each. Scratch:
 * QB × n_tok floats per thread.
 */
#include <cblas.h>
#include <math.h>

#include "core/log.h"
#include "kernels/cpu/cpu_priv.h"
#include "kernels/kernels.h"

#define QB 32

struct attn_job {
    const struct imc_attn_args *a;
    const struct imc_exec *ex;
    int64_t n_blocks;
    int failed;
};

static void attn_task(void *ctx, int64_t task, int thread)
{
    struct attn_job *j = ctx;
    const struct imc_attn_args *a = j->a;
    const int64_t h = task / j->n_blocks, t0 = (task % j->n_blocks) * QB;
    const int64_t t1 = t0 + QB < a->n_tok ? t0 + QB : a->n_tok, nq = t1 - t0, nk = t1;
    const int64_t hk = h / (a->n_head / a->n_head_kv);
    float *s = imc_exec_scratch(j->ex, thread, nq * nk);
    if (!s) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)a->dk, a->scale,
                a->q + t0 * a->q_ld_tok + h * a->q_ld_head, (int)a->q_ld_tok,
                a->k + hk * a->k_ld_head, (int)a->k_ld_tok, 0.0f, s, (int)nk);
    for (int64_t r = 0; r < nq; r++) {
        float *row = s + r * nk;
        const int64_t seen = t0 + r + 1; // keys 0 .. t0 + r
        imc_cpu_softmax_row(row, seen);
        for (int64_t u = seen; u < nk; u++) {
            row[u] = 0.0f;
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)a->dv, (int)nk, 1.0f, s,
                (int)nk, a->v + hk * a->v_ld_head, (int)a->v_ld_tok, 0.0f,
                a->out + t0 * a->o_ld_tok + h * a->o_ld_head, (int)a->o_ld_tok);
    if (a->v2) {
        const int64_t h2 = h / (a->n_head / a->n_head_v2);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)a->dv2, (int)nk,
                    1.0f, s, (int)nk, a->v2 + h2 * a->v2_ld_head, (int)a->v2_ld_tok, 0.0f,
                    a->out2 + t0 * a->o2_ld_tok + h * a->o2_ld_head, (int)a->o2_ld_tok);
    }
}

enum imc_status imc_cpu_attention(const struct imc_exec *ex, const struct imc_attn_args *a)
{
    if (a->n_tok > INT32_MAX / QB) {
        IMC_LOG_ERR("attention: %lld tokens exceed the supported range", (long long)a->n_tok);
        return IMC_ERR_UNSUPPORTED;
    }
    struct attn_job j = {.a = a, .ex = ex, .n_blocks = (a->n_tok + QB - 1) / QB};
    imc_exec_run(ex, a->n_head * j.n_blocks, attn_task, &j);
    if (j.failed) {
        IMC_LOG_ERR("attention: out of memory for %d x %lld scores", QB, (long long)a->n_tok);
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}
