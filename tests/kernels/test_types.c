/*
 * tests/kernels/test_types.c: the type table (ids, names, block and row sizes, against sizes
 * written here from ggml's block structs) and the fp16 / bf16 conversions (denormals, inf, nan,
 * round to nearest even, exhaustive round trips). Block decoding: test_quant_decode.c; quantizer
 * quality: test_quant_roundtrip.c.
 */
#include "types/nl_tables.h"
#include "types/types.h"
#include "tests/check.h"

#include <string.h>

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Expected geometry, from the ggml block structs (bytes per block = sum of the fields).
struct expect {
    uint32_t id;
    const char *name;
    int64_t bs;
    size_t ts;
};

static const struct expect expected[] = {
    {0, "f32", 1, 4},
    {1, "f16", 1, 2},
    {2, "q4_0", 32, 2 + 32 / 2},
    {3, "q4_1", 32, 2 + 2 + 32 / 2},
    {6, "q5_0", 32, 2 + 4 + 32 / 2},
    {7, "q5_1", 32, 2 + 2 + 4 + 32 / 2},
    {8, "q8_0", 32, 2 + 32},
    {10, "q2_k", 256, 256 / 16 + 256 / 4 + 2 + 2},
    {11, "q3_k", 256, 256 / 8 + 256 / 4 + 12 + 2},
    {12, "q4_k", 256, 2 + 2 + 12 + 256 / 2},
    {13, "q5_k", 256, 2 + 2 + 12 + 256 / 8 + 256 / 2},
    {14, "q6_k", 256, 256 / 2 + 256 / 4 + 256 / 16 + 2},
    {20, "iq4_nl", 32, 2 + 32 / 2},
    {23, "iq4_xs", 256, 2 + 2 + 256 / 64 + 256 / 2},
    {30, "bf16", 1, 2},
};

