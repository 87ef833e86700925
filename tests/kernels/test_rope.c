/*
 * tests/kernels/test_rope: imc_cpu_rope against imc_ref_rope over a sweep of head sizes,
 * rotated widths, strides and scaling modes, and the reference against the spec: plain
 * rotation angles, the YaRN ramp ends (extrapolated below corr0, interpolated above corr1), the
 * YaRN magnitude, untouched tail dims, and the DeepSeek-V3 correction dims computed by hand;
 * NEOX mode (qwen3) in the same sweep and by hand: it rotates elements (i, i + n_dims/2).
 */
#include <math.h>

#include "kcheck.h"

static const struct imc_rope plain = {.n_dims = 8, .freq_base = 10000.0f, .freq_scale = 1.0f,
                                      .attn_factor = 1.0f, .beta_fast = 32.0f, .beta_slow = 1.0f,
                                      .n_ctx_orig = 4096};

static void sweep_case(struct imc_exec *ex, struct krng *r, struct imc_rope p, int64_t n_tok,
                       int64_t n_head, int64_t head_dim)
{
    const int64_t ld_head = head_dim + 1, ld_tok = n_head * ld_head + 2, n = n_tok * ld_tok;
    float *x = kalloc_rand(r, n, 1.0f), *y = kdup(x, n), *ref = kdup(x, n);
    int32_t *pos = malloc((size_t)n_tok * sizeof(int32_t));
    for (int64_t t = 0; t < n_tok; t++) {
        pos[t] = (int32_t)(krng_next(r) % 4096);
    }
    imc_ref_rope(&p, ref, n_tok, n_head, ld_tok, ld_head, pos);
    imc_cpu_rope(ex, &p, y, n_tok, n_head, ld_tok, ld_head, pos);
    char what[128];
    snprintf(what, sizeof(what), "rope tok=%lld heads=%lld dims=%lld/%lld ext=%g fs=%g",
             (long long)n_tok, (long long)n_head, (long long)p.n_dims, (long long)head_dim,
             (double)p.ext_factor, (double)p.freq_scale);
    kcompare(what, y, ref, n, TOL_ROPE_ATOL, TOL_ROPE_RTOL);
    for (int64_t t = 0; t < n_tok; t++) { // spec: dims beyond n_dims and gaps untouched
        for (int64_t i = p.n_dims; i < ld_tok; i++) {
            const int64_t in_head = i % ld_head;
            if (in_head >= p.n_dims || i >= n_head * ld_head) {
                CHECK(ref[t * ld_tok + i] == x[t * ld_tok + i], "%s: element %lld changed", what,
                      (long long)i);
            }
        }
    }
    free(x);
    free(y);
    free(ref);
    free(pos);
}

// Angle and magnitude the reference applies to pair i at position pos (one-hot input).
static void angle_of(const struct imc_rope *p, int64_t i, int32_t pos, double *theta,
                     double *mag)
{
    float v[256] = {0};
    v[2 * i] = 1.0f;
    imc_ref_rope(p, v, 1, 1, p->n_dims, p->n_dims, &pos);
    *theta = atan2(v[2 * i + 1], v[2 * i]);
    *mag = hypot(v[2 * i], v[2 * i + 1]);
}

static double wrap(double a)
{
    return remainder(a, 2.0 * M_PI);
}

static void spec_checks(void)
{
    double th, mag;
    angle_of(&plain, 1, 3, &th, &mag); // theta = 3 · 10000^(-2/8) = 0.3
    CHECK_CLOSE(th, 0.3, 1e-6, 0);
    CHECK_CLOSE(mag, 1.0, 1e-6, 0);
    // DeepSeek-V3: n_dims 64, n_ctx_orig 4096, base 10000, beta 32/1. By hand:
    // 64 ln(4096/(32·2π)) / (2 ln 10000) = 10.47 -> floor 10; with beta 1: 22.53 -> ceil 23.
    struct imc_rope y = plain;
    y.n_dims = 64;
    y.freq_scale = 0.025f; // factor 40
    y.ext_factor = 1.0f;
    float corr[2];
    imc_rope_corr_dims(&y, corr);
    CHECK(corr[0] == 10.0f && corr[1] == 23.0f, "corr dims %g %g, expected 10 23",
          (double)corr[0], (double)corr[1]);
    const int32_t pos = 7;
    angle_of(&y, 5, pos, &th, &mag); // below corr0: extrapolated (unscaled) angle
    CHECK_CLOSE(wrap(th - pos * pow(10000.0, -10.0 / 64)), 0.0, 1e-5, 0);
    CHECK_CLOSE(mag, 1.0 + 0.1 * log(40.0), 1e-6, 0); // YaRN magnitude
    angle_of(&y, 30, pos, &th, &mag); // above corr1: interpolated angle
    CHECK_CLOSE(wrap(th - 0.025 * pos * pow(10000.0, -60.0 / 64)), 0.0, 1e-6, 0);
    angle_of(&y, 16, pos, &th, &mag); // inside the ramp: mix = 1 - (16 - 10)/13
    const double ex = pos * pow(10000.0, -32.0 / 64), mix = 1.0 - 6.0 / 13.0;
    CHECK_CLOSE(wrap(th - (0.025 * ex * (1 - mix) + ex * mix)), 0.0, 1e-6, 0);
}

// NEOX by hand: n_dims 8, position 3, x = e_1 (element 1). Pair 1 is (1, 5) with theta 0.3:
// element 1 becomes cos 0.3, element 5 sin 0.3, the rest stay 0. Normal mode would pair (0, 1)
// with theta 3 (pair 0) instead.
static void neox_by_hand(void)
{
    struct imc_rope p = plain;
    p.neox = true;
    float x[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    const int32_t pos = 3;
    imc_ref_rope(&p, x, 1, 1, 8, 8, &pos);
    CHECK_CLOSE(x[1], cos(0.3), 1e-6, 0);
    CHECK_CLOSE(x[5], sin(0.3), 1e-6, 0);
    CHECK(x[0] == 0 && x[2] == 0 && x[3] == 0 && x[4] == 0 && x[6] == 0 && x[7] == 0,
          "neox: only the pair (1, 5) moves");
}

int main(void)
{
    struct krng r = {3};
    struct imc_exec *ex = kexec(3);
    struct imc_rope lin = plain, yarn = plain;
    lin.freq_scale = 0.25f;
    yarn.freq_scale = 0.25f;
    yarn.ext_factor = 1.0f;
    yarn.attn_factor = 0.8f;
    yarn.n_ctx_orig = 64;
    struct imc_rope neox = plain, neox_yarn = yarn;
    neox.neox = neox_yarn.neox = true;
    const struct imc_rope modes[] = {plain, lin, yarn, neox, neox_yarn};
    const int64_t toks[] = {1, 9, 40};
    const int64_t dims[][2] = {{2, 2}, {8, 16}, {64, 64}, {16, 24}, {128, 128}};
    for (size_t m = 0; m < 5; m++) {
        for (size_t t = 0; t < 3; t++) {
            for (size_t d = 0; d < 5; d++) {
                struct imc_rope p = modes[m];
                p.n_dims = dims[d][0];
                sweep_case(ex, &r, p, toks[t], 1 + (int64_t)(t + d) % 3, dims[d][1]);
            }
        }
    }
    spec_checks();
    neox_by_hand();
    imc_exec_free(ex);
    return check_summary();
}
