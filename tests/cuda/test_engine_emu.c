/*
 * tests/cuda/test_engine_emu: the engine's whole forward pass on the emulated CUDA kernels (the
 * production op table kernels/cuda/table.cu compiled for the emulator, tests/cuda/backend_emu.h;
 * printed as "cuda-emu") against the engine on the cpu backend, on the
 * synthetic presets: llama, llama MoE, deepseek2 (mainline 3D attn_k_b absorbed; attn_kv_b
 * non-absorbed from ds2-tiny-all; the ik layout both ways), qwen3moe, glm4moe.
 *
 * Bound: max|Δ| / max|logit| <= 2e-5, the bound of tests/e2e/test_mla_paths for the cpu engine
 * against the double-precision reference forward. Both sides here accumulate in float in
 * different orders: the matmuls of more than 16 tokens (dense layers) go through cuBLAS (the
 * emulated one, kernels/cuda/emu/cuemu_cublas.h: blas.cu's calls as on a GPU, an order of sums
 * that is not the cpu's; checked used), within γ(n_in) like the cpu GEMM; the expert matmuls of
 * <= 16 tokens run mmv, within (m + 6)·2^-24·Σ|w·x| per output (tests/cuda/test_mmv, m = n_in /
 * 32 <= 4 for these f32 weights); the attention kernel within its first-order float bounds
 * (tests/cuda/test_attention), the cpu GEMM and attention likewise; through 2-3 layers that is
 * ~1e-6 of the largest logit (measured, printed: up to 1.7e-6 through cuBLAS, 1.5e-6 through the
 * tiled GEMM). An MoE routing flip (a different expert chosen
 * because two router scores are within rounding) or a wrong op would be O(1e-2 .. 1).
 * Also:
 *   - the statistics: the engine's hooks feed the imatrix program's collector
 *     (worker/stats_collect.c), which accumulates through the sqacc entry of the op table the
 *     engine hands its hook (on cuda-emu: the sqacc launcher on the engine's strided
 *     activations); one chunk folded into an imatrix per run. Against the cpu run: the same
 *     entries with the same shapes and the same counts per matrix (an expert that got other
 *     tokens would show here), Σx² per column within 4e-5 of the matrix's largest (squaring
 *     doubles the relative error of x; measured <= 3.2e-6). Self-check on llama-tiny and
 *     ds2-tiny-3d: the table with a sqacc that skips each call's last row (count right) gives the
 *     same logits bit for bit but fails the statistics bound (so the collector uses the engine's
 *     table);
 *   - the emulator's reverse thread order gives the same logits bit for bit (every kernel's
 *     reductions have a fixed order: no result depends on thread scheduling);
 *   - self-checks: a logit moved by 1 and a table whose attention scale is 1% off (0.013 ..
 *     0.34) both fail the bound;
 *   - the table's sqacc is bitwise equal to imc_ref_sqacc on strided rows.
 *   - the op table's scratch (worker/engine_mem.h imc_engine_scratch_bytes): a run of the
 *     commands' kind (embed, layers, the head's logits kept and scored there against base rows)
 *     on every preset and path in f32, the hybrid (--experts-on cpu) on the MoE presets, and on
 *     the q8_0 models below in f32, q8 and q8 with IMC_CUDA_MMQ_TOKENS=16 (bf16 tiles and
 *     activations), and a later pipeline stage fed host hidden rows (layers 1 .. and the head)
 *     on every preset in f32 and the q8_0 models in q8: each slot within its part of the bound
 *     and the sum equal to it, to the byte (32 runs). The stage runs found the weighted sum's
 *     positions (n·k int32, slot A) missing where no embedding rows hid them; without the host
 *     rows' part, or that one, 10-11 of them fail. Found by it: the norm weights the engine places
 * through the table's copy once (256-512 bytes) were missing from the first bound; and the hybrid
 * ran the experts' SwiGLU on the device table on host rows (two uploads and a download per group),
 * now on the experts' table.
 *   - mmq (kernels/cuda/mmq.cu) in whole passes: qwen3moe, ds2-tiny-3d (absorbed: MLA's heads
 *     at strides) and glm4moe at q8_0 under --matmul q8 give the logits of the same pass with
 *     IMC_CUDA_MMQ_TOKENS=0 (dequantize + GEMM) bit for bit, in fewer launches (194 / 278,
 *     318 / 524, 261 / 371). Mutation: the grouped mmq launch given n_in for ldx: ds2-tiny-3d
 *     fails (1.24 of the largest logit against the cpu).
 *   - the activations' arena of every run on the device table (all presets and paths, with and
 *     without statistics, the hybrid, and one expert per group: block_bytes 1): one block, the
 *     size worker/engine_mem.h computes from the shapes, and the pass's high-water mark equal to
 *     it, or within it where routing decides the largest group of experts (block_bytes 1: 9-14%
 *     above). Mutations: the gather and scatter orders left out of the bound (28 checks
 *     fail); the absorbed path's õ left out (the block_bytes 1 case fails).
 *   - the hybrid (--experts-on cpu, worker/engine.h experts_on_cpu: routed experts' matmuls on
 *     the cpu table, the rest on cuda-emu) on the MoE presets llama-moe, ds2-tiny-3d, qwen3moe,
 *     glm4moe: logits and statistics against the cpu run within the same bounds (measured
 *     <= 1.2e-6 and 1.5e-6; same entries and counts, so the same routing), and the residency
 *     check through the table state's counters (kern_decl.h ctx_resident) at the end of the run:
 *     no resident weight inside a routed-expert tensor and fewer resident bytes than the model's
 *     non-expert weights. Self-check: the all-device run of the same preset (experts sent to the
 *     device) must fail that check (it holds 24 .. 48 expert slices).
 * Broken variants of the table, run by hand and not kept: y scattered to the wrong rows or x
 * packed from the wrong rows (strides only the absorbed MLA path uses) gives 1.2 .. 1.5 on the
 * absorbed ds2 cases; get_rows with a row count one short: every forward fails (NaN row);
 * sqacc ignoring ldx: statistics 1.75 on the ds2 cases and the bitwise sqacc check fails.
 * Tokens: N_TOK 70: dense matmuls through the GEMM path (two 64-token tiles, the last partial),
 * > 4 key tiles of the attention kernel, > rope_orig_ctx (64) of the ds2 presets; the experts'
 * few tokens each through mmv; the whole test runs in ~5 s in the emulator.
 */
#include "../e2e/engine_util.h"
#include "../logcap.h"
#include "backend_emu.h"
#include "coordinator/kld.h"
#include "core/log.h"
#include "kernels/cuda/emu/cuemu_api.h"
#include "worker/engine_mem.h"
#define IMC_CUDA_FN(name) imc_cuemu_##name
#include "kernels/cuda/kern_decl.h"
#include "kernels/cuda/table_priv.h" // the table's scratch slots
#undef IMC_CUDA_FN
#include "worker/engine_priv.h" // the activations' arena
#include "worker/stats_collect.h"
#include "worker/stats_collect_priv.h" // SCOL_ALIGN

#define N_TOK 70
#define BOUND 2e-5
#define BOUND_STATS 4e-5 // Σx²: twice the relative error of x

struct pcase {
    const char *preset;
    enum imc_attn_path path;
    bool hybrid; // also the hybrid run (--experts-on cpu) and its residency checks
};

