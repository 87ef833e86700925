/*
 * numa/plan: the placement plan — which layers and experts each rank owns, and where on its host
 * it runs (DESIGN.md §6 "Pipeline", "Experts", "Replicas", "Placement"; STYLE b.1 numa/plan.h).
 * Pure functions of plain data: no MPI, no hwloc calls, no model files; `imc plan` prints the
 * result before anything loads.
 *
 * Layout pp x ep x dp (the same numbering as mpi/comm.h):
 *   world rank = (replica * pp + stage) * ep + shard
 *
 * Layer split (imc_plan_stages): contiguous layer ranges, one per stage, every stage non-empty,
 * the token embedding on stage 0 and the output head on the last stage. A stage's load is the
 * larger of its share of the weight bytes (memory) and of the FLOPs per token (time), as one
 * expert shard sees them: it holds the stage's non-expert weights and ceil(E/ep) of the E
 * experts; it computes the non-expert part for 1/ep of the sequences (each shard runs its own)
 * and its experts for every token routed to them. The
 * split minimizes the largest stage load exactly (dynamic programming); among optimal splits it
 * takes the one that gives each stage, front to back, as many layers as possible.
 *
 * Expert split: shard e of ep owns experts [e*E/ep, (e+1)*E/ep) of every MoE layer of its stage.
 *
 * Host placement (imc_place_plan): one rank per NUMA node (with cores) by default; more ranks
 * than nodes go round-robin over the nodes and the ranks sharing a node split its cores into
 * contiguous, nearly equal sets; fewer ranks than nodes give each rank a block of whole nodes.
 * With GPUs, local rank r uses GPU r mod G and sits on that GPU's NUMA node. More ranks than
 * cores on a node is allowed (oversubscription, as in tests): ranks then share cores and the
 * plan says so (oversubscribed), for the caller to warn once.
 */
#ifndef IMC_NUMA_PLAN_H
#define IMC_NUMA_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "numa/topo.h"

struct imc_layout {
    int pp; // pipeline stages
    int ep; // expert shards per stage
    int dp; // replicas (whole pipelines on different chunks)
};

struct imc_coords {
    int stage;   // 0..pp-1
    int shard;   // 0..ep-1
    int replica; // 0..dp-1
};

// Parses "pp=2,ep=1,dp=3" (keys in any order, each at most once, omitted ones 1). Returns
// IMC_ERR_ARG logged as "--layout 'x': <cause>" on bad text or a factor below 1.
enum imc_status imc_layout_parse(const char *text, struct imc_layout *out);
// Returns IMC_ERR_ARG logged as "layout pp=2,ep=1,dp=3 needs 6 ranks, the job has 4" when the
// layout does not fit n_ranks, or when a factor is below 1.
enum imc_status imc_layout_check(const struct imc_layout *l, int n_ranks);
// Coordinates of world rank r (0 <= r < pp*ep*dp) and back.
struct imc_coords imc_layout_coords(const struct imc_layout *l, int rank);
int imc_layout_rank(const struct imc_layout *l, struct imc_coords co);

// ---- host placement ----

struct imc_place {
    int node;    // index into topo nodes[] of the rank's memory node (first of its block)
    int n_nodes; // nodes in the rank's block: nodes node .. node+n_nodes-1 of those with cores
    int gpu;     // GPU index 0..G-1, or -1 for a CPU rank
    int n_cores; // cores assigned
    int n_cpus;  // PUs assigned (all hardware threads of those cores)
    int *cpus;   // [n_cpus] PU OS indices, ascending; borrowed from the placement
    bool shared; // some of these cores also belong to another rank of this host
};

struct imc_placement {
    int n_ranks;             // ranks on this host
    struct imc_place *ranks; // [n_ranks] by local rank
    bool oversubscribed;     // some node has more ranks than cores
    bool gpus_shared;        // more ranks than GPUs
    int *cpu_storage;        // backing store of every ranks[i].cpus (owned)
};

