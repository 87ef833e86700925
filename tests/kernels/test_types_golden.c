/*
 * tests/kernels/test_types_golden: imc decodes the reference's own bytes to the reference's own
 * values, for every type of the table (tests/data/types/<name>.golden: rows quantized by
 * ik_llama.cpp's or llama.cpp's libggml, and what its to_float made of them; how they were
 * recorded: tests/data/types/README.md).
 *
 * For each file: the geometry (block, bytes per block, per-row meta, interleaved rows) equals the
 * reference's; the row size times the rows equals the bytes; every row decodes bit for bit to
 * the reference's values, whole, block by block and in a segment of two blocks from the second
 * (the matmul's column segments); imc_cpu_get_rows gives the same rows in reverse order; and
 * imc_cpu_matmul of the bytes with 3 tokens agrees with a double-precision product of the
 * reference's values within the matmul bound of test_matmul.c (8·2^-24·sqrt(n)·Σ|w·x|); and
 * 1024 rows of random bytes decode to the values the reference decodes them to (by hash).
 * Every type of the table but f32 must have a file: a type cannot be added without them.
 *
 * Tolerance of the decode: none (bitwise) for every type; the reference's dequantizers are
 * float products of the same stored scales and values, which imc computes in the same order.
 */
#include <dirent.h>
#include <math.h>

#include "kcheck.h"
#include "../golden.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

// Rows of y that differ from the reference's values in any bit; reports the first.
static int bad_rows(const struct golden *g, const float *y, const char *how)
{
    int bad = 0;
    for (int64_t r = 0; r < g->n_rows; r++) {
        for (int64_t i = 0; i < g->n_per_row; i++) {
            const int64_t k = r * g->n_per_row + i;
            if (bits(y[k]) != bits(g->values[k])) {
                if (!bad) {
                    printf("# %s %s: row %lld col %lld: %.9g, reference %.9g\n", g->name, how,
                           (long long)r, (long long)i, y[k], g->values[k]);
                }
                bad++;
                break;
            }
        }
    }
    return bad;
}

static void check_decode(const struct golden *g, const struct imc_type_traits *tr, float *y)
{
    const int64_t n = g->n_per_row, nb = n / g->block;
    imc_type_decode_rows(tr, g->bytes, 0, g->n_rows, n, y);
    CHECK(bad_rows(g, y, "whole rows") == 0, "%s: rows decode to the reference's values", g->name);
    memset(y, 0xff, (size_t)(g->n_rows * n) * 4);
    for (int64_t r = 0; r < g->n_rows; r++) {
        for (int64_t b = 0; b < nb; b++) {
            imc_type_decode(tr, g->bytes, r, n, b * g->block, g->block, y + r * n + b * g->block);
        }
    }
    CHECK(bad_rows(g, y, "block by block") == 0, "%s: block by block", g->name);
    if (nb >= 3) {
        const int64_t k0 = g->block, kn = 2 * g->block;
        int bad = 0;
        for (int64_t r = 0; r < g->n_rows; r++) {
            imc_type_decode(tr, g->bytes, r, n, k0, kn, y);
            bad += memcmp(y, g->values + r * n + k0, (size_t)kn * 4) != 0;
        }
        CHECK(bad == 0, "%s: a segment of two blocks from the second: %d rows differ", g->name,
              bad);
    }
}

// Random bytes (every bit pattern of scales, signs and grid indices; 1024 rows cover every entry
// of the largest grid many times over) decode to values whose FNV-1a 64 hash, NaNs made one
// quiet NaN, is the reference's. The bytes: xorshift64 from 0x9E3779B97F4A7C15, the top byte of
// each state.
static void check_random(const struct golden *g, const struct imc_type_traits *tr)
{
    const int64_t n = g->rnd_per_row, rows = g->rnd_rows;
    uint64_t rb = 0;
    if (!imc_type_row_bytes(g->id, n, &rb) || rows % tr->rows != 0) {
        CHECK(false, "%s: random rows of %lld", g->name, (long long)n);
        return;
    }
    uint8_t *b = malloc((size_t)(rb * (uint64_t)rows));
    float *y = malloc((size_t)(n * rows) * 4);
    uint64_t s = 0x9E3779B97F4A7C15ull, h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < rb * (uint64_t)rows; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        b[i] = (uint8_t)(s >> 56);
    }
    imc_type_decode_rows(tr, b, 0, rows, n, y);
    for (int64_t i = 0; i < n * rows; i++) {
        uint32_t u = bits(y[i]);
        u = (u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu) ? 0x7fc00000u : u;
        for (int k = 0; k < 4; k++) {
            h = (h ^ ((u >> (8 * k)) & 0xff)) * 0x100000001b3ull;
        }
    }
    CHECK(h == g->rnd_hash, "%s: %lld rows of random bytes: hash %016llx, reference %016llx",
          g->name, (long long)rows, (unsigned long long)h, g->rnd_hash);
    free(b);
    free(y);
}

