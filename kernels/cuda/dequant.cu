/*
 * kernels/cuda/dequant.cu: weight rows of a GGUF type to f32, f16 or bf16 on the device
 * (dequantize: rows [r0, r0 + nr), for the cuBLAS path; get_rows: rows by int32 id, the token
 * embedding lookup). One kernel per (type, output type), generated from the decoders of
 * kernels/cuda/qdecode.cuh; f32 output is bit-identical to imc_type_decode, f16 / bf16 is that
 * value rounded to nearest even. DESIGN.md §4; issue 13.
 *
 * Work split: thread i of the grid decodes chunk i (CH = 8 elements of one block, 1 for the
 * float types) of the nr x n_per_row output, in a grid-stride loop; neighbouring threads write
 * neighbouring chunks, so the stores of a warp are contiguous (32 x 8 floats).
 */
#include "kernels/cuda/qdecode.cuh"

#include "kernels/cuda/kern_decl.h"

namespace
{

constexpr int DQ_THREADS = 256;
constexpr int64_t DQ_MAX_BLOCKS = 1 << 20;

__device__ __forceinline__ void store(float *p, float v)
{
    *p = v;
}

__device__ __forceinline__ void store(__half *p, float v)
{
    *p = __float2half_rn(v);
}

__device__ __forceinline__ void store(__nv_bfloat16 *p, float v)
{
    *p = __float2bfloat16_rn(v);
}

// Output row r is source row ids[r] (ids != NULL; an id outside [0, n_rows) gives a row of
// NaN) or r0 + r.
template <class D, class O>
__global__ void dequant_kernel(const uint8_t *w, size_t row_bytes, int64_t n_per_row, int64_t r0,
                               int64_t nr, const int32_t *ids, int64_t n_rows, O *dst)
{
    const int64_t cpr = n_per_row / D::CH, total = nr * cpr;
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        const int64_t r = i / cpr, c = i % cpr;
        const int64_t src = ids ? (int64_t)ids[r] : r0 + r;
        float y[D::CH];
        if (src >= 0 && src < n_rows) {
            qdec::dec_chunk<D>(w + (size_t)src * row_bytes, c, y);
        } else {
            for (int l = 0; l < D::CH; l++) {
                y[l] = __uint_as_float(0x7fc00000u);
            }
        }
        O *out = dst + r * n_per_row + c * D::CH;
        for (int l = 0; l < D::CH; l++) {
            store(out + l, y[l]);
        }
    }
}

template <class D, class O>
enum imc_status launch(void *stream, const void *w, int64_t n_per_row, int64_t r0, int64_t nr,
                       const int32_t *ids, int64_t n_rows, void *dst)
{
    const int64_t total = nr * (n_per_row / D::CH);
    const int64_t blocks = (total + DQ_THREADS - 1) / DQ_THREADS;
    const size_t row_bytes = qdec::row_bytes<D>(n_per_row);
    if (total == 0) {
        return IMC_OK;
    }
    const unsigned grid = (unsigned)(blocks < DQ_MAX_BLOCKS ? blocks : DQ_MAX_BLOCKS);
    void (*const dequant)(const uint8_t *, size_t, int64_t, int64_t, int64_t, const int32_t *,
                          int64_t, O *) = dequant_kernel<D, O>;
    IMC_LAUNCH(dequant, dim3(grid), dim3(DQ_THREADS), 0, stream, (const uint8_t *)w, row_bytes,
               n_per_row, r0, nr, ids, n_rows, (O *)dst);
    return imc_cuda_check_launch("dequant_kernel");
}

template <class D>
enum imc_status launch_out(void *stream, const void *w, int64_t n_per_row, int64_t r0, int64_t nr,
                           const int32_t *ids, int64_t n_rows, enum imc_type dst_type, void *dst)
{
    switch (dst_type) {
    case IMC_TYPE_F32:
        return launch<D, float>(stream, w, n_per_row, r0, nr, ids, n_rows, dst);
    case IMC_TYPE_F16:
        return launch<D, __half>(stream, w, n_per_row, r0, nr, ids, n_rows, dst);
    case IMC_TYPE_BF16:
        return launch<D, __nv_bfloat16>(stream, w, n_per_row, r0, nr, ids, n_rows, dst);
    default:
        IMC_LOG_ERR("cuda dequantize: output type %s: expected f32, f16 or bf16",
                    qdec::type_name(dst_type));
        return IMC_ERR_UNSUPPORTED;
    }
}

// The type dispatch shared by dequantize and get_rows.
enum imc_status dispatch(const char *what, void *stream, enum imc_type type, const void *w,
                         int64_t n_per_row, int64_t r0, int64_t nr, const int32_t *ids,
                         int64_t n_rows, enum imc_type dst_type, void *dst)
{
    IMC_TRY(qdec::check_shape(what, type, n_per_row));
    if (nr < 0 || n_rows < 0) {
        IMC_LOG_ERR("%s: %lld rows of %lld: expected counts >= 0", what, (long long)nr,
                    (long long)n_rows);
        return IMC_ERR_ARG;
    }
    switch (type) {
#define X(NAME, D)                                                                                 \
    case IMC_TYPE_##NAME:                                                                          \
        return launch_out<D>(stream, w, n_per_row, r0, nr, ids, n_rows, dst_type, dst);
        IMC_CUDA_TYPES(X)
#undef X
    default:
        return IMC_ERR_INTERNAL; // check_shape let an unsupported type through
    }
}

} // namespace

IMC_CUDA_EXTERN bool IMC_CUDA_FN(supports_type)(enum imc_type type)
{
    return qdec::has_decoder(type);
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(dequantize)(void *stream, enum imc_type type,
                                                        const void *w, int64_t n_per_row,
                                                        int64_t r0, int64_t nr,
                                                        enum imc_type dst_type, void *dst)
{
    return dispatch("cuda dequantize", stream, type, w, n_per_row, r0, nr, NULL, r0 + nr, dst_type,
                    dst);
}

IMC_CUDA_EXTERN enum imc_status IMC_CUDA_FN(get_rows)(void *stream, enum imc_type type,
                                                      const void *w, int64_t n_rows,
                                                      int64_t n_per_row, const int32_t *ids,
                                                      int64_t n_ids, float *dst)
{
    return dispatch("cuda get_rows", stream, type, w, n_per_row, 0, n_ids, ids, n_rows,
                    IMC_TYPE_F32, dst);
}
