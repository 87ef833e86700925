/*
 * worker/engine_step: the engine's scratch arena and the steps every architecture shares —
 * matmul with statistics hook and numeric check, attention over the sequences of a call
 * (worker/engine_priv.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"
#include "worker/engine_mem.h"
#include "worker/engine_priv.h"

#define ALIGN 64
#define MIN_BLOCK (1u << 20)
#define HUGE_PAGE ((size_t)2 << 20)

// ---- arena ------------------------------------------------------------------------------------

struct eng_mark eng_mark(const struct imc_engine *e)
{
    return (struct eng_mark){e->arena.cur, e->harena.cur, e->arena.used, e->harena.used};
}

void eng_release(struct imc_engine *e, struct eng_mark m)
{
    e->arena.cur = m.cur;
    e->arena.used = m.used;
    e->harena.cur = m.hcur;
    e->harena.used = m.hused;
}

// Offers [p, p + n) to the kernel for transparent huge pages: the matmul outputs of the first
// call first touch hundreds of MB of the arena (later calls reuse them), a page fault per 4 KiB
// page otherwise (a tenth of a one-chunk pass's time on a virtual machine where a fault is dear).
static void advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    (void)madvise(p, n, MADV_HUGEPAGE); // advice only: 4 KiB pages where refused
#else
    (void)p;
    (void)n;
#endif
}

// The first block: address space as large as physical memory (at least cap bytes), which costs
// nothing until touched; each page is then provided (zeroed) once, on first use. Blocks of
// doubling size would leave their tails unused and have later steps touch fresh pages of the
// next block instead (measured: 1.55 GB of blocks, about 1 GB touched, for a DeepSeek-V3-width
// pass whose high-water mark is under 0.5 GB). NULL where refused (an address-space limit,
// strict overcommit): blocks then.
static void *block_reserve(size_t *cap)
{
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0 || (size_t)pages > SIZE_MAX / 2 / (size_t)page) {
        return NULL;
    }
    size_t n = (size_t)pages * (size_t)page;
    n = n > *cap ? n : *cap;
    n = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p =
        mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    advise_huge(p, n);
    *cap = n;
    return p;
}

// A block of cap bytes; from 2 MiB on, 2 MiB-aligned and offered for huge pages. Freed with
// free().
static void *block_alloc(size_t *cap)
{
    if (*cap < HUGE_PAGE) {
        return aligned_alloc(ALIGN, *cap);
    }
    *cap = (*cap + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = aligned_alloc(HUGE_PAGE, *cap);
    if (p) {
        advise_huge(p, *cap);
    }
    return p;
}

void eng_arena_free(struct eng_arena *a)
{
    for (int b = 0; b < IMC_ENG_MAX_BLOCKS; b++) {
        if (a->be && a->blk[b].p) {
            a->be->buf_free(a->ctx, a->blk[b].p);
        } else if (a->blk[b].mapped) {
            munmap(a->blk[b].p, a->blk[b].cap);
        } else {
            free(a->blk[b].p);
        }
        a->blk[b] = (struct eng_block){0};
    }
}

// Makes block b (empty) hold at least bytes: the reservation for block 0, else (or where it is
// refused) at least twice the previous block. False when out of memory.
static bool block_new(const struct eng_arena *a, struct eng_block *blk, size_t prev_cap, bool first,
                      size_t bytes)
{
    size_t cap = bytes > 2 * prev_cap ? bytes : 2 * prev_cap;
    cap = cap < MIN_BLOCK ? MIN_BLOCK : cap;
    if (a->be) { // the table's memory
        blk->p = a->be->buf_alloc(a->ctx, cap);
        blk->mapped = false;
        blk->cap = blk->p ? cap : 0;
        return blk->p != NULL;
    }
    blk->p = first ? block_reserve(&cap) : NULL;
    blk->mapped = blk->p != NULL;
    blk->p = blk->p ? blk->p : block_alloc(&cap);
    blk->cap = blk->p ? cap : 0;
    return blk->p != NULL;
}

static void *arena_alloc(struct eng_arena *a, size_t bytes)
{
    bytes = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    size_t prev_cap = a->cur > 0 ? a->blk[a->cur - 1].cap : 0;
    for (int b = a->cur; b < IMC_ENG_MAX_BLOCKS; b++) {
        struct eng_block *blk = &a->blk[b];
        size_t off = b == a->cur ? a->used : 0;
        if (!blk->p && !block_new(a, blk, prev_cap, b == 0, bytes)) {
            return NULL;
        }
        prev_cap = blk->cap;
        if (off + bytes <= blk->cap) {
            a->cur = b;
            a->used = off + bytes;
            size_t held = a->used;
            for (int i = 0; i < b; i++) {
                held += a->blk[i].cap;
            }
            a->hw = held > a->hw ? held : a->hw;
            return blk->p + off;
        }
    }
    return NULL;
}

size_t eng_act_bound(const struct imc_engine *e, int64_t n)
{
    const struct imc_engine_mem_q q = {.n_tok = n,
                                       .layer_begin = e->opts.layer_begin,
                                       .layer_end = e->opts.layer_end,
                                       .expert_begin = e->expert_begin,
                                       .expert_end = e->expert_end,
                                       .ep_size = e->ep_size,
                                       .path = e->path,
                                       .block_bytes = e->opts.block_bytes,
                                       .hooks = e->opts.hooks != NULL,
                                       .experts_on_cpu = e->be_exp != e->be,
                                       .host_rows = e->xchg.mode == XCHG_HOST};
    return imc_engine_act_bytes(e->m, &q);
}

bool eng_arena_first(struct imc_engine *e, int64_t n)
{
    struct eng_arena *a = &e->arena;
    if (!a->be || a->blk[0].p || n < 1) {
        return true;
    }
    const size_t bytes = eng_act_bound(e, n);
    if (!block_new(a, &a->blk[0], 0, true, bytes)) {
        IMC_LOG_ERR("engine: out of %s memory for the activations of %" PRId64
                    " tokens (%zu bytes)",
                    a->be->name, n, bytes);
        return false;
    }
    return true;
}

float *eng_f32(struct imc_engine *e, int64_t n)
{
    float *p =
        n >= 0 && (uint64_t)n < SIZE_MAX / 8 ? arena_alloc(&e->arena, (size_t)n * 4 + 4) : NULL;
    if (!p) {
        IMC_LOG_ERR("engine: out of memory for a scratch buffer of %" PRId64 " floats", n);
    }
    return p;
}

void *eng_host(struct imc_engine *e, int64_t n)
{
    struct eng_arena *a = e->dev ? &e->harena : &e->arena;
    void *p = n >= 0 && (uint64_t)n < SIZE_MAX / 8 ? arena_alloc(a, (size_t)n * 4 + 4) : NULL;
    if (!p) {
        IMC_LOG_ERR("engine: out of memory for host scratch of %" PRId64 " elements", n);
    }
    return p;
}

void *eng_host_zero(struct imc_engine *e, int64_t n)
{
    void *p = eng_host(e, n);
    if (p) {
        memset(p, 0, (size_t)n * 4);
    }
    return p;
}

// ---- shared steps ------------------------------------------------------------------------------

enum imc_status eng_add(struct imc_engine *e, float *x, const float *y, int64_t n_rows, int64_t n)
{
    return e->be->add(e->ex, x, y, n_rows, n, n);
}

enum imc_status eng_copy(struct imc_engine *e, const struct imc_copy_args *a)
{
    return e->be->copy(e->ex, a);
}

enum imc_status eng_copy_rows(struct imc_engine *e, float *dst, int64_t ldd, const float *src,
                              int64_t lds, int64_t n_tok, int64_t n)
{
    const struct imc_copy_args a = {.dst = dst, .d_ld_tok = ldd, .src = src, .s_ld_tok = lds,
                                    .n_tok = n_tok, .n_head = 1, .n = n};
    return e->be->copy(e->ex, &a);
}

// The message of a failed check: layer il, what, the value and where (bad: flat index in rows
// of n).
static enum imc_status check_failed(int64_t il, const char *what, int64_t bad, int64_t n, float v)
{
    if (il >= 0) {
        IMC_LOG_ERR("layer %" PRId64 ": non-finite value (%g) in %s, token row %" PRId64
                    ", column %" PRId64,
                    il, (double)v, what, bad / n, bad % n);
    } else {
        IMC_LOG_ERR("non-finite value (%g) in %s, token row %" PRId64 ", column %" PRId64,
                    (double)v, what, bad / n, bad % n);
    }
    return IMC_ERR_NUMERIC;
}

// Posts a deferred check (e->be->check_post) with its note.
static enum imc_status check_post(struct imc_engine *e, int64_t il, const char *what,
                                  const float *x, int64_t ld, int64_t n_rows, int64_t n)
{
    if (e->n_chk == e->chk_cap) {
        const int64_t cap = e->chk_cap ? 2 * e->chk_cap : 64;
        struct eng_check_note *p = realloc(e->chk, (size_t)cap * sizeof(*p));
        if (!p) {
            IMC_LOG_ERR("engine: out of memory for the notes of %" PRId64 " checks", cap);
            return IMC_ERR_NOMEM;
        }
        e->chk = p;
        e->chk_cap = cap;
    }
    struct eng_check_note *k = &e->chk[e->n_chk];
    k->il = il;
    k->n = n;
    snprintf(k->what, sizeof(k->what), "%s", what);
    return e->be->check_post(e->ex, x, ld, n_rows, n, e->n_chk++);
}

// eng_check by the table be (the one whose memory holds x): posted where be defers its checks.
static enum imc_status check_on(struct imc_engine *e, const struct imc_backend *be, int64_t il,
                                const char *what, const float *x, int64_t ld, int64_t n_rows,
                                int64_t n)
{
    if (be->check_post) {
        return check_post(e, il, what, x, ld, n_rows, n);
    }
    int64_t bad = -1;
    float v = 0.0f;
    IMC_TRY(be->find_nonfinite(e->ex, x, ld, n_rows, n, &bad, &v));
    return bad < 0 ? IMC_OK : check_failed(il, what, bad, n, v);
}

enum imc_status eng_check(struct imc_engine *e, int64_t il, const char *what, const float *x,
                          int64_t ld, int64_t n_rows, int64_t n)
{
    return check_on(e, e->be, il, what, x, ld, n_rows, n);
}

enum imc_status eng_check_poll(struct imc_engine *e)
{
    if (!e->be->check_poll) {
        return IMC_OK;
    }
    int64_t id = -1, bad = 0;
    float v = 0.0f;
    const int64_t n_chk = e->n_chk;
    e->n_chk = 0;
    IMC_TRY(e->be->check_poll(e->ex, &id, &bad, &v));
    if (id < 0) {
        return IMC_OK;
    }
    if (id >= n_chk) {
        IMC_LOG_ERR("engine: the %s table answered check %" PRId64 " of %" PRId64 " posted",
                    e->be->name, id, n_chk);
        return IMC_ERR_INTERNAL;
    }
    const struct eng_check_note *k = &e->chk[id];
    return check_failed(k->il, k->what, bad, k->n, v);
}

// eng_report with the table be handed to the hook (its sqacc accumulates the statistics).
static enum imc_status report_on(struct imc_engine *e, const struct imc_backend *be, int64_t il,
                                 const struct imc_tensor_info *w, int64_t slice, const float *x,
                                 int64_t ldx, int64_t n_rows, int64_t n_in, const int32_t *tok)
{
    const struct imc_stats_hooks *hk = e->opts.hooks;
    if (!hk || !hk->on_input || !w || n_rows == 0) {
        return IMC_OK;
    }
    const enum imc_status st =
        hk->on_input(hk->user, e->ex, be, w, il, slice, x, ldx, n_rows, n_in, tok);
    if (st == IMC_ERR_NUMERIC) { // with deferred checks: the output that went bad first, logged
        (void)eng_check_poll(e);
    }
    return st;
}

enum imc_status eng_report(struct imc_engine *e, int64_t il, const struct imc_tensor_info *w,
                           int64_t slice, const float *x, int64_t ldx, int64_t n_rows, int64_t n_in,
                           const int32_t *tok)
{
    return report_on(e, e->be, il, w, slice, x, ldx, n_rows, n_in, tok);
}

enum imc_status eng_matmul(struct imc_engine *e, int64_t il, const struct imc_tensor_info *w,
                           int64_t slice, int64_t n_out, float *y, int64_t ldy, const float *x,
                           int64_t ldx, int64_t n_tok)
{
    return eng_matmul_rows(e, il, w, slice, n_out, y, ldy, x, ldx, n_tok, e->tok);
}

// The data of slice `slice` (rows slice*n_out ..) of w; w's data for slice < 0.
static const uint8_t *slice_data(const struct imc_tensor_info *w, int64_t slice, int64_t n_out)
{
    const uint8_t *data = w->data;
    if (slice >= 0) {
        uint64_t rb = 0;
        IMC_ASSERT(imc_type_row_bytes((uint32_t)w->type, w->ne[0], &rb));
        IMC_ASSERT((slice + 1) * n_out <= w->ne[1] * w->ne[2]);
        data += (uint64_t)slice * (uint64_t)n_out * rb;
    }
    return data;
}

static enum imc_status check_output(struct imc_engine *e, const struct imc_backend *be, int64_t il,
                                    const struct imc_tensor_info *w, int64_t slice, const float *y,
                                    int64_t ldy, int64_t n_tok, int64_t n_out)
{
    char what[160];
    if (slice >= 0) {
        snprintf(what, sizeof(what), "the output of '%s' (slice %" PRId64 ")", w->name, slice);
    } else {
        snprintf(what, sizeof(what), "the output of '%s'", w->name);
    }
    return check_on(e, be, il, what, y, ldy, n_tok, n_out);
}

// After a failed matmul of w: the layer and tensor, since the backend knows only the shape
// (the CUDA table's "device memory exhausted: weight q4_K [..] needs N bytes" comes first).
static enum imc_status matmul_failed(const struct imc_backend *be, int64_t il,
                                     const struct imc_tensor_info *w, enum imc_status st)
{
    IMC_LOG_ERR("layer %" PRId64 ": matmul of '%s' on backend %s failed: %s", il, w->name, be->name,
                imc_status_str(st));
    return st;
}

enum imc_status eng_matmul_rows(struct imc_engine *e, int64_t il, const struct imc_tensor_info *w,
                                int64_t slice, int64_t n_out, float *y, int64_t ldy, const float *x,
                                int64_t ldx, int64_t n_tok, const int32_t *tok)
{
    const int64_t n_in = w->ne[0];
    enum imc_status st;
    ENG_TIMED(e, IMC_PROF_HOOKS, st = eng_report(e, il, w, slice, x, ldx, n_tok, n_in, tok));
    IMC_TRY(st);
    ENG_TIMED(e, IMC_PROF_MATMUL,
              st = e->be->matmul(e->ex, y, ldy, slice_data(w, slice, n_out), w->type, n_out, n_in,
                                 x, ldx, n_tok));
    if (st != IMC_OK) {
        return matmul_failed(e->be, il, w, st);
    }
    ENG_TIMED(e, IMC_PROF_CHECK, st = check_output(e, e->be, il, w, slice, y, ldy, n_tok, n_out));
    return st;
}

// Scratch for n matmul descriptors of one grouped call (host, after the caller's mark).
static struct imc_mm *mm_alloc(struct imc_engine *e, int64_t n)
{
    const size_t bytes = (size_t)n * sizeof(struct imc_mm);
    return (struct imc_mm *)eng_host(e, (int64_t)((bytes + 3) / 4));
}

// The first non-finite value of a group of slices' outputs (eng_matmul_slices): one scan of all
// their rows (consecutive: slice i holds rows [first[i], first[i + 1]) - first[0]), then
// check_output of the slice holding it names it (its first non-finite value is the group's: the
// rows of lower slices come first). One check per group rather than per slice: an MoE layer's
// groups hold up to all its experts (a pool job each on the CPU, a wait for the device's answer
// on a GPU).
static enum imc_status check_slices(struct imc_engine *e, int64_t il,
                                    const struct imc_tensor_info *w, int64_t slice0, int64_t n_out,
                                    const float *y, int64_t ldy, const int32_t *first, int64_t n)
{
    if (e->be_exp->check_post) { // deferred: one check per slice costs no wait
        for (int64_t i = 0; i < n; i++) {
            const int64_t r0 = first[i] - first[0], cnt = first[i + 1] - first[i];
            if (cnt > 0) {
                IMC_TRY(
                    check_output(e, e->be_exp, il, w, slice0 + i, y + r0 * ldy, ldy, cnt, n_out));
            }
        }
        return IMC_OK;
    }
    int64_t bad = -1;
    float v = 0.0f;
    IMC_TRY(e->be_exp->find_nonfinite(e->ex, y, ldy, first[n] - first[0], n_out, &bad, &v));
    if (bad < 0) {
        return IMC_OK;
    }
    int64_t i = 0;
    while (first[i + 1] - first[0] <= bad / n_out) {
        i++;
    }
    const int64_t r0 = first[i] - first[0];
    return check_output(e, e->be_exp, il, w, slice0 + i, y + r0 * ldy, ldy, first[i + 1] - first[i],
                        n_out);
}

enum imc_status eng_matmul_slices(struct imc_engine *e, int64_t il, const struct imc_tensor_info *w,
                                  int64_t slice0, int64_t n_out, float *y, int64_t ldy,
                                  const float *x, int64_t ldx, const int32_t *first, int64_t n,
                                  const int32_t *tok)
{
    const int64_t n_in = w->ne[0];
    struct eng_mark mk = eng_mark(e);
    struct imc_mm *mm = mm_alloc(e, n);
    if (!mm) {
        return IMC_ERR_NOMEM;
    }
    int64_t k = 0;
    enum imc_status st = IMC_OK;
    for (int64_t i = 0; i < n && st == IMC_OK; i++) {
        const int64_t r0 = first[i] - first[0], cnt = first[i + 1] - first[i];
        if (cnt > 0) {
            ENG_TIMED(e, IMC_PROF_HOOKS,
                      st = report_on(e, e->be_exp, il, w, slice0 + i, x + r0 * ldx, ldx, cnt, n_in,
                                     tok + r0));
            mm[k++] = (struct imc_mm){y + r0 * ldy, ldy,   slice_data(w, slice0 + i, n_out),
                                      w->type,      n_out, n_in,
                                      x + r0 * ldx, ldx,   cnt};
        }
    }
    if (st == IMC_OK) {
        ENG_TIMED(e, IMC_PROF_MATMUL, st = e->be_exp->matmul_group(e->ex, mm, k));
        if (st != IMC_OK) {
            matmul_failed(e->be_exp, il, w, st);
        }
    }
    if (st == IMC_OK) {
        ENG_TIMED(e, IMC_PROF_CHECK, st = check_slices(e, il, w, slice0, n_out, y, ldy, first, n));
    }
    eng_release(e, mk);
    return st;
}

// The first non-finite value of a block of heads' outputs (eng_matmul_heads): one scan of the
// block, then check_output of the head it lies in names it (its first non-finite value is the
// block's: no earlier row holds one). A value between two heads' outputs (none is written
// there by w) is reported as the block's.
static enum imc_status check_heads(struct imc_engine *e, int64_t il,
                                   const struct imc_tensor_info *w, int64_t h0, int64_t n_out,
                                   const float *y, int64_t ldy, int64_t y_head, int64_t nh,
                                   int64_t n_tok)
{
    const int64_t cols = (nh - 1) * y_head + n_out;
    if (e->be->check_post) { // deferred: each head, then the block (what lies between heads)
        for (int64_t i = 0; i < nh; i++) {
            IMC_TRY(check_output(e, e->be, il, w, h0 + i, y + i * y_head, ldy, n_tok, n_out));
        }
        return eng_check(e, il, "the columns between heads", y, ldy, n_tok, cols);
    }
    int64_t bad = -1;
    float v = 0.0f;
    IMC_TRY(e->be->find_nonfinite(e->ex, y, ldy, n_tok, cols, &bad, &v));
    if (bad < 0) {
        return IMC_OK;
    }
    const int64_t i = bad % cols / y_head;
    const enum imc_status st =
        check_output(e, e->be, il, w, h0 + i, y + i * y_head, ldy, n_tok, n_out);
    return st != IMC_OK ? st : eng_check(e, il, "the columns between heads", y, ldy, n_tok, cols);
}

enum imc_status eng_matmul_heads(struct imc_engine *e, int64_t il, const struct imc_tensor_info *w,
                                 int64_t h0, int64_t nh, int64_t n_out, float *y, int64_t ldy,
                                 int64_t y_head, const float *x, int64_t ldx, int64_t x_head,
                                 int64_t n_tok)
{
    const int64_t n_in = w->ne[0];
    struct eng_mark mk = eng_mark(e);
    struct imc_mm *mm = mm_alloc(e, nh);
    if (!mm) {
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = IMC_OK;
    for (int64_t i = 0; i < nh && st == IMC_OK; i++) {
        const float *xi = x + i * x_head;
        ENG_TIMED(e, IMC_PROF_HOOKS,
                  st = eng_report(e, il, w, h0 + i, xi, ldx, n_tok, n_in, e->tok));
        mm[i] = (struct imc_mm){
            y + i * y_head, ldy, slice_data(w, h0 + i, n_out), w->type, n_out, n_in, xi, ldx,
            n_tok};
    }
    if (st == IMC_OK) {
        ENG_TIMED(e, IMC_PROF_MATMUL, st = e->be->matmul_group(e->ex, mm, nh));
        if (st != IMC_OK) {
            matmul_failed(e->be, il, w, st);
        }
    }
    if (st == IMC_OK) {
        ENG_TIMED(e, IMC_PROF_CHECK,
                  st = check_heads(e, il, w, h0, n_out, y, ldy, y_head, nh, n_tok));
    }
    eng_release(e, mk);
    return st;
}

enum imc_status eng_attention(struct imc_engine *e, const struct imc_attn_args *a0)
{
    struct imc_attn_args a = *a0;
    for (int64_t s = 0; s < e->n_seq; s++) {
        const int64_t off = s * e->n_ctx;
        a.q = a0->q + off * a0->q_ld_tok;
        a.k = a0->k + off * a0->k_ld_tok;
        a.v = a0->v + off * a0->v_ld_tok;
        a.out = a0->out + off * a0->o_ld_tok;
        if (a0->v2) {
            a.v2 = a0->v2 + off * a0->v2_ld_tok;
            a.out2 = a0->out2 + off * a0->o2_ld_tok;
        }
        enum imc_status st;
        ENG_TIMED(e, IMC_PROF_ATTENTION, st = e->be->attention(e->ex, &a));
        IMC_TRY(st);
    }
    return IMC_OK;
}
