/*
 * kernels/cuda/attention: causal softmax attention on the device (GQA head sharing, the optional
 * second value set), the CUDA twin of imc_ref_attention (kernels/kernels.h, kernels/ref).
 *
 * One block of ATT_THREADS threads per (tile of ATT_QT queries, head). The block stages its
 * queries in shared memory, then walks the keys its queries may see in tiles of ATT_KT: the key
 * tile goes to shared memory, each (query, key) score is one thread's float dot product in
 * element order, one thread per query updates the running max and sum of the online softmax
 * (keys in order), then the value tile (and the second value set's) replaces the keys and each
 * thread rescales and accumulates its own output columns for every query of the tile, in key
 * order. The accumulators stay in shared memory (dv up to 512 and more), so the shared size
 * depends on dk, dv and dv2 (about 87 KiB for dk 576, dv = dv2 = 512; over 48 KiB it is opted
 * into with cudaFuncSetAttribute). Every sum has a fixed order and there are no atomics: the
 * result is the same run to run. Arithmetic in float with expf (the reference works in double:
 * the tolerance is stated in tests/cuda/test_attention.c).
 */
#include "kernels/cuda/cuda_common.cuh"

#include "kernels/cuda/kernels_c.cuh"
#include "kernels/cuda/kern_decl.h"

#define ATT_QT 8       // queries per block
#define ATT_KT 16      // keys per shared tile
#define ATT_THREADS 128
#define ATT_SMEM_MAX (163 * 1024) // the opt-in maximum of sm_80, the smallest of the built archs

// The block's shared memory, in floats: queries, one key/value tile (rows of kld), scores,
// running max, running sum, rescale factors, the two accumulators.
struct att_layout {
    int64_t kld, qs, kv, sc, m, l, cr, acc, acc2, total;
};

static __host__ __device__ att_layout att_layout_of(int64_t dk, int64_t dv, int64_t dv2)
{
    att_layout s;
    int64_t dmax = dk > dv ? dk : dv;
    dmax = dmax > dv2 ? dmax : dv2;
    s.kld = dmax | 1; // odd row stride: the score threads of one query read different banks
    s.qs = 0;
    s.kv = s.qs + ATT_QT * dk;
    s.sc = s.kv + ATT_KT * s.kld;
    s.m = s.sc + ATT_QT * ATT_KT;
    s.l = s.m + ATT_QT;
    s.cr = s.l + ATT_QT;
    s.acc = s.cr + ATT_QT;
    s.acc2 = s.acc + ATT_QT * dv;
    s.total = s.acc2 + ATT_QT * dv2;
    return s;
}

// Copies rows [u0, u0 + n) of the head at base (row stride ld) into dst (row stride dld), d wide.
static __device__ void att_stage(float *dst, int64_t dld, const float *base, int64_t ld,
                                 int64_t u0, int64_t n, int64_t d)
{
    for (int64_t e = threadIdx.x; e < n * d; e += blockDim.x) {
        const int64_t j = e / d, i = e % d;
        dst[j * dld + i] = base[(u0 + j) * ld + i];
    }
}

// acc[r][c] = acc[r][c] · cr[r] + Σ_j p[r][j] v[j][c] for the thread's columns, keys in order.
static __device__ void att_accumulate(float *acc, int64_t d, const float *cr, const float *p,
                                      const float *v, int64_t kld, int64_t nk)
{
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
        for (int r = 0; r < ATT_QT; r++) {
            float a = acc[r * d + c] * cr[r];
            for (int64_t j = 0; j < nk; j++) {
                a += p[r * ATT_KT + j] * v[j * kld + c];
            }
            acc[r * d + c] = a;
        }
    }
}

// out rows t0 + r (r < nq) of one head = acc[r] / l[r].
static __device__ void att_store(float *out, int64_t ld_tok, const float *acc, int64_t d,
                                 const float *l, int64_t t0, int64_t nq)
{
    for (int64_t e = threadIdx.x; e < nq * d; e += blockDim.x) {
        const int64_t r = e / d, c = e % d;
        out[(t0 + r) * ld_tok + c] = acc[r * d + c] / l[r];
    }
}

// One query tile's online-softmax step over keys [u0, u0 + nk): scores sc[r][j] become the
// unnormalized probabilities under the new running max, cr[r] the factor of the old sums.
static __device__ void att_softmax_step(float *sc, float *m, float *l, float *cr, int64_t nk)
{
    const int r = threadIdx.x;
    if (r >= ATT_QT) {
        return;
    }
    float mx = m[r];
    for (int64_t j = 0; j < nk; j++) {
        mx = sc[r * ATT_KT + j] > mx ? sc[r * ATT_KT + j] : mx;
    }
    if (mx == -INFINITY) { // nothing visible yet (a row past n_tok)
        cr[r] = 1.0f;
        for (int64_t j = 0; j < nk; j++) {
            sc[r * ATT_KT + j] = 0.0f;
        }
        return;
    }
    const float c = m[r] == -INFINITY ? 0.0f : expf(m[r] - mx);
    float sum = l[r] * c;
    for (int64_t j = 0; j < nk; j++) {
        const float s = sc[r * ATT_KT + j];
        const float p = s == -INFINITY ? 0.0f : expf(s - mx);
        sc[r * ATT_KT + j] = p;
        sum += p;
    }
    cr[r] = c;
    m[r] = mx;
    l[r] = sum;
}

