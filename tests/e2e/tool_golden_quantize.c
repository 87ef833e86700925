/*
 * tests/e2e/tool_golden_quantize: a stand-in for an external quantizer (llama-quantize) that
 * writes tensor types imc reads but cannot write, for tests that must not need the reference
 * tools: `tool_golden_quantize MODEL OUT TYPE` copies MODEL to OUT (every key, every tensor)
 * with each 2D `blk.*` weight whose rows fit replaced by the reference's golden blocks of TYPE
 * (tests/data/types/<type>.golden under $IMC_SOURCE_DIR), tiled: group g of the tensor's
 * interleaved rows (a row, for plain types) takes the per-row meta of golden group g and, for
 * its c-th stretch of golden row length, the blocks of golden group g + c (modulo the golden
 * groups). The values are the reference's decoded golden rows, not MODEL's weights: a model
 * that scores, deterministically, with the bytes the reference's quantizer wrote. Prints the
 * number of tensors replaced. Exit 1 with a message on any error.
 */
#include <ctype.h>

#include "../golden.h"
#include "model/gguf.h"
#include "types/types.h"

static bool fits(const struct imc_tensor_info *t, const struct golden *g)
{
    return strncmp(t->name, "blk.", 4) == 0 && t->n_dims == 2 && t->ne[0] % g->n_per_row == 0 &&
           t->ne[1] % g->rows == 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tool_golden_quantize MODEL OUT TYPE\n");
        return 1;
    }
    char name[32], path[4096];
    size_t n = 0;
    for (; argv[3][n] && n < sizeof(name) - 1; n++) {
        name[n] = (char)tolower((unsigned char)argv[3][n]);
    }
    name[n] = '\0';
    const char *src = getenv("IMC_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/tests/data/types/%s.golden", src ? src : ".", name);
    struct golden g;
    if (!read_golden(path, &g) || !imc_type_traits(g.id)) {
        fprintf(stderr, "tool_golden_quantize: %s: no golden blocks of a type imc reads\n", path);
        return 1;
    }
    struct imc_gguf *in = NULL;
    if (imc_gguf_open(&in, argv[1]) != IMC_OK) {
        fprintf(stderr, "tool_golden_quantize: cannot read %s\n", argv[1]);
        return 1;
    }
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    const int64_t nt = imc_gguf_n_tensors(in);
    uint8_t **owned = calloc((size_t)nt, sizeof(*owned));
    bool ok = w && owned;
    for (int64_t i = 0; ok && i < imc_gguf_n_kv(in); i++) {
        ok = imc_gguf_set_from(w, in, i) == IMC_OK;
    }
    int replaced = 0;
    for (int64_t i = 0; ok && i < nt; i++) {
        const struct imc_tensor_info *t = imc_gguf_tensor(in, i);
        enum imc_type type = t->type;
        const void *data = t->data;
        uint64_t size = 0;
        if (fits(t, &g)) {
            ok = (owned[i] = golden_tile(&g, t->ne[0], t->ne[1], &size)) != NULL;
            type = (enum imc_type)g.id;
            data = owned[i];
            replaced++;
        }
        ok = ok && imc_gguf_add_tensor(w, t->name, type, t->n_dims, t->ne, data) == IMC_OK;
    }
    ok = ok && imc_gguf_write(w, argv[2]) == IMC_OK;
    if (ok) {
        printf("tool_golden_quantize: %d tensor(s) as %s\n", replaced, g.name);
    } else {
        fprintf(stderr, "tool_golden_quantize: writing %s failed\n", argv[2]);
    }
    for (int64_t i = 0; owned && i < nt; i++) {
        free(owned[i]);
    }
    free(owned);
    imc_gguf_writer_free(w);
    imc_gguf_free(in);
    free(g.bytes);
    free(g.values);
    return ok ? 0 : 1;
}
