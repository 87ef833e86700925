/*
 * imc perplexity: perplexity and KL-divergence of a model on a text, as llama-perplexity computes
 * them (DESIGN.md §3, §4 "Perplexity"; coordinator/perplexity.h).
 *
 *   imc perplexity -m MODEL -f TEXT [options]      (options: the table below; --help)
 *
 * Results go to stdout, progress and logs to stderr. Exit 0 on success, 1 when the run fails
 * (one error line naming the file and cause), 2 on bad usage.
 *
 * Under mpirun (or another MPI launcher; without one, MPI is not started) the ranks form one
 * job (coordinator/dist.h; default layout: automatic, coordinator/layout_auto.h): only world
 * rank 0 prints results and progress, the others log warnings and errors only. Usage errors
 * are found alike on every rank (rank 0 reports them) and every rank exits 2; a failure during
 * the run on any rank ends the whole job through imc_fatal (mpi/fatal.h).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/perplexity.h"
#include "core/log.h"
#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "numa/plan.h"
#include "src/cli.h"

#define OWN(field) IMC_OPT_SLOT(IMC_OPT_OWN, offsetof(struct imc_perplexity_opts, field))

static const struct imc_opt own_opts[] = {
    IMC_OPT(
        "kld-save", 0, IMC_OPT_STR, OWN(kld_save), "FILE",
        "also write the base log-probabilities (llama.cpp's\n--kl-divergence-base file format)"),
    IMC_OPT("kld-base", 0, IMC_OPT_STR, OWN(kld_base), "FILE",
            "KL-divergence against a saved base (same chunks; -f is\nthen optional, and checked "
            "against the tokens in the file)"),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {
    imc_opt_group_model,  imc_opt_group_text,    imc_opt_group_chunks,
    imc_opt_group_batch,  imc_opt_group_threads, own_opts,
    imc_opt_group_attn,   imc_opt_group_matmul,  imc_opt_group_device,
    imc_opt_group_layout, imc_opt_group_log,     NULL};

static const struct imc_opt_spec spec = {
    .usage = "-m MODEL -f TEXT [options]",
    .groups = groups,
    .notes = "With --kld-base, --ctx defaults to the base file's.",
};

// Moves the parsed options into o and checks what is required; returns 0 or 2 (logged).
static int finish(void *own, const struct imc_opt_common *c, char **pos, int n_pos,
                  const struct imc_comm *comm)
{
    struct imc_perplexity_opts *o = own;
    (void)pos;
    (void)n_pos;
    IMC_CLI_APPLY_RUN_OPTIONS(o, c, comm);
    const char *err = !o->model                    ? "missing -m MODEL"
                      : !o->text && !o->kld_base   ? "missing -f TEXT"
                      : o->kld_save && o->kld_base ? "--kld-save and --kld-base exclude each other"
                                                   : NULL;
    if (err) {
        IMC_LOG_ERR("perplexity: %s (see imc perplexity --help)", err);
        return 2;
    }
    return 0;
}

static int run(int argc, char **argv)
{
    struct imc_comm *comm = NULL;
    if (imc_cli_mpi_start(&comm) != 0) {
        return 1;
    }
    struct imc_perplexity_opts o;
    imc_perplexity_opts_default(&o);
    struct imc_opt_common c;
    char **pos = NULL;
    int n_pos = 0;
    int rc = imc_cli_parse(&imc_cmd_perplexity, argc, argv, &o, &c, comm, &pos, &n_pos);
    if (rc == 0) {
        rc = imc_cli_device_check(comm, "perplexity", &c);
    }
    if (rc == 0) {
        rc = imc_cli_job_layout(comm, "perplexity", o.model, &o.layout);
    }
    if (rc == 0) {
        o.n_threads = imc_cli_threads_resolve(comm, "perplexity", &c);
    }
    if (rc != 0) {
        imc_comm_free(comm);
        return rc < 0 ? 0 : rc;
    }
    o.comm = comm;
    const bool rank0 = !comm || imc_comm_rank(comm) == 0;
    enum imc_status st = imc_perplexity_run(&o, rank0 ? stdout : NULL, NULL);
    fflush(stdout);
    return imc_cli_job_end(comm, st, "perplexity");
}

const struct imc_cli_cmd imc_cmd_perplexity = {
    .name = "perplexity",
    .summary = "perplexity and KL-divergence on a text (llama-perplexity compatible)",
    .opts = &spec,
    .check = finish,
    .run = run,
};
