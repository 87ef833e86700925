/*
 * kernels/cuda/wcache.cu: the resident weights of the CUDA op table (kernels/cuda/table_priv.h):
 * a hash map from a weight's host address to its device copy. Host code only.
 */
#include "kernels/cuda/cuda_common.cuh"

#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/kern_decl.h"
#include "kernels/cuda/table_priv.h"

namespace
{

size_t slot_of(const void *p, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)p;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (size_t)h & (cap - 1);
}

struct imc_cuda_went *find(struct imc_cuda_wcache *c, const void *w)
{
    for (size_t i = slot_of(w, c->cap);; i = (i + 1) & (c->cap - 1)) {
        if (c->e[i].host == w || !c->e[i].host) {
            return &c->e[i];
        }
    }
}

// Keeps the load at most 1/2.
enum imc_status grow(struct imc_cuda_wcache *c)
{
    if (2 * (c->n + 1) <= c->cap) {
        return IMC_OK;
    }
    const size_t cap = c->cap ? 2 * c->cap : 64;
    struct imc_cuda_went *e = (struct imc_cuda_went *)calloc(cap, sizeof(*e));
    if (!e) {
        IMC_LOG_ERR("cuda: out of host memory for the weight table");
        return IMC_ERR_NOMEM;
    }
    struct imc_cuda_wcache n = {e, cap, 0, c->bytes};
    for (size_t i = 0; i < c->cap; i++) {
        if (c->e[i].host) {
            *find(&n, c->e[i].host) = c->e[i];
            n.n++;
        }
    }
    free(c->e);
    *c = n;
    return IMC_OK;
}

// The weight's bytes to d: straight from the mapping, or for an interleaved type re-laid as rows
// first (types.h imc_type_unweave: plain rows or the type's row form; a host copy of the weight).
enum imc_status upload(void *d, const void *w, enum imc_type type, int64_t n_rows, int64_t n_in,
                       size_t bytes)
{
    if (imc_type_traits((uint32_t)type)->rows == 1) {
        return IMC_CUDA_FN(copy_to_dev)(NULL, d, w, bytes);
    }
    void *h = malloc(bytes ? bytes : 1);
    if (!h || !imc_type_unweave(type, w, n_rows, n_in, h)) {
        IMC_LOG_ERR("cuda: weight %s [%lld x %lld]: %s", imc_type_name((uint32_t)type),
                    (long long)n_rows, (long long)n_in,
                    h ? "not whole groups of interleaved rows" : "out of host memory");
        free(h);
        return IMC_ERR_ARG;
    }
    const enum imc_status st = IMC_CUDA_FN(copy_to_dev)(NULL, d, h, bytes);
    free(h);
    return st;
}

} // namespace

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(wcache_get)(struct imc_cuda_wcache *c, const void *w,
                                                        enum imc_type type, int64_t n_rows,
                                                        int64_t n_in, const void **dev)
{
    *dev = NULL;
    uint64_t rb = 0;
    if (n_rows < 0 || !imc_type_row_bytes((uint32_t)type, n_in, &rb)) {
        IMC_LOG_ERR("cuda: weight %s [%lld x %lld]: not a whole number of blocks per row",
                    imc_type_name((uint32_t)type), (long long)n_rows, (long long)n_in);
        return IMC_ERR_ARG;
    }
    const size_t bytes = (size_t)rb * (size_t)n_rows;
    IMC_TRY(grow(c));
    struct imc_cuda_went *e = find(c, w);
    if (e->host && e->bytes >= bytes) {
        *dev = e->dev;
        return IMC_OK;
    }
    void *d = NULL;
    if (IMC_CUDA_FN(dev_alloc)(bytes, &d) != IMC_OK) {
        IMC_LOG_ERR("cuda: device memory exhausted: weight %s [%lld x %lld] needs %zu bytes "
                    "(%zu bytes in %zu weights already resident)",
                    imc_type_name((uint32_t)type), (long long)n_rows, (long long)n_in, bytes,
                    c->bytes, c->n);
        return IMC_ERR_NOMEM;
    }
    const enum imc_status st = upload(d, w, type, n_rows, n_in, bytes);
    if (st != IMC_OK) {
        IMC_CUDA_FN(dev_free)(d);
        return st;
    }
    if (e->host) { // seen with fewer rows: the larger copy replaces it
        IMC_CUDA_FN(dev_free)(e->dev);
        c->bytes -= e->bytes;
    } else {
        e->host = w;
        c->n++;
    }
    e->dev = d;
    e->bytes = bytes;
    c->bytes += bytes;
    *dev = d;
    return IMC_OK;
}

IMC_CUDA_EXTERN void IMC_CUDA_FN(wcache_free)(struct imc_cuda_wcache *c)
{
    for (size_t i = 0; i < c->cap; i++) {
        if (c->e[i].host) {
            IMC_CUDA_FN(dev_free)(c->e[i].dev);
        }
    }
    free(c->e);
    memset(c, 0, sizeof(*c));
}
