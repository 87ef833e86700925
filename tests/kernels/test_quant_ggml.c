/*
 * tests/kernels/test_quant_ggml.c: compatibility with and quality against ggml's quantizers.
 * The table below was produced once, offline, by ggml's own quantize_<type> (no importance,
 * then with the weights qw) and dequantize_row_<type> (ggml commit d99724f2, 2026-08) on the
 * row this file generates: for each type, the bytes of the first block, Σy and Σ(i+1)·y of
 * ggml's dequantization of that block, ggml's rmse/rms over the row, and ggml's weighted error
 * Σ qw·(x - x̂)² when quantizing with qw. We check that imc decodes ggml's bytes to the same
 * values, and that imc's quantizers are at least as good as ggml's on the same row.
 */
#include "types/types.h"
#include "tests/check.h"

#include <stdint.h>
#include <string.h>

#define N 4096

struct golden {
    uint32_t type;
    double sum, wsum;  // Σ y, Σ (i+1)·y over ggml's dequantization of the first block
    double rmse;       // ggml: rmse/rms of the row quantized without importance
    double werr;       // ggml: Σ qw·(x - x̂)² of the row quantized with qw
    const char *hex;   // the first block, as ggml wrote it
};

static const struct golden golden[] = {
    {2, 0.952880859375, -30.4921875, 0.0815489, 216.725,
     "1535bb468938a68ac667bc7c4adb8a695970"},
    {3, 1.943359375, -25.03955078125, 0.074907, 136.817,
     "453415c1de47ab3ac89ce789df9f5bfdac7b6b80"},
    {6, 1.4293212890625, -33.5096435546875, 0.0406833, 52.2439,
     "15312d7f7519677d03604d047cdf78f9839504c292e0"},
    {7, 1.265625, -34.9864501953125, 0.0372831, 32.8061,
     "213015c1bd7ff59bbc9f47748049df02ce2f97fa48e6c710"},
    {8, 1.2602691650390625, -36.107711791992188, 0.00507138, 1.0425,
     "1f2535e51500e721e3f54347182b1c10128131bc03af1cff3be634f7be4901ddcced"},
    {10, 17.712890625, 3320.607421875, 0.291275, 1868.95,
     "fc8988668a77aa695869cdcdaaab7faa6b9ebeea5283d67a23975f675b967628d3b4065c32a277d1174944bf1a4d"
     "0cbd2a740a5914d8567ea971484aab6eae123959d16dd778dbae546e69ea94d90b9f602e7031"},
    {11, 11.554290771484375, 2816.6580200195312, 0.144197, 615.115,
     "e35eab3f943d0ce3715db7a167ed618691f479826db56d40f9cb9007fb5aeac6f25f8dc4e7758f94224ed979d1ac"
     "c90056e988e8b1d02b33fe10cdff780a9aab96fa43d4a926da3fa4e50603901e8d76c8919c734511a1cb6b47b8ae"
     "0a1cf114fbc2b19c1edd01bdc30b3f022326"},
    {12, 12.066757202148438, 2765.3739013671875, 0.0681741, 141.695,
     "4a1d0529b6e2a9f1bfe6a4ab2934ccdfadf7fab9171b77a80e7edb4c8b7a4a803c6459b32b295d277d8864deb9d6"
     "c5c758859fc75380a73d1b87552955944f08c39931843b987ae51572818b457033aaba4279b634a23ae8b505a398"
     "7efbfb0ab78506f86c837dc930e8c69b41a78edf197d307304f5736dba8b5051ba59b8350f25854ba75d94685438"
     "399c57b61065"},
    {13, 13.783897399902344, 2976.8495407104492, 0.0349642, 38.4019,
     "12191929b4e4a9efbfe6a2ab1a25cddf774a1f2b01a99877e5c92335d379f512692c816a956d9d78017b68ff03aa"
     "323f3cffe7633029ef520edeb78a08e696007bc9a4775853ad4fdc12d9af649e8b81c01a5fafb6106e6a171dba53"
     "b957ae0fa5436119874105f93a0411279a0075656483f16c585465d16b0a5610fce6e7046e091cffc916fb9170d1"
     "8c37834d0cbf13fa70e619fa06db7607a1a275b3817b0f5b2b965fab38d0a8706229bf7d11da"},
    {14, 13.271941184997559, 2907.5002956390381, 0.0168792, 8.53166,
     "bd6915d0ea88f99df102666b77b425c0d3d531506b80176685ac366d8102cb28a46ad88a9664fae7404982c08fdb"
     "511f96641ebee151de0076e0b697bcd4f212715317d23941cf78c3f63e49a07e3c611d96a14c1b9c0808f6f9b2de"
     "216fe5b11eb07fcf2b0c9cddde813c25df0fcf70f32efe70774cb1bc51d4ffd91f06cfc95aad8eda61b2950903a7"
     "6e1666a646140364c258b2627311d749447f9a4d8c7de977854ad21b407d2a628a8924ac2c91c5e62e9128863861"
     "af919204ab25f4606b44402fb43a4ab2bcaf54a94bb680b41a12"},
    {20, 1.16644287109375, -41.851165771484375, 0.0731888, 179.798,
     "2625cc368a28a68bc567cd7d3adb8a594960"},
    {23, 13.411972045898438, 2990.7736940383911, 0.0739614, 183.754,
     "02120f301bcd8c04cc368a28a68bc567cd7d3adb8a594960395e4ebb2121462a60865dd3b7c6c3c8c65ae0b73c6e"
     "48a1a3d8ea35aaecd0472a56d462ca46740def776a5dba74cb3f74ad85692acc1355e95a9c36d1731304447cf804"
     "ad758d31d41f3566c851712ffa5e50c384e4328e3b8c91d17b6a1955ddb65a963d90467792b5b9498228d27a"},
};

