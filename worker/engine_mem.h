/*
 * worker/engine_mem: the most the engine's activation arena holds in one call, computed from the
 * model's shapes alone (no weights read, nothing run): an upper bound of its high-water mark
 * for calls of n tokens, allocation by allocation as the forward code makes them
 * (worker/forward_llama.c, forward_deepseek2.c, moe.c, engine.c, engine_head.c; eng_f32 rounds
 * n floats + 4 bytes up to 64). Only the data-dependent sizes are taken at their worst: the rows a
 * shard receives from the others and the largest group of experts (routing). Shards whose rows go
 * through the host keep those rows there, not in the arena.
 *
 * On a table with its own memory (the CUDA table) the engine reserves one arena block of this
 * size at its first call (worker/engine.c), so a pass holds exactly that much device memory for
 * its activations; `imc plan --gpu-mem` counts it for each GPU rank. tests/cuda/test_engine_emu
 * checks that the bound holds and how close it is, on every preset.
 */
#ifndef IMC_WORKER_ENGINE_MEM_H
#define IMC_WORKER_ENGINE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/engine.h"

struct imc_model;

// What a rank's engine runs: its layers and experts, as worker/engine.h's options say.
struct imc_engine_mem_q {
    int64_t n_tok;                    // tokens per call (sequences x context)
    int64_t layer_begin, layer_end;   // layers run here (both 0: all)
    int64_t expert_begin, expert_end; // routed experts run here (both 0: all)
    int ep_size;                      // expert shards of the stage (1: none)
    enum imc_attn_path path;          // deepseek2: resolved (imc_attn_path_for)
    int64_t block_bytes;              // engine opts block_bytes (0: IMC_ENGINE_BLOCK_BYTES)
    bool hooks;                       // statistics hooks (imatrix): non-absorbed MLA keeps õ
    bool experts_on_cpu;              // the routed experts' buffers are host memory
    bool host_rows; // with expert shards (ep_size > 1) the routed rows go through the host (MPI;
                    // worker/exchange.c), as they always do with experts_on_cpu; else in the
                    // table's memory (NCCL)
};

// Bytes of the activation arena's high-water mark at q (an upper bound; 0 for n_tok < 1).
size_t imc_engine_act_bytes(const struct imc_model *m, const struct imc_engine_mem_q *q);

// Bytes of the table's memory one statistics collector (worker/stats_collect.h: an imatrix run
// keeps one per sequence of a call) holds at its most for the matrices this rank reports: a slot
// of n_per_row doubles per matrix, expert and head it runs (head: also the output matrix),
// in blocks of doubling size (worker/stats_collect_dev.c), each with a tail under one slot
// unused. An upper bound: an expert a chunk does not reach takes no slot. *slot_bytes (may be
// NULL): the slots' bytes alone.
size_t imc_engine_stats_bytes(const struct imc_model *m, const struct imc_engine_mem_q *q,
                              bool head, size_t *slot_bytes);

// The blocks' bytes for slots of slot_bytes in all, the largest of largest bytes (each a multiple
// of 256), as worker/stats_collect_dev.c takes them, at most.
size_t imc_engine_stats_blocks(size_t slot_bytes, size_t largest);

// What a GPU rank's run asks of the CUDA op table beyond q's engine calls.
struct imc_engine_scratch_q {
    bool q8;              // --matmul q8 (bf16 batches), else f32
    bool embed;           // the rank embeds the tokens (the first stage)
    int64_t score_rows;   // the most rows of the head's logits one scoring call takes (0: none)
    int64_t base_len;     // uint16 entries of a base row (--kld-base: coordinator/kld.h
                          // imc_kld_row_len), 0: no base rows
    int mmv_tok, mmq_tok; // the table's lines (kernels/cuda/policy.h; both 0: its defaults)
    bool host_hidden;     // the caller's hidden rows are host arrays (pipeline stages exchanging
                          // them through MPI: coordinator/dist.c), else the engine's
                          // (imc_engine_hidden_alloc)
};

// The CUDA op table's scratch (kernels/cuda/table_priv.h: one device buffer per slot, grown to
// the largest request and kept) at its most over such a run, per slot: the batch path's weight
// tile (CT_W), the strided operands of the matmuls that leave a group (CT_X, CT_Y: MLA's heads),
// the norm weights and biases the engine places in the table's memory once (CT_X), with
// --experts-on cpu a group's rows moved to the cpu table and back by index (CT_Y, CT_X, CT_A,
// CT_B), with shards exchanging through the host the rows sent and returned (CT_Y, CT_X) and a
// group's rows gathered and scattered on the host (CT_X, CT_Y), host hidden rows moved in and out
// (CT_X, CT_Y),
// the bf16 activations of a batch, the embedding rows, the scoring targets, the weighted sum's
// positions and the checks' index (CT_A), the routing ids and the base rows (CT_B), and the
// scores (CT_Y), at the table's lines. An upper bound: every matrix is taken at the
// most tokens it can get (an expert: every token of its stage). Logits the caller moves out to
// host arrays take more.
struct imc_engine_scratch {
    size_t tile, x, y, a, b;
};
// The sum of parts' slots (parts may be NULL).
size_t imc_engine_scratch_bytes(const struct imc_model *m, const struct imc_engine_mem_q *q,
                                const struct imc_engine_scratch_q *s,
                                struct imc_engine_scratch *parts);

#endif // IMC_WORKER_ENGINE_MEM_H
