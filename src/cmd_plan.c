/*
 * imc plan: the placement plan of an MPI job, printed before anything loads (DESIGN.md §3, §6).
 *
 *   imc plan MODEL --ranks N [--gpus G] [--hosts H] [--layout pp=A,ep=B,dp=C]
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
 * rank's NUMA node(s), a rank whose weights exceed its part of that memory (node memory / ranks
 * on the node) is reported with a warning (GPU ranks are not checked: hwloc does not tell GPU
 * memory).
 *
 * Errors (one line, exit 1): missing or unreadable model, a layout that does not give N ranks
 * ("layout pp=2,ep=1,dp=3 needs 6 ranks, --ranks is 4"), more stages than layers, ep larger
 * than the experts, bad options.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/layout_auto.h"
#include "coordinator/model_cost.h"
#include "core/log.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "numa/plan.h"
#include "numa/topo.h"
#include "src/cli.h"

struct plan_args {
    const char *model;
    int64_t ranks;      // N
    int64_t gpus;       // per host; -1: from the topology
    int64_t hosts;      // H
    const char *layout; // NULL: automatic
};

struct plan_ctx {
    const struct imc_model *m;
    struct imc_model_cost cost;
    double total_bytes, total_flops; // the model's, each weight once
    struct imc_layout l;
    char why[128];            // how the layout was chosen
    int n;                    // ranks
    struct imc_rank_plan *rp; // [n]
    double *mem_per_rank;     // [n] bytes of node memory per rank, 0 unknown / GPU
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
    IMC_OPT("hosts", 0, IMC_OPT_POS, OWN(hosts), "H",
            "hosts of the job, all like this one (default 1)"),
    IMC_OPT("layout", 0, IMC_OPT_STR, OWN(layout), "pp=A,ep=B,dp=C",
            "pipeline stages x expert shards x replicas, product = N\n(default: the automatic "
            "layout)"),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {own_opts, imc_opt_group_log, NULL};

static const struct imc_opt_spec spec = {
    .usage = "MODEL --ranks N [--gpus G] [--hosts H] [--layout pp=A,ep=B,dp=C]",
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
    *a = (struct plan_args){NULL, 0, -1, 1, NULL};
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
        int sharing = 0;
        for (int k = 0; k < per_host; k++) {
            sharing += p->ranks[k].node == pl->node;
        }
        pc->mem_per_rank[r] = pl->gpu >= 0 ? 0 : block_memory(t, pl->node, pl->n_nodes) / sharing;
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

static void check_memory(const struct plan_ctx *pc)
{
    for (int r = 0; r < pc->n; r++) {
        double need = (double)pc->rp[r].weight_bytes, have = pc->mem_per_rank[r];
        if (have > 0 && need > have) {
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
    enum imc_status st = IMC_ERR_NOMEM;
    if (!layers || !pc->rp || !pc->mem_per_rank) {
        IMC_LOG_ERR("plan: out of memory for %d ranks", pc->n);
    } else if ((st = imc_model_cost_build(pc->m, layers, &pc->cost)) == IMC_OK) {
        imc_model_cost_totals(pc->m, &pc->cost, &pc->total_bytes, &pc->total_flops);
        if ((st = set_layout(pc, a)) == IMC_OK &&
            (st = imc_plan_split(&pc->cost, &pc->l, pc->rp)) == IMC_OK &&
            (st = imc_topo_load(&t)) == IMC_OK && (st = place(pc, t, a)) == IMC_OK) {
            for (int r = 0; r < pc->n; r++) {
                pc->rank_flops += pc->rp[r].flops;
            }
            print_header(pc, t, a);
            print_rows(pc, a);
            print_totals(pc);
            check_memory(pc);
        }
    }
    imc_topo_free(t);
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
