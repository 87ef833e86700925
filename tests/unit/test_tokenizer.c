/*
 * tests/unit/test_tokenizer: llama.cpp's tokenizer test vectors (DESIGN.md §4 "Tokenizer").
 * For every <vocab>.gguf.inp / .gguf.out pair in $IMC_SHARED_DIR/data/tokenizer: the .inp file
 * holds the strings, separated by "\n__ggml_vocab_test__\n" (as llama.cpp's
 * tests/test-tokenizer-0.cpp splits it), the .out file one line of ids per string. Each string
 * is tokenized as test-tokenizer-0 does (no BOS, parse_special false) and must give exactly the
 * ids of its line. Absent directory: a failure under CI, a skip elsewhere (check_shared_dir).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "model/vocab.h"
#include "tests/check.h"

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *b = realloc(buf, 2 * cap + 1);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

// Parses one .out line ("id id ...", surrounding blanks ignored) into ids; returns the count.
static size_t parse_ids(const char *line, size_t len, int32_t *ids, size_t cap)
{
    size_t n = 0, i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\r' || line[i] == '\t')) {
            i++;
        }
        if (i >= len) {
            break;
        }
        long v = strtol(line + i, NULL, 10);
        if (n < cap) {
            ids[n] = (int32_t)v;
        }
        n++;
        while (i < len && line[i] != ' ') {
            i++;
        }
    }
    return n;
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    printf("    %s:", what);
    for (size_t i = 0; i < n; i++) {
        printf(" %d", ids[i]);
    }
    printf("\n");
}

// Checks one vector; returns 1 when the ids match.
static int check_vector(const struct imc_vocab *v, const char *s, size_t sl, const char *line,
                        size_t ll)
{
    static int32_t want[1 << 14];
    size_t n_want = parse_ids(line, ll, want, sizeof(want) / sizeof(want[0]));
    int32_t *got = NULL;
    size_t n_got = 0;
    enum imc_status st = imc_vocab_tokenize(v, s, sl, false, false, &got, &n_got);
    int ok = st == IMC_OK && n_got == n_want &&
             (n_got == 0 || memcmp(got, want, n_got * sizeof(*got)) == 0);
    if (!ok) {
        printf("  mismatch for '%.*s' (status %d)\n", (int)sl, s, (int)st);
        print_ids("expected", want, n_want);
        print_ids("got     ", got, n_got);
    }
    free(got);
    return ok;
}

static void run_file(const char *dir, const char *inp_name)
{
    int base = (int)strlen(inp_name) - 4; // strip ".inp"
    char *gguf = NULL, *inp = NULL, *out = NULL;
    if (asprintf(&gguf, "%s/%.*s", dir, base, inp_name) < 0 ||
        asprintf(&inp, "%s/%s", dir, inp_name) < 0 ||
        asprintf(&out, "%s/%.*s.out", dir, base, inp_name) < 0) {
        CHECK(0, "out of memory");
        return;
    }
    size_t il = 0, ol = 0;
    char *is = read_all(inp, &il), *os = read_all(out, &ol);
    struct imc_gguf *g = NULL;
    struct imc_vocab *v = NULL;
    CHECK(is && os, "read %s and .out", inp);
    CHECK(imc_gguf_open(&g, gguf) == IMC_OK, "open %s", gguf);
    CHECK(g && imc_vocab_load(&v, g) == IMC_OK, "load vocab of %s", gguf);
    if (!is || !os || !v) {
        goto out;
    }
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t pos = 0, opos = 0, n = 0, n_ok = 0, n_lines_missing = 0;
    while (pos < il) {
        const char *next = strstr(is + pos, sep);
        size_t sl = next ? (size_t)(next - (is + pos)) : il - pos;
        const char *nl = memchr(os + opos, '\n', ol - opos);
        size_t ll = nl ? (size_t)(nl - (os + opos)) : ol - opos;
        if (opos >= ol) {
            n_lines_missing++;
        } else {
            n_ok += (size_t)check_vector(v, is + pos, sl, os + opos, ll);
        }
        n++;
        opos = nl ? (size_t)(nl - os) + 1 : ol;
        pos = next ? (size_t)(next - is) + strlen(sep) : il;
    }
    printf("%s: %zu/%zu vectors match (%s, %lld tokens)\n", inp_name, n_ok, n,
           imc_vocab_pre(v)[0] ? imc_vocab_pre(v) : "spm", (long long)imc_vocab_n_tokens(v));
    CHECK(n > 0 && n_lines_missing == 0 && opos >= ol, "%s: %zu strings, .out lines differ",
          inp_name, n);
    CHECK(n_ok == n, "%s: %zu of %zu vectors differ", inp_name, n - n_ok, n);
out:
    free(gguf);
    free(inp);
    free(out);
    imc_vocab_free(v);
    imc_gguf_free(g);
    free(is);
    free(os);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    char dir[1024];
    int rc = check_shared_dir("data/tokenizer", dir, sizeof(dir));
    if (rc != 0) {
        return rc;
    }
    DIR *d = opendir(dir);
    if (!d) {
        printf("FAIL: cannot open %s\n", dir);
        return 1;
    }
    char *names[256];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < 256;) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".inp") == 0) {
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);
    CHECK(n >= 4, "%zu vector files in %s", n, dir);
    for (size_t i = 0; i < n; i++) {
        run_file(dir, names[i]);
        free(names[i]);
    }
    return check_summary();
}