static void check_kernels(const struct golden *g, struct imc_exec *ex, float *y)
{
    const int64_t n = g->n_per_row, rows = g->n_rows, n_tok = 3;
    int32_t ids[64];
    for (int64_t r = 0; r < rows && r < 64; r++) {
        ids[r] = (int32_t)(rows - 1 - r);
    }
    CHECK(imc_cpu_get_rows(ex, y, g->bytes, (enum imc_type)g->id, n, ids, rows) == IMC_OK,
          "%s: get_rows", g->name);
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        bad += memcmp(y + r * n, g->values + (rows - 1 - r) * n, (size_t)n * 4) != 0;
    }
    CHECK(bad == 0, "%s: get_rows: %d rows differ", g->name, bad);
    struct krng rng = {0x9e3779b97f4a7c15ull ^ g->id};
    float *x = kalloc_rand(&rng, n_tok * n, 1.0f);
    float *out = malloc((size_t)(n_tok * rows) * 4);
    CHECK(imc_cpu_matmul(ex, out, rows, g->bytes, (enum imc_type)g->id, rows, n, x, n, n_tok) ==
              IMC_OK,
          "%s: matmul", g->name);
    bad = 0;
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t o = 0; o < rows; o++) {
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < n; i++) {
                ref += (double)g->values[o * n + i] * x[t * n + i];
                mag += fabs((double)g->values[o * n + i] * x[t * n + i]);
            }
            bad += !(fabs(out[t * rows + o] - ref) <= 8.0 * 0x1p-24 * sqrt((double)n) * mag);
        }
    }
    CHECK(bad == 0, "%s: matmul: %d of %lld outputs outside the bound", g->name, bad,
          (long long)(n_tok * rows));
    free(x);
    free(out);
}

static void check_file(const char *path, struct imc_exec *ex, bool *seen)
{
    struct golden g;
    bool ok = read_golden(path, &g);
    CHECK(ok, "%s: readable golden file", path);
    const struct imc_type_traits *tr = ok ? imc_type_traits(g.id) : NULL;
    CHECK(!ok || tr, "%s: type %u (%s) is not in the type table", path, g.id, g.name);
    if (!tr) {
        goto out;
    }
    seen[g.id] = true;
    CHECK(strcmp(tr->name, g.name) == 0, "id %u: '%s' here, '%s' in the reference", g.id,
          tr->name, g.name);
    CHECK(tr->block_size == g.block && (int64_t)tr->type_size == g.size &&
              (int64_t)tr->row_meta == g.meta && tr->rows == g.rows,
          "%s: geometry %lld/%zu/%zu/%d here, %lld/%lld/%lld/%lld in the reference", g.name,
          (long long)tr->block_size, tr->type_size, tr->row_meta, tr->rows, (long long)g.block,
          (long long)g.size, (long long)g.meta, (long long)g.rows);
    uint64_t rb = 0;
    const bool sized = imc_type_row_bytes(g.id, g.n_per_row, &rb) &&
                       rb * (uint64_t)g.n_rows == g.n_bytes &&
                       g.n_values == (size_t)(g.n_per_row * g.n_rows) && g.n_rows % g.rows == 0;
    CHECK(sized, "%s: %zu bytes and %zu values for %lld rows of %lld (row %llu bytes)", g.name,
          g.n_bytes, g.n_values, (long long)g.n_rows, (long long)g.n_per_row,
          (unsigned long long)rb);
    if (sized && tr->block_size == g.block && tr->rows == g.rows) {
        float *y = malloc(g.n_values * 4);
        check_decode(&g, tr, y);
        check_kernels(&g, ex, y);
        free(y);
    }
    CHECK(g.rnd_rows > 0, "%s: no random-bytes hash", g.name);
    if (g.rnd_rows > 0) {
        check_random(&g, tr);
    }
out:
    free(g.bytes);
    free(g.values);
}

int main(void)
{
    const char *src = getenv("IMC_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/data/types", src ? src : ".");
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s (set IMC_SOURCE_DIR)", dir);
    if (!d) {
        return check_summary();
    }
    struct imc_exec *ex = NULL;
    CHECK(imc_exec_init(&ex, 3) == IMC_OK, "a pool of 3 threads");
    static bool seen[IMC_TYPE_MAX_ID];
    int n_files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const size_t k = strlen(e->d_name);
        if (k > 7 && strcmp(e->d_name + k - 7, ".golden") == 0) {
            char path[2048];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            check_file(path, ex, seen);
            n_files++;
        }
    }
    closedir(d);
    for (uint32_t t = 1; t < IMC_TYPE_MAX_ID; t++) {
        CHECK(!imc_type_is_known(t) || seen[t], "%s (%u) has no golden file in %s",
              imc_type_name(t), t, dir);
    }
    printf("# %d golden files\n", n_files);
    imc_exec_free(ex);
    return check_summary();
}
