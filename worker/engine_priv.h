/*
 * worker/engine_priv: the engine's internals shared by engine.c, forward_llama.c,
 * forward_deepseek2.c and moe.c (not part of the worker API; see worker/engine.h).
 *
 * Scratch: a bump arena. eng_mark / eng_release bracket a step (a layer, a head). Its first block
 * is a reservation of address space as large as the machine's memory, whose pages the kernel
 * provides as they are first touched, so the pages a pass touches are its high-water mark; where
 * that reservation is refused (or outgrown) blocks of doubling size follow. Blocks are kept
 * between calls, so after the first forward no further allocation happens for the same or smaller
 * shapes.
 *
 * Two kinds of scratch: activations (eng_f32), which only the op table touches, and host arrays
 * (eng_host: routing ids, dispatch orders, counts, rows for MPI), which the engine's own code
 * reads and writes. On a table with its own memory (backend.h buf_alloc: the CUDA table) the
 * activations' arena takes its blocks from the table (doubling, no reservation) and the host
 * arrays have an arena of their own; on host tables both are one arena.
 */
#ifndef IMC_WORKER_ENGINE_PRIV_H
#define IMC_WORKER_ENGINE_PRIV_H

#include "core/clock.h"
#include "kernels/backend.h"
#include "mpi/comm.h"
#include "worker/engine.h"

#define IMC_ENG_MAX_BLOCKS 32
#define IMC_ENG_MAX_SHARDS 256 // expert shards per stage
#define IMC_ENG_MAX_HIDDEN 4   // imc_engine_hidden_alloc buffers per engine

struct eng_block {
    char *p;
    size_t cap;
    bool mapped; // p is a reservation (munmap), else aligned_alloc (free)
};

struct eng_arena {
    struct eng_block blk[IMC_ENG_MAX_BLOCKS];
    int cur;     // block being filled
    size_t used; // bytes used in blk[cur]
    size_t hw;   // high-water mark: the blocks before cur (whole) plus used, at its most
    const struct imc_backend *be; // blocks from be->buf_alloc(ctx, ..), or NULL: host memory
    void *ctx;
};

// Frees the arena's blocks.
void eng_arena_free(struct eng_arena *a);
// On a table with its own memory, before the arena's first block exists: makes it the bound of
// worker/engine_mem.h for calls of n tokens (one allocation that a pass of up to n tokens never
// outgrows, instead of blocks of doubling size). Nothing otherwise; false when out of memory.
bool eng_arena_first(struct imc_engine *e, int64_t n);
// That bound for e's calls of n tokens (worker/engine_mem.h with e's options).
size_t eng_act_bound(const struct imc_engine *e, int64_t n);

struct eng_mark {
    int cur, hcur;
    size_t used, hused;
};

// How the expert shards move routed rows (worker/exchange.c): decided at the first exchange.
enum eng_xchg_mode { XCHG_UNDECIDED = 0, XCHG_HOST, XCHG_PEER };

struct imc_xfer;
struct eng_xchg {
    enum eng_xchg_mode mode;
    void *peer;                // PEER: the table's exchange (be->peer_new), owned
    struct imc_peer_boot boot; // what peer borrows: the expert group's callbacks
    const struct imc_comm *c;  // the group: g of c
    enum imc_comm_group g;
    struct imc_xfer **pending; // the wire's transfers in flight (the emulator's NCCL), owned
    int n_pending, cap_pending;
};

// f32 copies of a layer's vectors (NULL when the tensor is absent).
struct eng_layer {
    float *attn_norm, *q_a_norm, *kv_a_norm, *ffn_norm, *exp_probs_b;
    float *q_norm, *k_norm; // qwen3, glm4moe: per-head RMS norm weights of q and k
    float *bq, *bk, *bv;    // glm4moe: q/k/v biases
};

// What a deferred check (backend.h check_post) was of, for its message after the poll.
struct eng_check_note {
    int64_t il; // layer, or -1
    int64_t n;  // elements per row of the checked array (index -> row, column)
    char what[160];
};

