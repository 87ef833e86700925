/*
 * tests/unit/test_imatrix_ckpt: the pieces of `imc imatrix` that need no model run —
 *   - coordinator/checkpoint: write → read gives back every double bit for bit (sums, counts,
 *     NLL sums, running PPL values, fingerprint); a flipped byte, a truncated file and a foreign
 *     file are IMC_ERR_FORMAT; a differing fingerprint field is IMC_ERR_ARG naming the field;
 *   - coordinator/imatrix_stats: sum, mean, max, active fraction and entropy of hand-made
 *     entries against values worked out by hand;
 *   - coordinator/coverage: unrouted experts, min / median / max of hand-made counts.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/checkpoint.h"
#include "coordinator/coverage.h"
#include "coordinator/imatrix_stats.h"
#include "core/log.h"
#include "model/arch.h"
#include "model/imatrix_file.h"
#include "tests/check.h"

static void fill_imatrix(struct imc_imatrix *im)
{
    struct imc_imatrix_entry *e;
    imc_imatrix_init(im);
    IMC_ASSERT(imc_imatrix_add_dataset(im, "calib.txt") == IMC_OK);
    im->chunk_count = 3;
    im->chunk_size = 64;
    IMC_ASSERT(imc_imatrix_get_entry(im, "blk.0.ffn_up_exps.weight", 5, 3, &e) == IMC_OK);
    for (int i = 0; i < 15; i++) {
        e->sums[i] = 1.0 / (i + 3.0); // values with all mantissa bits in use
    }
    e->counts[0] = 7;
    e->counts[2] = 11;
    IMC_ASSERT(imc_imatrix_get_entry(im, "blk.0.attn_q.weight", 4, 1, &e) == IMC_OK);
    for (int i = 0; i < 4; i++) {
        e->sums[i] = sqrt(i + 2.0);
    }
    e->counts[0] = 192;
}

static struct imc_ckpt_fp make_fp(void)
{
    struct imc_ckpt_fp fp = {.model = strdup("/m/model.gguf"),
                             .model_size = 123456,
                             .text = strdup("/t/calib.txt"),
                             .text_size = 999,
                             .tokens_hash = 0x1234abcdull,
                             .n_ctx = 64,
                             .from_chunk = 2,
                             .n_chunk = 10,
                             .process_output = 0,
                             .attn = strdup("absorbed")};
    return fp;
}

static bool same_imatrix_bits(const struct imc_imatrix *a, const struct imc_imatrix *b)
{
    if (a->n_entries != b->n_entries || a->chunk_count != b->chunk_count ||
        a->chunk_size != b->chunk_size || a->n_datasets != b->n_datasets ||
        strcmp(a->datasets[0], b->datasets[0]) != 0) {
        return false;
    }
    for (int64_t i = 0; i < a->n_entries; i++) {
        const struct imc_imatrix_entry *x = &a->entries[i], *y = &b->entries[i];
        if (strcmp(x->name, y->name) != 0 || x->n_per_row != y->n_per_row || x->n_mat != y->n_mat ||
            memcmp(x->sums, y->sums, (size_t)(x->n_per_row * x->n_mat) * sizeof(double)) != 0 ||
            memcmp(x->counts, y->counts, (size_t)x->n_mat * sizeof(double)) != 0) {
            return false;
        }
    }
    return true;
}

// Rewrites path with byte `at` xor-ed (at < 0: the file cut to `keep` bytes).
static void damage(const char *path, long at, long keep)
{
    FILE *f = fopen(path, "rb");
    char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f) {
        fclose(f);
    }
    if (at >= 0 && (size_t)at < n) {
        buf[at] ^= 0x10;
    }
    f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, at >= 0 ? n : (size_t)keep, f);
        fclose(f);
    }
}

static void test_checkpoint(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/x.gguf.ckpt", dir);
    struct imc_imatrix im;
    fill_imatrix(&im);
    struct imc_ckpt_fp fp = make_fp();
    const struct imc_ppl_acc acc = {.sum_nll = 1.0 / 3.0, .sum_nll2 = M_PI, .count = 93};
    const double ppl[3] = {12.25 + 1e-13, 11.5, exp(1.0)};
    CHECK(imc_ckpt_write(path, &fp, 3, &acc, ppl, &im) == IMC_OK, "write");
    struct imc_ckpt c;
    CHECK(imc_ckpt_read(path, &c) == IMC_OK, "read back");
    CHECK(c.chunks_done == 3 && memcmp(c.ppl, ppl, sizeof(ppl)) == 0, "chunks done, PPL values");
    CHECK(memcmp(&c.acc, &acc, sizeof(acc)) == 0, "NLL sums bit for bit");
    CHECK(same_imatrix_bits(&im, &c.im), "imatrix bit for bit");
    CHECK(imc_ckpt_fp_check(path, &c.fp, &fp) == IMC_OK, "fingerprint equal");
    struct imc_ckpt_fp other = make_fp();
    other.n_ctx = 128;
    CHECK(imc_ckpt_fp_check(path, &c.fp, &other) == IMC_ERR_ARG, "--ctx differs");
    imc_ckpt_fp_free(&other);
    other = make_fp();
    free(other.attn);
    other.attn = strdup("non-absorbed");
    CHECK(imc_ckpt_fp_check(path, &c.fp, &other) == IMC_ERR_ARG, "attention path differs");
    imc_ckpt_fp_free(&other);
    imc_ckpt_free(&c);
    damage(path, 200, 0);
    CHECK(imc_ckpt_read(path, &c) == IMC_ERR_FORMAT, "flipped byte");
    CHECK(imc_ckpt_write(path, &fp, 3, &acc, ppl, &im) == IMC_OK, "rewrite");
    damage(path, -1, 100);
    CHECK(imc_ckpt_read(path, &c) == IMC_ERR_FORMAT, "truncated file");
    damage(path, -1, 0);
    CHECK(imc_ckpt_read(path, &c) == IMC_ERR_FORMAT, "empty file");
    snprintf(path, sizeof(path), "%s/absent.ckpt", dir);
    CHECK(imc_ckpt_read(path, &c) == IMC_ERR_IO, "missing file");
    snprintf(path, sizeof(path), "%s/x.gguf.ckpt", dir);
    unlink(path);
    imc_ckpt_fp_free(&fp);
    imc_imatrix_free(&im);
}

static void test_stats(void)
{
    // one matrix, counts 2: v = {4, 2, 2, 0} / ... sums {8, 4, 4, 0}
    double sums1[4] = {8, 4, 4, 0}, counts1[1] = {2};
    struct imc_imatrix_entry e1 = {
        .name = "a", .n_per_row = 4, .n_mat = 1, .sums = sums1, .counts = counts1};
    struct imc_imstat s;
    imc_imstat_entry(&e1, &s);
    // v = {4, 2, 2, 0}: Σv = 8, p = {1/2, 1/4, 1/4, 0}: H = 1/2·1 + 2·1/4·2 = 1.5 bits
    CHECK(s.n == 4 && s.sum == 16 && s.sum_v == 8 && s.max == 4, "sums, max");
    CHECK(s.n_active == 3, "active: %lld (the zero column is not)", (long long)s.n_active);
    CHECK_CLOSE(s.entropy, 1.5, 1e-12, 0);
    CHECK_CLOSE(s.h_norm, 0.75, 1e-12, 0);
    // two matrices (experts), the second saw no token: its columns are 0 and inactive; a tiny
    // column below 1e-3 · mean is inactive too
    double sums2[6] = {3, 3, 3e-6, 5, 5, 5}, counts2[2] = {3, 0};
    struct imc_imatrix_entry e2 = {
        .name = "b", .n_per_row = 3, .n_mat = 2, .sums = sums2, .counts = counts2};
    imc_imstat_entry(&e2, &s);
    CHECK(s.n == 6 && s.n_active == 2, "expert with no token inactive: %lld",
          (long long)s.n_active);
    CHECK_CLOSE(s.sum_v, 2 + 1e-6, 1e-15, 0);
    const double z = 2 + 1e-6, p1 = 1 / z, p3 = 1e-6 / z;
    CHECK_CLOSE(s.entropy, -2 * p1 * log2(p1) - p3 * log2(p3), 1e-12, 0);
}

static void test_coverage(void)
{
    struct imc_imatrix im;
    struct imc_imatrix_entry *e;
    imc_imatrix_init(&im);
    IMC_ASSERT(imc_imatrix_get_entry(&im, "blk.1.ffn_gate_exps.weight", 2, 4, &e) == IMC_OK);
    const double counts[4] = {5, 0, 9, 2};
    memcpy(e->counts, counts, sizeof(counts));
    struct imc_tensor_info t = {
        .name = "blk.1.ffn_gate_exps.weight", .n_dims = 3, .ne = {2, 3, 4, 1}};
    struct imc_layer layers[2] = {{0}, {.ffn_gate_exps = &t, .is_moe = true}};
    struct imc_model m = {.arch = IMC_ARCH_LLAMA, .layers = layers};
    m.hp.n_layer = 2;
    m.hp.n_expert = 4;
    struct imc_coverage cov;
    CHECK(imc_coverage_compute(&cov, &m, &im) == IMC_OK && cov.n_layers == 1, "one MoE layer");
    if (cov.n_layers == 1) {
        const struct imc_coverage_layer *c = &cov.layers[0];
        CHECK(c->layer == 1 && c->n_expert == 4 && c->n_unrouted == 1 && c->unrouted[0] == 1,
              "unrouted expert 1");
        CHECK(c->min == 0 && c->median == 3.5 && c->max == 9, "min %g median %g max %g", c->min,
              c->median, c->max);
    }
    imc_coverage_free(&cov);
    imc_imatrix_free(&im);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/imc_imx_ckpt.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_checkpoint(dir);
    test_stats();
    test_coverage();
    rmdir(dir);
    return check_summary();
}
