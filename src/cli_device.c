/*
 * src/cli_device: the --device check of the commands that run engines (src/cli.h), before any
 * model is loaded: every rank checks its own build and GPUs, and all ranks agree on the result,
 * so a rank without a GPU stops the whole job with exit 1 instead of failing alone later.
 * A rank that will run on CUDA (cuda, or auto with a GPU visible) selects GPU (its rank among
 * the ranks of its host) mod (the GPUs visible), so the ranks of a host spread over its GPUs.
 */
#include <stdio.h>
#include <unistd.h>

#include "core/log.h"
#include "kernels/cuda/cuda.h"
#include "mpi/comm.h"
#include "mpi/reduce.h"
#include "src/cli.h"
#include "worker/engine.h"

int imc_cli_device_check(const struct imc_comm *comm, const char *cmd,
                         const struct imc_opt_common *c)
{
    const int device = c->device;
    int bad = 0;
    const int n_gpu = imc_cuda_backend() ? imc_cuda_devices() : 0;
    if (device != IMC_DEVICE_CPU && n_gpu > 0) {
        const int local = comm ? imc_comm_group_rank(comm, IMC_GROUP_NODE) : 0;
        bad = imc_cuda_select(local % n_gpu) != IMC_OK;
        IMC_LOG_DBG("%s: this rank runs on GPU %d of %d", cmd, local % n_gpu, n_gpu);
    } else if (device == IMC_DEVICE_CUDA) {
        char host[256] = "?";
        if (comm) {
            snprintf(host, sizeof(host), "%s", imc_comm_host(comm));
        } else if (gethostname(host, sizeof(host) - 1) != 0) {
            snprintf(host, sizeof(host), "?");
        }
        IMC_LOG_ERR("%s: --device cuda on rank %d (host %s): %s", cmd,
                    comm ? imc_comm_rank(comm) : 0, host,
                    imc_cuda_backend() ? "no CUDA device visible"
                                       : "this build has no CUDA (configure with -DIMC_CUDA=ON)");
        bad = 1;
    }
    if (comm && imc_comm_size(comm) > 1 &&
        imc_reduce_all_sum_int(comm, IMC_GROUP_WORLD, &bad, 1) != IMC_OK) {
        return 1;
    }
    if (!bad && device != IMC_DEVICE_CPU && n_gpu > 0 && (!comm || imc_comm_rank(comm) == 0)) {
        // The GPU's arithmetic under each --matmul (kernels/cuda/policy.h: the table's lines);
        // routed experts kept on the CPU (--experts-on cpu) take the CPU's path of that mode.
        const char *how = c->matmul == IMC_MATMUL_F32
                              ? "matmul f32"
                              : "matmul q8: up to the mat-vec's line in f32, batches on the tensor "
                                "cores in bf16 with f32 sums";
        if (c->experts_on == 1) {
            IMC_LOG_INF("%s: device cuda, routed experts on the CPU (--experts-on cpu; the other "
                        "weights resident on the GPU; %s)",
                        cmd, how);
        } else {
            IMC_LOG_INF("%s: device cuda (weights resident on the GPU; %s)", cmd, how);
        }
    }
    return bad ? 1 : 0;
}
