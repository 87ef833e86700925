/*
 * coordinator/quantize: `imc quantize` (see quantize.h for the policy and the output keys).
 *
 * Flow: open the model → read the imatrix → plan every tensor (type, fallback, per-matrix
 * weights; all input errors surface here, before any work) → quantize rows on a thread pool
 * (jobs of whole rows, each writing its own bytes) → write the GGUF atomically.
 */
#include "coordinator/quantize.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/quantize_priv.h"
#include "coordinator/share.h"
#include "core/log.h"
#include "core/size.h"
#include "model/imatrix_file.h"
#include "mpi/comm.h"

#define QUANT_VERSION 2              // ggml's GGML_QNT_VERSION, general.quantization_version
#define JOB_ELEMS ((int64_t)1 << 18) // about this many elements per job

struct qjob {
    int64_t tensor;
    int64_t row_begin, row_end;
};

struct qpool {
    struct imc_qtensor *tens;
    const struct qjob *jobs;
    int64_t n_jobs;
    int64_t max_ne0; // scratch row length
    atomic_llong next;
    atomic_int failed; // 1: out of memory, 2: poll failed
    imc_qpoll_fn poll; // main thread's callback between jobs, or NULL
    void *poll_user;
    const struct imc_pulse *pulse; // main thread's progress report after each job, or NULL
    enum imc_status poll_st; // poll's failure (main thread only)
};

