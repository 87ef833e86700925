/*
 * tests/kernels/test_unweave: types/r_unweave.c, r_unweave_grid.c and r_rowform.c, for each of
 * the 30 interleaved types (the test counts them in types.def):
 *   - the 23 with a plain form (q4_0_r8, q8_0_r8, iq4_nl_r4, mxfp4_r8, iq4_xs_r8, iq4_ks_r4,
 *     iq5_ks_r4, iq2_k_r4 .. iq5_k_r4, q2_k_r4 .. q6_k_r4, iq2_xxs_r4, iq2_xs_r4, iq2_s_r4,
 *     iq3_xxs_r4, iq3_s_r4, iq2_bn_r4, bf16_r16): random groups (finite scales, every other byte
 *     random) re-laid as plain rows of imc_type_unweaved(t) decode to the same floats bit for bit
 *     as the interleaved rows through the interleaved decoders, for 3 groups of 3 blocks; the
 *     five lattice types, whose scales the two forms compute in other orders, also with every
 *     finite fp16 scale; the output has the same size (a canary after it survives);
 *   - the 7 without (q5_0_r4, q6_0_r4, iq1_s_r4, iq1_m_r4, q8_k_r8, q8_k_r16, q8_kv_r8): re-laid
 *     into their row forms, as many bytes and as many one bits, each row led by its
 *     meta (their values: cuda.dequant); imc_type_unweaved leaves them as they are;
 *   - refused: plain types, rows that are not whole groups, columns that are not whole blocks
 *     (bf16_r16: pairs of columns).
 */
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"
#include "tests/kernels/kcheck.h"
#include "types/types.h"

enum { NB = 3, NG = 3 };

// Types with a plain form: ng groups of nb blocks re-laid as plain rows decode to the
// interleaved rows' floats bit for bit; the output has the same size (a canary after it
// survives); partial groups and blocks are refused.
static void one(enum imc_type t, enum imc_type want_plain, int64_t ng, int64_t nb, bool sweep,
                struct krng *r)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)t);
    const struct imc_type_traits *tp = imc_type_traits((uint32_t)want_plain);
    CHECK(imc_type_unweaved(t) == want_plain, "%s: unweaved to %s", tr->name,
          imc_type_name((uint32_t)imc_type_unweaved(t)));
    const int64_t n = nb * tr->block_size, rows = ng * tr->rows;
    uint64_t rb = 0, rbp = 0;
    CHECK(imc_type_row_bytes((uint32_t)t, n, &rb) &&
              imc_type_row_bytes((uint32_t)want_plain, n, &rbp) && rb == rbp,
          "%s: row bytes %llu vs %llu", tr->name, (unsigned long long)rb, (unsigned long long)rbp);
    const size_t bytes = (size_t)(rb * (uint64_t)rows);
    int64_t nd = 0; // the finite fp16 scales set so far (sweep)
    uint8_t *src = kalloc_woven(r, t, rows, n, sweep ? &nd : NULL), *dst = malloc(bytes + 1);
    float *a = malloc(sizeof(float) * (size_t)(rows * n)),
          *b = malloc(sizeof(float) * (size_t)(rows * n));
    memset(dst, 0xA5, bytes + 1);
    CHECK(imc_type_unweave(t, src, rows, n, dst), "%s: unweave", tr->name);
    CHECK(dst[bytes] == 0xA5, "%s: wrote past the %zu bytes", tr->name, bytes);
    imc_type_decode_rows(tr, src, 0, rows, n, a);
    imc_type_decode_rows(tp, dst, 0, rows, n, b);
    int64_t bad = 0;
    for (int64_t i = 0; i < rows * n; i++) {
        bad += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    }
    CHECK(bad == 0, "%s: %lld of %lld plain values differ from the interleaved ones%s", tr->name,
          (long long)bad, (long long)(rows * n), sweep ? " (every fp16 scale)" : "");
    CHECK(!imc_type_unweave(t, src, rows - 1, n, dst) &&
              !imc_type_unweave(t, src, rows, n - 1, dst),
          "%s: a partial group or block accepted", tr->name);
    free(src);
    free(dst);
    free(a);
    free(b);
}

// Types without a plain form: re-laid into their row forms (whose values the device decoders'
// tests check: cuda.dequant), as many bytes, the group's bits rearranged (here: as many ones),
// each row led by its meta.
static void rowform(enum imc_type t, struct krng *r)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)t);
    CHECK(imc_type_unweaved(t) == t, "%s: unweaved to %s", tr->name,
          imc_type_name((uint32_t)imc_type_unweaved(t)));
    const int64_t n = NB * tr->block_size, rows = NG * tr->rows;
    uint64_t rb = 0;
    CHECK(imc_type_row_bytes((uint32_t)t, n, &rb), "%s: row bytes", tr->name);
    const size_t bytes = (size_t)(rb * (uint64_t)rows);
    uint8_t *src = kalloc_woven(r, t, rows, n, NULL), *dst = malloc(bytes + 1);
    memset(dst, 0xA5, bytes + 1);
    CHECK(imc_type_unweave(t, src, rows, n, dst), "%s: re-laid", tr->name);
    CHECK(dst[bytes] == 0xA5, "%s: wrote past the %zu bytes", tr->name, bytes);
    long ones = 0;
    for (size_t i = 0; i < bytes; i++) {
        ones += __builtin_popcount(src[i]) - __builtin_popcount(dst[i]);
    }
    CHECK(ones == 0, "%s: the row form is not a rearrangement of the group's bits (%ld ones more)",
          tr->name, ones);
    for (int64_t g = 0; g < NG && tr->row_meta; g++) {
        for (int k = 0; k < tr->rows; k++) {
            CHECK(memcmp(dst + (size_t)(g * tr->rows + k) * rb,
                         src + (size_t)g * rb * (size_t)tr->rows + (size_t)k * tr->row_meta,
                         tr->row_meta) == 0,
                  "%s: row %d of group %lld does not start with its meta", tr->name, k,
                  (long long)g);
        }
    }
    CHECK(!imc_type_unweave(t, src, rows - 1, n, dst) &&
              !imc_type_unweave(t, src, rows, n - 1, dst),
          "%s: a partial group or block accepted", tr->name);
    free(src);
    free(dst);
}

