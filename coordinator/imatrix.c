/*
 * coordinator/imatrix: the `imc imatrix` run (coordinator/imatrix.h): setup, resume, the chunk
 * loop with running PPL and checkpoints, and the report. Per-chunk hook splitting:
 * imatrix_hook.c; output files: imatrix_write.c.
 */
#include "coordinator/imatrix.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/imatrix_priv.h"
#include "core/log.h"
#include "core/size.h"
#include "kernels/kernels.h"
#include "model/gguf.h"
#include "mpi/comm.h"

void imc_imatrix_opts_default(struct imc_imatrix_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->n_batch = IMC_TEXTRUN_DEFAULT_BATCH;
    o->n_threads = 1;
    o->format = IMC_IMATRIX_FMT_AUTO;
    o->dat_zero = IMC_DAT_ZERO_ONE;
    o->attn = IMC_ATTN_AUTO;
    o->matmul = IMC_MATMUL_Q8;
    o->device = IMC_DEVICE_AUTO;
    o->layout = (struct imc_layout){.pp = 1, .ep = 1, .dp = 1};
}

static enum imc_status read_in_files(struct imx_run *r)
{
    const struct imc_imatrix_opts *o = r->o;
    for (int i = 0; i < o->n_in_files; i++) {
        struct imc_imatrix one;
        IMC_TRY(imc_imatrix_read(o->in_files[i].path, (uint32_t)r->tr.n_ctx, &one));
        enum imc_status st = imc_imatrix_merge(&r->extra, &one, o->in_files[i].weight);
        imc_imatrix_free(&one);
        IMC_TRY(st);
        IMC_LOG_INF("imatrix: merging %s (weight %g) into the output", o->in_files[i].path,
                    o->in_files[i].weight);
    }
    return IMC_OK;
}

static enum imc_status cut_chunks(struct imx_run *r)
{
    const struct imc_imatrix_opts *o = r->o;
    const int64_t want = o->max_chunks > 0 ? o->from_chunk + o->max_chunks : 0;
    // under MPI only rank 0 reads and tokenizes the text; the tokens are broadcast
    const bool reader = !o->comm || imc_comm_rank(o->comm) == 0;
    IMC_TRY(imc_chunks_share(&r->tr.ch, o->comm,
                             reader ? imc_textrun_load_text(&r->tr, o->text, want, o->parse_special)
                                    : IMC_OK));
    if (o->from_chunk >= r->tr.ch.n_chunk) {
        IMC_LOG_ERR("%s: text has %lld chunks of %lld tokens; --from-chunk %lld leaves none",
                    o->text, (long long)(r->tr.ch.n_tokens / r->tr.n_ctx), (long long)r->tr.n_ctx,
                    (long long)o->from_chunk);
        return IMC_ERR_ARG;
    }
    r->first = o->from_chunk;
    r->n_chunk = r->tr.ch.n_chunk - o->from_chunk;
    return IMC_OK;
}

