/*
 * coordinator/sweep: the `imc sweep` run (sweep.h): resume scan, base logits once, recipes
 * dealt over the ranks, figures gathered to world rank 0, report.
 */
#include "coordinator/sweep.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/perplexity.h"
#include "coordinator/quantize.h"
#include "coordinator/share.h"
#include "coordinator/sweep_priv.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/log.h"
#include "mpi/beat.h"
#include "mpi/comm.h"
#include "mpi/reduce.h"
#include "mpi/xfer.h"

#define BASE_NAME "_base"

void imc_sweep_opts_default(struct imc_sweep_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->out_dir = ".";
    o->type = IMC_TYPE_Q8_0;
    o->n_threads = 1;
    o->matmul = IMC_MATMUL_Q8;
    o->device = IMC_DEVICE_AUTO;
}

// Creates out_dir when missing and proves it writable with a probe file.
static enum imc_status prepare_out_dir(const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        IMC_LOG_ERR("sweep: --out-dir %s: cannot create: %s", dir, strerror(errno));
        return IMC_ERR_IO;
    }
    size_t n = strlen(dir) + 32;
    char *probe = malloc(n);
    if (!probe) {
        IMC_LOG_ERR("sweep: out of memory");
        return IMC_ERR_NOMEM;
    }
    snprintf(probe, n, "%s/.imc-sweep-probe", dir);
    struct imc_afile af;
    enum imc_status st = imc_afile_open(&af, probe); // logs "cannot create output file"
    if (st == IMC_OK) {
        imc_afile_abort(&af);
    }
    free(probe);
    return st;
}

enum imc_status imc_sweep_init(struct imc_sweep **out, const struct imc_sweep_opts *o)
{
    IMC_ASSERT(o->base && o->rules_dir && o->text && o->out_dir);
    *out = NULL;
    struct imc_sweep *s = calloc(1, sizeof(*s));
    if (!s) {
        IMC_LOG_ERR("sweep: out of memory");
        return IMC_ERR_NOMEM;
    }
    s->o = *o;
    enum imc_status st = imc_sweep_load_recipes(s);
    if (st == IMC_OK) {
        st = imc_sweep_compute_keys(s);
    }
    if (st == IMC_OK && o->imatrix) { // every rank quantizes from rank 0's bytes
        st = imc_share_file(o->comm, o->imatrix, &s->imatrix, &s->imatrix_size);
    }
    if (st == IMC_OK) {
        st = prepare_out_dir(o->out_dir);
    }
    if (st == IMC_OK && !(s->base_logits = imc_sweep_path(s, BASE_NAME, ".logits"))) {
        st = IMC_ERR_NOMEM;
    }
    if (st != IMC_OK) {
        imc_sweep_free(s);
        return st;
    }
    *out = s;
    return IMC_OK;
}

void imc_sweep_free(struct imc_sweep *s)
{
    if (!s) {
        return;
    }
    for (int64_t i = 0; i < s->n; i++) {
        free(s->rec[i].name);
        free(s->rec[i].path);
        free(s->rec[i].text);
        free(s->rec[i].external);
        imc_quant_rules_free(&s->rec[i].rules);
    }
    free(s->rec);
    free(s->base_logits);
    free(s->imatrix);
    imc_beat_close(s->beat); // only on a failure before the gather; the job is ending then
    free(s);
}

int64_t imc_sweep_n_recipes(const struct imc_sweep *s)
{
    return s->n;
}

const char *imc_sweep_recipe_name(const struct imc_sweep *s, int64_t i)
{
    return i >= 0 && i < s->n ? s->rec[i].name : NULL;
}

// Runs perplexity with its report in the file report_path (atomic); res gets the figures. A
// rank of a distributed run other than its rank 0 passes report_path NULL (no report there).
static enum imc_status run_ppl(const struct imc_perplexity_opts *po, const char *report_path,
                               struct imc_perplexity_result *res)
{
    if (!report_path) {
        return imc_perplexity_run(po, NULL, res);
    }
    struct imc_afile af;
    IMC_TRY(imc_afile_open(&af, report_path));
    enum imc_status st = imc_perplexity_run(po, af.f, res);
    if (st != IMC_OK) {
        imc_afile_abort(&af);
        return st;
    }
    return imc_afile_commit(&af);
}

