/*
 * model/arch_qwen3: tensors of the "qwen3" and "qwen3moe" architectures: llama's (the same keys
 * and GQA tensors, dense or MoE FFN) plus an RMS norm weight per head for q and k
 * (blk.N.attn_q_norm / attn_k_norm, [head_dim]). Names as llama.cpp's llama-arch.cpp. The
 * forward differences (the per-head norms, NEOX RoPE) are worker/forward_llama.c's.
 */
#include "model/arch_priv.h"

enum imc_status imc_arch_qwen3_tensors(const struct imc_arch_ld *ld, struct imc_model *m)
{
    IMC_TRY(imc_arch_llama_tensors(ld, m));
    const int64_t hd = m->hp.head_dim;
    for (int il = 0; il < m->hp.n_layer; il++) {
        struct imc_layer *l = &m->layers[il];
        IMC_TRY(
            imc_arch_tensor(ld, "blk.%d.attn_q_norm.weight", il, imc_shape1(hd), true, &l->q_norm));
        IMC_TRY(
            imc_arch_tensor(ld, "blk.%d.attn_k_norm.weight", il, imc_shape1(hd), true, &l->k_norm));
    }
    return IMC_OK;
}