// Plans n_ranks ranks of one host over topology t. n_gpus: -1 uses t's GPU count, 0 places CPU
// ranks only, G > 0 assumes G GPUs (NUMA nodes from t when it lists that many, else round-robin).
// Returns a new placement in *out; free with imc_placement_free. Borrows t only during the call.
// Returns IMC_ERR_ARG (logged) for n_ranks < 1 or n_gpus < -1, IMC_ERR_NUMA when t has no cores.
enum imc_status imc_place_plan(const struct imc_topo *t, int n_ranks, int n_gpus,
                               struct imc_placement **out);
void imc_placement_free(struct imc_placement *p);

// Writes cpus (ascending PU numbers) as a list "0-3,8,10-11" into buf; "" for n = 0; truncated
// lists end in "...". Returns buf.
char *imc_place_cpulist(const int *cpus, int n, char *buf, size_t size);

// ---- layer / expert split ----

struct imc_layer_cost {
    uint64_t bytes;        // weights every shard of the stage holds: attention, norms, router,
                           // shared experts, dense FFN
    uint64_t expert_bytes; // routed experts of the layer, all E of them (divided over ep)
    double flops;          // per token, for the part in bytes
    double expert_flops;   // per token, routed experts (all used experts; divided over ep)
};

struct imc_model_cost {
    int n_layer;                        // layers, >= 1
    const struct imc_layer_cost *layer; // [n_layer], borrowed
    struct imc_layer_cost embd;         // token embedding, on stage 0
    struct imc_layer_cost head;         // output norm and output matrix, on the last stage
    int n_expert;                       // routed experts per MoE layer, 0 for a dense model
};

// Stage boundaries: stage s owns layers [bounds[s], bounds[s+1]); bounds has pp+1 entries,
// bounds[0] = 0, bounds[pp] = n_layer. Returns IMC_ERR_ARG (logged) when pp exceeds the layers,
// ep > 1 on a dense model or ep exceeds the experts.
enum imc_status imc_plan_stages(const struct imc_model_cost *m, const struct imc_layout *l,
                                int *bounds);

// What `imc plan` prints per rank.
struct imc_rank_plan {
    int rank;                     // world rank
    struct imc_coords co;         // stage, shard, replica
    int layer_begin, layer_end;   // layers [begin, end) of the stage
    int expert_begin, expert_end; // routed experts [begin, end) of this shard; 0, 0 when dense
    uint64_t weight_bytes;        // weight bytes this rank holds
    uint64_t expert_bytes;        // of weight_bytes: its routed experts (what --experts-on cpu
                                  // keeps off a GPU)
    double flops;                 // FLOPs per token this rank computes
    double compute_share;         // flops / FLOPs per token of the whole model (sums to 1 over
                                  // the ranks of one replica)
    int numa_node;                // OS node number, -1 until placed
    int gpu;                      // GPU index, -1 for a CPU rank (or not placed)
    char cpus[64];                // PU list "0-3,8-11", "" until placed
    int threads;                  // its default -t: the physical cores of cpus (numa/threads.h),
                                  // 0 until placed
};

// Experts [*begin, *end) of shard `shard` of ep (0 <= shard < ep <= n_expert): the split above.
// n_expert 0 gives 0, 0.
void imc_plan_expert_range(int64_t n_expert, int ep, int shard, int64_t *begin, int64_t *end);
// Sequences [*begin, *end) of a batch of n_seq that shard `shard` of ep runs attention for (its
// own tokens under expert parallelism): the same even split; a shard may get none.
void imc_plan_seq_range(int64_t n_seq, int ep, int shard, int64_t *begin, int64_t *end);

// Fills out[0 .. pp*ep*dp) (by world rank) with the split of m over l; placement fields are left
// unplaced (-1, ""). Same errors as imc_plan_stages.
enum imc_status imc_plan_split(const struct imc_model_cost *m, const struct imc_layout *l,
                               struct imc_rank_plan *out);
// Copies a host placement entry into a rank plan (numa_node as OS number, gpu, cpus list).
void imc_plan_set_place(struct imc_rank_plan *rp, const struct imc_topo *t,
                        const struct imc_place *p);

#endif // IMC_NUMA_PLAN_H
