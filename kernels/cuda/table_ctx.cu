/*
 * kernels/cuda/table_ctx.cu: the CUDA op table's context (kernels/cuda/table_priv.h): creation,
 * its scratch buffers, what is resident, freeing. Host code only.
 */
#include "kernels/cuda/cuda_common.cuh"

#include <stdlib.h>
#ifdef IMC_CUDA_EMU
#include <sys/mman.h>
#endif

#include "kernels/cuda/kern_decl.h"
#include "kernels/cuda/table_priv.h"

// *out = the environment variable name's number of tokens in lo .. hi, or def where it is unset
// or empty; false (logged) for anything else.
static bool env_tokens(const char *name, int def, int lo, int hi, int *out)
{
    const char *env = getenv(name);
    if (!imc_cuda_env_tokens(env, def, lo, hi, out)) {
        IMC_LOG_ERR("cuda: %s=%s: expected a number of tokens in %d..%d", name, env, lo, hi);
        return false;
    }
    return true;
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(ctx_new)(void **out)
{
    *out = NULL;
    struct imc_cuda_ctx *c = (struct imc_cuda_ctx *)calloc(1, sizeof(*c));
    if (!c) {
        IMC_LOG_ERR("cuda: out of host memory for the op table's context");
        return IMC_ERR_NOMEM;
    }
    if (!env_tokens("IMC_CUDA_MMV_TOKENS", IMC_CUDA_MMV_TOKENS, 1, IMC_CUDA_MMV_MAX_TOK,
                    &c->mmv_tok) ||
        !env_tokens("IMC_CUDA_MMQ_TOKENS", IMC_CUDA_MMQ_TOKENS, 0, IMC_CUDA_MMQ_MAX_TOK,
                    &c->mmq_tok)) {
        free(c);
        return IMC_ERR_ARG;
    }
    const enum imc_status st = IMC_CUDA_FN(blas_create)(&c->blas);
    if (st == IMC_ERR_NOMEM) {
        IMC_LOG_ERR("cuda: device memory exhausted: cuBLAS cannot start");
        free(c);
        return st;
    }
    if (st != IMC_OK) {
        c->blas = NULL; // the tiled kernel of gemm.cu multiplies the batches
        IMC_LOG_DBG("cuda: no cuBLAS here; batches use the tiled gemm kernel");
    }
    *out = c;
    return IMC_OK;
}

// The memory c holds now.
static void mem_now(const struct imc_cuda_ctx *c, struct imc_cuda_mem *m)
{
    *m = c->peak;
    m->weights = c->wc.bytes;
    m->n_weights = c->wc.n;
    m->buffers = c->buf_bytes;
    m->scratch = c->check_rec ? sizeof(*c->check_rec) : 0;
    for (int i = 0; i < CT_NSLOT; i++) {
        m->scratch += c->dev[i] ? (c->dev_cap[i] ? c->dev_cap[i] : 1) : 0;
    }
}

IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_mem_note)(struct imc_cuda_ctx *c)
{
    struct imc_cuda_mem m;
    mem_now(c, &m);
    const size_t now = m.weights + m.buffers + m.scratch;
    if (now > c->peak.peak) {
        c->peak.peak = now;
        c->peak.peak_weights = m.weights;
        c->peak.peak_buffers = m.buffers;
        c->peak.peak_scratch = m.scratch;
    }
}

IMC_CUDA_EXTERN int IMC_CUDA_FN(ctx_mmv_tokens)(const void *ctx)
{
    return ((const struct imc_cuda_ctx *)ctx)->mmv_tok;
}

IMC_CUDA_EXTERN int IMC_CUDA_FN(ctx_mmq_tokens)(const void *ctx)
{
    return ((const struct imc_cuda_ctx *)ctx)->mmq_tok;
}

IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_mem)(const void *ctx, struct imc_cuda_mem *m)
{
    mem_now((const struct imc_cuda_ctx *)ctx, m);
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(ctx_sq_flush)(struct imc_cuda_ctx *c)
{
    if (c->sq_n == 0) {
        return IMC_OK;
    }
    const enum imc_status st = IMC_CUDA_FN(sqacc_group)(NULL, c->sq, c->sq_n, c->sq_in);
    for (int i = 0; st != IMC_OK && i < c->sq_n; i++) { // NaN, as a failed sqacc leaves
        (void)IMC_CUDA_FN(dev_memset)(NULL, c->sq[i].sum2, 0xFF, (size_t)c->sq_in * sizeof(double));
    }
    c->sq_n = 0;
    return st;
}

// ctx_sq_flush outside an op (buf_free, ctx_free), the table's buffers opened for it.
static void sq_flush_open(struct imc_cuda_ctx *c)
{
    if (c->sq_n > 0) {
        IMC_CUDA_FN(ctx_guard)(c, true);
        (void)IMC_CUDA_FN(ctx_sq_flush)(c);
        IMC_CUDA_FN(ctx_guard)(c, false);
    }
}

IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_free)(void *ctx)
{
    struct imc_cuda_ctx *c = (struct imc_cuda_ctx *)ctx;
    if (!c) {
        return;
    }
    sq_flush_open(c);
    const struct imc_cuda_mem *pk = &c->peak;
    if (pk->peak_weights > 0) { // a context that multiplied (an engine's, not an op test's)
        const double mib = 1.0 / (1 << 20);
        // what the device holds besides this table's memory now: the CUDA context, cuBLAS's
        // workspace and other processes' memory (what `imc plan --gpu-reserve` allows for)
        struct imc_cuda_mem now;
        mem_now(c, &now);
        size_t fr = 0, tot = 0;
        const size_t ours = now.weights + now.buffers + now.scratch;
        const bool known = IMC_CUDA_FN(mem_info)(&fr, &tot) == IMC_OK && tot >= fr;
        const double besides = known && tot - fr > ours ? (double)(tot - fr - ours) : 0;
        IMC_LOG_INF("cuda: device memory at its most %.1f MiB: weights %.1f MiB, the table's "
                    "buffers %.1f MiB, op scratch %.1f MiB; the device holds %.1f MiB besides "
                    "(the CUDA context, cuBLAS's workspace, other processes)",
                    (double)pk->peak * mib, (double)pk->peak_weights * mib,
                    (double)pk->peak_buffers * mib, (double)pk->peak_scratch * mib,
                    besides * mib);
        const struct imc_cuda_traffic *t = &c->traffic;
        IMC_LOG_DBG("cuda: the ops copied %zu bytes to the device in %zu copies and %zu bytes "
                    "back in %zu; %zu exchanges between ranks sent %zu bytes, received %zu",
                    t->up_bytes, t->n_up, t->down_bytes, t->n_down, t->n_peer, t->peer_out_bytes,
                    t->peer_in_bytes);
    }
    IMC_CUDA_FN(wcache_free)(&c->wc);
    for (int i = 0; i < IMC_CUDA_MAX_BUFS; i++) {
        IMC_CUDA_FN(ctx_buf_free)(c, c->buf[i].p);
    }
    for (int i = 0; i < CT_NSLOT; i++) {
        IMC_CUDA_FN(dev_free)(c->dev[i]);
    }
    IMC_CUDA_FN(dev_free)(c->check_rec);
    IMC_CUDA_FN(blas_free)(c->blas);
    free(c->host);
    free(c);
}

IMC_CUDA_EXTERN void *IMC_CUDA_FN(ctx_dev)(struct imc_cuda_ctx *c, enum imc_cuda_slot slot,
                                           size_t bytes, const char *what)
{
    if (bytes <= c->dev_cap[slot] && c->dev[slot]) {
        return c->dev[slot];
    }
    IMC_CUDA_FN(dev_free)(c->dev[slot]);
    c->dev[slot] = NULL;
    c->dev_cap[slot] = 0;
    size_t have = 0;
    for (int i = 0; i < CT_NSLOT; i++) {
        have += c->dev_cap[i];
    }
    if (IMC_CUDA_FN(dev_alloc)(bytes ? bytes : 1, &c->dev[slot]) != IMC_OK) {
        IMC_LOG_ERR("cuda: device memory exhausted: %s need %zu bytes (resident: %zu bytes of "
                    "weights in %zu tensors, %zu bytes of other buffers)",
                    what, bytes, c->wc.bytes, c->wc.n, have);
        return NULL;
    }
    c->dev_cap[slot] = bytes;
    IMC_CUDA_FN(ctx_mem_note)(c);
    return c->dev[slot];
}

// Bytes of device memory: cudaMalloc, or in the emulator pages mapped closed (ctx_guard opens
// them while an op runs).
static void *buf_new(size_t bytes)
{
#ifdef IMC_CUDA_EMU
    if (!cuemu_mem_take(bytes)) { // IMC_CUEMU_MEM_LIMIT, as cudaMalloc
        return NULL;
    }
    void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        cuemu_mem_give(bytes);
        return NULL;
    }
    cuemu_dev_track(p, bytes, 1); // device memory to the emulated cuBLAS
    return p;
#else
    void *p = NULL;
    return IMC_CUDA_FN(dev_alloc)(bytes, &p) == IMC_OK ? p : NULL;
#endif
}

static void buf_del(void *p, size_t bytes)
{
#ifdef IMC_CUDA_EMU
    cuemu_dev_track(p, bytes, 0);
    munmap(p, bytes);
    cuemu_mem_give(bytes);
#else
    (void)bytes;
    IMC_CUDA_FN(dev_free)(p);
#endif
}

