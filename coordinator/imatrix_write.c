/*
 * coordinator/imatrix_write: the output of an imatrix run — in-files merged, the GGUF form with
 * the expert-coverage keys, the legacy .dat form (coordinator/imatrix_priv.h).
 *
 * The GGUF form is written by model/imatrix_file (the one writer of that layout) to a side file
 * "<out>.part.<pid>", which is then copied with the coverage keys added into <out> (atomic; the
 * tensors are passed straight from the side file's mapping) and removed. Without MoE layers the
 * GGUF form is written directly.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/checkpoint.h"
#include "coordinator/imatrix_priv.h"
#include "core/file.h"
#include "core/log.h"
#include "core/tmpfile.h"
#include "model/gguf.h"

static char *side_name(const char *path)
{
    size_t n = strlen(path) + 32;
    char *p = malloc(n);
    if (p) {
        snprintf(p, n, "%s.part.%ld", path, (long)getpid());
    }
    return p;
}

// Copies the keys and tensors of g into a new file at path with the coverage keys added.
static enum imc_status copy_with_keys(const struct imc_gguf *g, const struct imc_coverage *cov,
                                      const char *path)
{
    struct imc_gguf_writer *w = imc_gguf_writer_init();
    if (!w) {
        IMC_LOG_ERR("%s: out of memory", path);
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = IMC_OK;
    for (int64_t i = 0; st == IMC_OK && i < imc_gguf_n_kv(g); i++) {
        st = imc_gguf_set_from(w, g, i);
    }
    if (st == IMC_OK) {
        st = imc_coverage_set_keys(w, cov);
    }
    for (int64_t i = 0; st == IMC_OK && i < imc_gguf_n_tensors(g); i++) {
        const struct imc_tensor_info *t = imc_gguf_tensor(g, i);
        st = imc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    if (st == IMC_OK) {
        st = imc_gguf_write(w, path);
    }
    imc_gguf_writer_free(w);
    return st;
}

static enum imc_status write_gguf(const struct imc_imatrix *im, const struct imc_coverage *cov,
                                  const char *path)
{
    if (cov->n_layers == 0) {
        return imc_imatrix_write_gguf(im, path);
    }
    char *side = side_name(path);
    if (!side) {
        IMC_LOG_ERR("%s: out of memory", path);
        return IMC_ERR_NOMEM;
    }
    const int slot = imc_tmp_register(side); // removed on a signal too
    enum imc_status st = imc_imatrix_write_gguf(im, side);
    struct imc_gguf *g = NULL;
    if (st == IMC_OK) {
        st = imc_gguf_open(&g, side);
    }
    if (st == IMC_OK) {
        st = copy_with_keys(g, cov, path);
    }
    imc_gguf_free(g);
    unlink(side);
    imc_tmp_unregister(slot);
    free(side);
    return st;
}

enum imc_status imx_write(const struct imc_imatrix_opts *o, const struct imc_model *m,
                          const struct imc_imatrix *im, const struct imc_imatrix *extra,
                          struct imc_coverage *cov_out)
{
    struct imc_imatrix merged;
    imc_imatrix_init(&merged);
    const struct imc_imatrix *fin = im;
    enum imc_status st = IMC_OK;
    if (extra && extra->n_entries > 0) {
        st = imc_imatrix_merge(&merged, im, 1.0);
        if (st == IMC_OK) {
            st = imc_imatrix_merge(&merged, extra, 1.0);
        }
        fin = &merged;
    }
    struct imc_coverage cov = {0};
    char *gguf_path = NULL, *dat_path = NULL;
    if (st == IMC_OK) {
        st = imc_coverage_compute(&cov, m, fin);
    }
    if (st == IMC_OK) {
        st = imc_imatrix_out_paths(o->out, o->format, &gguf_path, &dat_path);
    }
    if (st == IMC_OK && gguf_path) {
        st = write_gguf(fin, &cov, gguf_path);
    }
    if (st == IMC_OK && dat_path) {
        st = imc_imatrix_write_dat(fin, dat_path, o->dat_zero);
    }
    free(gguf_path);
    free(dat_path);
    imc_imatrix_free(&merged);
    if (cov_out && st == IMC_OK) {
        *cov_out = cov;
    } else {
        imc_coverage_free(&cov);
    }
    return st;
}

static enum imc_status probe(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        IMC_LOG_ERR("%s: is a directory, not an output file", path);
        return IMC_ERR_IO;
    }
    struct imc_afile f;
    IMC_TRY(imc_afile_open(&f, path));
    imc_afile_abort(&f);
    return IMC_OK;
}

enum imc_status imx_check_writable(const struct imc_imatrix_opts *o)
{
    char *gguf_path = NULL, *dat_path = NULL, *ckpt = NULL;
    IMC_TRY(imc_imatrix_out_paths(o->out, o->format, &gguf_path, &dat_path));
    enum imc_status st = gguf_path ? probe(gguf_path) : IMC_OK;
    if (st == IMC_OK && dat_path) {
        st = probe(dat_path);
    }
    if (st == IMC_OK && o->save_every > 0) {
        ckpt = imc_ckpt_path(o->out);
        st = ckpt ? probe(ckpt) : IMC_ERR_NOMEM;
    }
    free(gguf_path);
    free(dat_path);
    free(ckpt);
    return st;
}