void imc_quantize_opts_default(struct imc_quantize_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->type = IMC_TYPE_Q8_0;
    o->n_threads = 1;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

bool imc_quantize_is_target(const struct imc_tensor_info *t)
{
    return t->n_dims >= 2 && ends_with(t->name, ".weight") && !ends_with(t->name, "_norm.weight") &&
           strstr(t->name, "ffn_gate_inp") == NULL;
}

enum imc_type imc_quantize_fallback(enum imc_type t, int64_t ne0)
{
    const struct imc_type_traits *tr = imc_type_traits(t);
    if (tr && ne0 % tr->block_size == 0) {
        return t;
    }
    enum imc_type f = IMC_TYPE_F16;
    switch (t) {
    case IMC_TYPE_Q2_K:
    case IMC_TYPE_Q3_K:
    case IMC_TYPE_IQ4_XS:
        f = IMC_TYPE_IQ4_NL;
        break;
    case IMC_TYPE_Q4_K:
        f = IMC_TYPE_Q5_0;
        break;
    case IMC_TYPE_Q5_K:
        f = IMC_TYPE_Q5_1;
        break;
    case IMC_TYPE_Q6_K:
        f = IMC_TYPE_Q8_0;
        break;
    default:
        break;
    }
    return ne0 % imc_type_traits(f)->block_size == 0 ? f : IMC_TYPE_F16;
}

// llama.h enum llama_ftype of each default type (q3_k/q4_k/q5_k: the _S variants).
static const struct {
    enum imc_type type;
    int ftype;
} ftypes[] = {
    {IMC_TYPE_F32, 0},     {IMC_TYPE_F16, 1},     {IMC_TYPE_Q4_0, 2},  {IMC_TYPE_Q4_1, 3},
    {IMC_TYPE_Q8_0, 7},    {IMC_TYPE_Q5_0, 8},    {IMC_TYPE_Q5_1, 9},  {IMC_TYPE_Q2_K, 10},
    {IMC_TYPE_Q3_K, 11},   {IMC_TYPE_Q4_K, 14},   {IMC_TYPE_Q5_K, 16}, {IMC_TYPE_Q6_K, 18},
    {IMC_TYPE_IQ4_NL, 25}, {IMC_TYPE_IQ4_XS, 30}, {IMC_TYPE_BF16, 32},
};

int imc_quantize_ftype(enum imc_type t)
{
    for (size_t i = 0; i < sizeof(ftypes) / sizeof(ftypes[0]); i++) {
        if (ftypes[i].type == t) {
            return ftypes[i].ftype;
        }
    }
    return -1;
}

static void shape_str(const struct imc_tensor_info *t, char *buf, size_t size)
{
    int off = 0;
    for (int d = 0; d < t->n_dims && off >= 0 && (size_t)off < size; d++) {
        off += snprintf(buf + off, size - (size_t)off, "%s%" PRId64, d ? "x" : "", t->ne[d]);
    }
}

// Fills q->qw / q->has_qw from imatrix entry e (shape already checked). Logs count-0 matrices.
static enum imc_status fill_weights(struct imc_qtensor *q, const struct imc_imatrix_entry *e)
{
    int64_t ne0 = q->t->ne[0];
    uint64_t n = 0;
    if (!imc_size_mul((uint64_t)ne0, (uint64_t)q->n_mat, &n) || n > SIZE_MAX / sizeof(float) ||
        !(q->qw = malloc(n * sizeof(*q->qw))) ||
        !(q->has_qw = calloc((size_t)q->n_mat, sizeof(*q->has_qw)))) {
        IMC_LOG_ERR("tensor '%s': out of memory for imatrix weights", q->t->name);
        return IMC_ERR_NOMEM;
    }
    int64_t n_empty = 0;
    for (int64_t m = 0; m < q->n_mat; m++) {
        double c = e->counts[m];
        if (!(c > 0)) {
            n_empty++;
            continue;
        }
        q->has_qw[m] = 1;
        for (int64_t j = 0; j < ne0; j++) {
            q->qw[m * ne0 + j] = (float)(e->sums[m * ne0 + j] / c);
        }
    }
    if (n_empty > 0) {
        IMC_LOG_INF("tensor '%s': %" PRId64 " of %" PRId64 " matrices saw no token (count 0): "
                    "those rows quantized without imatrix weights",
                    q->t->name, n_empty, q->n_mat);
    }
    if (n_empty == q->n_mat) {
        free(q->qw);
        free(q->has_qw);
        q->qw = NULL;
        q->has_qw = NULL;
    }
    return IMC_OK;
}

// Checks the imatrix entry of q's tensor and builds the weights. Missing entry → warning.
static enum imc_status plan_weights(struct imc_qtensor *q, struct imc_imatrix *im, const char *path)
{
    const struct imc_tensor_info *t = q->t;
    struct imc_imatrix_entry *e = imc_imatrix_find(im, t->name);
    if (!e) {
        if (strcmp(t->name, "token_embd.weight") != 0) {
            IMC_LOG_WRN("%s: no imatrix entry for tensor '%s': quantized without weights", path,
                        t->name);
        }
        return IMC_OK;
    }
    int64_t ne0 = t->ne[0];
    if (q->n_mat > 1 && e->n_mat == 1 && e->n_per_row == ne0 * q->n_mat) {
        if (imc_imatrix_entry_reshape(e, ne0, q->n_mat) != IMC_OK) {
            IMC_LOG_ERR("tensor '%s': out of memory reshaping its imatrix entry", t->name);
            return IMC_ERR_NOMEM;
        }
    }
    if (e->n_per_row != ne0 || e->n_mat != q->n_mat) {
        char shape[96];
        shape_str(t, shape, sizeof(shape));
        IMC_LOG_ERR("%s: tensor '%s' [%s]: imatrix entry does not fit: expected %" PRId64
                    " values x %" PRId64 " matrices, found %" PRId64 " x %" PRId64,
                    path, t->name, shape, ne0, q->n_mat, e->n_per_row, e->n_mat);
        return IMC_ERR_FORMAT;
    }
    return fill_weights(q, e);
}

// Chooses q's output type: rule, default, fallback. hits counts matches per rule.
static void plan_type(struct imc_qtensor *q, const struct imc_quantize_opts *o, int64_t *hits)
{
    const struct imc_tensor_info *t = q->t;
    q->type = t->type;
    if (!imc_quantize_is_target(t)) {
        return;
    }
    enum imc_type want = o->type;
    int64_t r = o->rules ? imc_quant_rules_match(o->rules, t->name) : -1;
    if (r >= 0) {
        want = o->rules->rules[r].type;
        hits[r]++;
    }
    q->type = imc_quantize_fallback(want, t->ne[0]);
    q->fell_back = q->type != want;
    if (q->fell_back) {
        IMC_LOG_INF("tensor '%s': row length %" PRId64
                    " is not a multiple of %s's block of %" PRId64 ": using %s",
                    t->name, t->ne[0], imc_type_name(want), imc_type_traits(want)->block_size,
                    imc_type_name(q->type));
    }
}

uint64_t imc_qtensor_bytes(const struct imc_qtensor *q)
{
    return q->row_bytes * (uint64_t)q->n_rows;
}

// Plans tensor q (q->t set): type, weights, output size.
static enum imc_status plan_tensor(struct imc_qtensor *q, const struct imc_quantize_opts *o,
                                   int64_t *hits, struct imc_imatrix *im)
{
    const struct imc_tensor_info *t = q->t;
    plan_type(q, o, hits);
    q->convert = q->type != t->type;
    q->n_rows = t->ne[1] * t->ne[2] * t->ne[3];
    q->n_mat = t->ne[2] * t->ne[3];
    if (!q->convert) {
        return IMC_OK;
    }
    const struct imc_type_traits *src = imc_type_traits(t->type);
    if (!imc_type_can_decode(src)) {
        IMC_LOG_ERR("%s: tensor '%s': cannot dequantize type %s", o->model, t->name,
                    imc_type_name(t->type));
        return IMC_ERR_UNSUPPORTED;
    }
    if (t->type != IMC_TYPE_F32 && t->type != IMC_TYPE_F16 && t->type != IMC_TYPE_BF16) {
        IMC_LOG_WRN("tensor '%s': requantizing %s to %s loses quality; quantize from f32/f16/bf16",
                    t->name, imc_type_name(t->type), imc_type_name(q->type));
    }
    uint64_t nbytes = 0;
    if (!imc_type_row_bytes(q->type, t->ne[0], &q->row_bytes) ||
        !imc_size_mul(q->row_bytes, (uint64_t)q->n_rows, &nbytes) || nbytes > SIZE_MAX) {
        IMC_LOG_ERR("tensor '%s': %" PRId64 " rows of %s overflow the address space", t->name,
                    q->n_rows, imc_type_name(q->type));
        return IMC_ERR_NOMEM;
    }
    if (im && imc_type_traits(q->type)->block_size > 1) { // float types take no weights
        IMC_TRY(plan_weights(q, im, o->imatrix));
    }
    return IMC_OK;
}

// Quantizes rows [b, e) of q; buf holds ne[0] floats of scratch.
static void run_rows(const struct imc_qtensor *q, int64_t b, int64_t e, float *buf)
{
    const struct imc_tensor_info *t = q->t;
    const struct imc_type_traits *src = imc_type_traits(t->type);
    const struct imc_type_traits *dst = imc_type_traits(q->type);
    int64_t ne0 = t->ne[0];
    uint64_t in_row = t->nbytes / (uint64_t)q->n_rows;
    for (int64_t r = b; r < e; r++) {
        const uint8_t *in = (const uint8_t *)t->data + (uint64_t)r * in_row;
        const float *x = buf;
        if (t->type == IMC_TYPE_F32) {
            x = (const float *)(const void *)in;
        } else {
            imc_type_decode(src, t->data, r, ne0, 0, ne0, buf);
        }
        int64_t m = q->n_mat > 1 ? r / t->ne[1] : 0;
        const float *qw = q->qw && q->has_qw[m] ? q->qw + m * ne0 : NULL;
        dst->from_float(x, q->out + (uint64_t)r * q->row_bytes, ne0, qw);
    }
}

// Runs jobs until none is left; the main thread (main = true) also calls the poll callback.
static void pool_loop(struct qpool *p, bool main)
{
    float *buf = malloc(((size_t)p->max_ne0 + 1) * sizeof(*buf));
    if (!buf) {
        atomic_store(&p->failed, 1);
        return;
    }
    for (;;) {
        long long j = atomic_fetch_add(&p->next, 1);
        if (j >= p->n_jobs || atomic_load(&p->failed)) {
            break;
        }
        const struct qjob *jb = &p->jobs[j];
        run_rows(&p->tens[jb->tensor], jb->row_begin, jb->row_end, buf);
        if (main && p->poll && (p->poll_st = p->poll(p->poll_user)) != IMC_OK) {
            atomic_store(&p->failed, 2);
        }
        if (main) {
            imc_pulse_emit(p->pulse);
        }
    }
    free(buf);
}

static void *pool_main(void *arg)
{
    pool_loop(arg, false);
    return NULL;
}

// Cuts the converted tensors into jobs of whole rows. Returns a new array (free()) or NULL.
static struct qjob *make_jobs(struct imc_qtensor *tens, int64_t n, int rank, int64_t *n_jobs,
                              int64_t *max_ne0)
{
    int64_t count = 0, cap = 64;
    struct qjob *jobs = malloc((size_t)cap * sizeof(*jobs));
    for (int64_t i = 0; jobs && i < n; i++) {
        if (!tens[i].convert || tens[i].owner != rank) {
            continue;
        }
        int64_t ne0 = tens[i].t->ne[0];
        int64_t step = JOB_ELEMS / ne0 > 0 ? JOB_ELEMS / ne0 : 1;
        *max_ne0 = ne0 > *max_ne0 ? ne0 : *max_ne0;
        for (int64_t r = 0; r < tens[i].n_rows; r += step) {
            if (count == cap) {
                cap *= 2;
                struct qjob *nj = realloc(jobs, (size_t)cap * sizeof(*jobs));
                if (!nj) {
                    free(jobs);
                    return NULL;
                }
                jobs = nj;
            }
            int64_t e = r + step < tens[i].n_rows ? r + step : tens[i].n_rows;
            jobs[count++] = (struct qjob){.tensor = i, .row_begin = r, .row_end = e};
        }
    }
    *n_jobs = count;
    return jobs;
}

enum imc_status imc_qrun_pool(struct imc_qtensor *tens, int64_t n, int n_threads, int rank,
                              imc_qpoll_fn poll, void *poll_user, const struct imc_pulse *pulse)
{
    struct qpool p = {
        .tens = tens, .poll = poll, .poll_user = poll_user, .pulse = pulse, .poll_st = IMC_OK};
    struct qjob *jobs = make_jobs(tens, n, rank, &p.n_jobs, &p.max_ne0);
    if (!jobs) {
        IMC_LOG_ERR("quantize: out of memory");
        return IMC_ERR_NOMEM;
    }
    p.jobs = jobs;
    atomic_init(&p.next, 0);
    atomic_init(&p.failed, 0);
    int nt = n_threads < 1 ? 1 : n_threads;
    pthread_t *th = calloc((size_t)nt, sizeof(*th));
    int started = 0;
    for (int i = 1; th && i < nt; i++, started++) {
        if (pthread_create(&th[i], NULL, pool_main, &p) != 0) {
            break;
        }
    }
    pool_loop(&p, true);
    for (int i = 1; i <= started; i++) {
        pthread_join(th[i], NULL);
    }
    free(th);
    free(jobs);
    int failed = atomic_load(&p.failed);
    if (failed == 1) {
        IMC_LOG_ERR("quantize: out of memory for row buffers");
        return IMC_ERR_NOMEM;
    }
    return failed == 2 ? p.poll_st : IMC_OK;
}

// Copies g's keys (minus split.*) and sets the quantization keys.
static enum imc_status set_keys(struct imc_gguf_writer *w, const struct imc_gguf *g,
                                const struct imc_quantize_opts *o, const struct imc_imatrix *im)
{
    for (int64_t i = 0; i < imc_gguf_n_kv(g); i++) {
        if (strncmp(imc_gguf_key(g, i), "split.", 6) != 0) {
            IMC_TRY(imc_gguf_set_from(w, g, i));
        }
    }
    IMC_TRY(imc_gguf_set_u32(w, "general.quantization_version", QUANT_VERSION));
    int ft = imc_quantize_ftype(o->type);
    if (ft >= 0) {
        IMC_TRY(imc_gguf_set_u32(w, "general.file_type", (uint32_t)ft));
    }
    if (!im) {
        return IMC_OK;
    }
    IMC_TRY(imc_gguf_set_str(w, "quantize.imatrix.file", o->imatrix));
    if (im->n_datasets > 0) {
        IMC_TRY(imc_gguf_set_str(w, "quantize.imatrix.dataset", im->datasets[0]));
    }
    IMC_TRY(imc_gguf_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)im->n_entries));
    if (im->chunk_count > 0) {
        IMC_TRY(imc_gguf_set_u32(w, "quantize.imatrix.chunks_count", im->chunk_count));
    }
    return IMC_OK;
}