static const struct pcase cases[] = {
    {"llama-tiny", IMC_ATTN_AUTO, false},      {"llama-moe-tiny", IMC_ATTN_AUTO, true},
    {"ds2-tiny-3d", IMC_ATTN_ABSORBED, true},  {"ds2-tiny-all", IMC_ATTN_NON_ABSORBED, false},
    {"ds2-tiny-ik", IMC_ATTN_ABSORBED, false}, {"ds2-tiny-ik", IMC_ATTN_NON_ABSORBED, false},
    {"qwen3moe-tiny", IMC_ATTN_AUTO, true},    {"glm4moe-tiny", IMC_ATTN_AUTO, true},
};
#define N_CASES ((int)(sizeof(cases) / sizeof(cases[0])))

// The cuda-emu table with the attention scale 1% off: the comparison must catch it.
static enum imc_status bad_attention(const struct imc_exec *ex, const struct imc_attn_args *a)
{
    struct imc_attn_args b = *a;
    b.scale *= 1.01f;
    return tcuda_backend_emu()->attention(ex, &b);
}

// The cuda-emu table with nll_rows one entry short of the row width.
static enum imc_status bad_nll_rows(const struct imc_exec *ex, struct imc_nll_row *out,
                                    const float *logits, int64_t n_rows, int64_t n_vocab,
                                    const int32_t *targets, const uint16_t *base, int64_t ld_base)
{
    for (int64_t r = 0; r < n_rows; r++) { // rows at their true stride, one entry short
        IMC_TRY(tcuda_backend_emu()->nll_rows(ex, out + r, logits + r * n_vocab, 1, n_vocab - 1,
                                              targets + r, base ? base + r * ld_base : NULL,
                                              ld_base));
    }
    return IMC_OK;
}

// The cuda-emu table with a sqacc that skips each call's last row but counts it.
static void bad_sqacc(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x,
                      int64_t ldx, int64_t n_rows, int64_t n_in)
{
    tcuda_backend_emu()->sqacc(ex, sum2, count, x, ldx, n_rows - 1, n_in);
    *count += 1;
}

// The cuda-emu table's sqacc, counting its calls, the bytes of their sums and the bytes of the
// distinct sums' slots in the collector's blocks (SCOL_ALIGN apart) (test state).
#define MAX_SUMS 512
static struct {
    size_t calls, sum_bytes, slot_bytes;
    const double *seen[MAX_SUMS];
    size_t n_seen;
} g_sqacc;

static void counting_sqacc(const struct imc_exec *ex, double *sum2, int64_t *count, const float *x,
                           int64_t ldx, int64_t n_rows, int64_t n_in)
{
    g_sqacc.calls++;
    g_sqacc.sum_bytes += (size_t)n_in * sizeof(double);
    size_t i = 0;
    while (i < g_sqacc.n_seen && g_sqacc.seen[i] != sum2) {
        i++;
    }
    if (i == g_sqacc.n_seen && i < MAX_SUMS) {
        g_sqacc.seen[g_sqacc.n_seen++] = sum2;
        g_sqacc.slot_bytes +=
            ((size_t)n_in * sizeof(double) + SCOL_ALIGN - 1) / SCOL_ALIGN * SCOL_ALIGN;
    }
    tcuda_backend_emu()->sqacc(ex, sum2, count, x, ldx, n_rows, n_in);
}

// What a run's device table held at the end of the run (its state, before the engine frees it).
struct resid {
    size_t n_exps; // resident weights inside a routed-expert tensor (ffn_{gate,up,down}_exps)
    size_t bytes;  // device bytes of all resident weights
    size_t up, down, n_up, n_down; // what the ops copied (ctx_traffic)
    unsigned long long launches;   // kernel launches of the forward pass (emulator's count)
    unsigned long long blas;       // its products through the emulated cuBLAS
    size_t mem_peak;               // the table's own count of its device memory at its most
    unsigned long long emu_peak;   // the emulator's: its allocations at their most, this run's
};

static void resid_of(const struct imc_model *m, const void *ctx, struct resid *r)
{
    r->mem_peak = tcuda_emu_mem_peak(ctx);
    tcuda_emu_resident(ctx, NULL, NULL, &r->bytes);
    tcuda_emu_traffic(ctx, &r->up, &r->down, &r->n_up, &r->n_down);
    r->n_exps = 0;
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        const struct imc_layer *l = &m->layers[il];
        const struct imc_tensor_info *t[] = {l->ffn_gate_exps, l->ffn_up_exps, l->ffn_down_exps};
        for (int i = 0; i < 3; i++) {
            if (t[i]) {
                const char *lo = t[i]->data;
                r->n_exps += tcuda_emu_resident(ctx, lo, lo + t[i]->nbytes, NULL);
            }
        }
    }
}

// Bytes of the model's weights that are not routed experts.
static uint64_t non_expert_bytes(const struct imc_model *m)
{
    uint64_t b = 0;
    for (int64_t i = 0; i < imc_gguf_n_tensors(m->gguf); i++) {
        b += imc_gguf_tensor(m->gguf, i)->nbytes;
    }
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        const struct imc_layer *l = &m->layers[il];
        const struct imc_tensor_info *t[] = {l->ffn_gate_exps, l->ffn_up_exps, l->ffn_down_exps};
        for (int i = 0; i < 3; i++) {
            b -= t[i] ? t[i]->nbytes : 0;
        }
    }
    return b;
}

// The residency check of --experts-on cpu: no routed-expert weight on the device, and fewer
// resident bytes than the model's weights without the routed experts.
static bool resid_ok(const struct imc_model *m, const struct resid *r)
{
    return r->n_exps == 0 && r->bytes < non_expert_bytes(m);
}

// The run's logits scored through its engine (imc_engine_score: the table's nll_rows) against
// the next tokens and the base rows of struct score_in, as `imc perplexity --kld-base` does.
struct score_in {
    const uint16_t *base; // [N_TOK - 1][imc_kld_row_len(n_vocab)]
    int64_t len;
};
struct score {
    bool ok;
    double ln_ppl, kld; // mean nll and mean KLD over the N_TOK - 1 scored positions
    double nll_base;    // Σ nll_base: the decoded base rows (the same bits on every table)
};

static void score_of(struct imc_engine *e, const float *y, const int32_t *tok,
                     const struct score_in *in, struct score *sc)
{
    struct imc_nll_row rows[N_TOK - 1];
    struct imc_kld_acc a;
    sc->ok = imc_engine_score(e, rows, y, N_TOK - 1, tok + 1, in->base, in->len) == IMC_OK &&
             imc_kld_acc_init(&a, N_TOK - 1) == IMC_OK;
    if (sc->ok) {
        imc_kld_add_scored(&a, rows, N_TOK - 1); // the folding of imc perplexity --kld-base
        sc->ln_ppl = a.sum_nll / (double)a.count;
        sc->kld = a.sum_kld / (double)a.count;
        sc->nll_base = a.sum_nll_base;
        imc_kld_acc_free(&a);
    }
}

