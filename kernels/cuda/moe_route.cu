/*
 * kernels/cuda/moe_route: MoE routing on the device (softmax or sigmoid gating, selection bias,
 * group-limited top-k, normalization with the 6.103515625e-5 floor, scale), the CUDA twin of
 * imc_ref_moe_route (kernels/ref/moe.c).
 *
 * One warp (a block of 32 threads) per token. Lane i owns experts i, i + 32, ... and groups
 * i, i + 32, ...: it computes their scores in double exactly as the reference does, keeps their
 * selection flags, and offers its best candidate to each arg-max, a warp reduction under the
 * total order (larger score, then lower index), which is the reference's repeated arg-max
 * (ties to the lower index) whatever the order of combination. The two sums that depend on
 * order (the softmax denominator and the weight sum) are taken by lane 0 in the reference's
 * order. So the routing is the reference's operation for operation: bitwise equal where exp is
 * the same function (the emulator runs libm's), and on the device within exp's last-ulp
 * differences (tests/cuda/test_moe_route.c states the tolerance).
 */
#include "kernels/cuda/cuda_common.cuh"

#include "kernels/cuda/kernels_c.cuh"
#include "kernels/cuda/kern_decl.h"

#define ROUTE_FULL 0xffffffffu

struct route_args {
    int64_t n_expert, n_used, n_group, n_group_used;
    const float *bias;
    int sigmoid, norm;
    float scale;
};

// The warp's best (value, index) under: larger value first, then lower index; index -1 = none.
static __device__ void route_warp_argmax(double *v, int *idx)
{
    for (int d = 16; d > 0; d /= 2) {
        const double ov = __shfl_xor_sync(ROUTE_FULL, *v, d);
        const int oi = __shfl_xor_sync(ROUTE_FULL, *idx, d);
        if (oi >= 0 && (*idx < 0 || ov > *v || (ov == *v && oi < *idx))) {
            *v = ov;
            *idx = oi;
        }
    }
}

// The arg-max over v[i] with ok[i], i = lane, lane + 32, ... < n, reduced over the warp. A NaN
// counts as -inf, so the order is total and every lane gets the same answer whatever the values
// (the engine checks its outputs after the layer on a GPU: non-finite logits may reach here, and
// must still give n_used distinct experts).
static __device__ int route_argmax(const double *v, const unsigned char *ok, int64_t n)
{
    double best = 0.0;
    int bi = -1;
    for (int64_t i = threadIdx.x; i < n; i += 32) {
        const double vi = v[i] != v[i] ? -INFINITY : v[i];
        if (ok[i] && (bi < 0 || vi > best)) {
            best = vi;
            bi = (int)i;
        }
    }
    route_warp_argmax(&best, &bi);
    return bi;
}

// Clears ok[] of the experts outside the n_group_used groups of best score (sum of the group's
// two largest sel). Every lane returns with its own experts' flags set.
static __device__ void route_groups(const route_args &a, const double *sel, unsigned char *ok,
                                    double *gscore, unsigned char *gok, unsigned char *keep)
{
    const int64_t per = a.n_expert / a.n_group;
    for (int64_t g = threadIdx.x; g < a.n_group; g += 32) {
        double b1 = -INFINITY, b2 = -INFINITY;
        for (int64_t i = g * per; i < (g + 1) * per; i++) { // b1 >= b2: the two largest so far
            b2 = fmax(b2, fmin(b1, sel[i]));                   // branch-free
            b1 = fmax(b1, sel[i]);
        }
        gscore[g] = per >= 2 ? b1 + b2 : b1;
        gok[g] = 1;
        keep[g] = 0;
    }
    for (int64_t k = 0; k < a.n_group_used; k++) {
        const int g = route_argmax(gscore, gok, a.n_group);
        if (g >= 0 && g % 32 == (int)threadIdx.x) { // the owner of group g
            gok[g] = 0;
            keep[g] = 1;
        }
    }
    __syncwarp(); // keep[] is read for every expert below, by other lanes
    for (int64_t e = threadIdx.x; e < a.n_expert; e += 32) {
        ok[e] = keep[e / per];
    }
}