static enum imc_status write_out(const struct imc_gguf *g, struct imc_qtensor *tens, int64_t n,
                                 const struct imc_quantize_opts *o, const struct imc_imatrix *im,
                                 struct imc_quantize_stats *st)
{
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    if (!w) {
        IMC_LOG_ERR("%s: out of memory", o->out);
        return IMC_ERR_NOMEM;
    }
    enum imc_status s = set_keys(w, g, o, im);
    for (int64_t i = 0; s == IMC_OK && i < n; i++) {
        const struct imc_tensor_info *t = tens[i].t;
        const void *data = tens[i].convert ? (const void *)tens[i].out : t->data;
        s = imc_gguf_add_tensor(w, t->name, tens[i].type, t->n_dims, t->ne, data);
        st->bytes_in += t->nbytes;
        st->bytes_out += tens[i].convert ? imc_qtensor_bytes(&tens[i]) : t->nbytes;
    }
    if (s == IMC_OK) {
        s = imc_gguf_write_pulse(w, o->out, &o->pulse);
    } else {
        IMC_LOG_ERR("%s: cannot build the output (%s)", o->out, imc_status_str(s));
    }
    imc_gguf_writer_free(w);
    return s;
}

static void log_plan(const struct imc_qtensor *q, int64_t i, int64_t n, bool quiet, int size)
{
    char shape[96], owner[32] = "";
    shape_str(q->t, shape, sizeof(shape));
    if (size > 1 && q->convert) {
        snprintf(owner, sizeof(owner), " [rank %d]", q->owner);
    }
    imc_log(quiet ? IMC_LOG_DEBUG : IMC_LOG_INFO,
            "[%4" PRId64 "/%4" PRId64 "] %-36s [%s] %s -> %s%s%s", i + 1, n, q->t->name, shape,
            imc_type_name(q->t->type), imc_type_name(q->type),
            !q->convert ? " (copied)"
            : q->qw     ? " (imatrix)"
                        : "",
            owner);
}