// Engine logits on be (NULL: cpu), the routed experts on the cpu table with experts_cpu; with
// im, the statistics of the run (one chunk) folded into im by the imatrix program's collector
// through the engine's hooks; with rs, what be's state held at the end; with sc, the logits
// scored through the engine (score_of).
// The activation arena of a forward pass on the device table: one block, the bound of
// worker/engine_mem.h for N_TOK tokens (at least the arena's 1 MiB minimum), which holds the
// pass's high-water mark; the bound's excess over that mark is printed (routing: the largest
// group of experts is taken at its worst).
static void arena_check(const struct imc_model *m, const struct imc_engine *e,
                        enum imc_attn_path path, bool hooks, bool experts_cpu, int64_t block_bytes)
{
    const struct imc_engine_mem_q q = {.n_tok = N_TOK,
                                       .ep_size = 1,
                                       .path = imc_attn_path_for(m, path),
                                       .block_bytes = block_bytes,
                                       .hooks = hooks,
                                       .experts_on_cpu = experts_cpu};
    const size_t bound = imc_engine_act_bytes(m, &q), want = bound > 1 << 20 ? bound : 1 << 20;
    const struct eng_arena *a = &e->arena;
    const size_t hw = a->hw;
    // with the default block_bytes every expert of these presets falls in one group: the bound
    // is then the mark itself, so forward code that allocates more, or less, fails here
    CHECK(a->blk[0].p && a->blk[0].cap == want && !a->blk[1].p &&
              (block_bytes ? hw <= bound : hw == bound),
          "%s: the activations' arena: first block %zu bytes (want %zu), a second block %s, "
          "high-water %zu bytes, bound %zu",
          imc_attn_path_name(imc_attn_path_for(m, path)), a->blk[0].cap, want,
          a->blk[1].p ? "made" : "not made", hw, bound);
    printf("  activations' arena (%s%s%s%s): high-water %zu bytes, bound %zu (+%.1f%%)\n",
           imc_attn_path_name(imc_attn_path_for(m, path)), hooks ? ", statistics" : "",
           experts_cpu ? ", experts on cpu" : "", block_bytes ? ", block_bytes 1" : "", hw, bound,
           hw ? 100.0 * ((double)bound - (double)hw) / (double)hw : 0.0);
}

// The statistics collector's blocks in the table's memory after a pass (before the engine's
// end releases them), and their slots: within worker/engine_mem.h's bounds for the model's
// matrices (printed beside them).
static void stats_check(const struct imc_model *m, const struct imc_stats_collect *c,
                        enum imc_attn_path path, bool experts_cpu)
{
    const struct imc_engine_mem_q q = {.n_tok = N_TOK,
                                       .ep_size = 1,
                                       .path = imc_attn_path_for(m, path),
                                       .hooks = true,
                                       .experts_on_cpu = experts_cpu};
    size_t slots = 0;
    const size_t bound = imc_engine_stats_bytes(m, &q, true, &slots);
    size_t held = 0, used = 0;
    for (int i = 0; i < c->dev.n_blk; i++) {
        held += c->dev.blk[i].cap;
        used += c->dev.blk[i].used;
    }
    CHECK(held > 0 && held <= bound && used <= slots,
          "%s: the collector holds %zu bytes of the table's memory in %d blocks, bound %zu; its "
          "slots %zu bytes, bound %zu",
          imc_attn_path_name(q.path), held, c->dev.n_blk, bound, used, slots);
    printf("  statistics' blocks (%s%s): %zu bytes in %d, bound %zu; slots %zu bytes, bound %zu\n",
           imc_attn_path_name(q.path), experts_cpu ? ", experts on cpu" : "", held, c->dev.n_blk,
           bound, used, slots);
}

static float *run(const struct imc_model *m, enum imc_attn_path path, const struct imc_backend *be,
                  const int32_t *tok, struct imc_imatrix *im, bool experts_cpu, struct resid *rs,
                  const struct score_in *in, struct score *sc)
{
    struct imc_engine_opts o = imc_engine_opts_default();
    o.n_threads = 1; // the emulator's thread order is per host thread: one thread calls the ops
    o.attn = path;
    o.backend = be;
    o.experts_on_cpu = experts_cpu;
    struct imc_stats_collect *c = NULL;
    struct imc_stats_hooks hk;
    if (im) {
        imc_imatrix_init(im);
        if (imc_stats_collect_init(&c, im) != IMC_OK) {
            return NULL;
        }
        hk = imc_stats_collect_hooks(c);
        o.hooks = &hk;
    }
    struct imc_engine *e = NULL;
    float *y = malloc((size_t)(N_TOK * m->hp.n_vocab) * sizeof(float));
    const unsigned long long base = cuemu_mem_used(), l0 = cuemu_launch_count();
    const unsigned long long b0 = cuemu_cublas_calls();
    cuemu_mem_peak_reset();
    if (!y || imc_engine_init(&e, m, &o) != IMC_OK ||
        imc_engine_forward(e, tok, N_TOK, y) != IMC_OK) {
        free(y);
        y = NULL;
    }
    if (y && rs) {
        resid_of(m, imc_engine_backend_ctx(e), rs);
        rs->emu_peak = cuemu_mem_peak() - base;
        rs->launches = cuemu_launch_count() - l0;
        rs->blas = cuemu_cublas_calls() - b0;
    }
    if (y && sc) {
        score_of(e, y, tok, in, sc);
    }
    if (y && be && be->buf_alloc) {
        arena_check(m, e, path, im != NULL, experts_cpu, 0);
    }
    if (y && c && be && be->buf_alloc) {
        stats_check(m, c, path, experts_cpu);
    }
    imc_engine_free(e);
    if (c && y && imc_stats_collect_end_chunk(c) != IMC_OK) {
        free(y);
        y = NULL;
    }
    imc_stats_collect_free(c);
    return y;
}

// The hybrid table (--experts-on cpu: routed experts on the cpu table, the rest on cuda-emu)
// against the cpu run: the logits within BOUND, the same statistics entries and counts within
// BOUND_STATS, and the residency check: no routed-expert weight resident, fewer bytes than the
// non-expert weights. Self-check: the all-device run (r_dev, experts sent to the device) fails it.
static void hybrid_case(const struct pcase *c, const struct imc_model *m, const int32_t *tok,
                        const float *cpu, const struct imc_imatrix *s_cpu, const struct resid *r_dev)
{
    const int64_t n = N_TOK * m->hp.n_vocab;
    const char *pn = imc_attn_path_name(c->path);
    struct imc_imatrix s_hyb;
    struct resid r = {0};
    float *hyb = run(m, c->path, tcuda_backend_emu(), tok, &s_hyb, true, &r, NULL, NULL);
    CHECK(hyb, "%s %s: hybrid forward failed", c->preset, pn);
    if (hyb) {
        const double err = trel_err(hyb, cpu, n);
        const double es = tstats_cmp(c->preset, &s_hyb, s_cpu);
        printf("%-15s %-13s hybrid (experts on cpu) vs cpu: logits %.3g (bound %.0e), statistics "
               "%.3g (bound %.0e)\n",
               c->preset, pn, err, BOUND, es, BOUND_STATS);
        CHECK(err <= BOUND, "%s %s: hybrid vs cpu %.3g", c->preset, pn, err);
        CHECK(es <= BOUND_STATS, "%s %s: hybrid statistics %.3g", c->preset, pn, es);
        printf("%-15s %-13s resident on the device: hybrid %zu bytes, %zu in expert tensors; "
               "experts on the device %zu bytes, %zu in expert tensors; non-expert weights %llu "
               "bytes\n",
               c->preset, pn, r.bytes, r.n_exps, r_dev->bytes, r_dev->n_exps,
               (unsigned long long)non_expert_bytes(m));
        CHECK(resid_ok(m, &r), "%s %s: the hybrid run left expert weights on the device",
              c->preset, pn);
        CHECK(!resid_ok(m, r_dev), "%s %s: the residency check missed experts on the device",
              c->preset, pn);
    }
    imc_imatrix_free(&s_hyb);
    free(hyb);
}

