/*
 * imc plan: the placement plan of an MPI job, printed before anything loads (DESIGN.md §3, §6).
 *
 *   imc plan MODEL --ranks N [--gpus G] [--gpu-mem GIB] [--gpu-reserve GIB]
 *            [--experts-on gpu|cpu] [--ctx N] [-b N] [--hosts H] [--layout pp=A,ep=B,dp=C]
 *
 * Reads only the GGUF header (tensor names, shapes, sizes; no tensor data) and the host topology
 * (hwloc; HWLOC_SYNTHETIC / HWLOC_XMLFILE describe another machine). Prints one row per rank:
 * stage/shard/replica, layers [b,e), experts [b,e), weight bytes, NUMA node, cpus, GPU and its
 * share of the FLOPs all ranks compute per token (sums to 100%; replicas take turns on chunks;
 * each expert shard runs attention and shared experts for its own share of the sequences and
 * its experts for all tokens of the stage, as numa/plan.h counts them), then totals and the
 * max/mean imbalance.
 *
 * Hosts: H identical hosts (the topology read), N/H ranks each, world rank r on host r/(N/H) as
 * mpirun's default by-slot mapping puts them. --gpus G: GPUs per host (default: those hwloc
 * finds; 0 plans CPU ranks only).
 *
 * Automatic layout (no --layout): coordinator/layout_auto.h. When hwloc knows the memory of a
 * rank's NUMA node(s), a CPU rank whose weights exceed its part of that memory (node memory /
 * ranks on the node) is reported with a warning.
 *
 * GPU memory (--gpu-mem GIB per GPU, --experts-on gpu|cpu; hwloc does not tell GPU memory): a
 * "memory" table per rank of the weight bytes on its GPU and on the CPU of its NUMA node, with
 * what each holds per rank (the GPU's memory / ranks on that GPU; the node's / ranks on the
 * node). --experts-on cpu puts a GPU rank's routed experts on the CPU, the rest (attention,
 * norms, router, dense FFN, shared experts, embedding, head) on the GPU, as the engine runs
 * them (--device cuda, --experts-on cpu). A GPU rank's activations and imatrix sums are
 * counted too, for the commands' calls (--ctx, -b: b / ctx sequences of ctx tokens, a shard's
 * share of them): the engine's arena (worker/engine_mem.h, statistics hooks on, as an imatrix
 * run), the stage's two hidden arrays, and on the last stage the head's logits of one sequence;
 * an imatrix run's chunk sums, one
 * collector per sequence of a call (imc_engine_stats_bytes: a slot of doubles per matrix, expert
 * and head, in blocks; 34 MB per DeepSeek-V3 MoE layer); and the op table's scratch
 * (imc_engine_scratch_bytes: its operand slots and the batch path's weight tile, at the larger
 * of --matmul f32 and q8, scoring against base rows as perplexity --kld-base does, at the table's
 * lines as IMC_CUDA_MMV_TOKENS / IMC_CUDA_MMQ_TOKENS in the environment set them); for expert
 * shards, whose rows the arena holds where NCCL carries them and the op scratch moves where they
 * go through the host, the way that takes more. On top,
 * --gpu-reserve GIB (default 1) per GPU rank for the CUDA context and cuBLAS's workspace: an
 * allowance, not computed (a GPU rank of a run logs its own device memory at its most when it
 * finishes: kernels/cuda/kern_decl.h ctx_mem).
 *
 * Errors (one line, nothing on stdout, exit 1): missing or unreadable model, a layout that does
 * not give N ranks ("layout pp=2,ep=1,dp=3 needs 6 ranks, --ranks is 4"), more stages than
 * layers, ep larger than the experts, bad options, --gpu-mem or --experts-on cpu without GPU
 * ranks, a GPU rank whose slice fits nowhere (its GPU part above its GPU share, or the experts
 * --experts-on cpu keeps on the CPU above its node share when hwloc knows the node's memory):
 * the first such rank named with its slice and the bytes needed and available.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/kld.h"
#include "coordinator/layout_auto.h"
#include "coordinator/model_cost.h"
#include "coordinator/textrun.h"
#include "core/log.h"
#include "kernels/cuda/policy.h" // the CUDA table's lines, from the environment
#include "model/arch.h"
#include "model/gguf.h"
#include "numa/plan.h"
#include "numa/topo.h"
#include "src/cli.h"
#include "worker/engine_mem.h"

struct plan_args {
    const char *model;
    int64_t ranks;      // N
    int64_t gpus;       // per host; -1: from the topology
    int64_t hosts;      // H
    const char *layout; // NULL: automatic
    double gpu_mem_gib; // memory per GPU, GiB; < 0: not given
    int experts_on;     // index into experts_on_names: 0 gpu, 1 cpu
    int64_t ctx;        // tokens per chunk (0: the commands' default)
    int64_t batch;      // tokens per engine call (0: the commands' default)
    double reserve_gib; // per GPU rank for the CUDA context and cuBLAS's workspace, GiB
    int mmv_tok, mmq_tok; // the CUDA table's lines (kernels/cuda/policy.h), as the environment's
                          // IMC_CUDA_MMV_TOKENS / IMC_CUDA_MMQ_TOKENS set them for the GPU ranks
};

static const char *const experts_on_names[] = {"gpu", "cpu", NULL};

// --gpu-reserve's default: a CUDA context with its modules loaded lazily plus cuBLAS's workspace
// (NVIDIA documents 32 MiB of it on Hopper) are a few hundred MiB; no GPU has measured imc's.
#define IMC_PLAN_RESERVE_GIB 1.0

struct plan_ctx {
    const struct imc_model *m;
    struct imc_model_cost cost;
    double total_bytes, total_flops; // the model's, each weight once
    struct imc_layout l;
    char why[128];            // how the layout was chosen
    int n;                    // ranks
    struct imc_rank_plan *rp; // [n]
    double *mem_per_rank;     // [n] bytes of node memory per rank, 0 unknown
    double *gpu_per_rank;     // [n] bytes of GPU memory per rank (--gpu-mem), 0 CPU rank
    double *act_per_rank;     // [n] device bytes of a GPU rank's activations (and logits), 0 CPU
    double *sums_per_rank;    // [n] device bytes of a GPU rank's imatrix chunk sums, 0 CPU
    double *scratch_per_rank; // [n] device bytes of a GPU rank's op scratch, 0 CPU
    int64_t ctx, n_seq;       // tokens per chunk, sequences per engine call
    double rank_flops;        // sum of the ranks' FLOPs per token (dp x the model's)
};

// Share of the job's FLOPs computed by rank r (sums to 1 over all ranks).
static double share(const struct plan_ctx *pc, int r)
{
    return pc->rank_flops > 0 ? pc->rp[r].flops / pc->rank_flops : 1.0 / pc->n;
}

#define OWN(field) IMC_OPT_SLOT(IMC_OPT_OWN, offsetof(struct plan_args, field))

static const struct imc_opt own_opts[] = {
    IMC_OPT("ranks", 0, IMC_OPT_POS, OWN(ranks), "N",
            "MPI ranks of the job (a multiple of --hosts)"),
    IMC_OPT("gpus", 0, IMC_OPT_UINT, OWN(gpus), "G",
            "GPUs per host (default: as the topology shows)"),
    IMC_OPT("gpu-mem", 0, IMC_OPT_FLOAT, OWN(gpu_mem_gib), "GIB",
            "memory of each GPU, GiB: shows the bytes on each GPU and CPU\nand refuses a slice "
            "that fits nowhere (weights, and a GPU\nrank's activations, imatrix sums and op "
            "scratch: --ctx, -b;\nand --gpu-reserve)"),
    IMC_OPT("gpu-reserve", 0, IMC_OPT_FLOAT, OWN(reserve_gib), "GIB",
            "device memory each GPU rank keeps for the CUDA context and\ncuBLAS's workspace, "
            "GiB (default 1; an allowance, not measured)"),
    IMC_OPT("experts-on", 0, IMC_OPT_ENUM, OWN(experts_on), "WHERE",
            "gpu (default) | cpu: a GPU rank's routed experts on the CPU\nof its NUMA node, the "
            "rest on the GPU (what perplexity,\nimatrix and sweep run with --experts-on cpu)",
            .choices = experts_on_names),
    IMC_OPT("ctx", 'c', IMC_OPT_POS, OWN(ctx), "N",
            "tokens per chunk, for the activations of GPU ranks\n(default 512, or n_ctx_train if "
            "smaller, as the commands)"),
    IMC_OPT("batch", 'b', IMC_OPT_POS, OWN(batch), "N",
            "tokens per engine call, as the commands' -b (default 2048)"),
    IMC_OPT("hosts", 0, IMC_OPT_POS, OWN(hosts), "H",
            "hosts of the job, all like this one (default 1)"),
    IMC_OPT("layout", 0, IMC_OPT_STR, OWN(layout), "pp=A,ep=B,dp=C",
            "pipeline stages x expert shards x replicas, product = N\n(default: the automatic "
            "layout)"),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {own_opts, imc_opt_group_log, NULL};

static const struct imc_opt_spec spec = {
    .usage = "MODEL --ranks N [options]",
    .groups = groups,
    .notes = "From the tensor shapes and this host's topology (hwloc; HWLOC_SYNTHETIC or\n"
             "HWLOC_XMLFILE describe another), before anything loads.",
    .min_pos = 1,
    .max_pos = 1,
    .pos_name = "MODEL",
};

// Returns 0 to go on, 2 on a usage error (logged), -1 after --help.
static int parse_args(int argc, char **argv, struct plan_args *a)
{
    *a = (struct plan_args){.gpus = -1,
                            .hosts = 1,
                            .gpu_mem_gib = -1.0,
                            .reserve_gib = IMC_PLAN_RESERVE_GIB,
                            .mmv_tok = IMC_CUDA_MMV_TOKENS,
                            .mmq_tok = IMC_CUDA_MMQ_TOKENS};
    struct imc_opt_common c;
    char **pos = NULL;
    int n_pos = 0;
    int rc = imc_cli_parse(&imc_cmd_plan, argc, argv, a, &c, NULL, &pos, &n_pos);
    if (rc != 0) {
        return rc;
    }
    a->model = pos[0];
    if (a->ranks < 1) {
        IMC_LOG_ERR("plan: missing --ranks N (see imc plan --help)");
        return 2;
    }
    if (a->ranks > 1 << 20 || a->ranks % a->hosts != 0) {
        IMC_LOG_ERR("plan: --ranks %lld must be a multiple of --hosts %lld (at most %d)",
                    (long long)a->ranks, (long long)a->hosts, 1 << 20);
        return 2;
    }
    if (a->gpu_mem_gib != -1.0 && !(a->gpu_mem_gib > 0 && a->gpu_mem_gib < 1 << 24)) {
        IMC_LOG_ERR("plan: option --gpu-mem expects GiB in (0, %d), got %g", 1 << 24,
                    a->gpu_mem_gib);
        return 2;
    }
    if (!(a->reserve_gib >= 0 && a->reserve_gib < 1 << 24)) {
        IMC_LOG_ERR("plan: option --gpu-reserve expects GiB in [0, %d), got %g", 1 << 24,
                    a->reserve_gib);
        return 2;
    }
    // the lines the GPU ranks' tables will take (their op scratch follows them)
    static const struct {
        const char *name;
        int def, lo, hi;
    } lines[2] = {{"IMC_CUDA_MMV_TOKENS", IMC_CUDA_MMV_TOKENS, 1, IMC_CUDA_MMV_MAX_TOK},
                  {"IMC_CUDA_MMQ_TOKENS", IMC_CUDA_MMQ_TOKENS, 0, IMC_CUDA_MMQ_MAX_TOK}};
    int *const out[2] = {&a->mmv_tok, &a->mmq_tok};
    for (int i = 0; i < 2; i++) {
        const char *env = getenv(lines[i].name);
        if (!imc_cuda_env_tokens(env, lines[i].def, lines[i].lo, lines[i].hi, out[i])) {
            IMC_LOG_ERR("plan: %s=%s: expected a number of tokens in %d..%d", lines[i].name, env,
                        lines[i].lo, lines[i].hi);
            return 2;
        }
    }
    return 0;
}

// ---- layout ----

static enum imc_status choose_layout(struct plan_ctx *pc)
{
    double best = 0;
    IMC_TRY(imc_layout_auto(&pc->cost, pc->total_bytes, pc->total_flops, pc->n, &pc->l, &best));
    snprintf(pc->why, sizeof(pc->why), "automatic: %s, largest rank load %.1f%% (ideal %.1f%%)",
             pc->l.dp > 1 ? "fewest replicas" : "no replicas", 100 * best,
             100.0 / (pc->l.pp * pc->l.ep));
    return IMC_OK;
}

static enum imc_status set_layout(struct plan_ctx *pc, const struct plan_args *a)
{
    if (!a->layout) {
        return choose_layout(pc);
    }
    IMC_TRY(imc_layout_parse(a->layout, &pc->l));
    long long need = (long long)pc->l.pp * pc->l.ep * pc->l.dp;
    if (need != pc->n) {
        IMC_LOG_ERR("layout pp=%d,ep=%d,dp=%d needs %lld ranks, --ranks is %d", pc->l.pp, pc->l.ep,
                    pc->l.dp, need, pc->n);
        return IMC_ERR_ARG;
    }
    snprintf(pc->why, sizeof(pc->why), "--layout");
    return IMC_OK;
}

// ---- placement ----

// Memory of the n_nodes nodes with cores starting at node index `node`, or 0 when unknown.
static double block_memory(const struct imc_topo *t, int node, int n_nodes)
{
    double mem = 0;
    for (int i = node; i < t->n_nodes && n_nodes > 0; i++) {
        if (t->nodes[i].n_cores > 0) {
            if (t->nodes[i].mem_bytes == 0) {
                return 0;
            }
            mem += (double)t->nodes[i].mem_bytes;
            n_nodes--;
        }
    }
    return mem;
}

// Places the ranks of one host (all hosts alike) and copies the result to every host's ranks.
static enum imc_status place(struct plan_ctx *pc, const struct imc_topo *t,
                             const struct plan_args *a)
{
    int per_host = pc->n / (int)a->hosts;
    struct imc_placement *p = NULL;
    IMC_TRY(imc_place_plan(t, per_host, (int)a->gpus, &p));
    for (int r = 0; r < pc->n; r++) {
        const struct imc_place *pl = &p->ranks[r % per_host];
        imc_plan_set_place(&pc->rp[r], t, pl);
        int sharing = 0, gpu_sharing = 0;
        for (int k = 0; k < per_host; k++) {
            sharing += p->ranks[k].node == pl->node;
            gpu_sharing += p->ranks[k].gpu == pl->gpu;
        }
        pc->mem_per_rank[r] = block_memory(t, pl->node, pl->n_nodes) / sharing;
        pc->gpu_per_rank[r] =
            pl->gpu >= 0 && a->gpu_mem_gib > 0 ? a->gpu_mem_gib * 1073741824.0 / gpu_sharing : 0;
    }
    if (p->oversubscribed) {
        IMC_LOG_WRN("plan: %d ranks per host oversubscribe the cores of a NUMA node: ranks share "
                    "cores",
                    per_host);
    }
    if (p->gpus_shared) {
        IMC_LOG_WRN("plan: %d ranks per host share fewer GPUs", per_host);
    }
    imc_placement_free(p);
    return IMC_OK;
}

// The device bytes of each GPU rank's activations (worker/engine_mem.h: the engine's arena for
// its calls, statistics hooks on as in an imatrix run) and, on the last stage, the head's logits
// of one sequence: calls of n_seq sequences of ctx tokens, a shard running attention for its
// share of them (the most any shard gets); of an imatrix run's chunk sums (one collector per
// sequence of a call, each with a slot per matrix, expert and head the rank runs); and of the
// op table's scratch (imc_engine_scratch_bytes, the larger of --matmul f32 and q8).
static void set_activations(struct plan_ctx *pc, const struct plan_args *a)
{
    const struct imc_model *m = pc->m;
    const int64_t home = (pc->n_seq + pc->l.ep - 1) / pc->l.ep;
    for (int r = 0; r < pc->n; r++) {
        const struct imc_rank_plan *p = &pc->rp[r];
        if (p->gpu < 0) {
            pc->act_per_rank[r] = pc->sums_per_rank[r] = pc->scratch_per_rank[r] = 0;
            continue;
        }
        struct imc_engine_mem_q q = {.n_tok = home * pc->ctx,
                                     .layer_begin = p->layer_begin,
                                     .layer_end = p->layer_end,
                                     .expert_begin = p->expert_begin,
                                     .expert_end = p->expert_end,
                                     .ep_size = pc->l.ep,
                                     .path = imc_attn_path_for(m, IMC_ATTN_AUTO),
                                     .hooks = true,
                                     .experts_on_cpu = a->experts_on == 1};
        const bool head = p->layer_end == m->hp.n_layer;
        const double logits = head ? (double)pc->ctx * (double)m->hp.n_vocab * 4 : 0;
        // the stage's two hidden arrays (coordinator/dist.c double-buffers them in the engine's
        // memory; stages passing them through MPI keep them on the host, and the op scratch
        // moves them in and out instead, in no more room than these)
        const double hidden = 2.0 * (double)q.n_tok * (double)m->hp.n_embd * 4;
        pc->sums_per_rank[r] =
            (double)pc->n_seq * (double)imc_engine_stats_bytes(m, &q, head, NULL);
        // shards' rows in the tables' memory (NCCL) or through the host (NCCL missing at run
        // time, two ranks on a GPU): the arena holds them, or the op scratch moves them; the way
        // that takes more. The op scratch of either matmul mode, scoring a sequence against base
        // rows (perplexity --kld-base: the most a command asks).
        pc->act_per_rank[r] = pc->scratch_per_rank[r] = 0;
        for (int host = 0; host <= (pc->l.ep > 1); host++) {
            q.host_rows = host;
            struct imc_engine_scratch_q sq = {.embed = p->layer_begin == 0,
                                              .score_rows = head ? pc->ctx : 0,
                                              .base_len = head ? imc_kld_row_len(m->hp.n_vocab) : 0,
                                              .mmv_tok = a->mmv_tok,
                                              .mmq_tok = a->mmq_tok};
            const size_t f32 = imc_engine_scratch_bytes(m, &q, &sq, NULL);
            sq.q8 = true;
            const size_t q8 = imc_engine_scratch_bytes(m, &q, &sq, NULL);
            const double act = (double)imc_engine_act_bytes(m, &q) + logits + hidden;
            const double scr = (double)(f32 > q8 ? f32 : q8);
            if (act + scr > pc->act_per_rank[r] + pc->scratch_per_rank[r]) {
                pc->act_per_rank[r] = act;
                pc->scratch_per_rank[r] = scr;
            }
        }
    }
}

// The commands' shape of a call (coordinator/textrun.h): --ctx (the default lowered to the
// model's training context), and -b tokens: b / ctx sequences, at least one.
static void set_shape(struct plan_ctx *pc, const struct plan_args *a)
{
    pc->ctx = a->ctx > 0 ? a->ctx : imc_textrun_default_ctx(pc->m);
    pc->n_seq = imc_textrun_seqs(a->batch, pc->ctx);
}

// ---- printing ----

static const char *human(double bytes, char *buf, size_t size)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (bytes >= 1024 && u < 5) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.2f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

static const char *range(int b, int e, char *buf, size_t size)
{
    snprintf(buf, size, "[%d,%d)", b, e);
    return buf;
}

static void print_header(const struct plan_ctx *pc, const struct imc_topo *t,
                         const struct plan_args *a)
{
    const struct imc_hparams *h = &pc->m->hp;
    char b[32];
    printf("model:     %s (%s, %" PRId64 " layers", a->model, imc_arch_name(pc->m->arch),
           h->n_layer);
    if (h->n_expert > 0) {
        printf(", %" PRId64 " experts, %" PRId64 " used", h->n_expert, h->n_expert_used);
    }
    printf(", weights %s, %.3g FLOP/token)\n", human(pc->total_bytes, b, sizeof(b)),
           pc->total_flops);
    const char *syn = getenv("HWLOC_SYNTHETIC"), *xml = getenv("HWLOC_XMLFILE");
    printf("topology:  %d NUMA nodes, %d cores, %d PUs, %d GPUs per host (%s%s)\n", t->n_nodes,
           t->n_cores, t->n_pus, t->n_gpus,
           syn && *syn   ? "HWLOC_SYNTHETIC "
           : xml && *xml ? "HWLOC_XMLFILE "
                         : "this machine",
           syn && *syn   ? syn
           : xml && *xml ? xml
                         : "");
    printf("layout:    pp=%d,ep=%d,dp=%d (%s)\n", pc->l.pp, pc->l.ep, pc->l.dp, pc->why);
    printf("ranks:     %d on %ld host(s), %ld per host\n\n", pc->n, a->hosts, pc->n / a->hosts);
}

static void print_rows(const struct plan_ctx *pc, const struct plan_args *a)
{
    int w = 4;
    for (int r = 0; r < pc->n; r++) {
        int len = (int)strlen(pc->rp[r].cpus);
        w = len > w ? len : w;
    }
    if (a->hosts > 1) {
        printf("%4s ", "host");
    }
    printf("%4s %5s %5s %7s %-9s %-9s %12s %4s %-*s %7s %4s %7s\n", "rank", "stage", "shard",
           "replica", "layers", "experts", "weights", "node", w, "cpus", "threads", "gpu", "share");
    for (int r = 0; r < pc->n; r++) {
        const struct imc_rank_plan *p = &pc->rp[r];
        char lay[32], exp[32], wb[32], gpu[16];
        snprintf(gpu, sizeof(gpu), "%d", p->gpu);
        if (a->hosts > 1) {
            printf("%4ld ", r / (pc->n / a->hosts));
        }
        printf("%4d %5d %5d %7d %-9s %-9s %12s %4d %-*s %7d %4s %6.2f%%\n", p->rank, p->co.stage,
               p->co.shard, p->co.replica, range(p->layer_begin, p->layer_end, lay, sizeof(lay)),
               pc->cost.n_expert ? range(p->expert_begin, p->expert_end, exp, sizeof(exp)) : "-",
               human((double)p->weight_bytes, wb, sizeof(wb)), p->numa_node, w,
               p->cpus[0] ? p->cpus : "-", p->threads, p->gpu >= 0 ? gpu : "-",
               100 * share(pc, r));
    }
}

static void print_totals(const struct plan_ctx *pc)
{
    double bytes = 0, max_b = 0, sum_s = 0, max_s = 0;
    for (int r = 0; r < pc->n; r++) {
        double b = (double)pc->rp[r].weight_bytes, s = share(pc, r);
        bytes += b;
        sum_s += s;
        max_b = b > max_b ? b : max_b;
        max_s = s > max_s ? s : max_s;
    }
    char tb[32], mb[32];
    printf("\ntotal:     weights %s on all ranks (model %s: x%.2f with replicas and copies), "
           "compute share %.2f%%\n",
           human(bytes, tb, sizeof(tb)), human(pc->total_bytes, mb, sizeof(mb)),
           pc->total_bytes > 0 ? bytes / pc->total_bytes : 0, 100 * sum_s);
    printf("imbalance: max/mean compute %.3f, weights %.3f\n",
           sum_s > 0 ? max_s / (sum_s / pc->n) : 0, bytes > 0 ? max_b / (bytes / pc->n) : 0);
}

// Bytes of rank r's weights on its GPU and on its CPU (--experts-on cpu: a GPU rank's routed
// experts on the CPU).
static void split_bytes(const struct plan_ctx *pc, const struct plan_args *a, int r, double *gpu,
                        double *cpu)
{
    const struct imc_rank_plan *p = &pc->rp[r];
    const double all = (double)p->weight_bytes, exp = (double)p->expert_bytes;
    *gpu = p->gpu < 0 ? 0 : a->experts_on == 1 ? all - exp : all;
    *cpu = all - *gpu;
}

// The memory table: per rank the weight bytes on its GPU and CPU, what each holds for the rank,
// and a GPU rank's activations, imatrix sums and op scratch.
static void print_memory(const struct plan_ctx *pc, const struct plan_args *a)
{
    char rb[32];
    printf("\nmemory:    weights, and GPU ranks' activations, imatrix sums and op scratch; routed "
           "experts of GPU ranks on the %s\n",
           a->experts_on == 1 ? "CPU of their NUMA node (--experts-on cpu)" : "GPU");
    printf("           activations: calls of %" PRId64 " x %" PRId64
           " tokens (-b, --ctx), the engine's arena with statistics hooks, two hidden arrays, "
           "and the last stage's "
           "logits of a sequence; imatrix sums: an imatrix run's chunk sums, one set per "
           "sequence of a call; op scratch: the op table's operand slots and weight tile; on "
           "top, %s per GPU rank for the CUDA context and cuBLAS's workspace (--gpu-reserve)\n",
           pc->n_seq, pc->ctx, human(a->reserve_gib * 1073741824.0, rb, sizeof(rb)));
    printf("%4s %4s %12s %12s %12s %12s %12s %12s %12s\n", "rank", "gpu", "on gpu", "gpu mem",
           "on cpu", "node mem", "activations", "imatrix sums", "op scratch");
    for (int r = 0; r < pc->n; r++) {
        const struct imc_rank_plan *p = &pc->rp[r];
        double gb, cb;
        split_bytes(pc, a, r, &gb, &cb);
        char g[16], b1[32], b2[32], b3[32], b4[32], b5[32], b6[32], b7[32];
        snprintf(g, sizeof(g), "%d", p->gpu);
        printf("%4d %4s %12s %12s %12s %12s %12s %12s %12s\n", p->rank, p->gpu >= 0 ? g : "-",
               p->gpu >= 0 ? human(gb, b1, sizeof(b1)) : "-",
               pc->gpu_per_rank[r] > 0 ? human(pc->gpu_per_rank[r], b2, sizeof(b2)) : "-",
               human(cb, b3, sizeof(b3)),
               pc->mem_per_rank[r] > 0 ? human(pc->mem_per_rank[r], b4, sizeof(b4)) : "-",
               p->gpu >= 0 ? human(pc->act_per_rank[r], b5, sizeof(b5)) : "-",
               p->gpu >= 0 ? human(pc->sums_per_rank[r], b6, sizeof(b6)) : "-",
               p->gpu >= 0 ? human(pc->scratch_per_rank[r], b7, sizeof(b7)) : "-");
    }
}

// A GPU rank's slice must fit: its GPU part in its GPU share (with --gpu-mem), its CPU part in
// its node share (where hwloc knows it). IMC_ERR_ARG naming the first rank that does not fit.
static enum imc_status check_fit(const struct plan_ctx *pc, const struct plan_args *a)
{
    int first = -1, n_bad = 0;
    double need = 0, have = 0, act = 0, sums = 0, scr = 0;
    const double reserve = a->reserve_gib * 1073741824.0;
    const char *where = "";
    for (int r = 0; r < pc->n; r++) {
        double gb, cb;
        split_bytes(pc, a, r, &gb, &cb);
        const double extra = pc->act_per_rank[r] + pc->sums_per_rank[r] + pc->scratch_per_rank[r] +
                             (pc->rp[r].gpu >= 0 ? reserve : 0);
        const bool gpu_short = pc->gpu_per_rank[r] > 0 && gb + extra > pc->gpu_per_rank[r];
        const bool cpu_short =
            pc->rp[r].gpu >= 0 && cb > 0 && pc->mem_per_rank[r] > 0 && cb > pc->mem_per_rank[r];
        if ((gpu_short || cpu_short) && n_bad++ == 0) {
            first = r;
            need = gpu_short ? gb : cb;
            act = gpu_short ? pc->act_per_rank[r] : 0;
            sums = gpu_short ? pc->sums_per_rank[r] : 0;
            scr = gpu_short ? pc->scratch_per_rank[r] : 0;
            have = gpu_short ? pc->gpu_per_rank[r] : pc->mem_per_rank[r];
            where = gpu_short ? "GPU" : "NUMA node";
        }
    }
    if (first < 0) {
        return IMC_OK;
    }
    const struct imc_rank_plan *p = &pc->rp[first];
    char lay[32], exp[48] = "", nb[32], hb[32], more[64] = "", ab[32], sb[32], cb2[32], rb[32],
                  res[64] = "", acts[224] = "";
    if (pc->cost.n_expert) {
        snprintf(exp, sizeof(exp), ", experts [%d,%d)", p->expert_begin, p->expert_end);
    }
    if (n_bad > 1) {
        snprintf(more, sizeof(more), " (%d more rank%s not fit either)", n_bad - 1,
                 n_bad > 2 ? "s do" : " does");
    }
    if (act > 0) {
        if (reserve > 0) {
            snprintf(res, sizeof(res), " and %s reserved (--gpu-reserve)",
                     human(reserve, rb, sizeof(rb)));
        }
        snprintf(acts, sizeof(acts),
                 ", %s of activations, %s of imatrix sums%s%s of op scratch (calls of %" PRId64
                 " x %" PRId64 " tokens)%s",
                 human(act, ab, sizeof(ab)), human(sums, sb, sizeof(sb)),
                 reserve > 0 ? ", " : " and ", human(scr, cb2, sizeof(cb2)), pc->n_seq, pc->ctx,
                 res);
    }
    IMC_LOG_ERR("plan: rank %d (layers %s%s) does not fit: it needs %s of weights%s on %s %d, "
                "which has %s per rank%s%s",
                first, range(p->layer_begin, p->layer_end, lay, sizeof(lay)), exp,
                human(need, nb, sizeof(nb)), acts, where, where[0] == 'G' ? p->gpu : p->numa_node,
                human(have, hb, sizeof(hb)), more,
                where[0] == 'G' && a->experts_on == 0 && p->expert_bytes > 0
                    ? "; --experts-on cpu keeps its routed experts on the CPU"
                    : "");
    return IMC_ERR_ARG;
}

// Checks --gpu-mem and --experts-on cpu against the plan (they need GPU ranks).
static enum imc_status check_gpu_opts(const struct plan_ctx *pc, const struct plan_args *a)
{
    bool any_gpu = false;
    for (int r = 0; r < pc->n; r++) {
        any_gpu = any_gpu || pc->rp[r].gpu >= 0;
    }
    if (!any_gpu && (a->gpu_mem_gib > 0 || a->experts_on == 1)) {
        IMC_LOG_ERR("plan: %s needs GPU ranks, but the plan has none (%s)",
                    a->gpu_mem_gib > 0 ? "--gpu-mem" : "--experts-on cpu",
                    a->gpus == 0 ? "--gpus 0" : "the topology shows no GPU: give --gpus G");
        return IMC_ERR_ARG;
    }
    return check_fit(pc, a);
}

static void check_memory(const struct plan_ctx *pc)
{
    for (int r = 0; r < pc->n; r++) {
        double need = (double)pc->rp[r].weight_bytes, have = pc->mem_per_rank[r];
        if (pc->rp[r].gpu < 0 && have > 0 && need > have) {
            char nb[32], hb[32];
            IMC_LOG_WRN("plan: rank %d needs %s of weights; its NUMA node has %s per rank", r,
                        human(need, nb, sizeof(nb)), human(have, hb, sizeof(hb)));
        }
    }
}

// ---- command ----

static enum imc_status plan(struct plan_ctx *pc, const struct plan_args *a)
{
    struct imc_layer_cost *layers = calloc((size_t)pc->m->hp.n_layer, sizeof(*layers));
    struct imc_topo *t = NULL;
    pc->rp = calloc((size_t)pc->n, sizeof(*pc->rp));
    pc->mem_per_rank = calloc((size_t)pc->n, sizeof(*pc->mem_per_rank));
    pc->gpu_per_rank = calloc((size_t)pc->n, sizeof(*pc->gpu_per_rank));
    pc->act_per_rank = calloc((size_t)pc->n, sizeof(*pc->act_per_rank));
    pc->sums_per_rank = calloc((size_t)pc->n, sizeof(*pc->sums_per_rank));
    pc->scratch_per_rank = calloc((size_t)pc->n, sizeof(*pc->scratch_per_rank));
    set_shape(pc, a);
    enum imc_status st = IMC_ERR_NOMEM;
    if (!layers || !pc->rp || !pc->mem_per_rank || !pc->gpu_per_rank || !pc->act_per_rank ||
        !pc->sums_per_rank || !pc->scratch_per_rank) {
        IMC_LOG_ERR("plan: out of memory for %d ranks", pc->n);
    } else if ((st = imc_model_cost_build(pc->m, layers, &pc->cost)) == IMC_OK) {
        imc_model_cost_totals(pc->m, &pc->cost, &pc->total_bytes, &pc->total_flops);
        if ((st = set_layout(pc, a)) == IMC_OK &&
            (st = imc_plan_split(&pc->cost, &pc->l, pc->rp)) == IMC_OK &&
            (st = imc_topo_load(&t)) == IMC_OK && (st = place(pc, t, a)) == IMC_OK &&
            (set_activations(pc, a), st = check_gpu_opts(pc, a)) == IMC_OK) {
            for (int r = 0; r < pc->n; r++) {
                pc->rank_flops += pc->rp[r].flops;
            }
            print_header(pc, t, a);
            print_rows(pc, a);
            print_totals(pc);
            if (a->gpu_mem_gib > 0 || a->experts_on == 1) {
                print_memory(pc, a);
            }
            check_memory(pc);
        }
    }
    imc_topo_free(t);
    free(pc->scratch_per_rank);
    free(pc->sums_per_rank);
    free(pc->act_per_rank);
    free(pc->gpu_per_rank);
    free(pc->mem_per_rank);
    free(pc->rp);
    free(layers);
    return st;
}

static int plan_run(int argc, char **argv)
{
    struct plan_args a;
    int pr = parse_args(argc, argv, &a);
    if (pr) {
        return pr < 0 ? 0 : pr;
    }
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    if (imc_gguf_open(&g, a.model) != IMC_OK) {
        return 1;
    }
    int rc = 1;
    if (imc_gguf_n_tensors(g) == 0) {
        IMC_LOG_ERR("%s: no tensors (vocab-only file): nothing to place", a.model);
    } else if (imc_model_load(&m, g) == IMC_OK) {
        struct plan_ctx pc = {.m = m, .n = (int)a.ranks};
        rc = plan(&pc, &a) == IMC_OK ? 0 : 1;
    }
    imc_model_free(m);
    imc_gguf_free(g);
    return rc;
}

const struct imc_cli_cmd imc_cmd_plan = {
    .name = "plan",
    .summary = "placement per rank (layers, experts, weights, NUMA node, cores) before loading",
    .opts = &spec,
    .run = plan_run,
};