// xorshift64 and an Irwin-Hall(4) near-Gaussian: plain arithmetic, the same on every machine.
static uint64_t rng_state;

static double rng_unit(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static void make_row(float *x, float *qw)
{
    rng_state = 0x243f6a8885a308d3ull;
    for (int i = 0; i < N; i++) {
        double a = rng_unit(), b = rng_unit(), c = rng_unit(), d = rng_unit();
        x[i] = (float)((a + b + c + d - 2.0) * 1.7320508075688772);
    }
    for (int i = 0; i < N; i++) {
        double u = rng_unit();
        qw[i] = (float)(u * u * u * u * 50.0 + 0.01);
    }
}

static int hexval(char c)
{
    return c >= 'a' ? c - 'a' + 10 : c - '0';
}

static void test_type(const struct golden *g, const float *x, const float *qw)
{
    const struct imc_type_traits *t = imc_type_traits(g->type);
    static uint8_t q[N * 4];
    static float y[N];
    CHECK(strlen(g->hex) == 2 * t->type_size, "%s: golden block size", t->name);
    for (size_t i = 0; i < t->type_size; i++) {
        q[i] = (uint8_t)(hexval(g->hex[2 * i]) << 4 | hexval(g->hex[2 * i + 1]));
    }
    t->to_float(q, y, t->block_size);
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < t->block_size; i++) {
        s1 += y[i];
        s2 += (double)(i + 1) * y[i];
    }
    CHECK_CLOSE(s1, g->sum, 1e-12, 1e-12);
    CHECK_CLOSE(s2, g->wsum, 1e-12, 1e-12);

    t->from_float(x, q, N, NULL);
    t->to_float(q, y, N);
    double se = 0, s0 = 0;
    for (int i = 0; i < N; i++) {
        se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        s0 += (double)x[i] * x[i];
    }
    const double rmse = sqrt(se / s0);
    t->from_float(x, q, N, qw);
    t->to_float(q, y, N);
    double werr = 0;
    for (int i = 0; i < N; i++) {
        werr += (double)qw[i] * ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
    }
    printf("  %-7s rmse/rms %.5f (ggml %.5f)  weighted error %.4g (ggml %.4g)\n", t->name, rmse,
           g->rmse, werr, g->werr);
    CHECK(rmse <= 1.02 * g->rmse, "%s: rmse/rms %g, ggml %g", t->name, rmse, g->rmse);
    CHECK(werr <= 1.0 * g->werr, "%s: weighted error %g, ggml %g", t->name, werr, g->werr);
}

int main(void)
{
    static float x[N], qw[N];
    make_row(x, qw);
    for (size_t i = 0; i < sizeof(golden) / sizeof(golden[0]); i++) {
        test_type(&golden[i], x, qw);
    }
    return check_summary();
}