enum imc_status imc_sweep_run_base(struct imc_sweep *s, struct imc_comm *comm,
                                   const struct imc_pulse *pulse)
{
    const bool lead = !comm || imc_comm_rank(comm) == 0;
    char *report = imc_sweep_path(s, BASE_NAME, ".ppl.txt");
    char *result = imc_sweep_path(s, BASE_NAME, ".result");
    enum imc_status st = report && result ? IMC_OK : IMC_ERR_NOMEM;
    struct imc_perplexity_opts po;
    imc_perplexity_opts_default(&po);
    po.model = s->o.base;
    po.text = s->o.text;
    po.n_ctx = s->o.n_ctx;
    po.max_chunks = s->o.max_chunks;
    po.n_threads = s->o.n_threads;
    po.matmul = s->o.matmul;
    po.device = s->o.device;
    po.experts_on_cpu = s->o.experts_on_cpu;
    po.host_exchange = s->o.host_exchange;
    po.kld_save = s->base_logits;
    po.comm = comm;
    po.pulse = pulse ? *pulse : (struct imc_pulse){0};
    if (st == IMC_OK && comm) {
        st = imc_sweep_split_layout(comm, s->o.base, &po.layout);
    }
    struct imc_perplexity_result res;
    double t0 = imc_clock_now();
    if (st == IMC_OK) {
        if (lead) {
            IMC_LOG_INF("sweep: base logits of %s -> %s", s->o.base, s->base_logits);
        }
        st = run_ppl(&po, lead ? report : NULL, &res);
    }
    struct imc_sweep_figures *f = &s->base;
    memset(f, 0, sizeof(*f));
    if (st == IMC_OK && lead) {
        st = imc_sweep_measure(s->o.base, f);
    }
    if (st == IMC_OK && lead) {
        f->hash = s->base_key;
        f->ppl = res.ppl;
        f->ppl_err = res.ppl_err;
        f->done = 1;
        st = imc_sweep_result_write(result, BASE_NAME, f);
    }
    if (st == IMC_OK && lead) {
        char t[32];
        IMC_LOG_INF("sweep: base: PPL %.4f +/- %.5f, %lld chunks of %lld (%s)", f->ppl, f->ppl_err,
                    (long long)res.n_chunk, (long long)res.n_ctx,
                    imc_clock_fmt(imc_clock_now() - t0, t, sizeof(t)));
    }
    free(report);
    free(result);
    return st;
}

// Quantizes recipe r into model: in this process (grp NULL) or over the group (the built-in
// quantizer on every rank of it, an external one on its rank 0 only).
static enum imc_status quantize_recipe(const struct imc_sweep *s, const struct imc_sweep_recipe *r,
                                       const char *model, const struct imc_comm *grp,
                                       const struct imc_pulse *pulse)
{
    struct imc_quantize_opts qo;
    imc_quantize_opts_default(&qo);
    qo.model = s->o.base;
    qo.out = model;
    qo.type = r->type;
    qo.imatrix = r->use_imatrix ? s->o.imatrix : NULL;
    qo.imatrix_image = r->use_imatrix ? s->imatrix : NULL;
    qo.imatrix_image_size = s->imatrix_size;
    qo.rules = &r->rules;
    qo.n_threads = s->o.n_threads;
    qo.quiet = true;
    qo.pulse = *pulse;
    if (r->external) {
        return !grp || imc_comm_rank(grp) == 0
                   ? imc_quantize_external(&qo, r->external, imc_sweep_recipe_type(r))
                   : IMC_OK;
    }
    qo.comm = grp;
    return imc_quantize_run(&qo, NULL);
}

