/*
 * tests/unit/test_imatrix_values: imatrix entries written by `imc imatrix` (the coordinator run,
 * coordinator/imatrix.h) against sums computed here directly from the model's weights, without
 * the engine or the collector (DESIGN.md §4 "What each tensor gets"):
 *   - llama-tiny: blk.0.attn_q/attn_k/attn_v get RMSNorm(token embedding)·attn_norm of every
 *     token (BOS first in each chunk); counts = tokens;
 *   - deepseek2 (ds2-tiny presets with RoPE scaling switched off, so RoPE is the plain rotation):
 *     layer 0 attn_k_b matrix h = Σ q_nope_h², attn_v_b matrix h = Σ õ_h² with
 *     õ_h(t) = Σ_u softmax_u((W_kb,h q_nope_h(t))·c(u) + q_pe_h(t)·k_pe(u)) / sqrt(qk) · c(u),
 *     for the 3D layout (per head) and the 2D ik layout (summed over heads, one matrix),
 *     attn_kv_b = Σ c², under both attention paths.
 * All sums here are in double from the f32 weights.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/imatrix.h"
#include "coordinator/textrun.h"
#include "core/log.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "model/imatrix_file.h"
#include "model/synth.h"
#include "tests/check.h"

#define CTX 32
#define N_CHUNK 3
#define MAXD 256

struct env {
    char dir[256];
    char text[512];
    FILE *devnull;
};

static const float *f32(const struct imc_tensor_info *t)
{
    IMC_ASSERT(t->type == IMC_TYPE_F32);
    return t->data;
}

// y = x / sqrt(mean(x²) + eps) * w, in double.
static void rmsnorm(double *y, const double *x, const float *w, int64_t n, float eps)
{
    double ss = 0;
    for (int64_t i = 0; i < n; i++) {
        ss += x[i] * x[i];
    }
    const double s = 1.0 / sqrt(ss / (double)n + eps);
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] * s * w[i];
    }
}

// y[n_out] = W x for W with ne = [n_in, ...] (row r at W + r*n_in).
static void matvec(double *y, const float *w, const double *x, int64_t n_in, int64_t n_out)
{
    for (int64_t r = 0; r < n_out; r++) {
        double a = 0;
        for (int64_t i = 0; i < n_in; i++) {
            a += (double)w[r * n_in + i] * x[i];
        }
        y[r] = a;
    }
}

// Plain RoPE (no scaling): adjacent pairs rotated by pos · base^(-2i/n).
static void rope(double *x, int64_t n, int64_t pos, double base)
{
    for (int64_t i = 0; 2 * i < n; i++) {
        const double th = (double)pos * pow(base, -2.0 * (double)i / (double)n);
        const double a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * cos(th) - b * sin(th);
        x[2 * i + 1] = a * sin(th) + b * cos(th);
    }
}

static int write_model(const struct env *env, const char *preset, bool plain_rope, char *path,
                       size_t size)
{
    struct imc_synth_cfg cfg;
    snprintf(path, size, "%s/%s%s.gguf", env->dir, preset, plain_rope ? "-plain" : "");
    if (imc_synth_preset(&cfg, preset) != IMC_OK) {
        return 1;
    }
    if (plain_rope) {
        cfg.hp.rope_scaling = IMC_ROPE_SCALING_NONE;
        cfg.hp.rope_scale_factor = 1.0f;
        cfg.hp.yarn_log_mul = 0.0f;
    }
    return imc_synth_write(&cfg, path) != IMC_OK;
}

// Runs `imc imatrix` on model (attention path attn) and reads the result into im.
static int run_imatrix(const struct env *env, const char *model, enum imc_attn_path attn,
                       struct imc_imatrix *im)
{
    char out[600];
    snprintf(out, sizeof(out), "%s/out.gguf", env->dir);
    struct imc_imatrix_opts o;
    imc_imatrix_opts_default(&o);
    o.model = model;
    o.text = env->text;
    o.out = out;
    o.n_ctx = CTX;
    o.max_chunks = N_CHUNK;
    o.quiet = true;
    o.attn = attn;
    o.matmul = IMC_MATMUL_F32; // the sums here are exact f32 arithmetic, not the q8 default's
    o.n_threads = 2;
    int bad = imc_imatrix_run(&o, env->devnull, NULL) != IMC_OK ||
              imc_imatrix_read_gguf(out, im) != IMC_OK;
    unlink(out);
    return bad;
}

// The chunks of the text as the model is fed (BOS first), [N_CHUNK][CTX].
static int chunk_tokens(const char *model, const char *text, int32_t *tok)
{
    struct imc_textrun tr;
    int bad = imc_textrun_open_model(&tr, model) != IMC_OK ||
              imc_textrun_resolve_ctx(&tr, "test", model, CTX) != IMC_OK ||
              imc_textrun_load_text(&tr, text, N_CHUNK, false) != IMC_OK ||
              tr.ch.n_chunk != N_CHUNK;
    for (int64_t c = 0; !bad && c < N_CHUNK; c++) {
        imc_chunks_input(&tr.ch, c, tok + c * CTX);
    }
    imc_textrun_free(&tr);
    return bad;
}

// Compares entry name (n_mat matrices of n values, count each) with want [n_mat][n].
static void check_entry(const struct imc_imatrix *im, const char *name, int64_t n_mat, int64_t n,
                        double count, const double *want, double rtol)
{
    const struct imc_imatrix_entry *e = imc_imatrix_find(im, name);
    CHECK(e && e->n_mat == n_mat && e->n_per_row == n, "'%s': shape %lldx%lld expected %lldx%lld",
          name, e ? (long long)e->n_per_row : -1LL, e ? (long long)e->n_mat : -1LL, (long long)n,
          (long long)n_mat);
    if (!e || e->n_mat != n_mat || e->n_per_row != n) {
        return;
    }
    double worst = 0;
    for (int64_t k = 0; k < n_mat; k++) {
        CHECK(e->counts[k] == count, "'%s' count[%lld] %g, expected %g", name, (long long)k,
              e->counts[k], count);
        for (int64_t j = 0; j < n; j++) {
            const double a = e->sums[k * n + j], b = want[k * n + j];
            worst = check_worst(worst, fabs(a - b) / fabs(b));
        }
    }
    CHECK(worst <= rtol, "'%s': worst relative difference %.3g > %.1g", name, worst, rtol);
    printf("%-28s %lld x %-3lld worst rel diff %.2e\n", name, (long long)n, (long long)n_mat,
           worst);
}

static void test_llama(const struct env *env)
{
    char path[512];
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    struct imc_imatrix im;
    int32_t tok[N_CHUNK * CTX];
    if (write_model(env, "llama-tiny", false, path, sizeof(path)) ||
        imc_gguf_open(&g, path) != IMC_OK || imc_model_load(&m, g) != IMC_OK ||
        chunk_tokens(path, env->text, tok) || run_imatrix(env, path, IMC_ATTN_AUTO, &im)) {
        CHECK(0, "llama-tiny setup");
        return;
    }
    const int64_t d = m->hp.n_embd;
    double want[MAXD] = {0}, x[MAXD] = {0}, h[MAXD];
    IMC_ASSERT(d <= MAXD);
    for (int64_t t = 0; t < N_CHUNK * CTX; t++) {
        for (int64_t i = 0; i < d; i++) {
            x[i] = f32(m->tok_embd)[tok[t] * d + i];
        }
        rmsnorm(h, x, f32(m->layers[0].attn_norm), d, m->hp.rms_eps);
        for (int64_t i = 0; i < d; i++) {
            want[i] += h[i] * h[i];
        }
    }
    const char *names[] = {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"};
    for (int i = 0; i < 3; i++) {
        check_entry(&im, names[i], 1, d, N_CHUNK * CTX, want, 1e-5);
    }
    imc_imatrix_free(&im);
    imc_model_free(m);
    imc_gguf_free(g);
    unlink(path);
}

struct mla_sums {
    double k[MAXD * 8]; // [H][nope] Σ q_nope_h²
    double v[MAXD * 8]; // [H][kvl]  Σ õ_h²
    double c[MAXD];     // [kvl]     Σ c²
};

// Layer-0 projections of token t: q [H*qk] (q_pe roped), c [kvl], kpe [rope] (roped).
static void project(const struct imc_model *m, int32_t tok, int64_t pos, double *q, double *c,
                    double *kpe)
{
    const struct imc_hparams *hp = &m->hp;
    const struct imc_layer *l = &m->layers[0];
    const int64_t d = hp->n_embd, qk = hp->qk_nope + hp->qk_rope;
    double x[MAXD], h[MAXD], qa[MAXD], kva[MAXD];
    for (int64_t i = 0; i < d; i++) {
        x[i] = f32(m->tok_embd)[tok * d + i];
    }
    rmsnorm(h, x, f32(l->attn_norm), d, hp->rms_eps);
    matvec(qa, f32(l->wq_a), h, d, hp->q_lora);
    rmsnorm(qa, qa, f32(l->q_a_norm), hp->q_lora, hp->rms_eps);
    matvec(q, f32(l->wq_b), qa, hp->q_lora, hp->n_head * qk);
    matvec(kva, f32(l->wkv_a_mqa), h, d, hp->kv_lora + hp->qk_rope);
    rmsnorm(c, kva, f32(l->kv_a_norm), hp->kv_lora, hp->rms_eps);
    memcpy(kpe, kva + hp->kv_lora, (size_t)hp->qk_rope * sizeof(double));
    rope(kpe, hp->qk_rope, pos, hp->rope_freq_base);
    for (int64_t hh = 0; hh < hp->n_head; hh++) {
        rope(q + hh * qk + hp->qk_nope, hp->qk_rope, pos, hp->rope_freq_base);
    }
}

// õ_h(t) for one head from the chunk's projections (DESIGN.md §5 (5a)).
static void latent_out(const struct imc_model *m, int64_t hh, int64_t t, const double *q,
                       const double *c, const double *kpe, double *out)
{
    const struct imc_hparams *hp = &m->hp;
    const int64_t nope = hp->qk_nope, qk = nope + hp->qk_rope, kvl = hp->kv_lora;
    const float *kb = f32(m->layers[0].wk_b) + hh * kvl * nope; // slice h: [kvl][nope]
    double qt[MAXD], s[CTX], mx = -INFINITY, z = 0;
    matvec(qt, kb, q + t * hp->n_head * qk + hh * qk, nope, kvl);
    for (int64_t u = 0; u <= t; u++) {
        double a = 0;
        for (int64_t r = 0; r < kvl; r++) {
            a += qt[r] * c[u * kvl + r];
        }
        for (int64_t r = 0; r < hp->qk_rope; r++) {
            a += q[t * hp->n_head * qk + hh * qk + nope + r] * kpe[u * hp->qk_rope + r];
        }
        s[u] = a / sqrt((double)qk);
        mx = fmax(mx, s[u]);
    }
    for (int64_t u = 0; u <= t; u++) {
        s[u] = exp(s[u] - mx);
        z += s[u];
    }
    for (int64_t r = 0; r < kvl; r++) {
        double a = 0;
        for (int64_t u = 0; u <= t; u++) {
            a += s[u] / z * c[u * kvl + r];
        }
        out[r] = a;
    }
}

static void mla_direct(const struct imc_model *m, const int32_t *tok, struct mla_sums *S)
{
    const struct imc_hparams *hp = &m->hp;
    const int64_t H = hp->n_head, nope = hp->qk_nope, qk = nope + hp->qk_rope, kvl = hp->kv_lora;
    double *q = malloc(sizeof(double) * CTX * H * qk), *c = malloc(sizeof(double) * CTX * kvl);
    double *kpe = malloc(sizeof(double) * CTX * hp->qk_rope), o[MAXD];
    memset(S, 0, sizeof(*S));
    for (int64_t ch = 0; ch < N_CHUNK; ch++) {
        for (int64_t t = 0; t < CTX; t++) {
            project(m, tok[ch * CTX + t], t, q + t * H * qk, c + t * kvl, kpe + t * hp->qk_rope);
            for (int64_t r = 0; r < kvl; r++) {
                S->c[r] += c[t * kvl + r] * c[t * kvl + r];
            }
        }
        for (int64_t t = 0; t < CTX; t++) {
            for (int64_t hh = 0; hh < H; hh++) {
                for (int64_t i = 0; i < nope; i++) {
                    const double x = q[t * H * qk + hh * qk + i];
                    S->k[hh * nope + i] += x * x;
                }
                latent_out(m, hh, t, q, c, kpe, o);
                for (int64_t r = 0; r < kvl; r++) {
                    S->v[hh * kvl + r] += o[r] * o[r];
                }
            }
        }
    }
    free(q);
    free(c);
    free(kpe);
}

// Heads added: [H][n] → [n].
static void sum_heads(const double *per_head, int64_t H, int64_t n, double *out)
{
    for (int64_t j = 0; j < n; j++) {
        out[j] = 0;
        for (int64_t hh = 0; hh < H; hh++) {
            out[j] += per_head[hh * n + j];
        }
    }
}

static void check_mla(const struct imc_model *m, const struct imc_imatrix *im,
                      const struct mla_sums *S)
{
    const struct imc_hparams *hp = &m->hp;
    const int64_t H = hp->n_head, nope = hp->qk_nope, kvl = hp->kv_lora;
    const double count = N_CHUNK * CTX;
    if (m->mla == IMC_MLA_3D) {
        check_entry(im, "blk.0.attn_k_b.weight", H, nope, count, S->k, 1e-5);
        check_entry(im, "blk.0.attn_v_b.weight", H, kvl, count, S->v, 1e-5);
    } else {
        double k[MAXD], v[MAXD];
        sum_heads(S->k, H, nope, k);
        sum_heads(S->v, H, kvl, v);
        check_entry(im, "blk.0.attn_k_b.weight", 1, nope, count, k, 1e-5);
        check_entry(im, "blk.0.attn_v_b.weight", 1, kvl, count, v, 1e-5);
    }
    if (m->has_kv_b) {
        check_entry(im, "blk.0.attn_kv_b.weight", 1, kvl, count, S->c, 1e-5);
    } else {
        CHECK(!imc_imatrix_find(im, "blk.0.attn_kv_b.weight"), "attn_kv_b without the tensor");
    }
}

static void test_mla(const struct env *env, const char *preset)
{
    char path[512];
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    int32_t tok[N_CHUNK * CTX];
    struct mla_sums *S = malloc(sizeof(*S));
    if (write_model(env, preset, true, path, sizeof(path)) || imc_gguf_open(&g, path) != IMC_OK ||
        imc_model_load(&m, g) != IMC_OK || chunk_tokens(path, env->text, tok)) {
        CHECK(0, "%s setup", preset);
        free(S);
        return;
    }
    IMC_ASSERT(m->hp.n_head * m->hp.kv_lora <= MAXD * 8 && m->hp.kv_lora <= MAXD);
    mla_direct(m, tok, S);
    const enum imc_attn_path paths[] = {IMC_ATTN_ABSORBED, IMC_ATTN_NON_ABSORBED};
    for (int p = 0; p < (m->has_kv_b ? 2 : 1); p++) {
        struct imc_imatrix im;
        printf("%s, %s path:\n", preset, imc_attn_path_name(paths[p]));
        if (run_imatrix(env, path, paths[p], &im)) {
            CHECK(0, "%s: imatrix run", preset);
            continue;
        }
        check_mla(m, &im, S);
        imc_imatrix_free(&im);
    }
    free(S);
    imc_model_free(m);
    imc_gguf_free(g);
    unlink(path);
}

int main(void)
{
    struct env env;
    const char *src = getenv("IMC_SOURCE_DIR");
    const char *tmp = getenv("TMPDIR");
    snprintf(env.text, sizeof(env.text), "%s/data/text/calibration.txt", src ? src : ".");
    snprintf(env.dir, sizeof(env.dir), "%s/imc_imx_values.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    env.devnull = fopen("/dev/null", "w");
    if (!mkdtemp(env.dir) || !env.devnull || access(env.text, R_OK) != 0) {
        printf("cannot set up (temp dir, /dev/null or %s)\n", env.text);
        return 1;
    }
    test_llama(&env);
    test_mla(&env, "ds2-tiny-3d");
    test_mla(&env, "ds2-tiny-ik");
    test_mla(&env, "ds2-tiny-all");
    fclose(env.devnull);
    rmdir(env.dir);
    return check_summary();
}
