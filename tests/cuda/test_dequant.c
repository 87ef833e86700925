/*
 * tests/cuda/test_dequant: the dequantize launcher (kernels/cuda/dequant.cu) for every type it
 * supports, in the emulator (every thread order) and on a GPU when there is one.
 *
 *   - f32 output bitwise equal to imc_type_decode_rows (the CPU decoders are the spec), f16 and
 *     bf16 output bitwise equal to imc_fp32_to_fp16 / imc_fp32_to_bf16 of it (round to nearest
 *     even); weights from imc's quantizers and random valid blocks (tests/cuda/qtest.h);
 *   - shapes: 1, 5 and 37 rows from row offsets 0, 3, 1; rows of 1, 13, 77 elements for the
 *     float types, else of 1, 3, 5 blocks (odd counts: 160 elements of q8_0, 1280 of q4_k);
 *   - the row forms of the 7 interleaved types without a plain form (q5_0_r4, q6_0_r4, iq1_s_r4,
 *     iq1_m_r4, q8_k_r8, q8_k_r16, q8_kv_r8; kernels/cuda/qrowform.cuh): random groups (finite
 *     scales) re-laid by imc_type_unweave, bitwise the CPU's interleaved decoders on the groups,
 *     3 shapes from row offsets 0, 3, 1; the other 23 have no decoder under their own names;
 *   - every type the CPU decodes but the device does not: supports_type false and
 *     IMC_ERR_UNSUPPORTED; a row length off the block: IMC_ERR_ARG; nothing written then;
 *   - the checker itself: one flipped bit in the output must be reported.
 */
#include "../logcap.h"
#include "qtest.h"

#define N_OUT_TYPES 3
static const enum imc_type out_types[N_OUT_TYPES] = {IMC_TYPE_F32, IMC_TYPE_F16, IMC_TYPE_BF16};

// Rows [r0, r0 + nr) of the device matrix dw (rows of n elements of type) dequantized on b to
// each output type against ref (their f32 values; f16 and bf16: its rounding). Returns the
// number of mismatching elements (or failed calls).
static int check_outputs(const struct kt_backend *b, enum imc_type type, const void *dw, int64_t n,
                         int64_t r0, int64_t nr, const float *ref)
{
    const int64_t ne = nr * n;
    float *got = malloc((size_t)ne * sizeof(float));
    uint16_t *ref16 = malloc((size_t)ne * 2), *got16 = malloc((size_t)ne * 2);
    void *dy = NULL;
    int bad = 0;
    if (!got || !ref16 || !got16 || b->dev_alloc((size_t)ne * 4, &dy) != IMC_OK) {
        printf("  setup failed\n");
        bad = 1;
    }
    for (int k = 0; k < N_OUT_TYPES && !bad; k++) {
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
    b->dev_free(dy);
    free(got);
    free(ref16);
    free(got16);
    return bad;
}

// One case: rows [r0, r0 + nr) of an (r0 + nr + 2) x n matrix of type, to each output type.
// Returns the number of mismatching elements.
static int run_case(const struct kt_backend *b, enum imc_type type, int64_t r0, int64_t nr,
                    int64_t n, uint64_t seed)
{
    struct krng r = {seed};
    const int64_t rows = r0 + nr + 2;
    uint64_t rb = 0;
    uint8_t *w = kt_weights(&r, type, rows, n, &rb);
    float *ref = malloc((size_t)(nr * n) * sizeof(float));
    void *dw = w ? kt_upload(b, w, rb * (uint64_t)rows) : NULL;
    int bad = 1;
    if (w && ref && dw) {
        imc_type_decode_rows(imc_type_traits((uint32_t)type), w, r0, nr, n, ref);
        bad = check_outputs(b, type, dw, n, r0, nr, ref);
    }
    b->dev_free(dw);
    free(w);
    free(ref);
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

// The row forms (types.h imc_type_unweave; kernels/cuda/qrowform.cuh): groups of a file's rows of
// interleaved type, re-laid on the host, dequantized on b: rows [r0, r0 + nr) bitwise the CPU's
// interleaved decoders on the groups (f32; f16 and bf16 their rounding), 3 shapes.
static void run_rowform(const struct kt_backend *b, enum imc_type type, const char *how)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    static const int64_t shapes[][3] = {{0, 1, 1}, {3, 6, 3}, {1, 30, 5}}; // r0, nr, blocks
    for (int s = 0; s < 3; s++) {
        struct krng r = {(uint64_t)(type * 100 + s)};
        const int64_t n = shapes[s][2] * tr->block_size, r0 = shapes[s][0], nr = shapes[s][1];
        const int64_t rows = (r0 + nr + tr->rows - 1) / tr->rows * tr->rows;
        uint64_t rb = 0;
        imc_type_row_bytes((uint32_t)type, n, &rb);
        const size_t bytes = (size_t)(rb * (uint64_t)rows);
        uint8_t *w = kalloc_woven(&r, type, rows, n, NULL), *rf = malloc(bytes);
        float *ref = malloc((size_t)(nr * n) * sizeof(float));
        const bool laid = w && rf && ref && imc_type_unweave(type, w, rows, n, rf);
        void *dw = laid ? kt_upload(b, rf, bytes) : NULL;
        int bad = 1;
        if (dw) {
            imc_type_decode_rows(tr, w, r0, nr, n, ref);
            bad = check_outputs(b, type, dw, n, r0, nr, ref);
        }
        CHECK(bad == 0, "%s %s row form: %lld x %lld from row %lld: %d differ", how, tr->name,
              (long long)nr, (long long)n, (long long)r0, bad);
        b->dev_free(dw);
        free(w);
        free(rf);
        free(ref);
    }
}

// The interleaved types b decodes (their row forms: the 7 without a plain form) in each emulator
// thread order and on the device; the other 23 it holds as plain rows, so it has no decoder for
// them under their own names.
static void rowforms(const struct kt_backend *dev)
{
    int n_rowform = 0, n_claimed = 0;
    for (uint32_t t = 0; t < IMC_TYPE_MAX_ID; t++) {
        const struct imc_type_traits *tr = imc_type_traits(t);
        if (!tr || tr->rows == 1) {
            continue;
        }
        const bool own = imc_type_unweaved((enum imc_type)t) == (enum imc_type)t;
        n_rowform += own;
        n_claimed += kt_emu.supports_type((enum imc_type)t);
        CHECK(kt_emu.supports_type((enum imc_type)t) == own, "%s: a decoder %s", tr->name,
              own ? "missing" : "for a type held as plain rows");
        for (int o = 0; own && o < CUEMU_ORDER_COUNT; o++) {
            cuemu_set_order(kt_orders[o], 7u + (unsigned)o);
            run_rowform(&kt_emu, (enum imc_type)t, cuemu_order_name(kt_orders[o]));
        }
        if (own && dev) {
            run_rowform(dev, (enum imc_type)t, "gpu");
        }
    }
    CHECK(n_rowform == 7 && n_claimed == 7, "%d row forms, %d decoded", n_rowform, n_claimed);
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
    rowforms(dev);
    test_rejects(&kt_emu);
    if (dev) {
        test_rejects(dev);
    }
    return check_summary();
}
