/*
 * coordinator/checkpoint: write and read the resumable state of an imatrix run
 * (coordinator/checkpoint.h has the byte layout).
 */
#include "coordinator/checkpoint.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file.h"
#include "core/log.h"
#include "core/size.h"

#define MAGIC "IMCCKPT"
#define VERSION 1u
#define BOM 0x01020304u

char *imc_ckpt_path(const char *out)
{
    size_t n = strlen(out);
    char *p = malloc(n + sizeof(".ckpt"));
    if (p) {
        memcpy(p, out, n);
        memcpy(p + n, ".ckpt", sizeof(".ckpt"));
    }
    return p;
}

uint64_t imc_ckpt_hash(uint64_t h, const void *data, uint64_t n)
{
    const unsigned char *p = data;
    for (uint64_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

// ---- fingerprint ------------------------------------------------------------------------------

static char *resolved(const char *path)
{
    char buf[PATH_MAX];
    return strdup(realpath(path, buf) ? buf : path);
}

enum imc_status imc_ckpt_fp_paths(struct imc_ckpt_fp *fp, const char *model, uint64_t model_size,
                                  const char *text)
{
    struct stat st;
    if (stat(text, &st) != 0) {
        IMC_LOG_ERR("%s: cannot stat the text file", text);
        return IMC_ERR_IO;
    }
    fp->model = resolved(model);
    fp->text = resolved(text);
    fp->model_size = model_size;
    fp->text_size = (uint64_t)st.st_size;
    if (!fp->model || !fp->text) {
        IMC_LOG_ERR("checkpoint: out of memory");
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

void imc_ckpt_fp_free(struct imc_ckpt_fp *fp)
{
    free(fp->model);
    free(fp->text);
    free(fp->attn);
    memset(fp, 0, sizeof(*fp));
}

static enum imc_status differs(const char *path, const char *field, const char *a, const char *b)
{
    IMC_LOG_ERR("%s: checkpoint written for %s %s, but this run has %s; rerun with the original "
                "options or without --resume",
                path, field, a, b);
    return IMC_ERR_ARG;
}

static enum imc_status differs_u(const char *path, const char *field, uint64_t a, uint64_t b)
{
    char sa[32], sb[32];
    snprintf(sa, sizeof(sa), "%" PRIu64, a);
    snprintf(sb, sizeof(sb), "%" PRIu64, b);
    return differs(path, field, sa, sb);
}

enum imc_status imc_ckpt_fp_check(const char *path, const struct imc_ckpt_fp *a,
                                  const struct imc_ckpt_fp *b)
{
    if (strcmp(a->model, b->model) != 0) {
        return differs(path, "model", a->model, b->model);
    }
    if (a->model_size != b->model_size) {
        return differs_u(path, "model size", a->model_size, b->model_size);
    }
    if (strcmp(a->text, b->text) != 0) {
        return differs(path, "text", a->text, b->text);
    }
    if (a->text_size != b->text_size) {
        return differs_u(path, "text size", a->text_size, b->text_size);
    }
    if (a->n_ctx != b->n_ctx) {
        return differs_u(path, "--ctx", (uint64_t)a->n_ctx, (uint64_t)b->n_ctx);
    }
    if (a->from_chunk != b->from_chunk) {
        return differs_u(path, "--from-chunk", (uint64_t)a->from_chunk, (uint64_t)b->from_chunk);
    }
    if (a->n_chunk != b->n_chunk) {
        return differs_u(path, "a chunk count (--chunks)", (uint64_t)a->n_chunk,
                         (uint64_t)b->n_chunk);
    }
    if (a->tokens_hash != b->tokens_hash) {
        return differs(path, "tokens", "of another tokenization",
                       "different tokens (--parse-special or tokenizer changed)");
    }
    if (a->process_output != b->process_output) {
        return differs(path, "--process-output", a->process_output ? "on" : "off",
                       b->process_output ? "on" : "off");
    }
    if (strcmp(a->attn, b->attn) != 0) {
        return differs(path, "attention path and matmul", a->attn, b->attn);
    }
    return IMC_OK;
}

// ---- writer -----------------------------------------------------------------------------------

struct wr {
    struct imc_afile f;
    uint64_t h;         // hash of the bytes written so far
    enum imc_status st; // first failure
};

static void put(struct wr *w, const void *p, uint64_t n)
{
    if (w->st == IMC_OK && n > 0) {
        w->h = imc_ckpt_hash(w->h, p, n);
        w->st = imc_afile_write(&w->f, p, (size_t)n);
    }
}

static void put_u32(struct wr *w, uint32_t v)
{
    put(w, &v, sizeof(v));
}
static void put_u64(struct wr *w, uint64_t v)
{
    put(w, &v, sizeof(v));
}
static void put_i64(struct wr *w, int64_t v)
{
    put(w, &v, sizeof(v));
}
static void put_f64(struct wr *w, double v)
{
    put(w, &v, sizeof(v));
}

static void put_str(struct wr *w, const char *s)
{
    uint64_t n = s ? strlen(s) : 0;
    put_u64(w, n);
    put(w, s, n);
}

static void put_fp(struct wr *w, const struct imc_ckpt_fp *fp)
{
    put_str(w, fp->model);
    put_u64(w, fp->model_size);
    put_str(w, fp->text);
    put_u64(w, fp->text_size);
    put_u64(w, fp->tokens_hash);
    put_i64(w, fp->n_ctx);
    put_i64(w, fp->from_chunk);
    put_i64(w, fp->n_chunk);
    put_u32(w, fp->process_output);
    put_str(w, fp->attn);
}

static void put_imatrix(struct wr *w, const struct imc_imatrix *im)
{
    put_u32(w, im->chunk_count);
    put_u32(w, im->chunk_size);
    put_u64(w, (uint64_t)im->n_datasets);
    for (int64_t i = 0; i < im->n_datasets; i++) {
        put_str(w, im->datasets[i]);
    }
    put_u64(w, (uint64_t)im->n_entries);
    for (int64_t i = 0; i < im->n_entries; i++) {
        const struct imc_imatrix_entry *e = &im->entries[i];
        put_str(w, e->name);
        put_i64(w, e->n_per_row);
        put_i64(w, e->n_mat);
        put(w, e->sums, (uint64_t)(e->n_per_row * e->n_mat) * sizeof(double));
        put(w, e->counts, (uint64_t)e->n_mat * sizeof(double));
    }
}

enum imc_status imc_ckpt_write(const char *path, const struct imc_ckpt_fp *fp, int64_t chunks_done,
                               const struct imc_ppl_acc *acc, const double *ppl,
                               const struct imc_imatrix *im)
{
    struct wr w = {.h = IMC_CKPT_HASH_INIT};
    IMC_TRY(imc_afile_open(&w.f, path));
    put(&w, MAGIC, sizeof(MAGIC));
    put_u32(&w, VERSION);
    put_u32(&w, BOM);
    put_fp(&w, fp);
    put_i64(&w, chunks_done);
    put_f64(&w, acc->sum_nll);
    put_f64(&w, acc->sum_nll2);
    put_i64(&w, acc->count);
    put(&w, ppl, (uint64_t)chunks_done * sizeof(double));
    put_imatrix(&w, im);
    uint64_t h = w.h;
    put_u64(&w, h);
    if (w.st != IMC_OK) {
        imc_afile_abort(&w.f);
        return w.st;
    }
    return imc_afile_commit(&w.f);
}

// ---- reader -----------------------------------------------------------------------------------

struct rd {
    const uint8_t *p;   // next byte
    uint64_t left;      // bytes left before the trailer
    const char *path;   // for messages
    enum imc_status st; // first failure
};

static bool get(struct rd *r, void *dst, uint64_t n, const char *what)
{
    if (r->st != IMC_OK) {
        return false;
    }
    if (n > r->left) {
        IMC_LOG_ERR("%s: checkpoint truncated in %s (%" PRIu64 " bytes needed, %" PRIu64 " left)",
                    r->path, what, n, r->left);
        r->st = IMC_ERR_FORMAT;
        return false;
    }
    if (n > 0) {
        memcpy(dst, r->p, (size_t)n);
    }
    r->p += n;
    r->left -= n;
    return true;
}

static uint32_t get_u32(struct rd *r, const char *what)
{
    uint32_t v = 0;
    get(r, &v, sizeof(v), what);
    return v;
}

static uint64_t get_u64(struct rd *r, const char *what)
{
    uint64_t v = 0;
    get(r, &v, sizeof(v), what);
    return v;
}

static int64_t get_i64(struct rd *r, const char *what)
{
    int64_t v = 0;
    get(r, &v, sizeof(v), what);
    return v;
}

static double get_f64(struct rd *r, const char *what)
{
    double v = 0;
    get(r, &v, sizeof(v), what);
    return v;
}

// A new NUL-terminated string, or NULL (failure recorded).
static char *get_str(struct rd *r, const char *what)
{
    uint64_t n = get_u64(r, what);
    if (r->st != IMC_OK || n > r->left) {
        get(r, NULL, n, what); // records the truncation
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->st = IMC_ERR_NOMEM;
        return NULL;
    }
    get(r, s, n, what);
    s[n] = '\0';
    return s;
}

static void get_fp(struct rd *r, struct imc_ckpt_fp *fp)
{
    fp->model = get_str(r, "model path");
    fp->model_size = get_u64(r, "model size");
    fp->text = get_str(r, "text path");
    fp->text_size = get_u64(r, "text size");
    fp->tokens_hash = get_u64(r, "tokens hash");
    fp->n_ctx = get_i64(r, "ctx");
    fp->from_chunk = get_i64(r, "from-chunk");
    fp->n_chunk = get_i64(r, "chunk count");
    fp->process_output = get_u32(r, "process-output");
    fp->attn = get_str(r, "attention path");
}

// Reads n doubles into a new array; each must be finite and >= 0 when nonneg.
static double *get_f64s(struct rd *r, int64_t n, bool nonneg, const char *what)
{
    uint64_t bytes = 0;
    if (n < 0 || !imc_size_mul((uint64_t)n, sizeof(double), &bytes)) {
        bytes = UINT64_MAX;
    }
    if (r->st != IMC_OK || bytes > r->left) {
        get(r, NULL, bytes, what); // records the truncation
        return NULL;
    }
    double *v = malloc(bytes ? (size_t)bytes : 1);
    if (!v) {
        r->st = IMC_ERR_NOMEM;
        return NULL;
    }
    get(r, v, bytes, what);
    for (int64_t i = 0; i < n && r->st == IMC_OK; i++) {
        if (!isfinite(v[i]) || (nonneg && v[i] < 0)) {
            IMC_LOG_ERR("%s: checkpoint %s holds %g at %" PRId64, r->path, what, v[i], i);
            r->st = IMC_ERR_FORMAT;
        }
    }
    return v;
}

static enum imc_status get_entry(struct rd *r, struct imc_imatrix *im)
{
    char *name = get_str(r, "entry name");
    int64_t n_per_row = get_i64(r, "entry shape"), n_mat = get_i64(r, "entry shape");
    struct imc_imatrix_entry *e = NULL;
    if (r->st == IMC_OK && (n_per_row < 1 || n_mat < 1 || n_per_row > INT32_MAX / n_mat)) {
        IMC_LOG_ERR("%s: checkpoint entry '%s' has shape %" PRId64 "x%" PRId64, r->path, name,
                    n_per_row, n_mat);
        r->st = IMC_ERR_FORMAT;
    }
    if (r->st == IMC_OK && imc_imatrix_find(im, name)) {
        IMC_LOG_ERR("%s: checkpoint entry '%s' appears twice", r->path, name);
        r->st = IMC_ERR_FORMAT;
    }
    double *sums = get_f64s(r, n_per_row * n_mat, true, "sums");
    double *counts = get_f64s(r, n_mat, true, "counts");
    if (r->st == IMC_OK) {
        r->st = imc_imatrix_get_entry(im, name, n_per_row, n_mat, &e);
    }
    if (r->st == IMC_OK) {
        memcpy(e->sums, sums, (size_t)(n_per_row * n_mat) * sizeof(double));
        memcpy(e->counts, counts, (size_t)n_mat * sizeof(double));
    }
    free(sums);
    free(counts);
    free(name);
    return r->st;
}

static enum imc_status get_imatrix(struct rd *r, struct imc_imatrix *im)
{
    im->chunk_count = get_u32(r, "chunk count");
    im->chunk_size = get_u32(r, "chunk size");
    uint64_t n = get_u64(r, "dataset count");
    for (uint64_t i = 0; r->st == IMC_OK && i < n; i++) {
        char *s = get_str(r, "dataset name");
        if (s) {
            r->st = imc_imatrix_add_dataset(im, s);
        }
        free(s);
    }
    n = get_u64(r, "entry count");
    for (uint64_t i = 0; r->st == IMC_OK && i < n; i++) {
        get_entry(r, im);
    }
    return r->st;
}

static enum imc_status check_header(struct rd *r, const struct imc_map *m)
{
    char magic[sizeof(MAGIC)];
    uint64_t stored = 0;
    if (m->size < sizeof(MAGIC) + 8 + 8 || memcmp(m->data, MAGIC, sizeof(MAGIC)) != 0) {
        IMC_LOG_ERR("%s: not an imc checkpoint (bad magic or too short)", r->path);
        return IMC_ERR_FORMAT;
    }
    memcpy(&stored, m->data + m->size - 8, 8);
    if (imc_ckpt_hash(IMC_CKPT_HASH_INIT, m->data, m->size - 8) != stored) {
        IMC_LOG_ERR("%s: checkpoint checksum mismatch (file damaged or truncated)", r->path);
        return IMC_ERR_FORMAT;
    }
    get(r, magic, sizeof(magic), "header");
    uint32_t version = get_u32(r, "header"), bom = get_u32(r, "header");
    if (version != VERSION || bom != BOM) {
        IMC_LOG_ERR("%s: checkpoint version %u / byte order 0x%08x, expected %u / 0x%08x", r->path,
                    version, bom, VERSION, BOM);
        return IMC_ERR_FORMAT;
    }
    return r->st;
}

static enum imc_status parse(struct rd *r, struct imc_ckpt *out)
{
    get_fp(r, &out->fp);
    out->chunks_done = get_i64(r, "chunks done");
    out->acc.sum_nll = get_f64(r, "NLL sums");
    out->acc.sum_nll2 = get_f64(r, "NLL sums");
    out->acc.count = get_i64(r, "NLL count");
    if (r->st == IMC_OK && (out->chunks_done < 0 || out->chunks_done > out->fp.n_chunk ||
                            out->fp.n_chunk < 1 || out->acc.count < 0)) {
        IMC_LOG_ERR("%s: checkpoint says %" PRId64 " of %" PRId64 " chunks done", r->path,
                    out->chunks_done, out->fp.n_chunk);
        r->st = IMC_ERR_FORMAT;
    }
    out->ppl = get_f64s(r, out->chunks_done, false, "running PPL values");
    if (r->st == IMC_OK) {
        get_imatrix(r, &out->im);
    }
    if (r->st == IMC_OK && r->left != 0) {
        IMC_LOG_ERR("%s: %" PRIu64 " unexpected bytes at the end of the checkpoint", r->path,
                    r->left);
        r->st = IMC_ERR_FORMAT;
    }
    if (r->st == IMC_ERR_NOMEM) {
        IMC_LOG_ERR("%s: out of memory reading the checkpoint", r->path);
    }
    return r->st;
}

enum imc_status imc_ckpt_read(const char *path, struct imc_ckpt *out)
{
    memset(out, 0, sizeof(*out));
    imc_imatrix_init(&out->im);
    struct imc_map m;
    IMC_TRY(imc_map_open(&m, path));
    struct rd r = {.p = m.data, .left = m.size >= 8 ? m.size - 8 : 0, .path = path};
    enum imc_status st = check_header(&r, &m);
    if (st == IMC_OK) {
        st = parse(&r, out);
    }
    imc_map_close(&m);
    if (st != IMC_OK) {
        imc_ckpt_free(out);
    }
    return st;
}

void imc_ckpt_free(struct imc_ckpt *c)
{
    imc_ckpt_fp_free(&c->fp);
    free(c->ppl);
    imc_imatrix_free(&c->im);
    memset(c, 0, sizeof(*c));
    imc_imatrix_init(&c->im);
}
