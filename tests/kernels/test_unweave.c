/*
 * tests/kernels/test_unweave: types/r_unweave.c. For the 16 interleaved types with a plain form
 * (q4_0_r8, q8_0_r8, iq4_nl_r4, mxfp4_r8, iq4_xs_r8, iq4_ks_r4, iq5_ks_r4, iq2_k_r4 .. iq5_k_r4,
 * q2_k_r4 .. q6_k_r4): random groups (finite scales, every quant byte random) re-laid as plain
 * rows of imc_type_unweaved(t) decode to the same floats bit for bit as the interleaved rows
 * through the interleaved decoders (types/r_legacy.c), for 3 groups of 3 blocks; the output has the
 * same size (a canary after it survives). Refused: types without such a form (q5_0_r4, whose
 * decoder rounds differently; q4_k), rows that are not whole groups, columns that are not whole
 * blocks; imc_type_unweaved maps the four and leaves every other type as it is.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"
#include "tests/kernels/kcheck.h"
#include "types/types.h"

enum { NB = 3, NG = 3 };

static void one(enum imc_type t, enum imc_type want_plain, struct krng *r)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)t);
    const struct imc_type_traits *tp = imc_type_traits((uint32_t)want_plain);
    CHECK(imc_type_unweaved(t) == want_plain, "%s: unweaved to %s", tr->name,
          imc_type_name((uint32_t)imc_type_unweaved(t)));
    const int64_t n = NB * tr->block_size, rows = NG * tr->rows;
    uint64_t rb = 0, rbp = 0;
    CHECK(imc_type_row_bytes((uint32_t)t, n, &rb) &&
              imc_type_row_bytes((uint32_t)want_plain, n, &rbp) && rb == rbp,
          "%s: row bytes %llu vs %llu", tr->name, (unsigned long long)rb, (unsigned long long)rbp);
    const size_t bytes = (size_t)(rb * (uint64_t)rows);
    uint8_t *src = malloc(bytes), *dst = malloc(bytes + 1);
    float *a = malloc(sizeof(float) * (size_t)(rows * n)),
          *b = malloc(sizeof(float) * (size_t)(rows * n));
    for (size_t i = 0; i < bytes; i++) {
        src[i] = (uint8_t)krng_next(r);
    }
    const bool e8m0 = t == IMC_TYPE_MXFP4_R8;
    for (int64_t g = 0; g < NG && tr->row_meta; g++) { // the rows' f32 scales lead the group
        for (int k = 0; k < tr->rows; k++) {
            const float d = krng_normal(r, 0.05f);
            memcpy(src + (size_t)g * (size_t)(rb * (uint64_t)tr->rows) + 4 * (size_t)k, &d, 4);
        }
    }
    for (int64_t g = 0; g < NG && !tr->row_meta; g++) { // the scales of each block: finite
        for (int64_t ib = 0; ib < NB; ib++) {
            uint8_t *blk = src + (size_t)g * (size_t)(rb * (uint64_t)tr->rows) +
                           (size_t)ib * (size_t)tr->rows * tr->type_size;
            for (int k = 0; k < tr->rows; k++) {
                if (e8m0) {
                    blk[k] = (uint8_t)(100 + krng_next(r) % 50);
                } else {
                    const uint16_t h = imc_fp32_to_fp16(krng_normal(r, 0.05f));
                    memcpy(blk + 2 * k, &h, 2);
                }
            }
        }
    }
    memset(dst, 0xA5, bytes + 1);
    CHECK(imc_type_unweave(t, src, rows, n, dst), "%s: unweave", tr->name);
    CHECK(dst[bytes] == 0xA5, "%s: wrote past the %zu bytes", tr->name, bytes);
    imc_type_decode_rows(tr, src, 0, rows, n, a);
    imc_type_decode_rows(tp, dst, 0, rows, n, b);
    CHECK(memcmp(a, b, sizeof(float) * (size_t)(rows * n)) == 0,
          "%s: the plain rows decode to other floats than the interleaved ones", tr->name);
    CHECK(!imc_type_unweave(t, src, rows - 1, n, dst) &&
              !imc_type_unweave(t, src, rows, n - 1, dst),
          "%s: a partial group or block accepted", tr->name);
    free(src);
    free(dst);
    free(a);
    free(b);
}

int main(void)
{
    struct krng r = {20261205};
    one(IMC_TYPE_Q4_0_R8, IMC_TYPE_Q4_0, &r);
    one(IMC_TYPE_Q8_0_R8, IMC_TYPE_Q8_0, &r);
    one(IMC_TYPE_IQ4_NL_R4, IMC_TYPE_IQ4_NL, &r);
    one(IMC_TYPE_MXFP4_R8, IMC_TYPE_MXFP4, &r);
    one(IMC_TYPE_IQ4_XS_R8, IMC_TYPE_IQ4_XS, &r);
    one(IMC_TYPE_IQ4_KS_R4, IMC_TYPE_IQ4_KS, &r);
    one(IMC_TYPE_IQ5_KS_R4, IMC_TYPE_IQ5_KS, &r);
    one(IMC_TYPE_IQ2_K_R4, IMC_TYPE_IQ2_K, &r);
    one(IMC_TYPE_IQ3_K_R4, IMC_TYPE_IQ3_K, &r);
    one(IMC_TYPE_IQ4_K_R4, IMC_TYPE_IQ4_K, &r);
    one(IMC_TYPE_IQ5_K_R4, IMC_TYPE_IQ5_K, &r);
    one(IMC_TYPE_Q2_K_R4, IMC_TYPE_Q2_K, &r);
    one(IMC_TYPE_Q3_K_R4, IMC_TYPE_Q3_K, &r);
    one(IMC_TYPE_Q4_K_R4, IMC_TYPE_Q4_K, &r);
    one(IMC_TYPE_Q5_K_R4, IMC_TYPE_Q5_K, &r);
    one(IMC_TYPE_Q6_K_R4, IMC_TYPE_Q6_K, &r);
    uint8_t buf[1024] = {0}, out[1024];
    CHECK(!imc_type_unweave(IMC_TYPE_Q5_0_R4, buf, 4, 32, out) &&
              !imc_type_unweave(IMC_TYPE_Q4_K, buf, 1, 256, out) &&
              !imc_type_unweave(IMC_TYPE_IQ2_XXS_R4, buf, 4, 256, out),
          "a type without a plain form accepted");
    CHECK(imc_type_unweaved(IMC_TYPE_Q5_0_R4) == IMC_TYPE_Q5_0_R4 &&
              imc_type_unweaved(IMC_TYPE_Q4_K) == IMC_TYPE_Q4_K &&
              imc_type_unweaved(IMC_TYPE_F32) == IMC_TYPE_F32,
          "unweaved changed a type without a plain form");
    return check_summary();
}