// Scores the quantized model against the base logits into f (report: NULL on the ranks of a
// group other than its rank 0, whose f stays as it is).
static enum imc_status score_recipe(const struct imc_sweep *s, const char *model,
                                    const char *report, bool quiet, struct imc_comm *grp,
                                    const struct imc_pulse *pulse, struct imc_sweep_figures *f)
{
    struct imc_perplexity_opts po;
    imc_perplexity_opts_default(&po);
    po.model = model;
    po.kld_base = s->base_logits; // tokens and ctx come from the base file
    po.max_chunks = s->o.max_chunks;
    po.n_threads = s->o.n_threads;
    po.matmul = s->o.matmul;
    po.device = s->o.device;
    po.experts_on_cpu = s->o.experts_on_cpu;
    po.host_exchange = s->o.host_exchange;
    po.quiet = quiet;
    po.comm = grp;
    po.pulse = *pulse;
    if (grp) {
        IMC_TRY(imc_sweep_split_layout(grp, model, &po.layout));
    }
    struct imc_perplexity_result res;
    IMC_TRY(run_ppl(&po, report, &res));
    if (report) {
        f->ppl = res.ppl;
        f->ppl_err = res.ppl_err;
        f->kld = res.kld;
        f->kld_err = res.kld_err;
        f->same_top = res.same_top;
        f->same_top_err = res.same_top_err;
    }
    return IMC_OK;
}

// Every rank of the group learns whether all of them got IMC_OK (st of this rank). A rank that
// failed keeps its status; the others get IMC_ERR_ARG (the failing rank logged why).
static enum imc_status group_agree(struct imc_comm *grp, enum imc_status st)
{
    if (!grp || imc_comm_size(grp) < 2) {
        return st;
    }
    int bad = st != IMC_OK;
    enum imc_status rst = imc_reduce_all_sum_int(grp, IMC_GROUP_WORLD, &bad, 1);
    if (rst != IMC_OK) {
        return rst;
    }
    return st != IMC_OK ? st : bad ? IMC_ERR_ARG : IMC_OK;
}

// Opens a heartbeat of this rank towards every other rank of c's world (a new one in *out).
static enum imc_status beat_to_all(const struct imc_comm *c, struct imc_beat **out)
{
    const int n = imc_comm_size(c), me = imc_comm_rank(c);
    int *to = malloc((size_t)n * sizeof(*to));
    if (!to) {
        IMC_LOG_ERR("sweep: out of memory");
        return IMC_ERR_NOMEM;
    }
    int k = 0;
    for (int r = 0; r < n; r++) {
        to[k] = r;
        k += r != me;
    }
    enum imc_status st = imc_beat_open(c, to, k, out);
    free(to);
    return st;
}

// The progress of a recipe goes to this rank's world beat and, on a group's rank 0 while it
// quantizes, to the group's beat (either may be NULL).
struct recipe_beats {
    struct imc_beat *world, *group;
};

static void recipe_pulse(void *user)
{
    const struct recipe_beats *b = user;
    imc_beat_pulse(b->world);
    imc_beat_pulse(b->group);
}

// Quantizes recipe r into model. In a group, its rank 0 quantizes (and writes) with a heartbeat
// to the group's other ranks, which wait for it under the watchdog after their own share.
static enum imc_status quantize_in_group(const struct imc_sweep *s,
                                         const struct imc_sweep_recipe *r, const char *model,
                                         struct imc_comm *grp, struct recipe_beats *b)
{
    const struct imc_pulse pulse = {recipe_pulse, b};
    if (!grp || imc_comm_size(grp) < 2) {
        return quantize_recipe(s, r, model, grp, &pulse);
    }
    if (imc_comm_rank(grp) != 0) {
        enum imc_status st = quantize_recipe(s, r, model, grp, &pulse);
        const struct imc_pulse relay = {recipe_pulse, b}; // b->group is NULL here
        enum imc_status wst = imc_beat_await(grp, 0, &relay, "group rank 0 writing %s", model);
        return st != IMC_OK ? st : wst;
    }
    enum imc_status st = beat_to_all(grp, &b->group);
    if (st == IMC_OK) {
        st = quantize_recipe(s, r, model, grp, &pulse);
    }
    enum imc_status cst = imc_beat_close(b->group); // the end mark, also after a failure
    b->group = NULL;
    return st != IMC_OK ? st : cst;
}

