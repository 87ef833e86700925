/*
 * numa/place: layouts and the host placement of numa/plan.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "numa/plan.h"
#include "numa/threads.h"

// ---- layouts ----

static enum imc_status parse_factor(const char *text, const char *tok, int *seen, int *out)
{
    const char *eq = strchr(tok, '=');
    if (!eq) {
        IMC_LOG_ERR("--layout '%s': expected key=value, found '%s'", text, tok);
        return IMC_ERR_ARG;
    }
    static const char *const keys[3] = {"pp", "ep", "dp"};
    int k = -1;
    for (int i = 0; i < 3; i++) {
        if ((size_t)(eq - tok) == 2 && strncmp(tok, keys[i], 2) == 0) {
            k = i;
        }
    }
    if (k < 0) {
        IMC_LOG_ERR("--layout '%s': unknown key in '%s' (expected pp, ep or dp)", text, tok);
        return IMC_ERR_ARG;
    }
    if (seen[k]++) {
        IMC_LOG_ERR("--layout '%s': %s given twice", text, keys[k]);
        return IMC_ERR_ARG;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(eq + 1, &end, 10);
    if (errno || end == eq + 1 || *end || v < 1 || v > 1 << 20) {
        IMC_LOG_ERR("--layout '%s': %s must be a whole number from 1, found '%s'", text, keys[k],
                    eq + 1);
        return IMC_ERR_ARG;
    }
    out[k] = (int)v;
    return IMC_OK;
}

enum imc_status imc_layout_parse(const char *text, struct imc_layout *out)
{
    int v[3] = {1, 1, 1}, seen[3] = {0, 0, 0};
    char buf[128];
    if (!text || !*text || strlen(text) >= sizeof(buf)) {
        IMC_LOG_ERR("--layout '%s': expected pp=N,ep=N,dp=N", text ? text : "");
        return IMC_ERR_ARG;
    }
    snprintf(buf, sizeof(buf), "%s", text);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        IMC_TRY(parse_factor(text, tok, seen, v));
    }
    if (!seen[0] && !seen[1] && !seen[2]) {
        IMC_LOG_ERR("--layout '%s': expected pp=N,ep=N,dp=N", text);
        return IMC_ERR_ARG;
    }
    *out = (struct imc_layout){v[0], v[1], v[2]};
    return IMC_OK;
}

enum imc_status imc_layout_check(const struct imc_layout *l, int n_ranks)
{
    if (l->pp < 1 || l->ep < 1 || l->dp < 1) {
        IMC_LOG_ERR("layout pp=%d,ep=%d,dp=%d: every factor must be at least 1", l->pp, l->ep,
                    l->dp);
        return IMC_ERR_ARG;
    }
    long long need = (long long)l->pp * l->ep * l->dp;
    if (need != n_ranks) {
        IMC_LOG_ERR("layout pp=%d,ep=%d,dp=%d needs %lld ranks, the job has %d", l->pp, l->ep,
                    l->dp, need, n_ranks);
        return IMC_ERR_ARG;
    }
    return IMC_OK;
}

struct imc_coords imc_layout_coords(const struct imc_layout *l, int rank)
{
    IMC_ASSERT(rank >= 0 && rank < l->pp * l->ep * l->dp);
    return (struct imc_coords){
        .stage = (rank / l->ep) % l->pp, .shard = rank % l->ep, .replica = rank / (l->ep * l->pp)};
}

int imc_layout_rank(const struct imc_layout *l, struct imc_coords co)
{
    return (co.replica * l->pp + co.stage) * l->ep + co.shard;
}

// ---- placement ----

char *imc_place_cpulist(const int *cpus, int n, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j + 1 < n && cpus[j + 1] == cpus[j] + 1) {
            j++;
        }
        char item[32];
        int k = j > i ? snprintf(item, sizeof(item), "%s%d-%d", i ? "," : "", cpus[i], cpus[j])
                      : snprintf(item, sizeof(item), "%s%d", i ? "," : "", cpus[i]);
        if (len + (size_t)k + 4 > size) {
            snprintf(buf + len, size - len, "...");
            return buf;
        }
        memcpy(buf + len, item, (size_t)k + 1);
        len += (size_t)k;
        i = j;
    }
    return buf;
}

// A rank's slice: cores [core, core + n_cores) of t->cores (always contiguous, see topo.h).
struct slice {
    int core;
    int n_cores;
};

// Splits the cores of cpu-node list entry j among the ranks assigned to it (rank order).
static void split_node(const struct imc_topo *t, int node, const int *node_of, int n_ranks,
                       struct imc_placement *p, struct slice *sl)
{
    int m = 0;
    for (int r = 0; r < n_ranks; r++) {
        m += node_of[r] == node;
    }
    int k = t->nodes[node].n_cores, base = t->nodes[node].core_begin;
    for (int r = 0, i = 0; r < n_ranks; r++) {
        if (node_of[r] != node) {
            continue;
        }
        if (m <= k) {
            sl[r] = (struct slice){base + i * k / m, (i + 1) * k / m - i * k / m};
        } else {
            int c = (int)((long)i * k / m);
            sl[r] = (struct slice){base + c, 1};
            p->ranks[r].shared = (i > 0 && (int)((long)(i - 1) * k / m) == c) ||
                                 (i + 1 < m && (int)((long)(i + 1) * k / m) == c);
            p->oversubscribed = true;
        }
        i++;
    }
}

// Picks each rank's node (index into t->nodes), block size and GPU. cpu_nodes lists the nodes
// with cores (nc of them).
static void assign_nodes(const struct imc_topo *t, const int *cpu_nodes, int nc, int n_ranks,
                         int gpus, struct imc_placement *p, int *node_of)
{
    for (int r = 0; r < n_ranks; r++) {
        struct imc_place *pl = &p->ranks[r];
        pl->n_nodes = 1;
        pl->gpu = -1;
        if (gpus > 0) {
            pl->gpu = r % gpus;
            int gn = pl->gpu < t->n_gpus ? t->gpus[pl->gpu].node : -1;
            node_of[r] = gn >= 0 && t->nodes[gn].n_cores > 0 ? gn : cpu_nodes[pl->gpu % nc];
        } else if (n_ranks >= nc) {
            node_of[r] = cpu_nodes[r % nc];
        } else {
            int first = (int)((long)r * nc / n_ranks), last = (int)((long)(r + 1) * nc / n_ranks);
            node_of[r] = cpu_nodes[first];
            pl->n_nodes = last - first;
        }
        pl->node = node_of[r];
    }
    p->gpus_shared = gpus > 0 && n_ranks > gpus;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

// Copies each rank's PUs into the placement's storage (sorted); slices are already final.
static enum imc_status fill_cpus(const struct imc_topo *t, struct imc_placement *p,
                                 const struct slice *sl)
{
    size_t total = 0;
    for (int r = 0; r < p->n_ranks; r++) {
        for (int c = sl[r].core; c < sl[r].core + sl[r].n_cores; c++) {
            total += (size_t)t->cores[c].n_pus;
        }
    }
    p->cpu_storage = malloc((total ? total : 1) * sizeof(int));
    if (!p->cpu_storage) {
        IMC_LOG_ERR("out of memory for the cpu lists of %d ranks", p->n_ranks);
        return IMC_ERR_NOMEM;
    }
    int *next = p->cpu_storage;
    for (int r = 0; r < p->n_ranks; r++) {
        struct imc_place *pl = &p->ranks[r];
        pl->cpus = next;
        pl->n_cores = sl[r].n_cores;
        for (int c = sl[r].core; c < sl[r].core + sl[r].n_cores; c++) {
            const struct imc_topo_core *core = &t->cores[c];
            memcpy(next, t->pus + core->pu_begin, (size_t)core->n_pus * sizeof(int));
            next += core->n_pus;
        }
        pl->n_cpus = (int)(next - pl->cpus);
        qsort(pl->cpus, (size_t)pl->n_cpus, sizeof(int), cmp_int);
    }
    return IMC_OK;
}

// Slices for ranks owning a block of several whole nodes (fewer ranks than nodes).
static void block_slices(const struct imc_topo *t, const int *cpu_nodes, int nc,
                         struct imc_placement *p, struct slice *sl)
{
    for (int r = 0; r < p->n_ranks; r++) {
        const struct imc_place *pl = &p->ranks[r];
        int first = 0;
        while (first < nc && cpu_nodes[first] != pl->node) {
            first++;
        }
        const struct imc_topo_node *a = &t->nodes[cpu_nodes[first]];
        const struct imc_topo_node *b = &t->nodes[cpu_nodes[first + pl->n_nodes - 1]];
        sl[r] = (struct slice){a->core_begin, b->core_begin + b->n_cores - a->core_begin};
    }
}

static enum imc_status place_ranks(const struct imc_topo *t, int n_ranks, int gpus,
                                   const int *cpu_nodes, int nc, struct imc_placement *p)
{
    int *node_of = calloc((size_t)n_ranks, sizeof(*node_of));
    struct slice *sl = calloc((size_t)n_ranks, sizeof(*sl));
    enum imc_status st = IMC_ERR_NOMEM;
    if (!node_of || !sl) {
        IMC_LOG_ERR("out of memory placing %d ranks", n_ranks);
        goto out_free;
    }
    assign_nodes(t, cpu_nodes, nc, n_ranks, gpus, p, node_of);
    if (gpus <= 0 && n_ranks < nc) {
        block_slices(t, cpu_nodes, nc, p, sl);
    } else {
        for (int j = 0; j < nc; j++) {
            split_node(t, cpu_nodes[j], node_of, n_ranks, p, sl);
        }
    }
    st = fill_cpus(t, p, sl);
out_free:
    free(node_of);
    free(sl);
    return st;
}

enum imc_status imc_place_plan(const struct imc_topo *t, int n_ranks, int n_gpus,
                               struct imc_placement **out)
{
    *out = NULL;
    if (n_ranks < 1 || n_gpus < -1) {
        IMC_LOG_ERR("placement of %d ranks with %d GPUs: expected at least 1 rank and a GPU "
                    "count >= -1",
                    n_ranks, n_gpus);
        return IMC_ERR_ARG;
    }
    int *cpu_nodes = calloc((size_t)t->n_nodes, sizeof(*cpu_nodes));
    struct imc_placement *p = calloc(1, sizeof(*p));
    struct imc_place *ranks = calloc((size_t)n_ranks, sizeof(*ranks));
    enum imc_status st = IMC_ERR_NOMEM;
    if (!cpu_nodes || !p || !ranks) {
        IMC_LOG_ERR("out of memory placing %d ranks", n_ranks);
        goto out_free;
    }
    int nc = 0;
    for (int i = 0; i < t->n_nodes; i++) {
        if (t->nodes[i].n_cores > 0) {
            cpu_nodes[nc++] = i;
        }
    }
    if (nc == 0) {
        IMC_LOG_ERR("topology has no NUMA node with cores: nothing to place %d ranks on", n_ranks);
        st = IMC_ERR_NUMA;
        goto out_free;
    }
    p->n_ranks = n_ranks;
    p->ranks = ranks;
    ranks = NULL;
    st = place_ranks(t, n_ranks, n_gpus < 0 ? t->n_gpus : n_gpus, cpu_nodes, nc, p);
    if (st == IMC_OK) {
        *out = p;
        p = NULL;
    }
out_free:
    free(cpu_nodes);
    free(ranks);
    imc_placement_free(p);
    return st;
}

void imc_placement_free(struct imc_placement *p)
{
    if (!p) {
        return;
    }
    free(p->ranks);
    free(p->cpu_storage);
    free(p);
}

void imc_plan_set_place(struct imc_rank_plan *rp, const struct imc_topo *t,
                        const struct imc_place *p)
{
    rp->numa_node = t->nodes[p->node].os_index;
    rp->gpu = p->gpu;
    imc_place_cpulist(p->cpus, p->n_cpus, rp->cpus, sizeof(rp->cpus));
    rp->threads = imc_threads_on(t, p->cpus, p->n_cpus, 1, NULL);
}