static void test_table(void)
{
    int n_known = 0;
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        const struct expect *e = &expected[i];
        const struct imc_type_traits *t = imc_type_traits(e->id);
        CHECK(t != NULL, "type %u missing", e->id);
        if (!t) {
            continue;
        }
        CHECK(strcmp(t->name, e->name) == 0, "id %u: %s vs %s", e->id, t->name, e->name);
        CHECK(strcmp(imc_type_name(e->id), e->name) == 0, "%s", imc_type_name(e->id));
        CHECK(t->block_size == e->bs, "%s: block %ld", e->name, (long)t->block_size);
        CHECK(t->type_size == e->ts, "%s: size %zu vs %zu", e->name, t->type_size, e->ts);
        CHECK(t->to_float && t->from_float, "%s: functions", e->name);
        CHECK(imc_type_from_name(e->name) == (int)e->id, "%s", e->name);
        char upper[16];
        size_t k = 0;
        for (; e->name[k] && k < sizeof(upper) - 1; k++) {
            char c = e->name[k];
            upper[k] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
        }
        upper[k] = 0;
        CHECK(imc_type_from_name(upper) == (int)e->id, "%s", upper);
        CHECK(imc_type_is_known(e->id), "%s", e->name);
        uint64_t bytes = 0;
        CHECK(imc_type_row_bytes(e->id, 7 * e->bs, &bytes) && bytes == 7 * e->ts,
              "%s: row of 7 blocks: %llu", e->name, (unsigned long long)bytes);
        CHECK(imc_type_row_bytes(e->id, 0, &bytes) && bytes == 0, "%s: empty row", e->name);
        if (e->bs > 1) {
            CHECK(!imc_type_row_bytes(e->id, 7 * e->bs + 1, &bytes), "%s: ragged row", e->name);
        }
        CHECK(!imc_type_row_bytes(e->id, -e->bs, &bytes), "%s: negative row", e->name);
        n_known++;
    }
    int n_table = 0;
    for (uint32_t t = 0; t < 1000; t++) {
        n_table += imc_type_is_known(t);
    }
    // The types imc reads but does not write are checked against the reference's bytes and
    // values (tests/data/types, kernels.types_golden), which also holds these.
    CHECK(n_table >= n_known, "table has %d types, expected at least %d", n_table, n_known);
    for (uint32_t t = 0; t < 1000; t++) {
        const struct imc_type_traits *tr = imc_type_traits(t);
        if (!tr) {
            continue;
        }
        const char *fn = imc_type_foreign_name(t);
        CHECK(fn && strcmp(fn, tr->name) == 0, "id %u: '%s' here, '%s' in types/names.def", t,
              tr->name, fn ? fn : "(none)");
        CHECK(imc_type_can_decode(tr), "%s: no decoder", tr->name);
        CHECK((tr->to_float != NULL) != (tr->seg != NULL), "%s: one decoder form", tr->name);
        CHECK(tr->from_float || tr->tol_rmse == 0, "%s: a tolerance without a quantizer",
              tr->name);
    }
    CHECK(imc_type_foreign_name(9) && strcmp(imc_type_foreign_name(9), "q8_1") == 0, "q8_1");
    CHECK(imc_type_foreign_name(34) && strcmp(imc_type_foreign_name(34), "tq1_0") == 0, "tq1_0");
    CHECK(imc_type_foreign_name(40) == NULL && imc_type_foreign_name(1000) == NULL, "no names");
    const uint32_t unknown[] = {4, 5, 9, 24, 31, 40, 255, 1u << 31};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        uint64_t bytes = 123;
        CHECK(imc_type_traits(unknown[i]) == NULL, "id %u", unknown[i]);
        CHECK(!imc_type_is_known(unknown[i]), "id %u", unknown[i]);
        CHECK(strcmp(imc_type_name(unknown[i]), "unknown") == 0, "id %u", unknown[i]);
        CHECK(!imc_type_row_bytes(unknown[i], 256, &bytes) && bytes == 123, "id %u", unknown[i]);
    }
    CHECK(imc_type_from_name("q9_z") == -1, "unknown name");
    CHECK(imc_type_from_name("") == -1, "empty name");
    CHECK(imc_type_from_name("q4_k_m") == -1, "file type name is not a tensor type");
    CHECK(imc_type_from_name("unknown") == -1, "the name of unknown ids");
}

// types/types.def's round-trip tolerances against the independent figures of ggml's reference
// quantizers (tests/data/reference/quant_rmse.tsv): ref <= tol <= 1.05 ref for every type the
// file names, and every quantized type of the table named there (f32 is exact: tol 0).
static void test_tol_vs_reference(void)
{
    const char *src = getenv("IMC_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/data/reference/quant_rmse.tsv", src ? src : ".");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s (set IMC_SOURCE_DIR)", path);
    if (!f) {
        return;
    }
    bool seen[64] = {false};
    char line[256], name[32];
    unsigned id;
    double ref;
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }
        CHECK(sscanf(line, "%31s %u %lf", name, &id, &ref) == 3, "%s: bad line '%s'", path, line);
        const struct imc_type_traits *t = imc_type_traits(id);
        CHECK(t != NULL && strcmp(t->name, name) == 0, "%s: id %u is not '%s' here", path, id,
              name);
        if (!t || id >= 64) {
            continue;
        }
        seen[id] = true;
        n++;
        CHECK(ref > 0 && t->tol_rmse >= ref && t->tol_rmse <= 1.05 * ref,
              "%s: tol_rmse %g outside [ref, 1.05 ref] of ggml's reference rmse/rms %g", name,
              t->tol_rmse, ref);
    }
    fclose(f);
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        const struct imc_type_traits *t = imc_type_traits(expected[i].id);
        if (expected[i].id == 0) {
            CHECK(t && t->tol_rmse == 0, "f32 round trip is exact: tol %g", t ? t->tol_rmse : -1);
        } else {
            CHECK(seen[expected[i].id], "%s has no reference rmse in %s", expected[i].name, path);
        }
    }
    CHECK(n >= 14, "%d reference figures in %s", n, path);
}

