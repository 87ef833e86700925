/*
 * model/gguf_priv.h: the reader's in-memory form and helpers shared by the GGUF reader
 * (gguf_read.c: parsing one image; gguf_split.c: opening files and split sets; gguf_access.c:
 * accessors) and the writer (gguf_write.c). Not part of the API; layout in model/gguf.h.
 *
 * Invariants after a successful parse: every key and tensor name is NUL-free; keys are unique
 * within a part and key_order lists key indices sorted by name; strings are NUL-terminated
 * copies that keep their byte length (values may hold NUL bytes).
 */
#ifndef IMC_MODEL_GGUF_PRIV_H
#define IMC_MODEL_GGUF_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "core/file.h"
#include "model/gguf.h"

struct imc_gguf_kv {
    char *key;                    // owned, NUL-free
    enum imc_gguf_vtype type;
    uint8_t scalar[8];            // scalar value bytes (little-endian), zero-padded
    char *str;                    // STRING value (owned, NUL-terminated)
    uint64_t str_len;             // its byte length
    enum imc_gguf_vtype arr_type; // ARRAY: element type (UINT8 = 0 for non-arrays)
    uint64_t arr_n;               // ARRAY: element count
    void *arr_data;               // scalar array bytes, packed as in the file (owned)
    char **arr_strs;              // string array: n pointers into arr_blob (owned)
    uint64_t *arr_lens;           // string array: n byte lengths (owned)
    char *arr_blob;               // string array storage, each string NUL-terminated (owned)
};

struct imc_gguf_part {
    struct imc_map map;               // the mapped file (zeroed for a memory image)
    const uint8_t *base;              // image bytes
    uint64_t size;                    // image bytes
    uint32_t version;
    uint32_t alignment;               // general.alignment or the default
    int64_t n_kv;
    struct imc_gguf_kv *kv;           // n_kv entries in file order
    int64_t *key_order;               // n_kv indices into kv, sorted by key
    int64_t n_tensors;
    struct imc_tensor_info *tensors;  // n_tensors entries; names owned
};

struct imc_gguf {
    char *path;                               // path given to open (owned)
    int n_parts;
    struct imc_gguf_part *parts;              // n_parts (1 unless split)
    int64_t n_tensors;                        // over all parts
    const struct imc_tensor_info **tensors;   // in file order over parts
    const struct imc_tensor_info **sorted;    // by name, for lookup
};

// Bytes of one scalar of type t (0 for STRING, ARRAY or an unknown type).
uint64_t imc_gguf_scalar_size(enum imc_gguf_vtype t);
// Raw little-endian bytes of scalar key i (8 bytes available).
const void *imc_gguf_scalar_bytes(const struct imc_gguf *g, int64_t i);
// Byte length of the STRING value of key i.
uint64_t imc_gguf_str_len(const struct imc_gguf *g, int64_t i);
// Value of an integer-typed key as int64; false for other types or a uint64 above INT64_MAX.
bool imc_gguf_kv_int(const struct imc_gguf_kv *k, int64_t *out);

// Returns a new reader with n_parts zeroed parts; free with imc_gguf_free. NULL on OOM.
struct imc_gguf *imc_gguf_alloc(const char *path, int n_parts);
// Parses the image pt->base[0, pt->size) into pt; name is used in messages. On bad bytes logs
// the cause and returns IMC_ERR_FORMAT (IMC_ERR_NOMEM when an allocation failed); imc_gguf_free
// releases what was read.
enum imc_status imc_gguf_parse_part(struct imc_gguf_part *pt, const char *name, int split);
// Builds g->tensors/g->sorted over all parts; IMC_ERR_FORMAT (logged) on duplicate names.
enum imc_status imc_gguf_index_tensors(struct imc_gguf *g);
// Index of key in part pt, or -1 (binary search over key_order).
int64_t imc_gguf_part_find_key(const struct imc_gguf_part *pt, const char *key);

#endif // IMC_MODEL_GGUF_PRIV_H