// Activations stay on the device: the copies of a forward pass without statistics (r, the run's
// traffic) against what the pass must move. imc_engine_forward moves the embedded rows down
// and up into the layers, the layers' output down and up into the head (each N·d floats), the
// token embedding rows up (N rows of tok_embd) and the logits down (N·V floats): F. Per layer
// the rest is small host arrays, bounded by A = N·(8 + 24·k) + 4·(8·w) + 4096 bytes: positions
// (2 RoPE calls, 4 bytes per token each), the routing ids and weights down (8 per slot), the
// index arrays of the expert rows up (at most 4 arrays of 4 bytes per slot), at most 8 host
// vectors of w = max(d, n_head·head_dim) floats (norm weights, biases, the router's bias), and
// 12 bytes of each of at most ~300 finiteness checks; plus one A for the head. A pass that left
// activations on the host (hidden rows per op: the mutation tried, the layers' boundary copy
// removed) moves tens of N·d·4 per layer and fails. Also F itself must be reached (the counters
// count).
static void traffic_check(const struct pcase *c, const struct imc_model *m, const struct resid *r)
{
    const struct imc_hparams *hp = &m->hp;
    uint64_t rb = 0;
    IMC_ASSERT(imc_type_row_bytes((uint32_t)m->tok_embd->type, hp->n_embd, &rb));
    const uint64_t n = N_TOK, d = (uint64_t)hp->n_embd, k = (uint64_t)hp->n_expert_used;
    const uint64_t hw = (uint64_t)(hp->n_head * hp->head_dim), w = d > hw ? d : hw;
    const uint64_t f_up = 2 * n * d * 4 + n * rb, f_down = 2 * n * d * 4 + n * hp->n_vocab * 4;
    const uint64_t a = n * (8 + 24 * k) + 4 * 8 * w + 4096;
    const uint64_t extra = r->up + r->down - f_up - f_down, bound = ((uint64_t)hp->n_layer + 1) * a;
    printf("%-15s %-13s device memory at its most %zu bytes (weights %zu), the emulator's count "
           "the same; %llu kernel launches\n",
           c->preset, imc_attn_path_name(c->path), r->mem_peak, r->bytes, r->launches);
    printf("%-15s %-13s host<->device copies: %zu bytes up in %zu, %zu down in %zu; beyond the "
           "hidden rows, embeddings and logits %llu bytes (bound %llu; one layer's hidden rows "
           "%llu)\n",
           c->preset, imc_attn_path_name(c->path), r->up, r->n_up, r->down, r->n_down,
           (unsigned long long)extra, (unsigned long long)bound, (unsigned long long)(n * d * 4));
    CHECK(r->mem_peak > r->bytes && r->mem_peak == r->emu_peak,
          "%s %s: the table counts %zu bytes of device memory at its most, the emulator %llu "
          "(weights %zu)",
          c->preset, imc_attn_path_name(c->path), r->mem_peak, r->emu_peak, r->bytes);
    CHECK(r->up >= f_up && r->down >= f_down && extra <= bound,
          "%s %s: %zu bytes up, %zu down: activations copied between host and device (floor %llu "
          "/ %llu, bound %llu beyond)",
          c->preset, imc_attn_path_name(c->path), r->up, r->down, (unsigned long long)f_up,
          (unsigned long long)f_down, (unsigned long long)bound);
}

// Base rows for the scoring: llama.cpp's encoding (imc_kld_encode_row) of N_TOK - 1 rows of
// pseudo-random logits (std ~2). Returns the rows (owned by the caller) and fills in.
static uint16_t *base_rows(int64_t n_vocab, struct score_in *in)
{
    in->len = imc_kld_row_len(n_vocab);
    uint16_t *b = malloc((size_t)((N_TOK - 1) * in->len) * sizeof(uint16_t));
    float *l = malloc((size_t)n_vocab * sizeof(float));
    uint64_t s = 99;
    for (int64_t r = 0; b && l && r < N_TOK - 1; r++) {
        for (int64_t i = 0; i < n_vocab; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            l[i] = (float)((double)(s >> 40) * 0x1p-24 * 8.0 - 4.0);
        }
        imc_kld_encode_row(l, n_vocab, b + r * in->len);
    }
    free(l);
    in->base = b;
    return b;
}

// Scores of a run (logits y) against the cpu run's (logits cpu). Bounds, derived: ln PPL is the
// mean over tokens of lse(l) − l_t, and lse moves by at most max|Δl| (1-Lipschitz in the max
// norm), so |Δ ln PPL| <= 2·d with d = max|Δl| over all logits (measured); the KLD of a token is
// Σ p_i (lp_i − l_i + lse(l)), which moves by at most 2·d·P with P = Σ p_i <= 1.01 (the decoded
// base probabilities: quantization error included). Added to each: the scoring's own rounding on
// both sides, with L = max|l| and V = n_vocab (tests/cuda/test_nll.c, u = 2^-53, γ = γ_{V−1}):
// nll 2·(1.01·(γ + 2u) + 3u·(3L + ln V)), KLD 2·P·(1.01·(γ + 2u) + 2u·(L + ln V)) +
// P·(2.02γ + 6u)·(16 + 3L + ln V). want_ok: the run must pass (else it must fail: the self-check
// with a table whose nll_rows drops each row's last entry).
static void score_cmp(const struct pcase *c, const struct imc_model *m, const float *y,
                      const float *cpu, const struct score *a, const struct score *b, bool want_ok)
{
    const int64_t v = m->hp.n_vocab, n = N_TOK * v;
    double d = 0.0, l = 0.0;
    for (int64_t i = 0; i < n; i++) {
        d = check_worst(d, fabs((double)y[i] - cpu[i]));
        l = check_worst(l, fabs((double)cpu[i]));
    }
    l += d;
    const double u = 0x1p-53, g = (double)(v - 1) * u / (1 - (double)(v - 1) * u), p = 1.01;
    const double lv = log((double)v);
    const double b_nll = 2 * d + 2 * (1.01 * (g + 2 * u) + 3 * u * (3 * l + lv));
    const double b_kld = 2 * d * p + 2 * p * (1.01 * (g + 2 * u) + 2 * u * (l + lv)) +
                         p * (2.02 * g + 6 * u) * (16 + 3 * l + lv);
    const double e_nll = fabs(a->ln_ppl - b->ln_ppl), e_kld = fabs(a->kld - b->kld);
    const bool ok =
        a->ok && b->ok && e_nll <= b_nll && e_kld <= b_kld && a->nll_base == b->nll_base;
    printf("%-15s %-13s %sscored through the table: |Δ ln PPL| %.3g (bound %.3g), |Δ mean KLD| "
           "%.3g (bound %.3g)%s\n",
           c->preset, imc_attn_path_name(c->path),
           want_ok ? "" : "self-check, nll_rows one entry short: ", e_nll, b_nll, e_kld, b_kld,
           want_ok ? "" : " (must fail)");
    CHECK(ok == want_ok,
          "%s %s: scores through the table: ln PPL %.17g vs %.17g, KLD %.17g vs "
          "%.17g, base %.17g vs %.17g",
          c->preset, imc_attn_path_name(c->path), a->ln_ppl, b->ln_ppl, a->kld, b->kld, a->nll_base,
          b->nll_base);
}