static void test_fp16_to_fp32(void)
{
    struct {
        uint16_t h;
        float f;
    } c[] = {
        {0x0000, 0.0f},           {0x3c00, 1.0f},
        {0xc000, -2.0f},          {0x3800, 0.5f},
        {0x3555, 0.333251953125f}, {0x7bff, 65504.0f},
        {0x0400, 0x1p-14f},       {0x0001, 0x1p-24f},          // smallest normal, subnormal
        {0x03ff, 1023 * 0x1p-24f}, {0x8001, -0x1p-24f},         // largest subnormal
        {0x0200, 0x1p-15f},       {0x7c00, INFINITY},
        {0xfc00, -INFINITY},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        float f = imc_fp16_to_fp32(c[i].h);
        CHECK(f2u(f) == f2u(c[i].f), "0x%04x -> %.9g, expected %.9g", c[i].h, f, c[i].f);
    }
    CHECK(signbit(imc_fp16_to_fp32(0x8000)) && imc_fp16_to_fp32(0x8000) == 0, "-0");
    CHECK(isnan(imc_fp16_to_fp32(0x7e00)) && isnan(imc_fp16_to_fp32(0xfc01)), "nan");
    CHECK(isnan(imc_fp16_to_fp32(0x7c01)), "signalling nan stays nan");
}

static void test_fp32_to_fp16(void)
{
    struct {
        float f;
        uint16_t h;
    } c[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {65504.0f, 0x7bff},
        {65519.0f, 0x7bff},             // below the midpoint to 65536: stays finite
        {65520.0f, 0x7c00},             // the midpoint rounds (to even) to inf
        {1e10f, 0x7c00},
        {-1e10f, 0xfc00},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
        {0x1p-24f, 0x0001},             // smallest subnormal
        {0x1p-25f, 0x0000},             // half of it: tie to even (0)
        {0x1.8p-24f, 0x0002},           // 1.5 ulp: tie to even (2)
        {0x1.000002p-25f, 0x0001},      // just above the tie
        {0x1p-26f, 0x0000},
        {1023 * 0x1p-24f, 0x03ff},      // largest subnormal
        {1023.5f * 0x1p-24f, 0x0400},   // tie between it and the smallest normal: even
        {0x1p-14f, 0x0400},
        {1.0f + 0x1p-11f, 0x3c00},      // tie: to even mantissa 0
        {1.0f + 3 * 0x1p-11f, 0x3c02},  // tie: to even mantissa 2
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},
        {0.1f, 0x2e66},
        {-0.0f, 0x8000},
        {1e-30f, 0x0000},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        uint16_t h = imc_fp32_to_fp16(c[i].f);
        CHECK(h == c[i].h, "%.9g -> 0x%04x, expected 0x%04x", c[i].f, h, c[i].h);
    }
    uint16_t hn = imc_fp32_to_fp16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "nan -> 0x%04x", hn);
    hn = imc_fp32_to_fp16(u2f(0x7f800001u)); // nan whose payload lies below the fp16 mantissa
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "small-payload nan -> 0x%04x", hn);
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) { // every non-nan half survives fp32 and back
        float f = imc_fp16_to_fp32((uint16_t)h);
        if (!isnan(f) && imc_fp32_to_fp16(f) != h) {
            bad++;
        }
    }
    CHECK(bad == 0, "%d halves do not round trip", bad);
    // Every float between two neighbouring halves goes to the nearer one (sampled midpoints).
    bad = 0;
    for (uint32_t h = 0x0001; h < 0x7bff; h += 37) {
        float a = imc_fp16_to_fp32((uint16_t)h), b = imc_fp16_to_fp32((uint16_t)(h + 1));
        float mid = a + (b - a) / 2, lo = nextafterf(mid, 0), hi = nextafterf(mid, INFINITY);
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        bad += imc_fp32_to_fp16(lo) != h || imc_fp32_to_fp16(hi) != h + 1 ||
               imc_fp32_to_fp16(mid) != even;
    }
    CHECK(bad == 0, "%d midpoints misrounded", bad);
}