IMC_CUDA_EXTERN void *IMC_CUDA_FN(ctx_buf_alloc)(void *ctx, size_t bytes)
{
    struct imc_cuda_ctx *c = (struct imc_cuda_ctx *)ctx;
    int i = 0;
    while (i < IMC_CUDA_MAX_BUFS && c->buf[i].p) {
        i++;
    }
    if (i == IMC_CUDA_MAX_BUFS) {
        IMC_LOG_ERR("cuda: more than %d buffers of the table", IMC_CUDA_MAX_BUFS);
        return NULL;
    }
    bytes = bytes ? bytes : 1;
    char *p = (char *)buf_new(bytes);
    if (!p) {
        size_t have = 0;
        for (int j = 0; j < IMC_CUDA_MAX_BUFS; j++) {
            have += c->buf[j].bytes;
        }
        IMC_LOG_ERR("cuda: device memory exhausted: the table's buffers (activations, statistics) "
                    "need %zu bytes more (resident: %zu bytes of weights in %zu tensors, %zu bytes "
                    "in buffers)",
                    bytes, c->wc.bytes, c->wc.n, have);
        return NULL;
    }
    c->buf[i] = (struct imc_cuda_buf){p, bytes};
    c->buf_bytes += bytes;
    IMC_CUDA_FN(ctx_mem_note)(c);
#ifdef IMC_CUDA_EMU
    if (c->guard_depth > 0 && mprotect(p, bytes, PROT_READ | PROT_WRITE) != 0) {
        IMC_LOG_ERR("cuda emulator: cannot open an activation buffer");
        abort();
    }
#endif
    return p;
}

IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_buf_free)(void *ctx, void *p)
{
    struct imc_cuda_ctx *c = (struct imc_cuda_ctx *)ctx;
    sq_flush_open(c); // queued sqaccs may read rows or sums in p
    for (int i = 0; p && i < IMC_CUDA_MAX_BUFS; i++) {
        if (c->buf[i].p == p) {
            buf_del(p, c->buf[i].bytes);
            c->buf_bytes -= c->buf[i].bytes;
            c->buf[i] = (struct imc_cuda_buf){NULL, 0};
            return;
        }
    }
}

IMC_CUDA_EXTERN bool IMC_CUDA_FN(ctx_buf_has)(const struct imc_cuda_ctx *c, const void *p,
                                              size_t bytes)
{
    const char *q = (const char *)p;
    for (int i = 0; i < IMC_CUDA_MAX_BUFS; i++) {
        const struct imc_cuda_buf *b = &c->buf[i];
        if (b->p && q >= b->p && q + bytes <= b->p + b->bytes) {
            return true;
        }
    }
    return false;
}

IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_guard)(struct imc_cuda_ctx *c, bool open)
{
    c->guard_depth += open ? 1 : -1;
#ifdef IMC_CUDA_EMU
    if ((open && c->guard_depth == 1) || (!open && c->guard_depth == 0)) {
        for (int i = 0; i < IMC_CUDA_MAX_BUFS; i++) {
            if (c->buf[i].p && mprotect(c->buf[i].p, c->buf[i].bytes,
                                        open ? PROT_READ | PROT_WRITE : PROT_NONE) != 0) {
                IMC_LOG_ERR("cuda emulator: cannot protect an activation buffer");
                abort();
            }
        }
    }
#endif
}

IMC_CUDA_EXTERN void *IMC_CUDA_FN(ctx_host)(struct imc_cuda_ctx *c, size_t bytes)
{
    if (bytes <= c->host_cap && c->host) {
        return c->host;
    }
    void *p = realloc(c->host, bytes ? bytes : 1);
    if (!p) {
        IMC_LOG_ERR("cuda: out of host memory (%zu bytes of staging)", bytes);
        return NULL;
    }
    c->host = p;
    c->host_cap = bytes;
    return p;
}

IMC_CUDA_EXTERN void IMC_CUDA_FN(ctx_traffic)(const void *ctx, struct imc_cuda_traffic *t)
{
    *t = ((const struct imc_cuda_ctx *)ctx)->traffic;
}

IMC_CUDA_EXTERN size_t IMC_CUDA_FN(ctx_resident)(const void *ctx, const void *lo, const void *hi,
                                                 size_t *bytes)
{
    const struct imc_cuda_ctx *c = (const struct imc_cuda_ctx *)ctx;
    const bool all = !lo && !hi;
    size_t n = 0, b = 0;
    for (size_t i = 0; c && i < c->wc.cap; i++) {
        const char *h = (const char *)c->wc.e[i].host;
        if (h && (all || (h >= (const char *)lo && h < (const char *)hi))) {
            n++;
            b += c->wc.e[i].bytes;
        }
    }
    if (bytes) {
        *bytes = b;
    }
    return n;
}
