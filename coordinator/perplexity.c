/*
 * coordinator/perplexity: the `imc perplexity` run (coordinator/perplexity.h).
 */
#include "coordinator/perplexity.h"

#include <stdlib.h>
#include <string.h>

#include "coordinator/chunks.h"
#include "coordinator/dist.h"
#include "coordinator/kld.h"
#include "coordinator/ppl.h"
#include "coordinator/progress.h"
#include "coordinator/textrun.h"
#include "core/log.h"
#include "core/size.h"
#include "kernels/kernels.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "model/vocab.h"
#include "mpi/comm.h"
#include "mpi/reduce.h"
#include "mpi/xfer.h"

void imc_perplexity_opts_default(struct imc_perplexity_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->n_batch = IMC_TEXTRUN_DEFAULT_BATCH;
    o->n_threads = 1;
    o->attn = IMC_ATTN_AUTO;
    o->matmul = IMC_MATMUL_Q8;
    o->device = IMC_DEVICE_AUTO;
    o->layout = (struct imc_layout){.pp = 1, .ep = 1, .dp = 1};
}

struct run {
    const struct imc_perplexity_opts *o;
    FILE *out;                // results
    struct imc_gguf *g;       // the model file
    struct imc_model *m;      // its architecture
    struct imc_vocab *v;      // its tokenizer
    struct imc_engine *e;     // forward passes
    struct imc_chunks ch;     // what is evaluated
    struct imc_kld_base base; // kld_base mode: the base file
    struct imc_kld_writer w;  // kld_save mode: the output file
    bool writing;             // w is open
    struct imc_ppl_acc acc;   // plain / kld_save scores
    struct imc_kld_acc kacc;  // kld_base scores
    int64_t n_ctx, n_vocab;   // chunk length, logits per row
    int64_t n_seq;            // chunks per engine call
    int32_t *in;              // [n_seq][n_ctx] engine input
    float *hidden;            // [n_seq][n_ctx][n_embd] the engine's activations (its memory)
    float *logits;            // [n_ctx - n_ctx/2][n_vocab] --kld-save's host rows, or NULL
    struct imc_nll_row *sc;   // [n_scored] one chunk's scores (imc_engine_score)
    struct imc_progress prog; // stderr progress
    bool dist;                // an MPI job of several ranks (coordinator/dist.h)
    bool rank0;               // world rank 0 (or no MPI job): prints
};

static enum imc_status check_ctx(const struct run *r)
{
    const int64_t train = r->m->hp.n_ctx_train;
    if (r->n_ctx < 4) {
        IMC_LOG_ERR("%s: --ctx %lld is too small (need at least 4)", r->o->model,
                    (long long)r->n_ctx);
        return IMC_ERR_ARG;
    }
    if (train > 0 && r->n_ctx > train) {
        IMC_LOG_ERR("%s: --ctx %lld exceeds the model's training context (n_ctx_train = %lld)",
                    r->o->model, (long long)r->n_ctx, (long long)train);
        return IMC_ERR_ARG;
    }
    return IMC_OK;
}

static int32_t chunk_bos(const struct run *r)
{
    return imc_vocab_add_bos(r->v) ? imc_vocab_bos(r->v) : -1;
}

// The text, when given with a base file, must tokenize to the file's tokens.
static enum imc_status check_base_text(struct run *r)
{
    const struct imc_perplexity_opts *o = r->o;
    struct imc_chunks txt;
    IMC_TRY(imc_chunks_from_file(&txt, r->v, o->text, r->n_ctx, r->ch.n_chunk));
    enum imc_status st = IMC_OK;
    if (txt.n_chunk < r->ch.n_chunk) {
        IMC_LOG_ERR("%s: has %lld chunks of %lld tokens, but %s has only %lld", o->kld_base,
                    (long long)r->ch.n_chunk, (long long)r->n_ctx, o->text,
                    (long long)txt.n_chunk);
        st = IMC_ERR_ARG;
    }
    for (int64_t i = 0; st == IMC_OK && i < r->ch.n_chunk * r->n_ctx; i++) {
        if (txt.tokens[i] != r->ch.tokens[i]) {
            IMC_LOG_ERR("%s: tokens differ from the text %s at chunk %lld, position %lld (%d vs "
                        "%d): the base was computed on another text or tokenizer",
                        o->kld_base, o->text, (long long)(i / r->n_ctx + 1),
                        (long long)(i % r->n_ctx), r->ch.tokens[i], txt.tokens[i]);
            st = IMC_ERR_ARG;
        }
    }
    imc_chunks_free(&txt);
    return st;
}

