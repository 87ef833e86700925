/*
 * tests/unit/test_model_cost: coordinator/model_cost on generated tiny models (model/synth.h).
 * Expected bytes and FLOPs are worked out by hand from the preset hyper-parameters in the
 * comments; the byte total is checked against the file's own tensor table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/model_cost.h"
#include "model/gguf.h"
#include "model/synth.h"
#include "tests/check.h"

struct loaded {
    struct imc_gguf *g;
    struct imc_model *m;
    struct imc_layer_cost layers[8];
    struct imc_model_cost c;
};

// Generates preset `name` (weights of type wt) into dir and builds its cost. Returns 0 on success.
static int load(const char *dir, const char *name, enum imc_type wt, struct loaded *out)
{
    memset(out, 0, sizeof(*out));
    struct imc_synth_cfg cfg;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.gguf", dir, name);
    if (imc_synth_preset(&cfg, name) != IMC_OK) {
        return 1;
    }
    cfg.wtype = wt;
    int bad = imc_synth_write(&cfg, path) != IMC_OK || imc_gguf_open(&out->g, path) != IMC_OK ||
              imc_model_load(&out->m, out->g) != IMC_OK || out->m->hp.n_layer > 8 ||
              imc_model_cost_build(out->m, out->layers, &out->c) != IMC_OK;
    unlink(path);
    CHECK(!bad, "%s: generate, open and cost", name);
    return bad;
}

static void unload(struct loaded *l)
{
    imc_model_free(l->m);
    imc_gguf_free(l->g);
}

static uint64_t total_bytes(const struct imc_model_cost *c)
{
    uint64_t t = c->embd.bytes + c->head.bytes + c->embd.expert_bytes + c->head.expert_bytes;
    for (int i = 0; i < c->n_layer; i++) {
        t += c->layer[i].bytes + c->layer[i].expert_bytes;
    }
    return t;
}

static uint64_t file_bytes(const struct imc_gguf *g)
{
    uint64_t t = 0;
    for (int64_t i = 0; i < imc_gguf_n_tensors(g); i++) {
        t += imc_gguf_tensor(g, i)->nbytes;
    }
    return t;
}

/*
 * ds2-tiny-3d (f32): n_embd 64, 4 heads, q_lora 32, kv_lora 32, qk_nope 16, qk_rope 8, v_head 16,
 * n_ff 128, 8 experts (2 used, 1 shared) of n_ff_exp 32, layer 0 dense, n_vocab 512.
 * Attention elements: attn_norm 64 + q_a 64*32=2048 + q_a_norm 32 + q_b 32*96=3072
 *   + kv_a_mqa 64*40=2560 + kv_a_norm 32 + k_b 16*32*4=2048 + v_b 32*16*4=2048 + o 64*64=4096
 *   = 16000; matrices among them: 2048+3072+2560+2048+2048+4096 = 15872.
 * Layer 0: + ffn_norm 64 + gate/up/down 3*64*128=24576 -> 40640 elements = 162560 bytes;
 *   FLOPs 2*(15872+24576) = 80896.
 * Layer 1: + ffn_norm 64 + gate_inp 64*8=512 + exp_probs_b 8 + shexp 3*64*32=6144 -> 22728
 *   elements = 90912 bytes; experts 3*64*32*8 = 49152 elements = 196608 bytes;
 *   FLOPs 2*(15872+512+6144) = 45056; expert FLOPs 2 * 3*64*32 * 2 used = 24576.
 * Embedding 64*512*4 = 131072 bytes, 0 FLOPs; head output_norm 256 + output 131072 = 131328
 * bytes, 2*64*512 = 65536 FLOPs.
 */
static void check_ds2(const char *dir)
{
    struct loaded l;
    if (load(dir, "ds2-tiny-3d", IMC_TYPE_F32, &l)) {
        unload(&l);
        return;
    }
    const struct imc_model_cost *c = &l.c;
    CHECK(c->n_layer == 3 && c->n_expert == 8 && c->layer == l.layers, "n_layer %d n_expert %d",
          c->n_layer, c->n_expert);
    CHECK(c->layer[0].bytes == 162560 && c->layer[0].expert_bytes == 0, "layer 0 bytes %llu %llu",
          (unsigned long long)c->layer[0].bytes, (unsigned long long)c->layer[0].expert_bytes);
    CHECK(c->layer[0].flops == 80896 && c->layer[0].expert_flops == 0, "layer 0 flops %g %g",
          c->layer[0].flops, c->layer[0].expert_flops);
    for (int i = 1; i <= 2; i++) {
        CHECK(c->layer[i].bytes == 90912 && c->layer[i].expert_bytes == 196608,
              "layer %d bytes %llu %llu", i, (unsigned long long)c->layer[i].bytes,
              (unsigned long long)c->layer[i].expert_bytes);
        CHECK(c->layer[i].flops == 45056 && c->layer[i].expert_flops == 24576,
              "layer %d flops %g %g", i, c->layer[i].flops, c->layer[i].expert_flops);
    }
    CHECK(c->embd.bytes == 131072 && c->embd.flops == 0, "embd %llu %g",
          (unsigned long long)c->embd.bytes, c->embd.flops);
    CHECK(c->head.bytes == 131328 && c->head.flops == 65536, "head %llu %g",
          (unsigned long long)c->head.bytes, c->head.flops);
    CHECK(total_bytes(c) == file_bytes(l.g), "total %llu = file %llu",
          (unsigned long long)total_bytes(c), (unsigned long long)file_bytes(l.g));
    unload(&l);
}

