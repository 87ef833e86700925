/*
 * tests/cuda/test_peer: the CUDA op table's exchange between ranks (backend.h peer_new /
 * peer_alltoallv, kernels/cuda/peer.cu) on the emulator's NCCL, one rank on a loopback wire (the
 * several-rank exchange runs under mpirun in tests/mpi/test_engine_ep_emu):
 *   - a group where another rank says no, or one on the same device (NCCL cannot serve two ranks
 *     on one GPU; a warning names them): IMC_ERR_UNSUPPORTED, nothing held (the engine then
 *     exchanges through the host); a failing gather of the hellos is passed through; an NCCL
 *     init that fails (the emulator's IMC_CUEMU_NCCL_FAIL_INIT): IMC_ERR_UNSUPPORTED with a
 *     warning naming NCCL's error (the several-rank case: tests/mpi/test_engine_ep_emu);
 *   - a one-rank exchange of rows in the table's buffers: the received rows bitwise the sent
 *     ones, the traffic counted as one call of those bytes each way, nothing copied to the host;
 *   - rows outside the table's memory (all-to-all, send): IMC_ERR_ARG with a message naming
 *     which side; a receive from a rank beyond the group: IMC_ERR_ARG;
 *   - a wire that fails: IMC_ERR_NCCL with the rank and group named, the communicator aborted,
 *     and a later exchange refused with IMC_ERR_NCCL instead of running on a dead communicator.
 */
#include <stdlib.h>
#include <string.h>

#include "../logcap.h"
#include "backend_emu.h"
#include "qtest.h"

// One rank's wire: transfers to itself, matched in order when waited for.
struct loop {
    const void *sbuf[8];
    size_t sbytes[8];
    void *rbuf[8];
    size_t rbytes[8];
    int ns, nr;
    enum { ALONE, OTHER_NO, OTHER_SAME, GATHER_FAILS } group; // what the hellos meet
    bool fail;                                                // transfers fail
};

// ALONE: one rank. Else a second rank: one that says no, or one on the same device (the same
// hello); or the gather fails (MPI failing).
static enum imc_status l_allgather(void *u, const void *mine, void *all, size_t bytes)
{
    const struct loop *l = u;
    memcpy(all, mine, bytes);
    if (l->group == OTHER_NO || l->group == OTHER_SAME) {
        memcpy((char *)all + bytes, mine, bytes);
    }
    if (l->group == OTHER_NO) {
        memset((char *)all + bytes, 0, bytes);
    }
    return l->group == GATHER_FAILS ? IMC_ERR_MPI : IMC_OK;
}

static enum imc_status l_bcast(void *u, void *buf, size_t bytes)
{
    (void)u, (void)buf, (void)bytes; // one rank: it has rank 0's bytes
    return IMC_OK;
}

static enum imc_status l_isend(void *u, int peer, const void *buf, size_t bytes)
{
    struct loop *l = u;
    if (l->fail || peer != 0 || l->ns == 8) {
        return IMC_ERR_MPI;
    }
    l->sbuf[l->ns] = buf;
    l->sbytes[l->ns++] = bytes;
    return IMC_OK;
}

static enum imc_status l_irecv(void *u, int peer, void *buf, size_t bytes)
{
    struct loop *l = u;
    if (l->fail || peer != 0 || l->nr == 8) {
        return IMC_ERR_MPI;
    }
    l->rbuf[l->nr] = buf;
    l->rbytes[l->nr++] = bytes;
    return IMC_OK;
}

static enum imc_status l_waitall(void *u)
{
    struct loop *l = u;
    const bool ok = !l->fail && l->ns == l->nr;
    for (int i = 0; ok && i < l->ns; i++) {
        if (l->sbytes[i] != l->rbytes[i]) {
            return IMC_ERR_MPI;
        }
        memcpy(l->rbuf[i], l->sbuf[i], l->sbytes[i]);
    }
    l->ns = l->nr = 0;
    return ok ? IMC_OK : IMC_ERR_MPI;
}

static struct imc_peer_boot boot_of(struct loop *l)
{
    return (struct imc_peer_boot){.n_ranks = l->group == ALONE || l->group == GATHER_FAILS ? 1 : 2,
                                  .rank = 0,
                                  .timeout = 5,
                                  .group = "test",
                                  .user = l,
                                  .allgather = l_allgather,
                                  .bcast = l_bcast,
                                  .isend = l_isend,
                                  .irecv = l_irecv,
                                  .waitall = l_waitall};
}

