/*
 * kernels/ref/matmul: scalar references of y = W x and of the row lookup (kernels/kernels.h).
 * One weight row is dequantized at a time through the type table (types/types.h) and the dot
 * product is summed in double.
 */
#include <stdlib.h>

#include "core/log.h"
#include "kernels/kernels.h"

// Traits and row size of type for rows of n_in, or NULL (logged).
static const struct imc_type_traits *row_codec(enum imc_type type, int64_t n_in,
                                               uint64_t *row_bytes)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    if (!imc_type_can_decode(tr) || !imc_type_row_bytes((uint32_t)type, n_in, row_bytes)) {
        IMC_LOG_ERR("matmul: rows of %lld elements of type %s cannot be dequantized",
                    (long long)n_in, imc_type_name((uint32_t)type));
        return NULL;
    }
    return tr;
}

enum imc_status imc_ref_matmul(float *y, int64_t ldy, const void *w, enum imc_type type,
                               int64_t n_out, int64_t n_in, const float *x, int64_t ldx,
                               int64_t n_tok)
{
    uint64_t rb = 0;
    const struct imc_type_traits *tr = row_codec(type, n_in, &rb);
    if (!tr) {
        return IMC_ERR_UNSUPPORTED;
    }
    float *row = malloc((size_t)n_in * sizeof(float));
    if (!row) {
        IMC_LOG_ERR("matmul: out of memory for a row of %lld", (long long)n_in);
        return IMC_ERR_NOMEM;
    }
    for (int64_t o = 0; o < n_out; o++) {
        imc_type_decode(tr, w, o, n_in, 0, n_in, row);
        for (int64_t t = 0; t < n_tok; t++) {
            const float *xt = x + t * ldx;
            double acc = 0.0;
            for (int64_t i = 0; i < n_in; i++) {
                acc += (double)row[i] * xt[i];
            }
            y[t * ldy + o] = (float)acc;
        }
    }
    free(row);
    return IMC_OK;
}

enum imc_status imc_ref_get_rows(float *out, const void *w, enum imc_type type, int64_t n_in,
                                 const int32_t *ids, int64_t n)
{
    uint64_t rb = 0;
    const struct imc_type_traits *tr = row_codec(type, n_in, &rb);
    if (!tr) {
        return IMC_ERR_UNSUPPORTED;
    }
    for (int64_t t = 0; t < n; t++) {
        imc_type_decode(tr, w, ids[t], n_in, 0, n_in, out + t * n_in);
    }
    return IMC_OK;
}