static void warn_unused_rules(const struct imc_quant_rules *r, const int64_t *hits)
{
    for (int64_t i = 0; r && i < r->n; i++) {
        if (hits[i] == 0) {
            IMC_LOG_WRN("rule %" PRId64 " '%s=%s' matches no quantizable tensor", i + 1,
                        r->rules[i].pattern, imc_type_name(r->rules[i].type));
        }
    }
}

// Warns once when the imatrix holds entries for tensors the model does not have (another model's
// imatrix, or names from another converter).
static void warn_foreign_entries(const struct imc_gguf *g, const struct imc_imatrix *im,
                                 const char *path)
{
    int64_t n = 0, first = -1;
    for (int64_t i = 0; im && i < im->n_entries; i++) {
        if (!imc_gguf_find_tensor(g, im->entries[i].name)) {
            first = first < 0 ? i : first;
            n++;
        }
    }
    if (n > 0) {
        IMC_LOG_WRN("%s: %" PRId64 " of %" PRId64 " imatrix entries name no tensor of the model "
                    "(first: '%s')",
                    path, n, im->n_entries, im->entries[first].name);
    }
}

// Plans all tensors of g into tens[n] (zeroed by the caller).
static enum imc_status plan_all(const struct imc_gguf *g, struct imc_qtensor *tens, int64_t n,
                                const struct imc_quantize_opts *o, struct imc_imatrix *im,
                                struct imc_quantize_stats *st)
{
    int64_t n_rules = o->rules ? o->rules->n : 0;
    int64_t *hits = calloc((size_t)n_rules + 1, sizeof(*hits));
    if (!hits) {
        IMC_LOG_ERR("quantize: out of memory");
        return IMC_ERR_NOMEM;
    }
    enum imc_status s = IMC_OK;
    for (int64_t i = 0; s == IMC_OK && i < n; i++) {
        tens[i].t = imc_gguf_tensor(g, i);
        s = plan_tensor(&tens[i], o, hits, im);
        if (s == IMC_OK) {
            st->n_quantized += tens[i].convert;
            st->n_weighted += tens[i].qw != NULL;
            st->n_fallback += tens[i].fell_back;
        }
    }
    if (s == IMC_OK) {
        warn_unused_rules(o->rules, hits);
        warn_foreign_entries(g, im, o->imatrix);
    }
    free(hits);
    return s;
}