static enum imc_status alloc_buffers(struct imx_run *r)
{
    const int64_t n_ctx = r->tr.n_ctx, n_embd = r->tr.m->hp.n_embd;
    uint64_t n_hidden = 0; // the head's logits stay in the engine
    if (!imc_size_mul((uint64_t)(r->n_seq * n_ctx), (uint64_t)n_embd, &n_hidden) ||
        !imc_size_mul(n_hidden, sizeof(float), &n_hidden) || n_hidden > SIZE_MAX) {
        IMC_LOG_ERR("imatrix: activations buffer size overflows");
        return IMC_ERR_NOMEM;
    }
    r->in = malloc((size_t)(r->n_seq * n_ctx) * sizeof(int32_t));
    r->sc = malloc((size_t)imc_ppl_n_scored(r->tr.n_ctx) * sizeof(*r->sc));
    if (!r->in || !r->sc) {
        IMC_LOG_ERR("imatrix: out of memory for the token ids and scores of %lld sequences",
                    (long long)r->n_seq);
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

// The engine borrows r->hooks, which make_collectors fills once the imatrix is final (resumed).
static enum imc_status make_engine(struct imx_run *r)
{
    struct imc_engine_opts eo = imc_engine_opts_default();
    eo.n_threads = r->o->n_threads > 0 ? r->o->n_threads : 1;
    eo.attn = r->o->attn;
    eo.matmul = r->o->matmul;
    eo.device = r->o->device;
    eo.experts_on_cpu = r->o->experts_on_cpu;
    eo.host_exchange = r->o->host_exchange;
    eo.backend = r->o->backend;
    eo.hooks = &r->hooks;
    IMC_TRY(imc_engine_init(&r->e, r->tr.m, &eo));
    // the hidden rows stay in the engine's memory (a GPU's: they never come to the host)
    r->hidden = imc_engine_hidden_alloc(r->e, r->n_seq * r->tr.n_ctx * r->tr.m->hp.n_embd);
    return r->hidden ? IMC_OK : IMC_ERR_NOMEM;
}

static enum imc_status make_collectors(struct imx_run *r)
{
    struct imc_imatrix **ims = malloc((size_t)r->n_seq * sizeof(*ims));
    if (!ims) {
        IMC_LOG_ERR("imatrix: out of memory");
        return IMC_ERR_NOMEM;
    }
    for (int64_t s = 0; s < r->n_seq; s++) {
        ims[s] = &r->im;
    }
    enum imc_status st =
        imx_hook_init(&r->hook, r->tr.m, ims, r->n_seq, r->tr.n_ctx, r->o->process_output);
    free(ims);
    IMC_TRY(st);
    r->hooks = imx_hook_hooks(&r->hook);
    return imx_hook_declare(&r->hook);
}

static const char *attn_name(const struct imx_run *r)
{
    const struct imc_model *m = r->tr.m;
    return m->arch == IMC_ARCH_DEEPSEEK2 ? imc_attn_path_name(imc_attn_path_for(m, r->o->attn))
                                         : "standard";
}

static enum imc_status fingerprint(struct imx_run *r, const char *attn)
{
    struct imc_ckpt_fp *fp = &r->fp;
    IMC_TRY(imc_ckpt_fp_paths(fp, r->o->model, imc_gguf_file_size(r->tr.g), r->o->text));
    const int32_t *tok = imc_chunks_text(&r->tr.ch, r->first);
    fp->tokens_hash = imc_ckpt_hash(IMC_CKPT_HASH_INIT, tok,
                                    (uint64_t)(r->n_chunk * r->tr.n_ctx) * sizeof(int32_t));
    fp->n_ctx = r->tr.n_ctx;
    fp->from_chunk = r->first;
    fp->n_chunk = r->n_chunk;
    fp->process_output = r->o->process_output ? 1 : 0;
    // the matmul changes every value after the first layer: a q8 run's checkpoint says so
    char what[96];
    snprintf(what, sizeof(what), "%s%s", attn, r->o->matmul == IMC_MATMUL_Q8 ? ", q8 matmul" : "");
    fp->attn = strdup(what);
    r->ckpt_path = imc_ckpt_path(r->o->out);
    if (!fp->attn || !r->ckpt_path) {
        IMC_LOG_ERR("imatrix: out of memory");
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

// Adopts the checkpoint's state (--resume); a missing checkpoint starts afresh.
static enum imc_status resume(struct imx_run *r)
{
    if (access(r->ckpt_path, F_OK) != 0) {
        IMC_LOG_WRN("imatrix: --resume: no checkpoint %s (%s); starting from the first chunk",
                    r->ckpt_path, strerror(errno));
        return IMC_OK;
    }
    struct imc_ckpt c;
    IMC_TRY(imc_ckpt_read(r->ckpt_path, &c));
    enum imc_status st = imc_ckpt_fp_check(r->ckpt_path, &c.fp, &r->fp);
    if (st == IMC_OK) {
        imc_imatrix_free(&r->im);
        r->im = c.im;
        imc_imatrix_init(&c.im);
        r->acc = c.acc;
        r->done = r->start = c.chunks_done;
        if (c.chunks_done > 0) {
            memcpy(r->ppl, c.ppl, (size_t)c.chunks_done * sizeof(double));
        }
        IMC_LOG_INF("imatrix: resuming from %s after chunk %lld/%lld", r->ckpt_path,
                    (long long)c.chunks_done, (long long)r->n_chunk);
    }
    imc_ckpt_free(&c);
    return st;
}

enum imc_status imx_setup_common(struct imx_run *r, const char *attn)
{
    const struct imc_imatrix_opts *o = r->o;
    IMC_TRY(imc_textrun_open_model(&r->tr, o->model));
    IMC_TRY(imc_textrun_resolve_ctx(&r->tr, "imatrix", o->model, o->n_ctx));
    if (r->rank0) {
        IMC_TRY(imx_check_writable(o));
        IMC_TRY(read_in_files(r));
    }
    IMC_TRY(cut_chunks(r));
    r->n_seq = imc_textrun_seqs(o->n_batch, r->tr.n_ctx);
    r->n_seq = r->n_seq < r->n_chunk ? r->n_seq : r->n_chunk;
    r->out_begin = o->process_output ? 0 : imc_ppl_first(r->tr.n_ctx);
    if (!r->rank0) {
        return IMC_OK;
    }
    r->ppl = calloc((size_t)r->n_chunk, sizeof(double));
    if (!r->ppl) {
        IMC_LOG_ERR("imatrix: out of memory");
        return IMC_ERR_NOMEM;
    }
    IMC_TRY(imc_imatrix_add_dataset(&r->im, o->text));
    r->im.chunk_size = (uint32_t)r->tr.n_ctx;
    IMC_TRY(fingerprint(r, attn ? attn : attn_name(r)));
    return o->resume ? resume(r) : IMC_OK;
}

static enum imc_status setup(struct imx_run *r)
{
    IMC_TRY(imx_setup_common(r, NULL));
    IMC_TRY(alloc_buffers(r));
    IMC_TRY(make_engine(r));
    return make_collectors(r);
}

enum imc_status imx_checkpoint(struct imx_run *r)
{
    IMC_TRY(imx_write(r->o, r->tr.m, &r->im, &r->extra, NULL));
    IMC_TRY(imc_ckpt_write(r->ckpt_path, &r->fp, r->done, &r->acc, r->ppl, &r->im));
    imc_progress_clear(&r->prog);
    IMC_LOG_INF("imatrix: checkpoint after chunk %lld/%lld: %s, %s", (long long)r->done,
                (long long)r->n_chunk, r->o->out, r->ckpt_path);
    return IMC_OK;
}

void imx_chunk_scored(struct imx_run *r)
{
    r->ppl[r->done] = imc_ppl_value(&r->acc);
    imc_progress_clear(&r->prog);
    imc_textrun_print_ppl(r->out, r->done + 1, r->ppl[r->done]);
    r->done++;
}

bool imx_checkpoint_due(const struct imx_run *r)
{
    const int64_t every = r->o->save_every;
    return every > 0 && r->done % every == 0 && r->done < r->n_chunk;
}

// Folds chunk slot s of the last engine call and scores it from the logits its head kept (where
// they are: a GPU's memory); checkpoints when due.
static enum imc_status finish_chunk(struct imx_run *r, int64_t s)
{
    const int64_t n_ctx = r->tr.n_ctx;
    const int64_t skip = imc_ppl_first(n_ctx) - r->out_begin; // rows before the scored ones
    IMC_TRY(imx_hook_end_chunk(&r->hook, s));
    const int64_t n = imc_ppl_n_scored(n_ctx);
    const int32_t *targets =
        imc_chunks_text(&r->tr.ch, r->first + r->done) + imc_ppl_first(n_ctx) + 1;
    IMC_TRY(imc_engine_score_head(r->e, r->sc, skip, n, targets, NULL, 0));
    imc_ppl_add_rows(&r->acc, r->sc, n);
    imx_chunk_scored(r);
    return imx_checkpoint_due(r) ? imx_checkpoint(r) : IMC_OK;
}

static enum imc_status run_chunks(struct imx_run *r)
{
    const int64_t n_ctx = r->tr.n_ctx;
    for (int64_t i = 0; i < r->done; i++) {
        imc_textrun_print_ppl(r->out, i + 1, r->ppl[i]);
    }
    imc_progress_init(&r->prog, stderr, "imatrix", r->n_chunk - r->start, r->o->quiet);
    while (r->done < r->n_chunk) {
        const int64_t ns = r->n_chunk - r->done < r->n_seq ? r->n_chunk - r->done : r->n_seq;
        for (int64_t s = 0; s < ns; s++) {
            imc_chunks_input(&r->tr.ch, r->first + r->done + s, r->in + s * n_ctx);
        }
        IMC_TRY(imc_engine_embed(r->e, r->in, ns * n_ctx, r->hidden));
        IMC_TRY(imc_engine_layers(r->e, r->hidden, ns, n_ctx, 0));
        for (int64_t s = 0; s < ns; s++) {
            IMC_TRY(imc_engine_head(r->e, r->hidden, s * n_ctx + r->out_begin, n_ctx - r->out_begin,
                                    NULL));
            IMC_TRY(finish_chunk(r, s));
        }
        imc_progress_update(&r->prog, r->done - r->start, (r->done - r->start) * n_ctx);
    }
    return IMC_OK;
}

static void log_plan(const struct imx_run *r)
{
    const struct imc_imatrix_opts *o = r->o;
    const struct imc_model *m = r->tr.m;
    IMC_LOG_INF("imatrix: %lld tokens, chunks %lld..%lld of %lld tokens, %lld per engine "
                "call, %s attention, MLA layout %s, %s matmul, %d thread(s)%s",
                (long long)r->tr.ch.n_tokens, (long long)r->first + 1,
                (long long)(r->first + r->n_chunk), (long long)r->tr.n_ctx, (long long)r->n_seq,
                attn_name(r), imc_mla_layout_name(m->mla), imc_matmul_mode_name(o->matmul),
                o->n_threads > 0 ? o->n_threads : 1,
                o->process_output ? ", collecting output.weight" : "");
}

enum imc_status imx_report(struct imx_run *r, struct imc_imatrix_result *res)
{
    struct imc_coverage cov = {0};
    imx_check_fed(r->tr.m, &r->im, r->o->process_output);
    IMC_TRY(imx_write(r->o, r->tr.m, &r->im, &r->extra, &cov));
    if (r->o->save_every > 0 || r->o->resume) {
        unlink(r->ckpt_path); // the run is complete; nothing to resume
    }
    res->ppl = imc_ppl_value(&r->acc);
    res->ppl_err = imc_ppl_error(&r->acc);
    res->n_chunk = r->n_chunk;
    res->n_ctx = r->tr.n_ctx;
    fprintf(r->out, "\nFinal estimate: PPL = %.4f +/- %.5f\n", res->ppl, res->ppl_err);
    imc_coverage_print(r->out, &cov);
    fflush(r->out);
    IMC_LOG_INF("imatrix: wrote %s (%lld chunks of %lld tokens)", r->o->out,
                (long long)r->im.chunk_count, (long long)r->tr.n_ctx);
    imc_coverage_free(&cov);
    return IMC_OK;
}

static void run_free(struct imx_run *r)
{
    if (r->e) {
        imc_engine_log_profile(r->e, "imatrix: "); // -v
    }
    imc_engine_free(r->e);
    imx_hook_free(&r->hook);
    imc_imatrix_free(&r->im);
    imc_imatrix_free(&r->extra);
    imc_ckpt_fp_free(&r->fp);
    free(r->ckpt_path);
    free(r->in);
    free(r->sc);
    free(r->ppl);
    imc_textrun_free(&r->tr);
}

enum imc_status imc_imatrix_run(const struct imc_imatrix_opts *o, FILE *out,
                                struct imc_imatrix_result *res)
{
    IMC_ASSERT(o->model && o->text && o->out && o->from_chunk >= 0);
    struct imx_run r;
    memset(&r, 0, sizeof(r));
    r.o = o;
    r.out = out;
    r.rank0 = !o->comm || imc_comm_rank(o->comm) == 0;
    imc_imatrix_init(&r.im);
    imc_imatrix_init(&r.extra);
    imc_ppl_init(&r.acc);
    struct imc_imatrix_result local;
    res = res ? res : &local;
    memset(res, 0, sizeof(*res));
    enum imc_status st = IMC_OK;
    if (o->comm) {
        st = imx_run_dist(&r);
    } else {
        st = setup(&r);
        if (st == IMC_OK) {
            log_plan(&r);
            st = run_chunks(&r);
        }
    }
    imc_progress_clear(&r.prog);
    if (st == IMC_OK && r.rank0) {
        st = imx_report(&r, res);
    }
    run_free(&r);
    return st;
}