static enum imc_status open_base(struct run *r)
{
    const struct imc_perplexity_opts *o = r->o;
    IMC_TRY(imc_kld_base_open(&r->base, o->kld_base));
    const struct imc_kld_base *b = &r->base;
    if (o->n_ctx > 0 && o->n_ctx != b->n_ctx) {
        IMC_LOG_ERR("%s: computed with ctx %lld, but --ctx %lld was given", o->kld_base,
                    (long long)b->n_ctx, (long long)o->n_ctx);
        return IMC_ERR_ARG;
    }
    if (b->n_vocab != r->n_vocab) {
        IMC_LOG_ERR("%s: has %lld-token distributions, but the model %s has %lld tokens",
                    o->kld_base, (long long)b->n_vocab, o->model, (long long)r->n_vocab);
        return IMC_ERR_ARG;
    }
    r->n_ctx = b->n_ctx;
    IMC_TRY(check_ctx(r));
    const int32_t *tokens = (const int32_t *)(const void *)b->tokens; // 4-aligned in the map
    IMC_TRY(imc_chunks_from_tokens(&r->ch, tokens, b->n_chunk * b->n_ctx, b->n_ctx,
                                   o->max_chunks, chunk_bos(r), o->kld_base));
    for (int64_t i = 0; i < r->ch.n_tokens; i++) {
        if (r->ch.tokens[i] < 0 || r->ch.tokens[i] >= r->n_vocab) {
            IMC_LOG_ERR("%s: token %lld is %d, outside the vocabulary of %lld", o->kld_base,
                        (long long)i, r->ch.tokens[i], (long long)r->n_vocab);
            return IMC_ERR_FORMAT;
        }
    }
    if (o->text) {
        IMC_TRY(check_base_text(r));
    }
    return imc_kld_acc_init(&r->kacc, r->ch.n_chunk * imc_ppl_n_scored(r->n_ctx));
}