enum imc_status imc_sweep_run_recipe(const struct imc_sweep *s, int64_t i, int rank,
                                     struct imc_comm *grp, struct imc_sweep_figures *f)
{
    const struct imc_sweep_recipe *r = &s->rec[i];
    const bool lead = !grp || imc_comm_rank(grp) == 0;
    char *model = imc_sweep_path(s, r->name, ".gguf");
    char *report = imc_sweep_path(s, r->name, ".kld.txt");
    char *result = imc_sweep_path(s, r->name, ".result");
    enum imc_status st = model && report && result ? IMC_OK : IMC_ERR_NOMEM;
    double t0 = imc_clock_now();
    memset(f, 0, sizeof(*f));
    if (st == IMC_OK && lead) {
        IMC_LOG_INF("sweep: [%lld/%lld] %s: quantizing (default %s, %lld rule(s), %s imatrix%s)",
                    (long long)i + 1, (long long)s->n, r->name, imc_sweep_recipe_type(r),
                    (long long)r->rules.n, r->use_imatrix ? "with" : "without",
                    grp ? ", a group of ranks" : "");
    }
    struct recipe_beats beats = {s->beat, NULL};
    const struct imc_pulse pulse = {recipe_pulse, &beats};
    imc_pulse_emit(&pulse);
    if (st == IMC_OK) {
        st = quantize_in_group(s, r, model, grp, &beats);
    }
    st = group_agree(grp, st);
    if (st == IMC_OK) {
        st = score_recipe(s, model, lead ? report : NULL, rank != 0, grp, &pulse, f);
    }
    st = group_agree(grp, st);
    if (!lead) {
        memset(f, 0, sizeof(*f)); // the group's rank 0 reports the recipe
        free(model);
        free(report);
        free(result);
        return st;
    }
    if (st == IMC_OK) {
        st = imc_sweep_measure(model, f);
    }
    if (model && !s->o.keep_models) {
        unlink(model);
    }
    f->hash = r->hash;
    f->rank = rank;
    if (st == IMC_OK) {
        st = imc_sweep_result_write(result, r->name, f);
    }
    if (st == IMC_OK) {
        char t[32];
        f->done = 1;
        IMC_LOG_INF("sweep: [%lld/%lld] %s: %.2f MiB, %.3f bpw, PPL %.4f +/- %.5f, KLD %.6f, "
                    "same top p %.3f %% (%s)",
                    (long long)i + 1, (long long)s->n, r->name, (double)f->size_bytes / 1048576.0,
                    f->bpw, f->ppl, f->ppl_err, f->kld, 100.0 * f->same_top,
                    imc_clock_fmt(imc_clock_now() - t0, t, sizeof(t)));
    } else {
        IMC_LOG_ERR("sweep: recipe '%s' (%s) failed: %s", r->name, r->path, imc_status_str(st));
    }
    f->status = st;
    free(model);
    free(report);
    free(result);
    return st;
}

// World rank 0: which recipes are finished (same hash) and whether the base must be computed.
// todo[i] = 1 for the recipes to compute; returns how many.
static int64_t scan_results(struct imc_sweep *s, struct imc_sweep_figures *figs, uint8_t *todo,
                            bool *need_base)
{
    int64_t n_todo = 0;
    for (int64_t i = 0; i < s->n; i++) {
        const struct imc_sweep_recipe *r = &s->rec[i];
        char *path = imc_sweep_path(s, r->name, ".result");
        bool changed = false;
        if (path && imc_sweep_result_read(path, r->hash, &figs[i], &changed)) {
            IMC_LOG_INF("sweep: %s: finished earlier (%s: same recipe and inputs), not "
                        "recomputed",
                        r->name, path);
        } else {
            if (changed) {
                IMC_LOG_INF("sweep: %s: the recipe or its inputs changed since %s: recomputing",
                            r->name, path);
            }
            todo[i] = 1;
            n_todo++;
        }
        free(path);
    }
    char *base = imc_sweep_path(s, BASE_NAME, ".result");
    bool changed = false;
    *need_base = !base || !imc_sweep_result_read(base, s->base_key, &s->base, &changed) ||
                 (n_todo > 0 && access(s->base_logits, R_OK) != 0);
    if (!*need_base) {
        IMC_LOG_INF("sweep: base: %s is up to date, not recomputed", s->base_logits);
    } else if (changed) {
        IMC_LOG_INF("sweep: base: the model, text, ctx or chunks changed since %s: recomputing",
                    base);
    }
    free(base);
    return n_todo;
}

