/*
 * kernels/cpu/attention: causal softmax attention on the pool (kernels/kernels.h).
 *
 * The products are the deterministic GEMM of kernels/cpu/gemm.h (the exec's path): each score
 * and each output element is one fmaf chain in ascending k, so the bits are the same on the
 * generic, AVX2 and AVX-512 paths and whatever the CPU (a BLAS would pick its kernels, and
 * their summation order, by CPU model). The softmax (kernels/cpu/softmax_row.h: the scale, then
 * an exp of imc's own, vectorized) is the same on every path too.
 *
 * Two task shapes, each a fixed function of the arguments (never of the thread count), so a
 * call's bits do not depend on how many threads run it:
 * - by head: a task is (head, block of QB queries). It computes the scores of its queries
 *   against the keys they may see (0 .. last query) with one GEMM, scales, masks and normalizes
 *   them row by row, and applies them to the values (and the optional second value set) with
 *   one GEMM each (values packed by key). Scratch: QB × n_tok floats per thread, plus packing.
 * - shared keys (MQA: one key/value head, the absorbed MLA path, and queries, outputs laid out
 *   token-major with the heads of a token adjacent): a task is a block of nq tokens with all
 *   their heads, nq · n_head ≈ MQA_ROWS rows of one query matrix (nq <= QB). The keys and
 *   values are then packed once per MQA_ROWS rows instead of once per QB, which is what the
 *   by-head shape spends most of its time on at 128 heads. Row i of the block is token
 *   t0 + i / n_head. Scratch: nq · n_head × n_tok floats per thread, plus packing.
 */
#include <math.h>

#include "core/log.h"
#include "kernels/cpu/cpu_priv.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/softmax_row.h"
#include "kernels/kernels.h"

#define QB 32
#define MQA_ROWS 256

struct attn_job {
    const struct imc_attn_args *a;
    const struct imc_exec *ex;
    enum imc_gemm_path path;
    imc_softmax_row_fn softmax; // the path's
    int64_t n_blocks, nq;       // token blocks of nq tokens
    int64_t nr_max;             // score rows of a task, at most
    int failed;
};

// Scales, masks and normalizes nr score rows of length nk; row r sees keys 0 .. t0 + r / per_tok.
static void softmax_causal(imc_softmax_row_fn softmax, float *s, int64_t nr, int64_t nk, int64_t t0,
                           int64_t per_tok, float scale)
{
    for (int64_t r = 0; r < nr; r++) {
        float *row = s + r * nk;
        const int64_t seen = t0 + r / per_tok + 1;
        softmax(row, seen, scale);
        for (int64_t u = seen; u < nk; u++) {
            row[u] = 0.0f;
        }
    }
}

// Packed floats of the values of nk keys: the larger of the two value sets.
static int64_t values_floats(const struct imc_attn_args *a, int64_t nk)
{
    const int64_t d = a->v2 && a->dv2 > a->dv ? a->dv2 : a->dv;
    return imc_gemm_packed_floats(d, nk);
}

// A task's scratch, sized for the call's longest task (so a thread's scratch grows once): its
// scores (nr × nk, rows of nk), then the GEMM's packing work for the keys, then the packed
// values, each 64-byte aligned. False (and the job marked failed) when out of memory.
struct attn_scratch {
    float *s, *work, *vp;
};

static bool task_scratch(struct attn_job *j, int thread, struct attn_scratch *sc)
{
    const int64_t ns = j->nr_max * j->a->n_tok, nw = imc_gemm_nt_work_floats(j->a->dk);
    float *p = imc_exec_scratch(j->ex, thread, ns + nw + values_floats(j->a, j->a->n_tok) + 32);
    if (!p) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return false;
    }
    sc->s = imc_gemm_align(p);
    sc->work = sc->s + ns;
    sc->vp = imc_gemm_align(sc->work + nw);
    return true;
}

// out (nr rows, stride ldo) = P · V for P the nr × nk probabilities and V the nk value rows of
// dv (stride ldv): V packed by key, then the deterministic GEMM.
static void apply_values(const struct attn_job *j, const struct attn_scratch *sc, int64_t nr,
                         int64_t nk, const float *v, int64_t ldv, int64_t dv, float *out,
                         int64_t ldo)
{
    imc_gemm_pack_bt(sc->vp, v, ldv, dv, nk);
    imc_gemm_packed(j->path, out, ldo, sc->s, nk, nr, sc->vp, dv, nk, false);
}

