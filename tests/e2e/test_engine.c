/*
 * tests/e2e/test_engine: properties of the engine API on synthetic models.
 *   - logits are bitwise identical for 1, 2 and 3 threads (llama-tiny, ds2-tiny-3d);
 *   - the split form (embed, layers on two engines owning [0,1) and [1,n), head) is bitwise
 *     the whole-model forward;
 *   - forward_batch of 2 sequences with out_begin equals single-sequence forwards bitwise (the
 *     matmul's output rows do not depend on the other rows of the call, kernels/cpu/gemm.h;
 *     attention runs per sequence);
 *   - the absorbed MLA path by blocks of heads and the MoE layers by groups of experts
 *     (opts.block_bytes: one head and one expert per block, and 3 heads' worth: blocks of 3 and
 *     1 heads, groups of a few experts; 10 pairs' worth without MLA) give the logits of whole
 *     blocks, bitwise (ds2-tiny-3d, qwen3moe-tiny);
 *   - a NaN in a weight stops the pass with IMC_ERR_NUMERIC naming the layer and tensor (and for
 *     attn_k_b / attn_v_b, multiplied by blocks of heads, the head and column);
 *   - the head of a subset of rows (row0) equals those rows of the whole head;
 *   - bad options and inputs give IMC_ERR_ARG;
 *   - under an address-space limit that refuses the scratch arena's reservation (RLIMIT_AS, as
 *     some clusters set), the engine falls back to allocated blocks: same logits, bitwise.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "core/log.h"
#include "engine_util.h"

#define N_TOK 40

static const char *const presets[] = {"llama-tiny",     "ds2-tiny-3d", "ds2-lite-tiny",
                                      "llama-moe-tiny", "qwen3-tiny",  "qwen3moe-tiny",
                                      "glm4moe-tiny"};

static void threads(const char *preset, const struct imc_model *m)
{
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, m->hp.n_vocab, 3);
    struct imc_engine_opts o = imc_engine_opts_default();
    float *l[3];
    for (int i = 0; i < 3; i++) {
        o.n_threads = i + 1;
        l[i] = tforward(m, &o, tok, N_TOK);
    }
    const size_t bytes = (size_t)(N_TOK * m->hp.n_vocab) * sizeof(float);
    CHECK(l[0] && l[1] && l[2], "%s: forward", preset);
    if (l[0] && l[1] && l[2]) {
        CHECK(memcmp(l[0], l[1], bytes) == 0, "%s: 1 vs 2 threads differ", preset);
        CHECK(memcmp(l[0], l[2], bytes) == 0, "%s: 1 vs 3 threads differ", preset);
    }
    for (int i = 0; i < 3; i++) {
        free(l[i]);
    }
}

static void split(const struct imc_model *m)
{
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, m->hp.n_vocab, 4);
    const int64_t d = m->hp.n_embd, nv = m->hp.n_vocab;
    struct imc_engine_opts o = imc_engine_opts_default();
    o.n_threads = 2;
    float *full = tforward(m, &o, tok, N_TOK);
    struct imc_engine *a = NULL, *b = NULL;
    o.layer_end = 1;
    CHECK(imc_engine_init(&a, m, &o) == IMC_OK, "stage 0");
    o.layer_begin = 1;
    o.layer_end = m->hp.n_layer;
    CHECK(imc_engine_init(&b, m, &o) == IMC_OK, "stage 1");
    float *h = malloc((size_t)(N_TOK * d) * 4), *lg = malloc((size_t)(N_TOK * nv) * 4);
    float lg1[1];
    CHECK(a && b && full, "setup");
    if (a && b && full) {
        CHECK(imc_engine_forward(a, tok, N_TOK, lg1) == IMC_ERR_ARG,
              "partial engine refuses forward");
        CHECK(imc_engine_embed(a, tok, N_TOK, h) == IMC_OK, "embed");
        CHECK(imc_engine_layers(a, h, 1, N_TOK, 0) == IMC_OK, "layers [0,1)");
        CHECK(imc_engine_layers(b, h, 1, N_TOK, 0) == IMC_OK, "layers [1,n)");
        CHECK(imc_engine_head(b, h, 0, N_TOK, lg) == IMC_OK, "head");
        CHECK(memcmp(lg, full, (size_t)(N_TOK * nv) * 4) == 0, "split differs from forward");
        CHECK(imc_engine_head(b, h, 7, 5, lg) == IMC_OK, "head of rows 7..11");
        CHECK(memcmp(lg, full + 7 * nv, (size_t)(5 * nv) * 4) == 0, "row subset of the head");
        CHECK(imc_engine_head(b, h, N_TOK - 2, 3, lg) == IMC_ERR_ARG, "head rows past the call");
    }
    imc_engine_free(a);
    imc_engine_free(b);
    free(full);
    free(h);
    free(lg);
}

static void batch(const struct imc_model *m)
{
    const int64_t nv = m->hp.n_vocab, ob = 25, no = N_TOK - ob;
    int32_t tok[2 * N_TOK];
    ttokens(tok, 2 * N_TOK, nv, 6);
    struct imc_engine *e = NULL;
    float *lb = malloc((size_t)(2 * no * nv) * 4);
    CHECK(imc_engine_init(&e, m, NULL) == IMC_OK, "init");
    CHECK(imc_engine_forward_batch(e, tok, 2, N_TOK, ob, lb) == IMC_OK, "batch");
    CHECK(imc_engine_forward_batch(e, tok, 2, N_TOK, N_TOK, NULL) == IMC_OK, "batch, no head");
    for (int s = 0; s < 2; s++) {
        float *l1 = tforward(m, NULL, tok + s * N_TOK, N_TOK);
        CHECK(l1 != NULL, "single forward");
        if (l1) {
            const double err = trel_err(lb + s * no * nv, l1 + ob * nv, no * nv);
            CHECK(memcmp(lb + s * no * nv, l1 + ob * nv, (size_t)(no * nv) * 4) == 0,
                  "sequence %d of the batch differs from its single forward: rel err %.3g", s, err);
        }
        free(l1);
    }
    imc_engine_free(e);
    free(lb);
}

static void blocks(const char *preset, const struct imc_model *m)
{
    const struct imc_hparams *hp = &m->hp;
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, hp->n_vocab, 8);
    struct imc_engine_opts o = imc_engine_opts_default();
    o.n_threads = 2;
    float *whole = tforward(m, &o, tok, N_TOK);
    const int64_t head = N_TOK * (2 * hp->kv_lora + hp->qk_rope) * (int64_t)sizeof(float);
    const int64_t row = 2 * (hp->n_embd + hp->n_ff_exp) * (int64_t)sizeof(float); // expert pair
    const int64_t bytes[] = {1, head > 0 ? 3 * head : 10 * row};
    CHECK(whole != NULL, "%s: forward", preset);
    for (int i = 0; i < 2 && whole; i++) {
        o.block_bytes = bytes[i];
        float *l = tforward(m, &o, tok, N_TOK);
        CHECK(l != NULL, "%s: forward with blocks of %lld bytes", preset, (long long)bytes[i]);
        if (l) {
            CHECK(memcmp(l, whole, (size_t)(N_TOK * hp->n_vocab) * sizeof(float)) == 0,
                  "%s: blocks of %lld bytes differ from whole blocks: rel err %.3g", preset,
                  (long long)bytes[i], trel_err(l, whole, N_TOK * hp->n_vocab));
        }
        free(l);
    }
    free(whole);
}

struct logcap {
    char text[2048];
};

static void capture(enum imc_log_level level, const char *line, void *user)
{
    struct logcap *c = user;
    if (level == IMC_LOG_ERROR) {
        strncat(c->text, line, sizeof(c->text) - strlen(c->text) - 2);
        strcat(c->text, "\n");
    }
}

// The preset's file in dir (rewritten by poison) run forward on 8 tokens: the forward must stop
// with IMC_ERR_NUMERIC; its log into msg.
static void numeric_run(const char *dir, const char *preset, const char *name, int64_t block_bytes,
                        char *msg, size_t size)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s.gguf", dir, preset);
    struct imc_gguf *g = NULL;
    struct imc_model *m = NULL;
    CHECK(imc_gguf_open(&g, path) == IMC_OK && imc_model_load(&m, g) == IMC_OK, "reload");
    if (!m) {
        imc_gguf_free(g);
        return;
    }
    int32_t tok[8];
    ttokens(tok, 8, m->hp.n_vocab, 1);
    struct imc_engine *e = NULL;
    float *lg = malloc((size_t)(8 * m->hp.n_vocab) * 4);
    struct logcap cap = {{0}};
    imc_log_set_sink(capture, &cap);
    struct imc_engine_opts o = imc_engine_opts_default();
    o.block_bytes = block_bytes;
    CHECK(imc_engine_init(&e, m, &o) == IMC_OK, "init");
    CHECK(e && imc_engine_forward(e, tok, 8, lg) == IMC_ERR_NUMERIC, "%s: NaN weight not reported",
          name);
    imc_log_set_sink(NULL, NULL);
    printf("logged: %s", cap.text);
    snprintf(msg, size, "%s", cap.text);
    imc_engine_free(e);
    free(lg);
    imc_model_free(m);
    imc_gguf_free(g);
}

// With a NaN at element elem of tensor `name` of preset's file in dir (rewritten), the forward
// stops with IMC_ERR_NUMERIC and its message holds `want` (layer, tensor, slice, column).
static void numeric(const char *dir, const char *preset, const char *name, int64_t elem,
                    int64_t block_bytes, const char *want)
{
    char path[600], msg[sizeof(((struct logcap *)0)->text)];
    snprintf(path, sizeof(path), "%s/%s.gguf", dir, preset);
    CHECK(tpoison(path, name, elem) == 0, "cannot poison %s", path);
    numeric_run(dir, preset, name, block_bytes, msg, sizeof(msg));
    CHECK(strstr(msg, want) != NULL, "message lacks '%s': %s", want, msg);
}

// A NaN in row 5, column 3 of the upper half of the experts of the 3D tensor `name` (f32): the
// first of them with tokens reports it (column 5, its own token row 0), a slice whose rows do not
// start the group's. The output check runs once over a group of experts and then names the slice:
// the message must be the one of groups of one expert each (the check per slice).
static void numeric_experts(const char *dir, const char *preset, const char *name)
{
    char path[600], grouped[sizeof(((struct logcap *)0)->text)], single[sizeof(grouped)];
    snprintf(path, sizeof(path), "%s/%s.gguf", dir, preset);
    struct imc_gguf *g = NULL;
    CHECK(imc_gguf_open(&g, path) == IMC_OK, "open %s", path);
    const struct imc_tensor_info *t = g ? imc_gguf_find_tensor(g, name) : NULL;
    const int64_t ne0 = t ? t->ne[0] : 0, ne1 = t ? t->ne[1] : 0, ne2 = t ? t->ne[2] : 0;
    imc_gguf_free(g);
    CHECK(ne2 > 1, "%s: %s is not a 3D expert tensor", preset, name);
    for (int64_t x = ne2 / 2; x < ne2; x++) {
        CHECK(tpoison(path, name, (x * ne1 + 5) * ne0 + 3) == 0, "cannot poison %s", path);
    }
    numeric_run(dir, preset, name, 0, grouped, sizeof(grouped));
    numeric_run(dir, preset, name, 1, single, sizeof(single));
    char want[200];
    snprintf(want, sizeof(want), "layer 1: non-finite value (nan) in the output of '%s' (slice ",
             name);
    const char *s = strstr(grouped, want);
    CHECK(s && atoll(s + strlen(want)) >= ne2 / 2 && strstr(grouped, ", column 5") &&
              strcmp(grouped, single) == 0,
          "%s: experts in one group: '%s'; one per group: '%s'", preset, grouped, single);
}

static void bad_args(const struct imc_model *lite, const struct imc_model *llama)
{
    struct imc_engine *e = NULL;
    struct imc_engine_opts o = imc_engine_opts_default();
    o.attn = IMC_ATTN_ABSORBED;
    CHECK(imc_engine_init(&e, lite, &o) == IMC_ERR_ARG && !e, "absorbed without attn_k_b");
    o = imc_engine_opts_default();
    o.layer_begin = 2;
    o.layer_end = 1;
    CHECK(imc_engine_init(&e, llama, &o) == IMC_ERR_ARG && !e, "empty layer range");
    o.layer_begin = 0;
    o.layer_end = llama->hp.n_layer + 1;
    CHECK(imc_engine_init(&e, llama, &o) == IMC_ERR_ARG && !e, "layer range past the end");
    CHECK(imc_engine_init(&e, llama, NULL) == IMC_OK, "default init");
    int32_t tok[3] = {1, (int32_t)llama->hp.n_vocab, 2};
    float *lg = malloc((size_t)(3 * llama->hp.n_vocab) * 4);
    CHECK(imc_engine_forward(e, tok, 3, lg) == IMC_ERR_ARG, "token id out of range");
    CHECK(imc_engine_forward_batch(e, tok, 1, 3, 4, lg) == IMC_ERR_ARG, "out_begin > n_ctx");
    CHECK(imc_engine_attn_path(e) == IMC_ATTN_AUTO, "llama has no MLA path");
    imc_engine_free(e);
    free(lg);
}

// Address space of this process now (VmSize), in bytes; 0 when unknown.
static uint64_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmSize: %" SCNu64 " kB", &kb) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return kb * 1024;
}

// Logits of m computed in a child process whose address space may grow by only 1 GiB, which
// refuses the arena's reservation (as large as physical memory, checked first); 0 when they are
// bitwise those of this process.
static void arena_fallback(const char *preset, const struct imc_model *m)
{
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, m->hp.n_vocab, 11);
    float *want = tforward(m, NULL, tok, N_TOK);
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const size_t ram = (size_t)pages * (size_t)page, n = (size_t)(N_TOK * m->hp.n_vocab);
    CHECK(want != NULL && pages > 0 && page > 0, "%s: forward", preset);
    int fd[2];
    CHECK(pipe(fd) == 0, "pipe");
    const pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        const uint64_t vm = vm_size();
        const struct rlimit lim = {vm + (1ull << 30), vm + (1ull << 30)};
        int code = vm == 0 || setrlimit(RLIMIT_AS, &lim) != 0 ? 2 : 0;
        void *probe = code ? MAP_FAILED
                           : mmap(NULL, ram, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        code = code ? code : probe != MAP_FAILED ? 3 : 0; // the limit must refuse it
        float *got = code ? NULL : tforward(m, NULL, tok, N_TOK);
        code = code ? code : got == NULL ? 4 : 0;
        for (size_t off = 0; got && off < n * sizeof(float);) {
            const ssize_t w = write(fd[1], (const char *)got + off, n * sizeof(float) - off);
            code = w <= 0 ? 5 : code;
            off += w > 0 ? (size_t)w : n * sizeof(float);
        }
        _exit(code);
    }
    close(fd[1]);
    float *got = calloc(n, sizeof(float));
    size_t off = 0;
    for (ssize_t r = 1; got && r > 0 && off<n * sizeof(float); off += r> 0 ? (size_t)r : 0) {
        r = read(fd[0], (char *)got + off, n * sizeof(float) - off);
    }
    close(fd[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "%s: child under RLIMIT_AS exited %d (2 limit, 3 reservation not refused, 4 forward, "
          "5 write)",
          preset, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    CHECK(off == n * sizeof(float) && want && memcmp(got, want, n * sizeof(float)) == 0,
          "%s: logits with the arena in blocks differ from the reserved arena's", preset);
    free(got);
    free(want);
}

int main(void)
{
    char dir[256];
    tmkdir(dir, sizeof(dir), "engine");
    enum { N = sizeof(presets) / sizeof(presets[0]) };
    struct tmodel t[N];
    for (int i = 0; i < N; i++) {
        if (tmodel_open(&t[i], dir, presets[i]) != 0) {
            printf("FAIL: preset %s\n", presets[i]);
            return 1;
        }
    }
    threads("llama-tiny", t[0].m);
    threads("ds2-tiny-3d", t[1].m);
    threads("qwen3moe-tiny", t[5].m);
    threads("glm4moe-tiny", t[6].m);
    split(t[0].m);
    split(t[1].m);
    batch(t[1].m);
    batch(t[5].m);
    batch(t[6].m);
    blocks("ds2-tiny-3d", t[1].m);
    blocks("qwen3moe-tiny", t[5].m);
    bad_args(t[2].m, t[0].m);
    arena_fallback("ds2-tiny-3d", t[1].m);
    for (int i = 0; i < N; i++) {
        tmodel_close(&t[i]);
    }
    numeric(dir, "llama-tiny", "blk.1.attn_q.weight", 5, 0, // rewrites the file
            "layer 1: non-finite value (nan) in the output of 'blk.1.attn_q.weight'");
    // attn_k_b [qk_nope 16, kv_lora 32, 4 heads]: row 5 of head 2; attn_v_b [kv_lora 32, v_head
    // 16, 4 heads]: row 7 of head 3. All heads in one block, then one head per block.
    for (int b = 0; b < 2; b++) {
        numeric(dir, "ds2-tiny-3d", "blk.1.attn_k_b.weight", (2 * 32 + 5) * 16 + 3, b,
                "layer 1: non-finite value (nan) in the output of 'blk.1.attn_k_b.weight' (slice "
                "2), token row 0, column 5");
    }
    for (int b = 0; b < 2; b++) {
        struct tmodel fresh; // the k_b NaN above gone
        CHECK(tmodel_open(&fresh, dir, "ds2-tiny-3d") == 0, "rewrite ds2-tiny-3d");
        tmodel_close(&fresh);
        numeric(dir, "ds2-tiny-3d", "blk.1.attn_v_b.weight", (3 * 16 + 7) * 32 + 1, b,
                "layer 1: non-finite value (nan) in the output of 'blk.1.attn_v_b.weight' (slice "
                "3), token row 0, column 7");
    }
    numeric_experts(dir, "qwen3moe-tiny", "blk.1.ffn_up_exps.weight");
    trmdir(dir, presets, N);
    return check_summary();
}