static void free_tensors(struct imc_qtensor *tens, int64_t n)
{
    for (int64_t i = 0; tens && i < n; i++) {
        free(tens[i].qw);
        free(tens[i].has_qw);
        free(tens[i].out);
    }
    free(tens);
}

// Gives every tensor its rank (a job of size ranks), logs the plan, drops the imatrix weights of
// tensors another rank quantizes and allocates the outputs this rank holds: its own tensors, and
// on rank 0 every converted tensor (rank 0 writes the file).
static enum imc_status prepare(struct imc_qtensor *tens, int64_t n, int rank, int size, bool quiet)
{
    if (size > 1) {
        IMC_TRY(imc_qdist_assign(tens, n, size));
    }
    for (int64_t i = 0; i < n; i++) {
        struct imc_qtensor *q = &tens[i];
        log_plan(q, i, n, quiet, size);
        if (!q->convert) {
            continue;
        }
        if (q->owner != rank) {
            free(q->qw);
            free(q->has_qw);
            q->qw = NULL;
            q->has_qw = NULL;
        }
        uint64_t nbytes = imc_qtensor_bytes(q);
        if ((q->owner == rank || rank == 0) && !(q->out = malloc(nbytes ? (size_t)nbytes : 1))) {
            IMC_LOG_ERR("tensor '%s': cannot allocate %" PRIu64 " bytes of %s", q->t->name, nbytes,
                        imc_type_name(q->type));
            return IMC_ERR_NOMEM;
        }
    }
    return IMC_OK;
}

