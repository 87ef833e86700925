/*
 * kernels/backend: the op tables of the cpu and ref backends (kernels/backend.h).
 */
#include "kernels/backend.h"

#include <string.h>

static bool cpu_supports(enum imc_op op, enum imc_type t)
{
    if (op != IMC_OP_MATMUL && op != IMC_OP_GET_ROWS) {
        return true;
    }
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)t);
    return imc_type_can_decode(tr);
}

static enum imc_status cpu_nll_rows(const struct imc_exec *ex, struct imc_nll_row *out,
                                    const float *logits, int64_t n_rows, int64_t n_vocab,
                                    const int32_t *targets, const uint16_t *base, int64_t ld_base)
{
    imc_cpu_nll_rows(ex, out, logits, n_rows, n_vocab, targets, base, ld_base);
    return IMC_OK;
}

// ---- moves and adds: the cpu and ref ops cannot fail ------------------------------------------

static enum imc_status cpu_copy(const struct imc_exec *ex, const struct imc_copy_args *a)
{
    imc_cpu_copy(ex, a);
    return IMC_OK;
}

static enum imc_status cpu_move_rows(const struct imc_exec *ex, float *dst, const int32_t *dst_idx,
                                     const float *src, const int32_t *src_idx, int64_t n, int64_t d)
{
    imc_cpu_move_rows(ex, dst, dst_idx, src, src_idx, n, d);
    return IMC_OK;
}

static enum imc_status cpu_add(const struct imc_exec *ex, float *x, const float *y, int64_t n_rows,
                               int64_t n, int64_t ldy)
{
    imc_cpu_add(ex, x, y, n_rows, n, ldy);
    return IMC_OK;
}

static enum imc_status cpu_moe_wsum(const struct imc_exec *ex, float *y, const float *rows,
                                    const int32_t *pos, const float *w, const float *add, int64_t n,
                                    int64_t k, int64_t d)
{
    imc_cpu_moe_wsum(ex, y, rows, pos, w, add, n, k, d);
    return IMC_OK;
}

// Host tables: their memory is host memory.
static enum imc_status host_upload(const struct imc_exec *ex, void *dst, const void *src,
                                   size_t bytes)
{
    (void)ex;
    memcpy(dst, src, bytes);
    return IMC_OK;
}

static enum imc_status host_download(const struct imc_exec *ex, void *dst, const void *src,
                                     size_t bytes)
{
    return host_upload(ex, dst, src, bytes);
}

static enum imc_status host_zero(const struct imc_exec *ex, void *dst, size_t bytes)
{
    (void)ex;
    memset(dst, 0, bytes);
    return IMC_OK;
}

// The value at flat index idx of rows of n at stride ld (host memory).
static float value_at(const float *x, int64_t ld, int64_t n, int64_t idx)
{
    return x[(idx / n) * ld + idx % n];
}

static enum imc_status cpu_find_nonfinite(const struct imc_exec *ex, const float *x, int64_t ld,
                                          int64_t n_rows, int64_t n, int64_t *index, float *value)
{
    *index = imc_cpu_find_nonfinite(ex, x, ld, n_rows, n);
    if (*index >= 0) {
        *value = value_at(x, ld, n, *index);
    }
    return IMC_OK;
}

static const struct imc_backend cpu_backend = {
    .name = "cpu",
    .supports = cpu_supports,
    .matmul = imc_cpu_matmul,
    .matmul_group = imc_cpu_matmul_group,
    .get_rows = imc_cpu_get_rows,
    .rmsnorm = imc_cpu_rmsnorm,
    .rope = imc_cpu_rope,
    .softmax = imc_cpu_softmax,
    .swiglu = imc_cpu_swiglu,
    .attention = imc_cpu_attention,
    .moe_route = imc_cpu_moe_route,
    .sqacc = imc_cpu_sqacc,
    .nll_rows = cpu_nll_rows,
    .copy = cpu_copy,
    .move_rows = cpu_move_rows,
    .add = cpu_add,
    .moe_wsum = cpu_moe_wsum,
    .find_nonfinite = cpu_find_nonfinite,
    .upload = host_upload,
    .download = host_download,
    .zero = host_zero,
};

// ---- ref adapters: the reference ops take no execution context ---------------------------------

static enum imc_status ref_matmul(const struct imc_exec *ex, float *y, int64_t ldy, const void *w,
                                  enum imc_type type, int64_t n_out, int64_t n_in, const float *x,
                                  int64_t ldx, int64_t n_tok)
{
    return imc_ref_matmul(y, ldy, w, type, n_out, n_in, x, ldx, n_tok);
}

static enum imc_status ref_matmul_group(const struct imc_exec *ex, const struct imc_mm *mm,
                                        int64_t n)
{
    (void)ex;
    for (int64_t i = 0; i < n; i++) {
        const struct imc_mm *m = &mm[i];
        IMC_TRY(imc_ref_matmul(m->y, m->ldy, m->w, m->type, m->n_out, m->n_in, m->x, m->ldx,
                               m->n_tok));
    }
    return IMC_OK;
}