static enum imc_status alloc_buffers(struct run *r)
{
    r->n_seq = imc_textrun_seqs(r->o->n_batch, r->n_ctx);
    if (r->n_seq > r->ch.n_chunk) {
        r->n_seq = r->ch.n_chunk;
    }
    // one chunk's logits rows on the host, for --kld-save only (the engine keeps the head's)
    const int64_t rows = r->o->kld_save ? r->n_ctx - imc_ppl_first(r->n_ctx) : 0;
    uint64_t n_logits = 0, n_hidden = 0;
    if (!imc_size_mul((uint64_t)rows, (uint64_t)r->n_vocab, &n_logits) ||
        !imc_size_mul(n_logits, sizeof(float), &n_logits) || n_logits > SIZE_MAX ||
        !imc_size_mul((uint64_t)(r->n_seq * r->n_ctx), (uint64_t)r->m->hp.n_embd, &n_hidden) ||
        !imc_size_mul(n_hidden, sizeof(float), &n_hidden) || n_hidden > SIZE_MAX) {
        IMC_LOG_ERR("%s: logits or activations buffer size overflows", r->o->model);
        return IMC_ERR_NOMEM;
    }
    r->in = malloc((size_t)(r->n_seq * r->n_ctx) * sizeof(int32_t));
    r->logits = rows ? malloc((size_t)n_logits) : NULL;
    r->sc = malloc((size_t)imc_ppl_n_scored(r->n_ctx) * sizeof(*r->sc));
    if (!r->in || (rows && !r->logits) || !r->sc) {
        IMC_LOG_ERR("perplexity: out of memory for the token ids, scores and %llu bytes of logits",
                    (unsigned long long)n_logits);
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

static enum imc_status setup(struct run *r)
{
    const struct imc_perplexity_opts *o = r->o;
    IMC_TRY(imc_gguf_open(&r->g, o->model));
    IMC_TRY(imc_model_load(&r->m, r->g));
    IMC_TRY(imc_vocab_load(&r->v, r->g));
    r->n_vocab = r->m->hp.n_vocab;
    if (o->kld_base) {
        // under MPI only rank 0 reads the base file (and the text it is checked against); the
        // tokens are broadcast, the rows sent to their head shards round by round (run_dist)
        enum imc_status st = !r->dist || r->rank0 ? open_base(r) : IMC_OK;
        IMC_TRY(imc_chunks_share(&r->ch, r->dist ? o->comm : NULL, st));
        r->n_ctx = r->ch.n_ctx;
    } else {
        r->n_ctx = o->n_ctx > 0 ? o->n_ctx : imc_textrun_default_ctx(r->m);
        if (o->n_ctx <= 0 && r->n_ctx < IMC_TEXTRUN_DEFAULT_CTX) {
            IMC_LOG_WRN("%s: default ctx %d exceeds the model's training context; using %lld",
                        o->model, IMC_TEXTRUN_DEFAULT_CTX, (long long)r->n_ctx);
        }
        IMC_TRY(check_ctx(r));
        // under MPI only rank 0 reads and tokenizes the text; the tokens are broadcast
        enum imc_status st = !r->dist || r->rank0 ? imc_chunks_from_file(&r->ch, r->v, o->text,
                                                                         r->n_ctx, o->max_chunks)
                                                  : IMC_OK;
        IMC_TRY(imc_chunks_share(&r->ch, r->dist ? o->comm : NULL, st));
    }
    if (r->dist) {
        return IMC_OK; // coordinator/dist.c builds its stage engine and buffers
    }
    IMC_TRY(alloc_buffers(r));
    struct imc_engine_opts eo = imc_engine_opts_default();
    eo.n_threads = o->n_threads > 0 ? o->n_threads : 1;
    eo.attn = o->attn;
    eo.matmul = o->matmul;
    eo.device = o->device;
    eo.experts_on_cpu = o->experts_on_cpu;
    eo.host_exchange = o->host_exchange;
    eo.backend = o->backend;
    IMC_TRY(imc_engine_init(&r->e, r->m, &eo));
    // the hidden rows stay in the engine's memory (a GPU's: they never come to the host)
    r->hidden = imc_engine_hidden_alloc(r->e, r->n_seq * r->n_ctx * r->m->hp.n_embd);
    if (!r->hidden) {
        return IMC_ERR_NOMEM;
    }
    if (o->kld_save) {
        IMC_TRY(imc_kld_writer_open(&r->w, o->kld_save, r->n_ctx, r->n_vocab, r->ch.n_chunk,
                                    r->ch.tokens));
        r->writing = true;
    }
    return IMC_OK;
}

// Scores chunk c from the logits its head kept (positions n_ctx/2 … n_ctx−1, scored where they
// are) and prints its line.
static enum imc_status score_chunk(struct run *r, int64_t c)
{
    const int32_t *targets = imc_chunks_text(&r->ch, c) + imc_ppl_first(r->n_ctx) + 1;
    const int64_t n = imc_ppl_n_scored(r->n_ctx);
    const struct imc_exec *ex = imc_engine_exec(r->e); // idle between forward passes
    if (r->o->kld_base) {
        IMC_TRY(imc_engine_score_head(r->e, r->sc, 0, n, targets, imc_kld_base_rows(&r->base, c),
                                      imc_kld_row_len(r->n_vocab)));
        imc_kld_add_scored(&r->kacc, r->sc, n);
        imc_progress_clear(&r->prog);
        if (c == 0) {
            imc_kld_print_header(r->out);
        }
        imc_kld_print_chunk(r->out, &r->kacc, c + 1);
        return IMC_OK;
    }
    IMC_TRY(imc_engine_score_head(r->e, r->sc, 0, n, targets, NULL, 0));
    imc_ppl_add_rows(&r->acc, r->sc, n);
    if (r->writing) { // the encoding runs on the host: the rows come over (from a GPU)
        const float *logits = imc_engine_head_rows(r->e, 0, n, r->logits);
        if (!logits) {
            return IMC_ERR_INTERNAL;
        }
        IMC_TRY(imc_kld_writer_add_chunk(&r->w, ex, logits));
    }
    imc_progress_clear(&r->prog);
    fprintf(r->out, "[%lld]%.4f,", (long long)(c + 1), imc_ppl_value(&r->acc));
    fflush(r->out);
    return IMC_OK;
}

static enum imc_status run_chunks(struct run *r)
{
    const int64_t first = imc_ppl_first(r->n_ctx), n_chunk = r->ch.n_chunk;
    imc_progress_init(&r->prog, stderr, "perplexity", n_chunk, r->o->quiet);
    for (int64_t c0 = 0; c0 < n_chunk; c0 += r->n_seq) {
        const int64_t ns = n_chunk - c0 < r->n_seq ? n_chunk - c0 : r->n_seq;
        for (int64_t s = 0; s < ns; s++) {
            imc_chunks_input(&r->ch, c0 + s, r->in + s * r->n_ctx);
        }
        IMC_TRY(imc_engine_embed(r->e, r->in, ns * r->n_ctx, r->hidden));
        IMC_TRY(imc_engine_layers(r->e, r->hidden, ns, r->n_ctx, 0));
        for (int64_t s = 0; s < ns; s++) { // the logits stay in the engine (a GPU's memory)
            IMC_TRY(imc_engine_head(r->e, r->hidden, s * r->n_ctx + first, r->n_ctx - first, NULL));
            IMC_TRY(score_chunk(r, c0 + s));
        }
        imc_progress_update(&r->prog, c0 + ns, (c0 + ns) * r->n_ctx);
        imc_pulse_emit(&r->o->pulse);
    }
    return IMC_OK;
}

// KLD under MPI (dist.h on_logits, after_round). --kld-base: only rank 0 opens the base file;
// before each round (at the setup for round 0, after round k for round k + 1) it sends each
// chunk's base rows, in chunk order and straight from its mapping, to the head-stage shard that
// will score the chunk, which has posted a receive for it; no rank holds more than a round's
// rows. The head shard computes its rows' figures into vals, zeros elsewhere; summed over the
// world they are every row's figures, which rank 0 folds in chunk order as one process does.
// --kld-save: the head shard encodes its chunks' rows; after each round rank 0 receives them in
// chunk order and writes them.
enum { KLD_FIELDS = 5 }; // nll, nll_base, kld, p_diff, same_top per row

struct dist_kld {
    struct run *r;
    const struct imc_dist_job *j;
    int64_t n_scored, row_len;
    double *vals;            // kld_base: [n_chunk][n_scored][KLD_FIELDS]
    struct imc_kld_row *tmp; // kld_base: [n_scored]
    struct imc_nll_row *sc;  // kld_base: [n_scored] one chunk's scores (imc_engine_score)
    uint16_t *enc;           // kld_save: [slots][n_scored][row_len], this round's chunks
    int64_t *enc_chunk;      // [slots]: which chunk each slot holds
    int64_t n_enc, slots;
    uint16_t *rbuf;          // rank 0: one received chunk's rows
    // kld_base: the base rows of the round's chunks. On a head shard, per slot: its chunk, the
    // receive in flight (NULL once waited, and for rank 0's own chunks, read from the mapping)
    // and its buffer (enc); on rank 0 the sends of the round in flight.
    int64_t *base_chunk;     // [slots]
    struct imc_xfer **recv;  // [slots]
    struct imc_xfer **send;  // rank 0: [send_cap]
    int64_t n_base, n_send, send_cap;
};

// The batches of round k: [*b0, *b1).
static void round_batches(const struct imc_dist_job *j, int64_t k, int64_t *b0, int64_t *b1)
{
    const int64_t n_batch = imc_dist_n_batch(j);
    *b0 = k * j->layout.dp < n_batch ? k * j->layout.dp : n_batch;
    *b1 = (k + 1) * j->layout.dp < n_batch ? (k + 1) * j->layout.dp : n_batch;
}

// --kld-base: rank 0 starts sending the base rows of round k's chunks to their head shards,
// which start receiving them.
static enum imc_status base_post_round(struct dist_kld *k, int64_t round)
{
    const struct imc_dist_job *j = k->j;
    const struct imc_comm *comm = j->comm;
    const int me = imc_comm_rank(comm);
    const size_t bytes = (size_t)(k->n_scored * k->row_len) * sizeof(uint16_t);
    int64_t b0, b1;
    round_batches(j, round, &b0, &b1);
    for (int64_t b = b0; b < b1; b++) {
        int64_t c0, c1;
        imc_dist_batch_chunks(j, b, &c0, &c1);
        for (int64_t c = c0; c < c1; c++) {
            const int head = imc_dist_head_rank(j, c);
            const int tag = imc_xfer_tag(comm, c);
            if (me == 0 && head != 0) {
                IMC_ASSERT(k->n_send < k->send_cap);
                IMC_TRY(imc_xfer_isend_bytes(comm, IMC_GROUP_WORLD, head, tag,
                                             imc_kld_base_rows(&k->r->base, c), bytes,
                                             &k->send[k->n_send++]));
            }
            if (me != head) {
                continue;
            }
            IMC_ASSERT(k->n_base < k->slots);
            const int64_t s = k->n_base++;
            k->base_chunk[s] = c;
            k->recv[s] = NULL;
            if (me != 0) {
                IMC_TRY(imc_xfer_irecv_bytes(comm, IMC_GROUP_WORLD, 0, tag,
                                             k->enc + s * k->n_scored * k->row_len, bytes,
                                             &k->recv[s]));
            }
        }
    }
    return IMC_OK;
}

// --kld-base: the base rows of chunk c on its head shard, once they have arrived.
static enum imc_status base_rows_of(struct dist_kld *k, int64_t c, const uint16_t **rows)
{
    if (imc_comm_rank(k->j->comm) == 0) {
        *rows = imc_kld_base_rows(&k->r->base, c);
        return IMC_OK;
    }
    for (int64_t s = 0; s < k->n_base; s++) {
        if (k->base_chunk[s] == c) {
            enum imc_status st = imc_xfer_wait(k->recv[s]);
            k->recv[s] = NULL;
            *rows = k->enc + s * k->n_scored * k->row_len;
            return st;
        }
    }
    IMC_LOG_ERR("perplexity: the base rows of chunk %lld were not announced to this rank",
                (long long)c);
    return IMC_ERR_INTERNAL;
}

// --kld-base, after round k: the round's sends and receives are complete; round k + 1 starts.
static enum imc_status base_after_round(void *user, int64_t round)
{
    struct dist_kld *k = user;
    enum imc_status st = IMC_OK;
    for (int64_t i = 0; i < k->n_send; i++) {
        enum imc_status w = imc_xfer_wait(k->send[i]);
        k->send[i] = NULL;
        st = st == IMC_OK ? w : st;
    }
    for (int64_t s = 0; s < k->n_base; s++) { // every slot was consumed by on_logits
        enum imc_status w = imc_xfer_wait(k->recv[s]);
        k->recv[s] = NULL;
        st = st == IMC_OK ? w : st;
    }
    k->n_send = k->n_base = 0;
    return st == IMC_OK ? base_post_round(k, round + 1) : st;
}

static enum imc_status kld_on_logits(void *user, int64_t c, struct imc_engine *e, int64_t r0,
                                     float *buf)
{
    struct dist_kld *k = user;
    struct run *r = k->r;
    if (r->o->kld_base) {
        const uint16_t *base = NULL;
        IMC_TRY(base_rows_of(k, c, &base));
        const int32_t *targets = imc_chunks_text(&r->ch, c) + imc_ppl_first(r->n_ctx) + 1;
        IMC_TRY(imc_engine_score_head(e, k->sc, r0, k->n_scored, targets, base, k->row_len));
        double *v = k->vals + c * k->n_scored * KLD_FIELDS;
        for (int64_t i = 0; i < k->n_scored; i++, v += KLD_FIELDS) {
            const struct imc_kld_row row = imc_kld_row_of(&k->sc[i]), *t = &row;
            v[0] = t->nll;
            v[1] = t->nll_base;
            v[2] = t->kld;
            v[3] = t->p_diff;
            v[4] = t->same_top ? 1.0 : 0.0;
        }
        return IMC_OK;
    }
    if (k->n_enc >= k->slots) {
        IMC_LOG_ERR("perplexity: more chunks in one round than this rank can hold (%lld)",
                    (long long)k->slots);
        return IMC_ERR_INTERNAL;
    }
    const float *logits = imc_engine_head_rows(e, r0, k->n_scored, buf);
    if (!logits) {
        return IMC_ERR_INTERNAL;
    }
    imc_kld_encode_chunk(imc_engine_exec(e), logits, r->n_ctx, r->n_vocab,
                         k->enc + k->n_enc * k->n_scored * k->row_len);
    k->enc_chunk[k->n_enc++] = c;
    return IMC_OK;
}

// This rank's encoded rows of chunk c (scored this round), or NULL.
static const uint16_t *kld_slot(const struct dist_kld *k, int64_t c)
{
    for (int64_t i = 0; i < k->n_enc; i++) {
        if (k->enc_chunk[i] == c) {
            return k->enc + i * k->n_scored * k->row_len;
        }
    }
    return NULL;
}

static enum imc_status kld_after_round(void *user, int64_t round)
{
    struct dist_kld *k = user;
    const struct imc_dist_job *j = k->j;
    const struct imc_comm *comm = j->comm;
    const int me = imc_comm_rank(comm), dp = j->layout.dp;
    const int64_t n_batch = imc_dist_n_batch(j);
    const size_t bytes = (size_t)(k->n_scored * k->row_len) * sizeof(uint16_t);
    enum imc_status st = IMC_OK;
    for (int64_t b = round * dp; st == IMC_OK && b < (round + 1) * dp && b < n_batch; b++) {
        int64_t c0, c1;
        imc_dist_batch_chunks(j, b, &c0, &c1);
        for (int64_t c = c0; st == IMC_OK && c < c1; c++) {
            const int src = imc_dist_head_rank(j, c);
            const int tag = imc_xfer_tag(comm, c);
            if (me == 0) {
                const uint16_t *rows = src == 0 ? kld_slot(k, c) : k->rbuf;
                if (src != 0) {
                    st = imc_xfer_recv_bytes(comm, IMC_GROUP_WORLD, src, tag, k->rbuf, bytes);
                }
                if (st == IMC_OK) {
                    st = rows ? imc_kld_writer_add_encoded(&k->r->w, rows) : IMC_ERR_INTERNAL;
                }
            } else if (me == src) {
                const uint16_t *rows = kld_slot(k, c);
                st = rows ? imc_xfer_send_bytes(comm, IMC_GROUP_WORLD, 0, tag, rows, bytes)
                          : IMC_ERR_INTERNAL;
            }
        }
    }
    k->n_enc = 0;
    return st;
}

static void kld_free(struct dist_kld *k)
{
    for (int64_t s = 0; k->recv && s < k->n_base; s++) {
        imc_xfer_cancel(k->recv[s]); // a failed run: the job ends
    }
    free(k->base_chunk);
    free(k->recv);
    free(k->send); // sends left behind by a failed run: the job ends
    free(k->vals);
    free(k->tmp);
    free(k->sc);
    free(k->enc);
    free(k->enc_chunk);
    free(k->rbuf);
}

static enum imc_status kld_setup(struct dist_kld *k, struct run *r, struct imc_dist_job *j)
{
    memset(k, 0, sizeof(*k));
    k->r = r;
    k->j = j;
    k->n_scored = imc_ppl_n_scored(r->n_ctx);
    k->row_len = imc_kld_row_len(r->n_vocab);
    j->on_logits = kld_on_logits;
    j->user = k;
    bool ok = true;
    k->slots = (j->n_seq + j->layout.ep - 1) / j->layout.ep; // a head shard's chunks a round
    if (r->o->kld_base) {
        j->after_round = base_after_round;
        k->vals = calloc((size_t)(r->ch.n_chunk * k->n_scored * KLD_FIELDS), sizeof(double));
        k->tmp = malloc((size_t)k->n_scored * sizeof(*k->tmp));
        k->sc = malloc((size_t)k->n_scored * sizeof(*k->sc));
        k->send_cap = r->rank0 ? j->n_seq * j->layout.dp : 0;
        k->send = calloc((size_t)(k->send_cap > 0 ? k->send_cap : 1), sizeof(*k->send));
        k->base_chunk = calloc((size_t)k->slots, sizeof(*k->base_chunk));
        k->recv = calloc((size_t)k->slots, sizeof(*k->recv));
        const size_t slot_bytes = (size_t)(k->n_scored * k->row_len) * sizeof(uint16_t);
        k->enc = r->rank0 ? NULL : malloc((size_t)k->slots * slot_bytes);
        ok = k->vals && k->tmp && k->sc && k->send && k->base_chunk && k->recv &&
             (r->rank0 || k->enc);
        if (ok) {
            return base_post_round(k, 0);
        }
    } else {
        j->after_round = kld_after_round;
        k->enc = malloc((size_t)(k->slots * k->n_scored * k->row_len) * sizeof(uint16_t));
        k->enc_chunk = malloc((size_t)k->slots * sizeof(int64_t));
        k->rbuf = malloc((size_t)(k->n_scored * k->row_len) * sizeof(uint16_t));
        ok = k->enc && k->enc_chunk && k->rbuf;
        if (ok && r->rank0) {
            enum imc_status st = imc_kld_writer_open(&r->w, r->o->kld_save, r->n_ctx, r->n_vocab,
                                                     r->ch.n_chunk, r->ch.tokens);
            if (st != IMC_OK) {
                return st;
            }
            r->writing = true;
        }
    }
    if (!ok) {
        IMC_LOG_ERR("perplexity: out of memory for the KLD rows of %lld chunks",
                    (long long)r->ch.n_chunk);
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

// --kld-base: rank 0 folds the summed figures chunk by chunk and prints each chunk's line.
static enum imc_status kld_report_chunks(struct run *r, struct dist_kld *k)
{
    const int64_t n = r->ch.n_chunk * k->n_scored;
    IMC_TRY(imc_reduce_sum_f64(r->o->comm, IMC_GROUP_WORLD, k->vals, k->vals,
                               (size_t)(n * KLD_FIELDS)));
    for (int64_t c = 0; r->rank0 && c < r->ch.n_chunk; c++) {
        for (int64_t i = 0; i < k->n_scored; i++) {
            const double *v = k->vals + (c * k->n_scored + i) * KLD_FIELDS;
            k->tmp[i] = (struct imc_kld_row){v[0], v[1], v[2], v[3], v[4] != 0.0};
        }
        imc_kld_add_rows(&r->kacc, k->tmp, k->n_scored);
        imc_progress_clear(&r->prog);
        if (c == 0) {
            imc_kld_print_header(r->out);
        }
        imc_kld_print_chunk(r->out, &r->kacc, c + 1);
    }
    return IMC_OK;
}

// The MPI job: every rank runs its part; rank 0 replays the NLLs (or the KLD figures) in chunk
// order (dist.h).
static enum imc_status run_dist(struct run *r)
{
    const int64_t n_chunk = r->ch.n_chunk, n_scored = imc_ppl_n_scored(r->n_ctx);
    double *nll = malloc((size_t)(n_chunk * n_scored) * sizeof(double));
    if (!nll) {
        IMC_LOG_ERR("perplexity: out of memory for %lld NLL values",
                    (long long)(n_chunk * n_scored));
        return IMC_ERR_NOMEM;
    }
    imc_progress_init(&r->prog, stderr, "perplexity", n_chunk, r->o->quiet || !r->rank0);
    struct imc_dist_job j = {
        .comm = r->o->comm,
        .layout = r->o->layout,
        .model = r->m,
        .ch = &r->ch,
        .chunk0 = 0,
        .chunk_end = n_chunk,
        .n_seq = imc_textrun_seqs(r->o->n_batch, r->n_ctx),
        .n_threads = r->o->n_threads,
        .attn = r->o->attn,
        .matmul = r->o->matmul,
        .device = r->o->device,
        .experts_on_cpu = r->o->experts_on_cpu,
        .host_exchange = r->o->host_exchange,
        .backend = r->o->backend,
        .head_begin = imc_ppl_first(r->n_ctx),
        .prog = r->rank0 ? &r->prog : NULL,
        .pulse = r->o->pulse,
    };
    struct dist_kld k;
    memset(&k, 0, sizeof(k));
    enum imc_status st = r->o->kld_base || r->o->kld_save ? kld_setup(&k, r, &j) : IMC_OK;
    struct imc_dist_times t;
    if (st == IMC_OK) {
        st = imc_dist_run(&j, nll, &t);
    }
    if (st == IMC_OK) {
        imc_dist_log_times(r->o->comm, &t);
        st = r->o->kld_base ? kld_report_chunks(r, &k)
                            : imc_reduce_sum_f64(r->o->comm, IMC_GROUP_WORLD, nll, nll,
                                                 (size_t)(n_chunk * n_scored));
    }
    for (int64_t c = 0; st == IMC_OK && !r->o->kld_base && r->rank0 && c < n_chunk; c++) {
        for (int64_t i = 0; i < n_scored; i++) {
            imc_ppl_add(&r->acc, nll[c * n_scored + i]);
        }
        imc_progress_clear(&r->prog);
        fprintf(r->out, "[%lld]%.4f,", (long long)(c + 1), imc_ppl_value(&r->acc));
    }
    kld_free(&k);
    free(nll);
    return st;
}

static enum imc_status report(struct run *r, struct imc_perplexity_result *res)
{
    res->n_chunk = r->ch.n_chunk;
    res->n_ctx = r->n_ctx;
    fprintf(r->out, "\n");
    if (r->o->kld_base) {
        struct imc_kld_headline h = imc_kld_headline(&r->kacc);
        res->ppl = h.ppl.val;
        res->ppl_err = h.ppl.unc;
        res->ppl_base = h.ppl_base.val;
        res->ppl_base_err = h.ppl_base.unc;
        res->kld = h.kld.val;
        res->kld_err = h.kld.unc;
        res->same_top = h.same_top.val;
        res->same_top_err = h.same_top.unc;
        return imc_kld_print_summary(r->out, &r->kacc);
    }
    res->ppl = imc_ppl_value(&r->acc);
    res->ppl_err = imc_ppl_error(&r->acc);
    fprintf(r->out, "Final estimate: PPL = %.4f +/- %.5f\n", res->ppl, res->ppl_err);
    fflush(r->out);
    return IMC_OK;
}

static void log_plan(const struct run *r)
{
    if (r->dist) {
        const struct imc_layout *l = &r->o->layout;
        IMC_LOG_INF("perplexity: %lld tokens, %lld chunks of %lld over %d ranks, layout "
                    "pp=%d,ep=%d,dp=%d, %s matmul, %d thread(s) per rank",
                    (long long)r->ch.n_tokens, (long long)r->ch.n_chunk, (long long)r->n_ctx,
                    imc_comm_size(r->o->comm), l->pp, l->ep, l->dp,
                    imc_matmul_mode_name(r->o->matmul),
                    r->o->n_threads > 0 ? r->o->n_threads : 1);
        return;
    }
    const char *attn = r->m->arch == IMC_ARCH_DEEPSEEK2
                           ? imc_attn_path_name(imc_engine_attn_path(r->e))
                           : "standard";
    IMC_LOG_INF("perplexity: %lld tokens, %lld chunks of %lld, %lld chunk(s) per engine call, "
                "%s attention, %s matmul, %d thread(s)%s%s",
                (long long)r->ch.n_tokens, (long long)r->ch.n_chunk, (long long)r->n_ctx,
                (long long)r->n_seq, attn, imc_matmul_mode_name(r->o->matmul),
                r->o->n_threads > 0 ? r->o->n_threads : 1,
                r->o->kld_base ? ", KLD against " : "", r->o->kld_base ? r->o->kld_base : "");
}

static void run_free(struct run *r)
{
    if (r->writing) {
        imc_kld_writer_abort(&r->w);
    }
    free(r->in);
    free(r->logits);
    free(r->sc);
    imc_kld_acc_free(&r->kacc);
    imc_kld_base_close(&r->base);
    imc_chunks_free(&r->ch);
    if (r->e) {
        imc_engine_log_profile(r->e, "perplexity: "); // -v
    }
    imc_engine_free(r->e);
    imc_vocab_free(r->v);
    imc_model_free(r->m);
    imc_gguf_free(r->g);
}

enum imc_status imc_perplexity_run(const struct imc_perplexity_opts *o, FILE *out,
                                   struct imc_perplexity_result *res)
{
    IMC_ASSERT(o->model && (o->text || o->kld_base) && !(o->kld_save && o->kld_base));
    struct run r;
    memset(&r, 0, sizeof(r));
    r.o = o;
    r.out = out;
    imc_ppl_init(&r.acc);
    struct imc_perplexity_result local;
    res = res ? res : &local;
    memset(res, 0, sizeof(*res));
    r.dist = o->comm && imc_comm_size(o->comm) > 1;
    r.rank0 = !o->comm || imc_comm_rank(o->comm) == 0;
    enum imc_status st = setup(&r);
    if (st == IMC_OK) {
        log_plan(&r);
        st = r.dist ? run_dist(&r) : run_chunks(&r);
    }
    if (st == IMC_OK && r.writing) {
        r.writing = false;
        st = imc_kld_writer_commit(&r.w);
    }
    if (st == IMC_OK && r.rank0) {
        st = report(&r, res);
    }
    imc_progress_clear(&r.prog);
    run_free(&r);
    return st;
}
