/*
 * tests/unit/test_ppl: NLL / perplexity aggregation (coordinator/ppl.h), chunk cutting
 * (coordinator/chunks.h) and progress lines (coordinator/progress.h) on hand-computed inputs.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "coordinator/chunks.h"
#include "coordinator/ppl.h"
#include "coordinator/progress.h"
#include "tests/check.h"

// Uniform logits: every token has probability 1/n_vocab, so PPL = n_vocab exactly.
static void test_uniform(void)
{
    enum { V = 100, ROWS = 7 };
    float logits[V];
    for (int i = 0; i < V; i++) {
        logits[i] = 3.75f;
    }
    struct imc_ppl_acc a;
    imc_ppl_init(&a);
    for (int r = 0; r < ROWS; r++) {
        imc_ppl_add(&a, imc_ppl_nll_row(logits, V, (int32_t)(r * 13 % V)));
    }
    CHECK(a.count == ROWS, "count %lld", (long long)a.count);
    CHECK_CLOSE(imc_ppl_value(&a), 100.0, 0, 1e-12);
    CHECK_CLOSE(imc_ppl_error(&a), 0.0, 1e-9, 0);
}

// Three scored tokens with rational probabilities:
//   logits ln{1,2,5} -> p = {1,2,5}/8, target 1: nll = ln 4
//   logits ln{3,1,4} -> p = {3,1,4}/8, target 0: nll = ln(8/3)
//   logits {0,0,0}   -> p = 1/3 each,  target 2: nll = ln 3
// mean nll = ln(4 · 8/3 · 3)/3 = ln(32)/3, so PPL = 32^(1/3).
static void test_three_tokens(void)
{
    const float rows[4][3] = {
        {0.0f, (float)log(2.0), (float)log(5.0)},
        {(float)log(3.0), 0.0f, (float)log(4.0)},
        {0.0f, 0.0f, 0.0f},
        {9.0f, 9.0f, 9.0f}, // position n_ctx-1: never scored
    };
    // n_ctx 8: first = 4, positions 4, 5, 6 scored, predicting tokens[5], [6], [7].
    const int32_t tokens[8] = {2, 2, 2, 2, 2, 1, 0, 2};
    CHECK(imc_ppl_first(8) == 4 && imc_ppl_n_scored(8) == 3, "first/n_scored of 8");
    CHECK(imc_ppl_first(512) == 256 && imc_ppl_n_scored(512) == 255, "first/n_scored of 512");
    CHECK(imc_ppl_first(5) == 2 && imc_ppl_n_scored(5) == 2, "first/n_scored of 5");

    struct imc_ppl_acc a;
    imc_ppl_init(&a);
    imc_ppl_add_chunk(NULL, &a, &rows[0][0], 8, 3, tokens);
    CHECK(a.count == 3, "count %lld", (long long)a.count);

    const double x[3] = {log(4.0), log(8.0 / 3.0), log(3.0)};
    CHECK_CLOSE(imc_ppl_nll_row(rows[0], 3, 1), x[0], 1e-6, 0);
    CHECK_CLOSE(imc_ppl_nll_row(rows[1], 3, 0), x[1], 1e-6, 0);
    CHECK_CLOSE(imc_ppl_nll_row(rows[2], 3, 2), x[2], 1e-12, 0);
    const double ppl = cbrt(32.0);
    CHECK_CLOSE(imc_ppl_value(&a), ppl, 0, 1e-6);

    const double mean = (x[0] + x[1] + x[2]) / 3;
    const double mean2 = (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]) / 3;
    CHECK_CLOSE(imc_ppl_error(&a), ppl * sqrt((mean2 - mean * mean) / 2), 0, 1e-5);
}

// Large logits must not overflow: shifting all logits leaves the nll unchanged.
static void test_stability(void)
{
    const float lo[3] = {0.0f, 1.0f, 2.0f};
    const float hi[3] = {1000.0f, 1001.0f, 1002.0f};
    const double want = log(1 + exp(1.0) + exp(2.0)) - 1.0; // target 1
    CHECK_CLOSE(imc_ppl_nll_row(lo, 3, 1), want, 1e-12, 0);
    CHECK_CLOSE(imc_ppl_nll_row(hi, 3, 1), want, 1e-9, 0);

    struct imc_ppl_acc a;
    imc_ppl_init(&a);
    CHECK(isnan(imc_ppl_value(&a)), "empty accumulator gives NaN");
    imc_ppl_add(&a, 1.0);
    CHECK_CLOSE(imc_ppl_value(&a), exp(1.0), 0, 1e-15);
    CHECK(imc_ppl_error(&a) == 0.0, "one value has no error estimate");
}

static void test_chunks(void)
{
    int32_t text[21];
    for (int i = 0; i < 21; i++) {
        text[i] = 100 + i;
    }
    struct imc_chunks c;
    CHECK(imc_chunks_from_tokens(&c, text, 21, 5, 0, 7, "t") == IMC_OK, "21 tokens, ctx 5");
    CHECK(c.n_chunk == 4, "n_chunk %lld (tail dropped)", (long long)c.n_chunk);
    int32_t in[5];
    imc_chunks_input(&c, 2, in);
    CHECK(in[0] == 7 && in[1] == 111 && in[4] == 114, "BOS replaces the first token");
    const int32_t *t = imc_chunks_text(&c, 2);
    CHECK(t[0] == 110 && t[4] == 114, "targets keep the text's tokens");
    imc_chunks_free(&c);

    CHECK(imc_chunks_from_tokens(&c, text, 21, 5, 2, -1, "t") == IMC_OK, "max_chunks 2");
    CHECK(c.n_chunk == 2, "n_chunk %lld", (long long)c.n_chunk);
    imc_chunks_input(&c, 1, in);
    CHECK(in[0] == 105, "no BOS: the first token stays");
    imc_chunks_free(&c);

    CHECK(imc_chunks_from_tokens(&c, text, 4, 5, 0, 7, "t") == IMC_ERR_ARG, "4 < 5 tokens");
    CHECK(c.tokens == NULL, "nothing owned after a failure");
    CHECK(imc_chunks_from_tokens(&c, text, 5, 5, 0, 7, "t") == IMC_OK, "one chunk of tokens");
    CHECK(c.n_chunk == 1, "n_chunk %lld", (long long)c.n_chunk);
    imc_chunks_free(&c);
    imc_chunks_free(&c); // second free is a no-op
}

static void test_progress(void)
{
    char buf[128];
    imc_progress_format(buf, sizeof(buf), "perplexity", 2, 10, 1000, 4.0);
    CHECK(strcmp(buf, "perplexity: chunk 2/10, 250.0 tok/s, ETA 16.0s") == 0, "got '%s'", buf);
    imc_progress_format(buf, sizeof(buf), "perplexity", 10, 10, 5000, 20.0);
    CHECK(strcmp(buf, "perplexity: chunk 10/10, 250.0 tok/s, ETA 0.0s") == 0, "got '%s'", buf);
    imc_progress_format(buf, sizeof(buf), "x", 0, 10, 0, 0.0);
    CHECK(strcmp(buf, "x: chunk 0/10, 0.0 tok/s, ETA ?") == 0, "got '%s'", buf);
}

int main(void)
{
    test_uniform();
    test_three_tokens();
    test_stability();
    test_chunks();
    test_progress();
    return check_summary();
}