static enum imc_status ref_get_rows(const struct imc_exec *ex, float *out, const void *w,
                                    enum imc_type type, int64_t n_in, const int32_t *ids,
                                    int64_t n)
{
    return imc_ref_get_rows(out, w, type, n_in, ids, n);
}

static void ref_rmsnorm(const struct imc_exec *ex, float *y, const float *x, const float *w,
                        int64_t n_rows, int64_t n, float eps)
{
    imc_ref_rmsnorm(y, x, w, n_rows, n, eps);
}

static void ref_rope(const struct imc_exec *ex, const struct imc_rope *p, float *x, int64_t n_tok,
                     int64_t n_head, int64_t ld_tok, int64_t ld_head, const int32_t *pos)
{
    imc_ref_rope(p, x, n_tok, n_head, ld_tok, ld_head, pos);
}

static void ref_softmax(const struct imc_exec *ex, float *x, int64_t n_rows, int64_t n)
{
    imc_ref_softmax(x, n_rows, n);
}

static void ref_swiglu(const struct imc_exec *ex, float *out, int64_t ldo, const float *gate,
                       int64_t ldg, const float *up, int64_t ldu, int64_t n_rows, int64_t n)
{
    imc_ref_swiglu(out, ldo, gate, ldg, up, ldu, n_rows, n);
}

static enum imc_status ref_attention(const struct imc_exec *ex, const struct imc_attn_args *a)
{
    return imc_ref_attention(a);
}

static enum imc_status ref_moe_route(const struct imc_exec *ex, const struct imc_route_cfg *c,
                                     const float *logits, int64_t n_tok, int32_t *ids,
                                     float *weights)
{
    return imc_ref_moe_route(c, logits, n_tok, ids, weights);
}

static void ref_sqacc(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x,
                      int64_t ldx, int64_t n_rows, int64_t n_in)
{
    imc_ref_sqacc(sum2, count, x, ldx, n_rows, n_in);
}

static enum imc_status ref_nll_rows(const struct imc_exec *ex, struct imc_nll_row *out,
                                    const float *logits, int64_t n_rows, int64_t n_vocab,
                                    const int32_t *targets, const uint16_t *base, int64_t ld_base)
{
    imc_ref_nll_rows(out, logits, n_rows, n_vocab, targets, base, ld_base);
    return IMC_OK;
}

static enum imc_status ref_copy(const struct imc_exec *ex, const struct imc_copy_args *a)
{
    imc_ref_copy(a);
    return IMC_OK;
}

static enum imc_status ref_move_rows(const struct imc_exec *ex, float *dst, const int32_t *dst_idx,
                                     const float *src, const int32_t *src_idx, int64_t n, int64_t d)
{
    imc_ref_move_rows(dst, dst_idx, src, src_idx, n, d);
    return IMC_OK;
}

static enum imc_status ref_add(const struct imc_exec *ex, float *x, const float *y, int64_t n_rows,
                               int64_t n, int64_t ldy)
{
    imc_ref_add(x, y, n_rows, n, ldy);
    return IMC_OK;
}

static enum imc_status ref_moe_wsum(const struct imc_exec *ex, float *y, const float *rows,
                                    const int32_t *pos, const float *w, const float *add, int64_t n,
                                    int64_t k, int64_t d)
{
    imc_ref_moe_wsum(y, rows, pos, w, add, n, k, d);
    return IMC_OK;
}

static enum imc_status ref_find_nonfinite(const struct imc_exec *ex, const float *x, int64_t ld,
                                          int64_t n_rows, int64_t n, int64_t *index, float *value)
{
    *index = imc_find_nonfinite(x, ld, n_rows, n);
    if (*index >= 0) {
        *value = value_at(x, ld, n, *index);
    }
    return IMC_OK;
}

static const struct imc_backend ref_backend = {
    .name = "ref",
    .supports = cpu_supports,
    .matmul = ref_matmul,
    .matmul_group = ref_matmul_group,
    .get_rows = ref_get_rows,
    .rmsnorm = ref_rmsnorm,
    .rope = ref_rope,
    .softmax = ref_softmax,
    .swiglu = ref_swiglu,
    .attention = ref_attention,
    .moe_route = ref_moe_route,
    .sqacc = ref_sqacc,
    .nll_rows = ref_nll_rows,
    .copy = ref_copy,
    .move_rows = ref_move_rows,
    .add = ref_add,
    .moe_wsum = ref_moe_wsum,
    .find_nonfinite = ref_find_nonfinite,
    .upload = host_upload,
    .download = host_download,
    .zero = host_zero,
};

const struct imc_backend *imc_backend_cpu(void)
{
    return &cpu_backend;
}

const struct imc_backend *imc_backend_ref(void)
{
    return &ref_backend;
}

const struct imc_backend *imc_backend_by_name(const char *name)
{
    if (strcmp(name, "cpu") == 0) {
        return &cpu_backend;
    }
    if (strcmp(name, "ref") == 0) {
        return &ref_backend;
    }
    return NULL; // "cuda": no device op table yet (kernels/cuda/cuda.h)
}
