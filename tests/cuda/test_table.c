/*
 * tests/cuda/test_table: the CUDA op table (kernels/cuda/table.cu) in the emulator, op by op,
 * where cuda.engine_emu checks it through whole forward passes:
 *   - matmul of 1, 9, 16, 17, 70, 256 and 257 tokens (mmv up to the table's IMC_CUDA_MMV_TOKENS =
 *     16, dequantize + GEMM above) on f32, f16, q8_0, q4_K and q6_K weights, x and y with row
 *     strides, each with the GEMM of cuBLAS (emulated: kernels/cuda/emu/cuemu_cublas.h, as on a
 *     GPU with libcublas) and with the tiled GEMM of gemm.cu (IMC_CUEMU_NO_CUBLAS=1, as on one
 *     without): against imc_ref_matmul on the decoded weights within (n_in + 2)·2^-24·Σ|w·x|
 *     (the mmv and GEMM bounds, tests/cuda/test_mmv and test_gemm, both inside it) and, above 16
 *     tokens with the tiled GEMM, bitwise against imc_cpu_matmul (its arithmetic); cuBLAS called
 *     for the batches only, and not without it; y's gaps between rows keep their values;
 *   - --matmul q8 (the exec's Q8 mode): above 16 tokens imc_cpu_matmul on the decoded weights and
 *     the activations rounded to bf16 (the bf16 GEMM): bitwise with mmq and the tiled GEMM,
 *     within the bound above with cuBLAS; up to 16 and for f32 weights the f32 mode's bits;
 *   - IMC_CUDA_MMV_TOKENS moves that line (4: a matmul of 5 tokens is the bf16 GEMM's); 0, 65 and
 *     a word are refused by ctx_new with one message;
 *   - --matmul q8 above the mmv line: mmq up to IMC_CUDA_MMQ_TOKENS (256) tokens, one launch, the
 *     batch path's bits in the emulator (kernels/cuda/mmq.cu); 257 tokens: dequantize + GEMM, 3
 *     launches; IMC_CUDA_MMQ_TOKENS moves that line (16: 17 tokens take the batch path), 0 is
 *     allowed, -1, 2^20 + 1 and a word are refused;
 *   - matmul_group: 253 experts' slices of one q4_K tensor with 0 .. 19 tokens each (--matmul
 *     q8: 0 .. 16, 17 .. 167 and 257, 258), rows in the table's memory at strides: bitwise each
 *     expert's matmul alone; the experts of up to 16 tokens in ceil(n / IMC_CUDA_MMV_GROUP_MAX)
 *     launches (mmv_group), those of mmq likewise (mmq_group), counted by the emulator;
 *   - ctx_free's line of device memory names what the device holds besides the table (a 1 MiB
 *     block the test holds: "1.0 MiB besides");
 *   - residency: one upload per weight (the context's cache holds each weight once, with its
 *     bytes); a weight changed on the host after its first use gives the old result (the ops
 *     read the device copy); ctx_free returns every byte of emulated device memory;
 *   - the 30 interleaved types: matmul of 4 and 70 tokens, for the 23 with a plain form bitwise
 *     the matmul of the plain rows they re-lay to, for the 7 held as row forms (q5_0_r4,
 *     q6_0_r4, iq1_s_r4, iq1_m_r4, q8_k_r8, q8_k_r16, q8_kv_r8) within the bound above of
 *     imc_ref_matmul and at 70 tokens (the tiled GEMM) bitwise imc_cpu_matmul; get_rows bitwise
 * imc_ref_get_rows; rows that are not whole groups refused;
 *   - move_rows with its index arrays in the table's memory: bitwise imc_ref_move_rows; over host
 *     rows refused with a message; with host rows by host indices bitwise imc_ref_move_rows, only
 *     the rows moved (not the extent the indices span) crossing the bus, and host rows to host
 *     rows with no copy at all;
 *   - get_rows bitwise against imc_ref_get_rows; swiglu with out = gate at a row stride: the
 *     gaps keep their values, results within kcheck's TOL_SWIGLU;
 *   - device memory exhausted (IMC_CUEMU_MEM_LIMIT): matmul returns IMC_ERR_NOMEM with one
 *     error naming the weight's type, shape and the bytes needed; rmsnorm (no status) fills its
 *     output with NaN; an engine forward on the table fails with IMC_ERR_NOMEM and the tensor's
 *     name, or without room for its activations' arena (one block, worker/engine_mem.h) with the
 *     tokens of the call; nothing crashes, and the memory comes back.
 * Broken variant run by hand and not kept: y copied back without its row stride (rows_down
 * ignoring ldy) fails 30 checks here and 6 in cuda.engine_emu.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../e2e/engine_util.h"
#include "../logcap.h"
#include "backend_emu.h"
#include "qtest.h"
#define IMC_CUDA_FN(name) imc_cuemu_##name
#include "kernels/cuda/table_priv.h"
#undef IMC_CUDA_FN

struct tctx {
    const struct imc_backend *b;
    struct imc_exec *ex;
    void *ctx;
};

static void tctx_open(struct tctx *t)
{
    t->b = tcuda_backend_emu();
    t->ex = kexec(1);
    t->ctx = NULL;
    CHECK(t->b->ctx_new(&t->ctx) == IMC_OK, "ctx_new");
    imc_exec_set_backend_ctx(t->ex, t->ctx);
}

// A context whose batches take the emulated cuBLAS (the default, as a GPU with libcublas), or
// with tiled the tiled GEMM of gemm.cu (IMC_CUEMU_NO_CUBLAS: as a GPU without it).
static void tctx_open_gemm(struct tctx *t, bool tiled)
{
    if (tiled) {
        setenv("IMC_CUEMU_NO_CUBLAS", "1", 1);
    }
    tctx_open(t);
    unsetenv("IMC_CUEMU_NO_CUBLAS");
    CHECK(!((const struct imc_cuda_ctx *)t->ctx)->blas == tiled, "the table %s cuBLAS",
          tiled ? "has" : "lacks");
}

// The table's line between mmv and the batch matmul (kern_decl.h IMC_CUDA_MMV_TOKENS).
static int64_t mmv_tok(const struct tctx *t)
{
    return imc_cuemu_ctx_mmv_tokens(t->ctx);
}

// The line between mmq and the batch matmul for bf16 batches (IMC_CUDA_MMQ_TOKENS).
static int64_t mmq_tok(const struct tctx *t)
{
    return imc_cuemu_ctx_mmq_tokens(t->ctx);
}

static void tctx_close(struct tctx *t)
{
    imc_exec_set_backend_ctx(t->ex, NULL);
    t->b->ctx_free(t->ctx);
    imc_exec_free(t->ex);
}

// The n_out x n_in weights w of type decoded to f32 (free with free).
static float *decoded(const void *w, enum imc_type type, int64_t n_out, int64_t n_in)
{
    int32_t *ids = malloc((size_t)n_out * sizeof(int32_t));
    float *f = malloc((size_t)(n_out * n_in) * sizeof(float));
    for (int64_t i = 0; i < n_out; i++) {
        ids[i] = (int32_t)i;
    }
    CHECK(imc_ref_get_rows(f, w, type, n_in, ids, n_out) == IMC_OK, "decode");
    free(ids);
    return f;
}

// Outputs y (n_tok rows at stride ldy) farther from ref than (n_in + 2)·2^-24·Σ|w·x|, the mmv and
// GEMM bounds (tests/cuda/test_mmv, test_gemm), w the decoded f32 weights (n_out x n_in).
static int outside_bound(const float *y, const float *ref, int64_t ldy, const float *wf,
                         int64_t n_out, int64_t n_in, const float *x, int64_t ldx, int64_t n_tok)
{
    int bad = 0;
    for (int64_t tk = 0; tk < n_tok; tk++) {
        for (int64_t o = 0; o < n_out; o++) {
            double sabs = 0.0;
            for (int64_t i = 0; i < n_in; i++) {
                sabs += fabs((double)wf[o * n_in + i] * x[tk * ldx + i]);
            }
            const int64_t k = tk * ldy + o;
            bad += !(fabs((double)y[k] - ref[k]) <= (double)(n_in + 2) * 0x1p-24 * sabs);
        }
    }
    return bad;
}

// In a fresh context (weights are keyed by host address, and a freed matrix's address may come
// back with other bytes: the table requires weights to stay put while its context lives); its
// batches through the emulated cuBLAS, or with tiled the tiled GEMM (whose bits are the CPU's).
static void matmul_case(enum imc_type type, int64_t n_tok, bool tiled)
{
    const unsigned long long base = cuemu_mem_used();
    struct tctx tc;
    struct tctx *t = &tc;
    tctx_open_gemm(t, tiled);
    enum { NO = 40, NI = 256, LDX = NI + 3, LDY = NO + 5 };
    struct krng r = {(uint64_t)(type * 100 + n_tok)};
    uint64_t rb = 0;
    uint8_t *w = kt_weights(&r, type, NO, NI, &rb);
    float *x = kalloc_rand(&r, n_tok * LDX, 1.0f);
    float *wf = decoded(w, type, NO, NI);
    const int64_t ny = n_tok * LDY;
    float *y = malloc((size_t)ny * 4), *ref = malloc((size_t)ny * 4), *cpu = malloc((size_t)ny * 4);
    for (int64_t i = 0; i < ny; i++) {
        y[i] = ref[i] = cpu[i] = -7.0f;
    }
    const unsigned long long calls = cuemu_cublas_calls();
    CHECK(t->b->matmul(t->ex, y, LDY, w, type, NO, NI, x, LDX, n_tok) == IMC_OK, "%s matmul",
          imc_type_name(type));
    const bool batch = n_tok > mmv_tok(t), blas = batch && !tiled;
    CHECK((cuemu_cublas_calls() > calls) == blas, "%s matmul, %lld tokens: cuBLAS %s",
          imc_type_name(type), (long long)n_tok, blas ? "not called" : "called");
    CHECK(imc_ref_matmul(ref, LDY, wf, IMC_TYPE_F32, NO, NI, x, LDX, n_tok) == IMC_OK, "ref");
    CHECK(imc_cpu_matmul(t->ex, cpu, LDY, w, type, NO, NI, x, LDX, n_tok) == IMC_OK, "cpu");
    const int bad = outside_bound(y, ref, LDY, wf, NO, NI, x, LDX, n_tok);
    int bad_bits = 0, bad_gap = 0;
    for (int64_t tk = 0; tk < n_tok; tk++) {
        for (int64_t o = 0; o < LDY; o++) {
            const int64_t k = tk * LDY + o;
            bad_gap += o >= NO && y[k] != -7.0f;
            bad_bits += o < NO && batch && memcmp(&y[k], &cpu[k], 4) != 0;
        }
    }
    // cuBLAS's order of sums is its own (the emulated one's differs from the CPU's on purpose)
    CHECK(bad == 0 && (blas || bad_bits == 0) && bad_gap == 0,
          "%s matmul, %lld tokens, %s: %d outside the bound, %d differ from imc_cpu_matmul, %d "
          "gap values overwritten",
          imc_type_name(type), (long long)n_tok, tiled ? "tiled GEMM" : "cuBLAS", bad, bad_bits,
          bad_gap);
    // Resident: the device copy, not the host bytes, is multiplied from now on.
    const struct imc_cuda_ctx *c = t->ctx;
    CHECK(c->wc.n == 1 && c->wc.bytes == rb * NO, "%s: %zu weights, %zu bytes resident",
          imc_type_name(type), c->wc.n, c->wc.bytes);
    memset(w, 0, (size_t)(rb * NO));
    float *y2 = malloc((size_t)ny * 4);
    memcpy(y2, ref, (size_t)ny * 4);
    CHECK(t->b->matmul(t->ex, y2, LDY, w, type, NO, NI, x, LDX, n_tok) == IMC_OK, "again");
    CHECK(memcmp(y, y2, (size_t)ny * 4) == 0 && c->wc.n == 1 && c->wc.bytes == rb * NO,
          "%s, %lld tokens: the second matmul did not use the resident weight", imc_type_name(type),
          (long long)n_tok);
    free(y2);
    free(w);
    free(x);
    free(wf);
    free(y);
    free(ref);
    free(cpu);
    tctx_close(t);
    CHECK(cuemu_mem_used() == base, "ctx_free left %llu bytes of device memory",
          cuemu_mem_used() - base);
}

// --matmul q8 (the exec's Q8 mode) on the table: batches of more than mmv_tok tokens of weights
// other than f32 multiply bf16 weights and activations (table.cu batch_mm): bitwise
// imc_cpu_matmul's f32 path on the decoded weights and the activations both rounded to bf16 (the
// bf16 GEMM's products are exact: its bits are the f32 GEMM's on the rounded values,
// tests/cuda/test_gemm); mmv_tok tokens and fewer (mmv), and f32 weights, are the f32 mode's bits.
static void matmul_bf16_case(enum imc_type type, int64_t n_tok, bool tiled)
{
    struct tctx t;
    tctx_open_gemm(&t, tiled);
    imc_exec_set_matmul(t.ex, IMC_MATMUL_Q8);
    enum { NO = 40, NI = 256 };
    struct krng r = {(uint64_t)(type * 77 + n_tok)};
    uint64_t rb = 0;
    uint8_t *w = kt_weights(&r, type, NO, NI, &rb);
    float *x = kalloc_rand(&r, n_tok * NI, 1.0f), *wf = decoded(w, type, NO, NI);
    float *xr = malloc(sizeof(float) * (size_t)(n_tok * NI));
    const size_t ny = (size_t)(n_tok * NO);
    float *y = malloc(sizeof(float) * ny), *want = malloc(sizeof(float) * ny);
    const bool batch = n_tok > mmv_tok(&t) && type != IMC_TYPE_F32;
    for (int64_t i = 0; batch && i < NO * NI; i++) {
        wf[i] = imc_bf16_to_fp32(imc_fp32_to_bf16(wf[i]));
    }
    for (int64_t i = 0; i < n_tok * NI; i++) {
        xr[i] = batch ? imc_bf16_to_fp32(imc_fp32_to_bf16(x[i])) : x[i];
    }
    struct imc_exec *ex = kexec(1); // imc_cpu_matmul's f32 path
    const unsigned long long l0 = cuemu_launch_count();
    CHECK(t.b->matmul(t.ex, y, NO, w, type, NO, NI, x, NI, n_tok) == IMC_OK, "%s bf16 matmul",
          imc_type_name(type));
    // mmv and mmq: one launch; dequantize + GEMM: the activations', the tile's and the GEMM's
    const unsigned long long nl = cuemu_launch_count() - l0;
    const bool mmq = batch && n_tok <= mmq_tok(&t);
    const bool blas = batch && !mmq && !tiled; // the bf16 GEMM through cuBLAS: its own order
    CHECK(!batch || mmq ? nl == 1 : nl == 3, "%s, %lld tokens, --matmul q8: %llu launches (%s)",
          imc_type_name(type), (long long)n_tok, nl,
          mmq     ? "mmq"
          : batch ? "dequantize + GEMM"
                  : "mmv");
    if (batch) {
        CHECK(imc_cpu_matmul(ex, want, NO, wf, IMC_TYPE_F32, NO, NI, xr, NI, n_tok) == IMC_OK,
              "cpu");
    } else { // mmv: the f32 mode's result on a fresh table
        struct tctx f;
        tctx_open_gemm(&f, tiled);
        CHECK(f.b->matmul(f.ex, want, NO, w, type, NO, NI, x, NI, n_tok) == IMC_OK, "f32 mode");
        tctx_close(&f);
    }
    int bad = 0;
    if (blas) { // within the GEMM bound of the reference on the bf16-rounded inputs
        CHECK(imc_ref_matmul(want, NO, wf, IMC_TYPE_F32, NO, NI, xr, NI, n_tok) == IMC_OK, "ref");
        bad = outside_bound(y, want, NO, wf, NO, NI, xr, NI, n_tok);
    }
    for (size_t i = 0; !blas && i < ny; i++) {
        bad += memcmp(&y[i], &want[i], 4) != 0;
    }
    CHECK(bad == 0, "%s, %lld tokens, --matmul q8, %s: %d of %zu outputs differ from %s",
          imc_type_name(type), (long long)n_tok, tiled ? "tiled GEMM" : "cuBLAS", bad, ny,
          blas    ? "the reference on the bf16-rounded inputs by more than the GEMM bound"
          : batch ? "imc_cpu_matmul on the bf16-rounded inputs"
                  : "the f32 mode's");
    imc_exec_free(ex);
    free(w);
    free(x);
    free(wf);
    free(xr);
    free(y);
    free(want);
    tctx_close(&t);
}

static void matmul_cases(void)
{
    static const enum imc_type types[] = {IMC_TYPE_F32, IMC_TYPE_F16, IMC_TYPE_Q8_0, IMC_TYPE_Q4_K,
                                          IMC_TYPE_Q6_K};
    static const int64_t toks[] = {1,
                                   9,
                                   IMC_CUDA_MMV_TOKENS,
                                   IMC_CUDA_MMV_TOKENS + 1,
                                   70,
                                   IMC_CUDA_MMQ_TOKENS,
                                   IMC_CUDA_MMQ_TOKENS + 1};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        for (size_t j = 0; j < sizeof(toks) / sizeof(toks[0]); j++) {
            for (int tiled = 0; tiled < 2; tiled++) {
                matmul_case(types[i], toks[j], tiled);
                matmul_bf16_case(types[i], toks[j], tiled);
            }
        }
    }
}

// matmul_group on the table (an MoE layer's experts): 253 experts' slices of one q4_K tensor, rows
// in the table's memory at strides ldx, ldy like the engine's dispatched rows. f32 mode: 250
// with 0 .. mmv_tok tokens and three with 1 .. 3 more (the batch path); --matmul q8 (q8): 200 with
// 0 .. mmv_tok, 51 past it up to 166 tokens (mmq) and two past mmq_tok (the batch path). Bitwise
// each expert's matmul alone on the same table; the gaps between y's rows keep their values; the
// experts of up to mmv_tok tokens take ceil(n / IMC_CUDA_MMV_GROUP_MAX) launches in all
// (mmv_group), those of mmq likewise (mmq_group), where one matmul each took one or more.
static void matmul_group_case(bool q8)
{
    enum { NE = 253, NO = 64, NI = 256, LDX = NI + 4, LDY = NO + 3 };
    struct tctx t;
    tctx_open(&t);
    if (q8) {
        imc_exec_set_matmul(t.ex, IMC_MATMUL_Q8);
    }
    const int64_t mt = mmv_tok(&t), mq = q8 ? mmq_tok(&t) : mt;
    struct krng r = {31};
    uint64_t rb = 0;
    uint8_t *w = kt_weights(&r, IMC_TYPE_Q4_K, NE * NO, NI, &rb);
    int64_t first[NE + 1] = {0};
    for (int e = 0; e < NE; e++) {
        const int64_t small_e = q8 ? 200 : 250, mid_e = q8 ? 251 : 250;
        const int64_t cnt = e < small_e ? (int64_t)(krng_next(&r) % (uint64_t)(mt + 1))
                            : e < mid_e ? mt + 1 + (e - small_e) * 3
                                        : mq + 1 + (e - mid_e);
        first[e + 1] = first[e] + cnt;
    }
    const int64_t rows = first[NE];
    float *x = kalloc_rand(&r, rows * LDX, 1.0f),
          *y0 = malloc(sizeof(float) * (size_t)(rows * LDY));
    for (int64_t i = 0; i < rows * LDY; i++) {
        y0[i] = -7.0f;
    }
    const size_t bx = sizeof(float) * (size_t)(rows * LDX),
                 by = sizeof(float) * (size_t)(rows * LDY);
    float *xd = t.b->buf_alloc(t.ctx, bx), *ya = t.b->buf_alloc(t.ctx, by),
          *yb = t.b->buf_alloc(t.ctx, by);
    CHECK(xd && ya && yb && t.b->upload(t.ex, xd, x, bx) == IMC_OK &&
              t.b->upload(t.ex, ya, y0, by) == IMC_OK && t.b->upload(t.ex, yb, y0, by) == IMC_OK,
          "matmul_group: set-up");
    struct imc_mm mm[NE];
    int64_t k = 0, small = 0, mid = 0;
    for (int e = 0; e < NE; e++) {
        const int64_t cnt = first[e + 1] - first[e];
        if (cnt > 0) {
            mm[k++] = (struct imc_mm){ya + first[e] * LDY, LDY, w + (size_t)e * NO * rb,
                                      IMC_TYPE_Q4_K,       NO,  NI,
                                      xd + first[e] * LDX, LDX, cnt};
            small += cnt <= mt;
            mid += cnt > mt && cnt <= mq;
        }
    }
    const unsigned long long l0 = cuemu_launch_count();
    CHECK(t.b->matmul_group(t.ex, mm, k) == IMC_OK, "matmul_group");
    const unsigned long long l1 = cuemu_launch_count();
    unsigned long long big = 0; // the launches of the experts of more than mq tokens, alone
    for (int64_t i = 0; i < k; i++) {
        const unsigned long long b0 = cuemu_launch_count();
        CHECK(t.b->matmul(t.ex, mm[i].y - ya + yb, LDY, mm[i].w, mm[i].type, NO, NI, mm[i].x, LDX,
                          mm[i].n_tok) == IMC_OK,
              "matmul of expert %lld alone", (long long)i);
        big += mm[i].n_tok > mq ? cuemu_launch_count() - b0 : 0;
    }
    const unsigned long long l2 = cuemu_launch_count();
    float *ga = malloc(by), *gb = malloc(by);
    CHECK(t.b->download(t.ex, ga, ya, by) == IMC_OK && t.b->download(t.ex, gb, yb, by) == IMC_OK,
          "matmul_group: download");
    int bad = 0, gap = 0;
    for (int64_t i = 0; i < rows * LDY; i++) {
        bad += memcmp(&ga[i], &gb[i], 4) != 0;
        gap += i % LDY >= NO && ga[i] != -7.0f;
    }
    const unsigned long long want =
        big + (unsigned long long)((small + IMC_CUDA_MMV_GROUP_MAX - 1) / IMC_CUDA_MMV_GROUP_MAX) +
        (unsigned long long)((mid + IMC_CUDA_MMV_GROUP_MAX - 1) / IMC_CUDA_MMV_GROUP_MAX);
    CHECK(bad == 0 && gap == 0,
          "matmul_group of %lld experts: %d outputs differ from their "
          "matmuls alone, %d gap values overwritten",
          (long long)k, bad, gap);
    CHECK(l1 - l0 == want,
          "matmul_group%s of %lld experts (%lld of up to %lld tokens, %lld of mmq): %llu "
          "launches, want %llu (the matmuls alone: %llu)",
          q8 ? " --matmul q8" : "", (long long)k, (long long)small, (long long)mt, (long long)mid,
          l1 - l0, want, l2 - l1);
    printf("matmul_group%s: %lld experts (%lld of up to %lld tokens, %lld of mmq) in %llu "
           "launches, one by one %llu; bitwise\n",
           q8 ? " --matmul q8" : "", (long long)k, (long long)small, (long long)mt, (long long)mid,
           l1 - l0, l2 - l1);
    t.b->buf_free(t.ctx, xd);
    t.b->buf_free(t.ctx, ya);
    t.b->buf_free(t.ctx, yb);
    free(w);
    free(x);
    free(y0);
    free(ga);
    free(gb);
    tctx_close(&t);
}

// Matmul of nt tokens on weight w of interleaved type ty (no x n rows) on the table: for a type
// with a plain form bitwise the table's matmul on the plain rows wp it re-lays to (whose
// arithmetic matmul_case checks); for a row form within outside_bound of imc_ref_matmul on the
// CPU's decoding of w, and above mmv_tok tokens (dequantize + GEMM) bitwise imc_cpu_matmul.
static void interleaved_matmul(struct tctx *t, struct krng *r, enum imc_type ty, const uint8_t *w,
                               const uint8_t *wp, int64_t no, int64_t ni, int64_t nt)
{
    const enum imc_type pt = imc_type_unweaved(ty);
    const char *name = imc_type_name((uint32_t)ty);
    const size_t ny = (size_t)(nt * no);
    float *x = kalloc_rand(r, nt * ni, 1.0f), *y = malloc(sizeof(float) * ny),
          *yp = malloc(sizeof(float) * ny);
    CHECK(t->b->matmul(t->ex, y, no, w, ty, no, ni, x, ni, nt) == IMC_OK, "%s, %lld tokens: matmul",
          name, (long long)nt);
    if (pt != ty) {
        CHECK(t->b->matmul(t->ex, yp, no, wp, pt, no, ni, x, ni, nt) == IMC_OK &&
                  memcmp(y, yp, sizeof(float) * ny) == 0,
              "%s, %lld tokens: matmul differs from the plain rows'", name, (long long)nt);
    } else {
        float *wf = decoded(w, ty, no, ni), *cpu = malloc(sizeof(float) * ny);
        CHECK(imc_ref_matmul(yp, no, wf, IMC_TYPE_F32, no, ni, x, ni, nt) == IMC_OK &&
                  imc_cpu_matmul(t->ex, cpu, no, w, ty, no, ni, x, ni, nt) == IMC_OK,
              "%s: the references", name);
        const int bad = outside_bound(y, yp, no, wf, no, ni, x, ni, nt);
        const bool bits = nt <= mmv_tok(t) || memcmp(y, cpu, sizeof(float) * ny) == 0;
        CHECK(bad == 0 && bits, "%s, %lld tokens (row form): %d outside the bound, %s", name,
              (long long)nt, bad, bits ? "" : "not bitwise imc_cpu_matmul");
        free(wf);
        free(cpu);
    }
    free(x);
    free(y);
    free(yp);
}

// The 30 interleaved types on the table (types.h imc_type_unweave): matmul of 4 (mmv) and 70
// tokens (interleaved_matmul), get_rows bitwise imc_ref_get_rows on the interleaved rows (the
// CPU's interleaved decoders: the device's decoders of plain rows and row forms give their
// bits); a weight that is not whole groups is refused (IMC_ERR_ARG, logged).
static void interleaved(void)
{
    struct tctx t;
    struct krng r = {17};
    enum { NO = 48, NI = 256 };
    int n_types = 0, n_rowform = 0;
    for (uint32_t id = 0; id < IMC_TYPE_MAX_ID; id++) {
        const struct imc_type_traits *tr = imc_type_traits(id);
        if (!tr || tr->rows == 1) {
            continue;
        }
        // fresh: weights are keyed by host address, and freed ones come back; the tiled GEMM,
        // whose bits are imc_cpu_matmul's, so that a row form's decoding is checked to the bit
        tctx_open_gemm(&t, true);
        const enum imc_type ty = (enum imc_type)id;
        const char *name = imc_type_name(id);
        n_types++;
        n_rowform += imc_type_unweaved(ty) == ty;
        uint64_t rb = 0;
        imc_type_row_bytes(id, NI, &rb);
        uint8_t *w = kalloc_woven(&r, ty, NO, NI, NULL), *wp = malloc((size_t)(rb * NO));
        CHECK(imc_type_unweave(ty, w, NO, NI, wp), "%s: unweave", name);
        CHECK(t.b->supports(IMC_OP_MATMUL, ty) && t.b->supports(IMC_OP_GET_ROWS, ty),
              "%s: not supported", name);
        interleaved_matmul(&t, &r, ty, w, wp, NO, NI, 4);
        interleaved_matmul(&t, &r, ty, w, wp, NO, NI, 70);
        // 9, 9, 10: one group re-laid once for three rows (two of them the same)
        const int32_t ids[6] = {39, 0, 9, 9, 10, 17};
        float a[6 * NI], b[6 * NI];
        CHECK(t.b->get_rows(t.ex, a, w, ty, NI, ids, 6) == IMC_OK &&
                  imc_ref_get_rows(b, w, ty, NI, ids, 6) == IMC_OK && memcmp(a, b, sizeof(a)) == 0,
              "%s: get_rows differs from imc_ref_get_rows", name);
        free(w);
        free(wp);
        tctx_close(&t);
    }
    CHECK(n_types == 30 && n_rowform == 7, "%d interleaved types, %d as row forms", n_types,
          n_rowform);
    // 36 rows of q4_0_r8: not whole groups of 8
    tctx_open(&t);
    uint8_t *w = kalloc_woven(&r, IMC_TYPE_Q4_0_R8, 40, NI, NULL);
    float x[NI], y[36];
    for (int j = 0; j < NI; j++) {
        x[j] = 1.0f;
    }
    struct logcap lc;
    logcap_start(&lc);
    const enum imc_status st = t.b->matmul(t.ex, y, 36, w, IMC_TYPE_Q4_0_R8, 36, NI, x, NI, 1);
    logcap_stop();
    CHECK(st == IMC_ERR_ARG && strstr(lc.text, "not whole groups of interleaved rows"),
          "36 rows of q4_0_r8: %s, %s", imc_status_str(st), lc.text);
    free(w);
    tctx_close(&t);
}

// move_rows with its index array in the table's memory (the engine's expert groups): a gather
// and a scatter from and to rows there equal the reference; indexing host rows from such an
// array is refused (IMC_ERR_INTERNAL, logged), since the table does not read it on the host.
static void device_index(void)
{
    struct tctx t;
    tctx_open(&t);
    struct krng r = {9};
    enum { NR = 12, D = 40, NI = 7 };
    const int32_t idx[NI] = {11, 0, 3, 3, 7, 10, 1}, sidx[NI] = {2, 4, 6, 8, 10, 1, 3};
    float *x = kalloc_rand(&r, NR * D, 1.0f), *want = kalloc_rand(&r, NR * D, 1.0f);
    float *got = malloc(sizeof(float) * NR * D), *hy = malloc(sizeof(float) * NR * D);
    memcpy(hy, want, sizeof(float) * NR * D);
    imc_ref_move_rows(want, sidx, x, idx, NI, D);
    const size_t rows = sizeof(float) * NR * D;
    float *xd = t.b->buf_alloc(t.ctx, rows), *yd = t.b->buf_alloc(t.ctx, rows);
    int32_t *id = t.b->buf_alloc(t.ctx, sizeof(idx)), *sd = t.b->buf_alloc(t.ctx, sizeof(sidx));
    CHECK(xd && yd && id && sd && t.b->upload(t.ex, xd, x, rows) == IMC_OK &&
              t.b->upload(t.ex, yd, hy, rows) == IMC_OK &&
              t.b->upload(t.ex, id, idx, sizeof(idx)) == IMC_OK &&
              t.b->upload(t.ex, sd, sidx, sizeof(sidx)) == IMC_OK,
          "device index: set-up");
    CHECK(t.b->move_rows(t.ex, yd, sd, xd, id, NI, D) == IMC_OK &&
              t.b->download(t.ex, got, yd, rows) == IMC_OK && memcmp(got, want, rows) == 0,
          "device index: gather + scatter differs from imc_ref_move_rows");
    struct logcap lc;
    logcap_start(&lc);
    const enum imc_status st = t.b->move_rows(t.ex, yd, NULL, x, id, NI, D);
    logcap_stop();
    CHECK(st == IMC_ERR_INTERNAL && strstr(lc.text, "indexes host rows"),
          "device index over host rows: %s, %s", imc_status_str(st), lc.text);
    t.b->buf_free(t.ctx, xd);
    t.b->buf_free(t.ctx, yd);
    t.b->buf_free(t.ctx, id);
    t.b->buf_free(t.ctx, sd);
    free(x);
    free(want);
    free(got);
    free(hy);
    tctx_close(&t);
}

// The table's copies since the last call with *seen (bytes up and down), and *seen updated.
struct seen {
    size_t up, down;
};
static void traffic_since(const struct tctx *t, struct seen *seen, size_t *up, size_t *down)
{
    size_t u, d, nu, nd;
    tcuda_emu_traffic(t->ctx, &u, &d, &nu, &nd);
    *up = u - seen->up;
    *down = d - seen->down;
    *seen = (struct seen){u, d};
}

// move_rows with host rows read or written by host indices (the expert shards' rows when they go
// through the host): bitwise imc_ref_move_rows, and only the rows moved cross the bus (NI of the
// NR rows the indices span, plus the index the device reads); host rows to host rows never touch
// the device.
static void host_index(void)
{
    struct tctx t;
    tctx_open(&t);
    struct krng r = {10};
    enum { NR = 12, D = 40, NI = 7 };
    const int32_t idx[NI] = {11, 0, 3, 3, 7, 10, 1}, sidx[NI] = {2, 4, 6, 8, 10, 1, 11};
    const size_t rows = sizeof(float) * NR * D, moved = sizeof(float) * NI * D;
    float *x = kalloc_rand(&r, NR * D, 1.0f), *y0 = kalloc_rand(&r, NR * D, 1.0f);
    float *want = malloc(rows), *got = malloc(rows), *hy = malloc(rows);
    float *xd = t.b->buf_alloc(t.ctx, rows), *yd = t.b->buf_alloc(t.ctx, rows);
    CHECK(xd && yd && t.b->upload(t.ex, xd, x, rows) == IMC_OK, "host index: set-up");
    size_t up, down;
    struct seen seen = {0, 0};
    // gather from host rows into the table's memory
    memcpy(want, y0, rows);
    imc_ref_move_rows(want, NULL, x, idx, NI, D);
    traffic_since(&t, &seen, &up, &down);
    CHECK(t.b->upload(t.ex, yd, y0, rows) == IMC_OK &&
              t.b->move_rows(t.ex, yd, NULL, x, idx, NI, D) == IMC_OK &&
              t.b->download(t.ex, got, yd, rows) == IMC_OK && memcmp(got, want, rows) == 0,
          "host index: a gather of host rows into the table's differs from imc_ref_move_rows");
    traffic_since(&t, &seen, &up, &down);
    CHECK(up == rows + moved && down == rows,
          "host index: a gather of %d host rows: %zu B up "
          "(want %zu: the set-up's %zu and the rows), %zu B down (want %zu)",
          NI, up, rows + moved, rows, down, rows);
    // scatter from the table's memory (host index) into host rows
    memcpy(want, y0, rows);
    imc_ref_move_rows(want, sidx, x, idx, NI, D);
    memcpy(hy, y0, rows);
    traffic_since(&t, &seen, &up, &down);
    CHECK(t.b->move_rows(t.ex, hy, sidx, xd, idx, NI, D) == IMC_OK && memcmp(hy, want, rows) == 0,
          "host index: a scatter into host rows differs from imc_ref_move_rows");
    traffic_since(&t, &seen, &up, &down);
    CHECK(up == sizeof(idx) && down == moved,
          "host index: a scatter into %d host rows: %zu B up "
          "(want the index's %zu), %zu B down (want %zu)",
          NI, up, sizeof(idx), down, moved);
    // host rows to host rows: gather, scatter, both, neither
    for (int mode = 0; mode < 4; mode++) {
        const int32_t *si = mode & 1 ? idx : NULL, *di = mode & 2 ? sidx : NULL;
        memcpy(want, y0, rows);
        memcpy(hy, y0, rows);
        imc_ref_move_rows(want, di, x, si, NI, D);
        traffic_since(&t, &seen, &up, &down);
        CHECK(t.b->move_rows(t.ex, hy, di, x, si, NI, D) == IMC_OK && memcmp(hy, want, rows) == 0,
              "host index: host rows to host rows (mode %d) differ from imc_ref_move_rows", mode);
        traffic_since(&t, &seen, &up, &down);
        CHECK(up == 0 && down == 0,
              "host index: host rows to host rows (mode %d): %zu B up, %zu "
              "B down",
              mode, up, down);
    }
    t.b->buf_free(t.ctx, xd);
    t.b->buf_free(t.ctx, yd);
    free(x);
    free(y0);
    free(want);
    free(got);
    free(hy);
    tctx_close(&t);
}

static void rows_and_swiglu(void)
{
    struct tctx t;
    tctx_open(&t);
    struct krng r = {7};
    uint64_t rb = 0;
    uint8_t *w = kt_weights(&r, IMC_TYPE_Q4_K, 50, 256, &rb);
    const int32_t ids[5] = {49, 0, 7, 7, 23};
    float a[5 * 256], b[5 * 256];
    CHECK(t.b->get_rows(t.ex, a, w, IMC_TYPE_Q4_K, 256, ids, 5) == IMC_OK, "get_rows");
    CHECK(imc_ref_get_rows(b, w, IMC_TYPE_Q4_K, 256, ids, 5) == IMC_OK, "ref get_rows");
    CHECK(memcmp(a, b, sizeof(a)) == 0, "get_rows differs from imc_ref_get_rows");
    free(w);
    enum { R = 6, N = 33, LD = 40 };
    float *g = kalloc_rand(&r, R * LD, 1.0f), *u = kalloc_rand(&r, R * N, 1.0f);
    float *g0 = kdup(g, R * LD), *want = kdup(g, R * LD);
    imc_ref_swiglu(want, LD, g0, LD, u, N, R, N);
    t.b->swiglu(t.ex, g, LD, g, LD, u, N, R, N);
    int gaps = 0;
    for (int i = 0; i < R; i++) {
        for (int j = N; j < LD && i < R - 1; j++) {
            gaps += memcmp(&g[i * LD + j], &g0[i * LD + j], 4) != 0;
        }
    }
    CHECK(gaps == 0, "swiglu: %d gap values changed", gaps);
    CHECK(kcompare("swiglu out = gate", g, want, R * LD, TOL_SWIGLU_ATOL, TOL_SWIGLU_RTOL) == 0,
          "swiglu through the table");
    free(g);
    free(u);
    free(g0);
    free(want);
    tctx_close(&t);
}

static void exhausted(const char *dir)
{
    const unsigned long long base = cuemu_mem_used();
    struct tctx t;
    tctx_open(&t);
    struct krng r = {11};
    uint64_t rb = 0;
    uint8_t *w = kt_weights(&r, IMC_TYPE_Q8_0, 40, 256, &rb);
    float *x = kalloc_rand(&r, 256, 1.0f), y[40];
    char lim[32];
    snprintf(lim, sizeof(lim), "%llu", base + (unsigned long long)(rb * 40) - 1);
    setenv("IMC_CUEMU_MEM_LIMIT", lim, 1);
    struct logcap lc;
    logcap_start(&lc);
    const enum imc_status st = t.b->matmul(t.ex, y, 40, w, IMC_TYPE_Q8_0, 40, 256, x, 256, 1);
    logcap_stop();
    char want[128];
    snprintf(want, sizeof(want), "device memory exhausted: weight q8_0 [40 x 256] needs %llu bytes",
             (unsigned long long)(rb * 40));
    CHECK(st == IMC_ERR_NOMEM && strstr(lc.text, want), "matmul over the limit: %s, log: %s",
          imc_status_str(st), lc.text);
    printf("over the limit, the log says:\n%s", lc.text);
    snprintf(lim, sizeof(lim), "%llu", base + 1);
    setenv("IMC_CUEMU_MEM_LIMIT", lim, 1);
    float v[4 * 8];
    for (int i = 0; i < 32; i++) {
        v[i] = 1.0f;
    }
    logcap_start(&lc);
    t.b->rmsnorm(t.ex, v, v, NULL, 4, 8, 1e-6f);
    logcap_stop();
    CHECK(isnan(v[0]) && isnan(v[31]) && strstr(lc.text, "the activations of rmsnorm need 128"),
          "rmsnorm over the limit: %g, log: %s", v[0], lc.text);
    unsetenv("IMC_CUEMU_MEM_LIMIT");
    tctx_close(&t);
    free(w);
    free(x);

    // An engine on the table: the forward pass stops with the tensor named.
    struct tmodel tm;
    if (tmodel_open(&tm, dir, "llama-tiny") != 0) {
        CHECK(0, "preset llama-tiny");
        return;
    }
    struct imc_engine_opts o = imc_engine_opts_default();
    o.backend = tcuda_backend_emu();
    int32_t tok[12];
    ttokens(tok, 12, tm.m->hp.n_vocab, 5);
    // room for the engine's first arena block (1 MiB of the table's buffers, which count
    // against the cap as cudaMalloc does) and 64 KiB: the weights do not fit
    snprintf(lim, sizeof(lim), "%llu", base + (1u << 20) + 64 * 1024);
    setenv("IMC_CUEMU_MEM_LIMIT", lim, 1);
    struct imc_engine *e = NULL;
    float *lg = malloc((size_t)(12 * tm.m->hp.n_vocab) * sizeof(float));
    logcap_start(&lc);
    enum imc_status est = imc_engine_init(&e, tm.m, &o);
    if (est == IMC_OK) {
        est = imc_engine_forward(e, tok, 12, lg);
    }
    logcap_stop();
    imc_engine_free(e);
    unsetenv("IMC_CUEMU_MEM_LIMIT");
    CHECK(est == IMC_ERR_NOMEM && strstr(lc.text, "device memory exhausted") &&
              strstr(lc.text, "matmul of 'blk.") && strstr(lc.text, "on backend cuda"),
          "engine over the limit: %s, log: %s", imc_status_str(est), lc.text);
    printf("engine over the limit, the log says:\n%s", lc.text);
    CHECK(cuemu_mem_used() == base, "engine left %llu bytes of device memory",
          cuemu_mem_used() - base);
    // no room for the activations' arena (its one block, worker/engine_mem.h): the first call
    // says so, with the tokens and the bytes
    snprintf(lim, sizeof(lim), "%llu", base + 512 * 1024);
    setenv("IMC_CUEMU_MEM_LIMIT", lim, 1);
    e = NULL;
    logcap_start(&lc);
    est = imc_engine_init(&e, tm.m, &o);
    if (est == IMC_OK) {
        est = imc_engine_forward(e, tok, 12, lg);
    }
    logcap_stop();
    imc_engine_free(e);
    unsetenv("IMC_CUEMU_MEM_LIMIT");
    CHECK(est == IMC_ERR_NOMEM &&
              strstr(lc.text, "engine: out of cuda memory for the activations of 12 tokens"),
          "engine without room for its activations: %s, log: %s", imc_status_str(est), lc.text);
    CHECK(cuemu_mem_used() == base, "engine left %llu bytes of device memory",
          cuemu_mem_used() - base);
    free(lg);
    tmodel_close(&tm);
}

// Keeps the device memory line of ctx_free (INFO) in user (512 bytes).
static void mem_line_sink(enum imc_log_level level, const char *line, void *user)
{
    if (level == IMC_LOG_INFO && strstr(line, "device memory at its most")) {
        snprintf((char *)user, 512, "%s", line);
    }
}

// ctx_free's line of device memory: the table's most, and what the device holds besides it
// (cudaMemGetInfo; in the emulator the other emulated allocations, here a 1 MiB block the test
// holds), the figure `imc plan --gpu-reserve` allows for.
static void mem_line(void)
{
    struct tctx t;
    tctx_open(&t);
    enum { NO = 1024, NI = 1024 }; // 576 KiB of q4_K: not counted besides
    struct krng r = {5};
    uint64_t rb = 0;
    uint8_t *w = kt_weights(&r, IMC_TYPE_Q4_K, NO, NI, &rb);
    float *x = kalloc_rand(&r, NI, 1.0f), *y = malloc(NO * sizeof(float));
    CHECK(t.b->matmul(t.ex, y, NO, w, IMC_TYPE_Q4_K, NO, NI, x, NI, 1) == IMC_OK, "matmul");
    void *extra = NULL;
    CHECK(imc_cuemu_dev_alloc((size_t)1 << 20, &extra) == IMC_OK, "1 MiB besides the table");
    char line[512] = "";
    const enum imc_log_level lv = imc_log_get_level();
    imc_log_set_level(IMC_LOG_INFO);
    imc_log_set_sink(mem_line_sink, line);
    tctx_close(&t);
    imc_log_set_sink(NULL, NULL);
    imc_log_set_level(lv);
    CHECK(strstr(line, "weights 0.6 MiB") && strstr(line, "the device holds 1.0 MiB besides"),
          "ctx_free's line: %s", line);
    imc_cuemu_dev_free(extra);
    free(w);
    free(x);
    free(y);
}

// ctx_new with var=val refuses with one message naming var and the range; var unset after.
static void env_refused(const char *var, const char *val, const char *range)
{
    setenv(var, val, 1);
    void *ctx = NULL;
    struct logcap lc;
    logcap_start(&lc);
    const enum imc_status st = tcuda_backend_emu()->ctx_new(&ctx);
    logcap_stop();
    unsetenv(var);
    CHECK(st == IMC_ERR_ARG && !ctx && lc.n_err == 1 && strstr(lc.text, var) &&
              strstr(lc.text, range),
          "%s=%s: %s, log: %s", var, val, imc_status_str(st), lc.text);
}

// IMC_CUDA_MMV_TOKENS moves the table's line between mmv and the batch matmul; bad values are
// refused by ctx_new with one message naming the variable.
static void mmv_tokens_env(void)
{
    setenv("IMC_CUDA_MMV_TOKENS", "4", 1);
    struct tctx t;
    tctx_open(&t);
    CHECK(mmv_tok(&t) == 4, "IMC_CUDA_MMV_TOKENS=4: the table's line is %lld",
          (long long)mmv_tok(&t));
    tctx_close(&t);
    matmul_bf16_case(IMC_TYPE_Q4_K, 4, true); // mmv: the f32 mode's bits
    matmul_bf16_case(IMC_TYPE_Q4_K, 5, true); // the bf16 GEMM's bits
    static const char *const bad[] = {"0", "65", "sixteen", "8x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_refused("IMC_CUDA_MMV_TOKENS", bad[i], "1..64");
    }
}

// IMC_CUDA_MMQ_TOKENS moves the line between mmq and the batch matmul (16: a bf16 matmul of 17
// tokens dequantizes + GEMMs, 3 launches, the same bits in the emulator); 0 is allowed (no mmq);
// bad values are refused by ctx_new with one message naming the variable.
static void mmq_tokens_env(void)
{
    setenv("IMC_CUDA_MMQ_TOKENS", "16", 1);
    struct tctx t;
    tctx_open(&t);
    CHECK(mmq_tok(&t) == 16, "IMC_CUDA_MMQ_TOKENS=16: the table's line is %lld",
          (long long)mmq_tok(&t));
    tctx_close(&t);
    matmul_bf16_case(IMC_TYPE_Q4_K, 17, false); // the launch count checks the path
    setenv("IMC_CUDA_MMQ_TOKENS", "0", 1);
    tctx_open(&t);
    CHECK(mmq_tok(&t) == 0, "IMC_CUDA_MMQ_TOKENS=0 accepted");
    tctx_close(&t);
    static const char *const bad[] = {"-1", "1048577", "many"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env_refused("IMC_CUDA_MMQ_TOKENS", bad[i], "0..1048576");
    }
}

int main(void)
{
    char dir[256];
    tmkdir(dir, sizeof(dir), "table");
    matmul_cases();
    matmul_group_case(false);
    matmul_group_case(true);
    mmv_tokens_env();
    mmq_tokens_env();
    mem_line();
    rows_and_swiglu();
    device_index();
    host_index();
    interleaved();
    exhausted(dir);
    const char *made[1] = {"llama-tiny"};
    trmdir(dir, made, 1);
    return check_summary();
}