struct imc_engine {
    const struct imc_model *m;
    struct imc_engine_opts opts; // resolved: layer/expert ranges filled in
    const struct imc_backend *be;
    void *be_ctx;                     // owned: be's state (be->ctx_new), attached to ex, or NULL
    const struct imc_backend *be_exp; // the routed experts' matmul_group: be, or the cpu table
                                      // (opts.experts_on_cpu; stateless, ignores be_ctx)
    struct imc_exec *ex;
    enum imc_attn_path path; // deepseek2: ABSORBED or NON_ABSORBED
    struct imc_rope rope;    // RoPE/YaRN parameters as llama.cpp derives them
    float kq_scale;          // attention score scale
    struct eng_layer *lv;    // [n_layer]
    float *output_norm;      // [n_embd]
    // What the ops read: lv and output_norm themselves, or on a table with its own memory
    // their copies in vec_buf (a buffer of the table, owned).
    struct eng_layer *lvo;
    float *output_norm_o;
    void *vec_buf;
    struct eng_arena arena;  // activations (the table's memory where it has its own)
    struct eng_arena harena; // host arrays where the table has its own memory (else unused)
    bool dev;                // be has its own memory: activations never touched by the host
    // Deferred checks (be->check_post: the device answers at the poll, once per layer, not per
    // check): the notes of the checks posted since the last poll, by id.
    struct eng_check_note *chk;
    int64_t n_chk, chk_cap;
    int32_t *pos; // [pos_cap] positions of the current call
    int32_t *pos_o; // what the ops read: pos, or its copy in the table's memory (owned there)
    int32_t *tok; // [pos_cap] batch token index of each row (the hooks' tok)
    int64_t pos_cap, pos_o_cap;
    int64_t pos_o_n, pos_o_ctx; // a table's pos_o holds the first pos_o_n positions for pos_o_ctx
    int64_t n_seq, n_ctx;             // shape of the current call
    int64_t expert_begin, expert_end; // routed experts run here
    int ep_rank, ep_size;             // this shard and the shards of the stage (1 without ep_comm)
    int32_t *expert_owner;            // [n_expert] shard owning each expert
    struct eng_xchg xchg;             // how the shards move routed rows (worker/exchange.c)
    struct eng_xchg pipe;             // how the stages move hidden rows (imc_engine_pipe_open)
    float *hid_buf[IMC_ENG_MAX_HIDDEN]; // imc_engine_hidden_alloc's buffers, owned
    int n_hid_buf;
    // The last imc_engine_head's logits (imc_engine_score_head, imc_engine_head_rows): n_kept
    // rows of n_vocab at kept, the engine's buffer kept_own (kept_cap floats; the table's memory
    // on a table with its own, else host) or, on a host table given a logits array, that array
    // (borrowed). n_kept 0: none (every embed and layers call forgets them).
    float *kept, *kept_own;
    int64_t n_kept, kept_cap;
    double prof[IMC_PROF_COUNT];      // seconds per kind of operation (engine.h imc_engine_profile)
    double prof_total;                // seconds inside the forward calls (embed, layers, head)
};

// Runs the statement `call` and adds its wall time to e->prof[kind].
#define ENG_TIMED(e, kind, call)                                                                   \
    do {                                                                                           \
        const double eng_t0_ = imc_clock_now();                                                    \
        call;                                                                                      \
        (e)->prof[kind] += imc_clock_now() - eng_t0_;                                              \
    } while (0)

// ---- scratch
// -------------------------------------------------------------------------------------

struct eng_mark eng_mark(const struct imc_engine *e);
void eng_release(struct imc_engine *e, struct eng_mark m);
// n floats of activations (64-byte aligned, uninitialized; the op table's memory: only its ops
// touch them) or NULL (logged).
float *eng_f32(struct imc_engine *e, int64_t n);
// Host scratch of n 4-byte elements (64-byte aligned, uninitialized; zero-filled by
// eng_host_zero) or NULL (logged): what the engine's code reads and writes itself.
void *eng_host(struct imc_engine *e, int64_t n);
void *eng_host_zero(struct imc_engine *e, int64_t n);

// The hooks' on_sync (worker/stats.h): what the statistics keep in the table's memory comes home
// (release: and is freed, before the table's state goes). engine.c.
enum imc_status eng_stats_sync(struct imc_engine *e, bool release);
// The kept head logits (engine_head.c): forgotten (a new forward call), freed (imc_engine_free,
// before the table's state).
void eng_head_forget(struct imc_engine *e);
void eng_head_free(struct imc_engine *e);

// ---- steps shared by the architectures (engine.c) -----------------------------------------------

// y = W x for the 2D weight w (or, with slice >= 0, the slice-th [n_out, n_in] matrix of a 3D
// weight or a row block of a 2D one: rows slice*n_out .. of ne[0] = n_in). Reports x to the
// hooks (layer il, slice, rows = the call's tokens e->tok) and checks y for non-finite values
// (IMC_ERR_NUMERIC naming il and w).
enum imc_status eng_matmul(struct imc_engine *e, int64_t il, const struct imc_tensor_info *w,
                           int64_t slice, int64_t n_out, float *y, int64_t ldy, const float *x,
                           int64_t ldx, int64_t n_tok);
// The same for rows that are the tokens tok[0 .. n_tok) (gathered expert rows).
enum imc_status eng_matmul_rows(struct imc_engine *e, int64_t il, const struct imc_tensor_info *w,
                                int64_t slice, int64_t n_out, float *y, int64_t ldy, const float *x,
                                int64_t ldx, int64_t n_tok, const int32_t *tok);
