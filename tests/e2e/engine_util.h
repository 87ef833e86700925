/*
 * tests/e2e/engine_util.h: shared pieces of the engine tests — a synthetic model written to a
 * temp dir (model/synth.h) and loaded, random token sequences, logits comparison.
 */
#ifndef IMC_TESTS_ENGINE_UTIL_H
#define IMC_TESTS_ENGINE_UTIL_H

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "model/arch.h"
#include "model/gguf.h"
#include "model/imatrix_file.h"
#include "model/synth.h"
#include "worker/engine.h"

struct tmodel {
    char path[512];
    struct imc_gguf *g;
    struct imc_model *m;
};

// Writes preset into dir and loads it. Returns 0 on success (failure logged by the modules).
static inline int tmodel_open(struct tmodel *t, const char *dir, const char *preset)
{
    memset(t, 0, sizeof(*t));
    struct imc_synth_cfg cfg;
    snprintf(t->path, sizeof(t->path), "%s/%s.gguf", dir, preset);
    if (imc_synth_preset(&cfg, preset) != IMC_OK || imc_synth_write(&cfg, t->path) != IMC_OK ||
        imc_gguf_open(&t->g, t->path) != IMC_OK || imc_model_load(&t->m, t->g) != IMC_OK) {
        printf("cannot create or load preset %s\n", preset);
        return 1;
    }
    return 0;
}

// Writes a NaN over element elem of f32 tensor `name` of the GGUF at path. 0 on success.
static inline int tpoison(const char *path, const char *name, int64_t elem)
{
    struct imc_gguf *g = NULL;
    if (imc_gguf_open(&g, path) != IMC_OK) {
        return 1;
    }
    const struct imc_tensor_info *t = imc_gguf_find_tensor(g, name);
    const uint64_t off = t && t->type == IMC_TYPE_F32 ? t->offset + (uint64_t)elem * 4 : 0;
    imc_gguf_free(g);
    const uint32_t nan_bits = 0x7fc00000u;
    int fd = open(path, O_WRONLY);
    int bad = !off || fd < 0 || pwrite(fd, &nan_bits, 4, (off_t)off) != 4;
    if (fd >= 0) {
        close(fd);
    }
    return bad;
}

// The statistics a of a run against b's (another table's): the same entries (sorted by name)
// with the same shapes and counts per matrix (so no token was routed to another expert; a CHECK
// fails otherwise). Returns the worst difference of a Σx² per column relative to its matrix's
// largest, for the caller's bound.
static inline double tstats_cmp(const char *what, const struct imc_imatrix *a,
                                const struct imc_imatrix *b)
{
    CHECK(a->n_entries == b->n_entries && a->n_entries > 0, "%s: %lld vs %lld statistics entries",
          what, (long long)a->n_entries, (long long)b->n_entries);
    double worst = 0;
    for (int64_t i = 0; i < a->n_entries && i < b->n_entries; i++) {
        const struct imc_imatrix_entry *x = &a->entries[i], *y = &b->entries[i];
        bool same =
            strcmp(x->name, y->name) == 0 && x->n_per_row == y->n_per_row && x->n_mat == y->n_mat;
        for (int64_t k = 0; same && k < x->n_mat; k++) {
            same = x->counts[k] == y->counts[k];
        }
        if (!same) {
            CHECK(0, "%s: entry %lld: %s (%lld x %lld) vs %s (%lld x %lld), or counts differ", what,
                  (long long)i, x->name, (long long)x->n_per_row, (long long)x->n_mat, y->name,
                  (long long)y->n_per_row, (long long)y->n_mat);
            return INFINITY;
        }
        for (int64_t k = 0; k < x->n_mat; k++) {
            const double *xs = x->sums + k * x->n_per_row, *ys = y->sums + k * y->n_per_row;
            double md = 0, mb = 0;
            for (int64_t j = 0; j < x->n_per_row; j++) {
                md = check_worst(md, fabs(xs[j] - ys[j]));
                mb = check_worst(mb, fabs(ys[j]));
            }
            worst = check_worst(worst, mb > 0 ? md / mb : md);
        }
    }
    return worst;
}

static inline void tmodel_close(struct tmodel *t)
{
    imc_model_free(t->m);
    imc_gguf_free(t->g);
    t->m = NULL;
    t->g = NULL;
}

// Deterministic pseudo-random token ids in [1, n_vocab).
static inline void ttokens(int32_t *tok, int64_t n, int64_t n_vocab, uint64_t seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)(1 + (seed >> 33) % (uint64_t)(n_vocab - 1));
    }
}

// Engine logits of one sequence with the given options (NULL = defaults); NULL on failure.
static inline float *tforward(const struct imc_model *m, const struct imc_engine_opts *o,
                              const int32_t *tok, int64_t n)
{
    struct imc_engine *e = NULL;
    float *lg = malloc((size_t)(n * m->hp.n_vocab) * sizeof(float));
    if (!lg || imc_engine_init(&e, m, o) != IMC_OK || imc_engine_forward(e, tok, n, lg) != IMC_OK) {
        free(lg);
        lg = NULL;
    }
    imc_engine_free(e);
    return lg;
}

static inline float *kdup_f(const float *x, int64_t n)
{
    float *p = malloc((size_t)n * sizeof(float));
    if (p) {
        memcpy(p, x, (size_t)n * sizeof(float));
    }
    return p;
}

// max |a - b| / max |b| (the error relative to the largest reference logit).
static inline double trel_err(const float *a, const float *b, int64_t n)
{
    double md = 0.0, mb = 0.0;
    for (int64_t i = 0; i < n; i++) {
        md = check_worst(md, fabs((double)a[i] - b[i]));
        mb = check_worst(mb, fabs((double)b[i]));
        if (isnan(a[i]) != isnan(b[i])) {
            return INFINITY;
        }
    }
    return mb > 0 ? md / mb : md;
}

// A temp directory (removed with trmdir); exits 1 when it cannot be made.
static inline void tmkdir(char *dir, size_t size, const char *tag)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, size, "%s/imc_%s.XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static inline void trmdir(const char *dir, const char *const *presets, int n)
{
    char p[600];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "%s/%s.gguf", dir, presets[i]);
        unlink(p);
    }
    rmdir(dir);
}

#endif // IMC_TESTS_ENGINE_UTIL_H
