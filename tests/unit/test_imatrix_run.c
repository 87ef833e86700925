/*
 * tests/unit/test_imatrix_run: the imatrix run (coordinator/imatrix.h) on tiny deepseek2 models
 * (DESIGN.md §4 "What each tensor gets", §6):
 *   - the entry list is complete: exactly the model file's matmul weights (every 2D/3D ".weight"
 *     but token_embd/output), shapes n_per_row = ne[0] and n_mat = ne[2] for 3D weights, so
 *     attn_k_b = qk_nope × n_head (3D) or qk_nope × 1 (2D ik), attn_v_b = kv_lora × n_head or
 *     kv_lora × 1, attn_kv_b = kv_lora × 1, experts n_expert matrices; dense counts = tokens,
 *     expert counts sum to tokens · n_used with the never-routed expert 7 at 0;
 *   - the expert coverage keys of the GGUF output agree with the per-expert counts;
 *   - absorbed and non-absorbed paths (ds2-tiny-all) give the same imatrix within 1e-4;
 *   - two halves (--chunks / --from-chunk + --in-file) equal the whole run: same counts and
 *     chunk count, sums within F32 rounding (each half is rounded to F32 once more);
 *   - --process-output adds output.weight with every token;
 *   - the statistics come from the f32 activations, before the q8 matmul quantizes them: on a
 *     q8_0 ds2-tiny-3d, --matmul q8 (the default) and f32 give bitwise the same Σx² and counts for
 *     layer 0's attn_q_a and attn_kv_a_mqa, whose input (attn_norm of the embedding) no matmul
 *     has touched yet, while attn_q_b (input: attn_q_a's output) differs: q8 was taken.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/imatrix.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "model/imatrix_file.h"
#include "model/synth.h"
#include "tests/check.h"

#define CTX 32
#define N_CHUNK 4

struct env {
    char dir[256];
    char text[512];
    FILE *devnull;
};

struct run_args {
    const char *model;
    const char *out;
    enum imc_attn_path attn;
    int64_t from, chunks;
    const struct imc_imatrix_in_file *in;
    int n_in;
    bool process_output;
    enum imc_matmul_mode matmul; // 0: the default (q8)
};

static int run(const struct env *env, const struct run_args *a)
{
    struct imc_imatrix_opts o;
    imc_imatrix_opts_default(&o);
    o.model = a->model;
    o.text = env->text;
    o.out = a->out;
    o.n_ctx = CTX;
    o.from_chunk = a->from;
    o.max_chunks = a->chunks;
    o.in_files = a->in;
    o.n_in_files = a->n_in;
    o.attn = a->attn;
    o.process_output = a->process_output;
    o.matmul = a->matmul;
    o.quiet = true;
    return imc_imatrix_run(&o, env->devnull, NULL) != IMC_OK;
}

static int is_matmul_weight(const struct imc_tensor_info *t)
{
    size_t n = strlen(t->name);
    return t->n_dims >= 2 && n > 7 && strcmp(t->name + n - 7, ".weight") == 0 &&
           strcmp(t->name, "token_embd.weight") != 0 && strcmp(t->name, "output.weight") != 0;
}

static double sum_counts(const struct imc_imatrix_entry *e)
{
    double s = 0;
    for (int64_t k = 0; k < e->n_mat; k++) {
        s += e->counts[k];
    }
    return s;
}

// Every matmul weight of the file has its entry with the expected shape, and nothing else.
static void check_entry_list(const char *preset, const struct imc_gguf *g,
                             const struct imc_model *m, const struct imc_imatrix *im)
{
    int64_t n_weights = 0;
    const double tokens = N_CHUNK * CTX;
    printf("%s: entries (name: n_per_row x n_mat)\n", preset);
    for (int64_t i = 0; i < imc_gguf_n_tensors(g); i++) {
        const struct imc_tensor_info *t = imc_gguf_tensor(g, i);
        if (!is_matmul_weight(t)) {
            continue;
        }
        n_weights++;
        const struct imc_imatrix_entry *e = imc_imatrix_find(im, t->name);
        const int64_t n_mat = t->n_dims == 3 ? t->ne[2] : 1;
        CHECK(e && e->n_per_row == t->ne[0] && e->n_mat == n_mat, "%s: '%s' missing or shape",
              preset, t->name);
        if (!e) {
            continue;
        }
        printf("  %-32s %4lld x %lld\n", t->name, (long long)e->n_per_row, (long long)e->n_mat);
        const bool expert = strstr(t->name, "_exps.") != NULL;
        const double want = expert ? tokens * (double)m->hp.n_expert_used : tokens * (double)n_mat;
        CHECK(sum_counts(e) == want, "%s: '%s' counts sum %g, expected %g", preset, t->name,
              sum_counts(e), want);
        if (expert && m->hp.n_expert > 7) {
            CHECK(e->counts[7] == 0.0, "%s: '%s' expert 7 count %g", preset, t->name, e->counts[7]);
            for (int64_t k = 0; k < 7; k++) {
                CHECK(e->counts[k] > 0, "%s: '%s' expert %lld unrouted", preset, t->name,
                      (long long)k);
            }
        }
    }
    CHECK(im->n_entries == n_weights, "%s: %lld entries for %lld weights", preset,
          (long long)im->n_entries, (long long)n_weights);
    const struct imc_hparams *hp = &m->hp;
    const struct imc_imatrix_entry *k = imc_imatrix_find(im, "blk.0.attn_k_b.weight");
    const struct imc_imatrix_entry *v = imc_imatrix_find(im, "blk.0.attn_v_b.weight");
    const struct imc_imatrix_entry *kv = imc_imatrix_find(im, "blk.0.attn_kv_b.weight");
    const int64_t heads = m->mla == IMC_MLA_3D ? hp->n_head : 1;
    CHECK(k && k->n_per_row * k->n_mat == hp->qk_nope * heads, "%s: attn_k_b values", preset);
    CHECK(v && v->n_per_row * v->n_mat == hp->kv_lora * heads, "%s: attn_v_b values", preset);
    CHECK(!m->has_kv_b == !kv && (!kv || kv->n_per_row == hp->kv_lora), "%s: attn_kv_b", preset);
}

static void check_coverage_keys(const char *path, const struct imc_imatrix *im)
{
    struct imc_gguf *g = NULL;
    if (imc_gguf_open(&g, path) != IMC_OK) {
        CHECK(0, "open %s", path);
        return;
    }
    int64_t k = imc_gguf_find_key(g, "imc.coverage.layers");
    CHECK(k >= 0 && imc_gguf_arr_n(g, k) == 2, "imc.coverage.layers: 2 MoE layers");
    for (int il = 1; k >= 0 && il <= 2; il++) {
        char key[96], name[64];
        snprintf(name, sizeof(name), "blk.%d.ffn_gate_exps.weight", il);
        const struct imc_imatrix_entry *e = imc_imatrix_find(im, name);
        double mn = INFINITY, mx = 0;
        for (int64_t x = 0; e && x < e->n_mat; x++) {
            mn = fmin(mn, e->counts[x]);
            mx = fmax(mx, e->counts[x]);
        }
        uint32_t n_un = 0;
        float fmn = -1, fmx = -1;
        snprintf(key, sizeof(key), "imc.coverage.blk.%d.n_unrouted", il);
        CHECK(imc_gguf_get_u32(g, key, &n_un) && n_un == 1, "%s", key);
        snprintf(key, sizeof(key), "imc.coverage.blk.%d.unrouted", il);
        int64_t ku = imc_gguf_find_key(g, key);
        const uint32_t *ids = ku >= 0 ? imc_gguf_arr_data(g, ku) : NULL;
        CHECK(ids && imc_gguf_arr_n(g, ku) == 1 && ids[0] == 7, "%s = [7]", key);
        snprintf(key, sizeof(key), "imc.coverage.blk.%d.tokens_min", il);
        CHECK(imc_gguf_get_f32(g, key, &fmn) && fmn == (float)mn, "%s %g vs %g", key, fmn, mn);
        snprintf(key, sizeof(key), "imc.coverage.blk.%d.tokens_max", il);
        CHECK(imc_gguf_get_f32(g, key, &fmx) && fmx == (float)mx, "%s %g vs %g", key, fmx, mx);
    }
    imc_gguf_free(g);
}

static int read_back(const char *path, struct imc_imatrix *im)
{
    return imc_imatrix_read_gguf(path, im) != IMC_OK;
}

static void test_entries(const struct env *env, const char *preset)
{
    char model[512], out[512];
    struct imc_synth_cfg cfg;
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    struct imc_imatrix im;
    snprintf(model, sizeof(model), "%s/%s.gguf", env->dir, preset);
    snprintf(out, sizeof(out), "%s/%s.imatrix.gguf", env->dir, preset);
    struct run_args a = {.model = model, .out = out, .chunks = N_CHUNK};
    if (imc_synth_preset(&cfg, preset) != IMC_OK || imc_synth_write(&cfg, model) != IMC_OK ||
        imc_gguf_open(&g, model) != IMC_OK || imc_model_load(&m, g) != IMC_OK || run(env, &a) ||
        read_back(out, &im)) {
        CHECK(0, "%s: setup and run", preset);
        return;
    }
    check_entry_list(preset, g, m, &im);
    CHECK(im.chunk_count == N_CHUNK && im.chunk_size == CTX && im.n_datasets == 1 &&
              strcmp(im.datasets[0], env->text) == 0,
          "%s: chunk_count %u, chunk_size %u, dataset", preset, im.chunk_count, im.chunk_size);
    check_coverage_keys(out, &im);
    imc_imatrix_free(&im);
    imc_model_free(m);
    imc_gguf_free(g);
    unlink(out);
}

// Every sum of a within rtol of b (relative to the largest value of its matrix); same counts.
static void same_imatrix(const char *what, const struct imc_imatrix *a, const struct imc_imatrix *b,
                         double rtol)
{
    CHECK(a->n_entries == b->n_entries, "%s: %lld vs %lld entries", what, (long long)a->n_entries,
          (long long)b->n_entries);
    double worst = 0;
    for (int64_t i = 0; i < a->n_entries; i++) {
        const struct imc_imatrix_entry *x = &a->entries[i];
        const struct imc_imatrix_entry *y = imc_imatrix_find(b, x->name);
        if (!y || y->n_per_row != x->n_per_row || y->n_mat != x->n_mat) {
            CHECK(0, "%s: '%s' missing or other shape", what, x->name);
            continue;
        }
        for (int64_t k = 0; k < x->n_mat; k++) {
            CHECK(x->counts[k] == y->counts[k], "%s: '%s' count", what, x->name);
            for (int64_t j = 0; j < x->n_per_row; j++) {
                const double p = x->sums[k * x->n_per_row + j], q = y->sums[k * x->n_per_row + j];
                worst = check_worst(worst, q == 0 ? fabs(p) : fabs(p - q) / fabs(q));
            }
        }
    }
    CHECK(worst <= rtol, "%s: worst relative difference %.3g > %.1g", what, worst, rtol);
    printf("%s: worst relative difference %.2e\n", what, worst);
}

static void test_paths_and_halves(const struct env *env)
{
    char model[512], whole[512], nonabs[512], half_a[512], half_b[512];
    snprintf(model, sizeof(model), "%s/ds2-tiny-all.gguf", env->dir);
    snprintf(whole, sizeof(whole), "%s/whole.gguf", env->dir);
    snprintf(nonabs, sizeof(nonabs), "%s/nonabs.gguf", env->dir);
    snprintf(half_a, sizeof(half_a), "%s/half_a.gguf", env->dir);
    snprintf(half_b, sizeof(half_b), "%s/half_b.gguf", env->dir);
    const struct imc_imatrix_in_file in = {half_a, 1.0};
    const struct run_args r[] = {
        {.model = model, .out = whole, .attn = IMC_ATTN_ABSORBED, .chunks = N_CHUNK},
        {.model = model, .out = nonabs, .attn = IMC_ATTN_NON_ABSORBED, .chunks = N_CHUNK},
        {.model = model, .out = half_a, .chunks = N_CHUNK / 2},
        {.model = model,
         .out = half_b,
         .from = N_CHUNK / 2,
         .chunks = N_CHUNK / 2,
         .in = &in,
         .n_in = 1},
    };
    struct imc_imatrix w, n, b;
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
        CHECK(run(env, &r[i]) == 0, "run %zu", i);
    }
    if (read_back(whole, &w) || read_back(nonabs, &n) || read_back(half_b, &b)) {
        CHECK(0, "read back");
        return;
    }
    same_imatrix("absorbed vs non-absorbed", &n, &w, 1e-4);
    same_imatrix("halves merged vs whole", &b, &w, 1e-6);
    CHECK(b.chunk_count == N_CHUNK && b.n_datasets == 2, "merged: %u chunks, %lld datasets",
          b.chunk_count, (long long)b.n_datasets);
    imc_imatrix_free(&w);
    imc_imatrix_free(&n);
    imc_imatrix_free(&b);
    unlink(whole);
    unlink(nonabs);
    unlink(half_a);
    unlink(half_b);
}

static void test_process_output(const struct env *env)
{
    char model[512], out[512];
    struct imc_imatrix im;
    snprintf(model, sizeof(model), "%s/ds2-tiny-3d.gguf", env->dir);
    snprintf(out, sizeof(out), "%s/po.gguf", env->dir);
    const struct run_args a = {.model = model, .out = out, .chunks = 2, .process_output = true};
    if (run(env, &a) || read_back(out, &im)) {
        CHECK(0, "--process-output run");
        return;
    }
    const struct imc_imatrix_entry *e = imc_imatrix_find(&im, "output.weight");
    CHECK(e && e->n_mat == 1 && e->counts[0] == 2 * CTX, "output.weight with every token");
    imc_imatrix_free(&im);
    unlink(out);
}

// True when entry name has the same counts and bitwise the same sums in a and b.
static bool same_bits(const struct imc_imatrix *a, const struct imc_imatrix *b, const char *name)
{
    const struct imc_imatrix_entry *x = imc_imatrix_find(a, name), *y = imc_imatrix_find(b, name);
    return x && y && x->n_per_row == y->n_per_row && x->n_mat == y->n_mat &&
           memcmp(x->counts, y->counts, (size_t)x->n_mat * sizeof(double)) == 0 &&
           memcmp(x->sums, y->sums, (size_t)(x->n_mat * x->n_per_row) * sizeof(double)) == 0;
}

static void test_q8_stats(const struct env *env)
{
    char model[512], out_q8[512], out_f32[512];
    struct imc_synth_cfg cfg;
    snprintf(model, sizeof(model), "%s/ds2-tiny-3d-q8_0.gguf", env->dir);
    snprintf(out_q8, sizeof(out_q8), "%s/q8.gguf", env->dir);
    snprintf(out_f32, sizeof(out_f32), "%s/f32.gguf", env->dir);
    const struct run_args q8 = {.model = model, .out = out_q8, .chunks = 2},
                          f32 = {.model = model, .out = out_f32, .chunks = 2,
                                 .matmul = IMC_MATMUL_F32};
    struct imc_imatrix a, b;
    if (imc_synth_preset(&cfg, "ds2-tiny-3d") != IMC_OK ||
        (cfg.wtype = IMC_TYPE_Q8_0, imc_synth_write(&cfg, model) != IMC_OK) || run(env, &q8) ||
        run(env, &f32) || read_back(out_q8, &a) || read_back(out_f32, &b)) {
        CHECK(0, "q8 stats: setup and runs");
        return;
    }
    static const char *const first[] = {"blk.0.attn_q_a.weight", "blk.0.attn_kv_a_mqa.weight"};
    for (int i = 0; i < 2; i++) {
        CHECK(same_bits(&a, &b, first[i]), "q8 vs f32 matmul: %s statistics differ", first[i]);
    }
    CHECK(!same_bits(&a, &b, "blk.0.attn_q_b.weight"),
          "q8 vs f32 matmul: attn_q_b's statistics equal (q8 route not taken?)");
    imc_imatrix_free(&a);
    imc_imatrix_free(&b);
    unlink(out_q8);
    unlink(out_f32);
    unlink(model);
}

int main(void)
{
    struct env env;
    const char *src = getenv("IMC_SOURCE_DIR");
    const char *tmp = getenv("TMPDIR");
    snprintf(env.text, sizeof(env.text), "%s/data/text/calibration.txt", src ? src : ".");
    snprintf(env.dir, sizeof(env.dir), "%s/imc_imx_run.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    env.devnull = fopen("/dev/null", "w");
    if (!mkdtemp(env.dir) || !env.devnull || access(env.text, R_OK) != 0) {
        printf("cannot set up (temp dir, /dev/null or %s)\n", env.text);
        return 1;
    }
    static const char *const presets[] = {"ds2-tiny-3d", "ds2-tiny-ik", "ds2-tiny-all"};
    for (int i = 0; i < 3; i++) {
        test_entries(&env, presets[i]);
    }
    test_paths_and_halves(&env);
    test_process_output(&env);
    test_q8_stats(&env);
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof(p), "%s/%s.gguf", env.dir, presets[i]);
        unlink(p);
    }
    fclose(env.devnull);
    rmdir(env.dir);
    return check_summary();
}