// An MoE preset with one expert per group (block_bytes 1) against the default groups (one per
// layer here) on cuda-emu: the same logits bit for bit, and the same host<->device copies: the
// gather and scatter orders go up once per layer whatever the groups (before: once per group).
static void groups_case(const struct pcase *c, const struct imc_model *m)
{
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, m->hp.n_vocab, 7);
    const int64_t n = N_TOK * m->hp.n_vocab;
    float *y[2] = {malloc((size_t)n * sizeof(float)), malloc((size_t)n * sizeof(float))};
    size_t up[2] = {0, 0}, down[2] = {0, 0}, n_up[2] = {0, 0}, n_down[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        struct imc_engine_opts o = imc_engine_opts_default();
        o.backend = tcuda_backend_emu();
        o.attn = c->path;
        o.block_bytes = i ? 1 : 0;
        struct imc_engine *e = NULL;
        CHECK(imc_engine_init(&e, m, &o) == IMC_OK &&
                  imc_engine_forward(e, tok, N_TOK, y[i]) == IMC_OK,
              "%s: forward with block_bytes %d", c->preset, i);
        if (e) {
            tcuda_emu_traffic(imc_engine_backend_ctx(e), &up[i], &down[i], &n_up[i], &n_down[i]);
            arena_check(m, e, c->path, false, false, o.block_bytes);
        }
        imc_engine_free(e);
    }
    CHECK(memcmp(y[0], y[1], (size_t)n * sizeof(float)) == 0 && n_up[0] == n_up[1] &&
              n_down[0] == n_down[1] && up[0] == up[1] && down[0] == down[1],
          "%s: one expert per group: %zu + %zu copies of %zu + %zu bytes, default groups %zu + "
          "%zu of %zu + %zu",
          c->preset, n_up[1], n_down[1], up[1], down[1], n_up[0], n_down[0], up[0], down[0]);
    printf("%-15s %-13s one expert per group: the same logits and the same %zu + %zu copies\n",
           c->preset, imc_attn_path_name(c->path), n_up[1], n_down[1]);
    free(y[0]);
    free(y[1]);
}

static void one_case(const struct pcase *c, const struct imc_model *m, bool self_check)
{
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, m->hp.n_vocab, 7);
    const int64_t n = N_TOK * m->hp.n_vocab;
    const char *pn = imc_attn_path_name(c->path);
    struct imc_imatrix s_cpu, s_emu;
    struct resid r_dev = {0}, r_rev = {0};
    struct score_in in;
    uint16_t *base = base_rows(m->hp.n_vocab, &in);
    struct score sc_cpu = {0}, sc_emu = {0};
    float *cpu = run(m, c->path, NULL, tok, &s_cpu, false, NULL, &in, &sc_cpu);
    cuemu_set_order(CUEMU_FORWARD, 0);
    float *fwd = run(m, c->path, tcuda_backend_emu(), tok, &s_emu, false, &r_dev, &in, &sc_emu);
    cuemu_set_order(CUEMU_REVERSE, 0);
    float *rev = run(m, c->path, tcuda_backend_emu(), tok, NULL, false, &r_rev, NULL, NULL);
    // with statistics: the sums stay on the device (each Σx² call is one sqacc in place, its
    // count kept on the host): nothing goes up, and they come home in one download at the end of
    // each engine call that reported (the layers', the head's), every slot once
    struct imc_backend counting = *tcuda_backend_emu();
    counting.sqacc = counting_sqacc;
    struct imc_imatrix s_cnt;
    struct resid r_cnt = {0};
    memset(&g_sqacc, 0, sizeof(g_sqacc));
    float *cnt = run(m, c->path, &counting, tok, &s_cnt, false, &r_cnt, NULL, NULL);
    CHECK(cnt && g_sqacc.calls > 0 && g_sqacc.n_seen < MAX_SUMS && r_cnt.n_up == r_rev.n_up &&
              r_cnt.up == r_rev.up && r_cnt.n_down == r_rev.n_down + 2 &&
              r_cnt.down == r_rev.down + g_sqacc.slot_bytes,
          "%s %s: with statistics %zu + %zu copies of %zu + %zu bytes, without %zu + %zu of %zu + "
          "%zu, %zu Σx² calls of %zu bytes of sums in %zu slots of %zu bytes",
          c->preset, pn, r_cnt.n_up, r_cnt.n_down, r_cnt.up, r_cnt.down, r_rev.n_up, r_rev.n_down,
          r_rev.up, r_rev.down, g_sqacc.calls, g_sqacc.sum_bytes, g_sqacc.n_seen,
          g_sqacc.slot_bytes);
    // the Σx² calls go in few launches (kernels/cuda/table.cu sq_queue: consecutive calls, an
    // MoE layer's experts or MLA's heads, in one sqacc_group): the pass with statistics (r_dev)
    // launches more kernels than the pass without (r_rev), at most one per call, fewer than the
    // calls where a model has experts (a dense model's calls each precede their matmul)
    const unsigned long long sq_launches = r_dev.launches - r_rev.launches;
    CHECK(r_dev.launches > r_rev.launches && sq_launches <= g_sqacc.calls &&
              (m->hp.n_expert == 0 || sq_launches < g_sqacc.calls),
          "%s %s: %zu Σx² calls in %llu launches (%llu with statistics, %llu without)", c->preset,
          pn, g_sqacc.calls, sq_launches, r_dev.launches, r_rev.launches);
    printf("%-15s %-13s with statistics: %zu Σx² calls (%zu bytes of sums) in %llu launches and 0 "
           "copies; 2 downloads of %zu bytes (%zu slots)\n",
           c->preset, pn, g_sqacc.calls, g_sqacc.sum_bytes, sq_launches, g_sqacc.slot_bytes,
           g_sqacc.n_seen);
    imc_imatrix_free(&s_cnt);
    free(cnt);
    cuemu_set_order(CUEMU_FORWARD, 0);
    CHECK(cpu && fwd && rev, "%s %s: engine forward failed", c->preset, pn);
    if (cpu && fwd && rev) {
        const double err = trel_err(fwd, cpu, n);
        printf("%-15s %-13s cuda-emu vs cpu: max|d|/max|logit| %.3g (bound %.0e), %llu products "
               "through cuBLAS\n",
               c->preset, pn, err, BOUND, r_dev.blas);
        CHECK(err <= BOUND, "%s %s: cuda-emu vs cpu %.3g", c->preset, pn, err);
        CHECK(r_dev.blas > 0, "%s %s: no matmul of %d tokens went through cuBLAS", c->preset, pn,
              N_TOK);
        CHECK(memcmp(fwd, rev, (size_t)n * sizeof(float)) == 0,
              "%s %s: reverse thread order changed the logits (max rel %.3g)", c->preset, pn,
              trel_err(rev, fwd, n));
        const double es = tstats_cmp(c->preset, &s_emu, &s_cpu);
        printf("%-15s %-13s statistics (%lld entries, Σx² per column): max rel %.3g (bound %.0e)\n",
               c->preset, pn, (long long)s_cpu.n_entries, es, BOUND_STATS);
        CHECK(es <= BOUND_STATS, "%s %s: statistics %.3g", c->preset, pn, es);
        score_cmp(c, m, fwd, cpu, &sc_emu, &sc_cpu, true);
        traffic_check(c, m, &r_rev);
        rev[n / 2] += 1.0f; // self-check: the comparison sees a moved logit
        CHECK(trel_err(rev, cpu, n) > BOUND, "%s %s: checker missed a perturbation", c->preset, pn);
    }
    if (c->hybrid && cpu && fwd) {
        hybrid_case(c, m, tok, cpu, &s_cpu, &r_dev);
    }
    if (self_check && cpu) {
        struct imc_backend bad = *tcuda_backend_emu();
        bad.attention = bad_attention;
        float *b = run(m, c->path, &bad, tok, NULL, false, NULL, NULL, NULL);
        const double err = b ? trel_err(b, cpu, n) : INFINITY;
        printf("%-15s %-13s self-check, attention scale 1%% off: %.3g (must exceed the bound)\n",
               c->preset, pn, err);
        CHECK(b && err > BOUND, "%s: a 1%% attention scale error went unnoticed", c->preset);
        free(b);
        bad = *tcuda_backend_emu();
        bad.sqacc = bad_sqacc;
        struct imc_imatrix s_bad;
        b = run(m, c->path, &bad, tok, &s_bad, false, NULL, NULL, NULL);
        const double es = b ? tstats_cmp(c->preset, &s_bad, &s_cpu) : INFINITY;
        printf("%-15s %-13s self-check, sqacc skipping a row: statistics %.3g (must exceed the "
               "bound)\n",
               c->preset, pn, es);
        CHECK(b && fwd && memcmp(b, fwd, (size_t)n * sizeof(float)) == 0,
              "%s: the sqacc change moved the logits", c->preset);
        CHECK(es > BOUND_STATS, "%s: a sqacc skipping rows went unnoticed", c->preset);
        free(b);
        imc_imatrix_free(&s_bad);
        bad = *tcuda_backend_emu();
        bad.nll_rows = bad_nll_rows;
        struct score sc_bad = {0};
        b = run(m, c->path, &bad, tok, NULL, false, NULL, &in, &sc_bad);
        CHECK(b && fwd && memcmp(b, fwd, (size_t)n * sizeof(float)) == 0,
              "%s: the nll_rows change moved the logits", c->preset);
        if (b && fwd && cpu) {
            score_cmp(c, m, b, cpu, &sc_bad, &sc_cpu, false);
        }
        free(b);
    }
    free(base);
    imc_imatrix_free(&s_cpu);
    imc_imatrix_free(&s_emu);
    free(cpu);
    free(fwd);
    free(rev);
}

