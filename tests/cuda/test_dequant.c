/*
 * tests/cuda/test_dequant: the dequantize launcher (kernels/cuda/dequant.cu) for every type it
 * supports, in the emulator (every thread order) and on a GPU when there is one.
 *
 *   - f32 output bitwise equal to imc_type_decode_rows (the CPU decoders are the spec), f16 and
 *     bf16 output bitwise equal to imc_fp32_to_fp16 / imc_fp32_to_bf16 of it (round to nearest
 *     even); weights from imc's quantizers and random valid blocks (tests/cuda/qtest.h);
 *   - shapes: 1, 5 and 37 rows from row offsets 0, 3, 1; rows of 1, 13, 77 elements for the
 *     float types, else of 1, 3, 5 blocks (odd counts: 160 elements of q8_0, 1280 of q4_k);
 *   - every type the CPU decodes but the device does not: supports_type false and
 *     IMC_ERR_UNSUPPORTED; a row length off the block: IMC_ERR_ARG; nothing written then;
 *   - the checker itself: one flipped bit in the output must be reported.
 */
#include "../logcap.h"
#include "qtest.h"

#define N_OUT_TYPES 3
static const enum imc_type out_types[N_OUT_TYPES] = {IMC_TYPE_F32, IMC_TYPE_F16, IMC_TYPE_BF16};

// One case: rows [r0, r0 + nr) of an (r0 + nr + 2) x n matrix of type, to each output type.
// Returns the number of mismatching elements.
static int run_case(const struct kt_backend *b, enum imc_type type, int64_t r0, int64_t nr,
                    int64_t n, uint64_t seed)
{
    struct krng r = {seed};
    const int64_t rows = r0 + nr + 2, ne = nr * n;
    uint64_t rb = 0;
    uint8_t *w = kt_weights(&r, type, rows, n, &rb);
    float *ref = malloc((size_t)ne * sizeof(float)), *got = malloc((size_t)ne * sizeof(float));
    uint16_t *ref16 = malloc((size_t)ne * 2), *got16 = malloc((size_t)ne * 2);
    void *dw = kt_upload(b, w, rb * (uint64_t)rows), *dy = NULL;
    int bad = 0;
    if (!w || !ref || !got || !ref16 || !got16 || !dw || b->dev_alloc((size_t)ne * 4, &dy)) {
        printf("  setup failed\n");
        bad = 1;
        goto out;
    }
    imc_type_decode_rows(imc_type_traits((uint32_t)type), w, r0, nr, n, ref);
    for (int k = 0; k < N_OUT_TYPES; k++) {
        const enum imc_type ot = out_types[k];
        const enum imc_status st = b->dequantize(NULL, type, dw, n, r0, nr, ot, dy);
        if (st != IMC_OK || kt_download(b, ot == IMC_TYPE_F32 ? (void *)got : (void *)got16, dy,
                                        (size_t)ne * (ot == IMC_TYPE_F32 ? 4 : 2)) != IMC_OK) {
            printf("  dequantize to %s failed: %s\n", imc_type_name(ot), imc_status_str(st));
            bad++;
            continue;
        }
        if (ot == IMC_TYPE_F32) {
            bad += kt_cmp_bits32("f32", got, ref, ne);
            continue;
        }
        for (int64_t i = 0; i < ne; i++) {
            ref16[i] = ot == IMC_TYPE_F16 ? imc_fp32_to_fp16(ref[i]) : imc_fp32_to_bf16(ref[i]);
        }
        bad += kt_cmp_bits16(imc_type_name(ot), got16, ref16, ne);
    }
out:
    b->dev_free(dy);
    b->dev_free(dw);
    free(w);
    free(ref);
    free(got);
    free(ref16);
    free(got16);
    return bad;
}

