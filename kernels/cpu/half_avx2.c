/*
 * kernels/cpu/half_avx2: the AVX2 + F16C row decoders of f16 and bf16 (half.h). Compiled for
 * AVX2+F16C by target attributes only; handed out when the CPU has both.
 */
#include "kernels/cpu/half.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,f16c")))

// f16: vcvtph2ps (exact for every finite value, subnormals included, and for infinities); NaN
// lanes (|h| > 0x7c00) take types/'s bits: sign, 0x7f800000 | mantissa << 13, unquieted.
AVX2 static void f16_avx2(const uint16_t *src, float *dst, int64_t n)
{
    const __m256i abs = _mm256_set1_epi32(0x7fff), inf = _mm256_set1_epi32(0x7c00);
    const __m256i exp = _mm256_set1_epi32(0x7f800000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        const __m256 f = _mm256_cvtph_ps(h);
        const __m256i w = _mm256_cvtepu16_epi32(h), a = _mm256_and_si256(w, abs);
        const __m256i nan = _mm256_cmpgt_epi32(a, inf);
        const __m256i sign = _mm256_slli_epi32(_mm256_xor_si256(w, a), 16);
        const __m256i bits = _mm256_or_si256(_mm256_or_si256(sign, exp), _mm256_slli_epi32(a, 13));
        _mm256_storeu_ps(dst + i,
                         _mm256_blendv_ps(f, _mm256_castsi256_ps(bits), _mm256_castsi256_ps(nan)));
    }
    for (; i < n; i++) {
        dst[i] = imc_fp16_to_fp32(src[i]);
    }
}

// bf16: the bits shifted into the high half (exact, NaNs as they are).
AVX2 static void bf16_avx2(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(w, 16));
    }
    for (; i < n; i++) {
        dst[i] = imc_bf16_to_fp32(src[i]);
    }
}

imc_half_fn imc_cpu_half_decoder(enum imc_type type, enum imc_gemm_path path)
{
    if (path == IMC_GEMM_GENERIC || !__builtin_cpu_supports("avx2") ||
        !__builtin_cpu_supports("f16c")) {
        return NULL;
    }
    return type == IMC_TYPE_F16 ? f16_avx2 : type == IMC_TYPE_BF16 ? bf16_avx2 : NULL;
}

#else

imc_half_fn imc_cpu_half_decoder(enum imc_type type, enum imc_gemm_path path)
{
    (void)type;
    (void)path;
    return NULL;
}

#endif
