/*
 * tests/cuda/test_mmq: the tensor-core batch matmul on quantized weights (kernels/cuda/mmq.cu)
 * for every type with a device decoder, in the emulator (every thread order) and on a GPU when
 * there is one.
 *
 * Bitwise (emulator): every output is the bits of a scalar model, one fmaf chain over
 * i = 0 .. n_in - 1 from +0 of bf16(w_i)·bf16(x_i), w_i the CPU decoder's value (imc_type_decode,
 * which the device decoders match bit for bit: test_dequant) and bf16() round to nearest even
 * (imc_fp32_to_bf16): the arithmetic of the table's bf16 batch path (dequantize to bf16 + GEMM),
 * which no tiling of rows, tokens or columns, no padding of a tile and no job of a group may
 * change.
 * Against the exact product of the unrounded values (double sums), per output:
 *     |y - Σ_i w_i·x_i| <= (2^-7 + 2^-16 + (n_in + 1)·2^-24)·Σ_i |w_i·x_i|
 * (each bf16 rounding is at most 2^-8 relative, so a product is off by at most
 * 2·2^-8 + 2^-16 of itself; the chain adds γ(n_in)). This checks the model itself.
 * Device: the tensor cores add the exact products in their own order; published measurements
 * (Fasi et al., 2021, on V100 .. A100) find f32 sums that truncate rather than round, so the
 * bound against the model's inputs in double is 2·(n_in + 16)·2^-24·Σ|bf16(w)·bf16(x)| (two ulp
 * per addition), and two runs give the same bits.
 * Shapes cross the kernel's tiles of 64 rows and 64 tokens and its steps of 64 columns with a
 * part of each at the end. Groups: jobs with 1 .. 130 tokens at row strides, each bitwise the
 * job alone, the gaps between output rows untouched; 121 jobs in two launches. Refused with one
 * message and nothing written: 0 tokens, ldx < n_in, a row that is not whole blocks, a type
 * without a kernel.
 */
#include <math.h>

#include "../logcap.h"
#include "qtest.h"

struct mcase {
    int64_t n_out, n_in;
    int n_tok;
};

static float bf16(float v)
{
    return imc_bf16_to_fp32(imc_fp32_to_bf16(v));
}

// The model's bits (out) and, per output, the exact product of the unrounded values with its
// bound (ref, tol) and the device's bound (dtol) around the product of the rounded ones (dref).
static void model(enum imc_type type, const uint8_t *w, const float *x, struct mcase c, float *out,
                  double *ref, double *tol, double *dref, double *dtol)
{
    const struct imc_type_traits *tr = imc_type_traits((uint32_t)type);
    float *wr = malloc((size_t)c.n_in * sizeof(float));
    for (int64_t o = 0; wr && o < c.n_out; o++) {
        imc_type_decode(tr, w, o, c.n_in, 0, c.n_in, wr);
        for (int t = 0; t < c.n_tok; t++) {
            const float *xt = x + t * c.n_in;
            float acc = 0.0f;
            double s = 0, sa = 0, sr = 0, sra = 0;
            for (int64_t i = 0; i < c.n_in; i++) {
                const float wb = bf16(wr[i]), xb = bf16(xt[i]);
                acc = fmaf(wb, xb, acc);
                s += (double)wr[i] * xt[i];
                sa += fabs((double)wr[i] * xt[i]);
                sr += (double)wb * xb;
                sra += fabs((double)wb * xb);
            }
            const int64_t k = t * c.n_out + o;
            out[k] = acc;
            ref[k] = s;
            tol[k] = (0x1p-7 + 0x1p-16 + (double)(c.n_in + 1) * 0x1p-24) * sa;
            dref[k] = sr;
            dtol[k] = 2.0 * (double)(c.n_in + 16) * 0x1p-24 * sra;
        }
    }
    free(wr);
}

// jobs[0 .. nj) on b: weights w (nj slices of n_out rows, rb bytes each), job j's x_j rows at
// x + first[j]·ldx, outputs at y + first[j]·ldy (host arrays, y's gaps as given); y brought back
// whole. IMC_OK or the failure.
static enum imc_status run_jobs(const struct kt_backend *b, enum imc_type type, const uint8_t *w,
                                uint64_t rb, const float *x, float *y, int nj, const int64_t *first,
                                int64_t n_out, int64_t n_in, int64_t ldx, int64_t ldy)
{
    const int64_t rows = first[nj];
    const size_t bw = (size_t)rb * (size_t)(n_out * nj), bx = (size_t)(rows * ldx) * sizeof(float),
                 by = (size_t)(rows * ldy) * sizeof(float);
    void *dw = kt_upload(b, w, bw), *dx = kt_upload(b, x, bx), *dy = kt_upload(b, y, by);
    struct imc_cuda_mmv_job *jobs = malloc((size_t)nj * sizeof(*jobs));
    enum imc_status st = IMC_ERR_NOMEM;
    if (dw && dx && dy && jobs) {
        for (int j = 0; j < nj; j++) {
            jobs[j] =
                (struct imc_cuda_mmv_job){(const uint8_t *)dw + (size_t)rb * (size_t)(j * n_out),
                                          (const float *)dx + first[j] * ldx,
                                          (float *)dy + first[j] * ldy, first[j + 1] - first[j]};
        }
        st = b->mmq_group(NULL, type, jobs, nj, n_out, n_in, ldx, ldy);
        st = st == IMC_OK ? kt_download(b, y, dy, by) : st;
    }
    free(jobs);
    b->dev_free(dy);
    b->dev_free(dx);
    b->dev_free(dw);
    return st;
}