int main(void)
{
    struct krng r = {20261205};
    static const enum imc_type pairs[][2] = {
        {IMC_TYPE_Q4_0_R8, IMC_TYPE_Q4_0},       {IMC_TYPE_Q8_0_R8, IMC_TYPE_Q8_0},
        {IMC_TYPE_IQ4_NL_R4, IMC_TYPE_IQ4_NL},   {IMC_TYPE_MXFP4_R8, IMC_TYPE_MXFP4},
        {IMC_TYPE_IQ4_XS_R8, IMC_TYPE_IQ4_XS},   {IMC_TYPE_IQ4_KS_R4, IMC_TYPE_IQ4_KS},
        {IMC_TYPE_IQ5_KS_R4, IMC_TYPE_IQ5_KS},   {IMC_TYPE_IQ2_K_R4, IMC_TYPE_IQ2_K},
        {IMC_TYPE_IQ3_K_R4, IMC_TYPE_IQ3_K},     {IMC_TYPE_IQ4_K_R4, IMC_TYPE_IQ4_K},
        {IMC_TYPE_IQ5_K_R4, IMC_TYPE_IQ5_K},     {IMC_TYPE_Q2_K_R4, IMC_TYPE_Q2_K},
        {IMC_TYPE_Q3_K_R4, IMC_TYPE_Q3_K},       {IMC_TYPE_Q4_K_R4, IMC_TYPE_Q4_K},
        {IMC_TYPE_Q5_K_R4, IMC_TYPE_Q5_K},       {IMC_TYPE_Q6_K_R4, IMC_TYPE_Q6_K},
        {IMC_TYPE_IQ2_XXS_R4, IMC_TYPE_IQ2_XXS}, {IMC_TYPE_IQ2_XS_R4, IMC_TYPE_IQ2_XS},
        {IMC_TYPE_IQ2_S_R4, IMC_TYPE_IQ2_S},     {IMC_TYPE_IQ3_XXS_R4, IMC_TYPE_IQ3_XXS},
        {IMC_TYPE_IQ3_S_R4, IMC_TYPE_IQ3_S},     {IMC_TYPE_IQ2_BN_R4, IMC_TYPE_IQ2_BN},
        {IMC_TYPE_BF16_R16, IMC_TYPE_BF16}};
    const int n_pairs = (int)(sizeof(pairs) / sizeof(pairs[0]));
    for (int i = 0; i < n_pairs; i++) {
        one(pairs[i][0], pairs[i][1], NG, pairs[i][0] == IMC_TYPE_BF16_R16 ? 2 * NB : NB, false,
            &r);
    }
    // the lattice types, whose scales the two forms compute in other orders: every finite fp16
    // scale once (15872 blocks of 4 rows)
    for (int i = 16; i < 21; i++) {
        one(pairs[i][0], pairs[i][1], 63488 / 4, 1, true, &r);
    }
    static const enum imc_type own[] = {IMC_TYPE_Q5_0_R4,  IMC_TYPE_Q6_0_R4, IMC_TYPE_IQ1_S_R4,
                                        IMC_TYPE_IQ1_M_R4, IMC_TYPE_Q8_K_R8, IMC_TYPE_Q8_K_R16,
                                        IMC_TYPE_Q8_KV_R8};
    const int n_own = (int)(sizeof(own) / sizeof(own[0]));
    for (int i = 0; i < n_own; i++) {
        rowform(own[i], &r);
    }
    int n_interleaved = 0;
    for (uint32_t t = 0; t < IMC_TYPE_MAX_ID; t++) {
        const struct imc_type_traits *tr = imc_type_traits(t);
        n_interleaved += tr && tr->rows > 1;
    }
    CHECK(n_interleaved == n_pairs + n_own, "%d interleaved types, %d covered here", n_interleaved,
          n_pairs + n_own);
    uint8_t buf[1024] = {0}, out[1024];
    CHECK(!imc_type_unweave(IMC_TYPE_Q4_K, buf, 1, 256, out) &&
              !imc_type_unweave(IMC_TYPE_BF16_R16, buf, 16, 3, out),
          "a plain type, or an odd bf16_r16 row, accepted");
    CHECK(imc_type_unweaved(IMC_TYPE_Q4_K) == IMC_TYPE_Q4_K &&
              imc_type_unweaved(IMC_TYPE_F32) == IMC_TYPE_F32,
          "unweaved changed a plain type");
    return check_summary();
}
