/*
 * tests/cuda/test_rope: kernels/cuda/rope.cu against imc_ref_rope in normal and NEOX modes,
 * without and with YaRN (DeepSeek-V3's and a Qwen-like setting), over head layouts where
 * n_dims < ld_head (the tail must stay as it was) and padded token rows, emulated in every
 * resume order and on the GPU where there is one (tests/cuda/ccheck.h: tolerance TOL_ROPE).
 */
#include "ccheck.h"

struct rcase {
    struct imc_rope p;
    int64_t n_tok, n_head, ld_head;
};

static void run(const struct cdev *d, void *ctx)
{
    (void)ctx;
    static const struct rcase cases[] = {
        {{8, 10000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f, 4096, false}, 3, 1, 8},
        {{64, 10000.0f, 0.025f, 1.0f, 1.0f, 32.0f, 1.0f, 4096, false}, 9, 5, 192},
        {{64, 10000.0f, 0.025f, 1.0f, 0.7f, 32.0f, 1.0f, 4096, true}, 7, 3, 64},
        {{128, 1000000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f, 32768, true}, 4, 2, 130},
        {{6, 500.0f, 0.5f, 1.0f, 1.0f, 32.0f, 1.0f, 64, false}, 40, 2, 7},
    };
    struct krng r = {11};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct rcase *c = &cases[k];
        const int64_t ld_tok = c->n_head * c->ld_head + 3, n = c->n_tok * ld_tok;
        float *x = kalloc_rand(&r, n, 2.0f), *ref = kdup(x, n);
        int32_t *pos = malloc((size_t)c->n_tok * 4);
        for (int64_t t = 0; t < c->n_tok; t++) {
            pos[t] = (int32_t)(t * 37 + (k == 1 ? 100000 : 0)); // far past n_ctx_orig for YaRN
        }
        imc_ref_rope(&c->p, ref, c->n_tok, c->n_head, ld_tok, c->ld_head, pos);
        float *dx = cdev_up(d, x, (size_t)n * 4);
        int32_t *dpos = cdev_up(d, pos, (size_t)c->n_tok * 4);
        CHECK(CDEV_FN(d, rope)(NULL, &c->p, dx, c->n_tok, c->n_head, ld_tok, c->ld_head, dpos) ==
                  IMC_OK,
              "launch");
        cdev_down(d, x, dx, (size_t)n * 4);
        CDEV_FN(d, dev_free)(dpos);
        char what[96];
        snprintf(what, sizeof(what), "%s rope case %zu (n_dims %lld%s%s)", d->name, k,
                 (long long)c->p.n_dims, c->p.neox ? ", neox" : "",
                 c->p.ext_factor != 0.0f ? ", yarn" : "");
        kcompare(what, x, ref, n, TOL_ROPE_ATOL, TOL_ROPE_RTOL);
        free(x);
        free(ref);
        free(pos);
    }
}

int main(void)
{
    cdev_run(run, NULL);
    return check_summary();
}
