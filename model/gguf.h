/*
 * model/gguf: GGUF v3 reader (mmap, split files) and writer (DESIGN.md §4 "GGUF").
 *
 * File layout (little-endian):
 *   u32 magic "GGUF" | u32 version (3) | u64 n_tensors | u64 n_kv
 *   n_kv × { string key | u32 value_type | value }
 *       string = u64 len + bytes (no NUL); array = u32 elem_type + u64 n + n elems
 *   n_tensors × { string name | u32 n_dims (1..4) | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to general.alignment (default 32) | tensor data (offsets relative to this start,
 *   each a multiple of the alignment)
 * Split files "<base>-0000K-of-0000N.gguf" carry split.no (u16), split.count (u16) and
 * split.tensors.count (i32); opening any part opens all parts; tensor lookups span them.
 *
 * Invariants after a successful open: every tensor lies inside its file, has a known type,
 * ne[0] is a multiple of the type's block size, and its byte size did not overflow. Keys and
 * tensor names are unique. Strings returned are NUL-terminated copies owned by the reader.
 */
#ifndef IMC_MODEL_GGUF_H
#define IMC_MODEL_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "core/pulse.h"
#include "core/status.h"
#include "types/types.h"

enum imc_gguf_vtype {
    IMC_GGUF_UINT8 = 0,
    IMC_GGUF_INT8 = 1,
    IMC_GGUF_UINT16 = 2,
    IMC_GGUF_INT16 = 3,
    IMC_GGUF_UINT32 = 4,
    IMC_GGUF_INT32 = 5,
    IMC_GGUF_FLOAT32 = 6,
    IMC_GGUF_BOOL = 7,
    IMC_GGUF_STRING = 8,
    IMC_GGUF_ARRAY = 9,
    IMC_GGUF_UINT64 = 10,
    IMC_GGUF_INT64 = 11,
    IMC_GGUF_FLOAT64 = 12,
    IMC_GGUF_VTYPE_COUNT
};

#define IMC_GGUF_MAX_DIMS 4
#define IMC_GGUF_DEFAULT_ALIGNMENT 32

struct imc_tensor_info {
    const char *name;   // GGUF tensor name, NUL-terminated, owned by the reader
    enum imc_type type; // ggml type id
    int n_dims;         // 1..4
    int64_t ne[IMC_GGUF_MAX_DIMS]; // elements per dim, ne[0] = row length (contiguous); unused = 1
    uint64_t nbytes;    // bytes of data
    const void *data;   // mapped, read-only; valid until imc_gguf_free
    int split;          // index of the split file holding it (0 for a single file)
    uint64_t offset;    // byte offset of data inside that file
};

