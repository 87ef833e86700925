/*
 * tests/cuda/test_get_rows: the token embedding lookup (kernels/cuda/dequant.cu get_rows) for
 * every type with a device decoder, in the emulator (every thread order) and on a GPU when
 * there is one.
 *
 *   - output row r bitwise equal to imc_type_decode of row ids[r]; ids drawn with repeats and
 *     including the first and last rows, 1, 9 and 37 ids over tables of 3 to 40 rows, rows of
 *     1 to 5 blocks (and 1, 13, 77 elements of the float types);
 *   - an id outside the table (-1, n_rows) gives a row of NaN, its neighbours stay right;
 *   - no ids: nothing written; a type without a kernel: IMC_ERR_UNSUPPORTED.
 */
#include <math.h>

#include "../logcap.h"
#include "qtest.h"

// n_ids lookups into an n_rows x n table of type; bad_id >= 0 puts an out-of-range id there.
// Returns the number of wrong elements.
static int run_case(const struct kt_backend *b, enum imc_type type, int64_t n_rows, int64_t n,
                    int64_t n_ids, int64_t bad_id, uint64_t seed)
{
    struct krng r = {seed};
    uint64_t rb = 0;
    uint8_t *w = kt_weights(&r, type, n_rows, n, &rb);
    int32_t *ids = malloc((size_t)n_ids * sizeof(int32_t));
    float *ref = malloc((size_t)n * sizeof(float));
    float *got = malloc((size_t)(n_ids * n) * sizeof(float));
    void *dw = kt_upload(b, w, rb * (uint64_t)n_rows), *dids = NULL, *dy = NULL;
    int bad = 0;
    for (int64_t i = 0; ids && i < n_ids; i++) {
        ids[i] = i == 0 ? (int32_t)(n_rows - 1) : i == 1 ? 0 : (int32_t)(krng_next(&r) % n_rows);
    }
    if (ids && bad_id >= 0) {
        ids[bad_id] = bad_id % 2 ? -1 : (int32_t)n_rows;
    }
    dids = ids ? kt_upload(b, ids, (size_t)n_ids * sizeof(int32_t)) : NULL;
    if (!w || !ids || !ref || !got || !dw || !dids ||
        b->dev_alloc((size_t)(n_ids * n) * sizeof(float), &dy) != IMC_OK ||
        b->get_rows(NULL, type, dw, n_rows, n, dids, n_ids, dy) != IMC_OK ||
        kt_download(b, got, dy, (size_t)(n_ids * n) * sizeof(float)) != IMC_OK) {
        printf("  setup or launch failed\n");
        bad = 1;
        goto out;
    }
    for (int64_t i = 0; i < n_ids; i++) {
        if (i == bad_id) {
            for (int64_t j = 0; j < n; j++) {
                bad += !isnan(got[i * n + j]);
            }
            continue;
        }
        imc_type_decode(imc_type_traits((uint32_t)type), w, ids[i], n, 0, n, ref);
        bad += kt_cmp_bits32("row", got + i * n, ref, n);
    }
out:
    b->dev_free(dy);
    b->dev_free(dids);
    b->dev_free(dw);
    free(w);
    free(ids);
    free(ref);
    free(got);
    return bad;
}

static void run_type(const struct kt_backend *b, enum imc_type type, const char *how)
{
    // (table rows, blocks per row (elements for the float types), ids, out-of-range id or -1)
    static const int64_t cases[][4] = {{3, 1, 1, -1}, {40, 3, 9, 4}, {17, 5, 37, 3}};
    static const int64_t float_len[3] = {1, 13, 77};
    const int64_t bs = imc_type_traits((uint32_t)type)->block_size;
    for (int c = 0; c < 3; c++) {
        const int64_t n = bs == 1 ? float_len[c] : cases[c][1] * bs;
        const int bad = run_case(b, type, cases[c][0], n, cases[c][2], cases[c][3],
                                 (uint64_t)(1000 + type * 10 + c));
        CHECK(bad == 0, "%s %s: %lld ids into %lld x %lld: %d elements wrong", how,
              imc_type_name(type), (long long)cases[c][2], (long long)cases[c][0], (long long)n,
              bad);
    }
}

static void test_edges(const struct kt_backend *b)
{
    float sentinel[4] = {1, 2, 3, 4}, back[4];
    void *dy = kt_upload(b, sentinel, sizeof(sentinel));
    struct logcap cap;
    CHECK(b->get_rows(NULL, IMC_TYPE_F32, dy, 4, 1, NULL, 0, dy) == IMC_OK, "%s: no ids is a no-op",
          b->name);
    logcap_start(&cap);
    CHECK(b->get_rows(NULL, IMC_TYPE_IQ2_XXS_R4, dy, 1, 256, dy, 1, dy) == IMC_ERR_UNSUPPORTED &&
              cap.n_err == 1 && strstr(cap.text, "cuda get_rows: type iq2_xxs_r4") != NULL,
          "%s: iq2_xxs_r4 refused with one message: %.100s", b->name, cap.text);
    logcap_stop();
    CHECK(dy && kt_download(b, back, dy, sizeof(back)) == IMC_OK &&
              memcmp(back, sentinel, sizeof(back)) == 0,
          "%s: nothing written", b->name);
    b->dev_free(dy);
}

int main(void)
{
    const struct kt_backend *dev = kt_device();
    kt_run_types(dev, run_type);
    test_edges(&kt_emu);
    if (dev) {
        test_edges(dev);
    }
    return check_summary();
}
