/*
 * tests/e2e/test_mla_paths: the engine against the specs, on synthetic models.
 *   1. ds2-tiny-all (attn_kv_b and 3D attn_k_b/attn_v_b, f32) and ds2-tiny-ik (attn_kv_b and 2D
 *      attn_k_b/attn_v_b): logits of the absorbed path vs the non-absorbed path. Same algebra (DESIGN.md §5), only float summation order differs.
 *      Bound: max|Δ| / max|logit| <= 1e-5 (f32 sums over <= 128 terms per dot product through 3
 *      layers give ~1e-6; a wrong scale, head slice or latent would be O(1)).
 *   2. Every preset: the optimized engine (cpu kernels, 2 threads) vs the scalar reference
 *      forward (worker/forward_ref.c: token by token, imc_ref_* only, double sums), each
 *      deepseek2 path the file supports. Bound: max|Δ| / max|logit| <= 2e-5: float vs double
 *      accumulation, measured 0.7e-6 .. 1.5e-6 (printed); a 1% error in kq_scale gives 2e-2 ..
 *      4e-1 (routing flips). Also the engine on the ref backend (measured 0 .. 5e-7: only the
 *      float vs double derivation of kq_scale and the RoPE magnitude differ).
 */
#include "engine_util.h"
#include "kernels/backend.h"
#include "worker/forward_ref.h"

#define N_TOK 70 // > 2 query blocks of the attention kernel, > rope_orig_ctx of the ds2 presets

static const char *const presets[] = {"llama-tiny",    "llama-moe-tiny", "ds2-tiny-3d",
                                      "ds2-tiny-ik",   "ds2-tiny-all",   "ds2-lite-tiny",
                                      "qwen3-tiny",    "qwen3moe-tiny",  "glm4moe-tiny"};
#define N_PRESETS ((int)(sizeof(presets) / sizeof(presets[0])))

static void paths_agree(const char *preset, const struct imc_model *m)
{
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, m->hp.n_vocab, 11);
    struct imc_engine_opts o = imc_engine_opts_default();
    o.n_threads = 2;
    o.attn = IMC_ATTN_ABSORBED;
    float *a = tforward(m, &o, tok, N_TOK);
    o.attn = IMC_ATTN_NON_ABSORBED;
    float *b = tforward(m, &o, tok, N_TOK);
    CHECK(a && b, "forward failed");
    if (a && b) {
        const double err = trel_err(a, b, N_TOK * m->hp.n_vocab);
        printf("%-15s absorbed vs non-absorbed: max rel error %.3g (bound 1e-5)\n", preset, err);
        CHECK(err <= 1e-5, "absorbed vs non-absorbed %.3g", err);
        a[N_TOK * m->hp.n_vocab / 2] += 1.0f; // self-check: the comparison sees a change
        CHECK(trel_err(a, b, N_TOK * m->hp.n_vocab) > 1e-5, "checker missed a perturbation");
    }
    free(a);
    free(b);
}

static void vs_reference(const char *preset, const struct imc_model *m, enum imc_attn_path path)
{
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, m->hp.n_vocab, 5);
    const int64_t n = N_TOK * m->hp.n_vocab;
    float *ref = malloc((size_t)n * sizeof(float));
    CHECK(imc_ref_forward(m, path, false, tok, N_TOK, ref) == IMC_OK, "%s: ref forward", preset);
    struct imc_engine_opts o = imc_engine_opts_default();
    o.n_threads = 2;
    o.attn = path;
    o.matmul = IMC_MATMUL_F32; // the reference forward is exact f32 (an engine's default too)
    float *cpu = tforward(m, &o, tok, N_TOK);
    o.backend = imc_backend_ref();
    float *eref = tforward(m, &o, tok, N_TOK);
    CHECK(cpu && eref, "%s: engine forward", preset);
    if (cpu && eref) {
        const double e1 = trel_err(cpu, ref, n), e2 = trel_err(eref, ref, n);
        printf("%-15s %-13s engine(cpu) vs ref forward %.3g, engine(ref kernels) vs ref forward "
               "%.3g (bound 2e-5)\n",
               preset, imc_attn_path_name(path), e1, e2);
        CHECK(e1 <= 2e-5, "%s %s: engine vs reference %.3g", preset, imc_attn_path_name(path), e1);
        CHECK(e2 <= 2e-5, "%s %s: engine(ref) vs reference %.3g", preset,
              imc_attn_path_name(path), e2);
    }
    free(ref);
    free(cpu);
    free(eref);
}

int main(void)
{
    char dir[256];
    tmkdir(dir, sizeof(dir), "mla_paths");
    for (int i = 0; i < N_PRESETS; i++) {
        struct tmodel t;
        if (tmodel_open(&t, dir, presets[i]) != 0) {
            CHECK(0, "preset %s", presets[i]);
            continue;
        }
        if (t.m->arch == IMC_ARCH_DEEPSEEK2) {
            if (t.m->has_k_b) {
                vs_reference(presets[i], t.m, IMC_ATTN_ABSORBED);
            }
            if (t.m->has_kv_b) {
                vs_reference(presets[i], t.m, IMC_ATTN_NON_ABSORBED);
            }
            if (t.m->has_k_b && t.m->has_kv_b) {
                paths_agree(presets[i], t.m);
            }
        } else {
            vs_reference(presets[i], t.m, IMC_ATTN_AUTO);
        }
        tmodel_close(&t);
    }
    trmdir(dir, presets, N_PRESETS);
    return check_summary();
}