static void head_task(void *ctx, int64_t task, int thread)
{
    struct attn_job *j = ctx;
    const struct imc_attn_args *a = j->a;
    const int64_t h = task / j->n_blocks, t0 = (task % j->n_blocks) * QB;
    const int64_t t1 = t0 + QB < a->n_tok ? t0 + QB : a->n_tok, nq = t1 - t0, nk = t1;
    const int64_t hk = h / (a->n_head / a->n_head_kv);
    struct attn_scratch sc;
    if (!task_scratch(j, thread, &sc)) {
        return;
    }
    imc_gemm_nt(j->path, sc.s, nk, a->q + t0 * a->q_ld_tok + h * a->q_ld_head, a->q_ld_tok, nq,
                a->k + hk * a->k_ld_head, a->k_ld_tok, nk, a->dk, sc.work);
    softmax_causal(j->softmax, sc.s, nq, nk, t0, 1, a->scale);
    apply_values(j, &sc, nq, nk, a->v + hk * a->v_ld_head, a->v_ld_tok, a->dv,
                 a->out + t0 * a->o_ld_tok + h * a->o_ld_head, a->o_ld_tok);
    if (a->v2) {
        const int64_t h2 = h / (a->n_head / a->n_head_v2);
        apply_values(j, &sc, nq, nk, a->v2 + h2 * a->v2_ld_head, a->v2_ld_tok, a->dv2,
                     a->out2 + t0 * a->o2_ld_tok + h * a->o2_ld_head, a->o2_ld_tok);
    }
}

static void mqa_task(void *ctx, int64_t task, int thread)
{
    struct attn_job *j = ctx;
    const struct imc_attn_args *a = j->a;
    const int64_t H = a->n_head, t0 = task * j->nq;
    const int64_t t1 = t0 + j->nq < a->n_tok ? t0 + j->nq : a->n_tok, nk = t1;
    const int64_t nr = (t1 - t0) * H;
    struct attn_scratch sc;
    if (!task_scratch(j, thread, &sc)) {
        return;
    }
    imc_gemm_nt(j->path, sc.s, nk, a->q + t0 * a->q_ld_tok, a->q_ld_head, nr, a->k, a->k_ld_tok, nk,
                a->dk, sc.work);
    softmax_causal(j->softmax, sc.s, nr, nk, t0, H, a->scale);
    apply_values(j, &sc, nr, nk, a->v, a->v_ld_tok, a->dv, a->out + t0 * a->o_ld_tok, a->o_ld_head);
    if (a->v2) {
        apply_values(j, &sc, nr, nk, a->v2, a->v2_ld_tok, a->dv2, a->out2 + t0 * a->o2_ld_tok,
                     a->o2_ld_head);
    }
}

// One key/value head (and one second value head) and every row stride the head stride: the
// rows of a token block form one matrix of each kind.
static bool shared_keys(const struct imc_attn_args *a)
{
    const int64_t H = a->n_head;
    return a->n_head_kv == 1 && a->q_ld_tok == H * a->q_ld_head && a->q_ld_head >= a->dk &&
           a->o_ld_tok == H * a->o_ld_head && a->o_ld_head >= a->dv &&
           (!a->v2 ||
            (a->n_head_v2 == 1 && a->o2_ld_tok == H * a->o2_ld_head && a->o2_ld_head >= a->dv2));
}

enum imc_status imc_cpu_attention(const struct imc_exec *ex, const struct imc_attn_args *a)
{
    const bool mqa = shared_keys(a);
    int64_t nq = QB;
    if (mqa) {
        nq = a->n_head < MQA_ROWS / QB ? QB : MQA_ROWS / a->n_head;
        nq = nq < 1 ? 1 : nq;
    }
    if (a->n_tok > INT32_MAX / (nq * (mqa ? a->n_head : 1))) {
        IMC_LOG_ERR("attention: %lld tokens exceed the supported range", (long long)a->n_tok);
        return IMC_ERR_UNSUPPORTED;
    }
    struct attn_job j = {.a = a,
                         .ex = ex,
                         .path = imc_exec_gemm_path(ex),
                         .softmax = imc_cpu_softmax_scaled(imc_exec_gemm_path(ex)),
                         .n_blocks = (a->n_tok + nq - 1) / nq,
                         .nq = nq,
                         .nr_max = mqa ? nq * a->n_head : QB};
    if (mqa) {
        imc_exec_run(ex, j.n_blocks, mqa_task, &j);
    } else {
        imc_exec_run(ex, a->n_head * j.n_blocks, head_task, &j);
    }
    if (j.failed) {
        IMC_LOG_ERR("attention: out of memory for %lld x %lld scores",
                    (long long)(mqa ? nq * a->n_head : QB), (long long)a->n_tok);
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}
