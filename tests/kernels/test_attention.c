/*
 * tests/kernels/test_attention: imc_cpu_attention against imc_ref_attention for MHA, GQA and the
 * MLA shapes (MQA with values inside the keys, a second value set), token counts 1, odd, not a
 * multiple of the query block (32) and several blocks, each by head and (queries of a token
 * adjacent, one key head) by token block, bitwise the same on 1 and 3 threads and on every GEMM
 * path the CPU supports (generic, AVX2, vnni with AVX-512); keys longer than the GEMM's k-block;
 * and the reference
 * against the spec (token 0 sees only itself; zero queries average the visible values).
 * Tolerances: kcheck.h.
 */
#include "kcheck.h"
#include "kernels/cpu/gemm.h"

struct acase {
    int64_t n_tok, n_head, n_head_kv, dk, dv;
    bool shared_kv; // values are the first dv elements of the keys (MLA absorbed)
    bool v2;        // second value set with one head (MLA non-absorbed statistics)
    bool packed;    // query rows of a token's heads adjacent (q_ld_tok = H·dk): the MQA tasks
};

// The execs the bits are compared over: ex runs three threads on the best GEMM path, ex1 one
// thread on it, paths[i] two threads on each other path this CPU supports.
struct execs {
    struct imc_exec *ex, *ex1, *paths[3];
    int n_paths;
};

// out and out2 of a (T·H rows of dv and dv2) computed by exec x against ex's o and o2.
static void same_bits(const char *what, const char *how, struct imc_exec *x, struct imc_attn_args a,
                      const float *o, const float *o2, int64_t n, int64_t n2)
{
    float *b = calloc((size_t)n, 4), *b2 = calloc((size_t)n2, 4);
    a.out = b;
    a.out2 = b2;
    CHECK(imc_cpu_attention(x, &a) == IMC_OK, "cpu attention, %s", how);
    CHECK(memcmp(o, b, (size_t)n * 4) == 0, "%s: %s differs", what, how);
    if (a.v2) {
        CHECK(memcmp(o2, b2, (size_t)n2 * 4) == 0, "%s: second value set, %s differs", what, how);
    }
    free(b);
    free(b2);
}

static void run_case(const struct execs *xs, struct krng *r, struct acase c)
{
    const int64_t T = c.n_tok, H = c.n_head, HK = c.n_head_kv, dv2 = 12;
    const int64_t q_ld = H * c.dk + (c.packed ? 0 : 1), k_ld = HK * c.dk + 2, v_ld = HK * c.dv + 3;
    float *q = kalloc_rand(r, T * q_ld, 1.0f), *k = kalloc_rand(r, T * k_ld, 1.0f);
    float *v = kalloc_rand(r, T * v_ld, 1.0f), *v2 = kalloc_rand(r, T * dv2, 1.0f);
    float *o = calloc((size_t)(T * H * c.dv), 4), *ref = calloc((size_t)(T * H * c.dv), 4);
    float *o2 = calloc((size_t)(T * H * dv2), 4), *ref2 = calloc((size_t)(T * H * dv2), 4);
    struct imc_attn_args a = {.n_tok = T,
                              .n_head = H,
                              .n_head_kv = HK,
                              .dk = c.dk,
                              .dv = c.dv,
                              .scale = 0.3f,
                              .q = q,
                              .q_ld_tok = q_ld,
                              .q_ld_head = c.dk,
                              .k = k,
                              .k_ld_tok = k_ld,
                              .k_ld_head = c.dk,
                              .v = c.shared_kv ? k : v,
                              .v_ld_tok = c.shared_kv ? k_ld : v_ld,
                              .v_ld_head = c.shared_kv ? c.dk : c.dv,
                              .out = ref,
                              .o_ld_tok = H * c.dv,
                              .o_ld_head = c.dv,
                              .v2 = c.v2 ? v2 : NULL,
                              .n_head_v2 = 1,
                              .dv2 = dv2,
                              .v2_ld_tok = dv2,
                              .v2_ld_head = 0,
                              .out2 = ref2,
                              .o2_ld_tok = H * dv2,
                              .o2_ld_head = dv2};
    CHECK(imc_ref_attention(&a) == IMC_OK, "ref attention");
    a.out = o;
    a.out2 = o2;
    CHECK(imc_cpu_attention(xs->ex, &a) == IMC_OK, "cpu attention");
    char what[128];
    snprintf(what, sizeof(what), "attention T=%lld H=%lld/%lld dk=%lld dv=%lld shared=%d packed=%d",
             (long long)T, (long long)H, (long long)HK, (long long)c.dk, (long long)c.dv,
             c.shared_kv, c.packed);
    kcompare(what, o, ref, T * H * c.dv, TOL_ATTN_ATOL, TOL_ATTN_RTOL);
    if (c.v2) {
        kcompare("attention second value set", o2, ref2, T * H * dv2, TOL_ATTN_ATOL, TOL_ATTN_RTOL);
    }
    same_bits(what, "1 thread (vs 3)", xs->ex1, a, o, o2, T * H * c.dv, T * H * dv2);
    for (int i = 0; i < xs->n_paths; i++) {
        char how[64];
        snprintf(how, sizeof(how), "GEMM path %s",
                 imc_gemm_path_name(imc_exec_gemm_path(xs->paths[i])));
        same_bits(what, how, xs->paths[i], a, o, o2, T * H * c.dv, T * H * dv2);
    }
    free(q);
    free(k);
    free(v);
    free(v2);
    free(o);
    free(ref);
    free(o2);
    free(ref2);
}