// Broadcasts n bytes from world rank 0 (no-op in one process).
static enum imc_status bcast(const struct imc_sweep *s, void *buf, size_t n)
{
    if (!s->o.comm || imc_comm_size(s->o.comm) < 2) {
        return IMC_OK;
    }
    return imc_xfer_bcast(s->o.comm, IMC_GROUP_WORLD, 0, buf, n);
}

// Rank r computes the j-th recipe to do when j mod size == r; it stops at its first failure.
static void run_share(const struct imc_sweep *s, const uint8_t *todo,
                      struct imc_sweep_figures *figs, int rank, int size)
{
    for (int64_t i = 0, j = 0; i < s->n; i++) {
        if (!todo[i]) {
            continue;
        }
        if (j++ % size == rank && imc_sweep_run_recipe(s, i, rank, NULL, &figs[i]) != IMC_OK) {
            return;
        }
    }
}

// Sends every rank's figures to world rank 0, which keeps figs[i] from the rank that ran it
// (figs[i].rank). Rank 0 first posts a receive from every rank and ends its own heartbeat; then
// it waits for each rank's heartbeat to end (as long as that rank's last recipe progresses),
// while the others wait for rank 0's to end before they send.
static enum imc_status gather(struct imc_sweep *s, struct imc_sweep_figures *figs, int rank,
                              int size)
{
    const size_t bytes = (size_t)s->n * sizeof(*figs);
    struct imc_comm *c = s->o.comm;
    struct imc_beat *beat = s->beat;
    s->beat = NULL;
    if (rank != 0) {
        enum imc_status st = imc_beat_close(beat);
        st = st == IMC_OK ? imc_beat_await(c, 0, NULL, "its recipes") : st;
        return st == IMC_OK ? imc_xfer_send_bytes(c, IMC_GROUP_WORLD, 0, 0, figs, bytes) : st;
    }
    struct imc_sweep_figures *tmp = malloc((size_t)size * (bytes ? bytes : 1));
    struct imc_xfer **x = calloc((size_t)size, sizeof(*x));
    enum imc_status st = tmp && x ? IMC_OK : IMC_ERR_NOMEM;
    if (st != IMC_OK) {
        IMC_LOG_ERR("sweep: out of memory");
    }
    for (int r = 1; st == IMC_OK && r < size; r++) {
        st = imc_xfer_irecv_bytes(c, IMC_GROUP_WORLD, r, 0, tmp + (size_t)r * (size_t)s->n,
                                  bytes, &x[r]);
    }
    enum imc_status cst = imc_beat_close(beat);
    st = st == IMC_OK ? cst : st;
    for (int r = 1; st == IMC_OK && r < size; r++) {
        st = imc_beat_await(c, r, NULL, "its recipes");
    }
    for (int r = 1; st == IMC_OK && r < size; r++) {
        st = imc_xfer_wait(x[r]);
        x[r] = NULL;
        const struct imc_sweep_figures *t = tmp + (size_t)r * (size_t)s->n;
        for (int64_t i = 0; st == IMC_OK && i < s->n; i++) {
            if (t[i].rank == r && (t[i].done || t[i].status != IMC_OK)) {
                figs[i] = t[i];
            }
        }
    }
    free(x); // on failure transfers are left behind: the caller ends the job
    free(tmp);
    return st;
}

// Rank 0 after the gather: every recipe done, else one line naming the failed ones.
static enum imc_status check_done(const struct imc_sweep *s, const struct imc_sweep_figures *figs)
{
    char names[1024] = "";
    int64_t n_bad = 0;
    for (int64_t i = 0; i < s->n; i++) {
        if (!figs[i].done) {
            size_t k = strlen(names);
            snprintf(names + k, sizeof(names) - k, "%s%s", n_bad++ ? ", " : "", s->rec[i].name);
        }
    }
    if (n_bad > 0) {
        IMC_LOG_ERR("sweep: %lld of %lld recipe(s) failed or did not run: %s; results.csv/.md/"
                    ".svg not written (finished recipes are kept for a rerun)",
                    (long long)n_bad, (long long)s->n, names);
        return IMC_ERR_ARG;
    }
    return IMC_OK;
}