static void test_bf16(void)
{
    CHECK(imc_fp32_to_bf16(1.0f) == 0x3f80, "1");
    CHECK(imc_fp32_to_bf16(-2.0f) == 0xc000, "-2");
    CHECK(imc_fp32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "tie to even 0");
    CHECK(imc_fp32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82, "tie to even 2");
    CHECK(imc_fp32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81, "above tie");
    CHECK(imc_fp32_to_bf16(INFINITY) == 0x7f80 && imc_fp32_to_bf16(-INFINITY) == 0xff80, "inf");
    CHECK(imc_fp32_to_bf16(u2f(0x7f7fffffu)) == 0x7f80, "FLT_MAX rounds to inf");
    CHECK(imc_fp32_to_bf16(u2f(0x00010000u)) == 0x0001, "subnormal");
    CHECK(imc_fp32_to_bf16(u2f(0x00008000u)) == 0x0000, "subnormal tie to even");
    CHECK(imc_fp32_to_bf16(u2f(0x00018000u)) == 0x0002, "subnormal tie to even 2");
    CHECK(imc_fp32_to_bf16(-0.0f) == 0x8000, "-0");
    uint16_t hn = imc_fp32_to_bf16(u2f(0x7f800001u));
    CHECK((hn & 0x7f80) == 0x7f80 && (hn & 0x7f) != 0, "nan with low payload -> 0x%04x", hn);
    CHECK(isnan(imc_bf16_to_fp32(imc_fp32_to_bf16(NAN))), "nan");
    CHECK(imc_bf16_to_fp32(0x3f80) == 1.0f && imc_bf16_to_fp32(0xc0a0) == -5.0f, "to fp32");
    CHECK(imc_bf16_to_fp32(0x0001) == 0x1p-133f, "subnormal to fp32");
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = imc_bf16_to_fp32((uint16_t)h);
        if (!isnan(f) && (imc_fp32_to_bf16(f) != h || f2u(f) != h << 16)) {
            bad++;
        }
    }
    CHECK(bad == 0, "%d bf16 values do not round trip", bad);
}

// The non-linear grids (types/nl_tables.c): each second half is the first shifted by the
// constant of its type; the first half of iq4k is iq4_nl's grid; each half rises; mxfp4's
// negative half mirrors the positive one.
static void test_nl_tables(void)
{
    struct {
        const int8_t *v;
        int half, shift;
        const char *name;
    } g[] = {{imc_iq2nl_values, 4, 5, "iq2nl"},
             {imc_iq3nl_values, 8, 4, "iq3nl"},
             {imc_iq4k_values, 16, 4, "iq4k"},
             {imc_iq5nl_values, 32, 2, "iq5nl"},
             {imc_iq6nl_values, 64, 1, "iq6nl"}};
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        int bad = 0;
        for (int k = 0; k < g[i].half; k++) {
            bad += g[i].v[g[i].half + k] != g[i].v[k] + g[i].shift;
            bad += k > 0 && g[i].v[k] <= g[i].v[k - 1];
        }
        CHECK(bad == 0, "%s: %d entries break the pattern", g[i].name, bad);
    }
    const int8_t nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                           1,    13,   25,  38,  53,  69,  89,  113};
    CHECK(memcmp(imc_iq4k_values, nl, 16) == 0, "iq4k starts with iq4_nl's grid");
    int bad = 0;
    for (int k = 0; k < 8; k++) {
        bad += imc_mxfp4_values[8 + k] != -imc_mxfp4_values[k];
    }
    CHECK(bad == 0, "mxfp4 values mirror");
}

int main(void)
{
    test_nl_tables();
    test_table();
    test_tol_vs_reference();
    test_fp16_to_fp32();
    test_fp32_to_fp16();
    test_bf16();
    return check_summary();
}