// Quantizes this rank's tensors; in a job of several ranks they are then gathered on rank 0.
static enum imc_status compute(struct imc_qtensor *tens, int64_t n,
                               const struct imc_quantize_opts *o, int rank, int size)
{
    if (size <= 1) {
        return imc_qrun_pool(tens, n, o->n_threads, 0, NULL, NULL, &o->pulse);
    }
    struct imc_qdist *d = NULL;
    IMC_TRY(imc_qdist_start(o->comm, tens, n, &d));
    enum imc_status s =
        imc_qrun_pool(tens, n, o->n_threads, rank, rank == 0 ? imc_qdist_poll : NULL, d, &o->pulse);
    enum imc_status f = imc_qdist_finish(d, s == IMC_OK);
    return s != IMC_OK ? s : f;
}

// The imatrix: from its image when given; else in one process read from its file, under MPI
// read by world rank 0 and sent to every rank (coordinator/share.h), so that it need not be
// visible on the other hosts.
static enum imc_status read_imatrix(const struct imc_quantize_opts *o, struct imc_imatrix *im)
{
    if (o->imatrix_image) {
        return imc_imatrix_read_memory(o->imatrix_image, o->imatrix_image_size, o->imatrix,
                                       o->dat_chunk_size, im);
    }
    if (!o->comm || imc_comm_size(o->comm) < 2) {
        return imc_imatrix_read(o->imatrix, o->dat_chunk_size, im);
    }
    char *bytes = NULL;
    size_t n = 0;
    imc_imatrix_init(im);
    IMC_TRY(imc_share_file(o->comm, o->imatrix, &bytes, &n));
    enum imc_status st = imc_imatrix_read_memory(bytes, n, o->imatrix, o->dat_chunk_size, im);
    free(bytes);
    return st;
}

enum imc_status imc_quantize_run(const struct imc_quantize_opts *o, struct imc_quantize_stats *st)
{
    struct imc_quantize_stats local;
    IMC_ASSERT(o && o->model && o->out);
    st = st ? st : &local;
    memset(st, 0, sizeof(*st));
    const int rank = o->comm ? imc_comm_rank(o->comm) : 0;
    const int size = o->comm ? imc_comm_size(o->comm) : 1;
    struct imc_gguf *g = NULL;
    struct imc_imatrix im;
    imc_imatrix_init(&im);
    IMC_TRY(imc_gguf_open(&g, o->model));
    enum imc_status s = IMC_OK;
    if (o->imatrix) {
        s = read_imatrix(o, &im);
    }
    int64_t n = imc_gguf_n_tensors(g);
    struct imc_qtensor *tens = NULL;
    if (s == IMC_OK && !(tens = calloc((size_t)n + 1, sizeof(*tens)))) {
        IMC_LOG_ERR("quantize: out of memory");
        s = IMC_ERR_NOMEM;
    }
    const struct imc_imatrix *imp = o->imatrix ? &im : NULL;
    if (s == IMC_OK) {
        s = plan_all(g, tens, n, o, o->imatrix ? &im : NULL, st);
    }
    if (s == IMC_OK) {
        s = prepare(tens, n, rank, size, o->quiet);
    }
    if (s == IMC_OK) {
        IMC_LOG_INF("quantize: %" PRId64 " of %" PRId64 " tensors to convert (%" PRId64
                    " with imatrix weights), %d rank(s) x %d thread(s)",
                    st->n_quantized, n, st->n_weighted, size, o->n_threads < 1 ? 1 : o->n_threads);
        s = compute(tens, n, o, rank, size);
    }
    if (s == IMC_OK && rank == 0) {
        s = write_out(g, tens, n, o, imp, st);
    }
    st->n_tensors = n;
    free_tensors(tens, n);
    imc_imatrix_free(&im);
    imc_gguf_free(g);
    return s;
}
