/*
 * tests/fuzz/fuzz_gguf: libFuzzer target for the GGUF reader (model/gguf.h). Each input is
 * parsed with imc_gguf_open_memory; when it opens, every key, array element, string and tensor
 * byte is touched (so that ASan sees any out-of-bounds view), lookups by name are checked
 * against the indexed entries, and every key is copied into a writer with imc_gguf_set_from.
 * Built by cmake/imc_fuzz.cmake (-DIMC_FUZZ=ON, clang). Seed corpus: tests/fuzz/corpus/gguf.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/log.h"
#include "model/gguf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void drop_log(enum imc_log_level level, const char *line, void *user)
{
    (void)level, (void)line, (void)user;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    imc_log_set_sink(drop_log, NULL); // the process-wide sink, set once as main does
    return 0;
}

// A value the compiler cannot drop: every byte read feeds it.
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211u;
    }
    return h;
}

static uint64_t walk_kv(const struct imc_gguf *g, int64_t i, uint64_t h)
{
    static const size_t esize[IMC_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    const char *key = imc_gguf_key(g, i);
    enum imc_gguf_vtype t = imc_gguf_kv_type(g, i);
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f;
    bool b;
    if (imc_gguf_find_key(g, key) != i) {
        __builtin_trap(); // keys are unique, so lookup must find this very entry
    }
    h = mix(h, key, strlen(key) + 1);
    h += imc_gguf_get_u32(g, key, &u32) + imc_gguf_get_u64(g, key, &u64) +
         imc_gguf_get_i64(g, key, &i64) + imc_gguf_get_f32(g, key, &f) +
         imc_gguf_get_bool(g, key, &b);
    if (t == IMC_GGUF_STRING) {
        const char *s = imc_gguf_str(g, i);
        h = mix(h, s, strlen(s) + 1);
    } else if (t == IMC_GGUF_ARRAY) {
        enum imc_gguf_vtype et = imc_gguf_arr_type(g, i);
        uint64_t n = imc_gguf_arr_n(g, i);
        if (et == IMC_GGUF_STRING) {
            for (uint64_t j = 0; j < n; j++) {
                uint64_t len;
                const char *s = imc_gguf_arr_str(g, i, j, &len);
                h = mix(h, s, (size_t)len + 1);
            }
        } else {
            h = mix(h, imc_gguf_arr_data(g, i), (size_t)n * esize[et]);
        }
    }
    return h;
}

static uint64_t walk_tensors(const struct imc_gguf *g, uint64_t h)
{
    for (int64_t i = 0; i < imc_gguf_n_tensors(g); i++) {
        const struct imc_tensor_info *t = imc_gguf_tensor(g, i);
        if (imc_gguf_find_tensor(g, t->name) != t || t->n_dims < 1 || t->n_dims > 4 ||
            t->offset % imc_gguf_alignment(g) != 0) {
            __builtin_trap();
        }
        h = mix(h, t->name, strlen(t->name) + 1);
        h = mix(h, t->data, (size_t)t->nbytes);
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct imc_gguf *g = NULL;
    if (imc_gguf_open_memory(&g, data, size, "fuzz") != IMC_OK) {
        if (g) {
            __builtin_trap(); // failure must leave *out NULL
        }
        return 0;
    }
    uint64_t h = imc_gguf_version(g) + imc_gguf_file_size(g);
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    for (int64_t i = 0; i < imc_gguf_n_kv(g); i++) {
        h = walk_kv(g, i, h);
        if (w && imc_gguf_set_from(w, g, i) != IMC_OK) {
            __builtin_trap(); // any key the reader accepts can be copied
        }
    }
    h = walk_tensors(g, h);
    imc_gguf_writer_free(w);
    imc_gguf_free(g);
    return h == 42 ? 0 : 0;
}
