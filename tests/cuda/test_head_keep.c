/*
 * tests/cuda/test_head_keep: the logits the engine's head keeps (worker/engine_head.c:
 * imc_engine_head with logits NULL, imc_engine_score_head, imc_engine_head_rows), on the
 * emulated CUDA table and on the cpu table, for llama-tiny and ds2-tiny-3d:
 *   - scored where they are: the scores of the kept rows (with KLD base rows) are bitwise those
 *     of imc_engine_score on the same rows brought to the host (the same nll_rows kernel on the
 *     same logits), and imc_engine_head_rows gives the host rows bitwise;
 *   - on cuda-emu no logits travel: the head moves up only the hidden rows it normalizes (and
 *     down only its 16-byte check record), the scoring only targets and base rows up and the
 *     scores down; a head given a host array downloads exactly the logits' bytes on top;
 *   - on the cpu table imc_engine_head_rows hands the kept rows themselves (no copy);
 *   - rows the head did not keep, or kept logits after the next layers call: IMC_ERR_ARG with
 *     a message; the engine's free leaves no emulated device memory behind;
 *   - a second layers call of the same shape uploads no positions (one copy and N_TOK·4 bytes
 *     fewer than the first).
 */
#include <stdlib.h>
#include <string.h>

#include "../e2e/engine_util.h"
#include "../logcap.h"
#include "backend_emu.h"
#include "coordinator/kld.h"
#include "kernels/cuda/emu/cuemu_api.h"
#include "tests/kernels/kcheck.h"

enum { N_TOK = 40, ROW0 = 12, N_ROWS = N_TOK - ROW0 }; // the head's rows: positions 12 .. 39

struct copies {
    size_t up, down, n_up, n_down;
};

static struct copies copies_of(struct imc_engine *e)
{
    struct copies c = {0, 0, 0, 0};
    void *ctx = imc_engine_backend_ctx(e);
    if (ctx) {
        tcuda_emu_traffic(ctx, &c.up, &c.down, &c.n_up, &c.n_down);
    }
    return c;
}

// Base rows for the KLD scoring: an encoding of arbitrary logits.
static uint16_t *base_rows(int64_t n_vocab, int64_t *len)
{
    *len = imc_kld_row_len(n_vocab);
    uint16_t *b = malloc((size_t)((N_ROWS - 1) * *len) * sizeof(uint16_t));
    float *l = malloc((size_t)n_vocab * sizeof(float));
    struct krng r = {5};
    for (int64_t i = 0; i < N_ROWS - 1; i++) {
        for (int64_t j = 0; j < n_vocab; j++) {
            l[j] = 4.0f * krng_unif(&r);
        }
        imc_kld_encode_row(l, n_vocab, b + i * *len);
    }
    free(l);
    return b;
}