// The table's sqacc on strided rows against imc_ref_sqacc: bitwise (same double sums in order).
static void sqacc_case(void)
{
    enum { R = 13, N = 70, LD = 77 };
    float x[R * LD];
    for (int i = 0; i < R * LD; i++) {
        x[i] = (float)((i * 37 % 101) - 50) / 17.0f;
    }
    double s_emu[N], s_ref[N];
    for (int i = 0; i < N; i++) {
        s_emu[i] = s_ref[i] = 0.25 * i;
    }
    int64_t c_emu = 3, c_ref = 3;
    const struct imc_backend *b = tcuda_backend_emu();
    struct imc_exec *ex = NULL;
    void *ctx = NULL;
    CHECK(imc_exec_init(&ex, 1) == IMC_OK && b->ctx_new(&ctx) == IMC_OK, "sqacc: context");
    if (!ctx) {
        imc_exec_free(ex);
        return;
    }
    imc_exec_set_backend_ctx(ex, ctx);
    b->sqacc(ex, s_emu, &c_emu, x, LD, R, N);
    imc_exec_set_backend_ctx(ex, NULL);
    b->ctx_free(ctx);
    imc_exec_free(ex);
    imc_ref_sqacc(s_ref, &c_ref, x, LD, R, N);
    CHECK(memcmp(s_emu, s_ref, sizeof(s_emu)) == 0 && c_emu == c_ref,
          "sqacc: cuda-emu table differs from imc_ref_sqacc");
}

// The message of a forward of N_TOK tokens of the model at path on table be (NULL: cpu), which
// must stop with IMC_ERR_NUMERIC, into msg.
static void numeric_run(const char *path, const struct imc_backend *be, char *msg, size_t size)
{
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    msg[0] = 0;
    if (imc_gguf_open(&g, path) != IMC_OK || imc_model_load(&m, g) != IMC_OK) {
        CHECK(0, "reload %s", path);
        imc_gguf_free(g);
        return;
    }
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, m->hp.n_vocab, 7);
    struct imc_engine_opts o = imc_engine_opts_default();
    o.backend = be;
    struct imc_engine *e = NULL;
    float *y = malloc((size_t)(N_TOK * m->hp.n_vocab) * sizeof(float));
    struct logcap cap;
    logcap_start(&cap);
    const enum imc_status st = imc_engine_init(&e, m, &o) == IMC_OK && y
                                   ? imc_engine_forward(e, tok, N_TOK, y)
                                   : IMC_ERR_NOMEM;
    logcap_stop();
    CHECK(st == IMC_ERR_NUMERIC, "%s on %s: %s instead of a numeric error", path,
          be ? be->name : "cpu", imc_status_str(st));
    snprintf(msg, size, "%s", cap.text);
    imc_engine_free(e);
    free(y);
    imc_model_free(m);
    imc_gguf_free(g);
}

// Non-finite outputs on cuda-emu, whose checks are deferred (posted, answered once per layer):
// the message must be the cpu table's (the first check that fails in program order, with its
// layer, tensor, slice, row, column and value). NaN weights (the files in dir are rewritten):
// llama-tiny attn_q (a plain output), ds2-tiny-3d attn_k_b head 2 (a block of heads),
// qwen3moe-tiny ffn_up_exps row 5 of the upper half of the experts (a group of expert slices,
// the slice not the group's first).
static void numeric_cases(const char *dir)
{
    struct {
        const char *preset, *tensor;
        int64_t elem, step, count; // NaN at elem + i·step, i < count
    } cs[] = {{"llama-tiny", "blk.1.attn_q.weight", 5, 0, 1},
              {"ds2-tiny-3d", "blk.1.attn_k_b.weight", (2 * 32 + 5) * 16 + 3, 0, 1},
              {"qwen3moe-tiny", "blk.1.ffn_up_exps.weight", 0, 0, 0}};
    for (size_t c = 0; c < sizeof(cs) / sizeof(cs[0]); c++) {
        char path[600], on_cpu[sizeof(((struct logcap *)0)->text)], on_emu[sizeof(on_cpu)];
        snprintf(path, sizeof(path), "%s/%s.gguf", dir, cs[c].preset);
        if (cs[c].count == 0) { // the upper half of the experts, row 5, column 3
            struct imc_gguf *g = NULL;
            CHECK(imc_gguf_open(&g, path) == IMC_OK, "open %s", path);
            const struct imc_tensor_info *t = g ? imc_gguf_find_tensor(g, cs[c].tensor) : NULL;
            if (t) {
                cs[c].step = t->ne[0] * t->ne[1];
                cs[c].count = t->ne[2] / 2;
                cs[c].elem = cs[c].count * cs[c].step + 5 * t->ne[0] + 3;
            }
            imc_gguf_free(g);
        }
        for (int64_t i = 0; i < cs[c].count; i++) {
            CHECK(tpoison(path, cs[c].tensor, cs[c].elem + i * cs[c].step) == 0, "poison %s", path);
        }
        numeric_run(path, NULL, on_cpu, sizeof(on_cpu));
        numeric_run(path, tcuda_backend_emu(), on_emu, sizeof(on_emu));
        printf("%-15s NaN in %s: cpu: %s", cs[c].preset, cs[c].tensor, on_cpu);
        CHECK(on_cpu[0] && strcmp(on_cpu, on_emu) == 0, "%s: cuda-emu logged '%s', cpu '%s'",
              cs[c].preset, on_emu, on_cpu);
    }
}

