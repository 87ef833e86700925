/*
 * model/gguf_priv.h: helpers shared by the GGUF reader and writer; not part of the API.
 */
#ifndef IMC_MODEL_GGUF_PRIV_H
#define IMC_MODEL_GGUF_PRIV_H

#include <stdint.h>

#include "model/gguf.h"

// Bytes of one scalar of type t (0 for STRING, ARRAY or an unknown type).
uint64_t imc_gguf_scalar_size(enum imc_gguf_vtype t);
// Raw little-endian bytes of scalar key i (8 bytes available).
const void *imc_gguf_scalar_bytes(const struct imc_gguf *g, int64_t i);
// qsort comparator for an array of const char *.
int imc_gguf_cmp_str(const void *a, const void *b);

#endif // IMC_MODEL_GGUF_PRIV_H