// One rank per recipe (G = 1): the base on world rank 0 alone, with a heartbeat to the other
// ranks, which wait for it under the watchdog; then the recipes dealt in turn.
static enum imc_status run_single(struct imc_sweep *s, struct imc_sweep_figures *figs,
                                  const uint8_t *todo, bool need_base, int rank, int size)
{
    struct imc_comm *c = s->o.comm;
    int32_t base_st = IMC_OK;
    if (rank == 0 && need_base) {
        struct imc_beat *b = NULL;
        enum imc_status st = c && size > 1 ? beat_to_all(c, &b) : IMC_OK;
        const struct imc_pulse pulse = {imc_beat_pulse, b};
        base_st = st == IMC_OK ? imc_sweep_run_base(s, NULL, &pulse) : st;
        IMC_TRY(imc_beat_close(b));
    } else if (need_base) {
        IMC_TRY(imc_beat_await(c, 0, NULL, "the base logits %s", s->base_logits));
    }
    IMC_TRY(bcast(s, &base_st, sizeof(base_st)));
    if (base_st != IMC_OK) {
        return (enum imc_status)base_st; // logged on rank 0
    }
    run_share(s, todo, figs, rank, size);
    return IMC_OK;
}

// The parts that need every rank: base, recipes, gather. Returns this rank's status.
static enum imc_status run_ranks(struct imc_sweep *s, struct imc_sweep_figures *figs, uint8_t *todo,
                                 int rank, int size)
{
    const int g = imc_sweep_group_size(s);
    bool need_base = false;
    int64_t n_todo = rank == 0 ? scan_results(s, figs, todo, &need_base) : 0;
    if (rank == 0 && g > 1) {
        imc_sweep_claims_clear(s); // before anyone claims: every rank waits for the bcast
    }
    uint8_t flag = need_base;
    IMC_TRY(bcast(s, todo, (size_t)s->n));
    IMC_TRY(bcast(s, &flag, 1));
    if (rank == 0) {
        IMC_LOG_INF("sweep: %lld recipe(s), %lld to compute on %d rank(s)%s, results in %s",
                    (long long)s->n, (long long)n_todo, size,
                    g > 1 ? " in groups" : "", s->o.out_dir);
    }
    enum imc_status st = IMC_OK;
    // The recipes' heartbeat, ended by the gather. It sends nothing before the recipes start,
    // so a G = 1 base's own heartbeat (from rank 0 too) ends before its first beat.
    if (size > 1) {
        const int zero = 0;
        st = rank == 0 ? beat_to_all(s->o.comm, &s->beat)
                       : imc_beat_open(s->o.comm, &zero, 1, &s->beat);
    }
    if (st == IMC_OK) {
        st = g > 1 ? imc_sweep_run_groups(s, figs, todo, flag != 0)
                   : run_single(s, figs, todo, flag != 0, rank, size);
    }
    if (st == IMC_OK && size > 1) {
        st = gather(s, figs, rank, size);
    }
    if (s->beat) { // a failure before the gather: the job ends, the waiting ranks learn it
        imc_beat_close(s->beat);
        s->beat = NULL;
    }
    if (st == IMC_OK && rank == 0 && g > 1) {
        imc_sweep_claims_clear(s);
    }
    return st;
}

enum imc_status imc_sweep_run(struct imc_sweep *s, FILE *out)
{
    struct imc_comm *c = s->o.comm;
    const int rank = c ? imc_comm_rank(c) : 0, size = c ? imc_comm_size(c) : 1;
    struct imc_sweep_figures *figs = calloc((size_t)s->n, sizeof(*figs));
    uint8_t *todo = calloc((size_t)s->n, 1);
    if (!figs || !todo) {
        free(figs);
        free(todo);
        IMC_LOG_ERR("sweep: out of memory");
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = imc_sweep_check_groups(s);
    if (st == IMC_OK) {
        st = run_ranks(s, figs, todo, rank, size);
    }
    if (st == IMC_OK && rank == 0) {
        st = check_done(s, figs);
    }
    if (st == IMC_OK && rank == 0) {
        st = imc_sweep_report(s, figs, out);
    }
    int32_t final = st;
    if (bcast(s, &final, sizeof(final)) == IMC_OK && final != IMC_OK && st == IMC_OK) {
        st = (enum imc_status) final; // every rank ends with rank 0's verdict
    }
    free(figs);
    free(todo);
    return st;
}
