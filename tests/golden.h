/*
 * tests/golden.h: the reader of the golden-block files of tests/data/types (format:
 * tests/data/types/README.md) and the tiling of their rows into larger matrices, shared by
 * kernels.types_golden, the stand-in quantizer tests/e2e/tool_golden_quantize.c and
 * bench/bench_types.c. Header-only.
 */
#ifndef IMC_TESTS_GOLDEN_H
#define IMC_TESTS_GOLDEN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct golden {
    char name[32];
    uint32_t id;
    int64_t block, size, meta, rows, n_per_row, n_rows;
    uint8_t *bytes;
    size_t n_bytes;
    float *values;
    size_t n_values;
    long long rnd_per_row, rnd_rows; // the random-bytes check (0: none)
    unsigned long long rnd_hash;
};

static inline int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// Appends the hex digits of s to *buf (grown as needed); false on a bad digit.
static inline bool append_hex(const char *s, uint8_t **buf, size_t *n, size_t *cap)
{
    for (; s[0] && s[0] != '\n'; s += 2) {
        int hi = hexval(s[0]), lo = s[1] ? hexval(s[1]) : -1;
        if (hi < 0 || lo < 0) {
            return false;
        }
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 4096;
            *buf = realloc(*buf, *cap);
        }
        (*buf)[(*n)++] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

// Reads path into *g (owning bytes and values: free both); false when unreadable or malformed.
static inline bool read_golden(const char *path, struct golden *g)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    memset(g, 0, sizeof(*g));
    uint8_t *vals = NULL;
    size_t n_vals = 0, cap_b = 0, cap_v = 0;
    char line[512];
    bool ok = true;
    int have = 0;
    while (ok && fgets(line, sizeof(line), f)) {
        long long a, b, c, d;
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        } else if (sscanf(line, "type %u %31s", &g->id, g->name) == 2) {
            have |= 1;
        } else if (sscanf(line, "block %lld size %lld meta %lld rows %lld", &a, &b, &c, &d) ==
                   4) {
            g->block = a, g->size = b, g->meta = c, g->rows = d;
            have |= 2;
        } else if (sscanf(line, "shape %lld %lld", &a, &b) == 2) {
            g->n_per_row = a, g->n_rows = b;
            have |= 4;
        } else if (sscanf(line, "random %lld %lld %llx", &g->rnd_per_row, &g->rnd_rows,
                          &g->rnd_hash) == 3) {
            continue;
        } else if (strncmp(line, "bytes ", 6) == 0) {
            ok = append_hex(line + 6, &g->bytes, &g->n_bytes, &cap_b);
        } else if (strncmp(line, "values ", 7) == 0) {
            ok = append_hex(line + 7, &vals, &n_vals, &cap_v);
        } else {
            ok = false;
        }
    }
    fclose(f);
    g->values = (float *)(void *)vals; // realloc'd: aligned for float
    g->n_values = n_vals / 4;
    return ok && have == 7 && n_vals % 4 == 0 && g->n_per_row > 0 && g->n_rows > 0;
}

// The bytes of a matrix of n_rows rows of n_per_row elements (n_per_row a multiple of the golden
// row length, n_rows of the type's interleaved rows) tiled from g: group k of the matrix's
// interleaved rows (a row, for plain types) takes the per-row meta of golden group k and, for its
// c-th stretch of golden row length, the blocks of golden group k + c (modulo the golden
// groups). A new buffer (free()); *size gets its length. NULL when the shape does not fit or
// memory runs out.
static inline uint8_t *golden_tile(const struct golden *g, int64_t n_per_row, int64_t n_rows,
                                   uint64_t *size)
{
    const uint64_t r = (uint64_t)g->rows, meta = r * (uint64_t)g->meta;
    const uint64_t grow = (uint64_t)(g->n_per_row / g->block * g->size + g->meta);
    const uint64_t trow = (uint64_t)(n_per_row / g->block * g->size + g->meta);
    if (n_per_row % g->n_per_row != 0 || n_rows % g->rows != 0) {
        return NULL;
    }
    const uint64_t blocks = r * grow - meta; // the blocks of one golden group
    const int64_t n_groups = g->n_rows / g->rows, k = n_per_row / g->n_per_row;
    *size = trow * (uint64_t)n_rows;
    uint8_t *out = malloc(*size);
    for (int64_t grp = 0; out && grp < n_rows / g->rows; grp++) {
        uint8_t *dst = out + (uint64_t)grp * r * trow;
        memcpy(dst, g->bytes + (uint64_t)(grp % n_groups) * r * grow, meta);
        for (int64_t c = 0; c < k; c++) {
            const uint64_t src = (uint64_t)((grp + c) % n_groups) * r * grow + meta;
            memcpy(dst + meta + (uint64_t)c * blocks, g->bytes + src, blocks);
        }
    }
    return out;
}

#endif // IMC_TESTS_GOLDEN_H
