/*
 * tests/mpi/test_layout: the layout communicators of mpi/comm.h. For every layout pp x ep x dp
 * that fits the job (all of them for 4 ranks: 4x1x1 ... 1x2x2), each group must have the right
 * size, this rank's group rank must be its coordinate as numa/plan.h computes it, and the
 * members must be exactly the world ranks that share the other two coordinates (checked with
 * an all-reduce of 1 << world rank inside the group). A layout that does not fit fails with
 * "layout pp=2,ep=1,dp=3 needs 6 ranks, the job has 4"-style messages. Also the node group, and
 * imc_comm_split_world: a set whose world is half of the job (the sweep's recipe groups) has the
 * right members, its own node group and layouts, the job's timeout, and freeing it leaves MPI
 * and the job's set usable.
 */
#include <stdio.h>
#include <string.h>

#include "numa/plan.h"
#include "tests/mpi/mpitest.h"

static void capture(enum imc_log_level level, const char *line, void *user)
{
    (void)level;
    snprintf(user, 256, "%s", line);
}

// Bit mask of the world ranks in this rank's group g under layout l, from the formula.
static int expected_members(const struct imc_layout *l, int me, enum imc_comm_group g)
{
    struct imc_coords mine = imc_layout_coords(l, me);
    int mask = 0;
    for (int r = 0; r < l->pp * l->ep * l->dp; r++) {
        struct imc_coords co = imc_layout_coords(l, r);
        int same = g == IMC_GROUP_PIPELINE  ? co.replica == mine.replica && co.shard == mine.shard
                   : g == IMC_GROUP_EXPERT  ? co.replica == mine.replica && co.stage == mine.stage
                                            : co.stage == mine.stage && co.shard == mine.shard;
        mask |= same ? 1 << r : 0;
    }
    return mask;
}

static void check_layout(struct imc_comm *c, int pp, int ep, int dp)
{
    int me = imc_comm_rank(c);
    struct imc_layout l = {pp, ep, dp};
    CHECK(imc_comm_split_layout(c, pp, ep, dp) == IMC_OK, "split pp=%d,ep=%d,dp=%d", pp, ep, dp);
    struct imc_coords co = imc_layout_coords(&l, me);
    const enum imc_comm_group groups[3] = {IMC_GROUP_PIPELINE, IMC_GROUP_EXPERT,
                                           IMC_GROUP_REPLICA};
    const int sizes[3] = {pp, ep, dp};
    const int ranks[3] = {co.stage, co.shard, co.replica};
    for (int k = 0; k < 3; k++) {
        enum imc_comm_group g = groups[k];
        CHECK(imc_comm_group_size(c, g) == sizes[k], "%dx%dx%d: %s size %d, expected %d", pp,
              ep, dp, imc_comm_group_name(g), imc_comm_group_size(c, g), sizes[k]);
        CHECK(imc_comm_group_rank(c, g) == ranks[k], "%dx%dx%d: %s rank %d, expected %d", pp,
              ep, dp, imc_comm_group_name(g), imc_comm_group_rank(c, g), ranks[k]);
        int mask = 1 << me;
        CHECK(imc_reduce_all_sum_int(c, g, &mask, 1) == IMC_OK, "all-reduce in %s",
              imc_comm_group_name(g));
        int want = expected_members(&l, me, g);
        CHECK(mask == want, "%dx%dx%d: %s members 0x%x, expected 0x%x", pp, ep, dp,
              imc_comm_group_name(g), mask, want);
    }
    CHECK(imc_comm_barrier(c, IMC_GROUP_PIPELINE) == IMC_OK, "barrier on the pipeline");
}