// y = W_x x for the slices x of a 3D weight w that the engine owns, as one backend call (their
// tiles run together: an MoE layer's experts of few tokens each). Slice slice0 + i takes the rows
// [first[i] - first[0], first[i + 1] - first[0]) of x, y and tok (first: [n + 1]); tok are the
// rows' tokens. Hooks and checks as eng_matmul_rows, slice by slice in ascending order.
enum imc_status eng_matmul_slices(struct imc_engine *e, int64_t il, const struct imc_tensor_info *w,
                                  int64_t slice0, int64_t n_out, float *y, int64_t ldy,
                                  const float *x, int64_t ldx, const int32_t *first, int64_t n,
                                  const int32_t *tok);
// y + i·y_head = W_{h0+i} · (x + i·x_head) for i < nh: slices h0 .. h0+nh of w (n_out rows
// each; row strides ldy, ldx), as one backend call (the heads' tiles run together). Hooks per
// head in ascending order, as eng_matmul; one non-finite check over the block's columns
// [0, (nh-1)·y_head + n_out) of y (what lies between the heads' outputs must be finite).
enum imc_status eng_matmul_heads(struct imc_engine *e, int64_t il, const struct imc_tensor_info *w,
                                 int64_t h0, int64_t nh, int64_t n_out, float *y, int64_t ldy,
                                 int64_t y_head, const float *x, int64_t ldx, int64_t x_head,
                                 int64_t n_tok);
// x += y for n_rows rows of n (the residual adds), by the op table.
enum imc_status eng_add(struct imc_engine *e, float *x, const float *y, int64_t n_rows, int64_t n);
// The op table's copy (kernels.h imc_copy_args: rows between strided arrays); eng_copy_rows:
// n_tok rows of n floats, one head (dst rows at stride ldd, src rows at lds).
enum imc_status eng_copy(struct imc_engine *e, const struct imc_copy_args *a);
enum imc_status eng_copy_rows(struct imc_engine *e, float *dst, int64_t ldd, const float *src,
                              int64_t lds, int64_t n_tok, int64_t n);
// Reports x [n_rows][n_in] (row stride ldx), the rows of tokens tok, to the hooks as the input
// of w (gathering rows when strided). No-op without hooks or w.
enum imc_status eng_report(struct imc_engine *e, int64_t il, const struct imc_tensor_info *w,
                           int64_t slice, const float *x, int64_t ldx, int64_t n_rows, int64_t n_in,
                           const int32_t *tok);
// IMC_ERR_NUMERIC (logged: layer il, what) if x has a non-finite value (the op table's
// find_nonfinite: x may be the table's memory). On a table with deferred checks (check_post)
// the check is posted and answered by the next eng_check_poll, which logs the first failed
// check in program order: the message the immediate checks give.
enum imc_status eng_check(struct imc_engine *e, int64_t il, const char *what, const float *x,
                          int64_t ld, int64_t n_rows, int64_t n);
// The answer of the checks posted since the last poll (IMC_ERR_NUMERIC, logged, for the first
// that failed); IMC_OK at once on tables that check immediately.
enum imc_status eng_check_poll(struct imc_engine *e);
// Causal attention for every sequence of the call: a describes the first sequence (n_tok =
// n_ctx); the pointers advance by n_ctx rows per sequence.
enum imc_status eng_attention(struct imc_engine *e, const struct imc_attn_args *a);

// ---- the expert shards' exchange of routed rows (exchange.c) -----------------------------------

// *peer = whether the rows of the exchanges stay in the table's memory (the table's peer
// exchange) or travel through host memory (MPI). Collective over the expert group the first time
// (the shards agree); then the same answer without communication.
enum imc_status eng_xchg_peer(struct imc_engine *e, bool *peer);
// All-to-all of rows of n_embd floats inside the expert group: send_rows[j] rows from send to
// shard j, recv_rows[j] rows from shard j into recv (packed in shard order): in the table's
// memory after eng_xchg_peer said so, else host memory.
enum imc_status eng_xchg_rows(struct imc_engine *e, const float *send, const uint64_t *send_rows,
                              float *recv, const uint64_t *recv_rows);
// Frees the exchanges, the expert shards' and the pipeline's (before the table's state).
void eng_xchg_free(struct imc_engine *e);

// ---- per-architecture layers
// ---------------------------------------------------------------------

// x [n_tok][n_embd] += attention(x) for layer il (n_tok = n_seq * n_ctx of the call).
enum imc_status imc_llama_attn(struct imc_engine *e, int64_t il, float *x, int64_t n_tok);
enum imc_status imc_ds2_attn(struct imc_engine *e, int64_t il, float *x, int64_t n_tok);
// x += FFN(RMSNorm(x)) for layer il: dense SwiGLU or MoE with shared experts (worker/moe.c).
enum imc_status imc_ffn(struct imc_engine *e, int64_t il, float *x, int64_t n_tok);

#endif // IMC_WORKER_ENGINE_PRIV_H
