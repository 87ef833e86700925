/*
 * tests/gguf/test_corpus: every file of the fuzz corpus ($IMC_SOURCE_DIR/tests/fuzz/corpus/gguf)
 * through imc_gguf_open_memory in the normal build, as the fuzzer does (tests/fuzz/fuzz_gguf.c):
 * no crash; files named valid_* open and can be walked; files named bad_* are refused with
 * IMC_ERR_FORMAT and a NULL reader; any other file (inputs found by fuzzing) gives OK or
 * IMC_ERR_FORMAT.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file.h"
#include "core/log.h"
#include "model/gguf.h"
#include "tests/check.h"

static void drop_log(enum imc_log_level level, const char *line, void *user)
{
    (void)level, (void)line;
    ++*(int *)user;
}

// Touches every key and tensor byte; returns false if lookups disagree with the entries.
static bool walk(const struct imc_gguf *g)
{
    uint64_t sum = 0;
    for (int64_t i = 0; i < imc_gguf_n_kv(g); i++) {
        const char *key = imc_gguf_key(g, i);
        if (imc_gguf_find_key(g, key) != i) {
            return false;
        }
        if (imc_gguf_kv_type(g, i) == IMC_GGUF_ARRAY &&
            imc_gguf_arr_type(g, i) == IMC_GGUF_STRING) {
            for (uint64_t j = 0; j < imc_gguf_arr_n(g, i); j++) {
                uint64_t len;
                const char *s = imc_gguf_arr_str(g, i, j, &len);
                sum += (uint8_t)s[len] + len;
            }
        }
    }
    for (int64_t i = 0; i < imc_gguf_n_tensors(g); i++) {
        const struct imc_tensor_info *t = imc_gguf_tensor(g, i);
        const uint8_t *d = t->data;
        for (uint64_t k = 0; k < t->nbytes; k++) {
            sum += d[k];
        }
        if (imc_gguf_find_tensor(g, t->name) != t) {
            return false;
        }
    }
    return sum != UINT64_MAX;
}

static void check_one(const char *dir, const char *name, int *n_valid, int *n_bad)
{
    char path[1300];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *buf = NULL;
    size_t n = 0;
    CHECK(imc_file_read_all(path, &buf, &n) == IMC_OK, "read %s", path);
    if (!buf) {
        return;
    }
    uint8_t *exact = malloc(n ? n : 1); // exactly n bytes, so ASan sees any over-read
    memcpy(exact, buf, n);
    free(buf);
    int n_err = 0;
    imc_log_set_sink(drop_log, &n_err);
    struct imc_gguf *g = NULL;
    enum imc_status st = imc_gguf_open_memory(&g, exact, n, name);
    imc_log_set_sink(NULL, NULL);
    if (strncmp(name, "valid_", 6) == 0) {
        CHECK(st == IMC_OK && g && walk(g) && n_err == 0, "%s: %s", name, imc_status_str(st));
        ++*n_valid;
    } else if (strncmp(name, "bad_", 4) == 0) {
        CHECK(st == IMC_ERR_FORMAT && !g && n_err == 1, "%s: %s, %d messages", name,
              imc_status_str(st), n_err);
        ++*n_bad;
    } else {
        CHECK((st == IMC_OK && g && walk(g)) || (st == IMC_ERR_FORMAT && !g && n_err == 1),
              "%s: %s", name, imc_status_str(st));
    }
    imc_gguf_free(g);
    free(exact);
}

int main(void)
{
    const char *src = getenv("IMC_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/gguf", src ? src : "");
    DIR *d = src ? opendir(dir) : NULL;
    if (!d) { // part of the source tree: its absence is a failure, not a skip
        printf("FAIL: no corpus at %s (set IMC_SOURCE_DIR)\n", dir);
        return 1;
    }
    int n_files = 0, n_valid = 0, n_bad = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] != '.') {
            check_one(dir, e->d_name, &n_valid, &n_bad);
            n_files++;
        }
    }
    closedir(d);
    printf("%d corpus files: %d valid_*, %d bad_*\n", n_files, n_valid, n_bad);
    CHECK(n_valid >= 3 && n_bad >= 20, "corpus too small");
    return check_summary();
}