static __global__ void __launch_bounds__(ATT_THREADS) attention_kernel(imc_attn_args a)
{
    IMC_DYN_SHARED(float, sm);
    const att_layout L = att_layout_of(a.dk, a.dv, a.v2 ? a.dv2 : 0);
    float *qs = sm + L.qs, *kv = sm + L.kv, *sc = sm + L.sc, *m = sm + L.m, *l = sm + L.l;
    float *cr = sm + L.cr, *acc = sm + L.acc, *acc2 = sm + L.acc2;
    const int64_t h = blockIdx.y, t0 = (int64_t)blockIdx.x * ATT_QT;
    const int64_t nq = a.n_tok - t0 < ATT_QT ? a.n_tok - t0 : ATT_QT;
    const int64_t hk = h / (a.n_head / a.n_head_kv);
    const int64_t dv2 = a.v2 ? a.dv2 : 0;
    const float *kb = a.k + hk * a.k_ld_head, *vb = a.v + hk * a.v_ld_head;
    const float *v2b = a.v2 ? a.v2 + (h / (a.n_head / a.n_head_v2)) * a.v2_ld_head : nullptr;

    for (int64_t e = threadIdx.x; e < ATT_QT * a.dk; e += blockDim.x) {
        const int64_t r = e / a.dk, i = e % a.dk;
        qs[e] = r < nq ? a.q[(t0 + r) * a.q_ld_tok + h * a.q_ld_head + i] : 0.0f;
    }
    for (int64_t e = threadIdx.x; e < ATT_QT * a.dv; e += blockDim.x) {
        acc[e] = 0.0f;
    }
    for (int64_t e = threadIdx.x; e < ATT_QT * dv2; e += blockDim.x) {
        acc2[e] = 0.0f;
    }
    if (threadIdx.x < ATT_QT) {
        m[threadIdx.x] = -INFINITY;
        l[threadIdx.x] = 0.0f;
    }
    const int64_t n_keys = t0 + nq; // the last query sees keys 0 .. t0 + nq - 1
    for (int64_t u0 = 0; u0 < n_keys; u0 += ATT_KT) {
        const int64_t nk = n_keys - u0 < ATT_KT ? n_keys - u0 : ATT_KT;
        att_stage(kv, L.kld, kb, a.k_ld_tok, u0, nk, a.dk);
        __syncthreads(); // the keys (and at the first tile the queries) are staged
        for (int64_t e = threadIdx.x; e < ATT_QT * ATT_KT; e += blockDim.x) {
            const int64_t r = e / ATT_KT, j = e % ATT_KT;
            float s = -INFINITY;
            if (r < nq && j < nk && u0 + j <= t0 + r) {
                const float *qr = qs + r * a.dk, *kr = kv + j * L.kld;
                float dot = 0.0f;
                for (int64_t i = 0; i < a.dk; i++) {
                    dot += qr[i] * kr[i];
                }
                s = dot * a.scale;
            }
            sc[e] = s;
        }
        __syncthreads(); // scores complete; the key tile is no longer read
        att_softmax_step(sc, m, l, cr, nk);
        att_stage(kv, L.kld, vb, a.v_ld_tok, u0, nk, a.dv);
        __syncthreads(); // probabilities, factors and values ready
        att_accumulate(acc, a.dv, cr, sc, kv, L.kld, nk);
        if (v2b) {
            __syncthreads(); // the value tile is no longer read
            att_stage(kv, L.kld, v2b, a.v2_ld_tok, u0, nk, dv2);
            __syncthreads();
            att_accumulate(acc2, dv2, cr, sc, kv, L.kld, nk);
        }
        __syncthreads(); // before the next key tile overwrites kv and sc
    }
    att_store(a.out + h * a.o_ld_head, a.o_ld_tok, acc, a.dv, l, t0, nq);
    if (v2b) {
        att_store(a.out2 + h * a.o2_ld_head, a.o2_ld_tok, acc2, dv2, l, t0, nq);
    }
}

extern "C" enum imc_status IMC_CUDA_FN(attention)(void *stream, const struct imc_attn_args *a)
{
    if (a->n_tok <= 0 || a->n_head <= 0 || (a->dv <= 0 && !a->v2)) {
        return IMC_OK;
    }
    if (a->n_head_kv <= 0 || a->n_head % a->n_head_kv != 0 || a->dk <= 0 ||
        (a->v2 && (a->n_head_v2 <= 0 || a->n_head % a->n_head_v2 != 0)) || a->n_head > 65535) {
        IMC_LOG_ERR("cuda attention: bad shape: %lld heads, %lld kv heads, %lld second-value "
                    "heads, dk %lld (heads must divide evenly, at most 65535)",
                    (long long)a->n_head, (long long)a->n_head_kv, (long long)a->n_head_v2,
                    (long long)a->dk);
        return IMC_ERR_ARG;
    }
    const size_t bytes = (size_t)att_layout_of(a->dk, a->dv, a->v2 ? a->dv2 : 0).total * 4;
    if (bytes > ATT_SMEM_MAX) {
        IMC_LOG_ERR("cuda attention: dk %lld, dv %lld, dv2 %lld need %zu bytes of shared memory "
                    "per block, more than %d",
                    (long long)a->dk, (long long)a->dv, (long long)a->dv2, bytes, ATT_SMEM_MAX);
        return IMC_ERR_UNSUPPORTED;
    }
    if (bytes > 48 * 1024) {
        IMC_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)bytes));
    }
    const dim3 grid((unsigned)((a->n_tok + ATT_QT - 1) / ATT_QT), (unsigned)a->n_head);
    IMC_LAUNCH(attention_kernel, grid, ATT_THREADS, bytes, stream, *a);
    return imc_cuda_check_launch("attention_kernel");
}