// One case of one type as a single job: every emulator order bitwise the model (and the
// unrounded product within its bound); the device within its bound, twice the same bits.
static void run_case(const struct kt_backend *dev, enum imc_type type, struct mcase c,
                     uint64_t seed)
{
    struct krng r = {seed};
    uint64_t rb = 0;
    const int64_t ny = c.n_tok * c.n_out, first[2] = {0, c.n_tok};
    uint8_t *w = kt_weights(&r, type, c.n_out, c.n_in, &rb);
    float *x = kt_acts(&r, c.n_tok * c.n_in);
    float *y = malloc((size_t)ny * sizeof(float)), *y2 = malloc((size_t)ny * sizeof(float));
    float *want = malloc((size_t)ny * sizeof(float));
    double *ref = malloc((size_t)ny * sizeof(double) * 4);
    char what[96];
    if (!w || !x || !y || !y2 || !want || !ref) {
        CHECK(0, "allocation");
        goto out;
    }
    double *tol = ref + ny, *dref = ref + 2 * ny, *dtol = ref + 3 * ny;
    model(type, w, x, c, want, ref, tol, dref, dtol);
    snprintf(what, sizeof(what), "%s %lld x %lld, %d tokens", imc_type_name(type),
             (long long)c.n_out, (long long)c.n_in, c.n_tok);
    for (int o = 0; o < CUEMU_ORDER_COUNT; o++) {
        cuemu_set_order(kt_orders[o], 11u + (unsigned)o);
        memset(y, 0, (size_t)ny * sizeof(float));
        const enum imc_status st =
            run_jobs(&kt_emu, type, w, rb, x, y, 1, first, c.n_out, c.n_in, c.n_in, c.n_out);
        CHECK(st == IMC_OK && kt_cmp_bits32(what, y, want, ny) == 0, "emu %s %s: the model's bits",
              cuemu_order_name(kt_orders[o]), what);
        if (o == 0) {
            CHECK(kt_outside(what, y, ref, tol, ny) == 0,
                  "emu %s: the unrounded product within "
                  "the bf16 bound",
                  what);
        }
    }
    if (dev) {
        memset(y, 0, (size_t)ny * sizeof(float));
        memset(y2, 0, (size_t)ny * sizeof(float));
        enum imc_status st =
            run_jobs(dev, type, w, rb, x, y, 1, first, c.n_out, c.n_in, c.n_in, c.n_out);
        st = st == IMC_OK
                 ? run_jobs(dev, type, w, rb, x, y2, 1, first, c.n_out, c.n_in, c.n_in, c.n_out)
                 : st;
        CHECK(st == IMC_OK && kt_outside(what, y, dref, dtol, ny) == 0, "gpu %s: within bound",
              what);
        CHECK(st == IMC_OK && kt_cmp_bits32(what, y, y2, ny) == 0, "gpu %s: two runs, one result",
              what);
    }
out:
    free(w);
    free(x);
    free(y);
    free(y2);
    free(want);
    free(ref);
}

// A group of jobs with the given token counts (nj of them, rows at strides ldx = n_in + 5 and
// ldy = n_out + 3) on b: each job's outputs bitwise those of the job alone, the gaps untouched;
// the emulator's launches counted.
static void run_group(const struct kt_backend *b, enum imc_type type, int64_t n_out, int64_t n_in,
                      const int64_t *toks, int nj, unsigned long long launches)
{
    const int64_t ldx = n_in + 5, ldy = n_out + 3;
    struct krng r = {(uint64_t)(nj * 1000 + n_out)};
    uint64_t rb = 0;
    int64_t *first = calloc((size_t)nj + 1, sizeof(int64_t));
    for (int j = 0; first && j < nj; j++) {
        first[j + 1] = first[j] + toks[j];
    }
    const int64_t rows = first ? first[nj] : 0;
    uint8_t *w = kt_weights(&r, type, n_out * nj, n_in, &rb);
    float *x = kt_acts(&r, rows * ldx);
    float *y = malloc((size_t)(rows * ldy) * sizeof(float));
    float *alone = malloc((size_t)(rows * ldy) * sizeof(float));
    if (!first || !w || !x || !y || !alone) {
        CHECK(0, "allocation");
        goto out;
    }
    for (int64_t i = 0; i < rows * ldy; i++) {
        y[i] = alone[i] = -7.0f;
    }
    const unsigned long long l0 = cuemu_launch_count();
    const enum imc_status st = run_jobs(b, type, w, rb, x, y, nj, first, n_out, n_in, ldx, ldy);
    const unsigned long long l1 = cuemu_launch_count();
    enum imc_status sa = IMC_OK;
    for (int j = 0; j < nj && sa == IMC_OK; j++) { // job j alone: its slice, its rows
        const int64_t one[2] = {0, toks[j]};
        sa = run_jobs(b, type, w + (size_t)rb * (size_t)(j * n_out), rb, x + first[j] * ldx,
                      alone + first[j] * ldy, 1, one, n_out, n_in, ldx, ldy);
    }
    int gap = 0;
    for (int64_t i = 0; i < rows * ldy; i++) {
        gap += i % ldy >= n_out && y[i] != -7.0f;
    }
    CHECK(st == IMC_OK && sa == IMC_OK && kt_cmp_bits32("group", y, alone, rows * ldy) == 0 &&
              gap == 0,
          "%s: %s group of %d jobs (%lld tokens): each job's bits alone, %d gap values written",
          b->name, imc_type_name(type), nj, (long long)rows, gap);
    if (b == &kt_emu) {
        CHECK(l1 - l0 == launches, "%s group of %d jobs: %llu launches, want %llu",
              imc_type_name(type), nj, l1 - l0, launches);
    }
out:
    free(first);
    free(w);
    free(x);
    free(y);
    free(alone);
}