static __global__ void __launch_bounds__(32)
    moe_route_kernel(route_args a, const float *logits, int32_t *ids, float *weights)
{
    IMC_DYN_SHARED(double, sm);
    double *p = sm, *sel = sm + a.n_expert, *gscore = sm + 2 * a.n_expert;
    unsigned char *ok = reinterpret_cast<unsigned char *>(gscore + a.n_group);
    unsigned char *gok = ok + a.n_expert, *keep = gok + a.n_group;
    const int64_t t = blockIdx.x;
    const int lane = threadIdx.x;
    const float *lt = logits + t * a.n_expert;
    int32_t *it = ids + t * a.n_used;
    float *wt = weights + t * a.n_used;

    float mxf = -INFINITY;
    for (int64_t e = lane; e < a.n_expert; e += 32) {
        mxf = lt[e] > mxf ? lt[e] : mxf;
    }
    for (int d = 16; d > 0; d /= 2) {
        const float o = __shfl_xor_sync(ROUTE_FULL, mxf, d);
        mxf = o > mxf ? o : mxf;
    }
    const double mx = mxf;
    for (int64_t e = lane; e < a.n_expert; e += 32) {
        const double l = lt[e];
        p[e] = a.sigmoid ? 1.0 / (1.0 + exp(-l)) : exp(l - mx);
    }
    __syncwarp(); // lane 0 sums every p
    double sum = 0.0;
    if (lane == 0 && !a.sigmoid) {
        for (int64_t e = 0; e < a.n_expert; e++) {
            sum += p[e];
        }
    }
    sum = __shfl_sync(ROUTE_FULL, sum, 0);
    __syncwarp(); // every read of p done before it is divided
    for (int64_t e = lane; e < a.n_expert; e += 32) {
        if (!a.sigmoid) {
            p[e] /= sum;
        }
        sel[e] = p[e] + (a.bias ? (double)a.bias[e] : 0.0);
        ok[e] = 1;
    }
    if (a.n_group > 1) {
        __syncwarp(); // a group's sel was written by several lanes
        route_groups(a, sel, ok, gscore, gok, keep);
    }
    for (int64_t k = 0; k < a.n_used; k++) {
        const int e = route_argmax(sel, ok, a.n_expert);
        if (e % 32 == lane) {
            ok[e] = 0;
        }
        if (lane == 0) {
            it[k] = e;
        }
    }
    __syncwarp(); // p of every expert visible to lane 0 (written before the group step)
    if (lane == 0) {
        double wsum = 0.0;
        for (int64_t k = 0; k < a.n_used; k++) {
            wsum += p[it[k]];
        }
        const double div = a.norm ? fmax(wsum, 6.103515625e-5) : 1.0;
        for (int64_t k = 0; k < a.n_used; k++) {
            wt[k] = (float)(p[it[k]] / div * (double)a.scale);
        }
    }
}

extern "C" enum imc_status IMC_CUDA_FN(moe_route)(void *stream, const struct imc_route_cfg *c,
                                                  const float *logits, int64_t n_tok,
                                                  int32_t *ids, float *weights)
{
    if (n_tok <= 0) {
        return IMC_OK;
    }
    const int64_t ng = c->n_group > 1 ? c->n_group : 0;
    if (c->n_expert <= 0 || c->n_used <= 0 || (ng && c->n_expert % ng != 0) ||
        (ng && (c->n_group_used <= 0 || c->n_group_used > ng)) ||
        c->n_used > (ng ? c->n_group_used * (c->n_expert / ng) : c->n_expert) ||
        n_tok > 0x7fffffff) {
        IMC_LOG_ERR("cuda moe_route: bad config: %lld experts, %lld used, %lld groups, %lld "
                    "used groups, %lld tokens",
                    (long long)c->n_expert, (long long)c->n_used, (long long)c->n_group,
                    (long long)c->n_group_used, (long long)n_tok);
        return IMC_ERR_ARG;
    }
    const route_args a = {c->n_expert, c->n_used, ng, ng ? c->n_group_used : 0, c->bias,
                          c->gating == IMC_ROUTE_SIGMOID, c->norm ? 1 : 0, c->scale};
    const size_t bytes = (size_t)(2 * c->n_expert + ng) * sizeof(double) +
                         (size_t)(c->n_expert + 2 * ng);
    if (bytes > 48 * 1024) {
        IMC_LOG_ERR("cuda moe_route: %lld experts need %zu bytes of shared memory, over 48 KiB",
                    (long long)c->n_expert, bytes);
        return IMC_ERR_UNSUPPORTED;
    }
    IMC_LAUNCH(moe_route_kernel, (unsigned)n_tok, 32, bytes, stream, a, logits, ids, weights);
    return imc_cuda_check_launch("moe_route_kernel");
}
