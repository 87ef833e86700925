/*
 * types/r_unweave_priv.h: the re-layouts of types/r_unweave.c that live in files of their own
 * (types/r_unweave_grid.c, types/r_rowform.c). Each takes block b of a group (the group's
 * interleaved block, after the rows' meta) and writes row k's block p (the type's bytes per
 * block, types.def ts). Private to types/.
 */
#ifndef IMC_TYPES_R_UNWEAVE_PRIV_H
#define IMC_TYPES_R_UNWEAVE_PRIV_H

#include <stdint.h>

// To plain blocks (types/r_unweave_grid.c): iq2_xxs_r4 -> iq2_xxs, iq2_xs_r4 -> iq2_xs,
// iq2_s_r4 -> iq2_s, iq3_xxs_r4 -> iq3_xxs, iq3_s_r4 -> iq3_s, iq2_bn_r4 -> iq2_bn.
void imc_unweave_iq2_xxs_r4(const uint8_t *b, int k, uint8_t *p);
void imc_unweave_iq2_xs_r4(const uint8_t *b, int k, uint8_t *p);
void imc_unweave_iq2_s_r4(const uint8_t *b, int k, uint8_t *p);
void imc_unweave_iq3_xxs_r4(const uint8_t *b, int k, uint8_t *p);
void imc_unweave_iq3_s_r4(const uint8_t *b, int k, uint8_t *p);
void imc_unweave_iq2_bn_r4(const uint8_t *b, int k, uint8_t *p);

// To the row forms of the types without a plain form (types/r_rowform.c): q5_0_r4, q6_0_r4,
// iq1_s_r4, iq1_m_r4, q8_k_r8, q8_k_r16, q8_kv_r8.
void imc_rowform_q5_0_r4(const uint8_t *b, int k, uint8_t *p);
void imc_rowform_q6_0_r4(const uint8_t *b, int k, uint8_t *p);
void imc_rowform_iq1_s_r4(const uint8_t *b, int k, uint8_t *p);
void imc_rowform_iq1_m_r4(const uint8_t *b, int k, uint8_t *p);
void imc_rowform_q8_k_r8(const uint8_t *b, int k, uint8_t *p);
void imc_rowform_q8_k_r16(const uint8_t *b, int k, uint8_t *p);
void imc_rowform_q8_kv_r8(const uint8_t *b, int k, uint8_t *p);

#endif // IMC_TYPES_R_UNWEAVE_PRIV_H