// Spec: token 0 returns its own value; zero queries give the mean of the visible values.
static void spec(struct krng *r)
{
    const int64_t T = 5, d = 3;
    float *q = calloc(T * d, 4), *k = kalloc_rand(r, T * d, 1.0f), *v = kalloc_rand(r, T * d, 1.0f);
    float o[15];
    const struct imc_attn_args a = {.n_tok = T,
                                    .n_head = 1,
                                    .n_head_kv = 1,
                                    .dk = d,
                                    .dv = d,
                                    .scale = 1.0f,
                                    .q = q,
                                    .q_ld_tok = d,
                                    .k = k,
                                    .k_ld_tok = d,
                                    .v = v,
                                    .v_ld_tok = d,
                                    .out = o,
                                    .o_ld_tok = d};
    CHECK(imc_ref_attention(&a) == IMC_OK, "ref attention");
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < d; i++) {
            double mean = 0.0;
            for (int64_t u = 0; u <= t; u++) {
                mean += v[u * d + i] / (double)(t + 1);
            }
            CHECK_CLOSE(o[t * d + i], mean, 1e-6, 0);
        }
    }
    free(q);
    free(k);
    free(v);
}

int main(void)
{
    struct krng r = {5};
    struct execs xs = {.ex = kexec(3), .ex1 = kexec(1)};
    const enum imc_gemm_path paths[] = {IMC_GEMM_GENERIC, IMC_GEMM_AVX2, IMC_GEMM_VNNI};
    for (size_t i = 0; i < 3; i++) {
        if (paths[i] == imc_exec_gemm_path(xs.ex)) {
            continue;
        }
        if (!imc_gemm_path_supported(paths[i])) {
            CHECK_SKIP(imc_gemm_path_name(paths[i]), "GEMM path not supported by this CPU");
            continue;
        }
        struct imc_exec *x = kexec(2);
        CHECK(imc_exec_set_gemm_path(x, paths[i]) == IMC_OK, "set GEMM path");
        xs.paths[xs.n_paths++] = x;
    }
    const int64_t toks[] = {1, 7, 32, 33, 100};
    for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]); i++) {
        const int64_t T = toks[i];
        run_case(&xs, &r, (struct acase){T, 4, 4, 16, 16, false, false, false}); // MHA
        run_case(&xs, &r, (struct acase){T, 4, 2, 16, 16, false, false, false}); // GQA
        run_case(&xs, &r, (struct acase){T, 3, 1, 40, 32, true, false, false});  // MLA abs.
        run_case(&xs, &r, (struct acase){T, 4, 4, 24, 16, false, true, false});  // MLA non-abs.
        run_case(&xs, &r, (struct acase){T, 2, 1, 96, 80, false, false, false}); // larger
        // keys longer than the GEMM's k-block (256)
        run_case(&xs, &r, (struct acase){T, 2, 1, 300, 48, true, false, true});
        // MQA tasks: 3 heads (32 tokens a block), 24 (10), 300 (1); with the second value set
        run_case(&xs, &r, (struct acase){T, 3, 1, 40, 32, true, false, true});
        run_case(&xs, &r, (struct acase){T, 24, 1, 36, 32, true, true, true});
        run_case(&xs, &r, (struct acase){T, 300, 1, 20, 16, true, false, true});
    }
    spec(&r);
    imc_exec_free(xs.ex);
    imc_exec_free(xs.ex1);
    for (int i = 0; i < xs.n_paths; i++) {
        imc_exec_free(xs.paths[i]);
    }
    return check_summary();
}