static void test_invalid(struct imc_comm *c)
{
    int n = imc_comm_size(c);
    char line[256] = "", want[256];
    imc_log_set_sink(capture, line);
    CHECK(imc_comm_split_layout(c, 2, 1, 3) == (n == 6 ? IMC_OK : IMC_ERR_ARG), "2x1x3");
    snprintf(want, sizeof(want), "layout pp=2,ep=1,dp=3 needs 6 ranks, the job has %d", n);
    CHECK(n == 6 || strcmp(line, want) == 0, "message '%s', expected '%s'", line, want);
    CHECK(imc_comm_split_layout(c, 0, 1, n) == IMC_ERR_ARG, "pp=0 rejected");
    CHECK(strstr(line, "every factor must be at least 1") != NULL, "message '%s'", line);
    imc_log_set_sink(NULL, NULL);
    // A failed split keeps the previous groups usable.
    CHECK(imc_comm_barrier(c, IMC_GROUP_REPLICA) == IMC_OK, "groups still usable");
}

static void test_node(const struct imc_comm *c)
{
    int lr = imc_comm_group_rank(c, IMC_GROUP_NODE), ls = imc_comm_group_size(c, IMC_GROUP_NODE);
    CHECK(ls >= 1 && ls <= imc_comm_size(c) && lr >= 0 && lr < ls, "node rank %d of %d", lr, ls);
    int v[2] = {1, lr};
    CHECK(imc_reduce_all_sum_int(c, IMC_GROUP_NODE, v, 2) == IMC_OK, "node all-reduce");
    CHECK(v[0] == ls && v[1] == ls * (ls - 1) / 2, "node ranks 0..%d", ls - 1);
    CHECK(imc_comm_host(c)[0] != '\0', "host name");
}

static void test_split_world(struct imc_comm *c)
{
    const int me = imc_comm_rank(c), n = imc_comm_size(c);
    const int g = n >= 2 ? n / 2 : 1; // halves (the last group takes an odd rank count's rest)
    const int color = me / g < n / g ? me / g : n / g - 1;
    const int first = color * g, size = color == n / g - 1 ? n - first : g;
    struct imc_comm *sub = NULL;
    CHECK(imc_comm_split_world(c, color, me, &sub) == IMC_OK, "split world into groups of %d", g);
    if (!sub) {
        return;
    }
    CHECK(imc_comm_size(sub) == size && imc_comm_rank(sub) == me - first,
          "sub-world rank %d of %d, expected %d of %d", imc_comm_rank(sub), imc_comm_size(sub),
          me - first, size);
    int mask = 1 << me;
    CHECK(imc_reduce_all_sum_int(sub, IMC_GROUP_WORLD, &mask, 1) == IMC_OK, "sub all-reduce");
    CHECK(mask == ((1 << (first + size)) - (1 << first)), "sub-world members 0x%x", mask);
    CHECK(imc_comm_timeout(sub) == imc_comm_timeout(c), "timeout inherited");
    CHECK(strcmp(imc_comm_host(sub), imc_comm_host(c)) == 0, "host inherited");
    test_node(sub);
    CHECK(imc_comm_group_size(sub, IMC_GROUP_NODE) <= size, "node group inside the sub-world");
    check_layout(sub, size, 1, 1);
    imc_comm_free(sub); // must not finalize MPI
    CHECK(imc_comm_barrier(c, IMC_GROUP_WORLD) == IMC_OK, "the job's world after the free");
}

int main(int argc, char **argv)
{
    struct imc_comm *c = mpitest_init(&argc, &argv);
    imc_comm_set_timeout(c, 60);
    int n = imc_comm_size(c);
    CHECK(imc_comm_group_size(c, IMC_GROUP_PIPELINE) == 1, "before a layout: groups of one");
    test_node(c);
    check_layout(c, n, 1, 1);
    check_layout(c, 1, n, 1);
    check_layout(c, 1, 1, n);
    if (n == 4) {
        check_layout(c, 2, 2, 1);
        check_layout(c, 2, 1, 2);
        check_layout(c, 1, 2, 2);
    }
    test_invalid(c);
    test_split_world(c);
    return mpitest_finish(c);
}