// The elements of t (the product of its dims).
static inline int64_t imc_tensor_elems(const struct imc_tensor_info *t)
{
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

struct imc_gguf;

// ---- reader ----------------------------------------------------------------------------------

// Opens and validates path (all parts if it is a split file). Returns a new reader in *out; free
// with imc_gguf_free. On bad input logs "<path>: <cause>" once and returns IMC_ERR_IO,
// IMC_ERR_FORMAT or IMC_ERR_NOMEM; *out is then NULL.
enum imc_status imc_gguf_open(struct imc_gguf **out, const char *path);
// Parses an in-memory image (borrowed, must outlive the reader); name is used in messages. Used
// by the fuzzer and tests. Split keys are ignored.
enum imc_status imc_gguf_open_memory(struct imc_gguf **out, const void *data, uint64_t size,
                                     const char *name);
void imc_gguf_free(struct imc_gguf *g); // NULL is a no-op

const char *imc_gguf_path(const struct imc_gguf *g); // path given to open
uint32_t imc_gguf_version(const struct imc_gguf *g);
uint32_t imc_gguf_alignment(const struct imc_gguf *g);
int imc_gguf_n_splits(const struct imc_gguf *g);
uint64_t imc_gguf_file_size(const struct imc_gguf *g); // sum over splits

// Key/value access. Indices run 0..n_kv-1 over the first (or only) file's keys.
int64_t imc_gguf_n_kv(const struct imc_gguf *g);
int64_t imc_gguf_find_key(const struct imc_gguf *g, const char *key); // -1 when absent
const char *imc_gguf_key(const struct imc_gguf *g, int64_t i);
enum imc_gguf_vtype imc_gguf_kv_type(const struct imc_gguf *g, int64_t i);
// For ARRAY values: element type and count (element type STRING or any scalar type).
enum imc_gguf_vtype imc_gguf_arr_type(const struct imc_gguf *g, int64_t i);
uint64_t imc_gguf_arr_n(const struct imc_gguf *g, int64_t i);
// Scalar array data (little-endian, packed as in the file; BOOL as 1 byte). NULL for strings.
const void *imc_gguf_arr_data(const struct imc_gguf *g, int64_t i);
// Element j of a string array, NUL-terminated. *len (optional) receives its byte length,
// which may differ from strlen when the string holds NUL bytes.
const char *imc_gguf_arr_str(const struct imc_gguf *g, int64_t i, uint64_t j, uint64_t *len);
// String value of key i (type STRING).
const char *imc_gguf_str(const struct imc_gguf *g, int64_t i);

// Typed getters by key name. Each returns false when the key is absent or of a type that
// cannot be converted exactly (integers convert between widths when the value fits; FLOAT32 and
// FLOAT64 convert to each other; BOOL only to bool).
bool imc_gguf_get_u32(const struct imc_gguf *g, const char *key, uint32_t *out);
bool imc_gguf_get_i64(const struct imc_gguf *g, const char *key, int64_t *out);
bool imc_gguf_get_u64(const struct imc_gguf *g, const char *key, uint64_t *out);
bool imc_gguf_get_f32(const struct imc_gguf *g, const char *key, float *out);
bool imc_gguf_get_bool(const struct imc_gguf *g, const char *key, bool *out);
const char *imc_gguf_get_str(const struct imc_gguf *g, const char *key); // NULL if absent

// Tensors (over all splits, in file order).
int64_t imc_gguf_n_tensors(const struct imc_gguf *g);
const struct imc_tensor_info *imc_gguf_tensor(const struct imc_gguf *g, int64_t i);
const struct imc_tensor_info *imc_gguf_find_tensor(const struct imc_gguf *g, const char *name);

// ---- writer ----------------------------------------------------------------------------------

struct imc_gguf_writer;

// Returns a new writer; free with imc_gguf_writer_free. Keys keep insertion order; setting an
// existing key replaces its value in place.
struct imc_gguf_writer *imc_gguf_writer_init(void);
void imc_gguf_writer_free(struct imc_gguf_writer *w);

enum imc_status imc_gguf_set_u8(struct imc_gguf_writer *w, const char *key, uint8_t v);
enum imc_status imc_gguf_set_u16(struct imc_gguf_writer *w, const char *key, uint16_t v);
enum imc_status imc_gguf_set_u32(struct imc_gguf_writer *w, const char *key, uint32_t v);
enum imc_status imc_gguf_set_i32(struct imc_gguf_writer *w, const char *key, int32_t v);
enum imc_status imc_gguf_set_u64(struct imc_gguf_writer *w, const char *key, uint64_t v);
enum imc_status imc_gguf_set_f32(struct imc_gguf_writer *w, const char *key, float v);
enum imc_status imc_gguf_set_bool(struct imc_gguf_writer *w, const char *key, bool v);
enum imc_status imc_gguf_set_str(struct imc_gguf_writer *w, const char *key, const char *v);
// Array of scalars of type t (data copied; n elements, packed little-endian as in the file).
enum imc_status imc_gguf_set_arr(struct imc_gguf_writer *w, const char *key,
                                 enum imc_gguf_vtype t, const void *data, uint64_t n);
// Array of n NUL-terminated strings (copied).
enum imc_status imc_gguf_set_arr_str(struct imc_gguf_writer *w, const char *key,
                                     const char *const *strs, uint64_t n);
// Copies key i of reader g (any type, arrays included) into w.
enum imc_status imc_gguf_set_from(struct imc_gguf_writer *w, const struct imc_gguf *g, int64_t i);
enum imc_status imc_gguf_remove_key(struct imc_gguf_writer *w, const char *key);

// Adds a tensor. data is borrowed: it must stay valid until the writer is written or freed.
// Size is computed from type and ne; returns IMC_ERR_ARG for a bad shape, duplicate name or
// unknown type.
enum imc_status imc_gguf_add_tensor(struct imc_gguf_writer *w, const char *name,
                                    enum imc_type type, int n_dims, const int64_t *ne,
                                    const void *data);

// Writes one file atomically (temp + rename). Alignment from general.alignment if set, else 32.
enum imc_status imc_gguf_write(const struct imc_gguf_writer *w, const char *path);
// The same, calling pulse (may be NULL) after each tensor's bytes are written (core/pulse.h).
enum imc_status imc_gguf_write_pulse(const struct imc_gguf_writer *w, const char *path,
                                     const struct imc_pulse *pulse);
// Writes n_split files "<base>-%05d-of-%05d.gguf" (tensors spread in order, all keys in the
// first part, split.* keys in every part), each atomically.
enum imc_status imc_gguf_write_split(const struct imc_gguf_writer *w, const char *base,
                                     int n_split);

#endif // IMC_MODEL_GGUF_H