static void groups(const struct kt_backend *b)
{
    static const int64_t toks[] = {17, 1, 64, 65, 130, 3};
    run_group(b, IMC_TYPE_Q4_K, 70, 512, toks, 6, 1);
    run_group(b, IMC_TYPE_IQ4_NL, 33, 96, toks, 6, 1);
    int64_t many[IMC_CUDA_MMV_GROUP_MAX + 1];
    for (int j = 0; j <= IMC_CUDA_MMV_GROUP_MAX; j++) {
        many[j] = 1 + j % 3;
    }
    run_group(b, IMC_TYPE_Q8_0, 8, 64, many, IMC_CUDA_MMV_GROUP_MAX + 1, 2);
}

static void test_rejects(const struct kt_backend *b)
{
    float sentinel[4] = {1, 2, 3, 4}, back[4];
    float *d = kt_upload(b, sentinel, sizeof(sentinel));
    struct imc_cuda_mmv_job j = {d, d, d, 0};
    struct logcap cap;
    logcap_start(&cap);
    CHECK(b->mmq_group(NULL, IMC_TYPE_F32, &j, 1, 1, 1, 1, 1) == IMC_ERR_ARG,
          "%s: 0 tokens refused", b->name);
    j.n_tok = 1;
    CHECK(b->mmq_group(NULL, IMC_TYPE_F32, &j, 1, 1, 2, 1, 1) == IMC_ERR_ARG,
          "%s: ldx < n_in refused", b->name);
    CHECK(b->mmq_group(NULL, IMC_TYPE_Q4_0, &j, 1, 1, 48, 48, 1) == IMC_ERR_ARG,
          "%s: a q4_0 row of 48 refused", b->name);
    CHECK(b->mmq_group(NULL, IMC_TYPE_IQ2_XXS_R4, &j, 1, 1, 256, 256, 1) == IMC_ERR_UNSUPPORTED,
          "%s: iq2_xxs_r4 refused", b->name);
    logcap_stop();
    CHECK(cap.n_err == 4 && strstr(cap.text, "cuda mmq_group: job 0 has 0 tokens") &&
              strstr(cap.text, "ldx 1, ldy 1: bad shape"),
          "%s: one message each: %.400s", b->name, cap.text);
    CHECK(d && kt_download(b, back, d, sizeof(back)) == IMC_OK &&
              memcmp(back, sentinel, sizeof(back)) == 0,
          "%s: nothing written", b->name);
    b->dev_free(d);
}

int main(void)
{
    // (rows, blocks per row (elements for the float types), tokens): rows past one tile of 64
    // (70), tokens past one tile (65), columns with a part-step of 64 at the end (9 blocks of 32;
    // 70 floats; the types of 256 are whole steps)
    static const int64_t shapes[][3] = {{1, 1, 17}, {70, 9, 65}, {5, 2, 3}};
    static const int64_t float_len[] = {16, 70, 200};
    enum { NS = sizeof(shapes) / sizeof(shapes[0]) };
    const struct kt_backend *dev = kt_device();
    kt_test_checker();
    for (uint32_t t = kt_next_type(&kt_emu, 0); t < IMC_TYPE_MAX_ID;
         t = kt_next_type(&kt_emu, t + 1)) {
        const int64_t bs = imc_type_traits(t)->block_size;
        for (int s = 0; s < NS; s++) {
            const int64_t blocks = bs == 256 && s == 1 ? 2 : shapes[s][1];
            const struct mcase c = {shapes[s][0], bs == 1 ? float_len[s] : blocks * bs,
                                    (int)shapes[s][2]};
            run_case(dev, (enum imc_type)t, c, 300u * t + (uint64_t)s);
        }
    }
    groups(&kt_emu);
    test_rejects(&kt_emu);
    if (dev) {
        groups(dev);
        test_rejects(dev);
    }
    return check_summary();
}
