/*
 * tests/unit/test_quant_rules: coordinator/quant_rules (parsing, first match wins, bad regex,
 * type names) and coordinator/quantize on synthetic models (policy, fallback table, llama.cpp
 * keys, imatrix slices per expert / per head, count-0 matrices, bad imatrix shapes, no output on
 * error, bytes independent of the thread count). DESIGN.md §3, §4 "Quantized output".
 *
 * Expected values come from the specification (llama.h LLAMA_FTYPE numbers, llama.cpp's fallback
 * table, the key names of llama-quantize) or are recomputed independently from the type table's
 * row quantizer with the weights the specification says a row gets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/quant_rules.h"
#include "coordinator/quantize.h"
#include "core/file.h"
#include "core/log.h"
#include "model/gguf.h"
#include "model/imatrix_file.h"
#include "model/synth.h"
#include "tests/check.h"
#include "tests/logcap.h"

// ---- rules
// ---------------------------------------------------------------------------------------

static void test_type_names(void)
{
    struct logcap c;
    CHECK(imc_quant_type_parse("Q4_K", "t") == 12, "Q4_K is ggml type 12");
    CHECK(imc_quant_type_parse("iq4_nl", "t") == 20, "iq4_nl is ggml type 20");
    CHECK(imc_quant_type_parse("bf16", "t") == 30, "bf16 is ggml type 30");
    logcap_start(&c);
    int t = imc_quant_type_parse("q9_9", "TYPE");
    logcap_stop();
    CHECK(t == -1, "unknown type rejected");
    CHECK(c.n_err == 1 && strstr(c.text, "unknown type 'q9_9'") && strstr(c.text, "q4_k") &&
              strstr(c.text, "iq4_xs"),
          "error lists the valid types: %s", c.text);
}

static void test_first_match(void)
{
    struct imc_quant_rules r;
    imc_quant_rules_init(&r);
    CHECK(imc_quant_rules_parse_list(&r, "blk\\.1\\..*=q8_0,,blk\\..*_exps=Q4_K,blk=q4_0") ==
              IMC_OK,
          "list parses");
    CHECK(r.n == 3, "3 rules (empty item skipped), got %lld", (long long)r.n);
    CHECK(r.n == 3 && r.rules[1].type == IMC_TYPE_Q4_K, "type names case-insensitive");
    CHECK(imc_quant_rules_match(&r, "blk.1.ffn_up_exps.weight") == 0, "first rule wins");
    CHECK(imc_quant_rules_match(&r, "blk.2.ffn_up_exps.weight") == 1, "second rule");
    CHECK(imc_quant_rules_match(&r, "blk.2.attn_q.weight") == 2, "third rule");
    CHECK(imc_quant_rules_match(&r, "output.weight") == -1, "no match");
    CHECK(imc_quant_rules_match(&r, "xblk.11.y") == 2, "unanchored: '.' in blk\\.1\\. is literal");
    imc_quant_rules_free(&r);
    CHECK(r.n == 0 && r.rules == NULL, "free empties");
    imc_quant_rules_free(&r); // twice is fine
    // anchors and the last '=' split
    CHECK(imc_quant_rules_parse_list(&r, "^output\\.weight$=q6_k,a=b=q5_0") == IMC_OK,
          "anchored rule and '=' inside the regex");
    CHECK(imc_quant_rules_match(&r, "output.weight") == 0, "anchored match");
    CHECK(imc_quant_rules_match(&r, "xoutput.weight") == -1, "anchor holds");
    CHECK(r.n == 2 && strcmp(r.rules[1].pattern, "a=b") == 0, "split at the last '='");
    imc_quant_rules_free(&r);
}

static void test_bad_rules(void)
{
    struct imc_quant_rules r;
    struct logcap c;
    imc_quant_rules_init(&r);
    CHECK(imc_quant_rules_parse_list(&r, "ok=q8_0") == IMC_OK, "one good rule");
    logcap_start(&c);
    enum imc_status st = imc_quant_rules_parse_list(&r, "blk(=q4_0");
    logcap_stop();
    CHECK(st == IMC_ERR_ARG && r.n == 1, "bad regex rejected, set unchanged");
    CHECK(c.n_err == 1 && strstr(c.text, "bad regex 'blk('"), "bad regex named: %s", c.text);
    logcap_start(&c);
    st = imc_quant_rules_parse_list(&r, "blk=q3_x");
    logcap_stop();
    CHECK(st == IMC_ERR_ARG && strstr(c.text, "unknown type 'q3_x'") && strstr(c.text, "valid:"),
          "unknown rule type: %s", c.text);
    logcap_start(&c);
    st = imc_quant_rules_parse_list(&r, "noequals");
    logcap_stop();
    CHECK(st == IMC_ERR_ARG && strstr(c.text, "no '='"), "missing '=': %s", c.text);
    logcap_start(&c);
    st = imc_quant_rules_parse_list(&r, "=q8_0");
    logcap_stop();
    CHECK(st == IMC_ERR_ARG && strstr(c.text, "empty regex"), "empty regex: %s", c.text);
    CHECK(r.n == 1, "failed adds leave the set unchanged");
    imc_quant_rules_free(&r);
}

static void test_rules_text(void)
{
    struct imc_quant_rules r;
    struct logcap c;
    imc_quant_rules_init(&r);
    const char *text = "# comment\n\n  blk\\.[0-9]{1,2}\\.ffn_up=q5_0  \n\t# another\n"
                       "attn_k_b=q8_0\n";
    CHECK(imc_quant_rules_parse_text(&r, text, "rules.txt") == IMC_OK, "file text parses");
    CHECK(r.n == 2, "two rules, got %lld", (long long)r.n);
    CHECK(imc_quant_rules_match(&r, "blk.12.ffn_up.weight") == 0, "',' allowed in file regex");
    CHECK(imc_quant_rules_match(&r, "blk.123.ffn_up.weight") == -1, "{1,2} bound holds");
    imc_quant_rules_free(&r);
    logcap_start(&c);
    enum imc_status st = imc_quant_rules_parse_text(&r, "a=q8_0\n# x\nb=(=q4_0\n", "rules.txt");
    logcap_stop();
    CHECK(st == IMC_ERR_ARG && strstr(c.text, "rules.txt:3:"), "line number named: %s", c.text);
    imc_quant_rules_free(&r);
    logcap_start(&c);
    st = imc_quant_rules_read_file(&r, "/nonexistent/rules.txt");
    logcap_stop();
    CHECK(st == IMC_ERR_IO && strstr(c.text, "/nonexistent/rules.txt"), "unreadable rules file");
    imc_quant_rules_free(&r);
}

static void test_policy_tables(void)
{
    // llama.cpp's fallback for rows that do not fit 256-blocks, then f16.
    CHECK(imc_quantize_fallback(IMC_TYPE_Q2_K, 64) == IMC_TYPE_IQ4_NL, "q2_k -> iq4_nl");
    CHECK(imc_quantize_fallback(IMC_TYPE_Q3_K, 64) == IMC_TYPE_IQ4_NL, "q3_k -> iq4_nl");
    CHECK(imc_quantize_fallback(IMC_TYPE_IQ4_XS, 96) == IMC_TYPE_IQ4_NL, "iq4_xs -> iq4_nl");
    CHECK(imc_quantize_fallback(IMC_TYPE_Q4_K, 128) == IMC_TYPE_Q5_0, "q4_k -> q5_0");
    CHECK(imc_quantize_fallback(IMC_TYPE_Q5_K, 64) == IMC_TYPE_Q5_1, "q5_k -> q5_1");
    CHECK(imc_quantize_fallback(IMC_TYPE_Q6_K, 64) == IMC_TYPE_Q8_0, "q6_k -> q8_0");
    CHECK(imc_quantize_fallback(IMC_TYPE_Q4_K, 16) == IMC_TYPE_F16, "q4_k -> f16 for 16");
    CHECK(imc_quantize_fallback(IMC_TYPE_Q8_0, 16) == IMC_TYPE_F16, "q8_0 -> f16 for 16");
    CHECK(imc_quantize_fallback(IMC_TYPE_Q4_K, 512) == IMC_TYPE_Q4_K, "q4_k fits 512");
    CHECK(imc_quantize_fallback(IMC_TYPE_F32, 7) == IMC_TYPE_F32, "f32 fits anything");
    // llama.h enum llama_ftype
    CHECK(imc_quantize_ftype(IMC_TYPE_Q8_0) == 7 && imc_quantize_ftype(IMC_TYPE_Q4_0) == 2 &&
              imc_quantize_ftype(IMC_TYPE_Q4_K) == 14 &&
              imc_quantize_ftype(IMC_TYPE_IQ4_NL) == 25 &&
              imc_quantize_ftype(IMC_TYPE_Q6_K) == 18 && imc_quantize_ftype(IMC_TYPE_BF16) == 32,
          "LLAMA_FTYPE values");
    struct imc_tensor_info t = {.name = "blk.0.ffn_up.weight", .n_dims = 2, .ne = {64, 32, 1, 1}};
    CHECK(imc_quantize_is_target(&t), "2D weight is a target");
    t.name = "blk.0.ffn_gate_inp.weight";
    CHECK(!imc_quantize_is_target(&t), "router kept");
    t.name = "blk.0.attn_kv_a_norm.weight";
    CHECK(!imc_quantize_is_target(&t), "norm kept");
    t.name = "blk.0.exp_probs_b.bias";
    CHECK(!imc_quantize_is_target(&t), "bias kept");
    t.name = "blk.0.ffn_up.weight";
    t.n_dims = 1;
    CHECK(!imc_quantize_is_target(&t), "1-D kept");
}

// ---- quantize on a synthetic model --------------------------------------------------------------

struct env {
    char dir[256];
    char model[320];
};

static const char *path_in(const struct env *e, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", e->dir, name);
    return buf;
}

static bool exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

// Adds an entry of n_per_row × n_mat with sums[m][j] = f(m, j)·counts[m].
static struct imc_imatrix_entry *add_entry(struct imc_imatrix *im, const char *name,
                                           int64_t n_per_row, int64_t n_mat)
{
    struct imc_imatrix_entry *e = NULL;
    if (imc_imatrix_get_entry(im, name, n_per_row, n_mat, &e) != IMC_OK) {
        return NULL;
    }
    return e;
}

// The imatrix of the slice tests: per-expert weights with one dominant column per expert, one
// expert that saw no token, and attn_v_b in llama.cpp's one-matrix layout of ne[0]·ne[2] values.
static enum imc_status make_imatrix(const char *path)
{
    struct imc_imatrix im;
    imc_imatrix_init(&im);
    enum imc_status st = IMC_ERR_INTERNAL;
    struct imc_imatrix_entry *e = add_entry(&im, "blk.1.ffn_up_exps.weight", 64, 8);
    if (e) {
        for (int64_t m = 0; m < 8; m++) {
            e->counts[m] = m == 5 ? 0 : 3;
            for (int64_t j = 0; j < 64; j++) {
                e->sums[m * 64 + j] =
                    m == 5 ? 0 : (double)(1 + m) * (j == m * 7 ? 5000 : 1 + j % 3) * 3;
            }
        }
        e = add_entry(&im, "blk.1.attn_v_b.weight", 32 * 4, 1);
    }
    if (e) {
        e->counts[0] = 2;
        for (int64_t j = 0; j < 128; j++) {
            e->sums[j] = (double)((j / 32) + 1) * (j % 32 == 3 * (j / 32) ? 900 : 1 + j % 5) * 2;
        }
        im.chunk_count = 7;
        st = imc_imatrix_add_dataset(&im, "calib.txt");
    }
    if (st == IMC_OK) {
        st = imc_imatrix_write_gguf(&im, path);
    }
    imc_imatrix_free(&im);
    return st;
}

static enum imc_status quantize(const struct env *e, const char *out, enum imc_type type,
                                const char *imatrix, const struct imc_quant_rules *rules, int nt)
{
    struct imc_quantize_opts o;
    imc_quantize_opts_default(&o);
    o.model = e->model;
    o.out = out;
    o.type = type;
    o.imatrix = imatrix;
    o.rules = rules;
    o.n_threads = nt;
    return imc_quantize_run(&o, NULL);
}

// Checks every row of tensor name in q against from_float(row of the f32 model, qw(matrix)).
// qw_of returns the weights of matrix m or NULL. Returns the number of matrices whose weighted
// bytes differ from the unweighted ones (to show the weights mattered).
static int check_rows(const struct imc_gguf *src, const struct imc_gguf *q, const char *name,
                      const float *qw, const uint8_t *has, int64_t n_mat)
{
    const struct imc_tensor_info *ts = imc_gguf_find_tensor(src, name);
    const struct imc_tensor_info *tq = imc_gguf_find_tensor(q, name);
    CHECK(ts && tq && tq->type == IMC_TYPE_Q4_0, "%s present as q4_0", name);
    if (!ts || !tq || tq->type != IMC_TYPE_Q4_0) {
        return 0;
    }
    const struct imc_type_traits *tr = imc_type_traits(IMC_TYPE_Q4_0);
    int64_t ne0 = ts->ne[0], ne1 = ts->ne[1];
    uint64_t rb = 0;
    imc_type_row_bytes(IMC_TYPE_Q4_0, ne0, &rb);
    uint8_t want[1024], plain[1024];
    int n_bad = 0, n_diff = 0;
    for (int64_t m = 0; m < n_mat; m++) {
        int diff = 0;
        for (int64_t r = 0; r < ne1; r++) {
            const float *x = (const float *)ts->data + (m * ne1 + r) * ne0;
            tr->from_float(x, want, ne0, has[m] ? qw + m * ne0 : NULL);
            tr->from_float(x, plain, ne0, NULL);
            n_bad +=
                memcmp(want, (const uint8_t *)tq->data + (uint64_t)(m * ne1 + r) * rb, rb) != 0;
            diff |= memcmp(want, plain, rb) != 0;
        }
        n_diff += diff;
    }
    CHECK(n_bad == 0, "%s: %d rows differ from the per-matrix weighted quantization", name, n_bad);
    return n_diff;
}

static void test_slices(const struct env *e, const char *imat, const char *out)
{
    struct imc_gguf *src = NULL, *q = NULL;
    CHECK(imc_gguf_open(&src, e->model) == IMC_OK && imc_gguf_open(&q, out) == IMC_OK, "open");
    if (!src || !q) {
        imc_gguf_free(src);
        imc_gguf_free(q);
        return;
    }
    // experts: qw = sums / count per expert; expert 5 (count 0) unweighted
    float qw[8 * 64];
    uint8_t has[8];
    for (int64_t m = 0; m < 8; m++) {
        has[m] = m != 5;
        for (int64_t j = 0; j < 64; j++) {
            qw[m * 64 + j] = m == 5 ? 0.0f : (float)((1 + m) * (j == m * 7 ? 5000 : 1 + j % 3));
        }
    }
    int n_diff = check_rows(src, q, "blk.1.ffn_up_exps.weight", qw, has, 8);
    CHECK(n_diff >= 4, "weights changed the bytes of most experts (%d of 7)", n_diff);
    // heads of attn_v_b from the one-matrix layout: head h = values [h·32, (h+1)·32)
    for (int64_t h = 0; h < 4; h++) {
        has[h] = 1;
        for (int64_t j = 0; j < 32; j++) {
            qw[h * 32 + j] = (float)((h + 1) * (j == 3 * h ? 900 : 1 + (h * 32 + j) % 5));
        }
    }
    n_diff = check_rows(src, q, "blk.1.attn_v_b.weight", qw, has, 4);
    CHECK(n_diff >= 2, "weights changed the bytes of the heads (%d of 4)", n_diff);
    // llama-quantize's keys
    uint32_t u = 0;
    CHECK(imc_gguf_get_u32(q, "general.file_type", &u) && u == 2, "file_type Q4_0 = 2");
    CHECK(imc_gguf_get_u32(q, "general.quantization_version", &u) && u == 2, "qnt version 2");
    const char *s = imc_gguf_get_str(q, "quantize.imatrix.file");
    CHECK(s && strcmp(s, imat) == 0, "quantize.imatrix.file");
    s = imc_gguf_get_str(q, "quantize.imatrix.dataset");
    CHECK(s && strcmp(s, "calib.txt") == 0, "quantize.imatrix.dataset");
    CHECK(imc_gguf_get_u32(q, "quantize.imatrix.entries_count", &u) && u == 2, "entries_count");
    CHECK(imc_gguf_get_u32(q, "quantize.imatrix.chunks_count", &u) && u == 7, "chunks_count");
    const char *arch = imc_gguf_get_str(q, "general.architecture");
    CHECK(arch && strcmp(arch, "deepseek2") == 0, "keys copied");
    CHECK(imc_gguf_n_tensors(q) == imc_gguf_n_tensors(src), "same tensors");
    const struct imc_tensor_info *t = imc_gguf_find_tensor(q, "blk.1.attn_k_b.weight");
    CHECK(t && t->type == IMC_TYPE_F16, "16-wide attn_k_b falls back to f16");
    t = imc_gguf_find_tensor(q, "blk.1.ffn_gate_inp.weight");
    CHECK(t && t->type == IMC_TYPE_F32, "router kept f32");
    t = imc_gguf_find_tensor(q, "token_embd.weight");
    CHECK(t && t->type == IMC_TYPE_Q4_0, "token_embd quantized to the default type");
    imc_gguf_free(src);
    imc_gguf_free(q);
}

static bool same_bytes(const char *a, const char *b)
{
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    bool same = imc_file_read_all(a, &x, &nx) == IMC_OK &&
                imc_file_read_all(b, &y, &ny) == IMC_OK && nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

static void test_quantize_ok(const struct env *e)
{
    char imat[320], o1[320], o3[320];
    path_in(e, "imat.gguf", imat, sizeof(imat));
    path_in(e, "q1.gguf", o1, sizeof(o1));
    path_in(e, "q3.gguf", o3, sizeof(o3));
    CHECK(make_imatrix(imat) == IMC_OK, "imatrix written");
    struct logcap c;
    logcap_start(&c);
    enum imc_status st = quantize(e, o1, IMC_TYPE_Q4_0, imat, NULL, 1);
    logcap_stop();
    CHECK(st == IMC_OK, "quantize q4_0 with imatrix");
    CHECK(strstr(c.text, "no imatrix entry for tensor 'blk.0.attn_q_a.weight'") != NULL,
          "missing entries warned: %.300s", c.text);
    CHECK(strstr(c.text, "'token_embd.weight'") == NULL, "no warning for token_embd");
    CHECK(quantize(e, o3, IMC_TYPE_Q4_0, imat, NULL, 3) == IMC_OK, "quantize with 3 threads");
    CHECK(same_bytes(o1, o3), "bytes do not depend on the thread count");
    test_slices(e, imat, o1);
    // rules: first match wins; a rule matching nothing is a warning naming it
    struct imc_quant_rules r;
    imc_quant_rules_init(&r);
    imc_quant_rules_parse_list(&r, "ffn_up_exps=q8_0,exps=q5_0,nomatch_xyz=q4_1");
    logcap_start(&c);
    st = quantize(e, o3, IMC_TYPE_Q4_0, NULL, &r, 2);
    logcap_stop();
    CHECK(st == IMC_OK && strstr(c.text, "nomatch_xyz") && c.n_wrn == 1,
          "unused rule warned once: %s", c.text);
    struct imc_gguf *q = NULL;
    CHECK(imc_gguf_open(&q, o3) == IMC_OK, "open ruled output");
    const struct imc_tensor_info *t = q ? imc_gguf_find_tensor(q, "blk.2.ffn_up_exps.weight") : 0;
    CHECK(t && t->type == IMC_TYPE_Q8_0, "rule 1 wins for ffn_up_exps");
    t = q ? imc_gguf_find_tensor(q, "blk.2.ffn_down_exps.weight") : NULL;
    CHECK(t && t->type == IMC_TYPE_Q5_0, "rule 2 for ffn_down_exps");
    t = q ? imc_gguf_find_tensor(q, "output.weight") : NULL;
    CHECK(t && t->type == IMC_TYPE_Q4_0, "output follows the default");
    CHECK(q && imc_gguf_find_key(q, "quantize.imatrix.file") < 0, "no imatrix keys without one");
    imc_gguf_free(q);
    imc_quant_rules_free(&r);
}

static void test_quantize_errors(const struct env *e)
{
    char imat[320], out[320];
    path_in(e, "bad-imat.gguf", imat, sizeof(imat));
    path_in(e, "bad-out.gguf", out, sizeof(out));
    struct imc_imatrix im;
    imc_imatrix_init(&im);
    struct imc_imatrix_entry *en = add_entry(&im, "blk.0.attn_output.weight", 32, 1);
    if (en) {
        en->counts[0] = 1;
    }
    CHECK(en && imc_imatrix_write_gguf(&im, imat) == IMC_OK, "bad imatrix written");
    imc_imatrix_free(&im);
    struct logcap c;
    logcap_start(&c);
    enum imc_status st = quantize(e, out, IMC_TYPE_Q4_0, imat, NULL, 2);
    logcap_stop();
    CHECK(st == IMC_ERR_FORMAT, "shape mismatch is a format error (%d)", (int)st);
    CHECK(strstr(c.text, "'blk.0.attn_output.weight'") && strstr(c.text, "expected 64") &&
              strstr(c.text, "found 32"),
          "error names tensor, expected and found: %s", c.text);
    CHECK(!exists(out), "no output left on error");
    logcap_start(&c);
    st = quantize(e, out, IMC_TYPE_Q4_0, "/nonexistent/imat.gguf", NULL, 1);
    logcap_stop();
    CHECK(st == IMC_ERR_IO && !exists(out) && strstr(c.text, "/nonexistent/imat.gguf"),
          "unreadable imatrix: %s", c.text);
    struct env bad = *e;
    snprintf(bad.model, sizeof(bad.model), "%s/missing.gguf", e->dir);
    logcap_start(&c);
    st = quantize(&bad, out, IMC_TYPE_Q4_0, NULL, NULL, 1);
    logcap_stop();
    CHECK(st == IMC_ERR_IO && !exists(out) && c.n_err == 1, "unreadable model");
}

int main(void)
{
    test_type_names();
    test_first_match();
    test_bad_rules();
    test_rules_text();
    test_policy_tables();

    struct env e = {0};
    const char *tmp = getenv("TMPDIR");
    snprintf(e.dir, sizeof(e.dir), "%s/imc-quant-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(e.dir) != NULL, "temp dir");
    snprintf(e.model, sizeof(e.model), "%s/ds2.gguf", e.dir);
    struct imc_synth_cfg cfg;
    CHECK(imc_synth_preset(&cfg, "ds2-tiny-3d") == IMC_OK, "preset");
    cfg.wtype = IMC_TYPE_F32;
    CHECK(imc_synth_write(&cfg, e.model) == IMC_OK, "model written");
    imc_log_set_level(IMC_LOG_WARN);
    test_quantize_ok(&e);
    test_quantize_errors(&e);
    const char *names[] = {"ds2.gguf", "imat.gguf", "q1.gguf", "q3.gguf", "bad-imat.gguf"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char p[320];
        unlink(path_in(&e, names[i], p, sizeof(p)));
    }
    rmdir(e.dir);
    return check_summary();
}