// A run of the commands' kind on the device table (embed, layers, the head keeping its logits,
// scored where they are kept against base rows), in f32 or q8 mode: each of the table's scratch
// slots within its bound (worker/engine_mem.h imc_engine_scratch_bytes; C, D, E unused). The
// slots and bounds are printed; *tile_hit counts the runs whose weight tile equals its bound.
// stage: a later pipeline stage instead (layers 1 .. and the head, no embedding) on host hidden
// rows (stages exchanging them through MPI).
static void scratch_run(const char *name, const struct imc_model *m, enum imc_attn_path path,
                        bool q8, int mmq_tok, bool experts_cpu, bool stage, int *tile_hit)
{
    char mmq[16];
    snprintf(mmq, sizeof(mmq), "%d", mmq_tok);
    setenv("IMC_CUDA_MMQ_TOKENS", mmq, 1);
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, m->hp.n_vocab, 7);
    struct score_in in;
    uint16_t *base = base_rows(m->hp.n_vocab, &in);
    struct imc_engine_opts o = imc_engine_opts_default();
    o.n_threads = 1;
    o.attn = path;
    o.backend = tcuda_backend_emu();
    o.matmul = q8 ? IMC_MATMUL_Q8 : IMC_MATMUL_F32;
    o.experts_on_cpu = experts_cpu;
    o.layer_begin = stage ? 1 : 0;
    o.layer_end = stage ? m->hp.n_layer : 0;
    struct imc_engine *e = NULL;
    struct imc_nll_row rows[N_TOK - 1];
    const int64_t nh = N_TOK * m->hp.n_embd;
    float *hh = stage ? malloc((size_t)nh * sizeof(float)) : NULL; // host rows of a stage
    for (int64_t i = 0; hh && i < nh; i++) {
        hh[i] = (float)((i * 2654435761u) % 1024) / 1024.0f - 0.5f;
    }
    bool ok = base && (!stage || hh) && imc_engine_init(&e, m, &o) == IMC_OK;
    float *h = !ok ? NULL : stage ? hh : imc_engine_hidden_alloc(e, nh);
    ok = h && (stage || imc_engine_embed(e, tok, N_TOK, h) == IMC_OK) &&
         imc_engine_layers(e, h, 1, N_TOK, 0) == IMC_OK &&
         imc_engine_head(e, h, 0, N_TOK, NULL) == IMC_OK &&
         imc_engine_score_head(e, rows, 0, N_TOK - 1, tok + 1, in.base, in.len) == IMC_OK;
    CHECK(ok, "%s %s%s: the commands' run", name, q8 ? "q8" : "f32", stage ? " (a stage)" : "");
    if (ok) {
        const struct imc_cuda_ctx *c = (const struct imc_cuda_ctx *)imc_engine_backend_ctx(e);
        const struct imc_engine_mem_q q = {.n_tok = N_TOK,
                                           .layer_begin = o.layer_begin,
                                           .layer_end = o.layer_end,
                                           .ep_size = 1,
                                           .path = imc_attn_path_for(m, path),
                                           .experts_on_cpu = experts_cpu};
        const struct imc_engine_scratch_q sq = {.q8 = q8,
                                                .embed = !stage,
                                                .score_rows = N_TOK - 1,
                                                .base_len = in.len,
                                                .mmv_tok = IMC_CUDA_MMV_TOKENS,
                                                .mmq_tok = mmq_tok,
                                                .host_hidden = stage};
        struct imc_engine_scratch p;
        const size_t bound = imc_engine_scratch_bytes(m, &q, &sq, &p);
        const size_t *d = c->dev_cap;
        const size_t used = d[CT_W] + d[CT_X] + d[CT_Y] + d[CT_A] + d[CT_B];
        CHECK(d[CT_W] <= p.tile && d[CT_X] <= p.x && d[CT_Y] <= p.y && d[CT_A] <= p.a &&
                  d[CT_B] <= p.b && d[CT_C] == 0 && d[CT_D] == 0 && d[CT_E] == 0 && used == bound,
              "%s %s mmq %d%s: scratch slots W %zu X %zu Y %zu A %zu B %zu (C %zu D %zu E %zu) "
              "within their bounds %zu %zu %zu %zu %zu, and %zu in all the bound %zu",
              name, q8 ? "q8" : "f32", mmq_tok, stage ? " (a stage)" : "", d[CT_W], d[CT_X],
              d[CT_Y], d[CT_A], d[CT_B], d[CT_C], d[CT_D], d[CT_E], p.tile, p.x, p.y, p.a, p.b,
              used, bound);
        printf("%-18s %-3s mmq %-3d %-5s op scratch %zu bytes (tile %zu, x %zu, y %zu, a %zu, b "
               "%zu), bound %zu (%zu %zu %zu %zu %zu)\n",
               name, q8 ? "q8" : "f32", mmq_tok, stage ? "stage" : "", used, d[CT_W], d[CT_X],
               d[CT_Y], d[CT_A], d[CT_B], bound, p.tile, p.x, p.y, p.a, p.b);
        *tile_hit += p.tile > 0 && d[CT_W] == p.tile;
    }
    imc_engine_free(e);
    free(hh);
    free(base);
    unsetenv("IMC_CUDA_MMQ_TOKENS");
}

// The engine's logits of tok on m (path) on the cuda-emu table under --matmul q8 with the
// environment's IMC_CUDA_MMQ_TOKENS (mmq: NULL unset), and the launches that took; NULL on
// failure.
static float *run_q8(const struct imc_model *m, enum imc_attn_path path, const char *mmq,
                     const int32_t *tok, unsigned long long *launches)
{
    if (mmq) {
        setenv("IMC_CUDA_MMQ_TOKENS", mmq, 1);
    }
    struct imc_engine_opts o = imc_engine_opts_default();
    o.n_threads = 1;
    o.attn = path;
    o.backend = tcuda_backend_emu();
    o.matmul = IMC_MATMUL_Q8;
    struct imc_engine *e = NULL;
    float *y = malloc((size_t)(N_TOK * m->hp.n_vocab) * sizeof(float));
    const unsigned long long l0 = cuemu_launch_count();
    if (!y || imc_engine_init(&e, m, &o) != IMC_OK ||
        imc_engine_forward(e, tok, N_TOK, y) != IMC_OK) {
        free(y);
        y = NULL;
    }
    *launches = cuemu_launch_count() - l0;
    imc_engine_free(e);
    unsetenv("IMC_CUDA_MMQ_TOKENS");
    return y;
}

