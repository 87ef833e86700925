/*
 * tests/cuda/test_stats_dev: the imatrix collector's chunk sums kept in the CUDA table's memory
 * (worker/stats_collect_dev.c) on the emulated table, against the same collector on the cpu
 * table fed the same rows:
 *   - a dense 2D weight, 40 experts of 4096 columns (1.3 MB of sums: two blocks of the table's
 *     memory, 1 and 2 MiB), a 2D ik-layout attn_k_b reported per head; four chunks, two of them
 *     spanning two "engine calls" (a sync between: the chunk's sums go up again before the next
 *     rows are added), experts left out of some calls: the imatrix after each chunk bitwise
 *     equal to the cpu collector's (sums and counts; the device adds the same doubles in the
 *     same order);
 *   - traffic: no copy per statistics call; per sync one download per block holding new sums
 *     and nothing else; uploads only of the rows themselves and, in the spanning chunk, of the
 *     sums of each slice the second call adds to;
 *   - the blocks within worker/engine_mem.h's bound of its slots (imc_engine_stats_blocks), also
 *     where the blocks' tails decide: 3 MiB of slots taking 1 + 2 + 4 MiB (the bound without the
 *     tails, 3 MiB, fails);
 *   - a sync after which nothing was added copies nothing; release frees every block (the
 *     table's buffer list back to what it was) and a collector used again afterwards takes new
 *     blocks and still matches;
 *   - errors: end of chunk with sums still in the table's memory (IMC_ERR_INTERNAL, the message
 *     says the sync is missing); a NaN row: the sync says IMC_ERR_NUMERIC naming the tensor,
 *     chunk and column, and the collector stays failed; a sync through another table's state
 *     (IMC_ERR_INTERNAL); device memory exhausted (IMC_CUEMU_MEM_LIMIT) for the first block:
 *     IMC_ERR_NOMEM naming the tensor and the bytes, the collector failed, nothing left held.
 * The rows are in the table's memory (uploaded by the test): the collector never touches them
 * or its sums from the host (the emulator closes the table's buffers between ops).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../logcap.h"
#include "backend_emu.h"
#include "kernels/cuda/emu/cuemu_api.h"
#include "tests/kernels/kcheck.h"
#include "worker/engine_mem.h"
#include "worker/stats_collect.h"
#include "worker/stats_collect_priv.h" // the collector's blocks
#define IMC_CUDA_FN(name) imc_cuemu_##name
#include "kernels/cuda/kern_decl.h"
#include "kernels/cuda/table_priv.h" // the state's buffer list
#undef IMC_CUDA_FN

enum { N_EXP = 40, N_HEAD = 4, LD_PAD = 3 };

struct side {
    struct imc_imatrix im;
    struct imc_stats_collect *c;
};

struct dev {
    const struct imc_backend *b;
    struct imc_exec *ex;
    void *ctx;
};

static const struct imc_tensor_info W_Q = {
    .name = "blk.0.attn_q.weight", .type = IMC_TYPE_F32, .n_dims = 2, .ne = {96, 64, 1, 1}};
static const struct imc_tensor_info W_UP = {.name = "blk.0.ffn_up_exps.weight",
                                            .type = IMC_TYPE_F32,
                                            .n_dims = 3,
                                            .ne = {4096, 8, N_EXP, 1}};
static const struct imc_tensor_info W_KB = {
    .name = "blk.0.attn_k_b.weight", .type = IMC_TYPE_F32, .n_dims = 2, .ne = {64, N_HEAD, 1, 1}};

static int n_bufs(const struct dev *d)
{
    const struct imc_cuda_ctx *c = d->ctx;
    int n = 0;
    for (int i = 0; i < IMC_CUDA_MAX_BUFS; i++) {
        n += c->buf[i].p != NULL;
    }
    return n;
}

static void traffic(const struct dev *d, size_t *n_up, size_t *n_down, size_t *down)
{
    size_t up;
    tcuda_emu_traffic(d->ctx, &up, down, n_up, n_down);
}

// Feeds n_rows random rows of w's n_in columns (row stride n_in + LD_PAD) to both collectors:
// host rows to the cpu one, the same rows uploaded into the table's memory to the device one.
// Returns the device side's status.
static enum imc_status feed(struct krng *r, struct dev *d, struct side *cpu, struct side *gpu,
                            const struct imc_tensor_info *w, int64_t slice, int64_t n_rows,
                            float poison)
{
    const int64_t n_in = w->ne[0], ld = n_in + LD_PAD;
    float *x = kalloc_rand(r, n_rows * ld, 2.0f);
    if (poison != 0.0f) {
        x[(n_rows - 1) * ld + 17] = poison;
    }
    const size_t bytes = (size_t)(n_rows * ld) * sizeof(float);
    float *xd = d->b->buf_alloc(d->ctx, bytes);
    CHECK(xd && d->b->upload(d->ex, xd, x, bytes) == IMC_OK, "rows into the table's memory");
    if (poison == 0.0f) {
        CHECK(imc_stats_collect_add(cpu->c, NULL, NULL, w, 0, slice, x, ld, n_rows, n_in) == IMC_OK,
              "cpu collector: %s slice %lld", w->name, (long long)slice);
    }
    const enum imc_status st =
        imc_stats_collect_add(gpu->c, d->ex, d->b, w, 0, slice, xd, ld, n_rows, n_in);
    d->b->buf_free(d->ctx, xd);
    free(x);
    return st;
}

// One "engine call": rows for the dense weight, the experts whose index is not a multiple of
// skip (all for skip 0), each head; returns the rows' uploads.
static size_t one_call(struct krng *r, struct dev *d, struct side *cpu, struct side *gpu, int skip)
{
    size_t n = 0;
    CHECK(feed(r, d, cpu, gpu, &W_Q, -1, 13, 0.0f) == IMC_OK, "dense");
    n++;
    for (int64_t e = 0; e < N_EXP; e++) {
        if (skip == 0 || e % skip != 0) {
            CHECK(feed(r, d, cpu, gpu, &W_UP, e, 1 + e % 5, 0.0f) == IMC_OK, "expert %lld",
                  (long long)e);
            n++;
        }
    }
    for (int64_t h = 0; h < N_HEAD; h++) {
        CHECK(feed(r, d, cpu, gpu, &W_KB, h, 11, 0.0f) == IMC_OK, "head %lld", (long long)h);
        n++;
    }
    return n;
}

static bool same_entry(const struct imc_imatrix *a, const struct imc_imatrix *b, const char *name)
{
    const struct imc_imatrix_entry *x = imc_imatrix_find(a, name), *y = imc_imatrix_find(b, name);
    if (!x || !y || x->n_per_row != y->n_per_row || x->n_mat != y->n_mat) {
        return false;
    }
    return memcmp(x->sums, y->sums, (size_t)(x->n_per_row * x->n_mat) * sizeof(double)) == 0 &&
           memcmp(x->counts, y->counts, (size_t)x->n_mat * sizeof(*x->counts)) == 0;
}

static void same_imatrix(const struct side *cpu, const struct side *gpu, const char *when)
{
    const char *names[3] = {W_Q.name, W_UP.name, W_KB.name};
    for (int i = 0; i < 3; i++) {
        CHECK(same_entry(&cpu->im, &gpu->im, names[i]), "%s: %s differs from the cpu collector's",
              when, names[i]);
    }
    CHECK(cpu->im.chunk_count == gpu->im.chunk_count, "%s: chunk counts", when);
}

static void side_open(struct side *s)
{
    imc_imatrix_init(&s->im);
    CHECK(imc_stats_collect_init(&s->c, &s->im) == IMC_OK, "collector");
}

static void side_close(struct side *s)
{
    imc_stats_collect_free(s->c);
    imc_imatrix_free(&s->im);
}

// Sync of gpu (not releasing); checks its copies: n_blk downloads, no upload.
static void sync_counted(struct dev *d, struct side *gpu, size_t n_blk, const char *when)
{
    size_t u0, n0, b0, u1, n1, b1;
    traffic(d, &u0, &n0, &b0);
    CHECK(imc_stats_collect_sync(gpu->c, d->ex, d->b, false) == IMC_OK, "%s: sync", when);
    traffic(d, &u1, &n1, &b1);
    CHECK(u1 == u0 && n1 - n0 == n_blk, "%s: sync made %zu uploads and %zu downloads (want 0, %zu)",
          when, u1 - u0, n1 - n0, n_blk);
}

// A chunk of calls (skip per call, see one_call) with a sync after each, folded by both
// collectors and compared; returns the rows' uploads and adds the sums uploaded again to *again.
// n_blk[k]: the blocks holding sums of the slices call k feeds (its sync's downloads).
static size_t chunk(struct krng *r, struct dev *d, struct side *cpu, struct side *gpu,
                    const int *skip, int n_call, const size_t *n_blk, const char *when)
{
    size_t rows = 0;
    for (int k = 0; k < n_call; k++) {
        size_t u0, n0, b0, u1, n1, b1;
        traffic(d, &u0, &n0, &b0);
        const size_t n = one_call(r, d, cpu, gpu, skip[k]);
        traffic(d, &u1, &n1, &b1);
        // the second call of a chunk adds on top of the sums the first brought home: those of
        // the slices both fed go up again (dense, heads, the experts fed by both)
        size_t again = 0;
        if (k > 0) {
            again = 1 + N_HEAD;
            for (int e = 0; e < N_EXP; e++) {
                again += (skip[0] == 0 || e % skip[0] != 0) && (skip[k] == 0 || e % skip[k] != 0);
            }
        }
        CHECK(u1 - u0 == n + again && n1 == n0,
              "%s, call %d: %zu uploads (want %zu row sets + %zu sums), %zu downloads (want 0)",
              when, k, u1 - u0, n, again, n1 - n0);
        sync_counted(d, gpu, n_blk[k], when);
        rows += n;
    }
    CHECK(imc_stats_collect_end_chunk(cpu->c) == IMC_OK &&
              imc_stats_collect_end_chunk(gpu->c) == IMC_OK,
          "%s: end of chunk", when);
    same_imatrix(cpu, gpu, when);
    return rows;
}

// The collector's blocks (every slot taken) within worker/engine_mem.h's bound for its slots:
// one per slice, rounded to SCOL_ALIGN.
static void blocks_bound(const struct imc_stats_collect *c)
{
    const size_t q = (96 * 8 + SCOL_ALIGN - 1) / SCOL_ALIGN * SCOL_ALIGN,
                 up = (4096 * 8 + SCOL_ALIGN - 1) / SCOL_ALIGN * SCOL_ALIGN,
                 kb = (64 * 8 + SCOL_ALIGN - 1) / SCOL_ALIGN * SCOL_ALIGN;
    const size_t slots = q + N_EXP * up + N_HEAD * kb, bound = imc_engine_stats_blocks(slots, up);
    size_t held = 0, used = 0;
    for (int i = 0; i < c->dev.n_blk; i++) {
        held += c->dev.blk[i].cap;
        used += c->dev.blk[i].used;
    }
    CHECK(used == slots && held <= bound,
          "the collector's blocks: %zu bytes (bound %zu), their slots %zu (want %zu)", held, bound,
          used, slots);
    printf("the collector's blocks: %zu bytes in %d, bound %zu\n", held, c->dev.n_blk, bound);
}

static void chunks(struct dev *d)
{
    struct krng r = {20261205};
    struct side cpu, gpu;
    side_open(&cpu);
    side_open(&gpu);
    const int bufs0 = n_bufs(d);
    // the sums (1.31 MB) take two blocks: 1 MiB, then 2 MiB
    const int all[1] = {0}, span[2] = {3, 2}, some[1] = {4};
    const size_t two[2] = {2, 2};
    chunk(&r, d, &cpu, &gpu, all, 1, two, "chunk 0");
    CHECK(n_bufs(d) == bufs0 + 2, "%d blocks taken (want 2)", n_bufs(d) - bufs0);
    blocks_bound(gpu.c);
    sync_counted(d, &gpu, 0, "a sync with nothing new");
    chunk(&r, d, &cpu, &gpu, span, 2, two, "chunk 1 (two calls)");
    chunk(&r, d, &cpu, &gpu, some, 1, two, "chunk 2");
    CHECK(imc_stats_collect_sync(gpu.c, d->ex, d->b, true) == IMC_OK && n_bufs(d) == bufs0,
          "release: %d blocks left", n_bufs(d) - bufs0);
    // used again after the release: new blocks, the same sums. Slots go in first-seen order:
    // the first call's 26 experts (not 0, 3, ..) fit the first block (0.85 MB), the second
    // call's new ones (3, 9, .. 39) fill it and open the second
    const size_t one_two[2] = {1, 2};
    chunk(&r, d, &cpu, &gpu, span, 2, one_two, "chunk 3 (after a release)");
    CHECK(n_bufs(d) == bufs0 + 2, "%d blocks taken again (want 2)", n_bufs(d) - bufs0);
    CHECK(imc_stats_collect_sync(gpu.c, d->ex, d->b, true) == IMC_OK && n_bufs(d) == bufs0,
          "second release: %d blocks left", n_bufs(d) - bufs0);
    printf("4 chunks, 5 calls: the imatrix bitwise the cpu collector's after each chunk; per "
           "sync 2 downloads, per call no copy but the rows' (and the sums of a chunk's second "
           "call)\n");
    side_close(&gpu);
    side_close(&cpu);
}

static void errors(struct dev *d)
{
    struct krng r = {7};
    struct logcap lc;
    struct side cpu, gpu;
    // the end of a chunk whose sums are still in the table's memory
    side_open(&cpu);
    side_open(&gpu);
    CHECK(feed(&r, d, &cpu, &gpu, &W_Q, -1, 5, 0.0f) == IMC_OK, "feed");
    logcap_start(&lc);
    enum imc_status st = imc_stats_collect_end_chunk(gpu.c);
    logcap_stop();
    CHECK(st == IMC_ERR_INTERNAL && strstr(lc.text, "imc_stats_collect_sync missing") &&
              gpu.im.n_entries == 0,
          "end of chunk without a sync: %s, %s", imc_status_str(st), lc.text);
    printf("end of chunk without a sync: %s", lc.text);
    // a sync through another table state
    struct dev d2 = {d->b, kexec(1), NULL};
    CHECK(d2.b->ctx_new(&d2.ctx) == IMC_OK, "second ctx_new");
    imc_exec_set_backend_ctx(d2.ex, d2.ctx);
    logcap_start(&lc);
    st = imc_stats_collect_sync(gpu.c, d2.ex, d2.b, false);
    logcap_stop();
    CHECK(st == IMC_ERR_INTERNAL && lc.n_err == 1, "sync on another state: %s, %s",
          imc_status_str(st), lc.text);
    imc_exec_set_backend_ctx(d2.ex, NULL);
    d2.b->ctx_free(d2.ctx);
    imc_exec_free(d2.ex);
    (void)imc_stats_collect_sync(gpu.c, d->ex, d->b, true);
    side_close(&gpu);
    // a NaN among the rows: found at the sync, named, sticky
    side_open(&gpu);
    CHECK(feed(&r, d, &cpu, &gpu, &W_UP, 5, 3, NAN) == IMC_OK, "NaN rows are added on the device");
    logcap_start(&lc);
    st = imc_stats_collect_sync(gpu.c, d->ex, d->b, false);
    const enum imc_status st2 = imc_stats_collect_end_chunk(gpu.c);
    logcap_stop();
    CHECK(st == IMC_ERR_NUMERIC && st2 == IMC_ERR_NUMERIC && lc.n_err == 1 &&
              strstr(lc.text, "'blk.0.ffn_up_exps.weight' (slice 5), chunk 0") &&
              strstr(lc.text, "column 17"),
          "NaN: sync %s, end of chunk %s, %s", imc_status_str(st), imc_status_str(st2), lc.text);
    printf("NaN in the rows: %s", lc.text);
    CHECK(imc_stats_collect_sync(gpu.c, d->ex, d->b, true) == IMC_OK, "release after a failure");
    side_close(&gpu);
    side_close(&cpu);
}

// Device memory exhausted (IMC_CUEMU_MEM_LIMIT: room for the rows, not for the first block):
// the call fails with IMC_ERR_NOMEM naming the tensor and the bytes, the collector stays
// failed, nothing crashes and nothing is left allocated.
static void exhausted(struct dev *d)
{
    struct krng r = {11};
    struct logcap lc;
    struct side cpu, gpu;
    side_open(&cpu);
    side_open(&gpu);
    char lim[32];
    snprintf(lim, sizeof(lim), "%llu", cuemu_mem_used() + (1ull << 19));
    setenv("IMC_CUEMU_MEM_LIMIT", lim, 1);
    logcap_start(&lc);
    const enum imc_status st = feed(&r, d, &cpu, &gpu, &W_Q, -1, 5, 0.0f);
    const enum imc_status st2 = imc_stats_collect_end_chunk(gpu.c);
    logcap_stop();
    unsetenv("IMC_CUEMU_MEM_LIMIT");
    CHECK(st == IMC_ERR_NOMEM && st2 == IMC_ERR_NOMEM &&
              strstr(lc.text, "tensor 'blk.0.attn_q.weight': no room in the cuda table's memory "
                              "for the chunk sums (768 bytes in a block of 1048576"),
          "exhausted: %s, end of chunk %s, %s", imc_status_str(st), imc_status_str(st2), lc.text);
    printf("device memory exhausted, the log says:\n%s", lc.text);
    CHECK(imc_stats_collect_sync(gpu.c, d->ex, d->b, true) == IMC_OK, "release (nothing held)");
    side_close(&gpu);
    side_close(&cpu);
}

// Slots whose tails decide the blocks: 76 experts of 5120 columns (40 KiB of sums each) and one
// slice of 4096 (32 KiB), 3 MiB in all. The first block (1 MiB) takes 25 experts and leaves 24
// KiB, the second (2 MiB) 51 and leaves 8 KiB, so the last slot opens a third (4 MiB): 7 MiB
// held, which imc_engine_stats_blocks must bound (3 MiB without the tails).
static void tails(struct dev *d)
{
    enum { N_BIG = 76 };
    static const struct imc_tensor_info w_big = {.name = "blk.0.ffn_gate_exps.weight",
                                                 .type = IMC_TYPE_F32,
                                                 .n_dims = 3,
                                                 .ne = {5120, 2, N_BIG, 1}};
    static const struct imc_tensor_info w_small = {
        .name = "blk.0.ffn_down.weight", .type = IMC_TYPE_F32, .n_dims = 2, .ne = {4096, 8, 1, 1}};
    struct krng r = {77};
    struct side cpu, gpu;
    side_open(&cpu);
    side_open(&gpu);
    for (int64_t e = 0; e < N_BIG; e++) {
        CHECK(feed(&r, d, &cpu, &gpu, &w_big, e, 1, 0.0f) == IMC_OK, "expert %lld", (long long)e);
    }
    CHECK(feed(&r, d, &cpu, &gpu, &w_small, -1, 1, 0.0f) == IMC_OK, "the last slice");
    const size_t slots = (size_t)N_BIG * 5120 * 8 + 4096 * 8;
    const size_t bound = imc_engine_stats_blocks(slots, 5120 * 8);
    size_t held = 0, used = 0;
    for (int i = 0; i < gpu.c->dev.n_blk; i++) {
        held += gpu.c->dev.blk[i].cap;
        used += gpu.c->dev.blk[i].used;
    }
    CHECK(slots == 3u << 20 && used == slots && gpu.c->dev.n_blk == 3 && held == 7u << 20 &&
              held <= bound,
          "tails: %zu bytes of slots in %d blocks of %zu bytes, bound %zu", used, gpu.c->dev.n_blk,
          held, bound);
    printf("3 MiB of slots in %d blocks, %zu bytes with their tails, bound %zu\n", gpu.c->dev.n_blk,
           held, bound);
    CHECK(imc_stats_collect_sync(gpu.c, d->ex, d->b, true) == IMC_OK, "tails: release");
    side_close(&gpu);
    side_close(&cpu);
}

int main(void)
{
    struct dev d = {tcuda_backend_emu(), kexec(1), NULL};
    CHECK(d.b->ctx_new(&d.ctx) == IMC_OK, "ctx_new");
    imc_exec_set_backend_ctx(d.ex, d.ctx);
    const int bufs0 = n_bufs(&d);
    chunks(&d);
    tails(&d);
    errors(&d);
    exhausted(&d);
    CHECK(n_bufs(&d) == bufs0, "%d buffers left", n_bufs(&d) - bufs0);
    imc_exec_set_backend_ctx(d.ex, NULL);
    d.b->ctx_free(d.ctx);
    imc_exec_free(d.ex);
    return check_summary();
}
