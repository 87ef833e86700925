/*
 * tests/cuda/backend_emu: the "cuda-emu" op table (tests/cuda/backend_emu.h).
 */
#include "backend_emu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#undef IMC_CUDA_FN
#define IMC_CUDA_FN(n) imc_cuemu_##n
#include "kernels/cuda/kern_decl.h"
#undef IMC_CUDA_FN

// n_rows rows of n floats at stride ld become NaN (a failed launch without a status to return).
static void poison(float *x, int64_t ld, int64_t n_rows, int64_t n)
{
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t i = 0; i < n; i++) {
            x[r * ld + i] = NAN;
        }
    }
}

static bool emu_supports(enum imc_op op, enum imc_type t)
{
    if (op != IMC_OP_MATMUL && op != IMC_OP_GET_ROWS) {
        return true;
    }
    return imc_cuemu_supports_type(t);
}

static enum imc_status emu_matmul(const struct imc_exec *ex, float *y, int64_t ldy, const void *w,
                                  enum imc_type type, int64_t n_out, int64_t n_in, const float *x,
                                  int64_t ldx, int64_t n_tok)
{
    (void)ex;
    if (!imc_cuemu_supports_type(type)) {
        return IMC_ERR_UNSUPPORTED;
    }
    const int64_t g = IMC_CUDA_MMV_MAX_TOK;
    const bool pack_x = ldx != n_in && n_tok > 1, pack_y = ldy != n_out && n_tok > 1;
    float *xb = pack_x ? malloc((size_t)(g * n_in) * sizeof(float)) : NULL;
    float *yb = pack_y ? malloc((size_t)(g * n_out) * sizeof(float)) : NULL;
    enum imc_status st = (pack_x && !xb) || (pack_y && !yb) ? IMC_ERR_NOMEM : IMC_OK;
    for (int64_t t0 = 0; t0 < n_tok && st == IMC_OK; t0 += g) {
        const int64_t nt = n_tok - t0 < g ? n_tok - t0 : g;
        const float *xs = x + t0 * ldx;
        if (pack_x) {
            for (int64_t t = 0; t < nt; t++) {
                memcpy(xb + t * n_in, xs + t * ldx, (size_t)n_in * sizeof(float));
            }
            xs = xb;
        }
        float *ys = pack_y ? yb : y + t0 * ldy;
        st = imc_cuemu_mmv(NULL, type, w, n_out, n_in, xs, (int)nt, ys);
        for (int64_t t = 0; pack_y && st == IMC_OK && t < nt; t++) {
            memcpy(y + (t0 + t) * ldy, yb + t * n_out, (size_t)n_out * sizeof(float));
        }
    }
    free(xb);
    free(yb);
    return st;
}

static enum imc_status emu_matmul_group(const struct imc_exec *ex, const struct imc_mm *mm,
                                        int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const struct imc_mm *m = &mm[i];
        IMC_TRY(
            emu_matmul(ex, m->y, m->ldy, m->w, m->type, m->n_out, m->n_in, m->x, m->ldx, m->n_tok));
    }
    return IMC_OK;
}

static enum imc_status emu_get_rows(const struct imc_exec *ex, float *out, const void *w,
                                    enum imc_type type, int64_t n_in, const int32_t *ids, int64_t n)
{
    (void)ex;
    if (!imc_cuemu_supports_type(type)) {
        return IMC_ERR_UNSUPPORTED;
    }
    int64_t n_rows = 0; // the table's signature has no row count: the largest id + 1
    for (int64_t i = 0; i < n; i++) {
        n_rows = ids[i] >= n_rows ? (int64_t)ids[i] + 1 : n_rows;
    }
    return n == 0 ? IMC_OK : imc_cuemu_get_rows(NULL, type, w, n_rows, n_in, ids, n, out);
}

static void emu_rmsnorm(const struct imc_exec *ex, float *y, const float *x, const float *w,
                        int64_t n_rows, int64_t n, float eps)
{
    (void)ex;
    if (imc_cuemu_rmsnorm(NULL, y, x, w, n_rows, n, eps) != IMC_OK) {
        poison(y, n, n_rows, n);
    }
}

static void emu_rope(const struct imc_exec *ex, const struct imc_rope *p, float *x, int64_t n_tok,
                     int64_t n_head, int64_t ld_tok, int64_t ld_head, const int32_t *pos)
{
    (void)ex;
    if (imc_cuemu_rope(NULL, p, x, n_tok, n_head, ld_tok, ld_head, pos) != IMC_OK) {
        for (int64_t h = 0; h < n_head; h++) {
            poison(x + h * ld_head, ld_tok, n_tok, p->n_dims);
        }
    }
}

static void emu_softmax(const struct imc_exec *ex, float *x, int64_t n_rows, int64_t n)
{
    (void)ex;
    if (imc_cuemu_softmax(NULL, x, n_rows, n) != IMC_OK) {
        poison(x, n, n_rows, n);
    }
}

static void emu_swiglu(const struct imc_exec *ex, float *out, int64_t ldo, const float *gate,
                       int64_t ldg, const float *up, int64_t ldu, int64_t n_rows, int64_t n)
{
    (void)ex;
    if (imc_cuemu_swiglu(NULL, out, ldo, gate, ldg, up, ldu, n_rows, n) != IMC_OK) {
        poison(out, ldo, n_rows, n);
    }
}

static enum imc_status emu_attention(const struct imc_exec *ex, const struct imc_attn_args *a)
{
    (void)ex;
    return imc_cuemu_attention(NULL, a);
}

static enum imc_status emu_moe_route(const struct imc_exec *ex, const struct imc_route_cfg *c,
                                     const float *logits, int64_t n_tok, int32_t *ids,
                                     float *weights)
{
    (void)ex;
    return imc_cuemu_moe_route(NULL, c, logits, n_tok, ids, weights);
}

static void emu_sqacc(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x,
                      int64_t ldx, int64_t n_rows, int64_t n_in)
{
    (void)ex;
    if (imc_cuemu_sqacc(NULL, sum2, count, x, ldx, n_rows, n_in) != IMC_OK) {
        for (int64_t i = 0; i < n_in; i++) {
            sum2[i] = NAN;
        }
    }
}

static const struct imc_backend emu_backend = {
    .name = "cuda-emu",
    .supports = emu_supports,
    .matmul = emu_matmul,
    .matmul_group = emu_matmul_group,
    .get_rows = emu_get_rows,
    .rmsnorm = emu_rmsnorm,
    .rope = emu_rope,
    .softmax = emu_softmax,
    .swiglu = emu_swiglu,
    .attention = emu_attention,
    .moe_route = emu_moe_route,
    .sqacc = emu_sqacc,
};

const struct imc_backend *tcuda_backend_emu(void)
{
    return &emu_backend;
}