// mmq in whole forward passes: q8_0 weights (the presets' shapes at wtype q8_0) under --matmul q8,
// where the dense matmuls of 70 tokens and the experts past the mmv line take mmq (one launch
// per matmul, one per group of experts), against the same pass with IMC_CUDA_MMQ_TOKENS=0 (each
// of those dequantizes to bf16 + GEMM) on the tiled GEMM (IMC_CUEMU_NO_CUBLAS=1): bitwise equal
// (mmq's arithmetic in the emulator is the tiled bf16 GEMM's: tests/cuda/test_mmq), in fewer
// launches; and that pass on the emulated cuBLAS in as many launches (a cuBLAS product counts as
// one), its distance printed, no bound: its own order of sums moves a product by ~1e-7, and each
// matmul rounds its activations to bf16 (2^-8 apart), so such a move flips some roundings and
// the logits move by ~1e-3 of the largest (0.0025 .. 0.0047 here), as bf16 against f32 does
// (~1e-2, below). Each GEMM's own bound is checked by cuda.table and cuda.gemm. The cpu engine
// on the same file (--matmul f32) is printed beside it (bf16 roundings: no bound of this test's).
static void mmq_cases(const char *dir)
{
    static const struct pcase qc[] = {{"qwen3moe-tiny", IMC_ATTN_AUTO, false},
                                      {"ds2-tiny-3d", IMC_ATTN_ABSORBED, false},
                                      {"glm4moe-tiny", IMC_ATTN_AUTO, false}};
    int tiles = 0; // f32-mode runs whose weight tile is its bound
    for (size_t i = 0; i < sizeof(qc) / sizeof(qc[0]); i++) {
        struct tmodel t;
        memset(&t, 0, sizeof(t));
        struct imc_synth_cfg cfg;
        snprintf(t.path, sizeof(t.path), "%s/%s-q8_0.gguf", dir, qc[i].preset);
        bool ok = imc_synth_preset(&cfg, qc[i].preset) == IMC_OK;
        cfg.wtype = IMC_TYPE_Q8_0;
        ok = ok && imc_synth_write(&cfg, t.path) == IMC_OK &&
             imc_gguf_open(&t.g, t.path) == IMC_OK && imc_model_load(&t.m, t.g) == IMC_OK;
        CHECK(ok, "%s at q8_0", qc[i].preset);
        if (!ok) {
            tmodel_close(&t);
            remove(t.path);
            continue;
        }
        int32_t tok[N_TOK];
        ttokens(tok, N_TOK, t.m->hp.n_vocab, 7);
        const int64_t n = N_TOK * t.m->hp.n_vocab;
        unsigned long long l_mmq = 0, l_batch = 0, l_blas = 0;
        setenv("IMC_CUEMU_NO_CUBLAS", "1", 1); // the tiled GEMM: mmq's arithmetic
        float *y = run_q8(t.m, qc[i].path, NULL, tok, &l_mmq);
        float *yb = run_q8(t.m, qc[i].path, "0", tok, &l_batch);
        unsetenv("IMC_CUEMU_NO_CUBLAS");
        const unsigned long long b0 = cuemu_cublas_calls();
        float *yc = run_q8(t.m, qc[i].path, "0", tok, &l_blas); // the bf16 GEMM of cuBLAS
        const unsigned long long blas = cuemu_cublas_calls() - b0;
        float *cpu = run(t.m, qc[i].path, NULL, tok, NULL, false, NULL, NULL, NULL);
        CHECK(y && yb && yc && cpu, "%s q8_0: forward passes", qc[i].preset);
        if (y && yb && yc && cpu) {
            CHECK(memcmp(y, yb, (size_t)n * sizeof(float)) == 0 && l_mmq < l_batch,
                  "%s q8_0 --matmul q8: mmq's logits bitwise those of dequantize + the tiled GEMM "
                  "(max rel %.3g) in fewer launches (%llu, %llu)",
                  qc[i].preset, trel_err(y, yb, n), l_mmq, l_batch);
            const double eb = trel_err(yc, yb, n);
            CHECK(l_blas == l_batch && blas > 0,
                  "%s q8_0 --matmul q8: dequantize + cuBLAS in %llu launches (the tiled GEMM's "
                  "%llu), %llu of them cuBLAS's",
                  qc[i].preset, l_blas, l_batch, blas);
            printf("%-15s q8_0, --matmul q8: mmq in %llu launches, dequantize + GEMM in %llu, "
                   "max rel between them %.3g (cuBLAS's GEMM %.3g); against the cpu engine "
                   "(--matmul f32) max|d|/max|logit| %.3g\n",
                   qc[i].preset, l_mmq, l_batch, trel_err(y, yb, n), eb, trel_err(y, cpu, n));
        }
        free(y);
        free(yb);
        free(yc);
        free(cpu);
        char name[64];
        snprintf(name, sizeof(name), "%s-q8_0", qc[i].preset);
        scratch_run(name, t.m, qc[i].path, false, IMC_CUDA_MMQ_TOKENS, false, false, &tiles);
        scratch_run(name, t.m, qc[i].path, true, IMC_CUDA_MMQ_TOKENS, false, false, &tiles);
        scratch_run(name, t.m, qc[i].path, true, IMC_CUDA_MMQ_TOKENS, false, true, &tiles);
        scratch_run(name, t.m, qc[i].path, true, 16, false, false,
                    &tiles); // bf16 tiles, activations
        tmodel_close(&t);
        remove(t.path);
    }
    CHECK(tiles >= 1, "the weight tile's bound met in %d run(s)", tiles);
}

int main(void)
{
    imc_log_set_level(IMC_LOG_WARN); // the collector's one-time 2D MLA note, once per ik run
    char dir[256];
    tmkdir(dir, sizeof(dir), "engine_emu");
    const char *made[N_CASES];
    int n_made = 0;
    for (int i = 0; i < N_CASES; i++) {
        struct tmodel t;
        if (tmodel_open(&t, dir, cases[i].preset) != 0) {
            CHECK(0, "preset %s", cases[i].preset);
            continue;
        }
        if (n_made == 0 || strcmp(made[n_made - 1], cases[i].preset) != 0) {
            made[n_made++] = cases[i].preset;
        }
        one_case(&cases[i], t.m, i == 0 || i == 2);
        int tiles = 0; // f32 weights: no tile
        for (int stage = 0; stage < 2; stage++) { // the first stage, and a later one on host rows
            scratch_run(cases[i].preset, t.m, cases[i].path, false, IMC_CUDA_MMQ_TOKENS, false,
                        stage, &tiles);
        }
        if (cases[i].hybrid) { // the routed experts on the cpu table
            scratch_run(cases[i].preset, t.m, cases[i].path, false, IMC_CUDA_MMQ_TOKENS, true,
                        false, &tiles);
        }
        if (cases[i].hybrid) {
            groups_case(&cases[i], t.m);
        }
        tmodel_close(&t);
    }
    sqacc_case();
    mmq_cases(dir);
    numeric_cases(dir);
    trmdir(dir, made, n_made);
    return check_summary();
}
