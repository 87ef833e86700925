/*
 * model/gguf_split.c: opening GGUF files from disk, including split sets
 * "<base>-0000K-of-0000N.gguf" (DESIGN.md §4 "GGUF"). Opening any part maps all N parts from
 * the same directory and checks that each carries split.no = K-1 and split.count = N, and that
 * split.tensors.count in the first part equals the number of tensors over all parts.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "model/gguf_priv.h"

#define SPLIT_SUFFIX_LEN 20 // strlen("-00001-of-00003.gguf")

static bool parse_digits5(const char *s, int *out)
{
    int v = 0;
    for (int i = 0; i < 5; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

// Split names: returns N (>= 1) and the length of "<base>" when path ends in
// "-KKKKK-of-NNNNN.gguf" with 1 <= K <= N; 0 otherwise.
static int split_parse_name(const char *path, size_t *base_len)
{
    size_t n = strlen(path);
    if (n < SPLIT_SUFFIX_LEN) {
        return 0;
    }
    const char *s = path + n - SPLIT_SUFFIX_LEN;
    int no, count;
    if (s[0] != '-' || !parse_digits5(s + 1, &no) || memcmp(s + 6, "-of-", 4) != 0 ||
        !parse_digits5(s + 10, &count) || strcmp(s + 15, ".gguf") != 0 || no < 1 ||
        count < 1 || no > count) {
        return 0;
    }
    *base_len = n - SPLIT_SUFFIX_LEN;
    return count;
}

// Integer value of key in part pt: 1 found, 0 absent, -1 present but not an integer (logged).
static int part_int(const struct imc_gguf_part *pt, const char *name, const char *key,
                    int64_t *out)
{
    int64_t i = imc_gguf_part_find_key(pt, key);
    if (i < 0) {
        return 0;
    }
    if (!imc_gguf_kv_int(&pt->kv[i], out)) {
        IMC_LOG_ERR("%s: %s has value type %d, expected an integer", name, key,
                    (int)pt->kv[i].type);
        return -1;
    }
    return 1;
}

// Checks split.no / split.count of part p (0-based) of count parts (0: not a split name).
static enum imc_status check_part_keys(const struct imc_gguf_part *pt, const char *name, int p,
                                       int count)
{
    int64_t no = 0, cnt = 0;
    int has_no = part_int(pt, name, "split.no", &no);
    int has_cnt = part_int(pt, name, "split.count", &cnt);
    if (has_no < 0 || has_cnt < 0) {
        return IMC_ERR_FORMAT;
    }
    if (count == 0) {
        if (has_cnt && cnt > 1) {
            IMC_LOG_ERR("%s: file is part %" PRId64 " of a %" PRId64 "-file split, but its name "
                        "does not end in -%05" PRId64 "-of-%05" PRId64 ".gguf; open it by its "
                        "split name", name, no + 1, cnt, no + 1, cnt);
            return IMC_ERR_FORMAT;
        }
        return IMC_OK;
    }
    if (count == 1 && !has_no && !has_cnt) {
        return IMC_OK; // a lone file that happens to carry a split-style name
    }
    if (!has_no || !has_cnt) {
        IMC_LOG_ERR("%s: split part %d of %d lacks the key %s", name, p + 1, count,
                    has_no ? "split.count" : "split.no");
        return IMC_ERR_FORMAT;
    }
    if (no != p || cnt != count) {
        IMC_LOG_ERR("%s: split.no %" PRId64 " / split.count %" PRId64 ", expected %d / %d (part "
                    "%d of %d by its name)", name, no, cnt, p, count, p + 1, count);
        return IMC_ERR_FORMAT;
    }
    return IMC_OK;
}

// split.tensors.count in every part that carries it (required in the first of several) must
// equal the number of tensors over all parts.
static enum imc_status check_total(const struct imc_gguf *g, char *const *names)
{
    for (int p = 0; p < g->n_parts; p++) {
        int64_t want = 0;
        int has = part_int(&g->parts[p], names[p], "split.tensors.count", &want);
        if (has < 0) {
            return IMC_ERR_FORMAT;
        }
        if (!has && p == 0 && g->n_parts > 1) {
            IMC_LOG_ERR("%s: first split part lacks the key split.tensors.count", names[p]);
            return IMC_ERR_FORMAT;
        }
        if (has && want != g->n_tensors) {
            IMC_LOG_ERR("%s: split.tensors.count is %" PRId64 ", but the %d part(s) hold %" PRId64
                        " tensors", names[p], want, g->n_parts, g->n_tensors);
            return IMC_ERR_FORMAT;
        }
    }
    return IMC_OK;
}

static enum imc_status open_part(struct imc_gguf *g, int p, const char *name, int count)
{
    struct imc_gguf_part *pt = &g->parts[p];
    if (count > 1 && access(name, F_OK) != 0 && errno == ENOENT) {
        IMC_LOG_ERR("%s: split part %d of %d is missing: %s", g->path, p + 1, count, name);
        return IMC_ERR_IO;
    }
    IMC_TRY(imc_map_open(&pt->map, name));
    pt->base = pt->map.data;
    pt->size = pt->map.size;
    IMC_TRY(imc_gguf_parse_part(pt, name, p));
    return check_part_keys(pt, name, p, count);
}

// Builds the n part names (all equal to path when count is 0).
static char **part_names(const char *path, int count, size_t base_len)
{
    int n = count > 0 ? count : 1;
    char **names = calloc((size_t)n, sizeof(*names));
    for (int p = 0; names && p < n; p++) {
        size_t cap = base_len + SPLIT_SUFFIX_LEN + 1;
        names[p] = malloc(count > 0 ? cap : strlen(path) + 1);
        if (!names[p]) {
            for (int q = 0; q < p; q++) {
                free(names[q]);
            }
            free(names);
            return NULL;
        }
        if (count > 0) {
            snprintf(names[p], cap, "%.*s-%05d-of-%05d.gguf", (int)base_len, path, p + 1, count);
        } else {
            strcpy(names[p], path);
        }
    }
    return names;
}

enum imc_status imc_gguf_open(struct imc_gguf **out, const char *path)
{
    *out = NULL;
    size_t base_len = 0;
    int count = split_parse_name(path, &base_len);
    int n = count > 0 ? count : 1;
    struct imc_gguf *g = imc_gguf_alloc(path, n);
    char **names = g ? part_names(path, count, base_len) : NULL;
    if (!names) {
        IMC_LOG_ERR("%s: out of memory", path);
        imc_gguf_free(g);
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = IMC_OK;
    for (int p = 0; p < n && st == IMC_OK; p++) {
        st = open_part(g, p, names[p], count);
    }
    if (st == IMC_OK) {
        st = imc_gguf_index_tensors(g);
    }
    if (st == IMC_OK && count > 0) {
        st = check_total(g, names);
    }
    for (int p = 0; p < n; p++) {
        free(names[p]);
    }
    free(names);
    if (st != IMC_OK) {
        imc_gguf_free(g);
        return st;
    }
    *out = g;
    return IMC_OK;
}