int main(void)
{
    const struct imc_backend *b = tcuda_backend_emu();
    struct imc_exec *ex = kexec(1);
    void *ctx = NULL;
    CHECK(b->ctx_new(&ctx) == IMC_OK, "ctx_new");
    imc_exec_set_backend_ctx(ex, ctx);
    CHECK(b->peer_new && b->peer_free && b->peer_alltoallv, "the cuda table has peer entries");

    struct loop l = {.group = OTHER_NO};
    struct imc_peer_boot boot = boot_of(&l);
    void *peer = (void *)&l;
    CHECK(b->peer_new(ctx, &boot, &peer) == IMC_ERR_UNSUPPORTED && !peer,
          "a rank that cannot: every rank falls back");
    l.group = OTHER_SAME;
    boot = boot_of(&l);
    struct logcap cap;
    logcap_start(&cap);
    CHECK(b->peer_new(ctx, &boot, &peer) == IMC_ERR_UNSUPPORTED && !peer,
          "two ranks on one device: every rank falls back");
    logcap_stop();
    CHECK(cap.n_wrn == 1 && strstr(cap.text, "ranks 0 and 1 of the test group share a GPU"),
          "the shared device is named: %s", cap.text);
    l.group = GATHER_FAILS;
    boot = boot_of(&l);
    CHECK(b->peer_new(ctx, &boot, &peer) == IMC_ERR_MPI && !peer,
          "a failing gather of the hellos is passed through");
    l.group = ALONE;
    boot = boot_of(&l);
    setenv("IMC_CUEMU_NCCL_FAIL_INIT", "0", 1);
    logcap_start(&cap);
    CHECK(b->peer_new(ctx, &boot, &peer) == IMC_ERR_UNSUPPORTED && !peer,
          "a failing NCCL init: the group falls back");
    logcap_stop();
    unsetenv("IMC_CUEMU_NCCL_FAIL_INIT");
    CHECK(cap.n_wrn == 1 && strstr(cap.text, "rank 0 of the test group: ncclCommInitRankConfig "
                                             "(1 ranks): unhandled system error; the group's "
                                             "rows go through the host"),
          "the failed init is named: %s", cap.text);
    CHECK(b->peer_new(ctx, &boot, &peer) == IMC_OK && peer, "peer_new on one rank");

    enum { N = 300 };
    float *send = b->buf_alloc(ctx, N * sizeof(float)),
          *recv = b->buf_alloc(ctx, N * sizeof(float));
    float *hs = malloc(N * sizeof(float)), *hr = malloc(N * sizeof(float));
    CHECK(send && recv && hs && hr, "buffers");
    for (int i = 0; i < N; i++) {
        hs[i] = (float)i * 0.25f - 7.0f;
    }
    CHECK(b->upload(ex, send, hs, N * sizeof(float)) == IMC_OK, "upload");
    CHECK(b->zero(ex, recv, N * sizeof(float)) == IMC_OK, "zero");
    size_t up0, down0, nu0, nd0, np, po, pi;
    tcuda_emu_traffic(ctx, &up0, &down0, &nu0, &nd0);
    const size_t cnt[1] = {N - 20};
    CHECK(b->peer_alltoallv(ex, peer, send, cnt, recv, cnt) == IMC_OK, "one-rank exchange");
    size_t up1, down1, nu1, nd1;
    tcuda_emu_traffic(ctx, &up1, &down1, &nu1, &nd1);
    tcuda_emu_peer(ctx, &np, &po, &pi);
    CHECK(up1 == up0 && down1 == down0, "the exchange copied %zu B up, %zu B down", up1 - up0,
          down1 - down0);
    CHECK(np == 1 && po == cnt[0] * sizeof(float) && pi == po, "traffic %zu calls %zu / %zu B", np,
          po, pi);
    CHECK(b->download(ex, hr, recv, N * sizeof(float)) == IMC_OK, "download");
    CHECK(memcmp(hr, hs, cnt[0] * sizeof(float)) == 0, "received rows bitwise the sent ones");
    bool rest_zero = true;
    for (int i = (int)cnt[0]; i < N; i++) {
        rest_zero = rest_zero && hr[i] == 0.0f;
    }
    CHECK(rest_zero, "nothing written past the received count");

    logcap_start(&cap);
    CHECK(b->peer_alltoallv(ex, peer, hs, cnt, recv, cnt) == IMC_ERR_ARG, "host rows sent");
    CHECK(b->peer_alltoallv(ex, peer, send, cnt, hr, cnt) == IMC_ERR_ARG, "host rows received");
    logcap_stop();
    CHECK(cap.n_err == 2 && strstr(cap.text, "the sent rows (280 floats) are not the table's") &&
              strstr(cap.text, "the received rows (280 floats)"),
          "messages: %s", cap.text);

    logcap_start(&cap);
    CHECK(b->peer_send(ex, peer, hs, 4, 0) == IMC_ERR_ARG, "host rows sent to a stage");
    CHECK(b->peer_recv(ex, peer, recv, 4, 1) == IMC_ERR_ARG, "a rank beyond the group");
    logcap_stop();
    CHECK(cap.n_err == 2 && strstr(cap.text, "cuda peer_send: the rows (4 floats) are not") &&
              strstr(cap.text, "no rank 1 of 1"),
          "messages: %s", cap.text);

    l.fail = true;
    logcap_start(&cap);
    CHECK(b->peer_alltoallv(ex, peer, send, cnt, recv, cnt) == IMC_ERR_NCCL, "a failing wire");
    l.fail = false;
    CHECK(b->peer_alltoallv(ex, peer, send, cnt, recv, cnt) == IMC_ERR_NCCL,
          "an exchange after the abort");
    logcap_stop();
    CHECK(cap.n_err == 2 && strstr(cap.text, "rank 0 of the test group: NCCL send / receive") &&
              strstr(cap.text, "after the group's NCCL communicator was aborted"),
          "messages: %s", cap.text);

    b->peer_free(peer);
    b->buf_free(ctx, send);
    b->buf_free(ctx, recv);
    free(hs);
    free(hr);
    imc_exec_set_backend_ctx(ex, NULL);
    b->ctx_free(ctx);
    imc_exec_free(ex);
    return check_summary();
}