// ds2-tiny-all adds attn_kv_b [32, 4*(16+16)] = 4096 elements (16384 bytes) per layer to the
// 3d layout: bytes grow, FLOPs do not (the paths multiply the same weights; counted once).
// Q8_0 experts: rows of 64 -> 2 blocks of 34 bytes, rows of 32 -> 1 block: gate/up 32*8 rows *
// 68 + down 64*8 rows * 34 = 17408 * 3 = 52224 bytes.
static void check_layouts(const char *dir)
{
    struct loaded a, b, q;
    int bad = load(dir, "ds2-tiny-3d", IMC_TYPE_F32, &a);
    bad |= load(dir, "ds2-tiny-all", IMC_TYPE_F32, &b);
    bad |= load(dir, "ds2-tiny-3d", IMC_TYPE_Q8_0, &q);
    if (!bad) {
        for (int i = 0; i < 3; i++) {
            CHECK(b.c.layer[i].bytes == a.c.layer[i].bytes + 16384, "kv_b bytes layer %d", i);
            CHECK(b.c.layer[i].flops == a.c.layer[i].flops, "kv_b not counted twice, layer %d",
                  i);
        }
        CHECK(q.c.layer[1].expert_bytes == 52224, "q8_0 expert bytes %llu",
              (unsigned long long)q.c.layer[1].expert_bytes);
        CHECK(q.c.layer[1].flops == a.c.layer[1].flops, "FLOPs do not depend on the type");
        CHECK(q.c.layer[1].bytes < a.c.layer[1].bytes, "q8_0 layer smaller than f32");
        CHECK(total_bytes(&q.c) == file_bytes(q.g), "q8_0 total = file");
    }
    unload(&a);
    unload(&b);
    unload(&q);
}

/*
 * llama-moe-tiny (f32, tied output): n_embd 64, 4 heads / 2 kv heads of 16, 4 experts (2 used)
 * of n_ff_exp 64, n_vocab 512, 2 layers. Per layer: norms 2*64 + q 4096 + k 2048 + v 2048
 * + o 4096 + gate_inp 256 = 12672 elements = 50688 bytes; FLOPs 2*(4096+2048+2048+4096+256) =
 * 25088; experts 3*64*64*4 = 49152 elements = 196608 bytes, FLOPs 2*3*4096*2 = 49152.
 * Tied: the head holds output_norm 256 + token_embd 131072 = 131328 bytes.
 */
static void check_llama_tied(const char *dir)
{
    struct loaded l;
    if (load(dir, "llama-moe-tiny", IMC_TYPE_F32, &l)) {
        unload(&l);
        return;
    }
    const struct imc_model_cost *c = &l.c;
    CHECK(c->n_layer == 2 && c->n_expert == 4, "n_layer %d n_expert %d", c->n_layer, c->n_expert);
    for (int i = 0; i < 2; i++) {
        CHECK(c->layer[i].bytes == 50688 && c->layer[i].expert_bytes == 196608,
              "layer %d bytes %llu %llu", i, (unsigned long long)c->layer[i].bytes,
              (unsigned long long)c->layer[i].expert_bytes);
        CHECK(c->layer[i].flops == 25088 && c->layer[i].expert_flops == 49152,
              "layer %d flops %g %g", i, c->layer[i].flops, c->layer[i].expert_flops);
    }
    CHECK(c->embd.bytes == 131072, "embd %llu", (unsigned long long)c->embd.bytes);
    CHECK(c->head.bytes == 131328 && c->head.flops == 65536, "tied head %llu %g",
          (unsigned long long)c->head.bytes, c->head.flops);
    CHECK(total_bytes(c) == file_bytes(l.g) + 131072, "total = file + tied copy");
    unload(&l);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/imc_test_model_cost_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    check_ds2(dir);
    check_layouts(dir);
    check_llama_tied(dir);
    rmdir(dir);
    return check_summary();
}