static void one(const char *preset, const struct imc_model *m, const struct imc_backend *be)
{
    const char *tn = be ? "cuda-emu" : "cpu";
    const unsigned long long mem0 = cuemu_mem_used();
    const int64_t v = m->hp.n_vocab, d = m->hp.n_embd, n = N_ROWS - 1; // scored rows
    struct imc_engine_opts o = imc_engine_opts_default();
    o.backend = be;
    struct imc_engine *e = NULL;
    int32_t tok[N_TOK];
    ttokens(tok, N_TOK, v, 3);
    float *h = malloc((size_t)(N_TOK * d) * sizeof(float));
    float *host = malloc((size_t)(N_ROWS * v) * sizeof(float));
    float *buf = malloc((size_t)(N_ROWS * v) * sizeof(float));
    int64_t len = 0;
    uint16_t *base = base_rows(v, &len);
    struct imc_nll_row kept[N_ROWS], ref[N_ROWS];
    if (imc_engine_init(&e, m, &o) != IMC_OK || imc_engine_embed(e, tok, N_TOK, h) != IMC_OK) {
        CHECK(0, "%s %s: embed", preset, tn);
        goto done;
    }
    const struct copies l0 = copies_of(e);
    CHECK(imc_engine_layers(e, h, 1, N_TOK, 0) == IMC_OK, "%s %s: layers", preset, tn);
    const struct copies l1 = copies_of(e);
    // kept: the head's rows scored where they are
    const struct copies c0 = copies_of(e);
    CHECK(imc_engine_head(e, h, ROW0, N_ROWS, NULL) == IMC_OK, "%s %s: head", preset, tn);
    const struct copies c1 = copies_of(e);
    CHECK(imc_engine_score_head(e, kept, 0, n, tok + ROW0 + 1, base, len) == IMC_OK,
          "%s %s: score_head", preset, tn);
    const struct copies c2 = copies_of(e);
    const float *rows = imc_engine_head_rows(e, 0, N_ROWS, buf);
    CHECK(rows && (be ? rows == buf : rows != buf), "%s %s: head_rows %s", preset, tn,
          rows == buf ? "copied" : "in place");
    if (rows && rows != buf) {
        memcpy(buf, rows, (size_t)(N_ROWS * v) * sizeof(float));
    }
    // the same rows through a head writing host logits, scored from the host
    const struct copies c3 = copies_of(e);
    CHECK(imc_engine_head(e, h, ROW0, N_ROWS, host) == IMC_OK, "%s %s: head to host", preset, tn);
    const struct copies c4 = copies_of(e);
    CHECK(imc_engine_score(e, ref, host, n, tok + ROW0 + 1, base, len) == IMC_OK, "%s %s: score",
          preset, tn);
    CHECK(memcmp(host, buf, (size_t)(N_ROWS * v) * sizeof(float)) == 0,
          "%s %s: head_rows differ from the logits a head writes", preset, tn);
    CHECK(memcmp(kept, ref, sizeof(kept[0]) * (size_t)n) == 0,
          "%s %s: the kept rows' scores differ from the host rows' scores", preset, tn);
    if (be) {
        const size_t hid = (size_t)(N_ROWS * d) * sizeof(float), lg = (size_t)(N_ROWS * v) * 4;
        const size_t tgt = (size_t)n * sizeof(int32_t), bs = (size_t)(n * len) * sizeof(uint16_t);
        CHECK(c1.up - c0.up == hid && c1.down - c0.down <= 16,
              "%s %s: head (kept) moved %zu bytes up, %zu down (want %zu, <= 16)", preset, tn,
              c1.up - c0.up, c1.down - c0.down, hid);
        CHECK(c2.up - c1.up == tgt + bs && c2.down - c1.down == (size_t)n * sizeof(kept[0]),
              "%s %s: score_head moved %zu bytes up, %zu down (want %zu, %zu)", preset, tn,
              c2.up - c1.up, c2.down - c1.down, tgt + bs, (size_t)n * sizeof(kept[0]));
        CHECK(c4.down - c3.down == c1.down - c0.down + lg && c4.up - c3.up == hid,
              "%s %s: head to host moved %zu bytes down (want %zu more than kept)", preset, tn,
              c4.down - c3.down, lg);
        printf("%-13s %-9s head kept: %zu B up (hidden rows), %zu B down; scored in place: %zu B "
               "up, %zu B down; a head to the host: %zu B of logits down\n",
               preset, tn, c1.up - c0.up, c1.down - c0.down, c2.up - c1.up, c2.down - c1.down,
               c4.down - c3.down - (c1.down - c0.down));
    }
    // rows not kept
    struct logcap lc;
    logcap_start(&lc);
    const enum imc_status past = imc_engine_score_head(e, kept, 1, N_ROWS, tok, NULL, 0);
    const struct copies l2 = copies_of(e);
    const enum imc_status layers = imc_engine_layers(e, h, 1, N_TOK, 0);
    const struct copies l3 = copies_of(e);
    const enum imc_status stale = imc_engine_score_head(e, kept, 0, 1, tok, NULL, 0);
    const float *none = imc_engine_head_rows(e, 0, 1, buf);
    logcap_stop();
    CHECK(past == IMC_ERR_ARG && layers == IMC_OK && stale == IMC_ERR_ARG && !none &&
              lc.n_err == 3 && strstr(lc.text, "which keeps 28 rows") &&
              strstr(lc.text, "which keeps 0 rows"),
          "%s %s: rows not kept: %s, %s, %s", preset, tn, imc_status_str(past),
          imc_status_str(stale), lc.text);
    // a second layers call of the same shape: the positions are in the table already
    CHECK(!be || ((l1.up - l0.up) - (l3.up - l2.up) == N_TOK * sizeof(int32_t) &&
                  (l1.n_up - l0.n_up) - (l3.n_up - l2.n_up) == 1),
          "%s %s: layers moved %zu bytes up in %zu copies, again %zu in %zu (want %zu bytes and "
          "one copy fewer)",
          preset, tn, l1.up - l0.up, l1.n_up - l0.n_up, l3.up - l2.up, l3.n_up - l2.n_up,
          N_TOK * sizeof(int32_t));
done:
    imc_engine_free(e);
    CHECK(cuemu_mem_used() == mem0, "%s %s: %llu bytes of device memory left", preset, tn,
          cuemu_mem_used() - mem0);
    free(base);
    free(buf);
    free(host);
    free(h);
}

int main(void)
{
    char dir[256];
    tmkdir(dir, sizeof(dir), "head_keep");
    const char *presets[2] = {"llama-tiny", "ds2-tiny-3d"};
    for (int i = 0; i < 2; i++) {
        struct tmodel t;
        if (tmodel_open(&t, dir, presets[i]) != 0) {
            CHECK(0, "preset %s", presets[i]);
            continue;
        }
        one(presets[i], t.m, tcuda_backend_emu());
        one(presets[i], t.m, NULL);
        tmodel_close(&t);
    }
    trmdir(dir, presets, 2);
    return check_summary();
}