// The shapes of one type: (r0, nr, blocks per row).
static void run_type(const struct kt_backend *b, enum imc_type type, const char *how)
{
    static const int64_t shapes[][3] = {{0, 1, 1}, {3, 5, 3}, {1, 37, 5}};
    static const int64_t float_len[3] = {1, 13, 77};
    const int64_t bs = imc_type_traits((uint32_t)type)->block_size;
    for (int s = 0; s < 3; s++) {
        const int64_t nb = bs == 1 ? float_len[s] : shapes[s][2];
        const int bad =
            run_case(b, type, shapes[s][0], shapes[s][1], nb * bs, (uint64_t)(type * 100 + s));
        CHECK(bad == 0, "%s %s: %lld x %lld from row %lld: %d elements differ", how,
              imc_type_name(type), (long long)shapes[s][1], (long long)(nb * bs),
              (long long)shapes[s][0], bad);
    }
}

static void test_rejects(const struct kt_backend *b)
{
    float sentinel[4] = {1, 2, 3, 4}, back[4];
    void *dy = kt_upload(b, sentinel, sizeof(sentinel));
    struct logcap cap;
    int n_unsupported = 0;
    bool ok = dy != NULL;
    logcap_start(&cap);
    for (uint32_t t = 0; ok && t < IMC_TYPE_MAX_ID; t++) {
        const struct imc_type_traits *tr = imc_type_traits(t);
        if (!tr || b->supports_type((enum imc_type)t)) {
            continue;
        }
        n_unsupported++;
        ok = b->dequantize(NULL, (enum imc_type)t, dy, tr->block_size * tr->rows, 0, 1,
                           IMC_TYPE_F32, dy) == IMC_ERR_UNSUPPORTED;
    }
    logcap_stop();
    CHECK(ok && n_unsupported > 0 && cap.n_err == n_unsupported,
          "%s: %d types without a kernel report IMC_ERR_UNSUPPORTED, one error each", b->name,
          n_unsupported);
    CHECK(strstr(cap.text, "type iq2_xxs_r4 (id 216) has no device kernel") != NULL,
          "%s: the message names the type: %.80s", b->name, cap.text);
    logcap_start(&cap);
    CHECK(b->dequantize(NULL, IMC_TYPE_Q4_K, dy, 128, 0, 1, IMC_TYPE_F32, dy) == IMC_ERR_ARG,
          "%s: a row of 128 q4_k elements is refused", b->name);
    CHECK(b->dequantize(NULL, IMC_TYPE_Q8_0, dy, 32, 0, 1, IMC_TYPE_Q8_0, dy) ==
              IMC_ERR_UNSUPPORTED,
          "%s: q8_0 output is refused", b->name);
    logcap_stop();
    CHECK(strstr(cap.text, "rows of 128 elements: expected a positive multiple of q4_k's block "
                           "of 256") != NULL,
          "%s: the message gives the row and the block: %.200s", b->name, cap.text);
    CHECK(dy && kt_download(b, back, dy, sizeof(back)) == IMC_OK &&
              memcmp(back, sentinel, sizeof(back)) == 0,
          "%s: refused calls write nothing", b->name);
    b->dev_free(dy);
}

static void test_checker(void)
{
    const float a[3] = {1.0f, -2.5f, 0.0f};
    float c[3];
    memcpy(c, a, sizeof(c));
    CHECK(kt_cmp_bits32("self", c, a, 3) == 0, "checker: equal arrays pass");
    c[1] = nextafterf(c[1], 0.0f);
    printf("  self-check of the checker (one mismatch expected below):\n");
    CHECK(kt_cmp_bits32("self", c, a, 3) == 1, "checker: a one-ulp change is caught");
}

int main(void)
{
    const struct kt_backend *dev = kt_device();
    int n_types = 0;
    test_checker();
    for (uint32_t t = kt_next_type(&kt_emu, 0); t < IMC_TYPE_MAX_ID;
         t = kt_next_type(&kt_emu, t + 1)) {
        CHECK(kt_can_make((enum imc_type)t), "test can make %s weights", imc_type_name(t));
        n_types++;
    }
    CHECK(n_types >= 45, "%d types have device decoders", n_types);
    kt_run_types(dev, run_type);
    test_rejects(&kt_emu);
    if (dev) {
        test_rejects(dev);
    }
    return check_summary();
}
