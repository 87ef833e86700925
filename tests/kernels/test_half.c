/*
 * tests/kernels/test_half: the vector f16/bf16 row decoders (kernels/cpu/half.h) against the
 * types/ decoders (imc_type_decode), bitwise: every one of the 65536 bit patterns of each type
 * (subnormals, infinities, quiet and signalling NaNs with their payloads, both zeros), as one
 * row and at every length 1..40 from every offset 0..7 (the 8-wide body and the scalar tail).
 * Where the CPU lacks AVX2 or F16C there is no vector decoder: that check is skipped (SKIP).
 */
#include "kcheck.h"
#include "kernels/cpu/half.h"

static void check_type(enum imc_type type)
{
    const char *name = imc_type_name((uint32_t)type);
    imc_half_fn fn = imc_cpu_half_decoder(type, IMC_GEMM_AVX2);
    CHECK(imc_cpu_half_decoder(type, IMC_GEMM_GENERIC) == NULL, "%s: generic path decoder", name);
    if (!fn) {
        CHECK_SKIP(name, "this CPU has no AVX2+F16C: no vector decoder");
        return;
    }
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    const int64_t n = 65536;
    uint16_t *src = malloc((size_t)n * 2);
    float *want = malloc((size_t)n * 4), *got = malloc((size_t)n * 4 + 64);
    for (int64_t i = 0; i < n; i++) {
        src[i] = (uint16_t)(i * 40503u); // every pattern once (40503 is odd), shuffled
    }
    imc_type_decode(tr, src, 0, n, 0, n, want);
    fn(src, got, n);
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++) {
        bad = memcmp(&got[i], &want[i], 4) != 0 ? i : -1;
    }
    CHECK(bad < 0, "%s: pattern 0x%04x decoded to %08x, types/ %08x", name, bad < 0 ? 0 : src[bad],
          bad < 0 ? 0 : ((uint32_t *)got)[bad], bad < 0 ? 0 : ((uint32_t *)want)[bad]);
    int tails = 0;
    for (int64_t off = 0; off < 8; off++) {
        for (int64_t len = 1; len <= 40; len++) {
            memset(got, 0xa5, (size_t)(len + 1) * 4);
            fn(src + off, got, len);
            const uint32_t canary = ((uint32_t *)got)[len];
            tails += memcmp(got, want + off, (size_t)len * 4) != 0 || canary != 0xa5a5a5a5u;
        }
    }
    CHECK(tails == 0, "%s: %d of 320 (offset, length) cases differ or write past the row", name,
          tails);
    got[0] = want[0] + 1.0f; // self-check: the comparison notices a changed value
    CHECK(memcmp(got, want, 4) != 0, "checker missed a perturbation");
    free(src);
    free(want);
    free(got);
}

int main(void)
{
    check_type(IMC_TYPE_F16);
    check_type(IMC_TYPE_BF16);
    return check_summary();
}
